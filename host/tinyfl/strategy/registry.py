"""Strategies by name, for the command line (`--strategy fedadam:eta=0.01`) and checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tinyfl.errors import UsageError
from tinyfl.strategy.averaging import FedAdam, FedAvg, FedAvgM, FedProx
from tinyfl.strategy.base import Strategy
from tinyfl.strategy.robust import Median, NormBounded, TrimmedMean

__all__ = ["STRATEGIES", "get_strategy", "parse_strategy_spec", "strategy_params"]

STRATEGIES: Mapping[str, Callable[..., Strategy]] = MappingProxyType(
    {cls.name: cls for cls in (FedAvg, FedProx, FedAvgM, FedAdam, Median, TrimmedMean, NormBounded)}
)
"""Every strategy by name: fedavg, fedprox, fedavgm, fedadam, median, trimmed-mean, norm-bounded."""


def get_strategy(name: str, **params: Any) -> Strategy:
    """The strategy `name` with hyperparameters `params` (see each class for names and defaults).

    UsageError for an unknown name, an unknown parameter or an out-of-range value.
    """
    factory = STRATEGIES.get(name.strip().lower())
    if factory is None:
        raise UsageError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    try:
        return factory(**params)
    except TypeError as exc:  # unexpected keyword: list what the strategy does take
        fields = dataclasses.fields(factory)  # type: ignore[arg-type]
        accepted = ", ".join(f.name for f in fields) or "none"
        raise UsageError(f"strategy {name!r}: {exc}; its parameters: {accepted}") from None


def parse_strategy_spec(spec: str) -> Strategy:
    """`NAME` or `NAME:key=value,key=value` -> strategy; values are numbers except a few words
    (norm-bounded's `bound=median`). UsageError with the expected form otherwise."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise UsageError(
                f"bad strategy spec {spec!r}: expected NAME[:key=value,...], e.g. fedadam:eta=0.01"
            )
        params[key.strip()] = _number_or_word(raw.strip())
    return get_strategy(name, **params)


def strategy_params(strategy: Strategy) -> dict[str, Any]:
    """A strategy's hyperparameters for metrics and checkpoints: {"name": ..., **params}."""
    fields: dict[str, Any] = (
        dataclasses.asdict(strategy) if dataclasses.is_dataclass(strategy) else {}
    )
    return {"name": strategy.name, **fields}


def _number_or_word(raw: str) -> float | str:
    try:
        return float(raw)
    except ValueError:
        return raw
