"""The exported .tflite matches the host evaluation to the last prediction.

A run folder is made with the model's real trained head (head_init.npy: the pretraining softmax
head, (k, d + 1)) and exported with `tinyfl export`; the file is then run with LiteRT on real
data and compared with the host's numpy int8 backbone + float64 head:
- HAR: every window of the held-out test users, quantized with the model's input quantization;
- NSL-KDD: a seeded sample of KDDTest+ as the nodes' int8 feature codes.
LiteRT's reference kernels (the bit-exact ground truth, docs/MODEL.md) must agree on every argmax
with probabilities within 1e-5. LiteRT's default XNNPACK delegate and TFLite Micro round int8
layers differently from the reference (docs/MODEL.md); their agreement is measured and held to a
floor, not to equality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from support.models import held_out_codes
from tinyfl.cli.main import main
from tinyfl.coordinator.checkpoint import Checkpoint, save_checkpoint
from tinyfl.model import export
from tinyfl.model.artifacts import ModelArtifacts, load_artifacts

ROOT = Path(__file__).resolve().parents[2]
NSLKDD_SAMPLE = 4000


def _export(tmp_path: Path, task: str) -> tuple[ModelArtifacts, npt.NDArray[np.float32], bytes]:
    folder = ROOT / "models" / task
    art = load_artifacts(folder)
    head: npt.NDArray[np.float32] = np.load(folder / "head_init.npy")
    meta = json.loads((folder / "metadata.json").read_text())
    run = tmp_path / "runs" / f"{task}-run"
    run.mkdir(parents=True)
    save_checkpoint(run / "checkpoint.npz",
                    Checkpoint(round=20, wire_round=20, seed=0, head=head, state={}, task=task,
                               model_hash=bytes.fromhex(meta["model_hash"])))
    out = tmp_path / f"{task}.tflite"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    return art, head, out.read_bytes()


def _tflm_probabilities(tflite: bytes, codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    interp = runtime.Interpreter.from_bytes(tflite)
    rows = []
    for row in codes:  # TFLite Micro runs one input at a time, as a node would
        interp.set_input(row[None], 0)
        interp.invoke()
        rows.append(np.array(interp.get_output(0)[0], np.float32))
    return np.stack(rows)


def _compare(tflite: bytes, art: ModelArtifacts, head: npt.NDArray[np.float32],
             codes: npt.NDArray[np.int8], labels: npt.NDArray[np.integer], what: str) -> None:
    want = export.host_probabilities(art, head, codes)
    got = export.litert_probabilities(tflite, codes)
    assert got is not None, "ai-edge-litert is part of the test setup"
    same = int(np.sum(got.argmax(axis=1) == want.argmax(axis=1)))
    diff = float(np.abs(got - want).max())
    xnn = export.litert_probabilities(tflite, codes, reference=False)
    assert xnn is not None
    xnn_same = int(np.sum(xnn.argmax(axis=1) == want.argmax(axis=1)))
    micro = _tflm_probabilities(tflite, codes)
    micro_same = int(np.sum(micro.argmax(axis=1) == want.argmax(axis=1)))
    accuracy = float(np.mean(got.argmax(axis=1) == labels))
    print(f"\n{what}: LiteRT reference = host on {same}/{len(codes)} predictions, max |dp| "
          f"{diff:.2g}; accuracy {accuracy:.4f}; XNNPACK {xnn_same}/{len(codes)}, "
          f"TFLite Micro {micro_same}/{len(codes)}")
    assert same == len(codes), f"{len(codes) - same} predictions differ"
    assert diff <= export.PROB_TOLERANCE
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert xnn_same >= 0.98 * len(codes) and micro_same >= 0.98 * len(codes)


def test_har_export_matches_the_host_on_every_test_window(tmp_path: Path) -> None:
    art, head, tflite = _export(tmp_path, "har")
    codes, labels = held_out_codes(art)
    assert len(codes) == 2996
    _compare(tflite, art, head, codes, labels, "HAR test users")
    # The same head scored by the coordinator's evaluation on the same embeddings.
    meta = json.loads((art.folder / "metadata.json").read_text())
    got = export.litert_probabilities(tflite, codes)
    assert got is not None
    assert float(np.mean(got.argmax(axis=1) == labels)) == pytest.approx(
        meta["head_init"]["test_accuracy"], abs=1e-12)


def test_nslkdd_export_matches_the_host_on_a_kddtest_sample(tmp_path: Path) -> None:
    from tinyfl.data import nslkdd

    art, head, tflite = _export(tmp_path, "nsl-kdd")
    spec = nslkdd.fit(nslkdd.load(nslkdd.TRAIN_FILE))
    test = nslkdd.load(nslkdd.TEST_FILE)
    pick = np.sort(np.random.default_rng(0).choice(len(test.labels), NSLKDD_SAMPLE, replace=False))
    codes = nslkdd.quantize_features(nslkdd.encode(test, spec))[pick]
    assert (art.input_scale, art.input_zero_point) == pytest.approx(
        (nslkdd.FEATURE_SCALE, nslkdd.FEATURE_ZERO_POINT))
    _compare(tflite, art, head, codes, test.labels[pick], f"KDDTest+ sample of {NSLKDD_SAMPLE}")
