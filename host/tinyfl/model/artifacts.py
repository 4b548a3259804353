"""A model folder (models/<name>/, written by `tinyfl model build`), read without TensorFlow.

What the host needs from it: the model hash nodes report, the classes, the input and embedding
quantization, the int8 backbone itself (`tinyfl.model.backbone`, bit-exact with the node), the
initial head, the held-out test set's embeddings the coordinator scores every round on, and the
split rule that says which samples of the data file are the fleet's. Nothing here knows which
dataset a folder was built from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.data.splits import SplitRule
from tinyfl.dsp.stage import FEATURE_SCALE, DspStage
from tinyfl.model.backbone import Graph, prepare, run
from tinyfl.model.firmware_blob import check_blob_version, model_hash
from tinyfl.model.tflite import ModelError, read_model

__all__ = ["METADATA_VERSION", "MODELS_ROOT", "ModelArtifacts", "load_artifacts", "model_dir"]

METADATA_VERSION = 2

MODELS_ROOT = Path(__file__).resolve().parents[3] / "models"

I8 = npt.NDArray[np.int8]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class ModelArtifacts:
    folder: Path
    name: str
    model_hash: bytes
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    embed_dim: int
    embed_scale: float
    embed_zero_point: int
    layers: Graph = field(repr=False)
    metadata: dict[str, Any] = field(repr=False)
    stage: DspStage | None = None  # the DSP stage the node runs on raw windows before the backbone

    def embed(self, codes: I8) -> I8:
        """The int8 embeddings (n, d) of n int8 inputs (raw windows when the model has a DSP
        stage), exactly as the node computes them."""
        codes = np.asarray(codes, dtype=np.int8)
        if self.stage is not None:
            codes = self.stage.run(codes)
        n = codes.shape[0]
        out = np.empty((n, self.embed_dim), dtype=np.int8)
        for i in range(n):
            out[i] = run(self.layers, codes[i])
        return out

    def check_sample_size(self, values: int, what: str) -> None:
        """ModelError unless one sample of `what` has as many values as the model's input (the
        codes are the model's own quantization of them, so the count is what can differ)."""
        size = int(np.prod(self.input_shape, dtype=np.int64))
        if size != values:
            raise ModelError(f"{self.folder} expects {size} input values per sample, {what} "
                             f"have {values}")

    @property
    def split(self) -> SplitRule:
        """Which samples of the data file are the backbone's source and the held-out test set;
        the rest are the fleet's (tinyfl.data.splits)."""
        return SplitRule.from_json(self.metadata["data"]["split"])

    @property
    def data_sha256(self) -> str:
        return str(self.metadata["data"]["sha256"])

    def initial_head(self) -> F32:
        """head_init.npy: the head a run starts from by default, (k, d + 1) float32."""
        head = _load_array(self.folder / "head_init.npy", "head_init.npy")
        if head.shape != (len(self.classes), self.embed_dim + 1) or not np.isfinite(head).all():
            raise ModelError(f"{self.folder}/head_init.npy is not a finite "
                             f"({len(self.classes)}, {self.embed_dim + 1}) head")
        return head.astype(np.float32)

    def test_set(self) -> tuple[F32, npt.NDArray[np.uint8]]:
        """The held-out samples' dequantized embeddings (n, d) and labels (n,), from test.npz."""
        path = self.folder / "test.npz"
        try:
            with np.load(path, allow_pickle=False) as npz:
                emb, labels = npz["embeddings"], npz["labels"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable test set ({exc}); rebuild the model folder"
                             ) from exc
        if (emb.dtype != np.int8 or emb.ndim != 2 or emb.shape[1] != self.embed_dim
                or labels.shape != (emb.shape[0],) or labels.size == 0
                or int(labels.max()) >= len(self.classes)):
            raise ModelError(f"{path}: expected int8 embeddings (n, {self.embed_dim}) and n "
                             f"labels below {len(self.classes)}")
        return self.dequantize(emb), labels.astype(np.uint8)

    def dequantize(self, embeddings: I8) -> F32:
        """The head's input: (q - zero_point) * scale in float32, the node's own arithmetic."""
        q = np.asarray(embeddings, dtype=np.float32)
        out: F32 = ((q - np.float32(self.embed_zero_point)) * np.float32(self.embed_scale)).astype(
            np.float32
        )
        return out


def _load_array(path: Path, what: str) -> npt.NDArray[np.float32]:
    try:
        out: npt.NDArray[np.float32] = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable {what} ({exc})") from exc
    return out


def model_dir(name_or_path: str | Path) -> Path:
    """A folder path as given when it exists or has a slash; else models/NAME of this checkout
    (`har` -> models/har)."""
    text = str(name_or_path)
    return Path(text) if "/" in text or Path(text).is_dir() else MODELS_ROOT / text


def load_artifacts(folder: str | Path) -> ModelArtifacts:
    """Reads and cross-checks a model folder. ModelError (exit 8) naming what is wrong: missing
    files, a backbone whose blob hash is not the metadata's model hash, a corrupt .tflite."""
    folder = model_dir(folder)
    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        raise ModelError(f"{folder} is not a model folder (no metadata.json); "
                         "build one with `tinyfl model build --data FILE --out DIR`")
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        blob = (folder / "backbone.tfmb").read_bytes()
        tflite = (folder / "backbone.tflite").read_bytes()
        expected_hash = bytes.fromhex(meta["model_hash"])
        inp, emb = meta["input"], meta["embedding"]
        classes = tuple(str(c) for c in meta["classes"])
        version = int(meta.get("metadata_version", 1))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{folder}: incomplete or unreadable model folder ({exc})") from exc
    if version != METADATA_VERSION:
        raise ModelError(f"{folder}: metadata version {version}, this TinyFL reads version "
                         f"{METADATA_VERSION}; rebuild the folder with `tinyfl model build`")
    stage = _stage(folder, inp)
    if model_hash(blob, stage.to_record() if stage else b"") != expected_hash:
        what = "backbone.tfmb with the DSP stage" if stage else "backbone.tfmb"
        raise ModelError(f"{folder}: {what} does not have the model hash "
                         f"{expected_hash.hex()} of metadata.json (rebuild the folder)")
    # After the hash: an old folder (a v1 blob with its own hash) gets the re-export hint.
    check_blob_version(blob, f"{folder}/backbone.tfmb")
    layers = prepare(read_model(tflite))
    if stage is not None and (int(np.prod(layers.in_shape)) != stage.features
                              or np.float32(layers.in_quant[0]) != np.float32(FEATURE_SCALE)
                              or layers.in_quant[1] != 0):
        raise ModelError(f"{folder}: the backbone does not take the DSP stage's {stage.features} "
                         f"features (scale {FEATURE_SCALE}, zero point 0); rebuild the folder")
    return ModelArtifacts(
        folder=folder,
        name=str(meta.get("name", folder.name)),
        model_hash=expected_hash,
        classes=classes,
        input_shape=tuple(int(v) for v in inp["shape"]),
        input_scale=float(inp["scale"]),
        input_zero_point=int(inp["zero_point"]),
        embed_dim=int(emb["shape"][-1]),
        embed_scale=float(emb["scale"]),
        embed_zero_point=int(emb["zero_point"]),
        layers=layers,
        metadata=meta,
        stage=stage,
    )


def _stage(folder: Path, inp: dict[str, Any]) -> DspStage | None:
    if "dsp" not in inp:
        return None
    try:
        return DspStage.from_json(inp["dsp"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{folder}: metadata.json has an invalid DSP stage ({exc}); rebuild "
                         "the folder") from exc
