"""A built model folder (models/<task>/, written by `tinyfl model build`), read without TensorFlow.

What the host needs from it: the model hash nodes report, the classes, the input and embedding
quantization, and the int8 backbone itself (`tinyfl.model.backbone`, bit-exact with the node), so
that the coordinator can evaluate heads on the embeddings the nodes would compute.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.model.backbone import Graph, prepare, run
from tinyfl.model.firmware_blob import check_blob_version
from tinyfl.model.tflite import ModelError, read_model

__all__ = ["MODELS_ROOT", "ModelArtifacts", "load_artifacts", "model_dir"]

MODELS_ROOT = Path(__file__).resolve().parents[3] / "models"

I8 = npt.NDArray[np.int8]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class ModelArtifacts:
    folder: Path
    task: str
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

    def embed(self, codes: I8) -> I8:
        """The int8 embeddings (n, d) of n int8 inputs, exactly as the node computes them."""
        codes = np.asarray(codes, dtype=np.int8)
        n = codes.shape[0]
        out = np.empty((n, self.embed_dim), dtype=np.int8)
        for i in range(n):
            out[i] = run(self.layers, codes[i])
        return out

    def check_input(self, values: int, scale: float, zero_point: int, what: str) -> None:
        """ModelError unless the input tensor is exactly what the nodes hold: `values` int8 codes
        per sample with this scale (compared as float32, what both the blob and the .tflite
        store) and zero point. A node refuses a blob whose codes are not its model's input, so a
        mismatch is found here rather than by a fleet of nodes failing at boot."""
        size = int(np.prod(self.input_shape, dtype=np.int64))
        if self.input_zero_point != zero_point or np.float32(self.input_scale) != np.float32(scale):
            raise ModelError(f"{self.folder} expects input codes with scale {self.input_scale!r} "
                             f"and zero point {self.input_zero_point}, {what} have {scale!r}, "
                             f"{zero_point}")
        if size != values:
            raise ModelError(f"{self.folder} expects {size} input values per sample, {what} "
                             f"have {values}")

    def dequantize(self, embeddings: I8) -> F32:
        """The head's input: (q - zero_point) * scale in float32, the node's own arithmetic."""
        q = np.asarray(embeddings, dtype=np.float32)
        out: F32 = ((q - np.float32(self.embed_zero_point)) * np.float32(self.embed_scale)).astype(
            np.float32
        )
        return out


def model_dir(task_or_path: str | Path) -> Path:
    """`har` -> models/har in this checkout; anything with a slash is a folder path as given."""
    text = str(task_or_path)
    return Path(text) if "/" in text or Path(text).is_dir() else MODELS_ROOT / text


def load_artifacts(folder: str | Path) -> ModelArtifacts:
    """Reads and cross-checks a model folder. ModelError (exit 8) naming what is wrong: missing
    files, a backbone whose blob hash is not the metadata's model hash, a corrupt .tflite."""
    folder = model_dir(folder)
    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        raise ModelError(f"{folder} is not a model folder (no metadata.json); "
                         "build one with `tinyfl model build --task har`")
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        blob = (folder / "backbone.tfmb").read_bytes()
        tflite = (folder / "backbone.tflite").read_bytes()
        model_hash = bytes.fromhex(meta["model_hash"])
        inp, emb = meta["input"], meta["embedding"]
        classes = tuple(str(c) for c in meta["classes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{folder}: incomplete or unreadable model folder ({exc})") from exc
    if hashlib.sha256(blob).digest()[:8] != model_hash:
        raise ModelError(f"{folder}: backbone.tfmb does not have the model hash "
                         f"{model_hash.hex()} of metadata.json (rebuild the folder)")
    # After the hash: an old folder (a v1 blob with its own hash) gets the re-export hint.
    check_blob_version(blob, f"{folder}/backbone.tfmb")
    layers = prepare(read_model(tflite))
    return ModelArtifacts(
        folder=folder,
        task=str(meta.get("task", folder.name)),
        model_hash=model_hash,
        classes=classes,
        input_shape=tuple(int(v) for v in inp["shape"]),
        input_scale=float(inp["scale"]),
        input_zero_point=int(inp["zero_point"]),
        embed_dim=int(emb["shape"][-1]),
        embed_scale=float(emb["scale"]),
        embed_zero_point=int(emb["zero_point"]),
        layers=layers,
        metadata=meta,
    )
