"""`tinyfl model build` end to end: a model folder from a data file, with a built-in family, a
user's Keras model made here on the fly, or a given int8 .tflite; and what it refuses (an op the
node lacks, a backbone over the board's budget, a bad split). Needs the `model` extra."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from tinyfl.cli.main import main
from tinyfl.data.dataset import load_dataset, make_dataset, save_dataset
from tinyfl.data.packaged import cached
from tinyfl.model.artifacts import load_artifacts
from tinyfl.model.build import ARTIFACTS, TIMING_FIELDS


@pytest.fixture(autouse=True)
def _needs_model_extra() -> None:
    for module in ("tensorflow", "ai_edge_litert.interpreter"):
        try:
            importlib.import_module(module)
        except ImportError:
            pytest.fail(f"{module} not installed: make setup installs the model extra",
                        pytrace=False)


def _nslkdd_args() -> list[str]:
    fetched = cached("nsl-kdd")
    assert fetched.test is not None
    return ["--data", str(fetched.data), "--source-fraction", "0.2", "--split-seed", "20240601",
            "--test-data", str(fetched.test)]


def test_build_is_consistent_and_reproducible(tmp_path: Path) -> None:
    outs = [tmp_path / "a" / "kdd", tmp_path / "b" / "kdd"]
    for out in outs:  # the same seed twice
        args = ["model", "build", *_nslkdd_args(), "--family", "mlp:hidden=32", "--out", str(out),
                "--epochs", "2", "--seed", "3"]
        assert main(args) == 0
    out = outs[0]
    meta = json.loads((out / "metadata.json").read_text())
    blob = (out / "backbone.tfmb").read_bytes()
    assert meta["model_hash"] == hashlib.sha256(blob).digest()[:8].hex()
    assert meta["data"]["split"]["source_fraction"] == 0.2 and meta["data"]["kind"] == "features"
    assert meta["backbone"] == {**meta["backbone"], "from": "family", "family": "mlp"}
    assert meta["budget"]["fits"] and "tinyfl model build" in meta["command"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["kdd"]  # no temporary folder
    for name in ARTIFACTS:
        data = (out / name).read_bytes()
        assert meta["files"][name] == {"bytes": len(data),
                                       "sha256": hashlib.sha256(data).hexdigest()}
        assert data == (outs[1] / name).read_bytes(), f"{name} differs between identical builds"
    second = json.loads((outs[1] / "metadata.json").read_text())
    for field in TIMING_FIELDS:
        del meta[field], second[field]
    assert meta == second
    art = load_artifacts(out)  # what every later step reads
    x, y = art.test_set()
    assert x.shape == (22544, 64) and y.shape == (22544,)
    assert art.initial_head().shape == (5, 65)


def test_a_given_int8_backbone_is_used_as_it_is(tmp_path: Path) -> None:
    """--tflite: the committed NSL-KDD backbone as a user's own; the blob (and so the model hash
    the nodes report) is the committed one, and a head is fitted on the source samples."""
    out = tmp_path / "given"
    tflite = load_artifacts("nsl-kdd").folder / "backbone.tflite"
    assert main(["model", "build", *_nslkdd_args(), "--tflite", str(tflite), "--out",
                 str(out)]) == 0
    assert load_artifacts(out).model_hash == load_artifacts("nsl-kdd").model_hash
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["backbone"]["from"] == "tflite"
    assert meta["accuracy"]["initial_head_test"] > 0.6  # the node's SGD on source embeddings


def _watch_subset(tmp_path: Path) -> Path:
    """A smaller copy of the watch windows (4 subjects), so Keras models train in seconds."""
    data = load_dataset(cached("watch").data)
    assert data.groups is not None
    keep = np.isin(data.groups, ["subject01", "subject02", "subject03", "subject04"])
    small = make_dataset(data.x[keep], data.y[keep], data.groups[keep], list(data.classes))
    path = tmp_path / "watch4.npz"
    save_dataset(path, small)
    return path


def _keras_classifier(tmp_path: Path, data: Path, activation: str) -> Path:
    from tinyfl.model.families import seed_everything, tensorflow

    tf = tensorflow()
    seed_everything(1)  # a user's model, trained here the same way on every run
    layers = tf.keras.layers
    d = load_dataset(data)
    model = tf.keras.Sequential([
        layers.Input(d.sample_shape),
        layers.Conv1D(8, 5, strides=2, activation="relu"),
        layers.GlobalAveragePooling1D(),
        layers.Dense(16, activation=activation),
        layers.Dense(len(d.classes), activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(d.x[:256], d.y[:256], epochs=1, verbose=0)
    path = tmp_path / f"user-{activation}.keras"
    model.save(path)
    return path


def test_a_users_keras_model_becomes_a_model_folder(tmp_path: Path) -> None:
    data = _watch_subset(tmp_path)
    keras = _keras_classifier(tmp_path, data, "relu")
    out = tmp_path / "watch-keras"
    assert main(["model", "build", "--data", str(data), "--source-groups", "subject01",
                 "--test-groups", "subject04", "--keras", str(keras), "--out", str(out)]) == 0
    art = load_artifacts(out)
    meta = art.metadata
    assert meta["backbone"]["from"] == "keras" and art.embed_dim == 16
    assert meta["data"]["groups"] == {"source": ["subject01"], "fleet": ["subject02", "subject03"],
                                      "test": ["subject04"]}
    assert art.initial_head().shape == (7, 17)  # the user's last Dense, as the initial head


def test_an_op_the_node_lacks_exits_8_naming_it(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = _watch_subset(tmp_path)
    keras = _keras_classifier(tmp_path, data, "tanh")
    out = tmp_path / "tanh"
    assert main(["model", "build", "--data", str(data), "--source-groups", "subject01",
                 "--test-groups", "subject04", "--keras", str(keras), "--out", str(out)]) == 8
    assert "TANH" in capsys.readouterr().err
    assert not out.exists()


def test_a_backbone_over_the_boards_budget_exits_8_with_the_numbers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "big"
    assert main(["model", "build", *_nslkdd_args(), "--family", "mlp:hidden=4096", "--epochs",
                 "1", "--out", str(out)]) == 8
    err = " ".join(capsys.readouterr().err.split())
    assert "does not fit qemu_cortex_m4" in err and "of 524,288 B" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "code", "fragment"),
    [
        (["--epochs", "0"], 2, "--epochs and --batch-size must be >= 1"),
        (["--source-groups", "1"], 5, "has no group array"),
        (["--family", "conv1d"], 2, "family conv1d takes windows, the data holds features"),
        (["--family", "mlp:width=3"], 2, "family mlp takes"),
        (["--augment", "imu-rotation:2"], 2, "needs windows (T, C)"),
        (["--dsp", "stats"], 2, "a DSP stage takes raw windows (n, T, C)"),
        (["--dsp", "fft:bands=4"], 2, "unknown block 'fft'; blocks: spectral, stats, mel"),
        (["--dsp", "stats", "--augment", "imu-rotation:2"], 2, "not supported with --dsp"),
    ],
)
def test_build_usage_and_data_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     extra: list[str], code: int, fragment: str) -> None:
    args = _nslkdd_args()
    if "--source-groups" in extra:
        args = [a for a in args if a not in ("--source-fraction", "0.2")]
    out = tmp_path / "x"
    assert main(["model", "build", *args, "--out", str(out), *extra]) == code
    assert fragment in " ".join(capsys.readouterr().err.split())
    assert not out.exists()
