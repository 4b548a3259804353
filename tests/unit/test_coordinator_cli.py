"""`tinyfl coordinate` argument handling: every mistake exits 2 with one line saying what to fix,
before anything connects; --resume takes the run's own settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinyfl.cli.coordinate import plan_from_args, write_config
from tinyfl.cli.main import build_parser, main

BROKER = "mqtt://127.0.0.1:9"  # nothing listens there: these tests must never get that far
BASE = ["coordinate", "--broker", BROKER, "--fleet", "lab", "--task", "synthetic:d=4,k=2"]


def test_help_lists_coordinate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "coordinate" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--rounds", "0"], "--rounds must be >= 1"),
        (["--clients-per-round", "0"], "--clients-per-round must be >= 1"),
        (["--clients-per-round", "2", "--min-clients", "3"], "cannot exceed --clients-per-round"),
        (["--fraction", "1.5"], "--fraction must be in (0, 1]"),
        (["--min-clients", "0"], "--min-clients must be >= 1"),
        (["--round-timeout", "0"], "--round-timeout must be > 0"),
        (["--epochs", "65"], "--epochs must be 1..64"),
        (["--batch-size", "0"], "--batch-size must be 1..1024"),
        (["--lr", "-1"], "--lr must be > 0"),
        (["--lr", "nan"], "--lr must be > 0"),
        (["--clip-norm", "-0.5"], "--clip-norm must be >= 0"),
        (["--uplink-bits", "3"], "--uplink-bits must be 8, 4, 2 or 32"),
        (["--downlink-bits", "4"], "--downlink-bits must be 32 or 8"),
        (["--seed", "-1"], "--seed must be 0.."),
        (["--strategy", "fedsgd"], "unknown strategy 'fedsgd'"),
        (["--strategy", "fedprox:mu=-1"], "fedprox mu must be"),
        (["--strategy", "fedadam:eta"], "expected NAME[:key=value"),
        (["--model", "models/nsl-kdd"], "give --model DIR or --task NAME, not both"),
        (["--initial-head", "init"], "has no initial head"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*BASE, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["coordinate", "--broker", BROKER, "--task", "nsl-kdd"], "--fleet NAME is required"),
        (["coordinate", "--broker", BROKER, "--fleet", "a/b", "--task", "x"], "fleet name"),
        (["coordinate", "--broker", BROKER, "--prefix", "a/+", "--task", "x"], "no wildcards"),
        (["coordinate", "--broker", "localhost", "--fleet", "a", "--task", "x"], "mqtt://"),
        (["coordinate", "--broker", BROKER, "--fleet", "a"], "--model DIR is required"),
    ],
)
def test_where_and_what_are_checked(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert fragment in capsys.readouterr().err


def test_a_missing_model_folder_is_a_model_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for what in (["--model", "models/none"], ["--task", "mnist"]):
        argv = ["coordinate", "--broker", BROKER, "--fleet", "a", *what]
        assert main([*argv, "--out", str(tmp_path / "run")]) == 8
        assert "is not a model folder" in capsys.readouterr().err


@pytest.mark.parametrize(("what", "spec"), [(["--model", "models/nsl-kdd"], "models/nsl-kdd"),
                                           (["--task", "nsl-kdd"], "nsl-kdd")])
def test_a_model_folder_is_the_task(what: list[str], spec: str, tmp_path: Path) -> None:
    argv = ["coordinate", "--broker", BROKER, "--fleet", "a", *what, "--out",
            str(tmp_path / "run"), "--initial-head", "init"]
    plan = plan_from_args(parse(argv))
    assert plan.task_spec == spec
    assert plan.task.name == "nsl-kdd" and plan.task.head_shape == (5, 65)
    meta = json.loads(Path("models/nsl-kdd/metadata.json").read_text())
    assert plan.task.model_hash.hex() == meta["model_hash"]
    assert plan.config.initial_head == "init"


def test_a_model_folder_of_an_older_format_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    shutil.copytree("models/nsl-kdd", folder)
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "metadata_version": 1}))
    argv = ["coordinate", "--broker", BROKER, "--fleet", "a", "--model", str(folder)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 8
    assert "metadata version 1, this TinyFL reads version 2" in capsys.readouterr().err


def test_k_and_fraction_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*BASE, "--clients-per-round", "2", "--fraction", "0.5"])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_uplink_scale_takes_row_or_tensor(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*BASE, "--uplink-scale", "column"])
    assert info.value.code == 2
    assert "choose row or tensor" in capsys.readouterr().err
    plan = plan_from_args(parse([*BASE, "--uplink-scale", "tensor"]))
    assert plan.config.uplink_scale_mode == 0
    assert plan_from_args(parse(BASE)).config.uplink_scale_mode == 1


def parse(argv: list[str]):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(argv)


def test_an_existing_run_folder_needs_resume_and_resume_keeps_its_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    plan = plan_from_args(
        parse([*BASE, "--out", str(out), "--lr", "0.3", "--seed", "5", "--strategy", "fedavgm"])
    )
    write_config(plan)
    saved = json.loads((out / "config.json").read_text())
    assert saved["engine"]["lr"] == 0.3 and saved["strategy"]["name"] == "fedavgm"
    assert saved["task"] == "synthetic:d=4,k=2"

    assert main([*BASE, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err

    resume = ["coordinate", "--broker", BROKER, "--fleet", "lab", "--out", str(out), "--resume"]
    resumed = plan_from_args(parse([*resume, "--rounds", "20", "--round-timeout", "5"]))
    assert resumed.config.lr == 0.3 and resumed.config.seed == 5
    assert resumed.config.rounds == 20 and resumed.config.round_timeout == 5
    assert resumed.strategy.name == "fedavgm" and resumed.task.embed_dim == 4
    assert resumed.resume_from is None  # no round finished yet: starts at round 1

    same = ["--lr", "0.3", "--strategy", "fedavgm", "--task", "synthetic:d=4,k=2"]
    plan_from_args(parse([*resume, *same]))
    assert main([*resume, "--lr", "0.1", "--seed", "6", "--strategy", "fedavg"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.1 (the run used 0.3)" in err and "--seed 6 (the run used 5)" in err
    assert "--strategy fedavg" in err

    # without --fleet the run's own topics; another fleet is a conflict
    unnamed = ["coordinate", "--broker", BROKER, "--out", str(out), "--resume"]
    assert plan_from_args(parse(unnamed)).topics.prefix == plan.topics.prefix
    assert main([*unnamed, "--fleet", "other"]) == 2
    assert f"topic prefix tinyfl/other (the run used {plan.topics.prefix})" in (
        capsys.readouterr().err)

    nothing = ["coordinate", "--broker", BROKER, "--fleet", "lab", "--resume"]
    assert main([*nothing, "--out", str(tmp_path / "nothing")]) == 2
    assert "holds no run to resume" in capsys.readouterr().err
