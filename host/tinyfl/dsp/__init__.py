"""The node's DSP stage, in integers bit for bit as the firmware (docs/DSP.md). Built so far: the
spectral block's window, fixed-point FFT and power spectrum."""

from tinyfl.dsp.spectral import MAX_FFT, MIN_FFT, fft_q15, hann_q15, power_spectrum, window_q15

__all__ = ["MAX_FFT", "MIN_FFT", "fft_q15", "hann_q15", "power_spectrum", "window_q15"]
