"""The secure-aggregation parts of the wire (docs/WIRE.md, "Secure aggregation"): the section a
MASKED GLOBAL carries, the masked delta of a MASKED UPDATE, and the UNMASK and REVEAL frames.

A masked delta is rows x cols unsigned b-bit values (9 <= b <= 32), packed LSB-first like the
codes of a tensor; what they mean (codes plus pairwise masks modulo 2^b) is the protocol's
business (tinyfl.strategy.secagg), not the codec's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinyfl.errors import WireError
from tinyfl.wire.fields import Reader, Writer, check_float

__all__ = [
    "MAX_MASK_BITS",
    "MAX_NOISE_VAR",
    "MIN_MASK_BITS",
    "ROUND_SEED_LEN",
    "Masked",
    "Reveal",
    "SecAgg",
    "Unmask",
    "pack_bits",
    "unpack_bits",
]

MIN_MASK_BITS = 9  # 8-bit codes of two nodes already need 9
MAX_MASK_BITS = 32
ROUND_SEED_LEN = 32
MAX_NOISE_VAR = 1 << 24  # a node's discrete Gaussian parameter sigma^2, in code units squared

U32 = npt.NDArray[np.uint32]


def pack_bits(values: npt.ArrayLike, bits: int) -> bytes:
    """Unsigned `bits`-bit values, LSB-first: value i takes bits i*bits .. of the stream."""
    v = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
    if v.size and int(v.max()) >> bits:
        raise WireError("bad_value", f"a masked value does not fit {bits} bits")
    as_bits = np.unpackbits(v.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1,
                            bitorder="little")[:, :bits]
    return np.packbits(as_bits.reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes, n: int, bits: int) -> tuple[U32, bool]:
    """The first n values and whether the bits after them (the last byte's padding) are 0."""
    stream = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    used = stream[: n * bits].reshape(n, bits)
    weights = np.left_shift(np.uint64(1), np.arange(bits, dtype=np.uint64))
    values = (used.astype(np.uint64) * weights).sum(axis=1).astype(np.uint32)
    return values, not stream[n * bits :].any()


@dataclass(frozen=True)
class SecAgg:
    """What a MASKED GLOBAL adds: the modulus bits, the unmasking threshold, the common scale,
    and the parameter sigma^2 of the discrete Gaussian noise each node adds to its codes
    (--dp distributed; 0: no noise)."""

    mask_bits: int
    threshold: int
    scale: float
    noise_var: int = 0

    def check(self, n_selected: int) -> None:
        if n_selected < 2:
            raise WireError("bad_value", "a secure-aggregation round selects at least 2 nodes")
        if not MIN_MASK_BITS <= self.mask_bits <= MAX_MASK_BITS:
            raise WireError("bad_value", f"mask_bits is {self.mask_bits}, must be 9..32")
        if not 2 <= self.threshold <= n_selected:
            raise WireError("bad_value", f"threshold is {self.threshold}, must be 2..{n_selected}")
        check_float(self.scale, "scale", positive=True)
        if not 0 <= self.noise_var <= MAX_NOISE_VAR:
            raise WireError("bad_value", f"noise_var is {self.noise_var}, must be 0..2^24")


def read_secagg(r: Reader, n_selected: int) -> SecAgg:
    bits = r.u8("mask_bits")
    if r.u8("reserved") != 0:
        raise WireError("bad_value", "reserved field is not 0")
    s = SecAgg(bits, r.u16("threshold"), r.f32("scale"), r.u32("noise_var"))
    s.check(n_selected)
    return s


def write_secagg(w: Writer, s: SecAgg) -> None:
    w.pack("BBHfI", s.mask_bits, 0, s.threshold, s.scale, s.noise_var, what="secagg")


@dataclass(frozen=True, eq=False)
class Masked:
    """A masked delta: rows x cols values modulo 2^bits (uint32, row-major)."""

    bits: int
    values: U32

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.values.shape
        return int(rows), int(cols)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Masked):
            return NotImplemented
        return self.bits == other.bits and np.array_equal(self.values, other.values)

    __hash__ = None  # type: ignore[assignment]


def read_masked(r: Reader) -> Masked:
    bits = r.u8("delta.bits")
    if not MIN_MASK_BITS <= bits <= MAX_MASK_BITS:
        raise WireError("bad_value", f"delta.bits is {bits}, a masked delta has 9..32")
    rows, cols = r.u16("delta.rows"), r.u16("delta.cols")
    n = rows * cols
    data = r.take((n * bits + 7) // 8, "delta.data")
    values, clean = unpack_bits(data, n, bits)
    if not clean:
        raise WireError("bad_value", "delta: padding bits are not zero")
    return Masked(bits, values.reshape(rows, cols))


def write_masked(w: Writer, m: Masked) -> None:
    if not MIN_MASK_BITS <= m.bits <= MAX_MASK_BITS:
        raise WireError("bad_value", f"delta.bits is {m.bits}, a masked delta has 9..32")
    rows, cols = m.shape
    w.pack("BHH", m.bits, rows, cols, what="delta")
    w.raw(pack_bits(m.values, m.bits))


@dataclass(frozen=True)
class Unmask:
    """The coordinator asks a round's survivors for the masks they share with dropped nodes."""

    round_id: int
    n_survivors: int
    dropped: tuple[str, ...]


def read_unmask(r: Reader) -> Unmask:
    round_id = r.u32("round_id")
    survivors = r.u16("n_survivors")
    n = r.u16("n_dropped")
    if round_id == 0 or survivors == 0 or n == 0:
        raise WireError("bad_value", "round_id, n_survivors and n_dropped must be >= 1")
    dropped = tuple(r.node_id(f"dropped[{i}]") for i in range(n))
    r.finish("UNMASK")
    return Unmask(round_id, survivors, dropped)


def write_unmask(w: Writer, u: Unmask) -> None:
    w.pack("IHH", u.round_id, u.n_survivors, len(u.dropped), what="UNMASK")
    for i, node_id in enumerate(u.dropped):
        w.node_id(node_id, f"dropped[{i}]")


@dataclass(frozen=True, repr=False)
class Reveal:
    """A survivor's round seeds shared with the dropped peers it was asked about. A round seed
    unmasks that pair in that round only (docs/PRIVACY.md)."""

    round_id: int
    seeds: tuple[tuple[str, bytes], ...]

    def __repr__(self) -> str:
        return f"Reveal({self.round_id}, {[peer for peer, _ in self.seeds]})"


def read_reveal(r: Reader) -> Reveal:
    round_id = r.u32("round_id")
    n = r.u16("n")
    if round_id == 0 or n == 0:
        raise WireError("bad_value", "round_id and n must be >= 1")
    seeds = tuple((r.node_id(f"peer[{i}]"), r.take(ROUND_SEED_LEN, f"seed[{i}]")) for i in range(n))
    r.finish("REVEAL")
    return Reveal(round_id, seeds)


def write_reveal(w: Writer, v: Reveal) -> None:
    w.pack("IH", v.round_id, len(v.seeds), what="REVEAL")
    for i, (peer, seed) in enumerate(v.seeds):
        w.node_id(peer, f"peer[{i}]")
        if len(seed) != ROUND_SEED_LEN:
            raise WireError("bad_value", f"seed[{i}] must be {ROUND_SEED_LEN} bytes")
        w.raw(seed)
