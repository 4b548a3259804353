"""Node-level differential privacy, "central" mode: DP-FedAvg's noisy average and its accountant.

DP-FedAvg: McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
Models", ICLR 2018 (Algorithm 1 with the fixed-denominator estimator). Per round:

1. Every node is selected independently with probability q (Poisson sampling), the sampling the
   accountant assumes.
2. Every update is clipped to L2 norm C: the node clips, and the coordinator clips again what it
   receives, because a node may lie and because quantization can push a clipped delta slightly
   past C.
3. Each node counts the same (a node is one user, machine or site: the unit of privacy), and the
   sum is divided by a fixed denominator m = q * N, the expected number of nodes per round,
   never by how many answered. Adding or removing one node then moves the average by at most
   C / m, whoever else was sampled.
4. Gaussian noise of standard deviation z * C / m is added to that average; z is the noise
   multiplier (noise std over sensitivity).

The privacy of T such rounds is the T-fold composition of the Poisson-subsampled Gaussian
mechanism with sampling rate q and noise multiplier z, under the add-or-remove-one-node relation.
dp-accounting's `RdpAccountant` (Mironov, "Renyi Differential Privacy", CSF 2017; Mironov, Talwar,
Zhang, "Renyi Differential Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530) computes
it; nothing here re-derives an RDP bound. Calibration (the z that fits a budget) is the library's
`calibrate_dp_mechanism`.

Pure functions and frozen records; the noise comes from a numpy Generator the caller derives
from a secret key and the round (`noise_generator`), so a resumed run draws the same noise.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinyfl.errors import UsageError
from tinyfl.strategy import ddp
from tinyfl.strategy.robust import clip_to_norm

__all__ = [
    "DP_MODES",
    "DpConfig",
    "NoisyMean",
    "calibrate",
    "epsilon_after",
    "noise_generator",
    "noise_multiplier_for",
    "noise_std",
    "noisy_mean",
    "round_event",
]

DP_MODES = ("off", "central", "distributed")
DEFAULT_DELTA = 1e-5
NOISE_KEY_BYTES = 32  # a 256-bit secret: the noise must not be reproducible from public values
_NOISE_STREAM = 0x4450  # "DP": keeps the noise's SeedSequence apart from any other use of a key
_Z_MAX = 1e4  # calibration gives up past this noise multiplier (the budget is then absurd)


class _OrderFilter(logging.Filter):
    """dp-accounting logs a warning (through absl) for each fractional RDP order below 2 whose
    series does not converge, and drops that order from the minimum; dropping an order can only
    make epsilon larger, never smaller, so the result stays a valid bound and the warning, repeated
    for every call of a calibration, is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_OrderFilter())


@dataclass(frozen=True)
class DpConfig:
    """A run's differential privacy: mode, noise multiplier z, delta, the epsilon budget (None:
    no budget, epsilon is only reported), the clip norm C and the sampling rate q."""

    mode: str
    noise_multiplier: float
    delta: float
    clip_norm: float
    sampling: float
    epsilon_budget: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in DP_MODES[1:]:
            raise UsageError(f"--dp must be one of {', '.join(DP_MODES[1:])}, got {self.mode!r}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise UsageError(f"--dp-noise-multiplier must be > 0, got {self.noise_multiplier}")
        if not 0 < self.delta < 1:
            raise UsageError(f"--dp-delta must be in (0, 1), got {self.delta}")
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise UsageError("differential privacy needs --clip-norm > 0 (the sensitivity)")
        if not 0 < self.sampling <= 1:
            raise UsageError(f"the sampling rate must be in (0, 1], got {self.sampling}")
        if self.epsilon_budget is not None and not (
            math.isfinite(self.epsilon_budget) and self.epsilon_budget > 0
        ):
            raise UsageError(f"--dp-epsilon must be > 0, got {self.epsilon_budget}")

    def epsilon(self, rounds: int) -> float:
        """Epsilon at this config's delta after `rounds` charged rounds (the mode's accountant:
        dp-accounting's sampled Gaussian, or tinyfl.strategy.ddp's distributed discrete
        Gaussian)."""
        if self.mode == "distributed":
            return ddp.epsilon_after(rounds, self.noise_multiplier, self.sampling, self.delta)
        return epsilon_after(rounds, self.noise_multiplier, self.sampling, self.delta)


def calibrate(mode: str, epsilon: float, delta: float, rounds: int, sampling: float) -> float:
    """The smallest noise multiplier whose `rounds` rounds fit (epsilon, delta) in `mode`."""
    if mode != "distributed":
        return noise_multiplier_for(epsilon, delta, rounds, sampling)
    try:
        return ddp.noise_multiplier_for(epsilon, delta, rounds, sampling)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def round_event(noise_multiplier: float, sampling: float) -> Any:
    """One round as a dp-accounting event: the Gaussian mechanism on a Poisson sample of rate q
    (the plain Gaussian mechanism when every node takes part)."""
    import dp_accounting

    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling >= 1.0:
        return gaussian
    return dp_accounting.PoissonSampledDpEvent(sampling, gaussian)


def _accountant() -> Any:
    from dp_accounting.rdp import RdpAccountant

    # add or remove one node: the relation Poisson sampling's amplification is proved for
    return RdpAccountant()


@functools.lru_cache(maxsize=4096)
def epsilon_after(rounds: int, noise_multiplier: float, sampling: float, delta: float) -> float:
    """Epsilon at `delta` after `rounds` rounds of noise multiplier z on a q-Poisson sample, from
    dp-accounting's RDP accountant; 0 for no round. Cached: the engine asks every round."""
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if rounds == 0:
        return 0.0
    accountant = _accountant()
    accountant.compose(round_event(noise_multiplier, sampling), rounds)
    return float(accountant.get_epsilon(delta))


@functools.lru_cache(maxsize=256)
def noise_multiplier_for(epsilon: float, delta: float, rounds: int, sampling: float) -> float:
    """The smallest noise multiplier z (within the library's tolerance, never below it) whose
    `rounds` rounds on a q-Poisson sample stay within (epsilon, delta); dp-accounting's
    `calibrate_dp_mechanism` does the search. UsageError when no z up to 1e4 fits."""
    import dp_accounting

    if not (math.isfinite(epsilon) and epsilon > 0) or rounds < 1:
        raise UsageError(f"cannot calibrate for epsilon {epsilon} over {rounds} rounds")
    if epsilon_after(rounds, _Z_MAX, sampling, delta) > epsilon:
        raise UsageError(
            f"no noise multiplier up to {_Z_MAX:g} keeps {rounds} rounds within epsilon "
            f"{epsilon:g} at delta {delta:g}"
        )

    def event(z: float) -> Any:
        return dp_accounting.SelfComposedDpEvent(round_event(z, sampling), rounds)

    # A bracket of width 2 around the answer first: the library's search from [0, 1] (or a wide
    # bracket) evaluates very small multipliers, whose fractional-order RDP series converge
    # slowly (seconds per evaluation); doubling from 1 stays where the evaluations are cheap.
    low, high = 0.5, 1.0
    while epsilon_after(rounds, high, sampling, delta) > epsilon:
        low, high = high, 2 * high
    while low > 1e-3 and epsilon_after(rounds, low, sampling, delta) <= epsilon:
        low, high = low / 2, low
    z = dp_accounting.calibrate_dp_mechanism(
        _accountant,
        event,
        epsilon,
        delta,
        dp_accounting.ExplicitBracketInterval(low, high),
        tol=1e-4,
    )
    return float(z)


def noise_std(noise_multiplier: float, clip_norm: float, expected_clients: float) -> float:
    """The standard deviation of the noise on the average: z * C / m (McMahan et al. 2018,
    Algorithm 1: sigma = z * S / (q W) with S = C and equal weights, W = N)."""
    return noise_multiplier * clip_norm / expected_clients


def noise_generator(key: bytes, round_no: int) -> np.random.Generator:
    """The Generator of round `round_no`'s noise: a function of a secret key and the round only,
    so a resumed run draws the numbers an uninterrupted one draws. Never of the run seed: that
    seed is in config.json and, through GLOBAL's seed field, within reach of anyone on the
    broker, and noise that can be regenerated can be subtracted."""
    if len(key) < 16:
        raise ValueError("the noise key must be at least 128 bits")
    seq = np.random.SeedSequence(int.from_bytes(key, "big"), spawn_key=(_NOISE_STREAM, round_no))
    return np.random.Generator(np.random.PCG64(seq))


@dataclass(frozen=True)
class NoisyMean:
    """DP-FedAvg's released average delta and what the round record shows of it."""

    mean: NDArray[np.float64]
    clipped: int  # updates the coordinator scaled down (longer than C as received)
    noise_std: float

    def info(self) -> dict[str, float]:
        return {"dp_clipped": float(self.clipped), "dp_noise_std": self.noise_std}


def noisy_mean(
    deltas: NDArray[Any],
    clip_norm: float,
    noise_multiplier: float,
    expected_clients: float,
    rng: np.random.Generator,
) -> NoisyMean:
    """sum_i clip(delta_i, C) / m + N(0, (z C / m)^2) per coordinate, in float64.

    `deltas` is (n, k, d + 1), n >= 0 (no answer: the noise alone; a caller that skips such a
    round never calls this). m is fixed by the caller, not n: see the module docstring, step 3.
    """
    if not (math.isfinite(expected_clients) and expected_clients > 0):
        raise ValueError(f"expected_clients must be > 0, got {expected_clients}")
    values = np.asarray(deltas, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"deltas must be (n, k, d + 1), got shape {values.shape}")
    clipped, scaled = clip_to_norm(values, clip_norm)
    std = noise_std(noise_multiplier, clip_norm, expected_clients)
    total = clipped.sum(axis=0)
    mean = total / expected_clients + rng.normal(0.0, std, size=total.shape)
    return NoisyMean(mean, int(np.count_nonzero(scaled)), std)
