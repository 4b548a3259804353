"""The pieces every frame body is made of (docs/WIRE.md, "Common fields"): a bounds-checked
reader that raises WireError with the firmware's status name, a writer, and the tensor layout."""

from __future__ import annotations

import math
import struct

import numpy as np

from tinyfl.errors import WireError
from tinyfl.wire.tensor import (
    FLOAT_BITS,
    QUANT_BITS,
    SCALE_PER_ROW,
    Tensor,
    half_scales,
    pack_codes,
    packed_size,
    to_signed,
    unpack_fields,
)

__all__ = ["MODEL_HASH_LEN", "Reader", "Writer", "check_float", "f16_saturated",
           "is_valid_node_id", "read_tensor", "write_tensor"]

MODEL_HASH_LEN = 8
MAX_NODE_ID = 32
_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def is_valid_node_id(node_id: str | bytes) -> bool:
    """1..32 bytes of [A-Za-z0-9_-]."""
    raw = node_id.encode("utf-8", "replace") if isinstance(node_id, str) else node_id
    return 1 <= len(raw) <= MAX_NODE_ID and all(c in _ID_CHARS for c in raw)


class Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self._data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise WireError("truncated", f"{what}: needs {n} bytes, {self.remaining()} left")
        out = self._data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")

    def f32(self, what: str) -> float:
        return float(struct.unpack("<f", self.take(4, what))[0])

    def f16(self, what: str) -> float:
        return float(struct.unpack("<e", self.take(2, what))[0])

    def node_id(self, what: str) -> str:
        n = self.u8(what)
        raw = self.take(n, what)
        if not is_valid_node_id(raw):
            raise WireError("bad_value", f"{what}: {raw!r} is not 1..32 of [A-Za-z0-9_-]")
        return raw.decode("ascii")

    def finish(self, what: str) -> None:
        if self.remaining():
            raise WireError("bad_length", f"{what}: {self.remaining()} bytes left over")


def check_float(
    v: float, what: str, *, positive: bool = False, at_most: float | None = None
) -> None:
    if not math.isfinite(v):
        raise WireError("non_finite", f"{what} is {v}")
    if (v <= 0.0) if positive else (v < 0.0):
        raise WireError("bad_value", f"{what} is {v}, must be {'>' if positive else '>='} 0")
    if at_most is not None and v > at_most:
        raise WireError("bad_value", f"{what} is {v}, must be <= {at_most}")


def read_tensor(r: Reader, what: str, shape: tuple[int, int] | None = None) -> Tensor:
    bits = r.u8(f"{what}.bits")
    if bits not in QUANT_BITS and bits != FLOAT_BITS:
        raise WireError("bad_value", f"{what}.bits is {bits}")
    mode = r.u8(f"{what}.scale_mode")
    if mode > 1 or (bits == FLOAT_BITS and mode != 0):
        raise WireError("bad_value", f"{what}.scale_mode is {mode} with bits {bits}")
    rows = r.u16(f"{what}.rows")
    cols = r.u16(f"{what}.cols")
    if shape is not None and (rows, cols) != shape:
        raise WireError("bad_value", f"{what} is {rows}x{cols}, must be {shape[0]}x{shape[1]}")
    m = 0 if bits == FLOAT_BITS else (rows if mode == SCALE_PER_ROW else 1)
    scales = np.frombuffer(r.take(2 * m, f"{what}.scales"), dtype="<f2").astype(np.float32)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(scales) | (scales < 0)
    if bad.any():
        first = float(scales[int(np.argmax(bad))])
        check_float(first, f"{what}.scales")
    n = rows * cols
    data = r.take(packed_size(n, bits), f"{what}.data")
    if bits == FLOAT_BITS:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(rows, cols)
        if not np.isfinite(values).all():
            raise WireError("non_finite", f"{what} holds a NaN or Inf")
        return Tensor(bits, 0, rows, cols, scales, values=values)
    fields = unpack_fields(data, bits)
    if (fields[:n] == (1 << (bits - 1))).any():
        raise WireError("bad_value", f"{what} holds the invalid code {-(1 << (bits - 1))}")
    if fields[n:].any():
        raise WireError("bad_value", f"{what}: padding bits are not zero")
    codes = to_signed(fields[:n], bits).reshape(rows, cols)
    return Tensor(bits, mode, rows, cols, scales, codes=codes)


class Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def pack(self, fmt: str, *values: object, what: str) -> None:
        try:
            self.parts.append(struct.pack("<" + fmt, *values))
        except (struct.error, OverflowError) as exc:
            kind = "non_finite" if isinstance(exc, OverflowError) else "bad_value"
            raise WireError(kind, f"{what}: {exc}") from None

    def raw(self, b: bytes) -> None:
        self.parts.append(bytes(b))

    def node_id(self, node_id: str, what: str) -> None:
        raw = node_id.encode("utf-8")
        self.pack("B", len(raw), what=what)
        self.raw(raw)

    def hash(self, h: bytes) -> None:
        if len(h) != MODEL_HASH_LEN:
            raise WireError("bad_value", f"model_hash must be {MODEL_HASH_LEN} bytes")
        self.raw(h)


def f16_saturated(x: float) -> float:
    """x as the binary16 an encoder sends: finite values beyond +-65504 become +-65504, then
    round to nearest even (NaN and Inf stay, for the decoder to refuse)."""
    return float(half_scales(np.float32(x)))


def write_tensor(w: Writer, t: Tensor, what: str) -> None:
    w.pack("BBHH", t.bits, t.scale_mode, t.rows, t.cols, what=what)
    w.raw(t.scales.astype("<f2").tobytes())  # binary16 values already (Tensor's invariant)
    if t.bits == FLOAT_BITS:
        assert t.values is not None
        w.raw(t.values.astype("<f4").tobytes())
        return
    if t.bits not in QUANT_BITS:
        raise WireError("bad_value", f"{what}.bits is {t.bits}")
    assert t.codes is not None
    limit = (1 << (t.bits - 1)) - 1
    if t.codes.size and (int(t.codes.min()) < -limit or int(t.codes.max()) > limit):
        raise WireError("bad_value", f"{what}: codes must lie in [-{limit}, {limit}]")
    w.raw(pack_codes(t.codes, t.bits))


