"""seglearn's smartwatch shoulder-exercise recordings: the restricted reader and the CSV files it
writes, on the real data file."""

from __future__ import annotations

import csv
import io
import os
import pickle
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tinyfl.data import watch
from tinyfl.errors import DatasetError

NAME = re.compile(r"^(subject\d\d)_([A-Z]+)_([01])\.csv$")


class _CallsOsSystem:
    """Unpickling this runs os.system(command) under a plain pickle.load."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("watch_csv")
    paths = watch.write_csv_recordings(out)
    assert [p.parent for p in paths] == [out] * 140
    order = [
        (int(p.name[7:9]), watch.EXERCISES.index(p.name.split("_")[1]), p.name[-5]) for p in paths
    ]
    assert order == sorted(order)  # (subject, exercise, side) order
    return out


HOST = Path(__file__).resolve().parents[2] / "host"


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="ascii") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def test_csv_files_cover_every_group_class_and_arm(csv_dir: Path) -> None:
    names = sorted(p.name for p in csv_dir.iterdir())
    assert len(names) == 140
    keys = []
    for name in names:
        match = NAME.match(name)
        assert match, name
        keys.append(match.groups())
    groups = Counter(k[0] for k in keys)
    classes = Counter(k[1] for k in keys)
    assert sorted(groups) == list(watch.GROUPS) and len(groups) >= 8
    assert all(n == 14 for n in groups.values())  # 7 exercises x 2 arms each
    assert set(classes) == set(watch.EXERCISES) and len(classes) == 7
    assert all(n == 20 for n in classes.values())
    assert len(set(keys)) == 140  # every (group, label, index) once


def test_csv_columns_values_and_row_labels(csv_dir: Path) -> None:
    total_rows = 0
    for path in sorted(csv_dir.iterdir()):
        group, label, _ = NAME.match(path.name).groups()  # type: ignore[union-attr]
        header, rows = _read(path)
        assert header == [*watch.CHANNELS, "label", "group"]
        assert len(watch.CHANNELS) == 6
        assert 900 <= len(rows) <= 2700  # 19..52 s at 50 Hz
        assert {(r[6], r[7]) for r in rows} == {(label, group)}
        values = np.array([r[:6] for r in rows], dtype=np.float64)
        assert values.shape == (len(rows), 6)
        assert np.isfinite(values).all()
        total_rows += len(rows)
    assert total_rows == 244_102


def test_csv_values_match_the_source_and_units(csv_dir: Path) -> None:
    recordings = watch.read_recordings()
    assert len(recordings) == 140
    for rec in recordings[::9]:
        _, rows = _read(csv_dir / watch.csv_name(rec))
        values = np.array([r[:6] for r in rows], dtype=np.float64)
        np.testing.assert_allclose(values, rec.signals, rtol=0, atol=1e-14)
    signals = np.concatenate([r.signals for r in recordings])
    magnitude = np.linalg.norm(signals[:, :3], axis=1)
    assert 0.9 < float(np.median(magnitude)) < 1.3  # accelerometer in g


def test_reading_never_imports_seglearn() -> None:
    # In a fresh interpreter: in this one, other tests may have imported scikit-learn (Keras does
    # when it is installed), which says nothing about the reader.
    code = ("import sys; from tinyfl.data import watch; watch.read_recordings(); "
            "print(sorted(m for m in ('seglearn', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(HOST)})
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_restricted_unpickler_refuses_os_system(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"X": [_CallsOsSystem(f"touch {marker}")]}, protocol=protocol)
    with pytest.raises(DatasetError, match=r"refused to unpickle global (posix|nt|os)\.system"):
        watch.restricted_load(io.BytesIO(payload))
    assert not marker.exists()


def test_restricted_unpickler_rebuilds_numpy_arrays_only() -> None:
    array = np.arange(12, dtype="<f8").reshape(3, 4)
    back = watch.restricted_load(io.BytesIO(pickle.dumps(array, protocol=2)))
    np.testing.assert_array_equal(back, array)
    with pytest.raises(DatasetError, match=r"builtins\.eval"):
        watch.restricted_load(io.BytesIO(b"cbuiltins\neval\n(S'1+1'\ntR."))
    with pytest.raises(DatasetError, match="malformed"):
        watch.restricted_load(io.BytesIO(b"\x80\x02}q\x00"))  # truncated: no STOP


def test_file_with_wrong_hash_is_refused_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "watch_dataset.npy"
    np.save(bad, np.array(_CallsOsSystem(f"touch {marker}"), dtype=object), allow_pickle=True)
    monkeypatch.setenv("TINYFL_WATCH_FILE", str(bad))
    with pytest.raises(DatasetError, match="SHA-256"):
        watch.read_recordings()
    assert not marker.exists()
    monkeypatch.setenv("TINYFL_WATCH_FILE", str(tmp_path / "missing.npy"))
    with pytest.raises(DatasetError, match="not a file"):
        watch.locate()


def test_located_file_is_the_verified_one() -> None:
    path = watch.locate()
    assert path.name == "watch_dataset.npy"
    assert watch._verified_bytes(path)  # the recorded SHA-256
