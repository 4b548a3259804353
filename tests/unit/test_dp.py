"""Central DP's math (tinyfl.strategy.dp): the accountant against dp-accounting's own numbers and
a published figure, its monotonicity, calibration to a budget, the noise's scale, clipping, and
the noise generator's determinism."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant

from tinyfl.coordinator.privacy import poisson_select
from tinyfl.errors import UsageError
from tinyfl.strategy.dp import (
    DpConfig,
    epsilon_after,
    noise_generator,
    noise_multiplier_for,
    noise_std,
    noisy_mean,
)

DELTA = 1e-5


def test_epsilon_is_the_rdp_accountants_for_poisson_sampled_gaussian_rounds() -> None:
    accountant = RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(0.05, dp_accounting.GaussianDpEvent(1.3))
    accountant.compose(event, 40)
    assert epsilon_after(40, 1.3, 0.05, DELTA) == accountant.get_epsilon(DELTA)
    # every node every round: the plain Gaussian mechanism, composed
    plain = RdpAccountant().compose(dp_accounting.GaussianDpEvent(3.0), 10)
    assert epsilon_after(10, 3.0, 1.0, DELTA) == plain.get_epsilon(DELTA)


def test_abadi_et_al_moments_accountant_figure_is_reproduced() -> None:
    """Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, section 3.1: q = 0.01,
    sigma = 4, delta = 1e-5, T = 10000 steps give epsilon ~ 1.26 with the moments accountant
    (integer orders up to 32 and the tail bound eps = min_a RDP(a) + log(1/delta) / (a - 1)).
    The library's RDP at those orders, converted that way, gives the paper's number; the
    library's own conversion (the one TinyFL reports) is tighter, never looser."""
    orders = list(range(2, 33))
    accountant = RdpAccountant(orders=orders)
    event = dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(4.0))
    accountant.compose(event, 10000)
    pairs = zip(accountant.orders, accountant.rdp)
    paper = min(r + math.log(1 / DELTA) / (a - 1) for a, r in pairs)
    assert round(paper, 2) == 1.26
    ours = epsilon_after(10000, 4.0, 0.01, DELTA)
    assert 0.7 < ours <= paper


def test_one_round_is_never_below_the_exact_gaussian_mechanism() -> None:
    """RDP is an upper bound: for one unsampled round it may not undercut the exact epsilon of
    the Gaussian mechanism (Balle and Wang, ICML 2018; dp-accounting's get_epsilon_gaussian)."""
    for z in (0.8, 1.5, 4.0):
        exact = dp_accounting.get_epsilon_gaussian(z, DELTA)
        assert exact <= epsilon_after(1, z, 1.0, DELTA) <= 1.6 * exact


def test_epsilon_grows_with_rounds_and_sampling_and_shrinks_with_noise() -> None:
    by_rounds = [epsilon_after(t, 1.0, 0.1, DELTA) for t in (0, 1, 5, 20, 100)]
    assert by_rounds[0] == 0.0 and by_rounds == sorted(by_rounds) and len(set(by_rounds)) == 5
    by_noise = [epsilon_after(20, z, 0.1, DELTA) for z in (0.6, 0.8, 1.2, 2.0, 5.0)]
    assert by_noise == sorted(by_noise, reverse=True) and len(set(by_noise)) == 5
    by_q = [epsilon_after(20, 1.0, q, DELTA) for q in (0.01, 0.1, 0.5, 1.0)]
    assert by_q == sorted(by_q) and len(set(by_q)) == 4


@pytest.mark.parametrize(("eps", "rounds", "q"), [(1.0, 30, 0.1), (4.0, 30, 0.1), (2.0, 10, 1.0)])
def test_calibration_fits_the_budget_within_tolerance(eps: float, rounds: int, q: float) -> None:
    z = noise_multiplier_for(eps, DELTA, rounds, q)
    spent = epsilon_after(rounds, z, q, DELTA)
    assert eps - 0.01 < spent <= eps  # never over, hardly any budget left unused
    assert epsilon_after(rounds, z * 0.99, q, DELTA) > eps  # less noise would not fit


def test_dp_config_checks_its_values() -> None:
    with pytest.raises(UsageError, match="--clip-norm > 0"):
        DpConfig("central", 1.0, DELTA, 0.0, 0.1)
    with pytest.raises(UsageError, match="--dp-delta"):
        DpConfig("central", 1.0, 1.0, 1.0, 0.1)
    with pytest.raises(UsageError, match="--dp-noise-multiplier must be > 0"):
        DpConfig("central", 0.0, DELTA, 1.0, 0.1)
    config = DpConfig("central", 1.0, DELTA, 1.0, 0.1, epsilon_budget=3.0)
    assert config.epsilon(7) == epsilon_after(7, 1.0, 0.1, DELTA)


def test_noise_std_on_the_average_is_z_c_over_m() -> None:
    z, clip, m = 1.7, 0.5, 25.0
    assert noise_std(z, clip, m) == pytest.approx(z * clip / m)
    zeros = np.zeros((3, 200, 300))  # three nodes that sent nothing: the noise alone
    result = noisy_mean(zeros, clip, z, m, noise_generator(b"k" * 32, 1))
    measured = float(np.std(result.mean))
    # 60,000 draws: the sample std is within 2% of the true one with overwhelming probability
    assert measured == pytest.approx(z * clip / m, rel=0.02)
    assert abs(float(np.mean(result.mean))) < 4 * z * clip / m / math.sqrt(zeros[0].size)
    assert result.noise_std == pytest.approx(z * clip / m) and result.clipped == 0


def test_the_average_is_clipped_sum_over_fixed_m_plus_noise() -> None:
    rng = np.random.default_rng(0)
    deltas = rng.normal(size=(4, 6, 9))
    deltas[1] *= 100  # a node that skipped clipping (or lies): the coordinator clips it
    clip, m = 1.0, 10.0  # m: expected nodes, not the 4 that answered
    norms = np.sqrt((deltas ** 2).sum(axis=(1, 2)))
    clipped = deltas * np.minimum(1.0, clip / norms)[:, None, None]
    quiet = noisy_mean(deltas, clip, 1e-12, m, noise_generator(b"k" * 32, 2))
    np.testing.assert_allclose(quiet.mean, clipped.sum(axis=0) / m, atol=1e-9)
    assert quiet.clipped == int(np.count_nonzero(norms > clip))
    # the same round with real noise differs from the noiseless average by the noise alone
    noisy = noisy_mean(deltas, clip, 2.0, m, noise_generator(b"k" * 32, 2))
    residual = noisy.mean - clipped.sum(axis=0) / m
    assert float(np.std(residual)) > 0.1 * 2.0 * clip / m  # fails if no noise were added
    assert np.linalg.norm(noisy.mean - quiet.mean) > 0.05


def test_noise_is_a_function_of_key_and_round_only() -> None:
    draw = [noise_generator(k, r).normal(size=8) for k, r in
            ((b"a" * 32, 1), (b"a" * 32, 1), (b"a" * 32, 2), (b"b" * 32, 1))]
    assert np.array_equal(draw[0], draw[1])
    assert not np.array_equal(draw[0], draw[2]) and not np.array_equal(draw[0], draw[3])
    with pytest.raises(ValueError, match="128 bits"):
        noise_generator(b"short", 1)


def test_poisson_selection_takes_each_node_with_probability_q() -> None:
    pool = [f"n{i:04d}" for i in range(2000)]
    counts = [len(poisson_select(pool, 0.1, 7, r)) for r in range(1, 21)]
    assert 0.09 < sum(counts) / (20 * 2000) < 0.11
    assert len(set(counts)) > 1  # the size varies: not a fixed-size sample
    assert poisson_select(reversed(pool), 0.1, 7, 3) == poisson_select(pool, 0.1, 7, 3)
    assert poisson_select(pool, 0.1, 7, 3) != poisson_select(pool, 0.1, 7, 4)
    assert poisson_select(pool[:5], 1.0, 7, 3) == tuple(pool[:5])
