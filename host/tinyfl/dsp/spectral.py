"""The spectral block of the node's DSP stage in integers, bit for bit as the firmware's
`tinyfl/dsp.h` computes it (docs/DSP.md): a Q15 Hann window, a radix-2 fixed-point FFT that
halves every stage (so X = DFT(window * x) / N, no overflow), and the power spectrum.

Every operation is an integer one with a stated rounding: a Q15 product rounds half up,
`(a * b + 2^14) >> 15`; a stage's sum and difference floor, `(a +- t) >> 1` (arithmetic shifts,
as the node's). numpy runs each stage over all butterflies at once in int64.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tinyfl.dsp.tables import COS_Q15, COS_SIZE

__all__ = ["MAX_FFT", "MIN_FFT", "band_edges", "check_length", "features_int8", "fft_q15",
           "hann_q15", "log2_q8", "power_spectrum", "spectral_bands", "window_q15"]

MIN_FFT = 8
MAX_FFT = COS_SIZE  # the cosine table's length: twiddles of any power of two up to it

I64 = npt.NDArray[np.int64]
_COS = np.array(COS_Q15, dtype=np.int64)


def check_length(n: int) -> int:
    """log2(n) of an FFT length n, a power of two in MIN_FFT..MAX_FFT (ValueError otherwise)."""
    if n < MIN_FFT or n > MAX_FFT or n & (n - 1):
        raise ValueError(f"an FFT length is a power of two in {MIN_FFT}..{MAX_FFT}, not {n}")
    return n.bit_length() - 1


def hann_q15(n: int) -> I64:
    """w[i] = (32767 - cos(2 pi i / n) + 1) >> 1 in Q15, from the shared cosine table."""
    check_length(n)
    idx = np.arange(n) * (COS_SIZE // n)
    out: I64 = (32767 - _COS[idx] + 1) >> 1
    return out


def window_q15(x: npt.ArrayLike, w: npt.ArrayLike) -> I64:
    """(x * w + 2^14) >> 15: int16 samples times a Q15 window."""
    out: I64 = (np.asarray(x, np.int64) * np.asarray(w, np.int64) + (1 << 14)) >> 15
    return out


def _bit_reversed(n: int, bits: int) -> npt.NDArray[np.intp]:
    i = np.arange(n)
    r = np.zeros(n, dtype=np.intp)
    for b in range(bits):
        r |= ((i >> b) & 1) << (bits - 1 - b)
    return r


def fft_q15(y: npt.ArrayLike) -> tuple[I64, I64]:
    """(re, im) of DFT(y) / n for real int16-range y of a power-of-two length n along the last
    axis (any leading axes are a batch): radix-2 decimation in time, twiddle
    W^j = exp(-2 pi i j / m) = cos - i sin from the Q15 table."""
    v = np.asarray(y, np.int64)
    v = v.reshape(1, -1) if v.ndim == 0 else v
    n = v.shape[-1]
    bits = check_length(n)
    re = v[..., _bit_reversed(n, bits)].copy()
    im = np.zeros(re.shape, np.int64)
    for s in range(1, bits + 1):
        m = 1 << s
        half = m >> 1
        j = np.arange(half)
        c = _COS[j * (COS_SIZE // m)]
        sn = _COS[(j * (COS_SIZE // m) - COS_SIZE // 4) % COS_SIZE]  # sin t = cos(t - pi/2)
        top = (np.arange(0, n, m)[:, None] + j[None, :]).reshape(-1)
        bot = top + half
        cc, ss = np.tile(c, n // m), np.tile(sn, n // m)
        br, bi = re[..., bot], im[..., bot]
        tr = (br * cc + bi * ss + (1 << 14)) >> 15  # Re(b W)
        ti = (bi * cc - br * ss + (1 << 14)) >> 15  # Im(b W)
        ar, ai = re[..., top], im[..., top]
        re[..., top], im[..., top] = (ar + tr) >> 1, (ai + ti) >> 1
        re[..., bot], im[..., bot] = (ar - tr) >> 1, (ai - ti) >> 1
    return re, im


def power_spectrum(x: npt.ArrayLike) -> I64:
    """|X[k]|^2 for k = 0..n/2 of the Hann-windowed int16 window x (X = DFT / n): what the
    node's dsp_power_spectrum writes. A 1-D window gives (n/2 + 1,); leading axes are a batch of
    windows along the last axis."""
    v = np.asarray(x)
    v = v.reshape(-1) if v.ndim == 0 else v
    if v.size and (int(v.min()) < -32768 or int(v.max()) > 32767):
        raise ValueError("samples are int16")
    n = v.shape[-1]
    re, im = fft_q15(window_q15(v, hann_q15(n)))
    half = n // 2 + 1
    out: I64 = re[..., :half] * re[..., :half] + im[..., :half] * im[..., :half]
    return out


def band_edges(n: int, bands: int) -> list[int]:
    """Bin edges of `bands` linear bands over bins 1..n/2 (DC left out): band b sums bins
    edges[b] .. edges[b + 1] - 1, edges[b] = 1 + b * (n / 2) // bands."""
    check_length(n)
    if not 1 <= bands <= n // 2:
        raise ValueError(f"{bands} bands do not fit the {n // 2} bins of an {n}-point spectrum")
    return [1 + b * (n // 2) // bands for b in range(bands + 1)]


def log2_q8(v: npt.ArrayLike) -> I64:
    """floor(256 * log2(v)) with a linear mantissa, for integers v >= 1: e = floor(log2 v),
    log2_q8 = 256 e + ((v - 2^e) * 256) >> e. Exact integer arithmetic (v < 2^55)."""
    a = np.asarray(v, np.int64)
    if a.size and (int(a.min()) < 1 or int(a.max()) >= 1 << 55):
        raise ValueError("log2_q8 takes integers in [1, 2^55)")
    e = np.zeros(a.shape, np.int64)
    for shift in (32, 16, 8, 4, 2, 1):  # floor(log2) by halving, as the node's loop does
        big = (a >> (e + shift)) > 0
        e = np.where(big, e + shift, e)
    out: I64 = 256 * e + (((a - (np.int64(1) << e)) << 8) >> e)
    return out


def features_int8(v: npt.ArrayLike, offset: int, shift: int) -> npt.NDArray[np.int8]:
    """The int8 feature of a Q8 log2 value (or a coefficient of them):
    clamp(((v - offset) >> shift) - 128, -128, 127), an arithmetic (floor) shift."""
    f = ((np.asarray(v, np.int64) - offset) >> shift) - 128
    out: npt.NDArray[np.int8] = np.clip(f, -128, 127).astype(np.int8)
    return out


def spectral_bands(x: npt.ArrayLike, bands: int, offset: int, shift: int) -> npt.NDArray[np.int8]:
    """int8 features of one int16 window: the log2 power (Q8) of `bands` linear bands,
    f = clamp(((log2_q8(band power + 1) - offset) >> shift) - 128, -128, 127)."""
    if not 0 <= shift <= 16:
        raise ValueError(f"shift is 0..16, not {shift}")
    p = power_spectrum(x)
    edges = band_edges(np.asarray(x).size, bands)
    sums = np.array([int(p[edges[b]:edges[b + 1]].sum()) for b in range(bands)], np.int64)
    return features_int8(log2_q8(sums + 1), offset, shift)
