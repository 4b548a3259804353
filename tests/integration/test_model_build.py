"""`tinyfl model build` end to end on NSL-KDD (about 10 s; HAR takes about 30 s and is covered by
the committed artifacts' tests). Needs the `model` extra and the NSL-KDD files."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from tinyfl.cli.main import main


def test_build_nslkdd_writes_consistent_artifacts(tmp_path: Path) -> None:
    for module in ("tensorflow", "ai_edge_litert.interpreter"):
        try:
            importlib.import_module(module)
        except ImportError:
            pytest.skip(f"{module} not installed (the model extra)")
    out = tmp_path / "nsl-kdd"
    assert main(["model", "build", "--task", "nsl-kdd", "--out", str(out), "--epochs", "2"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    blob = (out / "backbone.tfmb").read_bytes()
    assert meta["model_hash"] == hashlib.sha256(blob).digest()[:8].hex()
    assert meta["input"]["input_quant_matches_data"] is True
    assert meta["firmware_blob_bytes"] <= 48 * 1024
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nsl-kdd"]  # no temporary folder left


def test_build_usage_errors(tmp_path: Path) -> None:
    assert main(["model", "build", "--task", "nsl-kdd", "--out", str(tmp_path / "x"),
                 "--epochs", "0"]) == 2
    assert not (tmp_path / "x").exists()
