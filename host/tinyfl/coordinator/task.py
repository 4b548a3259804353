"""What a run trains: the head's shape, the model identity nodes must report, and the held-out
test set the coordinator evaluates every round's global head on.

A `Task` is deliberately small so that any model can plug in: a model folder (its held-out test
set is the int8 backbone's embeddings of the held-out samples, stored in the folder by `tinyfl
model build`) or a synthetic task for tests and benchmarks. The coordinator never looks past these
fields and never reads a dataset.

Evaluation is server-side on embeddings: logits = X @ W[:, :-1].T + W[:, -1].
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinyfl.errors import UsageError

__all__ = [
    "Evaluation",
    "Task",
    "evaluate",
    "load_task",
    "model_task",
    "synthetic_task",
]

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, eq=False)
class Task:
    """A trainable head and its data, as far as the coordinator is concerned.

    `train_x`/`train_y` are optional: only simulations need them (to give simulated nodes data);
    a real fleet's training data never leaves the nodes.
    """

    name: str
    embed_dim: int
    n_classes: int
    model_hash: bytes
    class_names: tuple[str, ...]
    test_x: F32 = field(repr=False)
    test_y: U8 = field(repr=False)
    train_x: F32 | None = field(default=None, repr=False)
    train_y: U8 | None = field(default=None, repr=False)
    start_head: F32 | None = field(default=None, repr=False)  # the model folder's initial head

    def __post_init__(self) -> None:
        if len(self.model_hash) != 8:
            raise ValueError("model_hash is 8 bytes")
        if len(self.class_names) != self.n_classes:
            raise ValueError("one class name per class")
        if self.test_x.ndim != 2 or self.test_x.shape[1] != self.embed_dim:
            raise ValueError(f"test_x must be (n, {self.embed_dim})")
        if self.test_y.shape != (self.test_x.shape[0],):
            raise ValueError("one test label per test row")

    @property
    def head_shape(self) -> tuple[int, int]:
        """(k, d + 1): one row per class, bias last (docs/WIRE.md)."""
        return (self.n_classes, self.embed_dim + 1)

    def initial_head(self, which: str = "zeros") -> F32:
        """The head round 1 starts from: "zeros" (reproducible for any task), "init" (the model
        folder's initial head: its pretraining or user-given head), or a path to a .npy of
        shape (k, d + 1). UsageError when it cannot be had or has the wrong shape."""
        if which == "zeros":
            return np.zeros(self.head_shape, dtype=np.float32)
        if which == "init":
            if self.start_head is None:
                raise UsageError(f"task {self.name} has no initial head; use zeros or a .npy")
            head = self.start_head
        else:
            try:
                head = np.load(which, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise UsageError(f"--initial-head {which}: not a readable .npy ({exc})") from exc
        if head.shape != self.head_shape or not np.isfinite(head).all():
            raise UsageError(f"--initial-head {which}: need a finite head of shape "
                             f"{self.head_shape}, got {head.shape}")
        return np.asarray(head, dtype=np.float32)


@dataclass(frozen=True)
class Evaluation:
    """The global head on the test set: accuracy, mean cross-entropy, F1 per class (in class
    order; 0 for a class never predicted nor present) and their unweighted mean."""

    accuracy: float
    loss: float
    f1: tuple[float, ...]
    macro_f1: float

    def fields(self, class_names: Sequence[str]) -> dict[str, object]:
        """What a round record shows of it (metrics.py)."""
        return {"test_accuracy": self.accuracy, "test_loss": self.loss,
                "f1": dict(zip(class_names, self.f1)), "macro_f1": self.macro_f1}


def evaluate(head: npt.NDArray[np.floating], x: F32, y: U8) -> Evaluation:
    """Scores `head` (k, d+1) on (x, y) in float64, so the numbers do not depend on batch order."""
    w = np.asarray(head, dtype=np.float64)
    k = w.shape[0]
    logits = np.asarray(x, dtype=np.float64) @ w[:, :-1].T + w[:, -1]
    labels = np.asarray(y, dtype=np.intp)
    m = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
    loss = float(np.mean(lse - logits[np.arange(len(labels)), labels])) if len(labels) else 0.0
    pred = np.argmax(logits, axis=1)
    accuracy = float(np.mean(pred == labels)) if len(labels) else 0.0
    f1 = []
    for c in range(k):
        tp = int(np.sum((pred == c) & (labels == c)))
        fp = int(np.sum((pred == c) & (labels != c)))
        fn = int(np.sum((pred != c) & (labels == c)))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return Evaluation(accuracy, loss, tuple(f1), float(np.mean(f1)))


def model_task(model: str | Path, data: str | Path | None = None) -> Task:
    """The task of a model folder (`models/har`, or any folder `tinyfl model build` wrote): its
    head shape, model hash and classes, scored on the folder's held-out test set (test.npz: the
    int8 backbone's embeddings, bit-exact with the node's). With `data` (the dataset file the
    model was built from), the fleet's samples embedded the same way come along as training rows,
    for simulations and references."""
    from tinyfl.model.artifacts import load_artifacts

    art = load_artifacts(model)
    test_x, test_y = art.test_set()
    train_x = train_y = None
    if data is not None:
        from tinyfl.data.dataset import load_dataset
        from tinyfl.data.splits import quantize, split_rows

        dataset = load_dataset(data)
        if dataset.sha256 != art.data_sha256:
            raise UsageError(f"{data} is not the data file {art.folder} was built from")
        fleet = dataset.select(split_rows(dataset, art.split).fleet)
        codes = quantize(fleet.x, art.input_scale, art.input_zero_point)
        train_x = art.dequantize(art.embed(codes.reshape(len(fleet), -1)))
        train_y = fleet.y.astype(np.uint8)
    return Task(name=art.name, embed_dim=art.embed_dim, n_classes=len(art.classes),
                model_hash=art.model_hash, class_names=art.classes, test_x=test_x,
                test_y=test_y, train_x=train_x, train_y=train_y,
                start_head=art.initial_head())


def synthetic_task(
    embed_dim: int = 64,
    n_classes: int = 6,
    seed: int = 0,
    n_train: int = 20_000,
    n_test: int = 2_000,
) -> Task:
    """Gaussian class clusters in [0, 1]^d: a learnable stand-in of any (d, k) head, with no
    files to fetch, for tests and the benchmark (its default shape is the HAR head's, 64 x 6)."""
    if not 1 <= embed_dim <= 4096 or not 2 <= n_classes <= 255:
        raise UsageError("synthetic task: d must be 1..4096 and k 2..255")
    rng = np.random.default_rng([seed, embed_dim, n_classes])
    centers = rng.uniform(0.2, 0.8, size=(n_classes, embed_dim))

    def draw(n: int) -> tuple[F32, U8]:
        y = rng.integers(0, n_classes, size=n).astype(np.uint8)
        x = centers[y] + rng.normal(0.0, 0.25, size=(n, embed_dim))
        return np.clip(x, 0.0, 1.0).astype(np.float32), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    digest = hashlib.sha256(f"tinyfl synthetic v1 d={embed_dim} k={n_classes} seed={seed}".encode())
    return Task(
        name=f"synthetic:d={embed_dim},k={n_classes},seed={seed}",
        embed_dim=embed_dim,
        n_classes=n_classes,
        model_hash=digest.digest()[:8],
        class_names=tuple(f"class{c}" for c in range(n_classes)),
        test_x=test_x,
        test_y=test_y,
        train_x=train_x,
        train_y=train_y,
    )


def load_task(spec: str, data: str | Path | None = None) -> Task:
    """A task from its command-line form: a model folder (a path, or a name under models/ such
    as `har`; `data` adds the fleet's training rows, see `model_task`), or
    `synthetic[:d=64,k=6,seed=0]`. UsageError for malformed parameters; ModelError (exit 8) for a
    folder that is not a complete model folder."""
    name, _, rest = spec.strip().partition(":")
    if name == "synthetic":
        params = {"d": 64, "k": 6, "seed": 0}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in params:
                raise UsageError(f"bad task {spec!r}: synthetic takes d=, k= and seed=")
            try:
                params[key] = int(value)
            except ValueError:
                raise UsageError(f"bad task {spec!r}: {key} must be an integer") from None
        return synthetic_task(params["d"], params["k"], params["seed"])
    return model_task(spec, data)
