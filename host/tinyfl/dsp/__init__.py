"""The node's DSP stage, in integers bit for bit as the firmware (docs/DSP.md). Built so far: the
spectral block (window, fixed-point FFT, power spectrum, log2 band energies as int8)."""

from tinyfl.dsp.spectral import (
    MAX_FFT,
    MIN_FFT,
    band_edges,
    fft_q15,
    hann_q15,
    log2_q8,
    power_spectrum,
    spectral_bands,
    window_q15,
)

__all__ = ["MAX_FFT", "MIN_FFT", "band_edges", "fft_q15", "hann_q15", "log2_q8", "power_spectrum",
           "spectral_bands", "window_q15"]
