"""The model check: what the node cannot run is refused before anything is written, with a
ModelError (exit code 8) that names the op, its operator index and its output tensor."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from pathlib import Path

import pytest

from tinyfl.model import backbone as bb
from tinyfl.model.firmware_blob import export_blob
from tinyfl.model.layers import output_size
from tinyfl.model.plan import REF_EMBEDDING, REF_INPUT, arena_bytes, plan_arena
from tinyfl.model.tflite import ModelError, Quantization, TfliteModel, read_model

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "testvectors" / "backbone"


def _model(name: str = "tiny") -> TfliteModel:
    return read_model((VECTORS / f"{name}.tflite").read_bytes())


def _with_tensor(model: TfliteModel, index: int, **changes: object) -> TfliteModel:
    tensors = list(model.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(model, tensors=tuple(tensors))


def _conv(model: TfliteModel) -> tuple[int, int, int]:
    op = next(op for op in model.operators if op.name == "CONV_2D")
    return op.index, op.inputs[1], op.outputs[0]


def test_float_activation_is_refused_naming_the_op() -> None:
    model = _model()
    index, _, out = _conv(model)
    bad = _with_tensor(model, out, type=0)
    with pytest.raises(ModelError) as err:
        bb.check_model(bad)
    msg = str(err.value)
    assert f"CONV_2D (operator {index}, output tensor '{model.tensors[out].name}')" in msg
    assert "FLOAT32" in msg and "per-tensor quantized INT8" in msg
    assert "supported ops: ADD, AVERAGE_POOL_2D" in msg


def test_per_tensor_weights_are_refused() -> None:
    model = _model()
    _, w, _ = _conv(model)
    bad = _with_tensor(model, w, quant=Quantization((0.01,), (0,), 0))
    with pytest.raises(ModelError, match="only per-channel int8 weights"):
        bb.check_model(bad)


def test_batch_above_one_is_refused() -> None:
    model = _model()
    bad = _with_tensor(model, model.inputs[0], shape=(2, 128, 6))
    with pytest.raises(ModelError, match="batch 2"):
        bb.check_model(bad)


def test_output_not_written_last_is_refused() -> None:
    model = _model()
    _, _, out = _conv(model)
    bad = dataclasses.replace(model, outputs=(out,))
    with pytest.raises(ModelError, match="not written by the last op"):
        bb.check_model(bad)


def test_model_error_leaves_no_file(tmp_path: Path) -> None:
    """tools/export_firmware_model.py exits 8 and writes nothing for a model the node cannot run."""
    import subprocess
    import sys

    bad = (VECTORS / "tiny.tflite").read_bytes()[:-2000]
    src = tmp_path / "bad.tflite"
    src.write_bytes(bad)
    run = subprocess.run([sys.executable, str(ROOT / "tools/export_firmware_model.py"), str(src),
                          "--blob", str(tmp_path / "out.tfmb")], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 8 and not (tmp_path / "out.tfmb").exists()


def test_arena_plan_of_a_chain_reuses_both_halves() -> None:
    model = _model()
    plan = plan_arena(bb.prepare(model))
    assert arena_bytes(model) == plan.arena_bytes == 124 * 8 + 62 * 8
    assert plan.refs[0][0] == (REF_INPUT,) and plan.refs[-1][1] == REF_EMBEDDING


def test_arena_plan_of_a_branch_keeps_the_shortcut_alive() -> None:
    """No tensor shares bytes with another it is live with; a layer's inputs and output never
    overlap; every planned region fits the arena."""
    graph = bb.prepare(_model("branchy"))
    plan = plan_arena(graph)
    live: dict[int, tuple[int, int]] = {}
    for i, step in enumerate(graph.steps):
        live.setdefault(step.output, (i, i))
        for t in step.inputs:
            if t in live:
                live[t] = (live[t][0], i)
    size = {s.output: output_size(s.layer) for s in graph.steps}
    placed = [(t, plan.offsets[t]) for t in plan.offsets]
    for a, oa in placed:
        assert oa % 4 == 0 and oa + size[a] <= plan.arena_bytes
        for b, ob in placed:
            if a >= b:
                continue
            (fa, la), (fb, lb) = live[a], live[b]
            if not (la < fb or lb < fa):
                assert oa + size[a] <= ob or ob + size[b] <= oa, (a, b)
    add = next(i for i, s in enumerate(graph.steps) if s.op_name == "ADD")
    assert len({plan.refs[add][0][0], plan.refs[add][0][1], plan.refs[add][1]}) == 3


def test_blob_v2_header_declares_the_arena() -> None:
    blob = export_blob(_model("branchy"))
    magic, version, _, total = struct.unpack_from("<4sHHI", blob)
    assert (magic, version, total) == (b"TFMB", 2, len(blob))
    assert struct.unpack_from("<II", blob, 32) == (arena_bytes(_model("branchy")), 0)


def test_a_version_1_blob_is_refused_with_the_fix(tmp_path: Path) -> None:
    import shutil

    from tinyfl.model.artifacts import load_artifacts

    folder = tmp_path / "har"
    shutil.copytree(ROOT / "models" / "har", folder)
    blob = bytearray((folder / "backbone.tfmb").read_bytes())
    blob[4] = 1  # an old folder: a version-1 blob whose hash metadata.json records
    (folder / "backbone.tfmb").write_bytes(bytes(blob))
    meta = json.loads((folder / "metadata.json").read_text())
    meta["model_hash"] = hashlib.sha256(bytes(blob)).digest()[:8].hex()
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="version 1; nodes read version 2 only: re-export"):
        load_artifacts(folder)
