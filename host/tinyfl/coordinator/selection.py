"""Reproducible randomness of a round: which nodes train, and the seed the nodes draw from.

Every draw of round r comes from a generator seeded with (run seed, stream, r) and nothing else,
so the same seed gives the same selection and the same node randomness on every run, and a run
resumed from a checkpoint continues exactly as an uninterrupted one would (see checkpoint.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from tinyfl.rng import GOLDEN32

__all__ = ["global_seed", "round_seed", "round_size", "select_nodes"]

_SELECT_STREAM = 0
_SEED_STREAM = 1
_M32 = 0xFFFFFFFF


def select_nodes(eligible: Iterable[str], k: int, seed: int, round_no: int) -> tuple[str, ...]:
    """`k` distinct ids out of `eligible`, uniformly, from a numpy Generator seeded with
    (seed, round_no); all of them when k >= their number. Sorted, so the same choice always
    reads (and encodes) the same way. The pool is sorted first, so the order in which nodes
    announced themselves does not matter."""
    pool = sorted(set(eligible))
    if k < 0:
        raise ValueError("k must be >= 0")
    if k >= len(pool):
        return tuple(pool)
    rng = np.random.default_rng([seed, _SELECT_STREAM, round_no])
    chosen = rng.choice(len(pool), size=k, replace=False)
    return tuple(sorted(pool[int(i)] for i in chosen))


def round_size(
    n_eligible: int, clients_per_round: int | None, fraction: float | None, min_clients: int = 1
) -> int:
    """How many nodes to select: K, or ceil(F * eligible) but at least min_clients (a smaller
    sample could never reach quorum), or every eligible node when neither is given; never more
    than the eligible nodes."""
    if clients_per_round is not None:
        wanted = clients_per_round
    elif fraction is not None:
        wanted = max(min_clients, math.ceil(fraction * n_eligible))
    else:
        wanted = n_eligible
    return min(wanted, n_eligible)


def round_seed(seed: int, round_no: int) -> int:
    """The 32-bit seed of logical round `round_no`."""
    state = np.random.SeedSequence([seed, _SEED_STREAM, round_no]).generate_state(1, np.uint32)
    return int(state[0])


def global_seed(seed: int, round_no: int, wire_round: int) -> int:
    """The `seed` field of GLOBAL for logical round `round_no` sent as wire round `wire_round`.

    A node seeds its round generator with `mix32(seed ^ fnv1a32(id) ^ (round_id * 0x9E3779B9))`
    (docs/WIRE.md). Folding `wire_round * 0x9E3779B9` into the seed cancels the round id out of
    that formula, so what a node draws depends on (run seed, logical round, node id) only.
    Why: a resumed run must serve an interrupted round again under a *new* round id (nodes
    ignore ids they have served), and the nodes must still draw exactly the numbers of the
    uninterrupted run, or resuming would change the result.
    """
    return (round_seed(seed, round_no) ^ (wire_round * GOLDEN32)) & _M32
