"""Centrally trained head on frozen embeddings: how good a backbone is for the fleet.

Why: the fleet only ever trains the head, so the backbone's worth is the accuracy a head reaches
on its embeddings. The head is trained exactly as a node trains it (tinyfl.model.head.train_local:
minibatch SGD on the dequantized int8 embedding with a trailing 1), here on all fleet samples at
once, and evaluated on the held-out test split. Shared by `tinyfl model build` (float and int8
backbones) and bench/bench_model.py, so both report the same procedure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinyfl.model.head import accuracy, logits, train_local
from tinyfl.rng import Xorshift32

__all__ = ["HEAD_BATCH", "HEAD_EPOCHS", "HEAD_LR", "HeadFit", "dequantize", "fit_head", "predict"]

HEAD_EPOCHS = 30
HEAD_BATCH = 32
HEAD_LR = 0.05
HEAD_SEED = 0x7F4A7C15

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class HeadFit:
    w: F32
    train_accuracy: float
    test_accuracy: float


def dequantize(q: npt.NDArray[np.int8], scale: float, zero_point: int) -> F32:
    """The node's view of an int8 embedding: (q - zero_point) * scale in float32."""
    out: F32 = ((q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(
        np.float32
    )
    return out


def fit_head(
    x: F32,
    y: npt.NDArray[np.integer],
    x_test: F32,
    y_test: npt.NDArray[np.integer],
    n_classes: int,
    *,
    epochs: int = HEAD_EPOCHS,
    batch_size: int = HEAD_BATCH,
    lr: float = HEAD_LR,
    seed: int = HEAD_SEED,
) -> HeadFit:
    """Trains a k x (d + 1) head from zeros on (x, y) with the node's SGD; test accuracy."""
    w0 = np.zeros((n_classes, x.shape[1] + 1), np.float32)
    res = train_local(w0, x, y, epochs=epochs, batch_size=batch_size, lr=lr, prox_mu=0.0,
                      clip_norm=0.0, rng=Xorshift32(seed))
    w = (w0 + res.delta).astype(np.float32)
    return HeadFit(w, accuracy(w, x, y), accuracy(w, x_test, y_test))


def predict(w: F32, x: F32) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = np.argmax(logits(w, x), axis=1).astype(np.int64)
    return out
