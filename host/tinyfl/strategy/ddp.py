"""Node-level differential privacy, "distributed" mode: the distributed discrete Gaussian.

Every node of a secure-aggregation round adds its share of integer noise to its integer codes
before masking, so that only the securely aggregated sum carries the full noise and the
coordinator never holds a less noisy value (docs/PRIVACY.md). The mechanism is the distributed
discrete Gaussian of Kairouz, Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for
Federated Learning with Secure Aggregation", ICML 2021 (DDG below); each share is drawn with the
exact integer sampler of Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential
Privacy", NeurIPS 2020 (CKS below, Algorithms 1-3): no floating point, O(1) expected draws per
value, which a Cortex-M4 runs as is. (The Skellam mechanism of Agarwal, Kairouz, Liu, NeurIPS
2021 has a similar bound, but an exact integer Poisson sampler costs O(mu) steps per value, and
mu is ~10^4 code units squared here.)

Pure functions:

* the accountant. dp-accounting 0.6.0 has neither the discrete Gaussian nor the Skellam
  mechanism (only the continuous Gaussian, Laplace and friends), so the RDP of one round is
  DDG's Proposition 14 (first term, with Theorem 1's tau for the sum of discrete Gaussians),
  amplified by Poisson sampling with the general bound for integer orders of Zhu and Wang,
  "Poisson Subsampled Renyi Differential Privacy", ICML 2019; rounds compose by adding RDP, and
  dp-accounting's `compute_epsilon` converts RDP to (epsilon, delta). In the large-variance limit
  the round's RDP is the Gaussian mechanism's, which the tests check against dp-accounting.
* the calibration: the node's share sigma_node^2 from the noise multiplier z, the sensitivity
  and the threshold t of the round; the modulus bits that hold the noisy sum.
* the sampler: N_Z(0, sigma^2) for an integer sigma^2 from a bit stream, HKDF-Expand of a key
  only the node holds (XOR over its pair seeds of HKDF-Expand(s_uv, "tinyfl noise key")), so
  the coordinator, who holds no pair seed, cannot regenerate the noise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from tinyfl.crypto import hkdf_expand

__all__ = [
    "NOISE_VAR_MAX",
    "NOISE_VAR_MIN",
    "ddg_rdp",
    "discrete_gaussian",
    "epsilon_after",
    "node_noise",
    "node_noise_var",
    "noise_key",
    "noise_multiplier_for",
    "noisy_mask_bits",
    "sensitivity",
    "subsampled_rdp",
    "tau",
]

# integer orders: the subsampling bound below is for integers (DDG's code uses the same grid)
ORDERS = tuple(range(2, 129)) + (256,)
NOISE_VAR_MIN = 8  # a node's share sigma^2 >= 8: tau * d (Theorem 1) is below 1e-18, see TAU_DIM
NOISE_VAR_MAX = 1 << 24  # the sampler's 64-bit arithmetic holds up to this sigma^2 (CKS Alg. 3)
# An upper bound of tau * d for every round TinyFL can run: at most 2^16 nodes (u16 counts),
# d < 2^32 values (u16 rows and cols), sigma_node^2 >= NOISE_VAR_MIN, and
# exp(-2 pi^2 s k / (k + 1)) <= exp(-pi^2 s) for k >= 1.
TAU_DIM = 10.0 * 2**16 * math.exp(-math.pi**2 * NOISE_VAR_MIN) * 2**32
WRAP_FAILURE = 2.0**-40  # the probability that some coordinate of the noisy sum wraps
NOISE_KEY_INFO = b"tinyfl noise key"
NOISE_INFO = b"tinyfl noise"
CHUNK = 255 * 32  # HKDF-Expand's most bytes per info string
_W_MAX = 1 << 31  # |w| bound of the sampler's acceptance test (discrete_gaussian)

I64 = npt.NDArray[np.int64]


# -- the accountant --------------------------------------------------------------------------


def sensitivity(qmax: int, dim: int) -> tuple[float, float]:
    """(L2, L1) sensitivity of one node's integer codes: the delta is clipped to C, divided by
    the common scale C / qmax (norm <= qmax, plus 1e-3 for float32 rounding), and stochastic
    rounding moves each of the dim coordinates by less than 1, so ||codes||_2 <= qmax + sqrt(d)
    (DDG, Theorem 1's first bound, without conditional rounding); for integer vectors
    ||x||_1 <= min(||x||_2^2, sqrt(d) ||x||_2)."""
    l2 = qmax * (1 + 1e-3) + math.sqrt(dim)
    return l2, l2 * min(l2, math.sqrt(dim))


def tau(node_var: float, n: int) -> float:
    """DDG Theorem 1: the sum of n discrete Gaussians of parameter sigma^2 each is within tau of
    N_Z(0, n sigma^2), tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k / (k + 1))."""
    return 10.0 * sum(math.exp(-2 * math.pi**2 * node_var * k / (k + 1)) for k in range(1, n))


def ddg_rdp(order: float, l2: float, l1: float, total_var: float, tau_: float, dim: int) -> float:
    """DDG Proposition 14: (alpha, eps)-RDP of adding the sum of discrete Gaussians of total
    parameter total_var to a query of L2 / L1 sensitivity l2 / l1 in dimension dim, the minimum
    of its three bounds (tau from Theorem 1; tau = 0 for one discrete Gaussian)."""
    s2, s1 = l2 / math.sqrt(total_var), l1 / math.sqrt(total_var)
    return min(order / 2 * s2**2 + tau_ * dim,
               order / 2 * (s2**2 + 2 * s1 * tau_ + tau_**2 * dim),
               order / 2 * (s2 + math.sqrt(dim) * tau_) ** 2)


def subsampled_rdp(order: int, q: float, rdp: Callable[[int], float]) -> float:
    """Zhu and Wang (ICML 2019), the general upper bound for integer orders alpha >= 2: the RDP
    at `order` of a mechanism with RDP `rdp(l)` run on a Poisson sample of rate q,

        1/(alpha-1) log[(1-q)^(alpha-1) (alpha q - q + 1) + C(alpha,2) q^2 (1-q)^(alpha-2) e^rdp(2)
                        + 3 sum_{l=3}^alpha C(alpha,l) (1-q)^(alpha-l) q^l e^((l-1) rdp(l))]."""
    if q >= 1.0:
        return rdp(order)
    a = order
    logs = [(a - 1) * math.log1p(-q) + math.log(a * q - q + 1),
            _log_comb(a, 2) + 2 * math.log(q) + (a - 2) * math.log1p(-q) + rdp(2)]
    logs += [math.log(3) + _log_comb(a, k) + (a - k) * math.log1p(-q) + k * math.log(q)
             + (k - 1) * rdp(k) for k in range(3, a + 1)]
    top = max(logs)
    return (top + math.log(sum(math.exp(x - top) for x in logs))) / (a - 1)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _round_rdp(noise_multiplier: float, sampling: float) -> list[float]:
    """One round's RDP at ORDERS: Proposition 14's first term with sensitivity / noise std
    = 1 / z and tau * d <= TAU_DIM, the smaller of it and its amplification by sampling."""

    def one(order: int) -> float:
        return order / (2 * noise_multiplier**2) + TAU_DIM

    return [min(one(a), subsampled_rdp(a, sampling, one)) for a in ORDERS]


@functools.lru_cache(maxsize=4096)
def epsilon_after(rounds: int, noise_multiplier: float, sampling: float, delta: float) -> float:
    """Epsilon at `delta` after `rounds` rounds of the distributed discrete Gaussian whose total
    noise std (the shares of the t - 1 other survivors, at least) is z times the L2 sensitivity,
    on a Poisson sample of rate q; 0 for no round."""
    from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if rounds == 0:
        return 0.0
    rdp = [rounds * r for r in _round_rdp(noise_multiplier, sampling)]
    return float(compute_epsilon(ORDERS, rdp, delta)[0])


@functools.lru_cache(maxsize=256)
def noise_multiplier_for(epsilon: float, delta: float, rounds: int, sampling: float) -> float:
    """The smallest z (bisection to 1e-4 relative, never below the answer) whose `rounds` rounds
    stay within (epsilon, delta); ValueError when no z up to 1e4 fits."""
    if not (math.isfinite(epsilon) and epsilon > 0) or rounds < 1:
        raise ValueError(f"cannot calibrate for epsilon {epsilon} over {rounds} rounds")
    high = 1.0
    while epsilon_after(rounds, high, sampling, delta) > epsilon:
        high *= 2
        if high > 1e4:
            raise ValueError(f"no noise multiplier up to 1e4 keeps {rounds} rounds within "
                             f"epsilon {epsilon:g} at delta {delta:g}")
    low = high / 2
    while low > 1e-3 and epsilon_after(rounds, low, sampling, delta) <= epsilon:
        low, high = low / 2, low
    while high - low > 1e-4 * high:
        mid = (low + high) / 2
        low, high = (low, mid) if epsilon_after(rounds, mid, sampling, delta) <= epsilon else (
            mid, high)
    return high


def node_noise_var(noise_multiplier: float, qmax: int, dim: int, threshold: int) -> int:
    """A node's share sigma_node^2 (integer code units squared) so that the shares of the other
    t - 1 survivors of a round with threshold t (fewer survivors: nothing is released) already
    reach (z L2)^2: a node's own share is not counted, dropouts down to t are covered. Rounded
    up, and at least NOISE_VAR_MIN: more noise than z asks for, never less."""
    if threshold < 2:
        raise ValueError("the threshold must be >= 2")
    l2, _ = sensitivity(qmax, dim)
    var = max(NOISE_VAR_MIN, math.ceil((noise_multiplier * l2) ** 2 / (threshold - 1)))
    if var > NOISE_VAR_MAX:
        raise ValueError(f"a node's noise variance {var} is above {NOISE_VAR_MAX} code units: "
                         f"raise the threshold or the epsilon")
    return var


def noisy_mask_bits(qmax: int, n_summands: int, node_var: int, dim: int) -> int:
    """The fewest bits b (at least 9) whose signed range holds the noisy sum of n nodes except
    with probability WRAP_FAILURE: the codes add up to at most n qmax in magnitude, and the sum
    of n discrete Gaussians of parameter s is sub-Gaussian with variance proxy n s (CKS show that
    one discrete Gaussian is sub-Gaussian with proxy sigma^2), so a union bound over the dim coordinates gives |noise| < lam with
    lam = sqrt(2 n s ln(2 dim / WRAP_FAILURE)). A wrap would be a wrong sum, not a privacy loss:
    the modular reduction is post-processing of the noisy sum."""
    lam = math.sqrt(2 * n_summands * node_var * math.log(2 * dim / WRAP_FAILURE))
    return max(9, math.ceil(math.log2(2 * (n_summands * qmax + lam) + 1)))


# -- the sampler -----------------------------------------------------------------------------


def noise_key(pair_seeds: Iterable[bytes]) -> bytes:
    """The node's noise key: the XOR over its pair seeds s_uv of HKDF-Expand(s_uv, "tinyfl noise
    key", 32). Only the node holds every one of its seeds (the coordinator none, a peer one)."""
    key = bytes(32)
    for seed in pair_seeds:
        part = hkdf_expand(seed, NOISE_KEY_INFO, 32)
        key = bytes(x ^ y for x, y in zip(key, part))
    return key


class BitStream:
    """The noise's random bits: HKDF-Expand(key, "tinyfl noise" | u32 round | u16 chunk) in
    chunks of 8160 bytes, read LSB-first (bit i of the stream is bit i % 8 of byte i // 8)."""

    def __init__(self, key: bytes, round_id: int) -> None:
        self._key, self._round = key, round_id.to_bytes(4, "little")
        self._chunk = 0
        self._buf = 0
        self._have = 0
        self.used = 0  # bits handed out

    def bits(self, k: int) -> int:
        while self._have < k:
            block = hkdf_expand(self._key, NOISE_INFO + self._round
                                + self._chunk.to_bytes(2, "little"), CHUNK)
            self._buf |= int.from_bytes(block, "little") << self._have
            self._have += 8 * CHUNK
            self._chunk += 1
        out = self._buf & ((1 << k) - 1)
        self._buf >>= k
        self._have -= k
        self.used += k
        return out

    def uniform(self, m: int) -> int:
        """Uniform on {0, ..., m - 1} by rejection of (m - 1).bit_length() bits."""
        if m <= 1:
            return 0
        k = (m - 1).bit_length()
        while True:
            r = self.bits(k)
            if r < m:
                return r

    def bernoulli(self, a: int, b: int) -> bool:
        """Bernoulli(a / b), 0 <= a, 0 < b; no bits when the answer is certain. Lazily: the
        random bits are those of a uniform U in [0, 1), compared one at a time with the binary
        digits of a / b (long division, r < b) until they differ; U < a / b exactly with
        probability a / b, after 2 bits on average."""
        if a >= b:
            return True
        if a == 0:
            return False
        r = a
        while True:
            r <<= 1
            digit = int(r >= b)
            r -= digit * b
            u = self.bits(1)
            if u != digit:
                return u < digit

    def bernoulli_exp(self, a: int, b: int) -> bool:
        """Bernoulli(exp(-a / b)) (CKS Algorithm 1): exp(-1) floor(a/b) times, then the
        fractional part by the alternating series, Bernoulli(g / K) = Bernoulli(g) and
        Bernoulli(1 / K)."""
        whole, rest = divmod(a, b)
        for _ in range(whole):
            if not self._bernoulli_exp_unit(1, 1):
                return False
        return self._bernoulli_exp_unit(rest, b)

    def _bernoulli_exp_unit(self, a: int, b: int) -> bool:
        k = 1
        while self.bernoulli(a, b) and self.bernoulli(1, k):
            k += 1
        return k % 2 == 1


def discrete_laplace(bits: BitStream, t: int) -> int:
    """P(x) proportional to exp(-|x| / t), t >= 1 an integer (CKS Algorithm 2 with s = 1)."""
    while True:
        u = bits.uniform(t)
        if not bits.bernoulli_exp(u, t):
            continue
        v = 0
        while bits.bernoulli_exp(1, 1):
            v += 1
        x = u + t * v
        negative = bits.bernoulli(1, 2)
        if negative and x == 0:
            continue
        return -x if negative else x


def discrete_gaussian(bits: BitStream, var: int) -> int:
    """N_Z(0, var) for an integer var >= 1 (CKS Algorithm 3 with sigma^2 = var): discrete
    Laplace proposals of scale t = floor(sigma) + 1, accepted with probability exp(-gamma),
    gamma = (|y| - var / t)^2 / (2 var) = w^2 / (2 var t^2), w = |y| t - var. A proposal with
    |w| >= 2^31 is rejected without a draw: its gamma is above 2^62 / 2^50, so it would be
    accepted with probability below exp(-4096) (the firmware's 64-bit arithmetic needs this)."""
    if not 1 <= var <= NOISE_VAR_MAX:
        raise ValueError(f"the variance must be 1..{NOISE_VAR_MAX}, got {var}")
    t = math.isqrt(var) + 1
    while True:
        y = discrete_laplace(bits, t)
        w = abs(y) * t - var
        if abs(w) >= _W_MAX:
            continue
        if bits.bernoulli_exp(w * w, 2 * var * t * t):
            return y


def node_noise(key: bytes, round_id: int, n: int, var: int) -> I64:
    """A node's n noise values of round `round_id` (row-major order of the head's codes)."""
    bits = BitStream(key, round_id)
    return np.array([discrete_gaussian(bits, var) for _ in range(n)], dtype=np.int64)
