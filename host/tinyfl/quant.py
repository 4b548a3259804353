"""Symmetric quantization of float32 matrices to 8, 4 or 2-bit codes, bit for bit as the node.

Why it exists: nodes send their update as integer codes with stochastic rounding (unbiased, so
the coordinator's average of many nodes does not drift), and the coordinator quantizes the global
head it sends. The firmware's `tinyfl/quant.h` is the other implementation; both are checked
against `testvectors/quant/`. Everything is float32 in the spec's order (docs/WIRE.md, "PRNG and
stochastic rounding"), so codes and scales match the firmware exactly:

    scale = half(max|x| / qmax)                (per tensor, or per row; rounded to the binary16
                                                the wire carries, saturating at 65504)
    q     = clamp(floor(x / scale + u), -qmax, qmax), one fresh u per value in row-major order
    q     = 0 where scale = 0                  (a u is still drawn for that value)

Packing codes into bytes is the wire codec's job (`tinyfl.wire.tensor`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tinyfl.rng import Xorshift32
from tinyfl.wire.tensor import half_scales

__all__ = [
    "SCALE_PER_ROW",
    "SCALE_PER_TENSOR",
    "dequantize",
    "qmax",
    "quantize",
    "quantize_nearest",
    "quantize_with_scale",
]

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]

SCALE_PER_TENSOR = 0
SCALE_PER_ROW = 1
_QMAX = {8: 127, 4: 7, 2: 1}


def qmax(bits: int) -> int:
    """Largest code of a `bits`-bit tensor: 127, 7 or 1 (the most negative code is never used)."""
    try:
        return _QMAX[bits]
    except KeyError:
        raise ValueError(f"bits must be 8, 4 or 2, not {bits}") from None


def _checked(x: npt.ArrayLike) -> F32:
    values = np.ascontiguousarray(x, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"quantize takes a 2-D (rows, cols) tensor, not shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("cannot quantize NaN or infinite values")
    return values


def _scales(values: F32, bits: int, scale_mode: int) -> tuple[F32, F32]:
    """(scales as sent, the scale of every value): max|x| / qmax in float32, rounded to binary16
    (the receiver multiplies by the scale it gets, so the codes are made with that one)."""
    q = np.float32(qmax(bits))
    rows, cols = values.shape
    absx = np.abs(values)
    if scale_mode == SCALE_PER_ROW:
        top = absx.max(axis=1) if cols else np.zeros(rows, np.float32)
        scales = half_scales((top.astype(np.float32) / q).astype(np.float32))
        return scales, np.repeat(scales, cols).reshape(rows, cols)
    if scale_mode == SCALE_PER_TENSOR:
        top1 = absx.max() if values.size else np.float32(0)
        scales = half_scales(np.array([np.float32(top1) / q], dtype=np.float32))
        return scales, np.full((rows, cols), scales[0], dtype=np.float32)
    raise ValueError(f"scale_mode must be 0 (per tensor) or 1 (per row), not {scale_mode}")


def _round(values: F32, per_value: F32, u: F32 | np.float32, bits: int) -> I8:
    q = np.float32(qmax(bits))
    zero = per_value == 0
    safe = np.where(zero, np.float32(1), per_value).astype(np.float32)
    t = (values / safe).astype(np.float32) + u  # float32 divide, then float32 add, as the node
    codes = np.clip(np.floor(t), -q, q)
    out: I8 = np.where(zero, 0, codes).astype(np.int8)
    return out


def quantize(x: npt.ArrayLike, bits: int, scale_mode: int, rng: Xorshift32) -> tuple[I8, F32]:
    """Stochastic rounding of a 2-D tensor: (codes int8 (rows, cols), scales float32).

    `scales` has one value (scale_mode 0) or one per row (1). Draws rows * cols uniforms from
    `rng`, in row-major order, exactly as the node does; the draws are vectorized.
    """
    values = _checked(x)
    scales, per_value = _scales(values, bits, scale_mode)
    u = rng.uniform01_array(values.size).reshape(values.shape)
    return _round(values, per_value, u, bits), scales


def quantize_with_scale(x: npt.ArrayLike, bits: int, scale: float, rng: Xorshift32) -> I8:
    """Stochastic rounding with a scale given from outside (a secure-aggregation round's common
    scale, docs/WIRE.md): q = clamp(floor(x / scale + u), -qmax, qmax), one u per value in
    row-major order, as `quantize` draws them; values beyond qmax * scale are clamped."""
    values = _checked(x)
    s = np.float32(scale)
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"the scale must be finite and > 0, not {scale}")
    u = rng.uniform01_array(values.size).reshape(values.shape)
    return _round(values, np.full(values.shape, s, np.float32), u, bits)


def quantize_nearest(x: npt.ArrayLike, bits: int, scale_mode: int) -> tuple[I8, F32]:
    """Deterministic variant (u = 0.5: round half up), for one message that serves every node."""
    values = _checked(x)
    scales, per_value = _scales(values, bits, scale_mode)
    return _round(values, per_value, np.float32(0.5), bits), scales


def dequantize(codes: npt.ArrayLike, scales: npt.ArrayLike, scale_mode: int) -> F32:
    """codes * scale in float32, the scale of the tensor or of each value's row."""
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError("codes must be 2-D (rows, cols)")
    s = np.asarray(scales, dtype=np.float32).reshape(-1)
    if scale_mode == SCALE_PER_ROW:
        if s.size != c.shape[0]:
            raise ValueError(f"per-row scales: expected {c.shape[0]}, got {s.size}")
        per = s[:, None]
    elif scale_mode == SCALE_PER_TENSOR:
        if s.size != 1:
            raise ValueError(f"per-tensor scale: expected 1, got {s.size}")
        per = s[:1, None]
    else:
        raise ValueError(f"scale_mode must be 0 or 1, not {scale_mode}")
    out: F32 = np.multiply(c.astype(np.float32), per, dtype=np.float32)
    return out
