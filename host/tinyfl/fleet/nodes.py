"""Start and stop emulated nodes: the native firmware as a Linux process, or the Cortex-M4 image
in QEMU `mps2-an386` with UART0 wired to the broker as a TCP byte pipe.

Each node gets a folder with its data blob, its config record, its log and, when asked for, the
file its persisted state lives in (an emulated flash of two slots, tinyfl/node_state.h).
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tinyfl.errors import FirmwareError, UsageError
from tinyfl.files import atomic_write
from tinyfl.wire.node_config import encode_node_config

PROJECT_ROOT = Path(__file__).resolve().parents[3]
QEMU_MACHINE = "mps2-an386"
QEMU_BLOB_ADDRESS = 0x21000000
QEMU_CONFIG_ADDRESS = 0x21F00000
QEMU_REPLAY_ADDRESS = 0x21F01010  # port_qemu.h kReplayRateAddress: u32 readings per second
QEMU_LABELS_ADDRESS = 0x21F01014  # port_qemu.h kLabelsFromTopicAddress: 1 = labels from the topic
# With a state file, this word at this address tells the QEMU image that semihosting is on and its
# command line names the file (port_qemu.h, kStateMarker).
QEMU_STATE_MARKER_ADDRESS = 0x21F01000
QEMU_STATE_MARKER = 0x54534654
# Replaces the env's `custom_models` list of platformio.ini for one firmware build
# (firmware/lib/tinyfl_models/registry_build.py reads it).
MODELS_ENV_VAR = "TINYFL_MODELS"


class Emulator(enum.Enum):
    NATIVE = "native"
    QEMU = "qemu"
    # The esp32dev main, unchanged, as a Linux process against the Arduino test double
    # (tests/arduino_double): its emulated MPU-6050 plays the node's blob as the sensor.
    ESP32_DOUBLE = "esp32dev-double"

    @property
    def pio_env(self) -> str:
        return {Emulator.NATIVE: "native", Emulator.QEMU: "qemu_cortex_m4",
                Emulator.ESP32_DOUBLE: "esp32dev_double"}[self]

    @property
    def is_process(self) -> bool:
        """A Linux process writing its log to stdout (not a QEMU board)."""
        return self is not Emulator.QEMU


# The esp32dev main's machine-state label pins (firmware/src/esp32dev/main.cpp, kLabelPins): the
# double's world shows the replayed reading's label on them.
ESP32_LABEL_PINS = "25,26,27"


def blob_name(node_id: str) -> str:
    """The file of a node's data blob inside a partition folder."""
    return f"{node_id}.blob"


def firmware_image(emulator: Emulator, project_root: Path = PROJECT_ROOT) -> Path:
    name = "program" if emulator.is_process else "program.elf"
    return project_root / ".pio" / "build" / emulator.pio_env / name


def build_firmware(emulator: Emulator, project_root: Path = PROJECT_ROOT,
                   models: Sequence[str | Path] | None = None) -> Path:
    """Runs `pio run -e <env>` (incremental, so cheap when up to date); returns the image path.

    `models`: the model folders (each with the backbone.h `tinyfl model build` writes) the image
    carries, relative to the current directory unless absolute; None builds the env's
    `custom_models` list of platformio.ini. Images of every model set are built into the same
    `.pio/build/<env>`, so the image path holds the last one built: copy it to keep it.
    """
    pio = shutil.which("pio") or shutil.which("platformio")
    if pio is None:
        raise FirmwareError("PlatformIO (`pio`) not found; run `make setup`")
    env = {k: v for k, v in os.environ.items() if k != MODELS_ENV_VAR}
    if models is not None:
        folders = [str(Path(m).absolute()) for m in models]
        # The build splits the list at whitespace, as it does platformio.ini's.
        if any(len(f.split()) != 1 for f in folders):
            raise UsageError(f"model folder paths must not contain whitespace: {folders}")
        env[MODELS_ENV_VAR] = " ".join(folders)
    result = subprocess.run(
        [pio, "run", "-s", "-e", emulator.pio_env],
        cwd=project_root, capture_output=True, text=True, check=False, env=env,
    )
    image = firmware_image(emulator, project_root)
    if result.returncode != 0 or not image.is_file():
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        which = "" if models is None else f" with {MODELS_ENV_VAR}={env[MODELS_ENV_VAR]!r}"
        raise FirmwareError(f"`pio run -e {emulator.pio_env}`{which} failed:\n{tail}")
    return image


STATE_SLOT_BYTES = 4096  # port_native::StateFile and port_qemu::SemihostingStateFile


def check_state_file(path: Path) -> None:
    """Refuses a file a node would overwrite that is not a state file: larger than two slots, or
    a slot starting with neither an erased word nor the record magic (as the native node checks
    it too). Every file the nodes write passes, torn writes included."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data.startswith(b"TFNV"):  # the Arduino double's Preferences file (NVS)
        return
    heads = [data[o:o + 4] for o in (0, STATE_SLOT_BYTES) if o < len(data)]
    if len(data) > 2 * STATE_SLOT_BYTES or any(
            not b"TFST".startswith(h) and h != b"\xff" * len(h) for h in heads):
        raise UsageError(f"{path} is not a TinyFL state file; not touching it")


@dataclass(frozen=True)
class NodeSpec:
    node_id: str
    blob: Path
    workdir: Path
    emulator: Emulator = Emulator.NATIVE
    keep_alive_s: int = 0
    # QEMU only: instead of dialing the broker, UART0 listens on this loopback port, as the serial
    # line of a board that `tinyfl bridge` connects to the broker.
    serial_listen_port: int | None = None
    username: str | None = None  # MQTT credentials (a provisioned broker)
    password: str | None = field(default=None, repr=False)
    keys: tuple[bytes, bytes] | None = field(default=None, repr=False)  # (frame key, fleet key)
    peer_seeds: dict[str, bytes] | None = field(default=None, repr=False)  # secure aggregation
    # readings per second to play the blob as a live sensor (the node's sensor path fills its
    # cache while rounds run); 0 loads the whole blob at boot
    replay_hz: int = 0
    # With replay_hz: the readings' labels come from the operator's LABEL frames on the node's
    # label topic (`tinyfl label`), not from the blob.
    label_topic: bool = False
    # The node's persisted state (trained head, last served round, counters): loaded at start,
    # saved after each round it served. None: nothing survives a restart.
    state_file: Path | None = None
    # > 0: the node's state file behaves like a flash taking this long per word written (QEMU:
    # rounded up to its 10 ms tick per 64 bytes), so that a test can cut power mid-save.
    state_word_us: int = 0

    def __post_init__(self) -> None:
        if self.state_file is not None and (len(str(self.state_file).split()) != 1
                                            or "," in str(self.state_file)):
            # QEMU's -semihosting-config splits at commas and the image's command line at spaces
            raise UsageError(f"state file paths must not contain whitespace or commas: "
                             f"{str(self.state_file)!r}")
        if self.state_word_us < 0:
            raise UsageError(f"state_word_us must be >= 0, got {self.state_word_us}")
        if self.emulator is Emulator.ESP32_DOUBLE and self.replay_hz <= 0:
            raise UsageError("an esp32dev-double node learns from its sensor only: give it a "
                             "sensor replay rate (--sensor-replay HZ, or --stream)")
        if self.emulator is Emulator.ESP32_DOUBLE and (self.state_word_us or self.peer_seeds):
            raise UsageError("the esp32dev main takes part in no secure aggregation and its "
                             "NVS has no slow-write emulation")
        if self.label_topic and self.replay_hz == 0:
            raise UsageError("labels from the label topic need a sensor replay")


class NodeProcess:
    """One running node; `stop()` ends exactly the process it started."""

    def __init__(self, spec: NodeSpec, image: Path, broker_host: str, broker_port: int,
                 topic_prefix: str) -> None:
        self.spec = spec
        self.image = image
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.topic_prefix = topic_prefix
        self.log_path = spec.workdir / f"{spec.node_id}.log"
        self.stderr_path = spec.workdir / f"{spec.node_id}.stderr"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        """The node's config record (docs/WIRE.md): id, prefix, keep-alive, credentials."""
        return self.spec.workdir / f"{self.spec.node_id}.cfg"

    def write_config(self) -> None:
        """Writes the config record the node reads at start, readable by its owner only (it
        may hold the node's password and keys)."""
        s = self.spec
        atomic_write(self.config_path, encode_node_config(
            s.node_id, self.topic_prefix, s.keep_alive_s, s.username, s.password, s.keys,
            s.peer_seeds),
            mode=0o600)

    def command(self) -> list[str]:
        s = self.spec
        config = self.config_path
        if s.emulator is Emulator.ESP32_DOUBLE:
            nvs = [] if s.state_file is None else ["--nvs", str(s.state_file)]
            return [str(self.image), "--config", str(config),
                    "--broker", f"{self.broker_host}:{self.broker_port}", "--imu", str(s.blob),
                    "--sensor-hz", str(s.replay_hz), "--label-pins", ESP32_LABEL_PINS,
                    "--labels", "topic" if s.label_topic else "pins", *nvs]
        if s.emulator is Emulator.NATIVE:
            state = [] if s.state_file is None else ["--state", str(s.state_file)]
            if s.state_file is not None and s.state_word_us:
                state += ["--state-word-us", str(s.state_word_us)]
            replay = ["--replay-hz", str(s.replay_hz)] if s.replay_hz else []
            if s.label_topic:
                replay += ["--labels", "topic"]
            return [str(self.image), "--config", str(config),
                    "--broker", f"{self.broker_host}:{self.broker_port}", "--data", str(s.blob),
                    *state, *replay]
        if s.serial_listen_port is None:
            uart0 = f"tcp:{self.broker_host}:{self.broker_port},reconnect=1,nodelay=on"
        else:
            uart0 = f"tcp:127.0.0.1:{s.serial_listen_port},server=on,wait=off,nodelay=on"
        return [
            "qemu-system-arm", "-machine", QEMU_MACHINE, "-nographic", "-monitor", "none",
            "-serial", uart0,
            "-serial", f"file:{self.log_path}",
            "-device", f"loader,file={config},addr={QEMU_CONFIG_ADDRESS:#x},force-raw=on",
            "-device", f"loader,file={s.blob},addr={QEMU_BLOB_ADDRESS:#x},force-raw=on",
            *(["-device", f"loader,addr={QEMU_REPLAY_ADDRESS:#x},data={s.replay_hz},data-len=4"]
              if s.replay_hz else []),
            *(["-device", f"loader,addr={QEMU_LABELS_ADDRESS:#x},data=1,data-len=4"]
              if s.label_topic else []),
            *self._qemu_state_options(),
            "-kernel", str(self.image),
        ]

    def _qemu_state_options(self) -> list[str]:
        """Semihosting with the state file on the image's command line, and the marker that tells
        the image semihosting is there (without a debugger its BKPT would fault)."""
        if self.spec.state_file is None:
            return []
        slow = f",arg=--state-word-us,arg={self.spec.state_word_us}" if self.spec.state_word_us else ""
        return [
            "-semihosting-config",
            f"enable=on,target=native,arg=tinyfl-node,arg=--state,arg={self.spec.state_file}{slow}",
            "-device",
            f"loader,addr={QEMU_STATE_MARKER_ADDRESS:#x},data={QEMU_STATE_MARKER:#x},data-len=4",
        ]

    def start(self, *, new_session: bool = False) -> None:
        """Start the node; `new_session` puts it in its own session (`tinyfl fleet`), so a Ctrl-C
        at the terminal reaches the supervisor only and a detached fleet outlives its launcher.
        QEMU's stderr then goes to `<id>.stderr` in the workdir instead of an unread pipe."""
        if self._proc is not None and self._proc.poll() is None:
            return
        if self.spec.emulator is Emulator.QEMU and shutil.which("qemu-system-arm") is None:
            raise UsageError("qemu-system-arm not found; run `make setup`")
        self.spec.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        if self.spec.state_file is not None:  # owner-only, as the config; QEMU would make it 0644
            check_state_file(self.spec.state_file)
            os.close(os.open(self.spec.state_file, os.O_CREAT | os.O_WRONLY, 0o600))
        cmd = self.command()
        if self.spec.emulator.is_process:
            log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child from here on
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=new_session)
            log.close()
        elif new_session:
            err = open(self.stderr_path, "ab")  # noqa: SIM115 - owned by the child from here on
            self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
            err.close()
        else:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          stdin=subprocess.DEVNULL)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("node not started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """Abrupt death (power loss): no MQTT DISCONNECT, so the broker sends the last will."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=timeout)
