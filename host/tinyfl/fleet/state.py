"""`runs/<id>/fleet.json`: which processes a fleet started, and proof that a pid is still one of them.

A detached fleet (`tinyfl fleet up` without --foreground) leaves its broker and nodes running and
exits; `tinyfl fleet down` and `status` find them again through this file. A pid alone is not
enough: the kernel reuses pids, and signalling a reused one would kill an unrelated process. So each
record also keeps the process's start time (field 22 of /proc/PID/stat, clock ticks since boot,
fixed for a process's life) and its command line, and a pid is only signalled when both still
match (`verify`).
"""

from __future__ import annotations

import enum
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyfl.errors import TinyFLError, UsageError

FLEET_FILE = "fleet.json"
STATE_VERSION = 1
ROLES = ("supervisor", "broker", "node")


class FleetStateError(TinyFLError):
    """fleet.json is missing, unreadable or not a fleet record."""

    exit_code = 2


@dataclass(frozen=True)
class ProcessRecord:
    """One process the fleet started (role in ROLES); node_id is "" except for nodes."""

    role: str
    node_id: str
    pid: int
    start_time: int
    cmdline: tuple[str, ...]
    log: str = ""


@dataclass
class FleetState:
    """The whole of fleet.json. `broker_owned`: the fleet started the broker (no --broker).
    Roles: "supervisor" (a --foreground `fleet up`, stopped first so it restarts nothing),
    "broker", "node"."""

    fleet: str
    prefix: str
    task: str
    emulator: str
    broker_url: str
    broker_owned: bool
    processes: list[ProcessRecord] = field(default_factory=list)
    version: int = STATE_VERSION
    # the provisioning folder of a secured private broker (its coordinator.json holds how to
    # connect); "" for an open or external broker
    provision: str = ""

    @property
    def nodes(self) -> list[ProcessRecord]:
        return [p for p in self.processes if p.role == "node"]

    def to_json(self) -> str:
        doc = asdict(self)
        doc["processes"] = [{**asdict(p), "cmdline": list(p.cmdline)} for p in self.processes]
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = FLEET_FILE) -> FleetState:
        """Parse and validate; FleetStateError names the first thing that is wrong."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise FleetStateError(f"{where} is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise FleetStateError(f"{where}: expected an object")
        if doc.get("version") != STATE_VERSION:
            raise FleetStateError(f"{where}: unsupported version {doc.get('version')!r}")
        try:
            if not isinstance(doc["processes"], list):
                raise TypeError("processes must be a list")
            procs = [_process(p) for p in doc["processes"]]
            state = cls(
                fleet=_str(doc["fleet"]),
                prefix=_str(doc["prefix"]),
                task=_str(doc["task"]),
                emulator=_str(doc["emulator"]),
                broker_url=_str(doc["broker_url"]),
                broker_owned=bool(doc["broker_owned"]),
                processes=procs,
                provision=str(doc.get("provision", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FleetStateError(f"{where}: bad or missing field: {exc}") from exc
        return state


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _process(doc: Any) -> ProcessRecord:
    if not isinstance(doc, dict):
        raise TypeError(f"process entry must be an object, got {doc!r}")
    role = _str(doc["role"])
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    cmdline = doc["cmdline"]
    if not isinstance(cmdline, list) or not cmdline or not all(isinstance(a, str) for a in cmdline):
        raise TypeError(f"cmdline must be a non-empty list of strings, got {cmdline!r}")
    pid = _int(doc["pid"])
    if pid < 2:
        raise ValueError(f"pid {pid} cannot be a fleet process")
    return ProcessRecord(role, _str(doc["node_id"]), pid, _int(doc["start_time"]),
                         tuple(cmdline), _str(doc.get("log", "")))


def read_state(run_dir: Path) -> FleetState:
    path = run_dir / FLEET_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FleetStateError(f"no fleet in {run_dir} ({path} not found)") from None
    except OSError as exc:
        raise FleetStateError(f"cannot read {path}: {exc}") from exc
    return FleetState.from_json(text, str(path))


def write_state(run_dir: Path, state: FleetState) -> None:
    """Atomic (temporary file, then rename): `fleet status` never reads half a file."""
    path = run_dir / FLEET_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def latest_run(runs_root: Path) -> Path:
    """The run folder whose fleet.json changed last: what `fleet down` means without --run."""
    candidates = sorted(runs_root.glob(f"*/{FLEET_FILE}"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UsageError(f"no fleet found under {runs_root}/ (pass --run runs/<id>)")
    return candidates[-1].parent


# -- /proc ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    start_time: int
    state: str
    cmdline: tuple[str, ...]


def proc_info(pid: int, proc: Path = Path("/proc")) -> ProcInfo | None:
    """Start time, state letter and argv of a pid, or None when there is no such process."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    rest = stat.rsplit(")", 1)[1].split()
    state, start = rest[0], int(rest[19])  # fields 3 and 22
    args = tuple(a.decode(errors="replace") for a in raw.split(b"\0")[:-1]) if raw else ()
    return ProcInfo(start, state, args)


def start_time_of(pid: int) -> int:
    info = proc_info(pid)
    if info is None:
        raise TinyFLError(f"process {pid} vanished right after it was started")
    return info.start_time


class Liveness(enum.Enum):
    RUNNING = "running"
    GONE = "gone"  # exited (or a zombie nobody reaped yet)
    MISMATCH = "mismatch"  # the pid now belongs to another process: never signal it


def verify(record: ProcessRecord, proc: Path = Path("/proc")) -> Liveness:
    """Whether the recorded process is still the one running under its pid."""
    for _ in range(10):
        info = proc_info(record.pid, proc)
        if info is None or info.state in ("Z", "X"):
            return Liveness.GONE
        if info.start_time != record.start_time:
            return Liveness.MISMATCH
        if info.cmdline == record.cmdline:
            return Liveness.RUNNING
        # Same process, other argv: either it exec'd something else, or it is inside execve
        # (the parent's Popen returns before the kernel publishes the new argv). Look again.
        time.sleep(0.02)
    return Liveness.MISMATCH


@dataclass(frozen=True)
class StopResult:
    record: ProcessRecord
    outcome: str  # "stopped" (SIGTERM), "killed" (SIGKILL), "not running", "skipped: ..."


def stop_processes(records: list[ProcessRecord], timeout: float = 5.0) -> list[StopResult]:
    """SIGTERM every verified record, wait up to `timeout`, SIGKILL the rest; a pid whose start
    time or command line no longer matches is left alone and reported as skipped."""
    results: dict[int, StopResult] = {}
    pending: list[ProcessRecord] = []
    for record in records:
        live = verify(record)
        if live is Liveness.GONE:
            results[id(record)] = StopResult(record, "not running")
        elif live is Liveness.MISMATCH:
            results[id(record)] = StopResult(
                record, "skipped: pid now belongs to another process (start time or command "
                "line differ)")
        else:
            _signal(record.pid, signal.SIGTERM)
            pending.append(record)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [r for r in pending if verify(r) is Liveness.RUNNING]
        if pending:
            time.sleep(0.05)
    for record in pending:
        if verify(record) is Liveness.RUNNING:  # checked again right before the signal
            _signal(record.pid, signal.SIGKILL)
            results[id(record)] = StopResult(record, "killed")
    for record in records:
        results.setdefault(id(record), StopResult(record, "stopped"))
    kill_deadline = time.monotonic() + timeout
    while time.monotonic() < kill_deadline and any(
        verify(r) is Liveness.RUNNING for r in pending
    ):
        time.sleep(0.05)
    return [results[id(r)] for r in records]


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
