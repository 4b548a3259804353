"""Aggregation strategies: pure numpy functions from (global head, client updates, state) to
(new global head, new state).

    from tinyfl.strategy import ClientResult, get_strategy

    strategy = get_strategy("fedadam", eta=0.01)
    state = strategy.init_state(head)
    result = strategy.aggregate(head, [ClientResult(delta, n_samples), ...], state)
    head, state = result.head, result.state

Updates are dequantized deltas (trained head minus the round's global head), float (k, d + 1).
Nothing is mutated and nothing is remembered between calls; the state is a dict of numpy arrays
and ints that a checkpoint can store as is. Invalid input raises AggregationError before any
arithmetic; invalid hyperparameters raise UsageError.
"""

from tinyfl.strategy.averaging import FedAdam, FedAvg, FedAvgM, FedProx, weighted_mean
from tinyfl.strategy.base import (
    Aggregate,
    AggregationError,
    ClientResult,
    ClientUpdate,
    Head,
    State,
    StateValue,
    Strategy,
)
from tinyfl.strategy.registry import STRATEGIES, get_strategy, parse_strategy_spec, strategy_params
from tinyfl.strategy.robust import (
    Median,
    NormBounded,
    TrimmedMean,
    clip_to_norm,
    coordinate_median,
    trimmed_mean,
)

__all__ = [
    "STRATEGIES",
    "Aggregate",
    "AggregationError",
    "ClientResult",
    "ClientUpdate",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "Head",
    "Median",
    "NormBounded",
    "State",
    "StateValue",
    "Strategy",
    "TrimmedMean",
    "clip_to_norm",
    "coordinate_median",
    "get_strategy",
    "parse_strategy_spec",
    "strategy_params",
    "trimmed_mean",
    "weighted_mean",
]
