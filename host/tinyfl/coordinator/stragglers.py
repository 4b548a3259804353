"""Straggler back-off: a selected node that sends no accepted update sits out the next rounds.

Why: a hung or very slow node selected every round makes every round wait its full deadline. After
its first miss a node is benched for `backoff` rounds, after the second in a row for 2 x backoff,
then 4 x, ... up to MAX_BENCH rounds; an accepted update clears its record. Benching never causes
a skip: when too few unbenched nodes are eligible for the quorum, the benched ones are selected
too. Pure functions over explicit state, checkpointed with the run (a resumed run selects as an
uninterrupted one would).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["MAX_BENCH", "Stragglers", "candidates", "record_round"]

MAX_BENCH = 16  # rounds
Stragglers = dict[str, tuple[int, int]]  # node -> (misses in a row, benched through round)


def candidates(eligible: Iterable[str], state: Mapping[str, tuple[int, int]], round_no: int,
               quorum: int) -> list[str]:
    """The eligible nodes to select from in round `round_no`: the unbenched ones, or every
    eligible node when the unbenched ones cannot make the quorum."""
    nodes = list(eligible)
    free = [n for n in nodes if state.get(n, (0, 0))[1] < round_no]
    return free if len(free) >= quorum else nodes


def record_round(state: Mapping[str, tuple[int, int]], round_no: int, missed: Iterable[str],
                 answered: Iterable[str], backoff: int) -> Stragglers:
    """The state after round `round_no`: the nodes that missed it benched, those that answered
    cleared."""
    out: Stragglers = dict(state)
    for node in answered:
        out.pop(node, None)
    if backoff <= 0:
        return out
    for node in missed:
        misses = out.get(node, (0, 0))[0] + 1
        out[node] = (misses, round_no + min(MAX_BENCH, backoff * 2 ** (misses - 1)))
    return out
