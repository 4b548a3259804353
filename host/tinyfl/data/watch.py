"""Shoulder physiotherapy exercises from a smartwatch IMU: the seglearn "watch" recordings.

Dataset: Burns, Leung, Hardisty, Whyne, Henry, McLachlin, "Shoulder physiotherapy exercise
recognition: machine learning the inertial signals from a smartwatch", Physiological Measurement
39 (2018) 075007, doi:10.1088/1361-6579/aacfd9 (preprint arXiv:1802.01489). Shipped in seglearn:
Burns, Whyne, "Seglearn: A Python Package for Learning Sequences and Time Series", Journal of
Machine Learning Research 19 (2018) 1-7 (arXiv:1803.08118). License: BSD 3-Clause (seglearn's
LICENSE, (c) 2018 David M. Burns; the data file is part of that distribution and carries no
separate license).

What it holds: healthy adult subjects wore a smartwatch on the wrist of the active arm and did one
set of each of seven exercises from a rotator-cuff physiotherapy protocol, once with each arm.
The packaged file has 10 subjects (ids 1..10) x 7 exercises x 2 arms = 140 recordings, every
combination exactly once (the published paper reports 20 subjects; the package ships 10).

- Sampling rate: 50 Hz. Recordings are 947..2618 samples (19..52 s), 244,102 samples in all.
- Channels (6, `CHANNELS`): triaxial accelerometer acc-x/y/z in g (median |a| is 1.07) and
  triaxial gyroscope gyro-x/y/z in rad/s, in the watch's frame; the file names them
  ax ay az wx wy wz. Values are 6-decimal numbers (give or take float64 rounding, < 4e-15),
  so the CSVs' 6 decimals lose nothing else.
- Classes (7, `EXERCISES`, the study's codes): PEN pendulum, ABD abduction, FEL forward
  elevation, IR internal rotation, ER external rotation, TRAP trapezius, ROW row. Balanced: 20
  recordings each, 2 per subject.
- Groups (10, `GROUPS`): one per subject, "subject01".."subject10"; each has all 7 classes, so
  the group is never the label (natural non-IID: each person moves differently).

Where the bytes come from: the PyPI package `seglearn==1.2.5` ships them as
`seglearn/data/watch_dataset.npy` (18.1 MB; the wheel is 11.3 MB): a 0-d object array whose
pickle (protocol 2) is a dict with X (list of (n, 6) float64 arrays), y (exercise index 0..6),
subject (1..10), side (0.0 left arm, 1.0 right arm), X_labels and y_labels. seglearn is never
imported (its import pulls in scikit-learn). `locate()` finds the file through importlib without
executing the package, `$TINYFL_WATCH_FILE` overrides the path, and the file must match `SHA256`
before a byte is unpickled. The .npy header is parsed with `ast.literal_eval`; the pickle is read
by `_RestrictedUnpickler`, which resolves only numpy's array reconstruction (`_reconstruct`,
`ndarray`, `dtype`) and a latin-1-only `_codecs.encode` (how protocol 2 stores bytes): any other
global raises `DatasetError` naming it, so no other code runs while reading.

CSV recordings (`write_csv_recordings`): one file per recording, `<group>_<label>_<index>.csv`
with index 0 for the left arm and 1 for the right; a header row `acc-x,acc-y,acc-z,gyro-x,gyro-y,
gyro-z,label,group`, then one row per sample (time order, 50 Hz) with the six values, the
exercise code and the group id. Windows for a small Conv1D: 128 samples (2.56 s) with step 64,
the HAR task's shape (same rate, same six channels and units): 3,605 windows in all, 226..433
per group, at least 29 per (group, class).
"""

from __future__ import annotations

import ast
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from tinyfl.data.resources import NUMPY_GLOBALS, PackagedFile
from tinyfl.data.resources import restricted_load as _restricted_load
from tinyfl.errors import DatasetError

__all__ = [
    "CHANNELS",
    "DISTRIBUTION",
    "EXERCISES",
    "GROUPS",
    "SAMPLE_RATE_HZ",
    "SHA256",
    "SIDES",
    "SUBJECTS",
    "Recording",
    "csv_name",
    "locate",
    "read_recordings",
    "restricted_load",
    "write_csv_recordings",
]

DISTRIBUTION = "seglearn"
VERSION = "1.2.5"
PACKAGE = "seglearn"
RESOURCE = ("data", "watch_dataset.npy")
SHA256 = "eb122f23cdf06ef6bd6c6c5312958ec5cf9d038e2e6d457b8081662c75a42537"

SAMPLE_RATE_HZ = 50
SOURCE_CHANNELS = ("ax", "ay", "az", "wx", "wy", "wz")  # as the file names them
CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")  # g, rad/s (HAR's names)
EXERCISES = ("PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW")  # class index = position
SUBJECTS = tuple(range(1, 11))
GROUPS = tuple(f"subject{s:02d}" for s in SUBJECTS)
SIDES = ("left", "right")  # side 0, 1; the CSV file index
N_RECORDINGS = len(SUBJECTS) * len(EXERCISES) * len(SIDES)  # 140
CSV_DECIMALS = 6  # the precision the file stores


# --- locating and verifying the file ---------------------------------------------------------


_FILE = PackagedFile(DISTRIBUTION, VERSION, PACKAGE, RESOURCE, SHA256, "TINYFL_WATCH_FILE",
                     "watch recordings")


def locate() -> Path:
    """Path of `watch_dataset.npy`, found without importing seglearn (see the module docstring)."""
    return _FILE.locate()


def _verified_bytes(path: Path) -> bytes:
    return _FILE.verified_bytes(path)


# --- the .npy header and the restricted unpickler ----------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"


def _npy_pickle_payload(data: bytes) -> bytes:
    """The pickle after the header of a .npy file that holds one 0-d object array."""
    if not data.startswith(_NPY_MAGIC) or len(data) < 10:
        raise DatasetError("watch file: not a .npy file")
    major = data[6]
    if major == 1:
        size, start = int.from_bytes(data[8:10], "little"), 10
    elif major in (2, 3):
        size, start = int.from_bytes(data[8:12], "little"), 12
    else:
        raise DatasetError(f"watch file: unknown .npy version {major}")
    try:
        header = ast.literal_eval(data[start : start + size].decode("latin-1"))
    except (ValueError, SyntaxError) as exc:
        raise DatasetError(f"watch file: unreadable .npy header ({exc})") from exc
    if not isinstance(header, dict) or header.get("descr") != "|O" or header.get("shape") != ():
        raise DatasetError(f"watch file: expected one pickled object, found header {header!r}")
    return data[start + size :]



_ALLOWED = NUMPY_GLOBALS  # the watch file is one pickled dict of numpy arrays


def restricted_load(stream: BinaryIO) -> Any:
    """Unpickles `stream` resolving only `_ALLOWED` (tinyfl.data.resources.restricted_load)."""
    return _restricted_load(stream, _ALLOWED, "watch file")


# --- from the pickled dict to recordings -------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One set of one exercise by one subject with one arm: signals (n, 6) float64 in CHANNELS
    order (g, rad/s) at 50 Hz; exercise 0..6 indexes EXERCISES, side 0 left / 1 right."""

    subject: int
    exercise: int
    side: int
    signals: npt.NDArray[np.float64]

    @property
    def group(self) -> str:
        return f"subject{self.subject:02d}"

    @property
    def label(self) -> str:
        return EXERCISES[self.exercise]


def _int_vector(top: dict[str, Any], key: str) -> npt.NDArray[np.int64]:
    values = np.asarray(top.get(key))
    if values.shape != (N_RECORDINGS,) or values.dtype.kind not in "iuf":
        raise DatasetError(f"watch pickle: {key!r} is not a numeric vector of {N_RECORDINGS}")
    ints = values.astype(np.int64)
    if not np.array_equal(ints, values):
        raise DatasetError(f"watch pickle: {key!r} has non-integer values")
    return ints


def read_recordings(path: Path | None = None) -> list[Recording]:
    """All 140 recordings, read from the verified file, sorted by (subject, exercise, side)."""
    path = path or locate()
    data = _verified_bytes(path)
    array = restricted_load(io.BytesIO(_npy_pickle_payload(data)))
    if not isinstance(array, np.ndarray) or array.shape != () or array.dtype != object:
        raise DatasetError("watch pickle: expected a 0-d object array")
    top = array.item()
    if not isinstance(top, dict):
        raise DatasetError("watch pickle: expected a dict")
    if list(top.get("X_labels", ())) != list(SOURCE_CHANNELS):
        raise DatasetError(f"watch pickle: channels {top.get('X_labels')!r}, not {SOURCE_CHANNELS}")
    if list(top.get("y_labels", ())) != list(EXERCISES):
        raise DatasetError(f"watch pickle: classes {top.get('y_labels')!r}, not {EXERCISES}")
    signals = top.get("X")
    if not isinstance(signals, list) or len(signals) != N_RECORDINGS:
        raise DatasetError(f"watch pickle: 'X' is not a list of {N_RECORDINGS} arrays")
    exercises = _int_vector(top, "y")
    subjects = _int_vector(top, "subject")
    sides = _int_vector(top, "side")
    recordings = []
    for i, (x, exercise, subject, side) in enumerate(zip(signals, exercises, subjects, sides)):
        where = f"recording {i}"
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != len(CHANNELS):
            raise DatasetError(f"watch pickle: {where} is not an (n, 6) array")
        if x.shape[0] < 1 or x.dtype.kind != "f" or not np.isfinite(x).all():
            raise DatasetError(f"watch pickle: {where} is empty or has non-finite values")
        if not (0 <= exercise < len(EXERCISES) and subject in SUBJECTS and side in (0, 1)):
            raise DatasetError(
                f"watch pickle: {where} has exercise {exercise}, subject {subject}, side {side}"
            )
        recordings.append(
            Recording(int(subject), int(exercise), int(side), x.astype(np.float64, copy=False))
        )
    recordings.sort(key=lambda r: (r.subject, r.exercise, r.side))
    keys = {(r.subject, r.exercise, r.side) for r in recordings}
    if len(keys) != N_RECORDINGS:
        raise DatasetError("watch pickle: a (subject, exercise, side) appears twice")
    return recordings


# --- CSV recordings ----------------------------------------------------------------------------


def csv_name(recording: Recording) -> str:
    """`<group>_<label>_<index>.csv`; the index is the side (0 left arm, 1 right arm)."""
    return f"{recording.group}_{recording.label}_{recording.side}.csv"


def _csv_text(recording: Recording) -> str:
    suffix = f",{recording.label},{recording.group}"
    values = np.char.mod(f"%.{CSV_DECIMALS}f", recording.signals)
    rows = [",".join(row) + suffix for row in values.tolist()]
    header = ",".join((*CHANNELS, "label", "group"))
    return "\n".join((header, *rows)) + "\n"


def write_csv_recordings(out_dir: Path, path: Path | None = None) -> list[Path]:
    """Writes one CSV per recording into `out_dir` (created if missing); returns the paths in
    (subject, exercise, side) order. `path` overrides where the source file is read from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for recording in read_recordings(path):
        target = out_dir / csv_name(recording)
        target.write_text(_csv_text(recording), encoding="ascii", newline="\n")
        written.append(target)
    return written
