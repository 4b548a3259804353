"""tinyfl.files: atomic writes leave the old bytes or the new ones, and no temporary files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyfl.files import atomic_write, atomic_write_all


@pytest.mark.parametrize("durable", [False, True])
def test_atomic_write_all_replaces_and_leaves_no_temporary(tmp_path: Path, durable: bool) -> None:
    a, b = tmp_path / "a.tflite", tmp_path / "b.h"
    a.write_bytes(b"old")
    atomic_write_all({a: b"new", b: b"header"}, durable=durable)
    assert a.read_bytes() == b"new" and b.read_bytes() == b"header"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tflite", "b.h"]
    with pytest.raises(FileNotFoundError):
        atomic_write_all({a: b"newer", tmp_path / "missing" / "x.h": b""}, durable=durable)
    assert a.read_bytes() == b"new"  # a failure before the renames changes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tflite", "b.h"]


def test_atomic_write_one_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write(target, b"1")
    atomic_write(target, b"2", durable=True)
    assert target.read_bytes() == b"2"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
