"""Tensors on the wire: quantized codes (8, 4 or 2 bits) with binary16 scales, or float32 values.

Packing (docs/WIRE.md, "tensor"): row-major, LSB-first two's complement; value `i` occupies bits
`(i*bits) mod 8 ..` of byte `floor(i*bits/8)`; unused high bits of the last byte are 0. The most
negative code (-128, -8, -2) is never used, so the codes of a tensor are symmetric around zero.

Quantization itself (float -> codes) lives in `tinyfl.quant`; this module only moves codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "F16_MAX",
    "FLOAT_BITS",
    "QUANT_BITS",
    "Tensor",
    "half_scales",
    "pack_codes",
    "packed_size",
    "qmax",
    "to_signed",
    "unpack_codes",
    "unpack_fields",
]

QUANT_BITS = (8, 4, 2)
FLOAT_BITS = 32
SCALE_PER_TENSOR = 0
SCALE_PER_ROW = 1
F16_MAX = np.float32(65504.0)  # the largest finite binary16

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]


def qmax(bits: int) -> int:
    """Largest code of a `bits`-bit tensor: 127, 7 or 1."""
    if bits not in QUANT_BITS:
        raise ValueError(f"bits must be one of {QUANT_BITS}, not {bits}")
    return (1 << (bits - 1)) - 1


def packed_size(n: int, bits: int) -> int:
    """Bytes of `n` values of `bits` bits each (float32 included)."""
    return (n * bits + 7) // 8


def _shifts(bits: int) -> U8:
    return (np.arange(8 // bits, dtype=np.uint8) * np.uint8(bits)).astype(np.uint8)


def pack_codes(codes: npt.ArrayLike, bits: int) -> bytes:
    """Packs int8 codes (any shape, read row-major) into `bits` bits each.

    Codes must lie in [-qmax, qmax]; this is checked by the frame encoder, not here: out-of-range
    codes are cut to their low `bits` bits.
    """
    qmax(bits)
    flat = np.ascontiguousarray(codes, dtype=np.int8).reshape(-1)
    if bits == 8:
        return flat.tobytes()
    per = 8 // bits
    low = flat.view(np.uint8) & np.uint8((1 << bits) - 1)
    pad = (-low.size) % per
    if pad:
        low = np.concatenate([low, np.zeros(pad, dtype=np.uint8)])
    groups = low.reshape(-1, per) << _shifts(bits)
    packed: U8 = np.bitwise_or.reduce(groups, axis=1).astype(np.uint8)
    return packed.tobytes()


def unpack_fields(data: bytes, bits: int) -> U8:
    """Every `bits`-bit field of `data`, padding included, as unsigned values."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return raw
    fields = (raw[:, None] >> _shifts(bits)) & np.uint8((1 << bits) - 1)
    return fields.reshape(-1).astype(np.uint8)


def to_signed(fields: U8, bits: int) -> I8:
    if bits == 8:
        return fields.view(np.int8).copy()
    signed = fields.astype(np.int16)
    signed[signed >= (1 << (bits - 1))] -= 1 << bits
    return signed.astype(np.int8)


def unpack_codes(data: bytes, n: int, bits: int) -> I8:
    """The first `n` codes packed in `data` (which must hold at least packed_size(n, bits) bytes)."""
    qmax(bits)
    if len(data) < packed_size(n, bits):
        raise ValueError(f"{len(data)} bytes cannot hold {n} codes of {bits} bits")
    return to_signed(unpack_fields(data[: packed_size(n, bits)], bits)[:n], bits)


def half_scales(scales: npt.ArrayLike) -> F32:
    """Scales as the wire carries them (docs/WIRE.md, tensor): finite values beyond +-65504 become
    +-65504, then each rounds to the nearest binary16 (ties to even) and widens back to float32
    exactly. NaN, Inf and negative values pass through for the codec to refuse."""
    s = np.asarray(scales, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        clamped = np.where(np.isfinite(s), np.clip(s, -F16_MAX, F16_MAX), s)
        out: F32 = clamped.astype(np.float16).astype(np.float32)
    return out


def _as_f32(a: Any, shape: tuple[int, ...], what: str) -> F32:
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{what}: expected {shape}, got {arr.shape}")
    return arr.reshape(shape)


def _as_i8(a: Any, shape: tuple[int, ...], what: str) -> I8:
    arr = np.asarray(a)
    if arr.dtype != np.int8:
        if arr.size and (
            not np.issubdtype(arr.dtype, np.integer) or arr.min() < -128 or arr.max() > 127
        ):
            raise ValueError(f"{what}: codes must be integers in [-128, 127]")
        arr = arr.astype(np.int8)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{what}: expected {shape}, got {arr.shape}")
    return np.ascontiguousarray(arr).reshape(shape)


@dataclass(frozen=True, eq=False)
class Tensor:
    """A rows x cols matrix as it travels: codes + scales (bits 8/4/2) or float32 values (bits 32).

    Arrays are normalized on construction: `scales` float32 of shape (n_scales,) holding binary16
    values (rounded with `half_scales`: what the wire carries), `codes` int8 of
    shape (rows, cols) for quantized tensors (else None), `values` float32 (rows, cols) for bits 32
    (else None). Prefer the constructors `Tensor.quantized(...)` and `Tensor.float32(...)`.
    """

    bits: int
    scale_mode: int
    rows: int
    cols: int
    scales: F32
    codes: I8 | None = None
    values: F32 | None = None

    def __post_init__(self) -> None:
        shape = (self.rows, self.cols)
        if self.rows < 0 or self.cols < 0:
            raise ValueError("rows and cols must be >= 0")
        if self.bits == FLOAT_BITS:
            if self.values is None or self.codes is not None:
                raise ValueError("a float32 tensor has values and no codes")
            object.__setattr__(self, "values", _as_f32(self.values, shape, "values"))
            object.__setattr__(self, "scales", _as_f32(self.scales, (0,), "scales"))
        else:
            if self.codes is None or self.values is not None:
                raise ValueError("a quantized tensor has codes and no values")
            m = self.rows if self.scale_mode == SCALE_PER_ROW else 1
            object.__setattr__(self, "codes", _as_i8(self.codes, shape, "codes"))
            scales = half_scales(_as_f32(self.scales, (m,), "scales"))
            object.__setattr__(self, "scales", scales)

    @classmethod
    def quantized(
        cls, codes: npt.ArrayLike, scales: npt.ArrayLike, bits: int, *, per_row: bool | None = None
    ) -> Tensor:
        """A quantized tensor from 2-D codes and their scales: one per row, or one for the tensor.

        `per_row` defaults to "more than one scale given"; pass it for a one-row tensor.
        """
        c = np.asarray(codes)
        if c.ndim != 2:
            raise ValueError("codes must be 2-D (rows, cols)")
        s = np.atleast_1d(np.asarray(scales, dtype=np.float32)).reshape(-1)
        if per_row is None:
            per_row = s.size != 1
        mode = SCALE_PER_ROW if per_row else SCALE_PER_TENSOR
        return cls(bits, mode, int(c.shape[0]), int(c.shape[1]), s, codes=c)

    @classmethod
    def float32(cls, values: npt.ArrayLike) -> Tensor:
        """A float32 tensor from 2-D values."""
        v = np.asarray(values, dtype=np.float32)
        if v.ndim != 2:
            raise ValueError("values must be 2-D (rows, cols)")
        return cls(
            FLOAT_BITS, 0, int(v.shape[0]), int(v.shape[1]), np.zeros(0, np.float32), values=v
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def dequantized(self) -> F32:
        """The values it stands for, (rows, cols) float32: codes * scale computed in float32."""
        if self.values is not None:
            return self.values.copy()
        assert self.codes is not None
        codes = self.codes.astype(np.float32)
        scales = self.scales[:, None] if self.scale_mode == SCALE_PER_ROW else self.scales[:1, None]
        out: F32 = np.multiply(codes, scales, dtype=np.float32)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        if (self.bits, self.scale_mode, self.rows, self.cols) != (
            other.bits,
            other.scale_mode,
            other.rows,
            other.cols,
        ):
            return False

        def same(a: npt.NDArray[Any] | None, b: npt.NDArray[Any] | None) -> bool:
            if a is None or b is None:
                return a is None and b is None
            return bool(np.array_equal(a, b))

        return (
            same(self.scales, other.scales)
            and same(self.codes, other.codes)
            and same(self.values, other.values)
        )

    __hash__ = None  # type: ignore[assignment]
