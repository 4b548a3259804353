"""The dataset form (npz) and the CSV import: what a user's broken file gets, and that any bytes
give a DatasetError, never another exception."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyfl.cli.main import main
from tinyfl.data.csv_recordings import CsvSpec, import_csv
from tinyfl.data.dataset import MAX_CLASSES, load_dataset, make_dataset, save_dataset
from tinyfl.data.splits import SplitRule, fit_input_quantization, quantize, split_rows
from tinyfl.errors import DatasetError, UsageError


def _npz(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_a_valid_file_round_trips_with_string_labels_and_groups(tmp_path: Path) -> None:
    x = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    path = _npz(tmp_path / "d.npz", x=x, y=np.array(["on", "off", "on", "off"]),
                group=np.array([7, 7, 10, 2]))
    data = load_dataset(path)
    assert data.kind == "windows" and data.sample_shape == (3, 2)
    assert data.classes == ("off", "on") and data.y.tolist() == [1, 0, 1, 0]
    assert data.group_names() == ["2", "7", "10"]  # numeric ids in numeric order
    saved = tmp_path / "again.npz"
    sha = save_dataset(saved, data)
    again = load_dataset(saved)
    assert again.sha256 == sha and again.classes == data.classes
    assert np.array_equal(again.x, x.astype(np.float32)) and np.array_equal(again.y, data.y)
    assert save_dataset(tmp_path / "third.npz", again) == sha  # same bytes every time


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"y": np.zeros(3)}, "has no array 'x'"),
        ({"x": np.zeros((3, 2))}, "has no array 'y'"),
        ({"x": np.array([[0.0, np.nan], [1, 2], [3, 4]]), "y": [0, 1, 0]},
         "x row 0 has a NaN or infinite value"),
        ({"x": np.array([[0.0, 1], [1, 2], [3, np.inf]]), "y": [0, 1, 0]}, "x row 2"),
        ({"x": np.zeros((3, 2)), "y": [0, 1]}, "need one label per sample"),
        ({"x": np.zeros((3, 2)), "y": [0, 1, 5], "classes": np.array(["a", "b"])},
         "y row 2 is 5, outside the 2 classes"),
        ({"x": np.zeros((3, 2)), "y": [0, 1, 0], "classes": np.array(["a", "b", "c"])},
         "class(es) 'c' have no samples"),
        ({"x": np.zeros((3, 2)), "y": ["a", "b", "z"], "classes": np.array(["a", "b"])},
         "y row 2 is 'z', not one of the classes"),
        ({"x": np.zeros((12, 2)), "y": np.arange(12)}, f"more than a node supports ({MAX_CLASSES}"),
        ({"x": np.zeros((3, 2)), "y": [1, 1, 1]}, "a classifier needs at least 2"),
        ({"x": np.zeros((3, 2)), "y": [0, 1, 0], "group": ["a", "", "b"]},
         "group id of row 1 is empty"),
        ({"x": np.zeros((3, 2)), "y": [0, 1, 0], "group": [1, 2]}, "group has shape (2,)"),
        ({"x": np.zeros(3), "y": [0, 1, 0]}, "x has shape (3,)"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, "holds no samples"),
        ({"x": np.zeros((3, 2)), "y": [0, 1, 0], "extra": [1]}, "unknown array(s) ['extra']"),
    ],
)
def test_bad_data_names_the_array_and_row(tmp_path: Path, arrays: dict[str, object],
                                          fragment: str) -> None:
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_a_pickled_object_array_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = _npz(tmp_path / "obj.npz", x=np.zeros((2, 2)), y=np.array([{"a": 1}, {"b": 2}]))
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_dataset(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_any_bytes_give_a_dataset_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    with pytest.raises(DatasetError):
        load_dataset(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10_000), flip=st.integers(0, 10_000), value=st.integers(0, 255))
def test_a_damaged_valid_file_gives_a_dataset_error_or_loads(tmp_path: Path, cut: int, flip: int,
                                                             value: int) -> None:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(40, dtype=np.float32).reshape(10, 4), y=np.arange(10) % 2,
             group=np.arange(10) % 3)
    raw = bytearray(buf.getvalue())
    raw[flip % len(raw)] = value
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(raw[: len(raw) - cut % len(raw)]))
    try:
        data = load_dataset(path)
    except DatasetError:
        return
    assert np.isfinite(data.x).all() and len(data) == len(data.y)


def test_splits_by_group_and_by_rows() -> None:
    data = make_dataset(np.arange(12, dtype=np.float32).reshape(6, 2), [0, 1, 0, 1, 0, 1],
                        ["a", "a", "b", "b", "c", "c"])
    split = split_rows(data, SplitRule(("a",), ("c",)))
    assert split.source.tolist() == [True, True, False, False, False, False]
    assert split.test.tolist() == [False] * 4 + [True] * 2
    assert split.groups == {"source": ["a"], "fleet": ["b"], "test": ["c"]}
    with pytest.raises(DatasetError, match=r"group\(s\) \['z'\] not in the data"):
        split_rows(data, SplitRule(("z",), ("c",)))
    with pytest.raises(DatasetError, match="named as both source and test"):
        SplitRule(("a",), ("a",))
    with pytest.raises(DatasetError, match="the fleet split is empty"):
        split_rows(data, SplitRule(("a", "b"), ("c",)))
    by_rows = split_rows(data, SplitRule(source_fraction=0.5, split_seed=3))
    assert by_rows.source.sum() == 3 and not (by_rows.source & by_rows.fleet).any()
    assert split_rows(data, SplitRule(source_fraction=0.5, split_seed=3)).source.tolist() == (
        by_rows.source.tolist())


def test_input_quantization_symmetric_for_windows_and_full_range_for_unit_features() -> None:
    rng = np.random.default_rng(0)
    windows = rng.normal(0, 1, (50, 10, 3)).astype(np.float32)
    scale, zp = fit_input_quantization(windows, "windows")
    assert zp == 0 and scale == pytest.approx(np.percentile(np.abs(windows), 99.9) / 127, 1e-6)
    features = rng.uniform(0, 1, (50, 8)).astype(np.float32)
    features[0, 0], features[1, 1] = 0.0, 1.0
    scale, zp = fit_input_quantization(features, "features")
    assert zp == -128 and np.float32(scale) == np.float32(1 / 255)
    codes = quantize(features, scale, zp)
    assert codes.min() == -128 and codes.max() == 127


def _csv(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_csv_recordings_become_label_pure_windows(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 10},{'idle' if i < 6 else 'run'},m1" for i in range(10))
    _csv(tmp_path / "rec" / "a.csv", "ax,ay,label,group\n" + rows + "\n")
    rows = "\n".join(f"{i},{-i},run,m2" for i in range(5))
    _csv(tmp_path / "rec" / "b.csv", "ax,ay,label,group\n" + rows + "\n")
    data = import_csv(tmp_path / "rec", CsvSpec(window=3, stride=2))
    # a.csv: idle rows 0-5 -> windows at 0, 2; run rows 6-9 -> window at 6; b.csv: 0, 2
    assert len(data) == 5 and data.sample_shape == (3, 2)
    assert [data.classes[i] for i in data.y] == ["idle", "idle", "run", "run", "run"]
    assert data.groups is not None and data.groups.tolist() == ["m1", "m1", "m1", "m2", "m2"]
    assert data.x[2].tolist() == [[6, 60], [7, 70], [8, 80]]


def test_csv_labels_and_groups_from_the_file_name(tmp_path: Path) -> None:
    for name in ("u1_walk_0.csv", "u2_sit_0.csv", "u2_walk_1.csv"):
        _csv(tmp_path / name, "x,y\n" + "\n".join(f"{i},{i}" for i in range(4)) + "\n")
    spec = CsvSpec(window=4, stride=4, label_column=None, group_column=None,
                   pattern=r"(?P<group>[^_]+)_(?P<label>[^_]+)_\d+\.csv")
    data = import_csv(tmp_path, spec)
    assert data.classes == ("sit", "walk") and data.group_names() == ["u1", "u2"]


@pytest.mark.parametrize(
    ("text", "spec", "fragment"),
    [
        ("a,label\n1,x\noops,x\n", {}, "line 3, column 'a': 'oops' is not a number"),
        ("a,label\n1,x\nnan,x\n", {}, "line 3, column 'a': 'nan' is not a finite number"),
        ("a,label\n1,x\n2\n", {}, "line 3: 1 fields, the header has 2"),
        ("a,b\n1,2\n3,4\n", {}, "no column 'label' for the label"),
        ("a,label\n1,x\n2,x\n", {"window": 5}, "2 readings, fewer than one window of 5"),
        ("", {}, "empty file"),
    ],
)
def test_a_broken_csv_names_file_line_and_column(tmp_path: Path, text: str,
                                                 spec: dict[str, int], fragment: str) -> None:
    _csv(tmp_path / "r.csv", text)
    with pytest.raises(DatasetError) as info:
        import_csv(tmp_path, CsvSpec(**{"window": 1, "stride": 1, **spec}))  # type: ignore[arg-type]
    assert "r.csv" in str(info.value) and fragment in str(info.value)


def test_csv_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no files match"):
        import_csv(tmp_path, CsvSpec(window=2, stride=1))
    with pytest.raises(UsageError, match="--window and --stride must be >= 1"):
        CsvSpec(window=0, stride=1)
    with pytest.raises(UsageError, match="not a regular expression"):
        CsvSpec(window=2, stride=1, pattern="(")
    _csv(tmp_path / "x.csv", "a,label\n1,x\n")
    with pytest.raises(DatasetError, match="does not match --pattern"):
        import_csv(tmp_path, CsvSpec(window=1, stride=1, pattern=r"(?P<label>\d+)\.csv"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from("0123456789.,-e\nabl\"x "), max_size=300))
def test_any_csv_text_gives_a_dataset_error_or_windows(tmp_path: Path, text: str) -> None:
    _csv(tmp_path / "fuzz" / "r.csv", "a,label\n" + text)
    try:
        data = import_csv(tmp_path / "fuzz", CsvSpec(window=2, stride=1))
    except DatasetError:
        return
    assert np.isfinite(data.x).all() and data.sample_shape == (2, 1)


def test_import_csv_command_writes_the_npz_and_exits_5_on_bad_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "\n".join(f"{i},{'a' if i % 8 < 4 else 'b'},g{i // 8}" for i in range(32))
    _csv(tmp_path / "rec" / "one.csv", "v,label,group\n" + rows + "\n")
    out = tmp_path / "d.npz"
    argv = ["data", "import-csv", str(tmp_path / "rec"), "--window", "4", "--out", str(out)]
    assert main(argv) == 0
    assert "8 windows of 4 x 1, 2 classes (a, b), 4 groups" in capsys.readouterr().out
    assert len(load_dataset(out)) == 8
    _csv(tmp_path / "rec" / "two.csv", "v,label,group\n1,a,g9\nx,a,g9\n")
    out.unlink()
    assert main(argv) == 5
    assert "two.csv, line 3, column 'v'" in capsys.readouterr().err
    assert not out.exists()


def test_the_command_lines_names_are_the_packaged_datasets() -> None:
    from tinyfl.data import DEFAULT_MODEL, MODEL_TASKS, PACKAGED_NAMES
    from tinyfl.data.packaged import PACKAGED, RECIPES

    assert tuple(PACKAGED) == PACKAGED_NAMES == tuple(RECIPES)
    assert DEFAULT_MODEL in MODEL_TASKS and set(MODEL_TASKS) <= set(PACKAGED)


def test_a_dataset_whose_samples_do_not_fit_the_model_is_refused_before_partitioning() -> None:
    from tinyfl.errors import ModelError
    from tinyfl.fleet.partition import build_partition
    from tinyfl.model.artifacts import load_artifacts

    art = load_artifacts("nsl-kdd")  # 64 input values
    data = make_dataset(np.zeros((10, 63), np.float32), np.arange(10) % 5,
                        classes=list(art.classes))
    with pytest.raises(ModelError, match="expects 64 input values per sample, the data's "
                                         "samples have 63"):
        build_partition(data, art, clients=2)
