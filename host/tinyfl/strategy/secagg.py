"""Secure aggregation with pairwise masks (docs/PRIVACY.md; bytes in docs/WIRE.md), as pure
functions: what a node adds to its codes, and how the coordinator turns the masked updates of a
round's survivors (plus the round seeds they reveal for dropped peers) into the exact integer
sum of their codes.

The pairwise masking and its dropout recovery follow Bonawitz et al., "Practical Secure
Aggregation for Privacy-Preserving Machine Learning", CCS 2017, with the pairwise seeds dealt by
provisioning instead of agreed by Diffie-Hellman, and without the self-masks (see PRIVACY.md for
what that costs). Arithmetic is modulo 2^b: with every code in [-qmax, qmax] and n summands the
sum lies in [-n qmax, n qmax], which b bits hold exactly when 2^b > 2 n qmax.

Masks: r_uv = HKDF-Expand(s_uv, "tinyfl round" | u32 round, 32) is a pair's seed for one round
(what a survivor reveals for a dropped peer: it unmasks nothing in any other round), and
m_uv = HKDF-Expand(r_uv, "tinyfl mask" | u16 chunk, ...) read as n little-endian w-byte words
mod 2^b, w = ceil(b / 8), in chunks of 8160 bytes. Node u adds m_uv for every selected v with u < v and subtracts it for v < u
(ids compared as bytes), so the masks cancel in the sum over all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from tinyfl.crypto import hkdf_expand

__all__ = [
    "ROUND_INFO",
    "add_masks",
    "mask_bits_for",
    "mask_vector",
    "masked_sum",
    "round_seed",
    "signed_sum",
    "to_modular",
    "unmask_correction",
]

ROUND_INFO = b"tinyfl round"
MASK_INFO = b"tinyfl mask"
CHUNK = 255 * 32  # HKDF-Expand's most bytes per info string
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


def mask_bits_for(qmax: int, n_summands: int) -> int:
    """The fewest bits b (at least 9) with 2^b > 2 * n * qmax: sums of n codes are exact."""
    return max(9, math.ceil(math.log2(2 * n_summands * qmax + 1)))


def round_seed(pair_seed: bytes, round_id: int) -> bytes:
    """The pair's 32-byte seed for one round (what REVEAL carries)."""
    return hkdf_expand(pair_seed, ROUND_INFO + round_id.to_bytes(4, "little"), 32)


def mask_vector(seed_of_round: bytes, n: int, bits: int) -> U32:
    """n mask values modulo 2^bits from a pair's round seed."""
    width = (bits + 7) // 8
    # HKDF-Expand gives at most 8160 bytes per info string: longer masks chain chunks with a
    # u16 index after the label (docs/WIRE.md)
    need, chunks = n * width, []
    for c in range(-(-need // CHUNK)):
        chunks.append(hkdf_expand(seed_of_round, MASK_INFO + c.to_bytes(2, "little"),
                                  min(CHUNK, need - c * CHUNK)))
    raw = np.frombuffer(b"".join(chunks), np.uint8)
    words = raw.reshape(n, width).astype(np.uint64) << (8 * np.arange(width, dtype=np.uint64))
    out: U32 = (words.sum(axis=1) & np.uint64((1 << bits) - 1)).astype(np.uint32)
    return out


def to_modular(codes: npt.ArrayLike, bits: int) -> U32:
    """Signed integers as their two's complement modulo 2^bits."""
    c = np.asarray(codes, dtype=np.int64)
    return (c & ((1 << bits) - 1)).astype(np.uint32)


def add_masks(codes: npt.ArrayLike, node_id: str, peer_seeds: Mapping[str, bytes],
              selected: Iterable[str], round_id: int, bits: int) -> U32:
    """What node `node_id` sends: its codes plus its pairwise masks with every other selected
    node, modulo 2^bits. `peer_seeds[v]` is s_uv; a missing seed is a KeyError (the node cannot
    take part)."""
    c = np.asarray(codes)
    acc = to_modular(c, bits).reshape(-1).astype(np.int64)
    me = node_id.encode()
    for peer in selected:
        if peer == node_id:
            continue
        m = mask_vector(round_seed(peer_seeds[peer], round_id), acc.size, bits).astype(np.int64)
        acc = acc + m if me < peer.encode() else acc - m
    return to_modular(acc, bits).reshape(c.shape)


def unmask_correction(survivor: str, dropped: str, seed_of_round: bytes, n: int,
                      bits: int) -> U32:
    """What to subtract from the survivors' sum for the mask `survivor` shares with `dropped`
    (which `survivor` added and `dropped`, absent, never cancelled)."""
    m = mask_vector(seed_of_round, n, bits).astype(np.int64)
    added = m if survivor.encode() < dropped.encode() else -m
    return to_modular(added, bits)


def masked_sum(masked: Iterable[npt.ArrayLike], corrections: Iterable[npt.ArrayLike],
               bits: int) -> U32:
    """Sum of the survivors' masked values minus the corrections, modulo 2^bits."""
    total: I64 | None = None
    for y in list(masked) + [-np.asarray(c, np.int64) for c in corrections]:
        part = np.asarray(y, dtype=np.int64)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no masked update to sum")
    return to_modular(total, bits)


def signed_sum(modular: npt.ArrayLike, bits: int) -> I64:
    """A sum modulo 2^bits back to the signed integer it stands for (|sum| < 2^(bits-1))."""
    v = np.asarray(modular, dtype=np.int64)
    half = 1 << (bits - 1)
    return np.where(v >= half, v - (1 << bits), v)
