"""Aggregators that a few bad updates (faulty sensors, buggy or poisoned nodes) cannot drag far.

* Coordinate-wise median and trimmed mean: Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust
  Distributed Learning: Towards Optimal Statistical Rates", ICML 2018.
* Norm bounding: Sun, Kairouz, Suresh, McMahan, "Can You Really Backdoor Federated Learning?",
  arXiv:1911.07963, 2019 (clip each update's L2 norm, then average).

Median and trimmed mean weigh every node equally on purpose: sample counts are self-reported, and
a node that claims a million samples must not outvote the rest. Norm bounding keeps FedAvg's
sample weights (it bounds how far one update can pull, not how much it counts); combine it with
sample-count sanity checks in the coordinator if nodes may lie about their counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from tinyfl.errors import UsageError
from tinyfl.strategy.averaging import weighted_mean
from tinyfl.strategy.base import (
    Aggregate,
    AggregationError,
    ClientUpdate,
    State,
    Stateless,
    check_inputs,
    check_param,
    finish,
)

__all__ = [
    "Median",
    "NormBounded",
    "TrimmedMean",
    "clip_to_norm",
    "coordinate_median",
    "trim_count",
    "trimmed_mean",
]


def coordinate_median(deltas: NDArray[np.float64]) -> NDArray[np.float64]:
    """Median of each coordinate over the first axis (mean of the middle two for an even count)."""
    return np.median(deltas, axis=0)


def trim_count(n: int, beta: float) -> int:
    """How many values trimmed_mean drops from each side: floor(beta * n)."""
    return math.floor(beta * n)


def trimmed_mean(deltas: NDArray[np.float64], beta: float) -> NDArray[np.float64]:
    """Per coordinate: drop the floor(beta * n) largest and smallest values, average the rest.

    AggregationError if nothing would be left (too few updates for this beta).
    """
    n = deltas.shape[0]
    k = trim_count(n, beta)
    if n - 2 * k < 1:
        raise AggregationError(f"trimmed mean with beta={beta:g} leaves no value of {n} updates")
    ordered = np.sort(deltas, axis=0)
    kept: NDArray[np.float64] = ordered[k : n - k].mean(axis=0)
    return kept


def clip_to_norm(
    deltas: NDArray[np.float64], bound: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Scale each delta by min(1, bound / ||delta||_2) (Frobenius norm of the whole head).

    Returns the clipped deltas and which of them were scaled down.
    """
    norms = np.sqrt(np.sum(np.square(deltas), axis=(1, 2)))
    clipped = norms > bound
    scale = np.ones_like(norms)
    scale[clipped] = bound / norms[clipped]
    return deltas * scale[:, None, None], clipped


@dataclass(frozen=True)
class Median(Stateless):
    """Coordinate-wise median (Yin et al. 2018): each weight moves by the median of the nodes'
    deltas for it, so fewer than half of the nodes cannot move it beyond the honest range."""

    name: ClassVar[str] = "median"

    def aggregate(
        self, head: NDArray[Any], updates: Sequence[ClientUpdate], state: State | None = None
    ) -> Aggregate:
        checked = check_inputs(head, updates)
        return Aggregate(finish(checked.head, coordinate_median(checked.deltas)), {}, {})


@dataclass(frozen=True)
class TrimmedMean(Stateless):
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the floor(beta * n) largest and
    smallest values of each coordinate, average the rest. Tolerates up to that many bad nodes
    per side while averaging (less noisy than the median) over the honest middle."""

    beta: float = 0.1
    name: ClassVar[str] = "trimmed-mean"

    def __post_init__(self) -> None:
        check_param("trimmed-mean beta", self.beta, low=0.0, high=0.5, high_open=True)

    def aggregate(
        self, head: NDArray[Any], updates: Sequence[ClientUpdate], state: State | None = None
    ) -> Aggregate:
        checked = check_inputs(head, updates)
        step = trimmed_mean(checked.deltas, self.beta)
        trimmed = trim_count(len(updates), self.beta)
        return Aggregate(finish(checked.head, step), {}, {"trimmed_per_side": float(trimmed)})


@dataclass(frozen=True)
class NormBounded(Stateless):
    """Norm-bounded averaging (Sun et al. 2019): clip each update to L2 norm `bound`, then take
    FedAvg's sample-weighted mean. An oversized (e.g. boosted, backdoored) update then counts no
    more than an ordinary one.

    `bound` is a fixed norm (> 0) or "median": the median of this round's update norms, which
    adapts to the current scale of learning and which fewer than half of the nodes cannot inflate.
    info: {"bound": the bound used, "clipped": how many updates were scaled down}.
    """

    bound: float | str = "median"
    name: ClassVar[str] = "norm-bounded"

    def __post_init__(self) -> None:
        if isinstance(self.bound, str):
            if self.bound != "median":
                raise UsageError(
                    f"norm-bounded bound must be a number > 0 or 'median', got {self.bound!r}"
                )
        else:
            check_param("norm-bounded bound", self.bound, low=0.0, low_open=True)

    def aggregate(
        self, head: NDArray[Any], updates: Sequence[ClientUpdate], state: State | None = None
    ) -> Aggregate:
        checked = check_inputs(head, updates)
        if isinstance(self.bound, str):
            norms = np.sqrt(np.sum(np.square(checked.deltas), axis=(1, 2)))
            bound = float(np.median(norms))
        else:
            bound = float(self.bound)
        deltas, clipped = clip_to_norm(checked.deltas, bound)
        step = weighted_mean(deltas, checked.weights)
        info = {"bound": bound, "clipped": float(np.count_nonzero(clipped))}
        return Aggregate(finish(checked.head, step), {}, info)
