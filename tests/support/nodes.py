"""Helpers for tests that run real node firmware (native processes and QEMU boards).

The data is real: NSL-KDD records as 64-value feature vectors in feature-vector mode (kind-1
blobs carrying the feature specification's hash), which the firmware keeps supporting for nodes
without a backbone; what `tinyfl data partition` gives a fleet (kind 2, through the compiled
backbone) comes from `tinyfl.fleet.partition.build_partition`. Tests build the firmware with
`tinyfl.fleet.build_firmware` (incremental).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinyfl.data import nslkdd
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec
from tinyfl.wire import BlobKind, DataBlob, Global, Tensor


@dataclass(frozen=True)
class FeatureData:
    features: npt.NDArray[np.float32]  # (n, 64) in [0, 1]
    labels: npt.NDArray[np.uint8]
    model_hash: bytes
    n_classes: int


def load_features() -> FeatureData:
    train = nslkdd.load(nslkdd.TRAIN_FILE)
    spec = nslkdd.fit(train)
    return FeatureData(nslkdd.encode(train, spec), train.labels, spec.model_hash(),
                       len(nslkdd.CLASSES))


def make_blob(data: FeatureData, n: int, seed: int) -> DataBlob:
    """`n` records drawn without replacement, quantized as the node's cache stores them."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.labels), size=n, replace=False)
    return DataBlob(kind=BlobKind.FEATURES, n_classes=data.n_classes, scale=nslkdd.FEATURE_SCALE,
                    zero_point=nslkdd.FEATURE_ZERO_POINT, model_hash=data.model_hash,
                    labels=data.labels[idx], samples=nslkdd.quantize_features(data.features[idx]))


def make_global(round_id: int, blob: DataBlob, **overrides: object) -> Global:
    """A valid GLOBAL for `blob`'s shape: zero float32 head, 3 epochs, 8-bit per-row uplink."""
    k, d = blob.n_classes, blob.dim
    fields: dict[str, object] = {
        "round_id": round_id, "model_hash": blob.model_hash, "embed_dim": d, "n_classes": k,
        "epochs": 3, "batch_size": 16, "lr": 0.5, "prox_mu": 0.0, "clip_norm": 0.0,
        "uplink_bits": 8, "uplink_scale_mode": 1, "seed": 1234, "selected": (),
        "head": Tensor.float32(np.zeros((k, d + 1), np.float32)),
    }
    fields.update(overrides)
    return Global(**fields)  # type: ignore[arg-type]


def start_node(emulator: Emulator, image: Path, workdir: Path, node_id: str, blob: DataBlob,
               host: str, port: int, prefix: str, keep_alive_s: int = 0) -> NodeProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    blob_path = workdir / f"{node_id}.blob"
    blob.write(blob_path)
    node = NodeProcess(NodeSpec(node_id, blob_path, workdir, emulator, keep_alive_s), image,
                       host, port, prefix)
    node.start()
    return node


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               diagnostics: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{diagnostics()}")
