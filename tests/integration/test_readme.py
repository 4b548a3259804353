"""Every command line in README.md's code blocks runs, as written, except for the stated
substitutions (fewer nodes and rounds, the test's own broker and folders) or a stated reason why
it cannot run here; a README command this file does not know fails the test, so README and code
cannot drift apart."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.broker import MosquittoBroker
from tinyfl.fleet.pool import fleet_address
from tinyfl.fleet.state import read_state, stop_processes

pytestmark = [pytest.mark.firmware, pytest.mark.qemu, pytest.mark.broker]
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300


@dataclass(frozen=True)
class Run:
    """Run the command after these text substitutions; `until` waits for a log line of a node
    that runs until stopped (the command must not exit before it)."""

    subs: tuple[tuple[str, str], ...] = ()
    until: str = ""
    before: tuple[str, ...] = ()  # tinyfl commands run first (same substitutions)
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    reason: str


LAB = "{tmp}/runs/lab"
SMALL_COORDINATOR = (("mqtt://192.168.1.10:1883", "{broker}"), ("--rounds 20", "--rounds 2"),
                     ("--clients-per-round 8 --min-clients 6",
                      "--clients-per-round 2 --min-clients 2"),
                     ("runs/lab", "{tmp}/runs/lab-coordinator"))

# README command -> how it runs here, in README order (later commands use earlier outputs).
COMMANDS: dict[str, Run | Skip] = {
    "make demo": Skip("tinyfl demo with the same settings: tests/integration/test_demo.py"),
    "make test": Skip("this suite is what make test runs"),
    "tinyfl data import-csv recordings/ --window 128 --stride 64 --out mydata.npz": Run((
        ("recordings/", "{tmp}/recordings/"), ("mydata.npz", "{tmp}/mydata.npz"))),
    "tinyfl model build --data mydata.npz --source-groups A,B --test-groups Y,Z --out models/mine":
        Run((("mydata.npz", "{tmp}/mydata.npz"), ("A,B", "subject01,subject02"),
             ("Y,Z", "subject09,subject10"), ("models/mine", "{tmp}/models/mine --epochs 2"))),
    "tinyfl demo --model models/mine --data mydata.npz": Run((
        ("models/mine", "{tmp}/models/mine"),
        ("mydata.npz", "{tmp}/mydata.npz --emulator native --nodes 3 --rounds 2 --out "
                       + "{tmp}/runs/mine"),)),
    "pio run -e native": Run(),
    "pio run -e qemu_cortex_m4": Run(),
    "pio test -e native": Skip("make test runs it (test-firmware) before this suite"),
    ".pio/build/native/program --id node01 --broker 127.0.0.1:1883 --data node01.blob "
    "--prefix tinyfl/lab": Run((("127.0.0.1:1883", "{hostport}"),
                                ("node01.blob", "{tmp}/blobs/node01.blob")),
                               until=" online"),
    "qemu-system-arm -machine mps2-an386 -nographic -monitor none -serial "
    "tcp:127.0.0.1:1883,reconnect=1 -serial file:node01.log -device "
    "loader,file=node01.cfg,addr=0x21F00000,force-raw=on -device "
    "loader,file=node01.blob,addr=0x21000000,force-raw=on -kernel "
    ".pio/build/qemu_cortex_m4/program.elf": Run((
        ("127.0.0.1:1883", "{hostport}"), ("file:node01.log", "file:{tmp}/node01.log"),
        ("node01.cfg", "{tmp}/node01.cfg"), ("node01.blob", "{tmp}/blobs/node01.blob")),
        until=" online"),
    "cp secrets/lab/nodes/esp32-01/node_settings_local.h firmware/src/esp32dev/":
        Skip("the esp32dev env needs PlatformIO's registry (docs/PORTING.md)"),
    "pio run -e esp32dev -t upload && pio device monitor -e esp32dev":
        Skip("needs PlatformIO's registry and an ESP32 board (docs/PORTING.md)"),
    "tinyfl bridge --port /dev/ttyACM0 --broker mqtt://192.168.1.10:1883":
        Skip("needs a board on a serial port; tests/integration/test_bridge.py runs the bridge "
             "on socket:// and loop:// ports"),
    "tinyfl fleet up --nodes 16 --emulator qemu --task har --partition dirichlet:0.3 --run "
    "runs/lab": Run((("--nodes 16", "--nodes 2"), ("runs/lab", LAB))),
    "tinyfl coordinate --broker mqtts://coordinator@127.0.0.1:PORT --ca-file "
    "runs/lab/provision/broker/ca.crt --password-file runs/lab/provision/coordinator.password "
    "--keys runs/lab/provision/coordinator.json "
    "--fleet fleet --task har --rounds 20 --out runs/lab/run": Run((
        ("PORT", "{fleet_tls_port}"), ("--rounds 20", "--rounds 2"), ("runs/lab", LAB))),
    "tinyfl fleet status --run runs/lab": Run((("runs/lab", LAB),)),
    "tinyfl export --run runs/lab/run --out runs/lab/model.tflite --header runs/lab/model.h":
        Run((("runs/lab", LAB),)),
    "tinyfl report --run runs/lab/run": Run((("runs/lab", LAB),)),
    "tinyfl fleet down --run runs/lab": Run((("runs/lab", LAB),)),
    "tinyfl coordinate --broker mqtt://192.168.1.10:1883 --fleet lab --task har --rounds 20 "
    "--clients-per-round 8 --min-clients 6 --round-timeout 30 --strategy fedprox:mu=0.01 "
    "--epochs 2 --lr 0.05 --uplink-bits 4 --out runs/lab": Run(SMALL_COORDINATOR, before=(
        "tinyfl fleet up --nodes 2 --emulator native --task har --fleet lab --broker {broker} "
        + "--run {tmp}/runs/lab-nodes",)),
    "tinyfl coordinate --broker mqtt://192.168.1.10:1883 --out runs/lab --resume":
        Run(SMALL_COORDINATOR, after=("tinyfl fleet down --run {tmp}/runs/lab-nodes",)),
    "tinyfl data fetch nsl-kdd --out nsl-kdd.npz": Run((("nsl-kdd.npz", "{tmp}/nsl-kdd.npz"),)),
    "tinyfl data partition --model models/nsl-kdd --data nsl-kdd.npz --clients 8 --partition "
    "gateways --out blobs": Run((("nsl-kdd.npz", "{tmp}/nsl-kdd.npz"),
                                 ("--out blobs", "--out {tmp}/blobs"))),
}


def readme_commands() -> list[str]:
    """The command lines of README.md's ```sh blocks: continuations joined, comments dropped."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].split("   #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


def test_every_readme_command_is_known_here() -> None:
    commands = readme_commands()
    unknown = [c for c in commands if c not in COMMANDS]
    assert not unknown, "README.md has commands this test does not run or skip:\n" + "\n".join(
        unknown)
    stale = [c for c in COMMANDS if c not in commands]
    assert not stale, "commands no longer in README.md:\n" + "\n".join(stale)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for fleet in ("lab", "lab-nodes"):
        run = tmp_path / "runs" / fleet
        if (run / "fleet.json").exists():  # whatever a failed command left running
            stop_processes(read_state(run).processes, timeout=2.0)


def _tinyfl(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "tinyfl.cli.main", *argv[1:]] if argv[0] == "tinyfl" else argv


def _run_until(argv: list[str], until: str, out: Path, log: Path | None) -> None:
    """Starts a node that runs until stopped; it must reach `until` (in its output or its `log`
    file) and not exit before."""
    with open(out, "w") as sink:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = out.read_text(errors="replace") + (
                log.read_text(errors="replace") if log and log.exists() else "")
            if until in text:
                return
            assert proc.poll() is None, f"{argv[0]} exited with {proc.returncode}:\n{text}"
            time.sleep(0.2)
        raise AssertionError(f"no {until!r} from {' '.join(argv)}:\n{text}")
    finally:
        proc.terminate()
        proc.wait(10)


def test_every_runnable_readme_command_succeeds(workspace: Path, broker: MosquittoBroker) -> None:
    from tinyfl.wire.node_config import encode_node_config

    tmp = workspace
    for given in (["data", "fetch", "watch", "--csv", str(tmp / "recordings")],  # the user's CSVs
                  ["data", "partition", "--task", "nsl-kdd", "--clients", "1",  # node01.blob
                   "--out", str(tmp / "blobs")]):
        done = subprocess.run(_tinyfl(["tinyfl", *given]), cwd=ROOT, check=False,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    values = {"tmp": str(tmp), "broker": broker.url, "hostport": f"{broker.host}:{broker.port}"}
    for command in readme_commands():
        how = COMMANDS[command]
        if isinstance(how, Skip):
            continue
        if "{fleet_tls_port}" in str(how.subs):  # the port the fleet's broker got
            values["fleet_tls_port"] = str(fleet_address(read_state(tmp / "runs" / "lab")).port)
        text = command
        for old, new in how.subs:
            text = text.replace(old, new.format(**values))
        if "node01.cfg" in text:  # the QEMU board's config record, as tinyfl fleet writes it
            (tmp / "node01.cfg").write_bytes(encode_node_config("node01", "tinyfl/lab", 0))
        argv = _tinyfl(shlex.split(text))
        for extra in how.before:
            _check(_tinyfl(shlex.split(extra.format(**values))))
        if how.until:
            log = tmp / "node01.log" if "file:" in text else None
            _run_until(argv, how.until, tmp / f"{argv[0].rsplit('/', 1)[-1]}.out", log)
            continue
        _check(argv)
        for extra in how.after:
            _check(_tinyfl(shlex.split(extra.format(**values))))


def _check(argv: list[str]) -> None:
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)
    assert done.returncode == 0, f"$ {' '.join(argv)}\n{done.stdout}\n{done.stderr}"
