"""The node's DSP stage, in integers bit for bit as the firmware (docs/DSP.md). Built so far: the
spectral block (window, fixed-point FFT, power spectrum, log2 band energies as int8) and
the statistics block (RMS, peak, crest factor, zero-crossing rate per channel)."""

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
from tinyfl.dsp.stats import STATS_PER_CHANNEL, time_stats

__all__ = ["MAX_FFT", "MIN_FFT", "STATS_PER_CHANNEL", "band_edges", "fft_q15", "hann_q15", "log2_q8",
           "power_spectrum", "spectral_bands", "time_stats", "window_q15"]
