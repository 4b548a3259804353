"""The node's DSP stage, in integers bit for bit as the firmware (docs/DSP.md): the spectral
block (window, fixed-point FFT, power spectrum, log2 band energies as int8) and the statistics
block (RMS, peak, crest factor, zero-crossing rate, skewness, kurtosis per channel)."""

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
from tinyfl.dsp.stats import (
    MAX_STATS,
    STATS_PER_CHANNEL,
    ShapeSums,
    shape_q4,
    shape_sums,
    time_stats,
)

__all__ = ["MAX_FFT", "MAX_STATS", "MIN_FFT", "STATS_PER_CHANNEL", "ShapeSums", "band_edges", "fft_q15",
           "hann_q15", "log2_q8", "power_spectrum", "shape_q4", "shape_sums", "spectral_bands",
           "time_stats", "window_q15"]
