"""A numpy node for the host: the round PRNG, stochastic quantization and local head SGD of
docs/WIRE.md ("Node behaviour on GLOBAL"), small enough to read in one sitting.

Why it is here: simulated nodes (`tinyfl.coordinator.simnode`) must train and quantize the way the
firmware does, and the coordinator quantizes its downlink head with the same quantizer. The
bit-exact references of the firmware (`tinyfl.rng`, `tinyfl.quant`, `tinyfl.model.head`) are
being written separately; until they land, everything the coordinator needs goes through the
three functions below (`round_rng`, `quantize`, `train_local`), so swapping them in is a change
to this one module.

This module follows the spec's arithmetic in float32 (same update order, same random draws), but
it does not promise the firmware's exact summation order, so results may differ from a native
node in the last bits. Simulated runs are deterministic and reproducible among themselves, which
is what the coordinator's tests and benchmark rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "LocalResult",
    "XorShift32",
    "fnv1a32",
    "mix32",
    "quantize",
    "round_rng",
    "train_local",
]

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]

_M32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9


def mix32(x: int) -> int:
    """MurmurHash3's 32-bit finalizer (spreads nearby seeds over unrelated streams)."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _M32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _M32
    x ^= x >> 16
    return x


def fnv1a32(data: bytes) -> int:
    """FNV-1a over bytes: a node id as a 32-bit word for seeding."""
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & _M32
    return h


class XorShift32:
    """xorshift32 (13, 17, 5); a zero state becomes 1, as on the node."""

    __slots__ = ("state",)

    def __init__(self, state: int) -> None:
        self.state = (state & _M32) or 1

    def next(self) -> int:
        x = self.state
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        self.state = x
        return x

    def uniforms(self, n: int) -> F32:
        """`n` draws of `(next() >> 8) * 2^-24`, exact in float32, in draw order."""
        out = np.empty(n, dtype=np.float32)
        x = self.state
        for i in range(n):
            x ^= (x << 13) & _M32
            x ^= x >> 17
            x ^= (x << 5) & _M32
            out[i] = x >> 8
        self.state = x
        out *= np.float32(2.0**-24)
        return out

    def shuffle(self, n: int) -> npt.NDArray[np.intp]:
        """Fisher-Yates over 0..n-1 from the last index down, `j = next() % (i + 1)`."""
        idx = list(range(n))
        x = self.state
        for i in range(n - 1, 0, -1):
            x ^= (x << 13) & _M32
            x ^= x >> 17
            x ^= (x << 5) & _M32
            j = x % (i + 1)
            idx[i], idx[j] = idx[j], idx[i]
        self.state = x
        return np.asarray(idx, dtype=np.intp)


def round_rng(seed: int, node_id: str, round_id: int) -> XorShift32:
    """The generator a node uses for round `round_id`:
    `mix32(seed ^ fnv1a32(node_id) ^ (round_id * 0x9E3779B9))`."""
    word = (seed ^ fnv1a32(node_id.encode("ascii")) ^ (round_id * GOLDEN32)) & _M32
    return XorShift32(mix32(word))


def quantize(x: npt.ArrayLike, bits: int, scale_mode: int, rng: XorShift32) -> tuple[I8, F32]:
    """Stochastic rounding of a 2-D float32 tensor to `bits`-bit codes (WIRE.md).

    scale = max|x| / qmax per tensor (mode 0) or per row (mode 1);
    q = clamp(floor(x / scale + u), -qmax, qmax) with one fresh `u` per value in row-major order,
    and q = 0 where the scale is 0. Returns (codes int8 (rows, cols), scales float32).
    """
    values = np.ascontiguousarray(x, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError("quantize takes a 2-D tensor")
    if bits not in (8, 4, 2):
        raise ValueError(f"bits must be 8, 4 or 2, not {bits}")
    if not np.isfinite(values).all():
        raise ValueError("cannot quantize non-finite values")
    qmax = np.float32((1 << (bits - 1)) - 1)
    absmax = np.abs(values)
    if scale_mode == 1:
        scales = (absmax.max(axis=1) if values.shape[1] else np.zeros(values.shape[0])).astype(
            np.float32
        ) / qmax
        per_value = np.repeat(scales, values.shape[1]).reshape(values.shape)
    elif scale_mode == 0:
        scales = np.array([absmax.max() if values.size else 0.0], dtype=np.float32) / qmax
        per_value = np.full(values.shape, scales[0], dtype=np.float32)
    else:
        raise ValueError(f"scale_mode must be 0 or 1, not {scale_mode}")
    u = rng.uniforms(values.size).reshape(values.shape)
    safe = np.where(per_value == 0, np.float32(1), per_value)
    q = np.floor(values / safe + u)
    q = np.clip(q, -qmax, qmax)
    codes = np.where(per_value == 0, 0, q).astype(np.int8)
    return codes, scales.astype(np.float32)


@dataclass(frozen=True)
class LocalResult:
    """What a local round yields: the (clipped) delta and the UPDATE frame's statistics."""

    delta: F32
    n_samples: int
    epoch_loss: tuple[float, ...]
    accuracy: float
    update_norm: float


def _softmax_rows(z: F32) -> tuple[F32, F32]:
    """Row-wise softmax probabilities and log-sum-exp (shifted by the row max)."""
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    return e / s, (np.log(s) + m)[:, 0]


def train_local(
    w0: F32,
    x: F32,
    y: npt.NDArray[np.integer],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    prox_mu: float,
    clip_norm: float,
    rng: XorShift32,
) -> LocalResult:
    """Minibatch SGD of the head from `w0` on (x, y), as a node runs one round.

    Each epoch shuffles 0..n-1 with `rng`; per batch B:
    `W -= lr * (mean_b (softmax(W x_b) - onehot(y_b)) x_b^T + mu (W - W0))`, x_b with a trailing 1.
    Epoch loss is the mean cross-entropy measured before each step; accuracy is that of the
    trained head; the delta `W - W0` is scaled to `clip_norm` when longer (0 = no clipping).
    """
    k = w0.shape[0]
    n = x.shape[0]
    if n == 0:
        raise ValueError("no samples to train on")
    x1 = np.concatenate([x.astype(np.float32), np.ones((n, 1), np.float32)], axis=1)
    labels = np.asarray(y, dtype=np.intp)
    onehot = np.eye(k, dtype=np.float32)[labels]
    w = w0.astype(np.float32).copy()
    lr32, mu32 = np.float32(lr), np.float32(prox_mu)
    losses: list[float] = []
    for _ in range(epochs):
        order = rng.shuffle(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb = x1[idx]
            p, lse = _softmax_rows(xb @ w.T)
            total += float((lse - (xb @ w.T)[np.arange(len(idx)), labels[idx]]).sum())
            grad = (p - onehot[idx]).T @ xb
            if mu32 != 0:
                w -= lr32 * mu32 * (w - w0)
            w -= (lr32 / np.float32(len(idx))) * grad.astype(np.float32)
        losses.append(max(total / n, 0.0))
    accuracy = float(np.mean(np.argmax(x1 @ w.T, axis=1) == labels))
    delta = (w - w0).astype(np.float32)
    norm = float(np.sqrt(np.sum(delta.astype(np.float64) ** 2)))
    if clip_norm > 0 and norm > clip_norm:
        delta = (delta * np.float32(clip_norm / norm)).astype(np.float32)
    return LocalResult(delta, n, tuple(losses), accuracy, norm)
