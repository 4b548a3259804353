"""Central differential privacy in the round engine: Poisson selection, the budget, the noise.

The math is `tinyfl.strategy.dp` (DP-FedAvg of McMahan et al., ICLR 2018, and dp-accounting's
RDP accountant); this module holds what a run carries from round to round and writes to disk:

* how many rounds were charged: a round is charged once its sample is drawn, whether it then
  closes or is skipped (whether it closes depends on who was drawn and who answered), at its end,
  so that a round interrupted by a crash, whose average was never released, is charged once,
  when the resumed run serves it,
* m, the fixed denominator: q times the eligible nodes when the first round started, recorded
  so that a resumed run divides by the same number,
* the noise key, 32 random bytes in `<run>/dp_noise.key` (0600), created with the run. The noise
  of round r is drawn from (key, r) only, so a resumed run adds exactly the noise an
  uninterrupted one adds; it is not derived from the run seed, which is public (config.json,
  and GLOBAL's seed field on the broker), because noise anyone can regenerate protects nothing.

Who is selected: every eligible node independently with probability q, from a Generator seeded
with (run seed, round). The selection is public anyway (GLOBAL lists the selected ids), so a
public seed costs nothing here; what the accountant needs is that the choice is independent of
the nodes' data, which it is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinyfl.errors import CheckpointError, UsageError
from tinyfl.files import atomic_write
from tinyfl.strategy import Strategy
from tinyfl.strategy.dp import (
    NOISE_KEY_BYTES,
    DpConfig,
    NoisyMean,
    noise_generator,
    noisy_mean,
)

__all__ = [
    "NOISE_KEY_NAME",
    "CentralPrivacy",
    "PrivacyState",
    "check_dp_strategy",
    "noise_key",
    "poisson_select",
]

NOISE_KEY_NAME = "dp_noise.key"
_POISSON_STREAM = 3  # selection.py uses streams 0 (fixed-size selection) and 1 (GLOBAL seeds)


# The strategies whose server step is a function of the average delta only: given DP-FedAvg's
# noisy average as their single input they stay DP (post-processing). Median, trimmed mean and
# norm bounding look at individual updates, which the noisy average no longer shows.
DP_STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadam")


def check_dp_strategy(strategy: Strategy) -> None:
    """UsageError unless `strategy` can take DP-FedAvg's noisy average as its only update."""
    if strategy.name not in DP_STRATEGIES:
        raise UsageError(f"--dp averages clipped updates with equal weights (DP-FedAvg); "
                         f"combine it with {', '.join(DP_STRATEGIES)}, not {strategy.name}")


def poisson_select(eligible: Iterable[str], q: float, seed: int, round_no: int) -> tuple[str, ...]:
    """Each of `eligible` independently with probability q, from a Generator seeded with
    (seed, round_no): sorted ids, possibly none. The pool is sorted first, so the order in
    which nodes announced themselves does not change who is drawn."""
    pool = sorted(set(eligible))
    if q >= 1.0:
        return tuple(pool)
    rng = np.random.default_rng([seed, _POISSON_STREAM, round_no])
    draws = rng.random(len(pool))
    return tuple(node for node, u in zip(pool, draws) if u < q)


def noise_key(run_dir: Path | None) -> bytes:
    """The run's noise key: read from `<run_dir>/dp_noise.key`, or created there (0600) the
    first time. Without a run folder, a fresh key that lives as long as the engine."""
    fresh = os.urandom(NOISE_KEY_BYTES)
    if run_dir is None:
        return fresh
    path = Path(run_dir) / NOISE_KEY_NAME
    if path.is_file():
        key = path.read_bytes()
        if len(key) != NOISE_KEY_BYTES:
            raise CheckpointError(f"{path} is not a {NOISE_KEY_BYTES}-byte noise key")
        return key
    atomic_write(path, fresh, durable=True, mode=0o600)
    return fresh


@dataclass
class PrivacyState:
    """What a checkpoint keeps of the privacy side: rounds charged and the denominator m."""

    charged: int = 0
    expected_clients: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"charged": self.charged, "expected_clients": self.expected_clients}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> PrivacyState:
        m = doc.get("expected_clients")
        return cls(int(doc.get("charged", 0)), None if m is None else float(m))


class CentralPrivacy:
    """A run's DP: selection, the budget check before a round, and in central mode the noisy
    average (`key`: the noise key; None in distributed mode, where the nodes add the noise)."""

    def __init__(self, config: DpConfig, key: bytes | None,
                 state: PrivacyState | None = None) -> None:
        self.config = config
        self.key = key
        self.state = state if state is not None else PrivacyState()

    @property
    def noise_multiplier(self) -> float | None:
        """z when the nodes add the noise (--dp distributed), None when the coordinator does."""
        return self.config.noise_multiplier if self.config.mode == "distributed" else None

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far (at the run's delta)."""
        return self.config.epsilon(self.state.charged)

    def stop_reason(self, round_no: int) -> str | None:
        """Why round `round_no` must not run (it would spend more than the budget), or None."""
        budget = self.config.epsilon_budget
        if budget is None:
            return None
        after = self.config.epsilon(self.state.charged + 1)
        if after <= budget:
            return None
        return (f"privacy budget: round {round_no} would bring epsilon to {after:.3f} at delta "
                f"{self.config.delta:g}, over the budget {budget:g} (spent: {self.epsilon:.3f})")

    def select(self, pool: Sequence[str], n_eligible: int, seed: int,
               round_no: int) -> tuple[str, ...]:
        """This round's Poisson sample; the first call fixes m = q * n_eligible."""
        if self.state.expected_clients is None:
            self.state.expected_clients = self.config.sampling * max(1, n_eligible)
        return poisson_select(pool, self.config.sampling, seed, round_no)

    def charge(self) -> None:
        self.state.charged += 1

    def release(self, round_no: int, deltas: Sequence[NDArray[Any]]) -> NoisyMean:
        """The round's noisy average of the clipped deltas (tinyfl.strategy.dp.noisy_mean)."""
        m = self.state.expected_clients
        if m is None or not math.isfinite(m):
            raise RuntimeError("release() before select(): the denominator is not fixed yet")
        if self.key is None:
            raise RuntimeError("release() without a noise key: the nodes add the noise")
        stacked = np.stack([np.asarray(d, dtype=np.float64) for d in deltas])
        return noisy_mean(stacked, self.config.clip_norm, self.config.noise_multiplier, m,
                          noise_generator(self.key, round_no))

    def record_fields(self) -> dict[str, Any]:
        """What every round record (metrics.jsonl) carries: epsilon spent after the round, at
        dp_delta, and the rounds charged so far."""
        return {"epsilon": self.epsilon, "dp_delta": self.config.delta,
                "dp_rounds": self.state.charged}
