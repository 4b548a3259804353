"""`tinyfl export` and tinyfl.model.export: the deployable .tflite is the backbone file plus three
ops, reads back as built, runs in LiteRT like the host computes, and every refusal is a clear
error with its exit code that leaves no output behind.

The whole-test-set agreement (every HAR test window, a KDDTest+ sample) is
tests/integration/test_export_agreement.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tinyfl.cli.main import main
from tinyfl.coordinator.checkpoint import Checkpoint, save_checkpoint
from tinyfl.model import export
from tinyfl.model.artifacts import ModelArtifacts, load_artifacts
from tinyfl.model.tflite import ModelError, read_model

ROOT = Path(__file__).resolve().parents[2]
HAR = ROOT / "models" / "har"
HAR_HASH = bytes.fromhex(json.loads((HAR / "metadata.json").read_text())["model_hash"])


@pytest.fixture(scope="module")
def har() -> ModelArtifacts:
    return load_artifacts(HAR)


@pytest.fixture(scope="module")
def backbone() -> bytes:
    return (HAR / "backbone.tflite").read_bytes()


@pytest.fixture(scope="module")
def head() -> npt.NDArray[np.float32]:
    w: npt.NDArray[np.float32] = np.load(HAR / "head_init.npy")
    return w


def make_run(folder: Path, head: npt.ArrayLike, model_hash: bytes = HAR_HASH,
             task: str = "har") -> Path:
    """A run folder as tinyfl coordinate leaves it (the parts export reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "checkpoint.npz",
                    Checkpoint(round=5, wire_round=5, seed=0, head=np.asarray(head, np.float32),
                               state={}, task=task, model_hash=model_hash))
    (folder / "config.json").write_text(json.dumps({"task": task}))
    return folder


# --- the builder ---------------------------------------------------------------------------------


def test_backbone_bytes_follow_the_new_tables_untouched(backbone: bytes,
                                                        head: npt.NDArray[np.float32]) -> None:
    out = export.build_deploy_model(backbone, head)
    assert out[4:8] == b"TFL3"
    prefix = len(out) - len(backbone)
    assert prefix % 16 == 0  # the backbone's data keeps its alignment
    assert out[prefix:] == backbone
    assert export.build_deploy_model(backbone, head) == out  # deterministic


def test_exported_model_reads_back_with_the_head(backbone: bytes,
                                                 head: npt.NDArray[np.float32]) -> None:
    old = read_model(backbone)
    new = read_model(export.build_deploy_model(backbone, head, description="x"))
    assert [op.name for op in new.operators] == [op.name for op in old.operators] + [
        "DEQUANTIZE", "FULLY_CONNECTED", "SOFTMAX"]
    assert new.inputs == old.inputs
    assert new.tensors[:len(old.tensors)] == old.tensors
    deq, fc, softmax = new.operators[-3:]
    assert deq.inputs == old.outputs
    assert np.array_equal(new.tensors[fc.inputs[1]].array(), head[:, :-1])
    assert np.array_equal(new.tensors[fc.inputs[2]].array(), head[:, -1])
    probs = new.tensors[new.outputs[0]]
    assert (probs.shape, probs.type_name, probs.name) == ((1, 6), "FLOAT32", "tinyfl/probabilities")
    assert softmax.outputs == new.outputs


def test_litert_runs_it_with_its_signature(backbone: bytes, har: ModelArtifacts,
                                           head: npt.NDArray[np.float32]) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    tflite = export.build_deploy_model(backbone, head)
    interp = Interpreter(model_content=tflite,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    assert interp.get_signature_list() == {
        "serving_default": {"inputs": ["window"], "outputs": ["probabilities"]}}
    codes = export.sample_inputs(har.input_shape, har.input_zero_point, 3, seed=7)
    got = interp.get_signature_runner()(window=codes)["probabilities"]
    want = export.host_probabilities(har, head, codes)
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))
    assert np.abs(got - want).max() <= export.PROB_TOLERANCE
    check = export.verify(tflite, har, head, export.sample_inputs(har.input_shape, 0, 32))
    assert check is not None and check.ok and check.n == 32


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((6, 64), np.float32), r"is \[6, 64\], the backbone needs \(k, 65\)"),
        (np.zeros((6, 66), np.float32), r"is \[6, 66\]"),
        (np.zeros(65, np.float32), r"is \[65\]"),
        (np.full((6, 65), np.nan, np.float32), "non-finite"),
        (np.full((6, 65), np.inf, np.float32), "non-finite"),
        (np.full((6, 65), 1e39, np.float64), "too large for float32"),
        (np.full((6, 65), "a"), "not a number type"),
    ],
)
def test_bad_heads_are_refused(backbone: bytes, bad: npt.NDArray[np.generic], match: str) -> None:
    with pytest.raises(ModelError, match=match):
        export.build_deploy_model(backbone, bad)


@pytest.mark.parametrize(
    "corrupt",
    [lambda b: b[: len(b) // 2], lambda b: b[:100], lambda b: b"\0" * 8,
     lambda b: b[:4] + b"XXXX" + b[8:], lambda b: b"\xff\xff\xff\x7f" + b[4:]],
    ids=["half", "100-bytes", "zeros", "identifier", "root-offset"],
)
def test_corrupt_backbones_raise_model_error(backbone: bytes, head: npt.NDArray[np.float32],
                                             corrupt: object) -> None:
    with pytest.raises(ModelError):
        export.build_deploy_model(corrupt(backbone), head)  # type: ignore[operator]


# --- the C header --------------------------------------------------------------------------------


def test_header_compiles_and_holds_the_exact_bytes(tmp_path: Path, backbone: bytes,
                                                   head: npt.NDArray[np.float32]) -> None:
    tflite = export.build_deploy_model(backbone, head)
    text = export.c_header(tflite, HAR_HASH, "har", ["A", 'q"uo\\te', "é"])
    assert f"alignas(16) static const uint8_t tinyfl_deploy_model[{len(tflite)}]" in text
    assert f"tinyfl_deploy_model_len = {len(tflite)};" in text
    (tmp_path / "model.h").write_text(text)
    # A C11 program and a C++ one print the array; both must reproduce the file byte for byte.
    main_c = (
        '#include <stdio.h>\n#include "model.h"\n'
        "int main(void) {\n"
        "  if ((uintptr_t)tinyfl_deploy_model % 16 != 0) return 3;\n"
        "  fwrite(tinyfl_deploy_model, 1, tinyfl_deploy_model_len, stdout);\n"
        '  fprintf(stderr, "%s|%s|%s|%s|%02x", tinyfl_deploy_model_task,\n'
        "          tinyfl_deploy_model_classes[0], tinyfl_deploy_model_classes[1],\n"
        "          tinyfl_deploy_model_classes[2], tinyfl_deploy_model_hash[0]);\n"
        "  return 0;\n}\n"
    )
    for compiler, source in (("cc", "main.c"), ("c++", "main.cpp")):
        if shutil.which(compiler) is None:
            pytest.skip(f"no {compiler} on this machine")
        (tmp_path / source).write_text(main_c)
        exe = tmp_path / f"{source}.out"
        std = "-std=c11" if source.endswith(".c") else "-std=c++17"
        subprocess.run([compiler, std, "-Wall", "-Werror", "-o", str(exe),
                        str(tmp_path / source)], check=True, capture_output=True)
        done = subprocess.run([str(exe)], check=True, capture_output=True)
        assert done.stdout == tflite
        assert done.stderr.decode() == f'har|A|q"uo\\te|é|{HAR_HASH[0]:02x}'


def test_header_name_must_be_a_c_identifier() -> None:
    with pytest.raises(ValueError, match="C identifier"):
        export.c_header(b"x", HAR_HASH, "har", [], name="my-model")


# --- the command ---------------------------------------------------------------------------------


def test_export_writes_model_and_header_and_reports(
    tmp_path: Path, head: npt.NDArray[np.float32], capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "runs" / "r1", head)
    out, header = tmp_path / "model.tflite", tmp_path / "model.h"
    assert main(["export", "--run", str(run), "--out", str(out), "--header", str(header)]) == 0
    printed = capsys.readouterr().out
    tflite = out.read_bytes()
    assert f"{len(tflite):,} bytes" in printed
    assert HAR_HASH.hex() in printed and "WALKING_UPSTAIRS" in printed
    assert "argmax identical 64/64" in printed
    assert f"[{len(tflite)}]" in header.read_text()
    assert read_model(tflite).operators[-1].name == "SOFTMAX"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.h", "model.tflite", "runs"]


def test_model_folder_defaults_to_the_runs_config(tmp_path: Path, head: npt.NDArray[np.float32],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mymodel"
    shutil.copytree(HAR, folder)
    run = make_run(tmp_path / "run", head)
    (run / "config.json").write_text(json.dumps({"task": str(folder)}))
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "m.tflite"),
                 "--samples", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"on {folder} " in printed and "LiteRT check skipped (--samples 0)" in printed


def test_without_litert_the_check_is_skipped_and_said(
    tmp_path: Path, head: npt.NDArray[np.float32], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules is Python's own "this module cannot be imported".
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    run = make_run(tmp_path / "run", head)
    out = tmp_path / "m.tflite"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    assert "LiteRT check skipped: ai-edge-litert is not installed" in capsys.readouterr().out
    assert read_model(out.read_bytes()).operators[-1].name == "SOFTMAX"


def _fails(argv: list[str], code: int, match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert match in err, err


def test_missing_run_or_checkpoint_exits_7(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.tflite"
    _fails(["--run", str(tmp_path / "nope"), "--out", str(out)], 7, "no run folder at", capsys)
    (tmp_path / "empty").mkdir()
    _fails(["--run", str(tmp_path / "empty"), "--out", str(out)], 7, "has no checkpoint.npz",
           capsys)
    (tmp_path / "empty" / "checkpoint.npz").write_bytes(b"PK\3\4 torn")
    _fails(["--run", str(tmp_path / "empty"), "--out", str(out)], 7, "not a readable checkpoint",
           capsys)
    assert not out.exists()


def test_run_for_another_model_exits_7(tmp_path: Path, head: npt.NDArray[np.float32],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.tflite"
    out.write_bytes(b"previous export")
    run = make_run(tmp_path / "run", head, model_hash=bytes.fromhex("0123456789abcdef"))
    _fails(["--run", str(run), "--out", str(out)], 7,
           f"run trained for model 0123456789abcdef, {HAR} is model {HAR_HASH.hex()}", capsys)
    nsl = ROOT / "models" / "nsl-kdd"
    run2 = make_run(tmp_path / "run2", head)
    _fails(["--run", str(run2), "--out", str(out), "--model", str(nsl)], 7,
           f"trained for model {HAR_HASH.hex()}, {nsl} is model", capsys)
    assert out.read_bytes() == b"previous export"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "run", "run2"]


def test_head_of_the_wrong_shape_or_nan_exits_7(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.tflite"
    run = make_run(tmp_path / "run", np.zeros((5, 65)))
    _fails(["--run", str(run), "--out", str(out)], 7, "the head is [5, 65]", capsys)
    head = np.zeros((6, 65))
    head[2, 3] = np.nan
    run = make_run(tmp_path / "nan", head)
    _fails(["--run", str(run), "--out", str(out)], 7, "not a finite matrix", capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda f: (f / "backbone.tflite").write_bytes((f / "backbone.tflite").read_bytes()[:9000]),
         "truncated or corrupt model"),
        (lambda f: (f / "backbone.tflite").write_bytes(b"garbage!" * 64),
         "not a TFLite model"),
        (lambda f: shutil.copy(ROOT / "models" / "nsl-kdd" / "backbone.tflite", f),
         "backbone.tflite is not the backbone of backbone.tfmb"),
        (lambda f: (f / "metadata.json").unlink(), "is not a model folder"),
        (lambda f: (f / "backbone.tfmb").write_bytes(b"TFMB"), "does not have the model hash"),
    ],
    ids=["truncated", "garbage", "other-backbone", "no-metadata", "other-blob"],
)
def test_damaged_model_folder_exits_8(tmp_path: Path, head: npt.NDArray[np.float32],
                                      damage: object, match: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model"
    shutil.copytree(HAR, folder)
    damage(folder)  # type: ignore[operator]
    run = make_run(tmp_path / "run", head)
    out = tmp_path / "m.tflite"
    _fails(["--run", str(run), "--out", str(out), "--header", str(tmp_path / "m.h"),
            "--model", str(folder)], 8, match, capsys)
    assert not out.exists() and not (tmp_path / "m.h").exists()


def test_default_model_folder_missing_for_the_task_exits_8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "run", np.zeros((6, 65)), task="synthetic:d=64,k=6,seed=0")
    _fails(["--run", str(run), "--out", str(tmp_path / "m.tflite")], 8,
           "which has no model folder", capsys)


def test_bad_output_paths_exit_2(tmp_path: Path, head: npt.NDArray[np.float32],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run", head)
    _fails(["--run", str(run), "--out", str(tmp_path / "no" / "m.tflite")], 2, "does not exist",
           capsys)
    _fails(["--run", str(run), "--out", str(tmp_path)], 2, "is a folder", capsys)
    _fails(["--run", str(run), "--out", str(tmp_path / "m"), "--header", str(tmp_path / "m")], 2,
           "same file", capsys)
    _fails(["--run", str(run), "--out", str(tmp_path / "m"), "--samples", "-1"], 2, ">= 0",
           capsys)
