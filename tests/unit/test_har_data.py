"""HAPT raw signals: the restricted unpickler, windows and user splits, on the real data file."""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from tinyfl.data import har
from tinyfl.errors import DatasetError


class _CallsOsSystem:
    """Unpickling this runs os.system(command) under a plain pickle.load."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def recordings() -> list[har.Recording]:
    return har.read_recordings()


@pytest.fixture(scope="module")
def windows(recordings: list[har.Recording]) -> har.Windows:
    return har.windows_from_recordings(recordings)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_restricted_unpickler_refuses_os_system(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({1: [_CallsOsSystem(f"touch {marker}")]}, protocol=protocol)
    with pytest.raises(DatasetError, match=r"refused to unpickle global (posix|nt|os)\.system"):
        har.restricted_load(io.BytesIO(payload))
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_globals() -> None:
    with pytest.raises(DatasetError, match=r"builtins\.eval"):
        har.restricted_load(io.BytesIO(b"cbuiltins\neval\n(S'1+1'\ntR."))
    with pytest.raises(DatasetError, match="encoding 'zlib'"):
        har.restricted_load(io.BytesIO(b"c_codecs\nencode\n(X\x01\x00\x00\x00aX\x04\x00\x00\x00zlibtR."))
    with pytest.raises(DatasetError, match="malformed"):
        har.restricted_load(io.BytesIO(b"\x80\x02}q\x00"))  # truncated: no STOP


def test_restricted_unpickler_still_rebuilds_numpy_arrays() -> None:
    array = np.arange(12, dtype="<f8").reshape(3, 4)
    back = har.restricted_load(io.BytesIO(pickle.dumps(array, protocol=2)))
    np.testing.assert_array_equal(back, array)


def test_file_with_wrong_hash_is_refused_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "HAPT.pkl.gz"
    bad.write_bytes(gzip.compress(pickle.dumps(_CallsOsSystem(f"touch {marker}"), protocol=2)))
    monkeypatch.setenv("TINYFL_HAPT_FILE", str(bad))
    with pytest.raises(DatasetError, match="SHA-256"):
        har.read_recordings()
    assert not marker.exists()
    monkeypatch.setenv("TINYFL_HAPT_FILE", str(tmp_path / "missing.pkl.gz"))
    with pytest.raises(DatasetError, match="not a file"):
        har.locate()


def test_located_file_is_the_verified_one() -> None:
    path = har.locate()
    assert path.name == "HAPT.pkl.gz"
    assert har._verified_bytes(path)  # the recorded SHA-256


def test_recordings_cover_every_user(recordings: list[har.Recording]) -> None:
    assert sorted({r.user for r in recordings}) == list(har.USERS)
    assert len(recordings) == 61  # HAPT's 61 experiments (user 10 has three)
    for rec in recordings:
        assert rec.signals.shape == (rec.labels.size, 6)
        assert rec.signals.dtype == np.float32
        assert set(np.unique(rec.labels).tolist()) <= set(range(-1, 12))


def test_windows_shape_and_label_purity(
    recordings: list[har.Recording], windows: har.Windows
) -> None:
    assert windows.x.shape == (len(windows), 128, 6)
    assert windows.classes == har.BASIC_ACTIVITIES
    assert set(np.unique(windows.y).tolist()) == set(range(6))
    by_key = {(r.user, r.experiment): r for r in recordings}
    for i in range(0, len(windows), 7):  # a deterministic seventh of them, all checks exact
        rec = by_key[(int(windows.user[i]), int(windows.experiment[i]))]
        start = int(windows.start[i])
        assert (rec.labels[start : start + 128] == windows.y[i]).all()
        np.testing.assert_array_equal(windows.x[i], rec.signals[start : start + 128])


def test_windows_overlap_by_half(windows: har.Windows) -> None:
    same = (np.diff(windows.user.astype(int)) == 0) & (np.diff(windows.experiment.astype(int)) == 0)
    same &= np.diff(windows.y.astype(int)) == 0
    steps = np.diff(windows.start.astype(int))[same]
    assert (steps == 64).mean() > 0.9  # consecutive windows in one label run step by 64
    assert (steps >= 64).all()


def test_all_activities_adds_transitions(recordings: list[har.Recording]) -> None:
    full = har.windows_from_recordings(recordings, all_activities=True)
    assert full.classes == har.ACTIVITIES
    assert set(np.unique(full.y).tolist()) == set(range(12))
    basic = har.windows_from_recordings(recordings)
    assert (full.y < 6).sum() == len(basic)


def test_user_splits_disjoint_and_complete(windows: har.Windows) -> None:
    assert har.TEST_USERS == (2, 4, 9, 10, 12, 13, 18, 20, 24)
    splits = [set(har.TEST_USERS), set(har.SOURCE_USERS), set(har.FLEET_USERS)]
    assert sum(len(s) for s in splits) == 30
    assert set().union(*splits) == set(har.USERS)
    for name, users in zip(("test", "source", "fleet"), splits):
        part = windows.split(name)  # type: ignore[arg-type]
        assert set(np.unique(part.user).tolist()) == users
        assert all(har.user_split(u) == name for u in users)
    assert sum(len(windows.split(n)) for n in ("test", "source", "fleet")) == len(windows)


def test_quantization_from_source_users(windows: har.Windows) -> None:
    source = windows.split("source").x
    scale, zero_point = har.fit_quantization(source)
    assert zero_point == 0 and 0.005 < scale < 0.05
    q = har.quantize(source, scale, zero_point)
    assert q.dtype == np.int8
    inside = np.abs(source) <= 127 * scale
    error = np.abs(q.astype(np.float32) * np.float32(scale) - source)[inside]
    assert error.max() <= scale / 2 + 1e-6
    assert inside.mean() >= 0.998  # the 99.9th percentile bound clips almost nothing
