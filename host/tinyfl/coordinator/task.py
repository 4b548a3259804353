"""What a run trains: the head's shape, the model identity nodes must report, and the held-out
test set the coordinator evaluates every round's global head on.

A `Task` is deliberately small so that any model can plug in: a built model folder (`models/har`:
the test set is the int8 backbone's embeddings of the held-out users' windows; `models/nsl-kdd`:
its embeddings of the KDDTest+ records; both computed by the numpy backbone that is bit-exact with
the node's) and a synthetic task for tests and benchmarks. The coordinator never looks past these
fields.

Evaluation is server-side on embeddings: logits = X @ W[:, :-1].T + W[:, -1].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from tinyfl.errors import UsageError

if TYPE_CHECKING:  # the model package is imported when a backbone task is loaded
    from tinyfl.model.artifacts import ModelArtifacts

__all__ = [
    "Evaluation",
    "Task",
    "evaluate",
    "har_task",
    "load_task",
    "nsl_kdd_task",
    "synthetic_task",
]

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
TASKS = ("har", "nsl-kdd", "synthetic")


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

    def initial_head(self) -> F32:
        """Zeros: with softmax regression every start is as good, and zero is reproducible."""
        return np.zeros(self.head_shape, dtype=np.float32)


@dataclass(frozen=True)
class Evaluation:
    """The global head on the test set: accuracy, mean cross-entropy, F1 per class (in class
    order; 0 for a class never predicted nor present) and their unweighted mean."""

    accuracy: float
    loss: float
    f1: tuple[float, ...]
    macro_f1: float


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


def har_task(model: str = "har", with_train: bool = False) -> Task:
    """HAR on a built backbone (`models/har` or another folder `tinyfl model build` wrote).

    Test set: every label-pure window of the held-out users, quantized as the nodes' blobs are
    (`har.fit_quantization` on the source users, which the model's input tensor must equal) and
    embedded by the numpy int8 backbone. `with_train` adds the fleet users' windows (for
    simulations and baselines; about 4 s more).
    """
    from tinyfl.data import har
    from tinyfl.model.artifacts import load_artifacts
    from tinyfl.model.tflite import ModelError

    art = load_artifacts(model)
    windows = har.load(all_activities=len(art.classes) > 6)
    scale, zero_point = har.fit_quantization(windows.split("source").x)
    art.check_input(har.WINDOW * len(har.CHANNELS), scale, zero_point, "the nodes' windows")
    if tuple(windows.classes) != art.classes:
        raise ModelError(f"{art.folder}: classes {art.classes} are not the data's {windows.classes}")

    def embedded(split: Literal["test", "fleet"]) -> tuple[F32, U8]:
        part = windows.split(split)
        codes = har.quantize(part.x, scale, zero_point)
        return art.dequantize(art.embed(codes)), part.y.astype(np.uint8)

    train = embedded("fleet") if with_train else None
    return _backbone_task("har", art, embedded("test"), train)


def _backbone_task(name: str, art: ModelArtifacts, test: tuple[F32, U8],
                   train: tuple[F32, U8] | None) -> Task:
    """A task whose rows are the backbone's dequantized embeddings."""
    return Task(
        name=name,
        embed_dim=art.embed_dim,
        n_classes=len(art.classes),
        model_hash=art.model_hash,
        class_names=art.classes,
        test_x=test[0],
        test_y=test[1],
        train_x=None if train is None else train[0],
        train_y=None if train is None else train[1],
    )


def nsl_kdd_task(model: str = "nsl-kdd", with_train: bool = False) -> Task:
    """NSL-KDD on a built backbone (`models/nsl-kdd` or another folder `tinyfl model build
    --task nsl-kdd` wrote), whose input is the 64 feature codes of a record.

    Test set: every KDDTest+ record, encoded with the feature specification fitted on the whole
    KDDTrain+_20Percent file (as the build and `tinyfl data partition` do), quantized as the
    nodes' blobs are and embedded by the numpy int8 backbone. `with_train` adds the fleet's rows
    of the training file (not the backbone's source rows, which no node holds), embedded the same
    way (about 1 s more).
    """
    from tinyfl.data import nslkdd
    from tinyfl.model.artifacts import load_artifacts
    from tinyfl.model.tflite import ModelError

    art = load_artifacts(model)
    art.check_input(nslkdd.FEATURE_DIM, nslkdd.FEATURE_SCALE, nslkdd.FEATURE_ZERO_POINT,
                    "the nodes' feature codes")
    if art.classes != tuple(nslkdd.CLASSES):
        raise ModelError(f"{art.folder}: classes {art.classes} are not NSL-KDD's {nslkdd.CLASSES}")
    train = nslkdd.load(nslkdd.TRAIN_FILE)
    spec = nslkdd.fit(train)

    def embedded(records: nslkdd.Records, rows: npt.NDArray[np.bool_] | None = None
                 ) -> tuple[F32, U8]:
        codes = nslkdd.quantize_features(nslkdd.encode(records, spec))
        labels = records.labels
        if rows is not None:
            codes, labels = codes[rows], labels[rows]
        return art.dequantize(art.embed(codes)), labels.astype(np.uint8)

    fleet_rows = ~nslkdd.source_mask(train.labels.size)
    fleet = embedded(train, fleet_rows) if with_train else None
    return _backbone_task("nsl-kdd", art, embedded(nslkdd.load(nslkdd.TEST_FILE)), fleet)


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


def load_task(spec: str, with_train: bool = False) -> Task:
    """A task from its command-line name: `har` or `nsl-kdd` (or `har:MODEL_FOLDER`,
    `nsl-kdd:MODEL_FOLDER`), or `synthetic[:d=64,k=6,seed=0]`. `with_train` asks for the fleet's
    training data where it is computed on demand (the backbone tasks' embeddings); the synthetic
    task always carries it.

    UsageError for an unknown name or malformed parameters; the dataset's own error (with how to
    fetch it) when NSL-KDD files are missing.
    """
    name, _, rest = spec.strip().partition(":")
    if name == "har":
        return har_task(rest or "har", with_train=with_train)
    if name == "nsl-kdd":
        return nsl_kdd_task(rest or "nsl-kdd", with_train=with_train)
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
    raise UsageError(
        f"unknown task {spec!r}; choose har[:MODEL_FOLDER], nsl-kdd[:MODEL_FOLDER] or "
        "synthetic[:d=64,k=6,seed=0]"
    )
