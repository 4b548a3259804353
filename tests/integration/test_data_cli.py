"""`tinyfl data partition` on the real datasets: blobs parse, manifest agrees, seeds reproduce."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tinyfl.cli.data import backbone_model_hash
from tinyfl.cli.main import main
from tinyfl.data import har, nslkdd
from tinyfl.model.artifacts import load_artifacts
from tinyfl.model.tflite import ModelError
from tinyfl.wire import BlobKind, DataBlob


def _partition(out: Path, *args: str) -> dict[str, object]:
    assert main(["data", "partition", *args, "--out", str(out)]) == 0
    manifest: dict[str, object] = json.loads((out / "manifest.json").read_text())
    return manifest


def _check_manifest(out: Path, manifest: dict) -> list[DataBlob]:  # type: ignore[type-arg]
    blobs = []
    for node in manifest["nodes"]:
        raw = (out / node["file"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == node["sha256"]
        blob = DataBlob.read(out / node["file"])
        assert blob.n_samples == node["samples"] <= manifest["max_samples"]
        assert blob.kind == manifest["kind"] and blob.dim == manifest["dim"]
        assert blob.n_classes == len(manifest["classes"])
        assert blob.model_hash.hex() == manifest["model_hash"]
        assert np.float32(blob.scale) == np.float32(manifest["scale"])
        assert blob.zero_point == manifest["zero_point"]
        hist = np.bincount(blob.labels, minlength=blob.n_classes).tolist()
        assert hist == node["label_histogram"]
        blobs.append(blob)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", *(n["file"] for n in manifest["nodes"])]
    )
    return blobs


def test_har_by_user(tmp_path: Path) -> None:
    manifest = _partition(tmp_path / "a", "--task", "har", "--clients", "18", "--seed", "3")
    assert manifest["task"] == "har" and manifest["partition"] == "by-user"
    assert manifest["kind"] == BlobKind.RAW_WINDOWS and manifest["dim"] == 128 * 6
    assert manifest["dataset_sha256"] == har.SHA256
    blobs = _check_manifest(tmp_path / "a", manifest)
    nodes = manifest["nodes"]
    assert isinstance(nodes, list)
    users = [n["users"] for n in nodes]
    assert sorted(u for us in users for u in us) == list(har.FLEET_USERS)  # one user per node
    assert not set(har.TEST_USERS + har.SOURCE_USERS) & {u for us in users for u in us}
    # the values round-trip to the user's real windows (within the quantization step)
    fleet = har.load().split("fleet")
    first = fleet.select(fleet.user == users[0][0])
    values = blobs[0].values().reshape(-1, 128, 6)
    assert values.shape[0] == len(first)
    inside = np.abs(first.x) <= 127 * blobs[0].scale
    assert np.abs(values - first.x)[inside].max() <= blobs[0].scale / 2 + 1e-6


def test_har_dirichlet_same_seed_same_bytes(tmp_path: Path) -> None:
    args = ("--task", "har", "--clients", "6", "--partition", "dirichlet:0.3", "--seed", "9")
    first = _partition(tmp_path / "a", *args, "--max-samples", "64")
    second = _partition(tmp_path / "b", *args, "--max-samples", "64")
    assert first == second
    for node in first["nodes"]:  # type: ignore[attr-defined]
        a = (tmp_path / "a" / node["file"]).read_bytes()
        assert a == (tmp_path / "b" / node["file"]).read_bytes()
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (
        tmp_path / "b" / "manifest.json"
    ).read_bytes()
    other = _partition(tmp_path / "c", *args[:-1], "10", "--max-samples", "64")
    assert other["nodes"] != first["nodes"]
    _check_manifest(tmp_path / "a", first)


def test_nsl_kdd_gateways(tmp_path: Path) -> None:
    manifest = _partition(tmp_path, "--task", "nsl-kdd", "--clients", "8", "--max-samples", "256")
    assert manifest["partition"] == "gateways"
    # the feature codes are the input of the backbone in models/nsl-kdd, which the node runs
    art = load_artifacts("nsl-kdd")
    assert manifest["kind"] == BlobKind.RAW_WINDOWS and manifest["dim"] == 64
    assert manifest["model_hash"] == art.model_hash.hex()
    assert manifest["zero_point"] == -128 == art.input_zero_point
    assert np.isclose(manifest["scale"], 1 / 255)
    assert np.float32(manifest["scale"]) == np.float32(art.input_scale)
    blobs = _check_manifest(tmp_path, manifest)
    for blob in blobs:
        present = set(np.unique(blob.labels).tolist())
        assert 0 in present and 1 <= len(present - {0}) <= 2  # normal plus 1-2 attack families
    # the blob holds the encoded features, quantized as the node's cache stores them
    values = np.concatenate([b.values() for b in blobs])
    assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-6


def test_nsl_kdd_leaves_out_the_backbone_source_rows(tmp_path: Path) -> None:
    # every record reaches a node (iid, no cap) except the backbone's pretraining rows
    manifest = _partition(
        tmp_path, "--task", "nsl-kdd", "--clients", "4", "--partition", "iid",
        "--max-samples", "100000",
    )
    blobs = _check_manifest(tmp_path, manifest)
    train = nslkdd.load(nslkdd.TRAIN_FILE)
    source = nslkdd.source_mask(train.labels.size)
    assert source.sum() == round(nslkdd.SOURCE_SHARE * train.labels.size) > 0
    assert manifest["rows"] == {
        "fleet": int((~source).sum()), "source_excluded": int(source.sum()),
        "source_share": nslkdd.SOURCE_SHARE, "split_seed": nslkdd.SPLIT_SEED,
    }
    codes = nslkdd.quantize_features(nslkdd.encode(train, nslkdd.fit(train)))

    def rows(x: np.ndarray, y: np.ndarray) -> list[bytes]:  # type: ignore[type-arg]
        return sorted(bytes([int(label)]) + r.tobytes() for r, label in zip(x, y))

    held = rows(np.concatenate([b.samples for b in blobs]),
                np.concatenate([b.labels for b in blobs]))
    assert held == rows(codes[~source], train.labels[~source])  # exactly the fleet's records


def test_model_hash_override(tmp_path: Path) -> None:
    manifest = _partition(
        tmp_path, "--task", "nsl-kdd", "--clients", "2", "--max-samples", "8",
        "--model-hash", "0011223344556677",
    )
    assert manifest["model_hash"] == "0011223344556677"
    _check_manifest(tmp_path, manifest)


def test_a_backbone_expecting_other_codes_is_a_model_error() -> None:
    scale, zp = nslkdd.FEATURE_SCALE, nslkdd.FEATURE_ZERO_POINT
    assert backbone_model_hash("nsl-kdd", 64, scale, zp, "codes") == (
        load_artifacts("nsl-kdd").model_hash)
    with pytest.raises(ModelError, match="zero point -128, codes have"):
        backbone_model_hash("nsl-kdd", 64, scale, 0, "codes")
    with pytest.raises(ModelError, match="scale"):
        backbone_model_hash("nsl-kdd", 64, scale * 1.001, zp, "codes")
    with pytest.raises(ModelError, match="expects 64 input values per sample, codes have 63"):
        backbone_model_hash("nsl-kdd", 63, scale, zp, "codes")
    with pytest.raises(ModelError, match="expects input codes with scale"):  # HAR's model
        backbone_model_hash("har", 64, scale, zp, "codes")


def test_smaller_partition_replaces_larger_one(tmp_path: Path) -> None:
    _partition(tmp_path, "--task", "nsl-kdd", "--clients", "6", "--max-samples", "16")
    manifest = _partition(tmp_path, "--task", "nsl-kdd", "--clients", "4", "--max-samples", "16")
    _check_manifest(tmp_path, manifest)  # no blobs of the old partition left behind


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--task", "har", "--clients", "40"], "only 18 groups"),
        (["--task", "har", "--clients", "4", "--partition", "gateways"], "not available"),
        (["--task", "nsl-kdd", "--clients", "4", "--partition", "dirichlet:x"], "positive"),
        (["--task", "har", "--clients", "0"], "--clients"),
        (["--task", "har", "--clients", "2", "--model-hash", "abc"], "16 hex digits"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    out = tmp_path / "out"
    assert main(["data", "partition", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err
    assert not out.exists()


def test_missing_har_file_exits_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TINYFL_HAPT_FILE", str(tmp_path / "nope.pkl.gz"))
    out = tmp_path / "out"
    assert main(["data", "partition", "--task", "har", "--clients", "2", "--out", str(out)]) == 5
    assert "TINYFL_HAPT_FILE" in capsys.readouterr().err
    assert not out.exists()
