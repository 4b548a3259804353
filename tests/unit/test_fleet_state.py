"""fleet.json round trip and validation, and the pid checks `tinyfl fleet down` relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tinyfl.fleet.state import (
    FleetState,
    FleetStateError,
    Liveness,
    ProcessRecord,
    latest_run,
    proc_info,
    read_state,
    stop_processes,
    verify,
    write_state,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _state(*records: ProcessRecord) -> FleetState:
    return FleetState(fleet="lab", prefix="tinyfl/lab", task="nsl-kdd", emulator="native",
                      broker_url="mqtt://127.0.0.1:1883", broker_owned=True,
                      processes=list(records))


@pytest.fixture
def sleeper() -> Iterator[tuple[subprocess.Popen[bytes], ProcessRecord]]:
    proc = subprocess.Popen(SLEEPER)
    info = proc_info(proc.pid)
    assert info is not None
    yield proc, ProcessRecord("node", "node01", proc.pid, info.start_time, tuple(SLEEPER))
    proc.kill()
    proc.wait()


def test_round_trip(tmp_path: Path) -> None:
    state = _state(ProcessRecord("broker", "", 100, 5, ("/usr/sbin/mosquitto", "-c", "x")),
                   ProcessRecord("node", "node01", 101, 6, ("prog", "--id", "node01"), "n.log"))
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    write_state(run, state)
    assert read_state(run) == state
    assert [n.node_id for n in read_state(run).nodes] == ["node01"]
    assert latest_run(tmp_path / "runs") == run


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(version=2),
        lambda d: d.pop("broker_url"),
        lambda d: d["processes"][0].update(pid=-1),
        lambda d: d["processes"][0].update(pid=1),
        lambda d: d["processes"][0].update(pid="12"),
        lambda d: d["processes"][0].update(start_time=True),
        lambda d: d["processes"][0].update(cmdline=[]),
        lambda d: d["processes"][0].update(role="shell"),
        lambda d: d.update(processes={}),
    ],
)
def test_rejects_bad_documents(mutate: object) -> None:
    doc = json.loads(_state(ProcessRecord("node", "n1", 100, 5, ("prog",))).to_json())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(FleetStateError):
        FleetState.from_json(json.dumps(doc))


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(FleetStateError, match="no fleet"):
        read_state(tmp_path)
    (tmp_path / "fleet.json").write_text("{not json")
    with pytest.raises(FleetStateError, match="not JSON"):
        read_state(tmp_path)


def test_proc_info_of_self() -> None:
    info = proc_info(os.getpid())
    assert info is not None and info.start_time > 0 and info.cmdline
    assert proc_info(2**22 + 12345) is None  # above pid_max's usual range


def test_verify_running_mismatch_and_gone(
    sleeper: tuple[subprocess.Popen[bytes], ProcessRecord],
) -> None:
    proc, record = sleeper
    assert verify(record) is Liveness.RUNNING
    assert verify(replace(record, start_time=record.start_time + 1)) is Liveness.MISMATCH
    assert verify(replace(record, cmdline=("other",))) is Liveness.MISMATCH
    proc.kill()
    proc.wait()
    assert verify(record) is Liveness.GONE


def test_stop_skips_a_reused_pid_and_stops_the_real_one(
    sleeper: tuple[subprocess.Popen[bytes], ProcessRecord],
) -> None:
    proc, record = sleeper
    other = subprocess.Popen(SLEEPER)
    try:
        info = proc_info(other.pid)
        assert info is not None
        stale = ProcessRecord("node", "node02", other.pid, info.start_time - 1, tuple(SLEEPER))
        results = stop_processes([record, stale], timeout=5.0)
        assert results[0].outcome == "stopped"
        assert results[1].outcome.startswith("skipped")
        assert proc.wait(5) is not None
        assert other.poll() is None  # untouched
    finally:
        other.kill()
        other.wait()


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
           "print('ready', flush=True); time.sleep(60)"
    cmd = [sys.executable, "-c", code]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        info = proc_info(proc.pid)
        assert info is not None
        record = ProcessRecord("node", "n", proc.pid, info.start_time, tuple(cmd))
        (result,) = stop_processes([record], timeout=0.5)
        assert result.outcome == "killed"
        assert proc.wait(5) == -9
    finally:
        proc.kill()
        proc.wait()
