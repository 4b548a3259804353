"""The mel block of the node's DSP stage, in integers bit for bit as the firmware's
`dsp_mel_frames` (docs/DSP.md): a 1-channel int16 window cut into frames of n samples every
`hop` samples; per frame the Hann-windowed power spectrum (`power_spectrum`), triangular mel
filters over its bins, the Q8 log2 of each filter's energy and, optionally, a DCT-II of those
log energies (MFCC); then int8 features by the spectral block's rule.

The node computes no logarithm of a frequency and no cosine of an arbitrary angle: the host
makes the filter bank's edge bins (`mel_edges`, HTK's mel scale) and the Q15 DCT-II matrix
(`dct_q15`) once, and the node reads them from its model's DSP record (`mel_tables` makes both).
Log-spaced bands (`log_edges`) are the same block with other edges.
The triangular weights follow from the edges by an integer rule both sides apply (`mel_weights`).

Overflow: a power bin is at most 2^31 (|re|, |im| <= 2^15), a weight at most 2^15, a filter
spans at most n/2 + 1 <= 513 bins, so a filter's weighted sum is below 2^56 (int64) and its
energy (the sum >> 15) below 2^41; its log2_q8 is at most 41 * 256 = 10496 < 2^14; a DCT
product is below 2^29 in magnitude and a coefficient's sum over at most 512 filters below 2^38.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from tinyfl.dsp.spectral import check_length, features_int8, log2_q8, power_spectrum

__all__ = ["MelTables", "dct_q15", "frame_count", "hz_to_mel", "log_edges", "log_mel_q8",
           "mel_edges", "mel_frames", "mel_tables", "mel_to_hz", "mel_weights", "mfcc_q8"]

I64 = npt.NDArray[np.int64]
ONE_Q15 = 1 << 15  # a weight of 1: the centre bin of a filter


def hz_to_mel(f: float) -> float:
    """HTK's mel scale, mel(f) = 2595 log10(1 + f / 700) (S. Young et al., The HTK Book,
    "Filterbank analysis")."""
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m: float) -> float:
    """The inverse of hz_to_mel: f = 700 (10^(m / 2595) - 1)."""
    return 700.0 * (math.pow(10.0, m / 2595.0) - 1.0)


def _check_bank(n: int, mels: int) -> None:
    check_length(n)
    if not 1 <= mels <= n // 2:
        raise ValueError(f"{mels} mel filters do not fit the {n // 2} bins of an {n}-point "
                         "spectrum")


def _edge_bins(sample_rate: int, n: int, mels: int, f_min: float, f_max: float | None,
               point: Callable[[float, float, float], float]) -> list[int]:
    """mels + 2 frequencies point(f_min, f_max, i / (mels + 1)), each at its nearest FFT bin."""
    _check_bank(n, mels)
    top = sample_rate / 2 if f_max is None else f_max
    if sample_rate <= 0 or not 0.0 <= f_min < top <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2}, not {f_min}, {top}")
    out = []
    for i in range(mels + 2):
        f = point(f_min, top, i / (mels + 1))
        out.append(min(n // 2, max(0, math.floor(f * n / sample_rate + 0.5))))
    return out


def mel_edges(sample_rate: int, n: int, mels: int, f_min: float = 0.0,
              f_max: float | None = None) -> list[int]:
    """The mels + 2 edge bins of a mel filter bank: points equally spaced on the mel scale from
    f_min to f_max (default sample_rate / 2), each at the nearest FFT bin,
    floor(f n / sample_rate + 1/2), within 0..n/2. Filter j rises from edges[j] to its centre
    edges[j + 1] and falls to edges[j + 2]. Non-decreasing; neighbours may coincide when n is
    small for the number of filters (a filter is then its centre bin)."""
    def point(lo: float, hi: float, t: float) -> float:
        return mel_to_hz(hz_to_mel(lo) + t * (hz_to_mel(hi) - hz_to_mel(lo)))
    return _edge_bins(sample_rate, n, mels, f_min, f_max, point)


def log_edges(sample_rate: int, n: int, bands: int, f_min: float,
              f_max: float | None = None) -> list[int]:
    """The edge bins of a log-spaced filter bank for the same block: as mel_edges, the points
    equally spaced in log frequency, f_min (f_max / f_min)^(i / (bands + 1)), f_min > 0 (the
    constant-Q bands of vibration analysis)."""
    def point(lo: float, hi: float, t: float) -> float:
        return lo * math.pow(hi / lo, t)
    if f_min <= 0.0:
        raise ValueError(f"log-spaced bands start above 0 Hz, not at {f_min}")
    return _edge_bins(sample_rate, n, bands, f_min, f_max, point)


def _check_edges(edges: npt.ArrayLike, n: int) -> npt.NDArray[np.int64]:
    e = np.asarray(edges, np.int64).reshape(-1)
    _check_bank(n, e.size - 2)
    if (np.diff(e) < 0).any() or int(e[0]) < 0 or int(e[-1]) > n // 2:
        raise ValueError(f"mel edges are non-decreasing bins in 0..{n // 2}")
    return e


def mel_weights(edges: npt.ArrayLike, n: int) -> I64:
    """The (mels, n/2 + 1) Q15 triangular weights of the edges, by the integer rule the node
    applies: filter j with edges l <= c <= r weighs bin c 2^15, bin k with l < k < c
    ((k - l) << 15) // (c - l), bin k with c < k < r ((r - k) << 15) // (r - c), others 0."""
    e = _check_edges(edges, n)
    k = np.arange(n // 2 + 1, dtype=np.int64)
    out = np.zeros((e.size - 2, k.size), np.int64)
    for j in range(e.size - 2):
        lo, c, hi = (int(v) for v in e[j:j + 3])
        rising, falling = (k > lo) & (k < c), (k > c) & (k < hi)
        out[j, rising] = ((k[rising] - lo) << 15) // (c - lo)
        out[j, falling] = ((hi - k[falling]) << 15) // (hi - c)
        out[j, c] = ONE_Q15
    return out


def dct_q15(mels: int, coeffs: int) -> npt.NDArray[np.int16]:
    """The orthonormal DCT-II (Ahmed, Natarajan and Rao, 1974) as int16 Q15, (coeffs, mels):
    D[k][m] = round(32767 a_k cos(pi k (2 m + 1) / (2 mels))), a_0 = sqrt(1 / mels),
    a_k = sqrt(2 / mels) for k > 0; coefficient k of L is sum_m D[k][m] L[m] / 2^15."""
    if not 1 <= coeffs <= mels:
        raise ValueError(f"1..{mels} DCT coefficients of {mels} mel energies, not {coeffs}")
    out = np.zeros((coeffs, mels), np.int16)
    for k in range(coeffs):
        a = math.sqrt((1.0 if k == 0 else 2.0) / mels)
        for m in range(mels):
            out[k, m] = round(32767 * a * math.cos(math.pi * k * (2 * m + 1) / (2 * mels)))
    return out


class MelTables(NamedTuple):
    """What the node's DSP record stores for the mel block: the u16 edge bins (mels + 2) and the
    int16 Q15 DCT-II matrix (coeffs rows of mels, empty for log mel energies out)."""

    edges: npt.NDArray[np.uint16]
    dct: npt.NDArray[np.int16]


def mel_tables(sample_rate: int, n: int, mels: int, coeffs: int, f_min: float = 0.0,
               f_max: float | None = None, scale: Literal["mel", "log"] = "mel") -> MelTables:
    """The edges (mel_edges, or log_edges for scale "log") and, for coeffs > 0, the DCT
    (dct_q15) of one mel block setting."""
    make = mel_edges if scale == "mel" else log_edges
    edges = np.array(make(sample_rate, n, mels, f_min, f_max), np.uint16)
    dct = dct_q15(mels, coeffs) if coeffs else np.zeros((0, mels), np.int16)
    return MelTables(edges, dct)


def log_mel_q8(power: npt.ArrayLike, edges: npt.ArrayLike) -> I64:
    """log2_q8(E_j + 1) of each filter, E_j = (sum_k w_j[k] P[k]) >> 15, for power spectra P
    (the last axis holds bins 0..n/2)."""
    p = np.asarray(power, np.int64)
    w = mel_weights(edges, 2 * (p.shape[-1] - 1))
    energy = (p @ w.T) >> 15  # integer matmul: exact, each sum below 2^56
    return log2_q8(energy + 1)


def mfcc_q8(log_mel: npt.ArrayLike, dct: npt.ArrayLike) -> I64:
    """c_k = (sum_m D[k][m] L[m] + 2^14) >> 15: the DCT-II of Q8 log energies, Q8, half up."""
    acc = np.asarray(log_mel, np.int64) @ np.asarray(dct, np.int64).T
    out: I64 = (acc + (1 << 14)) >> 15
    return out


def frame_count(samples: int, n: int, hop: int) -> int:
    """Frames of n samples every hop samples in a window of `samples`: 1 + (samples - n) // hop,
    0 when the window is shorter than a frame."""
    if hop < 1:
        raise ValueError(f"a hop is at least 1 sample, not {hop}")
    return 0 if samples < n else 1 + (samples - n) // hop


def mel_frames(x: npt.ArrayLike, n: int, hop: int, edges: npt.ArrayLike, dct: npt.ArrayLike,
               offset: int, shift: int) -> npt.NDArray[np.int8]:
    """int8 features (frames, coeffs) of an int16 window, or (frames, mels) of log mel energies
    when dct has no rows: frame f is x[f hop : f hop + n]; each value v (Q8 log2 energy or
    coefficient) becomes clamp(((v - offset) >> shift) - 128, -128, 127)."""
    v = np.asarray(x, np.int64).reshape(-1)
    e = _check_edges(edges, n)
    d = np.asarray(dct, np.int64).reshape(-1, e.size - 2)
    if not 0 <= d.shape[0] <= e.size - 2:
        raise ValueError(f"at most {e.size - 2} DCT coefficients, not {d.shape[0]}")
    if not 0 <= shift <= 16:
        raise ValueError(f"shift is 0..16, not {shift}")
    frames = frame_count(v.size, n, hop)
    if frames == 0:
        raise ValueError(f"a window of {v.size} samples holds no frame of {n}")
    power = np.stack([power_spectrum(v[f * hop:f * hop + n]) for f in range(frames)])
    values = log_mel_q8(power, e)
    if d.shape[0]:
        values = mfcc_q8(values, d)
    return features_int8(values, offset, shift)
