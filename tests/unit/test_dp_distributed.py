"""Distributed DP (`--dp distributed`, tinyfl.strategy.ddp): the accountant against
dp-accounting's Gaussian in the large-variance limit, its monotonicity and calibration, the
modulus that holds the noisy sum, and the exact discrete Gaussian sampler (its distribution,
its determinism given the node's key, a key the coordinator cannot form)."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant

from tinyfl.crypto import hkdf_expand
from tinyfl.strategy import ddp
from tinyfl.strategy.dp import DpConfig
from tinyfl.wire.masked import MAX_NOISE_VAR

KEY = bytes(range(32))


def gaussian_rdp(z: float, q: float = 1.0) -> np.ndarray:
    accountant = RdpAccountant(orders=ddp.ORDERS)
    event = dp_accounting.GaussianDpEvent(z)
    accountant.compose(event if q >= 1 else dp_accounting.PoissonSampledDpEvent(q, event))
    return accountant.rdp


@pytest.mark.parametrize("node_var", [10.0, 1e3, 1e5])
def test_ddg_rdp_tends_to_the_gaussian_rdp_of_dp_accounting(node_var: float) -> None:
    # DDG Proposition 14 for n = 20 nodes of sigma^2 each, 8-bit codes of 390 values: with tau
    # negligible it is the Gaussian mechanism of noise multiplier sqrt(n sigma^2) / L2
    n, dim = 20, 390
    l2, l1 = ddp.sensitivity(127, dim)
    z = math.sqrt(n * node_var) / l2
    tau = ddp.tau(node_var, n)
    ours = np.array([ddp.ddg_rdp(a, l2, l1, n * node_var, tau, dim) for a in ddp.ORDERS])
    np.testing.assert_allclose(ours, gaussian_rdp(z), rtol=1e-9)
    # and with a tiny variance the discrete sum is worse than Gaussian (tau > 0): never better
    small = [ddp.ddg_rdp(a, l2, l1, n * 0.05, ddp.tau(0.05, n), dim) for a in ddp.ORDERS]
    assert all(s > g for s, g in zip(small, gaussian_rdp(math.sqrt(n * 0.05) / l2), strict=True))


def test_tau_is_negligible_from_the_smallest_share_on() -> None:
    assert ddp.tau(ddp.NOISE_VAR_MIN, 2**16) * 2**32 <= ddp.TAU_DIM < 1e-18
    assert ddp.NOISE_VAR_MAX == MAX_NOISE_VAR  # the wire carries what the sampler can draw


@pytest.mark.parametrize("z", [0.7, 2.0, 6.0])
def test_epsilon_matches_dp_accounting_gaussian_without_sampling(z: float) -> None:
    accountant = RdpAccountant(orders=ddp.ORDERS)
    accountant.compose(dp_accounting.GaussianDpEvent(z), 10)
    assert ddp.epsilon_after(10, z, 1.0, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5),
                                                                rel=1e-9)


@pytest.mark.parametrize("q", [0.01, 0.1, 0.5])
def test_the_sampling_bound_is_above_the_exact_sampled_gaussian_and_close(q: float) -> None:
    # Zhu and Wang's general bound, applied to the Gaussian, against dp-accounting's exact
    # RDP of the sampled Gaussian: an upper bound (it holds for any mechanism), and not a loose one
    z = 1.5
    exact = gaussian_rdp(z, q)
    bound = np.array([ddp.subsampled_rdp(a, q, lambda a_: a_ / (2 * z * z))
                      for a in ddp.ORDERS[:40]])
    assert np.all(bound >= exact[:40] * (1 - 1e-9))
    assert np.all(bound[:10] <= 3 * exact[:10])
    # the round's RDP never exceeds the unsampled one
    assert ddp.epsilon_after(10, z, q, 1e-5) <= ddp.epsilon_after(10, z, 1.0, 1e-5)


def test_epsilon_falls_with_noise_and_grows_with_rounds() -> None:
    eps = [ddp.epsilon_after(10, z, 0.2, 1e-5) for z in (0.8, 1.6, 3.2)]
    assert eps[0] > eps[1] > eps[2] > 0
    rounds = [ddp.epsilon_after(t, 1.6, 0.2, 1e-5) for t in (1, 10, 100)]
    assert rounds[0] < rounds[1] < rounds[2]
    assert ddp.epsilon_after(0, 1.6, 0.2, 1e-5) == 0.0
    config = DpConfig("distributed", 1.6, 1e-5, 0.2, 0.2)
    assert config.epsilon(10) == rounds[1]  # the config asks the distributed accountant


@pytest.mark.parametrize(("epsilon", "q"), [(1.0, 1.0), (4.0, 0.3)])
def test_calibration_fits_the_budget_tightly(epsilon: float, q: float) -> None:
    z = ddp.noise_multiplier_for(epsilon, 1e-5, 10, q)
    assert ddp.epsilon_after(10, z, q, 1e-5) <= epsilon
    assert ddp.epsilon_after(10, z * (1 - 3e-4), q, 1e-5) > epsilon


def test_node_share_and_modulus() -> None:
    dim = 390
    l2, l1 = ddp.sensitivity(127, dim)
    assert l2 == pytest.approx(127.127 + math.sqrt(dim))
    assert l1 == pytest.approx(l2 * math.sqrt(dim))
    var = ddp.node_noise_var(2.0, 127, dim, threshold=51)
    assert 50 * var >= (2.0 * l2) ** 2 > 50 * (var - 1)  # the other 50 survivors reach z L2
    assert ddp.node_noise_var(1e-3, 127, dim, 51) == ddp.NOISE_VAR_MIN
    with pytest.raises(ValueError, match="above"):
        ddp.node_noise_var(1e3, 127, dim, 2)
    bits = ddp.noisy_mask_bits(127, 100, var, dim)
    lam = math.sqrt(2 * 100 * var * math.log(2 * dim / ddp.WRAP_FAILURE))
    assert 2 ** (bits - 1) > 100 * 127 + lam >= 2 ** (bits - 2)
    assert ddp.noisy_mask_bits(127, 100, 10**6, dim) > ddp.noisy_mask_bits(127, 100, 8, dim)


def discrete_gaussian_pmf(var: float, support: np.ndarray) -> np.ndarray:
    xs = np.arange(-200, 201)
    weights = np.exp(-(xs.astype(np.float64) ** 2) / (2 * var))
    return np.exp(-(support.astype(np.float64) ** 2) / (2 * var)) / weights.sum()


@pytest.mark.parametrize("var", [1, 3, 30])
def test_the_sampler_draws_the_discrete_gaussian(var: int) -> None:
    n = 6000
    x = ddp.node_noise(KEY, 7, n, var)
    support = np.arange(-4 * math.isqrt(var) - 4, 4 * math.isqrt(var) + 5)
    p = discrete_gaussian_pmf(var, support)
    counts = np.array([(x == k).sum() for k in support])
    keep = p * n >= 5
    expected = p[keep] * n
    chi2 = float((((counts[keep] - expected) ** 2) / expected).sum())
    dof = int(keep.sum())
    assert chi2 < dof + 5 * math.sqrt(2 * dof)  # about 5 sigma: a wrong sampler fails by far
    assert counts.sum() >= n - 2  # nothing outside the tested range to speak of


def test_the_variance_is_the_calibrated_one() -> None:
    var = 5000
    x = ddp.node_noise(KEY, 9, 8000, var).astype(np.float64)
    # the variance of N_Z(0, s) equals s to within 1e-100 at this s; the sample's has std err
    # s sqrt(2 / n) (about 1.6%), 4 of them allowed
    assert abs(x.var() - var) < 4 * var * math.sqrt(2 / len(x))
    assert abs(x.mean()) < 4 * math.sqrt(var / len(x))


def test_the_noise_is_a_function_of_key_and_round_only() -> None:
    a = ddp.node_noise(KEY, 5, 100, 400)
    np.testing.assert_array_equal(a, ddp.node_noise(KEY, 5, 100, 400))
    assert not np.array_equal(a, ddp.node_noise(KEY, 6, 100, 400))
    assert not np.array_equal(a, ddp.node_noise(bytes(32), 5, 100, 400))
    # a prefix: the stream is read in order
    np.testing.assert_array_equal(a[:40], ddp.node_noise(KEY, 5, 40, 400))


def test_the_noise_key_needs_every_pair_seed() -> None:
    seeds = [bytes([i]) * 32 for i in range(3)]
    key = ddp.noise_key(seeds)
    assert key == ddp.noise_key(list(reversed(seeds)))  # order does not matter
    assert key != ddp.noise_key(seeds[:2])  # a peer that knows its own seed is not enough
    parts = [hkdf_expand(s, b"tinyfl noise key", 32) for s in seeds]
    assert key == bytes(a ^ b ^ c for a, b, c in zip(*parts, strict=True))


def test_the_bit_stream_crosses_chunks() -> None:
    bits = ddp.BitStream(KEY, 3)
    first = bits.bits(8 * ddp.CHUNK - 4)
    tail = bits.bits(12)
    info = b"tinyfl noise" + (3).to_bytes(4, "little")
    raw = hkdf_expand(KEY, info + b"\0\0", ddp.CHUNK) + hkdf_expand(KEY, info + b"\1\0", 8)
    stream = int.from_bytes(raw, "little")
    assert first == stream & ((1 << (8 * ddp.CHUNK - 4)) - 1)
    assert tail == (stream >> (8 * ddp.CHUNK - 4)) & 0xFFF
