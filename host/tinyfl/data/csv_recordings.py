"""A folder of CSV recordings -> the one dataset form (`tinyfl data import-csv`).

One file per recording: a header row naming the columns, then one row per reading at the sensor's
rate. The sensor channels are every numeric column (or the ones `columns` names); the label and
the group come either from columns (`label_column`, `group_column`, which may change within a
file) or from the file name (`pattern`, a regular expression with named groups `label` and
optionally `group`, e.g. `(?P<group>[^_]+)_(?P<label>[^_]+)_\\d+\\.csv`). Windows of `window` rows
are cut every `stride` rows inside each run of rows with one label and one group, so a window
never mixes two labels or two groups (label-pure windows).

Errors (`DatasetError`, exit code 5) name the file, the line and the column: a cell that is not a
number, NaN or infinite values, a row with the wrong number of fields, a file without a label or
group, a recording shorter than one window, a folder with no matching files.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinyfl.data.dataset import Dataset, make_dataset
from tinyfl.errors import DatasetError, UsageError

__all__ = ["CsvSpec", "import_csv"]


@dataclass(frozen=True)
class CsvSpec:
    window: int
    stride: int
    label_column: str | None = "label"
    group_column: str | None = "group"
    pattern: str | None = None
    columns: tuple[str, ...] = ()  # sensor channels; empty: every other column
    glob: str = "*.csv"

    def __post_init__(self) -> None:
        if self.window < 1 or self.stride < 1:
            raise UsageError(f"--window and --stride must be >= 1, got {self.window}, "
                             f"{self.stride}")
        if self.pattern is not None:
            try:
                names = re.compile(self.pattern).groupindex
            except re.error as exc:
                raise UsageError(f"--pattern {self.pattern!r} is not a regular expression: "
                                 f"{exc}") from exc
            if "label" not in names and self.label_column is None:
                raise UsageError("--pattern needs a named group (?P<label>...) when there is no "
                                 "label column")


@dataclass(frozen=True)
class _Recording:
    path: Path
    values: npt.NDArray[np.float64]  # (rows, channels)
    labels: list[str]  # per row
    groups: list[str]  # per row


def _read(path: Path, spec: CsvSpec, from_name: dict[str, str]) -> tuple[list[str], _Recording]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read it as CSV ({exc})") from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DatasetError(f"{path}: empty file (expected a header row and readings)")
    header = [h.strip() for h in rows[0]]
    col = {name: i for i, name in enumerate(header)}

    label_at = group_at = None
    if "label" not in from_name:
        if spec.label_column is None or spec.label_column not in col:
            raise DatasetError(f"{path}: no column {spec.label_column!r} for the label (columns: "
                               f"{', '.join(header)}); name it with --label-column or take it "
                               "from the file name with --pattern")
        label_at = col[spec.label_column]
    if "group" not in from_name and spec.group_column in col:
        group_at = col[str(spec.group_column)]
    # label and group columns are never channels, even when the file name gives them
    skip = {col[c] for c in (spec.label_column, spec.group_column) if c in col}
    if spec.columns:
        missing = [c for c in spec.columns if c not in col]
        if missing:
            raise DatasetError(f"{path}: no column(s) {missing} (columns: {', '.join(header)})")
        channels = [col[c] for c in spec.columns]
    else:
        channels = [i for i in range(len(header)) if i not in skip]
    values = np.empty((len(rows) - 1, len(channels)), np.float64)
    labels, groups = [], []
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise DatasetError(f"{path}, line {line}: {len(row)} fields, the header has "
                               f"{len(header)}")
        for j, c in enumerate(channels):
            try:
                v = float(row[c])
            except ValueError:
                raise DatasetError(f"{path}, line {line}, column {header[c]!r}: {row[c]!r} is "
                                   "not a number") from None
            if not math.isfinite(v):
                raise DatasetError(f"{path}, line {line}, column {header[c]!r}: {row[c]!r} is "
                                   "not a finite number")
            values[r, j] = v
        label = from_name.get("label") if label_at is None else row[label_at].strip()
        group = from_name.get("group", "") if group_at is None else row[group_at].strip()
        if not label:
            raise DatasetError(f"{path}, line {line}: empty label")
        labels.append(str(label))
        groups.append(str(group))
    return [header[c] for c in channels], _Recording(path, values, labels, groups)


def _runs(keys: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """(start, stop) of each maximal run of one (label, group)."""
    runs, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            runs.append((start, i))
            start = i
    return runs


def import_csv(folder: Path, spec: CsvSpec,
               progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Reads every recording in `folder` and cuts label-pure windows (module docstring)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder of CSV recordings")
    files = sorted(folder.glob(spec.glob))
    if not files:
        raise DatasetError(f"{folder}: no files match {spec.glob!r}")
    regex = re.compile(spec.pattern) if spec.pattern else None
    channel_names: list[str] | None = None
    xs: list[npt.NDArray[np.float64]] = []
    ys: list[str] = []
    gs: list[str] = []
    for n, path in enumerate(files, 1):
        from_name: dict[str, str] = {}
        if regex is not None:
            m = regex.fullmatch(path.name)
            if m is None:
                raise DatasetError(f"{path}: the file name does not match --pattern "
                                   f"{spec.pattern!r}")
            from_name = {k: v for k, v in m.groupdict().items() if v is not None}
        names, rec = _read(path, spec, from_name)
        if channel_names is None:
            channel_names = names
        elif names != channel_names:
            raise DatasetError(f"{path}: channels {names} differ from the first file's "
                               f"{channel_names}")
        if len(rec.labels) < spec.window:
            raise DatasetError(f"{path}: {len(rec.labels)} readings, fewer than one window of "
                               f"{spec.window}; use a smaller --window or leave the file out")
        for start, stop in _runs(list(zip(rec.labels, rec.groups))):
            for offset in range(start, stop - spec.window + 1, spec.stride):
                xs.append(rec.values[offset:offset + spec.window])
                ys.append(rec.labels[start])
                gs.append(rec.groups[start])
        if progress is not None:
            progress(n, len(files))
    if not xs:
        raise DatasetError(f"{folder}: no run of one label and group is as long as a window of "
                           f"{spec.window} readings")
    has_groups = any(gs)
    if has_groups and not all(gs):
        raise DatasetError(f"{folder}: some recordings have a group and others none")
    return make_dataset(np.stack(xs), np.array(ys), np.array(gs) if has_groups else None,
                        origin=str(folder))
