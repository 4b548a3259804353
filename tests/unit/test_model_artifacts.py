"""The committed model folders (models/<name>/) agree with their metadata and fit the node.

No TensorFlow needed: the files are read with TinyFL's own .tflite reader and numpy backbone;
LiteRT is used when installed (the `model` extra) to check the .tflite loads and agrees.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfl.model.backbone import prepare, run
from tinyfl.model.firmware_blob import export_blob
from tinyfl.model.tflite import read_model

ROOT = Path(__file__).resolve().parents[2]
TASKS = ("har", "nsl-kdd")
FILES = ("backbone.tflite", "backbone.tfmb", "backbone.h", "head_init.npy", "test.npz",
         "metadata.json")


def _meta(task: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((ROOT / "models" / task / "metadata.json").read_text())
    return meta


@pytest.mark.parametrize("task", TASKS)
def test_files_exist_and_hashes_match(task: str) -> None:
    folder = ROOT / "models" / task
    for name in FILES:
        assert (folder / name).is_file(), name
    meta = _meta(task)
    assert meta["name"] == task and meta["metadata_version"] == 2
    for name, info in meta["files"].items():
        data = (folder / name).read_bytes()
        assert len(data) == info["bytes"], name
        assert hashlib.sha256(data).hexdigest() == info["sha256"], name
    blob = (folder / "backbone.tfmb").read_bytes()
    assert meta["model_hash"] == hashlib.sha256(blob).digest()[:8].hex()


@pytest.mark.parametrize("task", TASKS)
def test_blob_is_the_export_of_the_tflite(task: str) -> None:
    folder = ROOT / "models" / task
    model = read_model((folder / "backbone.tflite").read_bytes())
    assert export_blob(model) == (folder / "backbone.tfmb").read_bytes()
    assert f"[{_meta(task)['firmware_blob_bytes']}]" in (folder / "backbone.h").read_text()


@pytest.mark.parametrize("task", TASKS)
def test_shapes_quantization_and_sizes(task: str) -> None:
    meta = _meta(task)
    model = read_model((ROOT / "models" / task / "backbone.tflite").read_bytes())
    x, y = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    assert list(x.shape[1:]) == meta["input"]["shape"]
    assert [int(np.prod(y.shape[1:]))] == meta["embedding"]["shape"]
    assert meta["embedding"]["shape"][0] <= 64
    assert x.quant is not None and y.quant is not None
    assert x.quant.scale[0] == meta["input"]["scale"]
    assert x.quant.zero_point[0] == meta["input"]["zero_point"]
    assert y.quant.scale[0] == meta["embedding"]["scale"]
    assert y.quant.zero_point[0] == meta["embedding"]["zero_point"]
    assert sorted({op.name for op in model.operators}) == meta["ops"]
    assert meta["budget"]["fits"] and meta["budget"]["board"] == "qemu_cortex_m4"
    assert meta["budget"]["flash_bytes"] > meta["firmware_blob_bytes"]
    assert meta["activation_scratch_bytes"] <= 16 * 1024  # TINYFL_BACKBONE_ARENA's default
    with np.load(ROOT / "models" / task / "test.npz") as test:
        assert test["embeddings"].dtype == np.int8
        assert test["embeddings"].shape == (meta["test_set"]["samples"],
                                            meta["embedding"]["shape"][0])
        assert test["labels"].max() < len(meta["classes"])
    head = np.load(ROOT / "models" / task / "head_init.npy")
    assert head.dtype == np.float32
    assert list(head.shape) == [len(meta["classes"]), meta["embedding"]["shape"][0] + 1]
    assert np.isfinite(head).all()


@pytest.mark.parametrize("task", TASKS)
def test_litert_loads_and_matches_numpy_backbone(task: str) -> None:
    try:
        lite = importlib.import_module("ai_edge_litert.interpreter")
    except ImportError:
        pytest.skip("ai-edge-litert not installed (the model extra)")
    tflite = (ROOT / "models" / task / "backbone.tflite").read_bytes()
    interp = lite.Interpreter(model_content=tflite,
                              experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    layers = prepare(read_model(tflite))
    rng = np.random.default_rng(7)
    for _ in range(4):
        x = rng.integers(-128, 128, size=tuple(inp["shape"]), dtype=np.int8)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        ref = interp.get_tensor(out["index"]).reshape(-1)
        assert np.array_equal(run(layers, x[0]), ref)
