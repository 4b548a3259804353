"""The node's DSP stage, in integers bit for bit as the firmware (docs/DSP.md): the spectral
block (window, fixed-point FFT, power spectrum, log2 band energies as int8), the statistics
block (RMS, peak, crest factor, zero-crossing rate, skewness, kurtosis per channel) and the mel
block (framed log mel energies or MFCC as int8)."""

from tinyfl.dsp.mel import (
    MelTables,
    dct_q15,
    frame_count,
    hz_to_mel,
    log_edges,
    log_mel_q8,
    mel_edges,
    mel_frames,
    mel_tables,
    mel_to_hz,
    mel_weights,
    mfcc_q8,
)
from tinyfl.dsp.spectral import (
    MAX_FFT,
    MIN_FFT,
    band_edges,
    features_int8,
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

__all__ = ["MAX_FFT", "MAX_STATS", "MIN_FFT", "STATS_PER_CHANNEL", "MelTables", "ShapeSums",
           "band_edges", "dct_q15", "features_int8", "fft_q15", "frame_count", "hann_q15",
           "hz_to_mel", "log2_q8", "log_edges", "log_mel_q8", "mel_edges", "mel_frames",
           "mel_tables", "mel_to_hz", "mel_weights", "mfcc_q8", "power_spectrum", "shape_q4",
           "shape_sums", "spectral_bands", "time_stats", "window_q15"]
