"""Federated averaging and its server-optimizer variants.

* FedAvg: McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of
  Deep Networks from Decentralized Data", AISTATS 2017.
* FedProx: Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith, "Federated Optimization in Heterogeneous
  Networks", MLSys 2020.
* FedAvgM: Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for
  Federated Visual Classification", arXiv:1909.06335, 2019.
* FedAdam: Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
  Optimization", ICLR 2021 (Algorithm 2).

Sign convention: a node's delta is trained head minus global head, so it already points downhill
(it is the negative of the papers' "pseudo-gradient"); the server adds steps, it never subtracts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from tinyfl.strategy.base import (
    Aggregate,
    AggregationError,
    ClientUpdate,
    State,
    Stateless,
    StateValue,
    check_head,
    check_inputs,
    check_param,
    finish,
    state_array,
    state_int,
)

__all__ = ["FedAdam", "FedAvg", "FedAvgM", "FedProx", "weighted_mean"]


def weighted_mean(deltas: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """sum_i weights[i] * deltas[i] over the first axis (weights already normalized to sum 1)."""
    return np.tensordot(weights, deltas, axes=1)


@dataclass(frozen=True)
class FedAvg(Stateless):
    """FedAvg (McMahan et al. 2017): the new head is the head plus the mean of the deltas weighted
    by each node's sample count, so every training sample counts the same wherever it lives."""

    name: ClassVar[str] = "fedavg"

    def aggregate(
        self, head: NDArray[Any], updates: Sequence[ClientUpdate], state: State | None = None
    ) -> Aggregate:
        checked = check_inputs(head, updates)
        step = weighted_mean(checked.deltas, checked.weights)
        return Aggregate(finish(checked.head, step), {}, {})


@dataclass(frozen=True)
class FedProx:
    """FedProx (Li et al. 2020): FedAvg on the server; the difference is on the node, whose local
    loss gains `mu/2 ||W - W0||^2`, which keeps non-IID nodes from drifting far from the global
    head. `mu` reaches the nodes as GLOBAL's `prox_mu` (docs/WIRE.md)."""

    mu: float = 0.01
    name: ClassVar[str] = "fedprox"

    def __post_init__(self) -> None:
        check_param("fedprox mu", self.mu, low=0.0)

    @property
    def prox_mu(self) -> float:
        return float(self.mu)

    def init_state(self, head: NDArray[Any]) -> dict[str, StateValue]:
        return FedAvg().init_state(head)

    def aggregate(
        self, head: NDArray[Any], updates: Sequence[ClientUpdate], state: State | None = None
    ) -> Aggregate:
        return FedAvg().aggregate(head, updates, state)


@dataclass(frozen=True)
class FedAvgM:
    """FedAvgM (Hsu et al. 2019): FedAvg with server momentum,

        v <- momentum * v + mean_delta;   head <- head + server_lr * v

    Momentum smooths the direction across rounds, which helps most when each round sees a
    different, skewed subset of nodes. State: {"momentum": v}, zeros before the first round.
    The effective step is about server_lr / (1 - momentum); lower server_lr when raising momentum.
    """

    server_lr: float = 1.0
    momentum: float = 0.9
    name: ClassVar[str] = "fedavgm"

    def __post_init__(self) -> None:
        check_param("fedavgm server_lr", self.server_lr, low=0.0, low_open=True)
        check_param("fedavgm momentum", self.momentum, low=0.0, high=1.0, high_open=True)

    @property
    def prox_mu(self) -> float:
        return 0.0

    def init_state(self, head: NDArray[Any]) -> dict[str, StateValue]:
        return {"momentum": np.zeros(check_head(head).shape, dtype=np.float64)}

    def aggregate(
        self, head: NDArray[Any], updates: Sequence[ClientUpdate], state: State | None = None
    ) -> Aggregate:
        checked = check_inputs(head, updates)
        state = self.init_state(head) if state is None else state
        velocity = state_array(state, "momentum", checked.head.shape, self.name)
        velocity = self.momentum * velocity + weighted_mean(checked.deltas, checked.weights)
        new_head = finish(checked.head, self.server_lr * velocity)
        return Aggregate(new_head, {"momentum": velocity}, {})


@dataclass(frozen=True)
class FedAdam:
    """FedAdam (Reddi et al. 2021, Algorithm 2), per coordinate, with the sample-weighted mean
    delta D:

        m <- beta1 * m + (1 - beta1) * D
        v <- beta2 * v + (1 - beta2) * D^2
        head <- head + eta * m / (sqrt(v) + tau)

    As in the paper there is no bias correction; m starts at 0 and v at tau^2 (the paper's
    v_{-1} >= tau^2), and tau bounds the step where deltas are tiny. The paper weights clients
    equally; here D is weighted by samples, like FedAvg, so the strategies differ only in the
    server step. State: {"m", "v", "t"} with t the number of steps taken.
    """

    eta: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    name: ClassVar[str] = "fedadam"

    def __post_init__(self) -> None:
        check_param("fedadam eta", self.eta, low=0.0, low_open=True)
        check_param("fedadam beta1", self.beta1, low=0.0, high=1.0, high_open=True)
        check_param("fedadam beta2", self.beta2, low=0.0, high=1.0, high_open=True)
        check_param("fedadam tau", self.tau, low=0.0, low_open=True)

    @property
    def prox_mu(self) -> float:
        return 0.0

    def init_state(self, head: NDArray[Any]) -> dict[str, StateValue]:
        shape = check_head(head).shape
        return {
            "m": np.zeros(shape, dtype=np.float64),
            "v": np.full(shape, self.tau * self.tau, dtype=np.float64),
            "t": 0,
        }

    def aggregate(
        self, head: NDArray[Any], updates: Sequence[ClientUpdate], state: State | None = None
    ) -> Aggregate:
        checked = check_inputs(head, updates)
        state = self.init_state(head) if state is None else state
        shape = checked.head.shape
        m = state_array(state, "m", shape, self.name)
        v = state_array(state, "v", shape, self.name)
        t = state_int(state, "t", self.name)
        if np.any(v < 0):
            raise AggregationError(
                "fedadam state 'v' must be >= 0 (it is a running mean of squares)"
            )
        mean = weighted_mean(checked.deltas, checked.weights)
        m = self.beta1 * m + (1.0 - self.beta1) * mean
        v = self.beta2 * v + (1.0 - self.beta2) * np.square(mean)
        step = self.eta * m / (np.sqrt(v) + self.tau)
        return Aggregate(finish(checked.head, step), {"m": m, "v": v, "t": t + 1}, {})
