"""What a run computes and how long it waits: one validated, immutable record.

Validation happens here, on construction, so the command line, a checkpoint being resumed and a
test building an engine all get the same UsageError for the same mistake, before any connection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tinyfl.errors import UsageError
from tinyfl.strategy.dp import DEFAULT_DELTA, DP_MODES, DpConfig, calibrate

__all__ = ["MAX_U32", "RESUME_LOCKED", "ROUND_ID_MARGIN", "EngineConfig"]

MAX_U32 = 0xFFFFFFFF
# How far a GLOBAL's round id may run ahead: of a node's last served id (the firmware's
# kRoundIdMargin) and of the coordinator's clock in seconds (docs/WIRE.md, "Round ids").
ROUND_ID_MARGIN = 1 << 22


@dataclass(frozen=True)
class EngineConfig:
    """Everything that decides what a run computes (and a few things that decide how long it
    waits). `clients_per_round` and `fraction` are exclusive; with neither, every eligible node
    trains. `wait_nodes` defaults to max(min_clients, clients_per_round)."""

    rounds: int = 10
    clients_per_round: int | None = None
    fraction: float | None = None
    min_clients: int = 1
    round_timeout: float = 60.0
    # at least this many seconds from one round's start to the next (0: back to back): paces a
    # fleet whose nodes collect data while it runs
    round_interval: float = 0.0
    epochs: int = 1
    batch_size: int = 16
    lr: float = 0.1
    clip_norm: float = 0.0
    uplink_bits: int = 8
    uplink_scale_mode: int = 1
    downlink_bits: int = 32
    seed: int = 0
    wait_nodes: int | None = None
    wait_timeout: float = 60.0
    initial_head: str = "zeros"  # zeros | init (the model folder's head_init.npy) | PATH.npy
    # rounds a selected node that sent no accepted update sits out, doubling with each miss in a
    # row (capped at STRAGGLER_MAX_BENCH); 0 = off. A hung node then costs one deadline, not one
    # per round.
    straggler_backoff: int = 1
    # secure aggregation (docs/PRIVACY.md): nodes mask their codes so that the coordinator
    # learns only the survivors' sum; the threshold defaults to a majority of the selected
    secure_agg: bool = False
    secure_agg_threshold: int | None = None
    # Differential privacy (docs/PRIVACY.md): "off", "central" (DP-FedAvg noise added by the
    # coordinator) or "distributed" (node-side noise under secure aggregation). With an epsilon
    # budget and no noise multiplier, the multiplier is calibrated to fit `rounds` rounds and
    # stored here, so config.json and the checkpoint hold the noise the run actually used.
    dp: str = "off"
    dp_noise_multiplier: float | None = None
    dp_epsilon: float | None = None
    dp_delta: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UsageError(message)

        need(self.rounds >= 1, f"--rounds must be >= 1, got {self.rounds}")
        need(
            self.clients_per_round is None or self.fraction is None,
            "give --clients-per-round or --fraction, not both",
        )
        if self.clients_per_round is not None:
            need(
                self.clients_per_round >= 1,
                f"--clients-per-round must be >= 1, got {self.clients_per_round}",
            )
            need(
                self.min_clients <= self.clients_per_round,
                f"--min-clients ({self.min_clients}) cannot exceed --clients-per-round "
                f"({self.clients_per_round})",
            )
        if self.fraction is not None:
            need(
                math.isfinite(self.fraction) and 0 < self.fraction <= 1,
                f"--fraction must be in (0, 1], got {self.fraction}",
            )
        need(self.min_clients >= 1, f"--min-clients must be >= 1, got {self.min_clients}")
        need(
            math.isfinite(self.round_timeout) and self.round_timeout > 0,
            f"--round-timeout must be > 0 seconds, got {self.round_timeout}",
        )
        need(
            math.isfinite(self.round_interval) and self.round_interval >= 0,
            f"--round-interval must be >= 0 seconds, got {self.round_interval}",
        )
        need(
            1 <= self.epochs <= 64, f"--epochs must be 1..64 (the wire's range), got {self.epochs}"
        )
        need(
            1 <= self.batch_size <= 1024,
            f"--batch-size must be 1..1024 (the wire's range), got {self.batch_size}",
        )
        need(math.isfinite(self.lr) and self.lr > 0, f"--lr must be > 0, got {self.lr}")
        need(
            math.isfinite(self.clip_norm) and self.clip_norm >= 0,
            f"--clip-norm must be >= 0 (0 = off), got {self.clip_norm}",
        )
        need(
            self.uplink_bits in (8, 4, 2, 32),
            f"--uplink-bits must be 8, 4, 2 or 32, got {self.uplink_bits}",
        )
        need(self.uplink_scale_mode in (0, 1), "uplink scale mode must be 0 or 1")
        need(
            self.downlink_bits in (32, 8),
            f"--downlink-bits must be 32 or 8, got {self.downlink_bits}",
        )
        need(0 <= self.seed <= MAX_U32, f"--seed must be 0..{MAX_U32}, got {self.seed}")
        need(
            self.wait_nodes is None or self.wait_nodes >= 0,
            f"--wait-nodes must be >= 0, got {self.wait_nodes}",
        )
        need(bool(self.initial_head), "--initial-head must be zeros, init or a .npy path")
        need(0 <= self.straggler_backoff <= 64,
             f"--straggler-backoff must be 0..64 rounds, got {self.straggler_backoff}")
        need(
            math.isfinite(self.wait_timeout) and self.wait_timeout >= 0,
            f"--wait-timeout must be >= 0 seconds, got {self.wait_timeout}",
        )
        if self.secure_agg:
            need(math.isfinite(self.clip_norm) and self.clip_norm > 0,
                 "--secure-agg needs --clip-norm > 0: every node quantizes with the common "
                 "scale clip / qmax, so the integer codes of different nodes add up")
            need(self.uplink_bits != 32, "--secure-agg masks integer codes: --uplink-bits 8, 4 or 2")
            need(self.min_clients >= 2, "--secure-agg needs --min-clients >= 2: the sum of one "
                 "update is that update")
        need(self.secure_agg_threshold is None or self.secure_agg_threshold >= 2,
             f"--secure-agg-threshold must be >= 2, got {self.secure_agg_threshold}")
        self._check_dp(need)

    def _check_dp(self, need: Callable[[bool, str], None]) -> None:
        need(self.dp in DP_MODES, f"--dp must be one of {', '.join(DP_MODES)}, got {self.dp!r}")
        need(self.dp != "distributed" or self.secure_agg,
             "--dp distributed has every node add its share of the noise under secure "
             "aggregation, so that only the sum carries all of it: add --secure-agg (or use "
             "--dp central, where the coordinator adds the noise)")
        need(self.dp != "central" or not self.secure_agg,
             "--dp central re-clips and noises single updates, which --secure-agg hides from the "
             "coordinator: not both (with --secure-agg, the nodes add the noise: --dp "
             "distributed)")
        if self.dp == "off":
            need(self.dp_noise_multiplier is None and self.dp_epsilon is None
                 and self.dp_delta == DEFAULT_DELTA,
                 "--dp-epsilon, --dp-noise-multiplier and --dp-delta need --dp central or "
                 "distributed")
            return
        need(self.clip_norm > 0, f"--dp {self.dp} needs --clip-norm > 0: the clip norm is the "
             "sensitivity the noise is calibrated to")
        need(self.clients_per_round is None,
             f"--dp {self.dp} samples every node independently with probability --fraction "
             "(Poisson sampling, what the privacy accountant assumes); --clients-per-round "
             "fixes the count instead: use --fraction")
        need(self.dp_noise_multiplier is not None or self.dp_epsilon is not None,
             f"--dp {self.dp} needs --dp-epsilon (a budget) or --dp-noise-multiplier")
        need(0 < self.dp_delta < 1, f"--dp-delta must be in (0, 1), got {self.dp_delta}")
        if self.dp_noise_multiplier is None:
            assert self.dp_epsilon is not None
            need(math.isfinite(self.dp_epsilon) and self.dp_epsilon > 0,
                 f"--dp-epsilon must be > 0, got {self.dp_epsilon}")
            z = calibrate(self.dp, self.dp_epsilon, self.dp_delta, self.rounds,
                          self.dp_sampling)
            object.__setattr__(self, "dp_noise_multiplier", z)  # frozen: set once, here
        self.privacy  # noqa: B018  # validates the rest (ranges) with DpConfig's messages

    @property
    def dp_sampling(self) -> float:
        """q, the probability that a round selects a given eligible node: --fraction, or 1
        (every eligible node every round) without it."""
        return 1.0 if self.fraction is None else float(self.fraction)

    @property
    def privacy(self) -> DpConfig | None:
        """The run's differential privacy, None when off."""
        if self.dp == "off" or self.dp_noise_multiplier is None:
            return None
        return DpConfig(self.dp, float(self.dp_noise_multiplier), float(self.dp_delta),
                        float(self.clip_norm), self.dp_sampling, self.dp_epsilon)

    def check_privacy_budget(self) -> None:
        """UsageError when `rounds` rounds would spend more than the --dp-epsilon budget (a
        resumed run given more --rounds than its noise was calibrated for), naming the epsilon
        they would reach and the noise multiplier that would fit them. Called by the command
        line before anything connects; the engine also stops before a round over the budget."""
        dp = self.privacy
        if dp is None or dp.epsilon_budget is None:
            return
        reached = dp.epsilon(self.rounds)
        if reached <= dp.epsilon_budget:
            return
        fits = calibrate(dp.mode, dp.epsilon_budget, dp.delta, self.rounds, dp.sampling)
        raise UsageError(
            f"{self.rounds} rounds at noise multiplier {dp.noise_multiplier:.4g} (sampling rate "
            f"{dp.sampling:g}) reach epsilon {reached:.3f} at delta {dp.delta:g}, over the "
            f"budget --dp-epsilon {dp.epsilon_budget:g}; noise multiplier {fits:.4g} would fit "
            f"{self.rounds} rounds (a started run keeps its noise: run fewer rounds, or start a "
            "new run)"
        )

    @property
    def nodes_to_wait_for(self) -> int:
        if self.wait_nodes is not None:
            return self.wait_nodes
        return max(self.min_clients, self.clients_per_round or 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Options that change what a run computes: a resumed run must use the checkpoint's values.
RESUME_LOCKED = (
    "clients_per_round",
    "fraction",
    "min_clients",
    "epochs",
    "batch_size",
    "lr",
    "clip_norm",
    "uplink_bits",
    "uplink_scale_mode",
    "downlink_bits",
    "seed",
    "straggler_backoff",
    "secure_agg",
    "secure_agg_threshold",
    "dp",
    "dp_noise_multiplier",
    "dp_epsilon",
    "dp_delta",
)
