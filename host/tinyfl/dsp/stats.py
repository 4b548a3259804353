"""The statistics block of the node's DSP stage, in integers bit for bit as the firmware's
`dsp_time_stats` (docs/DSP.md): per channel of an interleaved int16 window, the RMS, the peak,
the crest factor, the zero-crossing rate, the skewness and the kurtosis, each mapped to an int8
feature by a fixed rule.

Every division here is of non-negative integers (floor, the same on both sides) and the square
root is the exact integer one. The third and fourth moments use a prescaled fixed-point form
(`shape_sums`) whose sums stay below 2^63 for any int16 input of up to MAX_STATS samples, so the
node computes them in int64 and numpy does too.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from tinyfl.dsp.spectral import log2_q8

__all__ = ["MAX_STATS", "STATS_PER_CHANNEL", "ShapeSums", "shape_q4", "shape_sums", "time_stats"]

STATS_PER_CHANNEL = 6  # rms, peak, crest, zcr, skew, kurt
MAX_STATS = 1024  # samples per channel: the moments' 64-bit bound holds up to here


class ShapeSums(NamedTuple):
    """The integer sums behind skewness and kurtosis: deviations from the rounded mean, prescaled
    by `shift` so |u| <= 2^13, and S2 = sum u^2, S3 = sum u^3, S4 = sum u^4."""

    mean: int
    shift: int
    s2: int
    s3: int
    s4: int


def shape_sums(x: npt.NDArray[np.int64]) -> ShapeSums:
    """m = floor((sum x + n // 2) / n); d = x - m; s = max(0, bits(max |d|) - 13);
    u = (d + 2^(s-1)) >> s (no term for s = 0); the sums of u^2, u^3, u^4 in int64."""
    n = int(x.size)
    mean = (int(x.sum()) + n // 2) // n
    max_dev = max(int(x.max()) - mean, mean - int(x.min()))
    s = max(0, max_dev.bit_length() - 13)
    u = (x - mean + ((1 << s) >> 1)) >> s
    u2 = u * u
    return ShapeSums(mean, s, int(u2.sum()), int((u2 * u).sum()), int((u2 * u2).sum()))


def shape_q4(x: npt.NDArray[np.int64]) -> tuple[int, int]:
    """(skew, kurt) in Q4 of one channel, as the node's: with h the least shift that brings
    a = S2 >> 2h below 2^16, b = |S3| >> 3h, q = S4 >> 4h, both quotients rounded half up:
    kurt = (16 n q + a^2 // 2) // a^2 and
    skew = sign(S3) ((b * isqrt((n << 32) // a) + (a << 11)) // (a << 12)).
    0 and 0 for a constant channel."""
    n = int(x.size)
    sums = shape_sums(x)
    if sums.s2 == 0:
        return 0, 0
    h = (max(0, sums.s2.bit_length() - 16) + 1) // 2
    a, b, q = sums.s2 >> (2 * h), abs(sums.s3) >> (3 * h), sums.s4 >> (4 * h)
    kurt = (16 * n * q + (a * a) // 2) // (a * a)
    magnitude = (b * math.isqrt((n << 32) // a) + (a << 11)) // (a << 12)
    return (-magnitude if sums.s3 < 0 else magnitude), kurt


def _int8(v: int) -> int:
    return max(-128, min(127, v))


def channel_stats(x: npt.NDArray[np.int64]) -> list[int]:
    """[rms, peak, crest, zcr, skew, kurt] as int8 features of one channel (n >= 2 samples)."""
    n = int(x.size)
    rms = math.isqrt(int((x * x).sum()) // n)
    peak = int(np.abs(x).max())
    crest_q4 = (peak << 4) // rms if rms else 0
    negative = x < 0
    zcr_q8 = (int((negative[1:] != negative[:-1]).sum()) << 8) // (n - 1)
    skew_q4, kurt_q4 = shape_q4(x)
    logs = log2_q8(np.array([rms + 1, peak + 1, crest_q4 + 1, kurt_q4 + 1], np.int64)).tolist()
    return [_int8((logs[0] >> 4) - 128), _int8((logs[1] >> 4) - 128),
            _int8((logs[2] >> 4) - 128), _int8(zcr_q8 - 128), _int8(skew_q4),
            _int8((logs[3] >> 4) - 128)]


def time_stats(window: npt.ArrayLike, channels: int) -> npt.NDArray[np.int8]:
    """int8 features of an interleaved int16 window (time-major, channels last: sample t of
    channel c at t * channels + c): STATS_PER_CHANNEL per channel, channel after channel.

    rms = isqrt(sum x^2 // n); peak = max |x|; crest = (peak << 4) // rms (Q4, 0 when rms is 0);
    zcr = (sign changes << 8) // (n - 1) (Q8); skew and kurt in Q4 (`shape_q4`). Features:
    (log2_q8(v + 1) >> 4) - 128 for rms, peak, crest and kurt, zcr - 128 for the rate, the Q4
    skewness itself (+-8); all clamped to int8.
    """
    v = np.asarray(window, np.int64).reshape(-1)
    if channels < 1 or v.size % channels or v.size // channels < 2:
        raise ValueError(f"a window of {v.size} values is not >= 2 samples of {channels} channels")
    if v.size // channels > MAX_STATS:
        raise ValueError(f"at most {MAX_STATS} samples per channel, not {v.size // channels}")
    if v.size and (int(v.min()) < -32768 or int(v.max()) > 32767):
        raise ValueError("samples are int16")
    per = v.reshape(-1, channels)
    out = [f for c in range(channels) for f in channel_stats(per[:, c])]
    return np.array(out, np.int8)
