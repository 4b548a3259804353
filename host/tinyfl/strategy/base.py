"""What every strategy shares: the inputs it accepts, the result it returns, input validation.

A strategy is a pure function of (global head, client updates, optimizer state) -> (new head, new
state). Nothing is mutated and nothing is remembered between calls, so the round engine can
checkpoint the state, crash, reload it and get the same next head bit for bit
(`tinyfl coordinate --resume`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from tinyfl.errors import TinyFLError, UsageError

__all__ = [
    "Aggregate",
    "AggregationError",
    "ClientResult",
    "ClientUpdate",
    "Head",
    "State",
    "StateValue",
    "Strategy",
]

Head = NDArray[np.float32]
"""A global head: float32 (k, d + 1), row j = weights of class j with the bias last (WIRE.md)."""

StateValue = NDArray[Any] | float | int
State = Mapping[str, StateValue]
"""Server optimizer state: names to numpy arrays or scalars, so a checkpoint can store it with
`np.savez` and hand it back as loaded (0-d arrays are accepted where a scalar is expected)."""


class AggregationError(TinyFLError):
    """The updates (or the optimizer state) cannot be aggregated: no updates, a delta whose shape
    differs from the global head, a non-finite value, a sample count that is not a positive
    integer, or a state that does not belong to this strategy and head.

    Raised before any arithmetic, so a bad round never produces a half-updated head.
    """


@runtime_checkable
class ClientUpdate(Protocol):
    """One node's contribution to a round, already dequantized.

    Any object with these two attributes works (e.g. the coordinator's decoded updates).
    """

    @property
    def delta(self) -> NDArray[Any]:
        """Trained head minus the global head the round started from, float (k, d + 1)."""
        ...

    @property
    def n_samples(self) -> int:
        """Samples the node trained on; FedAvg's weight."""
        ...


@dataclass(frozen=True)
class ClientResult:
    """The plain implementation of `ClientUpdate`."""

    delta: NDArray[Any]
    n_samples: int


class Aggregate(NamedTuple):
    """A strategy's answer: the new global head (float32), the state to pass to the next round,
    and a few numbers worth logging (e.g. how many updates norm bounding clipped)."""

    head: Head
    state: dict[str, StateValue]
    info: dict[str, float]


@runtime_checkable
class Strategy(Protocol):
    """The interface of every aggregation strategy (see `STRATEGIES`)."""

    name: ClassVar[str]

    @property
    def prox_mu(self) -> float:
        """The FedProx proximal weight the nodes use (GLOBAL's `prox_mu`); 0 = plain local SGD."""
        ...

    def init_state(self, head: NDArray[Any]) -> dict[str, StateValue]:
        """The optimizer state before the first round ({} for stateless strategies)."""
        ...

    def aggregate(
        self,
        head: NDArray[Any],
        updates: Sequence[ClientUpdate],
        state: State | None = None,
    ) -> Aggregate:
        """New global head from the current one and this round's updates; `state=None` means
        `init_state(head)`."""
        ...


class Stateless:
    """For strategies with no server state and no node-side FedProx term."""

    @property
    def prox_mu(self) -> float:
        return 0.0

    def init_state(self, head: NDArray[Any]) -> dict[str, StateValue]:
        check_head(head)
        return {}


@dataclass(frozen=True)
class Checked:
    """Validated inputs in float64: head (k, d+1), deltas (n, k, d+1), weights (n,) summing to 1.

    float64 for the arithmetic so the only rounding that matters is the final cast to float32.
    """

    head: NDArray[np.float64]
    deltas: NDArray[np.float64]
    samples: tuple[int, ...]
    weights: NDArray[np.float64] = field(repr=False)


def check_head(head: object) -> NDArray[np.float64]:
    """The head as float64, or AggregationError if it is not a finite 2-D float array."""
    if not isinstance(head, np.ndarray):
        raise AggregationError(f"global head must be a numpy array, got {type(head).__name__}")
    if head.ndim != 2 or head.shape[0] < 1 or head.shape[1] < 1:
        raise AggregationError(f"global head must be a non-empty (k, d+1) matrix, got {head.shape}")
    if not np.issubdtype(head.dtype, np.floating):
        raise AggregationError(f"global head must hold floats, got dtype {head.dtype}")
    if not np.all(np.isfinite(head)):
        raise AggregationError("global head holds non-finite values")
    return head.astype(np.float64)


def check_inputs(head: object, updates: Sequence[ClientUpdate]) -> Checked:
    """Validate everything before computing anything (see AggregationError)."""
    base = check_head(head)
    if len(updates) == 0:
        raise AggregationError("no client updates to aggregate")
    deltas = np.empty((len(updates), *base.shape), dtype=np.float64)
    samples: list[int] = []
    for index, update in enumerate(updates):
        delta = getattr(update, "delta", None)
        n = getattr(update, "n_samples", None)
        where = f"update {index}"
        if not isinstance(delta, np.ndarray):
            raise AggregationError(
                f"{where}: delta must be a numpy array, got {type(delta).__name__}"
            )
        if delta.shape != base.shape:
            raise AggregationError(
                f"{where}: delta shape {delta.shape} differs from the global head {base.shape}"
            )
        if not np.issubdtype(delta.dtype, np.floating):
            raise AggregationError(f"{where}: delta must hold floats, got dtype {delta.dtype}")
        if not np.all(np.isfinite(delta)):
            raise AggregationError(f"{where}: delta holds non-finite values")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 1:
            raise AggregationError(f"{where}: n_samples must be a positive integer, got {n!r}")
        deltas[index] = delta
        samples.append(int(n))
    total = sum(samples)  # Python ints: exact, however large the fleet
    weights = np.array([s / total for s in samples], dtype=np.float64)
    return Checked(base, deltas, tuple(samples), weights)


def finish(head: NDArray[np.float64], step: NDArray[np.float64]) -> Head:
    """head + step, rounded once to float32; AggregationError if the result overflowed."""
    new = (head + step).astype(np.float32)
    if not np.all(np.isfinite(new)):
        raise AggregationError("aggregation overflowed float32; the updates are far too large")
    return new


def state_array(
    state: State, key: str, shape: tuple[int, ...], strategy: str
) -> NDArray[np.float64]:
    """`state[key]` as a finite float64 array of `shape`, or AggregationError naming the problem."""
    if key not in state:
        raise AggregationError(f"{strategy} state has no {key!r} (state from another strategy?)")
    value = np.asarray(state[key])
    if value.shape != shape:
        raise AggregationError(
            f"{strategy} state {key!r} has shape {value.shape}, the global head {shape}"
        )
    if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
        raise AggregationError(f"{strategy} state {key!r} must be finite floats")
    return value.astype(np.float64)


def state_int(state: State, key: str, strategy: str) -> int:
    """`state[key]` as a non-negative int (a Python int or a 0-d array from a checkpoint)."""
    if key not in state:
        raise AggregationError(f"{strategy} state has no {key!r} (state from another strategy?)")
    value = np.asarray(state[key])
    if value.shape != () or not np.issubdtype(value.dtype, np.integer) or int(value) < 0:
        raise AggregationError(f"{strategy} state {key!r} must be a non-negative integer")
    return int(value)


def check_param(
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A strategy hyperparameter as float within bounds, or UsageError (it came from the user)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name} must be a number, got {value!r}")
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not math.isfinite(number) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise UsageError(
            f"{name} must be finite and in {left}{low:g}, {high:g}{right}, got {value!r}"
        )
    return number
