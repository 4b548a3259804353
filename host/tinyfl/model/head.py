"""Numpy reference of the node's head trainer (firmware/lib/tinyfl/src/head.cpp).

Why it exists: the firmware's training step is checked against it (testvectors/head/), simulated
nodes train with it, and a reader can see the math of docs/WIRE.md ("Node behaviour on GLOBAL")
without the kernels' loop unrolling. The head is a float32 matrix of k rows (classes) and d + 1
columns (weights, then the bias); every embedding gets a trailing 1.

Arithmetic: weights are float32 between steps, as on the node; inside a step the sums run in
float64 and are rounded to float32 once. That makes the reference deterministic across BLAS
builds (so regenerating the golden vectors reproduces their bytes) and at least as accurate as
the node's float32 sums, which it matches to about 1e-6 relative per step. Shuffles, batching,
the FedProx term, clipping and every random draw are exactly the node's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinyfl.rng import Xorshift32, shuffle

__all__ = [
    "LocalResult",
    "accuracy",
    "logits",
    "sgd_step",
    "softmax_xent",
    "train_local",
    "with_bias",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Labels = npt.NDArray[np.integer]


@dataclass(frozen=True)
class LocalResult:
    """A local round: the (clipped) delta and the UPDATE frame's statistics.

    `orders` holds each epoch's visiting order, so tests can check shuffles against the node.
    """

    delta: F32
    n_samples: int
    epoch_loss: tuple[float, ...]
    accuracy: float
    update_norm: float
    orders: tuple[npt.NDArray[np.int64], ...]


def with_bias(x: npt.ArrayLike) -> F64:
    """Embeddings (n, d) as float64 rows with the trailing 1 the bias column multiplies."""
    x32 = np.asarray(x, dtype=np.float32)
    if x32.ndim != 2:
        raise ValueError("embeddings must be 2-D (n, d)")
    return np.concatenate([x32.astype(np.float64), np.ones((x32.shape[0], 1))], axis=1)


def logits(w: npt.ArrayLike, x: npt.ArrayLike) -> F64:
    """Logits (n, k) of embeddings x (n, d) under head w (k, d + 1), summed in float64."""
    w64 = np.asarray(w, dtype=np.float32).astype(np.float64)
    z: F64 = with_bias(x) @ w64.T
    return z


def softmax_xent(z: npt.ArrayLike, y: npt.ArrayLike) -> tuple[F64, F64]:
    """Softmax probabilities (n, k) and cross-entropy -log p[y] (n,), from the max-shifted logits
    (log(sum exp(z - max)) - (z_y - max)), so large logits cannot overflow."""
    z64 = np.atleast_2d(np.asarray(z, dtype=np.float64))
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    m = z64.max(axis=1, keepdims=True)
    e = np.exp(z64 - m)
    s = e.sum(axis=1, keepdims=True)
    loss: F64 = (np.log(s) - (np.take_along_axis(z64, labels[:, None], axis=1) - m))[:, 0]
    p: F64 = e / s
    return p, loss


def _check_head(w: npt.ArrayLike, name: str) -> F32:
    w32 = np.ascontiguousarray(w, dtype=np.float32)
    if w32.ndim != 2 or w32.shape[0] < 1 or w32.shape[1] < 2:
        raise ValueError(f"{name} must be (k, d + 1) with k >= 1, d >= 1; got {w32.shape}")
    if not np.isfinite(w32).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return w32


def _check_data(w: F32, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[F32, npt.NDArray[np.int64]]:
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    k, cols = w.shape
    if x32.ndim != 2 or x32.shape[1] != cols - 1 or x32.shape[0] != labels.size:
        raise ValueError(f"x must be (n, {cols - 1}) with n labels; got {x32.shape}, {labels.size}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}")
    return x32, labels


def _check_rate(lr: float, mu: float) -> None:
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and > 0, not {lr}")
    if not (np.isfinite(mu) and mu >= 0):
        raise ValueError(f"prox_mu must be finite and >= 0, not {mu}")


def _step(
    w: F32, w0: F32, x1: F64, labels: npt.NDArray[np.int64], lr: np.float64, mu: np.float64
) -> tuple[F32, float]:
    """One minibatch step on rows x1 (B, d + 1): returns (new w, summed loss before the step)."""
    w64 = w.astype(np.float64)
    p, loss = softmax_xent(x1 @ w64.T, labels)
    p[np.arange(labels.size), labels] -= 1.0  # p - onehot(y)
    grad = p.T @ x1 / labels.size
    if mu != 0:
        grad = grad + mu * (w64 - w0.astype(np.float64))
    return (w64 - lr * grad).astype(np.float32), float(loss.sum())


def sgd_step(
    w: npt.ArrayLike,
    w0: npt.ArrayLike,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    lr: float,
    prox_mu: float = 0.0,
) -> tuple[F32, float]:
    """One SGD step on the batch (x, y) (B >= 1 samples): returns (new head, summed loss).

    W -= lr * (mean_b (softmax(W x_b) - onehot(y_b)) x_b^T + mu (W - W0)), x_b with a trailing 1;
    lr and mu act as the float32 values the node receives. The loss is measured before the step.
    """
    w32 = _check_head(w, "w")
    w032 = _check_head(w0, "w0")
    if w032.shape != w32.shape:
        raise ValueError("w and w0 differ in shape")
    x32, labels = _check_data(w32, x, y)
    if labels.size == 0:
        raise ValueError("a step needs at least one sample")
    _check_rate(lr, prox_mu)
    lr64, mu64 = np.float64(np.float32(lr)), np.float64(np.float32(prox_mu))
    return _step(w32, w032, with_bias(x32), labels, lr64, mu64)


def accuracy(w: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Fraction of samples whose largest logit is their label (ties: the lowest class), as the
    node computes it: float32(hits) / float32(n)."""
    w32 = _check_head(w, "w")
    x32, labels = _check_data(w32, x, y)
    if labels.size == 0:
        raise ValueError("accuracy of no samples")
    hits = int(np.count_nonzero(np.argmax(logits(w32, x32), axis=1) == labels))
    return float(np.float32(hits) / np.float32(labels.size))


def train_local(
    w0: npt.ArrayLike,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    prox_mu: float,
    clip_norm: float,
    rng: Xorshift32,
) -> LocalResult:
    """One node's local round from the global head w0 on (x, y), as the firmware runs it.

    Each epoch shuffles 0..n-1 (starting from the identity) with `rng`, then takes minibatches of
    `batch_size` in that order, the last one possibly smaller. Epoch loss: mean cross-entropy of
    the samples, each measured before its step. Accuracy: the trained head (before clipping) on
    all samples. Delta: W - W0, scaled by clip_norm / ||delta|| when clip_norm > 0 and the norm
    exceeds it. Afterwards `rng` has drawn epochs * (n - 1) numbers; the caller quantizes with it.
    """
    w032 = _check_head(w0, "w0")
    x32, labels = _check_data(w032, x, y)
    n = labels.size
    if n == 0:
        raise ValueError("no samples to train on")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    _check_rate(lr, prox_mu)
    if not (np.isfinite(clip_norm) and clip_norm >= 0):
        raise ValueError(f"clip_norm must be finite and >= 0, not {clip_norm}")
    lr64, mu64 = np.float64(np.float32(lr)), np.float64(np.float32(prox_mu))
    x1 = with_bias(x32)
    w = w032.copy()
    losses: list[float] = []
    orders: list[npt.NDArray[np.int64]] = []
    for _ in range(epochs):
        order = shuffle(np.arange(n), rng)
        orders.append(order)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            w, loss = _step(w, w032, x1[idx], labels[idx], lr64, mu64)
            total += loss
        losses.append(float(np.float32(total / n)))
    acc = accuracy(w, x32, labels)
    if not np.isfinite(w).all():
        raise ValueError("training diverged (non-finite weights)")
    delta = (w - w032).astype(np.float32)
    norm = np.float32(np.sqrt(np.sum(delta.astype(np.float64) ** 2)))
    if clip_norm > 0 and norm > np.float32(clip_norm):
        delta = (delta * (np.float32(clip_norm) / norm)).astype(np.float32)
    return LocalResult(delta, n, tuple(losses), acc, float(norm), tuple(orders))
