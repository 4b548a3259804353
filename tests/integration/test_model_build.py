"""`tinyfl model build` end to end on NSL-KDD (two builds, about 10 s each; HAR takes about 30 s and
is covered by the committed artifacts' tests). Needs the `model` extra and the NSL-KDD files."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from tinyfl.cli.main import main
from tinyfl.model.build import ARTIFACTS, TIMING_FIELDS


def _needs_model_extra() -> None:
    for module in ("tensorflow", "ai_edge_litert.interpreter"):
        try:
            importlib.import_module(module)
        except ImportError:
            pytest.skip(f"{module} not installed (the model extra)")


def test_build_nslkdd_is_consistent_and_reproducible(tmp_path: Path) -> None:
    _needs_model_extra()
    outs = [tmp_path / "a" / "nsl-kdd", tmp_path / "b" / "nsl-kdd"]
    for out in outs:  # the same seed twice
        args = ["model", "build", "--task", "nsl-kdd", "--out", str(out), "--epochs", "2"]
        assert main([*args, "--seed", "3"]) == 0
    out = outs[0]
    meta = json.loads((out / "metadata.json").read_text())
    blob = (out / "backbone.tfmb").read_bytes()
    assert meta["model_hash"] == hashlib.sha256(blob).digest()[:8].hex()
    assert meta["input"]["input_quant_matches_data"] is True
    assert meta["firmware_blob_bytes"] <= 48 * 1024
    assert sorted(p.name for p in out.parent.iterdir()) == ["nsl-kdd"]  # no temporary folder
    for name in ARTIFACTS:
        data = (out / name).read_bytes()
        assert meta["files"][name] == {"bytes": len(data),
                                       "sha256": hashlib.sha256(data).hexdigest()}
        assert data == (outs[1] / name).read_bytes(), f"{name} differs between identical builds"
    # metadata.json: equal except the timing fields, which are all it may differ in
    second = json.loads((outs[1] / "metadata.json").read_text())
    assert set(TIMING_FIELDS) <= set(meta)
    for field in TIMING_FIELDS:
        del meta[field], second[field]
    assert meta == second


def test_build_usage_errors(tmp_path: Path) -> None:
    assert main(["model", "build", "--task", "nsl-kdd", "--out", str(tmp_path / "x"),
                 "--epochs", "0"]) == 2
    assert not (tmp_path / "x").exists()
