"""`tinyfl data fetch|partition` on the real datasets: blobs parse, manifest agrees, seeds
reproduce, and only the fleet's samples reach a node."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tinyfl.cli.main import main
from tinyfl.data import har, nslkdd
from tinyfl.data.dataset import load_dataset
from tinyfl.data.packaged import cached
from tinyfl.model.artifacts import load_artifacts
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


def test_har_by_group(tmp_path: Path) -> None:
    manifest = _partition(tmp_path / "a", "--task", "har", "--clients", "18", "--seed", "3")
    assert manifest["model"] == {"name": "har", "hash": load_artifacts("har").model_hash.hex()}
    assert manifest["partition"] == "by-group"
    assert manifest["kind"] == BlobKind.RAW_WINDOWS and manifest["dim"] == 128 * 6
    assert manifest["data"]["sha256"] == load_dataset(cached("har").data).sha256  # type: ignore
    blobs = _check_manifest(tmp_path / "a", manifest)
    nodes = manifest["nodes"]
    assert isinstance(nodes, list)
    groups = [n["groups"] for n in nodes]
    held = [int(g) for gs in groups for g in gs]
    assert held == list(har.FLEET_USERS)  # one user per node, in user order
    assert not set(har.TEST_USERS + har.SOURCE_USERS) & set(held)
    # the values round-trip to the user's real windows (within the quantization step)
    fleet = har.load().split("fleet")
    first = fleet.select(fleet.user == held[0])
    values = blobs[0].values().reshape(-1, 128, 6)
    assert values.shape[0] == len(first)
    inside = np.abs(first.x) <= 127 * blobs[0].scale
    assert np.abs(values - first.x)[inside].max() <= blobs[0].scale / 2 + 1e-6


def test_auto_gives_each_node_a_group_while_there_are_enough(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _partition(tmp_path / "a", "--task", "har", "--clients", "18", "--partition",
                          "auto", "--max-samples", "16")
    assert manifest["partition"] == "by-group"
    manifest = _partition(tmp_path / "b", "--task", "har", "--clients", "19", "--partition",
                          "auto", "--max-samples", "16")
    assert manifest["partition"] == "iid"
    assert "19 nodes but 18 fleet groups: partition iid" in capsys.readouterr().out


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
    manifest = _partition(tmp_path, "--task", "nsl-kdd", "--clients", "8", "--max-samples", "256",
                          "--partition", "gateways")
    assert manifest["partition"] == "gateways"
    # the feature codes are the input of the backbone in models/nsl-kdd, which the node runs
    art = load_artifacts("nsl-kdd")
    assert manifest["kind"] == BlobKind.RAW_WINDOWS and manifest["dim"] == 64
    assert manifest["model_hash"] == art.model_hash.hex()
    assert manifest["zero_point"] == -128 == art.input_zero_point
    assert np.float32(manifest["scale"]) == np.float32(art.input_scale) == np.float32(1 / 255)
    blobs = _check_manifest(tmp_path, manifest)
    for blob in blobs:
        present = set(np.unique(blob.labels).tolist())
        assert 0 in present and 1 <= len(present - {0}) <= 2  # normal plus 1-2 attack families
    values = np.concatenate([b.values() for b in blobs])
    assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-6


def test_nsl_kdd_leaves_out_the_backbone_source_rows(tmp_path: Path) -> None:
    # every record reaches a node (iid, the default without groups; no cap) except the
    # backbone's pretraining rows
    manifest = _partition(tmp_path, "--task", "nsl-kdd", "--clients", "4", "--max-samples",
                          "100000")
    assert manifest["partition"] == "iid"
    blobs = _check_manifest(tmp_path, manifest)
    train = nslkdd.load(nslkdd.TRAIN_FILE)
    source = nslkdd.source_mask(train.labels.size)
    codes = nslkdd.quantize_features(nslkdd.encode(train, nslkdd.fit(train)))

    def rows(x: np.ndarray, y: np.ndarray) -> list[bytes]:  # type: ignore[type-arg]
        return sorted(bytes([int(label)]) + r.tobytes() for r, label in zip(x, y))

    held = rows(np.concatenate([b.samples for b in blobs]),
                np.concatenate([b.labels for b in blobs]))
    assert held == rows(codes[~source], train.labels[~source])  # exactly the fleet's records


def test_fetch_writes_the_npz_form_the_models_were_built_from(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    out = tmp_path / "kdd.npz"
    assert main(["data", "fetch", "nsl-kdd", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tinyfl model build --data" in printed and "--source-fraction 0.2" in printed
    data, test = load_dataset(out), load_dataset(tmp_path / "kdd-test.npz")
    art = load_artifacts("nsl-kdd")
    assert data.sha256 == art.data_sha256  # the same bytes on every machine
    assert data.classes == test.classes == art.classes and data.groups is None
    assert (len(data), len(test)) == (25192, 22544)


def test_data_that_is_not_the_models_exits_5(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["data", "partition", "--model", "har", "--data", str(cached("nsl-kdd").data),
            "--clients", "2", "--out", str(out)]
    assert main(args) == 5
    assert "is not the data file models/har was built from" in capsys.readouterr().err.replace(
        str(load_artifacts("har").folder), "models/har")
    assert not out.exists()


def test_smaller_partition_replaces_larger_one(tmp_path: Path) -> None:
    _partition(tmp_path, "--task", "nsl-kdd", "--clients", "6", "--max-samples", "16")
    manifest = _partition(tmp_path, "--task", "nsl-kdd", "--clients", "4", "--max-samples", "16")
    _check_manifest(tmp_path, manifest)  # no blobs of the old partition left behind


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--task", "har", "--clients", "40"],
         ("only 18 groups: by-group gives each node at least one group, so use at most 18 nodes, "
          "or a partition that splits samples instead of groups (--partition iid")),
        (["--task", "nsl-kdd", "--clients", "4", "--partition", "by-group"],
         "needs a data file with a group array"),
        (["--task", "nsl-kdd", "--clients", "4", "--partition", "dirichlet:x"], "positive"),
        (["--task", "har", "--clients", "0"], "--clients"),
        (["--task", "har", "--model", "har", "--clients", "2"], "not both"),
        (["--clients", "2"], "give --model DIR and --data FILE.npz"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    out = tmp_path / "out"
    assert main(["data", "partition", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in " ".join(err.split()), err
    assert not out.exists()


def test_missing_har_file_exits_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TINYFL_HAPT_FILE", str(tmp_path / "nope.pkl.gz"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no fetched copy to reuse
    out = tmp_path / "out"
    assert main(["data", "partition", "--task", "har", "--clients", "2", "--out", str(out)]) == 5
    assert "TINYFL_HAPT_FILE" in capsys.readouterr().err
    assert not out.exists()
