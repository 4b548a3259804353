"""The one dataset format every TinyFL step reads: an `.npz` file of samples, labels and groups.

Arrays (`numpy.load(..., allow_pickle=False)`: no pickled objects are ever read):

- `x`: n samples, float or integer: raw windows (n, T, C), feature vectors (n, F) or 2-D inputs
  such as spectrograms (n, H, W, C). Stored as float32 in memory.
- `y`: n labels, integers or strings.
- `group` (optional): n ids (integers or strings) of the user, machine or site a sample comes
  from; by-group partitions and held-out groups use it.
- `classes` (optional): the class names, in class-index order. With integer labels, label i is
  `classes[i]`; with string labels, every label must be one of them. Without it, the sorted
  distinct labels are the classes.

`load_dataset` checks everything once and raises `DatasetError` (exit code 5) naming the file and
the array, row or label at fault: non-finite values, mismatched lengths, a listed class with no
samples, more classes than a node supports, empty data. Writing is atomic (`save_dataset`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.errors import DatasetError
from tinyfl.files import atomic_write

__all__ = [
    "MAX_CLASSES",
    "Dataset",
    "load_dataset",
    "make_dataset",
    "save_dataset",
]

# The firmware's TINYFL_MAX_CLASSES default (firmware/lib/tinyfl/include/tinyfl/config.h).
MAX_CLASSES = 8
SAMPLE_RANKS = {1: "feature vectors (n, F)", 2: "windows (n, T, C)", 3: "2-D inputs (n, H, W, C)"}

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Validated samples: x (n, ...) float32, y (n,) class indices, groups (n,) strings or None."""

    x: F32 = field(repr=False)
    y: I64 = field(repr=False)
    classes: tuple[str, ...]
    groups: npt.NDArray[np.str_] | None = field(repr=False)
    origin: str = "<memory>"  # the file it came from, for messages
    sha256: str = ""  # of the file's bytes; empty for a dataset made in memory

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.x.shape[1:])

    @property
    def kind(self) -> str:
        """"windows", "features" or "images", from the rank of one sample."""
        return {1: "features", 2: "windows", 3: "images"}[len(self.sample_shape)]

    def group_names(self) -> list[str]:
        return [] if self.groups is None else sorted(set(self.groups.tolist()), key=_natural)

    def select(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Dataset:
        """The samples at a boolean mask or index array (same classes, same origin)."""
        return Dataset(self.x[rows], self.y[rows], self.classes,
                       None if self.groups is None else self.groups[rows], self.origin,
                       self.sha256)


def _natural(text: str) -> tuple[int, int | str]:
    """Sort key: numeric ids in numeric order (2 before 10), then other names."""
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


def make_dataset(x: npt.ArrayLike, y: npt.ArrayLike, groups: npt.ArrayLike | None = None,
                 classes: tuple[str, ...] | list[str] | None = None, origin: str = "<memory>",
                 sha256: str = "", max_classes: int = MAX_CLASSES,
                 require_every_class: bool = True) -> Dataset:
    """Checks and normalises arrays into a Dataset (see the module docstring for the rules)."""
    xa = np.asarray(x)
    if xa.dtype.kind not in "fiub" or xa.dtype.kind == "b" and xa.size == 0:
        raise DatasetError(f"{origin}: x must be numeric, got dtype {xa.dtype}")
    if xa.ndim - 1 not in SAMPLE_RANKS:
        raise DatasetError(f"{origin}: x has shape {xa.shape}; expected "
                           + ", ".join(SAMPLE_RANKS.values()))
    n = xa.shape[0]
    if n == 0 or any(d == 0 for d in xa.shape[1:]):
        raise DatasetError(f"{origin}: x {xa.shape} holds no samples")
    xf = xa.astype(np.float32)
    bad = ~np.isfinite(xf.reshape(n, -1))
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DatasetError(f"{origin}: x row {row} has a NaN or infinite value "
                           f"({int(bad.sum())} such values in {int(bad.any(axis=1).sum())} rows)")
    ya = np.asarray(y)
    if ya.shape != (n,):
        raise DatasetError(f"{origin}: y has shape {ya.shape}, x has {n} samples: need one label "
                           "per sample")
    labels, names = _labels(ya, classes, origin)
    if len(names) > max_classes:
        raise DatasetError(f"{origin}: {len(names)} classes, more than a node supports "
                           f"({max_classes}; TINYFL_MAX_CLASSES in the firmware's config.h)")
    if len(names) < 2:
        raise DatasetError(f"{origin}: {len(names)} class; a classifier needs at least 2")
    counts = np.bincount(labels, minlength=len(names))
    if require_every_class and (counts == 0).any():
        empty = [names[i] for i in np.flatnonzero(counts == 0)]
        raise DatasetError(f"{origin}: class(es) {', '.join(map(repr, empty))} have no samples")
    group_arr = None
    if groups is not None:
        ga = np.asarray(groups)
        if ga.shape != (n,):
            raise DatasetError(f"{origin}: group has shape {ga.shape}, x has {n} samples")
        if ga.dtype.kind == "f":
            if not np.isfinite(ga).all() or not np.all(ga == np.round(ga)):
                raise DatasetError(f"{origin}: group ids must be integers or strings")
            ga = ga.astype(np.int64)
        group_arr = np.char.strip(ga.astype(str))
        if (np.char.str_len(group_arr) == 0).any():
            row = int(np.flatnonzero(np.char.str_len(group_arr) == 0)[0])
            raise DatasetError(f"{origin}: group id of row {row} is empty")
    return Dataset(np.ascontiguousarray(xf), labels, tuple(names), group_arr, origin, sha256)


def _labels(y: npt.NDArray[Any], classes: tuple[str, ...] | list[str] | None,
            origin: str) -> tuple[I64, list[str]]:
    names = None if classes is None else [str(c) for c in classes]
    if names is not None and len(set(names)) != len(names):
        raise DatasetError(f"{origin}: classes lists a name twice: {names}")
    if y.dtype.kind in "iu" or y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(
            y == np.round(y)):
        yi = y.astype(np.int64)
        if names is None:
            values = np.unique(yi)
            names = [str(v) for v in values.tolist()]
            return np.searchsorted(values, yi).astype(np.int64), names
        bad = (yi < 0) | (yi >= len(names))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{origin}: y row {row} is {int(yi[row])}, outside the "
                               f"{len(names)} classes {names}")
        return yi, names
    if y.dtype.kind not in "US":
        raise DatasetError(f"{origin}: y must hold integers or strings, got dtype {y.dtype}")
    ys = np.char.strip(y.astype(str))
    if names is None:
        names = sorted(set(ys.tolist()), key=_natural)
    index = {name: i for i, name in enumerate(names)}
    out = np.empty(len(ys), np.int64)
    for row, label in enumerate(ys.tolist()):
        if label not in index:
            raise DatasetError(f"{origin}: y row {row} is {label!r}, not one of the classes "
                               f"{names}")
        out[row] = index[label]
    return out, names


def load_dataset(path: str | Path, max_classes: int = MAX_CLASSES,
                 require_every_class: bool = True) -> Dataset:
    """Reads and checks an npz dataset file (module docstring); DatasetError names the fault."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc.strerror or exc}") from exc
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as exc:  # zip, zlib and npy header parsers raise many kinds: all are "bad"
        raise DatasetError(f"{path} is not a readable .npz dataset ({exc}); expected arrays x, y "
                           "and optionally group and classes (numpy.savez)") from exc
    for required in ("x", "y"):
        if required not in arrays:
            raise DatasetError(f"{path} has no array {required!r} (it has "
                               f"{sorted(arrays) or 'none'}); a dataset needs x and y")
    unknown = set(arrays) - {"x", "y", "group", "classes"}
    if unknown:
        raise DatasetError(f"{path}: unknown array(s) {sorted(unknown)}; expected x, y, group, "
                           "classes")
    classes = arrays.get("classes")
    if classes is not None and (classes.ndim != 1 or classes.dtype.kind not in "US"):
        raise DatasetError(f"{path}: classes must be a 1-D array of names, got {classes.dtype} "
                           f"{classes.shape}")
    return make_dataset(arrays["x"], arrays["y"], arrays.get("group"),
                        None if classes is None else [str(c) for c in classes.tolist()],
                        origin=str(path), sha256=hashlib.sha256(raw).hexdigest(),
                        max_classes=max_classes, require_every_class=require_every_class)


def save_dataset(path: str | Path, data: Dataset) -> str:
    """Writes `data` as an npz dataset atomically (integer labels plus classes); returns the
    SHA-256 of the bytes written."""
    arrays: dict[str, npt.NDArray[Any]] = {"x": data.x, "y": data.y,
                                           "classes": np.asarray(data.classes, dtype=str)}
    if data.groups is not None:
        arrays["group"] = data.groups
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    raw = buf.getvalue()
    try:
        atomic_write(Path(path), raw)
    except OSError as exc:
        raise DatasetError(f"cannot write dataset {path}: {exc.strerror or exc}") from exc
    return hashlib.sha256(raw).hexdigest()
