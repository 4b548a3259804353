"""The statistics block of the node's DSP stage, in integers bit for bit as the firmware's
`dsp_time_stats` (docs/DSP.md): per channel of an interleaved int16 window, the RMS, the peak,
the crest factor and the zero-crossing rate, each mapped to an int8 feature by a fixed rule.
(Skewness and kurtosis, which need fourth moments, come later.)

Every division here is of non-negative integers (floor, the same on both sides) and the square
root is the exact integer one.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from tinyfl.dsp.spectral import log2_q8

__all__ = ["STATS_PER_CHANNEL", "time_stats"]

STATS_PER_CHANNEL = 4  # rms, peak, crest, zcr


def _int8(v: int) -> int:
    return max(-128, min(127, v))


def channel_stats(x: npt.NDArray[np.int64]) -> list[int]:
    """[rms, peak, crest, zcr] as int8 features of one channel (n >= 2 samples)."""
    n = int(x.size)
    rms = math.isqrt(int((x * x).sum()) // n)
    peak = int(np.abs(x).max())
    crest_q4 = (peak << 4) // rms if rms else 0
    negative = x < 0
    zcr_q8 = (int((negative[1:] != negative[:-1]).sum()) << 8) // (n - 1)
    logs = log2_q8(np.array([rms + 1, peak + 1, crest_q4 + 1], np.int64)).tolist()
    return [_int8((logs[0] >> 4) - 128), _int8((logs[1] >> 4) - 128),
            _int8((logs[2] >> 4) - 128), _int8(zcr_q8 - 128)]


def time_stats(window: npt.ArrayLike, channels: int) -> npt.NDArray[np.int8]:
    """int8 features of an interleaved int16 window (time-major, channels last: sample t of
    channel c at t * channels + c): STATS_PER_CHANNEL per channel, channel after channel.

    rms = isqrt(sum x^2 // n); peak = max |x|; crest = (peak << 4) // rms (Q4, 0 when rms is 0);
    zcr = (sign changes << 8) // (n - 1) (Q8). Features: (log2_q8(v + 1) >> 4) - 128 for rms,
    peak and crest, zcr - 128 for the rate; all clamped to int8.
    """
    v = np.asarray(window, np.int64).reshape(-1)
    if channels < 1 or v.size % channels or v.size // channels < 2:
        raise ValueError(f"a window of {v.size} values is not >= 2 samples of {channels} channels")
    if v.size and (int(v.min()) < -32768 or int(v.max()) > 32767):
        raise ValueError("samples are int16")
    per = v.reshape(-1, channels)
    out = [f for c in range(channels) for f in channel_stats(per[:, c])]
    return np.array(out, np.int8)
