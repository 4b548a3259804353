"""The round PRNG of docs/WIRE.md ("PRNG and stochastic rounding"), bit for bit as the firmware.

Why a mirror: the coordinator and simulated nodes must draw exactly the numbers a node draws, so
that a node's shuffles and stochastic rounding can be replayed from (seed, node_id, round_id) and
simulated fleets behave like real ones. `firmware/lib/tinyfl/include/tinyfl/rng.h` is the other
implementation; both are checked against `testvectors/quant/rng.bin`.

xorshift32 is a linear map over GF(2)^32, so `T^m` is a 32x32 bit matrix; `Xorshift32.next_array`
uses that to produce n consecutive outputs with O(log n) vectorized steps instead of a Python loop
per draw, and stays bit-identical to calling `next()` n times.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "GOLDEN32",
    "Xorshift32",
    "fnv1a32",
    "mix32",
    "round_rng",
    "shuffle",
    "uniform01",
]

U32 = npt.NDArray[np.uint32]
F32 = npt.NDArray[np.float32]

_M32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9
_TWO_M24 = np.float32(2.0**-24)


def mix32(x: int) -> int:
    """MurmurHash3's 32-bit finalizer: nearby seeds (round 7, round 8) start unrelated streams."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _M32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _M32
    x ^= x >> 16
    return x


def fnv1a32(data: bytes | str) -> int:
    """FNV-1a (32 bits) of bytes, or of a str's ASCII bytes: turns a node id into a seed word."""
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    h = 0x811C9DC5
    for byte in raw:
        h ^= byte
        h = (h * 0x01000193) & _M32
    return h


def _step(x: int) -> int:
    x ^= (x << 13) & _M32
    x ^= x >> 17
    x ^= (x << 5) & _M32
    return x


def _tables(cols: U32) -> U32:
    """Lookup tables of the GF(2)-linear map with column images `cols` (cols[b] = map(1 << b)):
    for each byte position p, table[p, byte] is the XOR of the images of the byte's set bits."""
    tables = np.zeros((4, 256), dtype=np.uint32)
    for p in range(4):
        table = np.zeros(1, dtype=np.uint32)
        for b in range(8):
            table = np.concatenate([table, table ^ cols[8 * p + b]])
        tables[p] = table
    return tables


def _apply(tables: U32, v: U32) -> U32:
    """The map of `tables` applied to every value of v: four lookups and three XORs each."""
    out: U32 = tables[0][v & np.uint32(0xFF)]
    for p in range(1, 4):
        out = out ^ tables[p][(v >> np.uint32(8 * p)) & np.uint32(0xFF)]
    return out


@cache
def _jump(j: int) -> U32:
    """Tables of T^(2^j), T being one xorshift32 step (computed once per j, read-only after)."""
    if j == 0:
        cols = np.array([_step(1 << b) for b in range(32)], dtype=np.uint32)
    else:
        prev = _jump(j - 1)
        cols = _apply(prev, _apply(prev, _UNIT))  # T^(2^j) e_b = T^(2^(j-1)) T^(2^(j-1)) e_b
    tables = _tables(cols)
    tables.setflags(write=False)
    return tables


_UNIT = np.array([1 << b for b in range(32)], dtype=np.uint32)
_SCALAR_LIMIT = 64  # below this many draws a plain loop is faster than the table passes


class Xorshift32:
    """xorshift32 (13, 17, 5), as `tinyfl::Rng` on the node; a zero state becomes 1."""

    __slots__ = ("state",)

    def __init__(self, state: int) -> None:
        self.state = (int(state) & _M32) or 1

    def next(self) -> int:
        """Advances the state and returns it."""
        self.state = _step(self.state)
        return self.state

    def next_array(self, n: int) -> U32:
        """The next `n` outputs of next(), computed by doubling with jump matrices."""
        if n < 0:
            raise ValueError("n must be >= 0")
        out = np.empty(n, dtype=np.uint32)
        if n == 0:
            return out
        if n <= _SCALAR_LIMIT:
            x = self.state
            for i in range(n):
                x = _step(x)
                out[i] = x
            self.state = x
            return out
        out[0] = _step(self.state)
        m, j = 1, 0  # out[0:m] is known, m = 2^j
        while m < n:
            count = min(m, n - m)
            out[m : m + count] = _apply(_jump(j), out[:count])  # s_{m+i+1} = T^m s_{i+1}
            m, j = 2 * m, j + 1
        self.state = int(out[-1])
        return out

    def uniform01(self) -> float:
        """One uniform in [0, 1): (next() >> 8) * 2^-24, exactly the node's float32 value."""
        return float(np.float32(self.next() >> 8) * _TWO_M24)

    def uniform01_array(self, n: int) -> F32:
        """`n` uniforms in draw order, as float32 (the values the quantizer adds)."""
        out: F32 = (self.next_array(n) >> np.uint32(8)).astype(np.float32) * _TWO_M24
        return out


def uniform01(rng: Xorshift32, n: int) -> F32:
    """`n` uniforms from `rng` in draw order (functional spelling of `rng.uniform01_array(n)`)."""
    return rng.uniform01_array(n)


def round_rng(seed: int, node_id: str | bytes, round_id: int) -> Xorshift32:
    """The generator of node `node_id` in round `round_id`:
    mix32(seed ^ fnv1a32(node_id) ^ (round_id * 0x9E3779B9)), state 0 replaced by 1."""
    word = (int(seed) ^ fnv1a32(node_id) ^ (int(round_id) * GOLDEN32)) & _M32
    return Xorshift32(mix32(word))


def shuffle(idx: npt.ArrayLike, rng: Xorshift32) -> npt.NDArray[np.int64]:
    """Fisher-Yates from the last index down to 1, j = next() % (i + 1): returns a shuffled copy.

    Draws exactly len(idx) - 1 numbers (none for 0 or 1 items), like the node's `tinyfl::shuffle`.
    The draws are vectorized; only the swaps, which depend on each other, run in a loop.
    """
    out = np.array(idx, dtype=np.int64).reshape(-1)
    n = out.size
    if n <= 1:
        return out
    draws = rng.next_array(n - 1).astype(np.int64)  # used for i = n-1, n-2, ..., 1
    spans = np.arange(n, 1, -1, dtype=np.int64)  # i + 1 for those i
    js = (draws % spans).tolist()
    vals = out.tolist()
    for i, j in zip(range(n - 1, 0, -1), js):
        vals[i], vals[j] = vals[j], vals[i]
    return np.asarray(vals, dtype=np.int64)
