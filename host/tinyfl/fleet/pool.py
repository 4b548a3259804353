"""An emulated fleet: data partitioned into a run folder, a broker, N nodes, all said hello.

`tinyfl fleet up` is this module plus argument parsing. The order matters: the hello subscription
is in place *before* the first node starts, so every hello that counts arrives live; retained
hellos delivered at subscribe time are left over from an earlier fleet of the same name on a
shared broker and are ignored. A node that exits, or a QEMU board that logs `fatal:` and halts
(e.g. a data blob naming a model its firmware lacks), fails the start at once with its
exit code and last log lines instead of leaving the user to wait for the timeout.

Every process is started in its own session, so a Ctrl-C at the terminal reaches only the
supervisor (which then stops them in order) and a detached fleet outlives `fleet up`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tinyfl.errors import TinyFLError, TransportError, UsageError, WireError
from tinyfl.files import private_dir
from tinyfl.fleet.broker import (
    BrokerUnavailable,
    MosquittoBroker,
    find_mosquitto,
    free_port,
    port_accepts,
)
from tinyfl.fleet.nodes import Emulator, NodeProcess, NodeSpec, blob_name, build_firmware
from tinyfl.fleet.state import (
    FleetState,
    Liveness,
    ProcessRecord,
    proc_info,
    start_time_of,
    stop_processes,
    verify,
    write_state,
)
from tinyfl.transport.address import BrokerAddress, parse_broker_url
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import Hello, Topics, decode

if TYPE_CHECKING:  # provisioning (cryptography) is loaded when a secure broker starts
    from tinyfl.provision import FleetSecrets

log = logging.getLogger(__name__)

RESTART_POLICIES = ("no", "on-failure", "always")
BROKER_START_TIMEOUT = 10.0
POLL_INTERVAL = 0.25
LOG_TAIL_LINES = 8


class FleetError(TinyFLError):
    """A node did not come up (exited, halted, or no hello in time), or the fleet could not start."""

    exit_code = 1


@dataclass(frozen=True)
class FleetConfig:
    nodes: int
    emulator: Emulator
    model: str  # model folder (or a name under models/)
    data: Path  # the dataset file the model was built from
    run_dir: Path
    fleet: str = "fleet"
    broker_url: str | None = None
    partition: str | None = None
    seed: int = 0
    max_samples: int = 512
    keep_alive_s: int = 0
    hello_timeout: float = 60.0
    # The private broker is provisioned (tinyfl provision: per-node accounts, ACL, TLS for the
    # coordinator) unless `secure` is off (--insecure: an open broker, for experiments).
    secure: bool = True
    # > 0: every node plays its blob as a live sensor at this many readings per second
    # (tinyfl/sensor_stream.h) instead of loading it at boot
    sensor_replay_hz: int = 0
    # With sensor_replay_hz: the readings' labels come from each node's label topic
    # (`tinyfl label`) instead of the blob
    label_topic: bool = False
    # The nodes' state files behave like a flash taking this long per word written
    # (NodeSpec.state_word_us), so that a power-cut test can kill a node in the middle of a save.
    state_word_us: int = 0

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise UsageError(f"--nodes must be >= 1, got {self.nodes}")
        if not self.hello_timeout > 0:
            raise UsageError(f"--hello-timeout must be > 0, got {self.hello_timeout}")
        if not 0 <= self.sensor_replay_hz <= 1_000_000:
            raise UsageError(f"--sensor-replay must be 1..1000000 readings per second, got "
                             f"{self.sensor_replay_hz}")
        if self.emulator is Emulator.ESP32_DOUBLE and self.sensor_replay_hz == 0:
            raise UsageError("esp32dev-double nodes learn from their sensor only: give a sensor "
                             "replay rate (--sensor-replay HZ, or --stream for tinyfl demo)")
        if self.label_topic and self.sensor_replay_hz == 0:
            raise UsageError("--labels topic needs --sensor-replay (nodes loading their data at "
                             "boot have every label already)")
        Topics.for_fleet(self.fleet)  # validates the fleet name
        if self.broker_url is not None:
            address = parse_broker_url(self.broker_url)
            if address.tls or address.username is not None:
                # The emulated nodes' firmware connects with plain MQTT and no account.
                raise UsageError(
                    "the emulated fleet's nodes speak plain MQTT without credentials: give "
                    f"--broker as mqtt://HOST:PORT, not {address}"
                )

    @property
    def topics(self) -> Topics:
        return Topics.for_fleet(self.fleet)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "    (no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in tail) or "    (log empty)"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def halted(node: NodeProcess) -> bool:
    """A QEMU board or an Arduino main cannot exit: its firmware logs `fatal: ...` and sleeps
    (or blinks its LED) forever."""
    return node.spec.emulator is not Emulator.NATIVE and "fatal:" in node.log_text()


class Fleet:
    """The processes one `fleet up` starts; `stop()` ends exactly those."""

    def __init__(self, config: FleetConfig, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out  # None: sys.stdout as it is when printing (it may be redirected)
        self.run_dir = config.run_dir
        self.data_dir = self.run_dir / "data"
        self.node_dir = self.run_dir / "nodes"
        self.broker_url = config.broker_url or ""  # what the nodes dial: plain MQTT
        self.coordinator: BrokerAddress | None = None  # how the coordinator and tools connect
        self.secrets: FleetSecrets | None = None
        self.provision_dir = self.run_dir / "provision"
        self.broker_proc: subprocess.Popen[bytes] | None = None
        self.broker_record: ProcessRecord | None = None
        self.nodes: dict[str, NodeProcess] = {}
        self.records: dict[str, ProcessRecord] = {}
        self.supervisor: ProcessRecord | None = None

    # -- preparing -------------------------------------------------------------------------

    def prepare(self) -> list[str]:
        """Builds the firmware (incremental) and partitions the data; returns the node ids."""
        from tinyfl.data.dataset import load_dataset
        from tinyfl.fleet.partition import build_partition, write_partition
        from tinyfl.model.artifacts import load_artifacts

        c = self.config
        private_dir(self.run_dir)  # data blobs, logs and secrets: the owner's only
        self.artifacts = load_artifacts(c.model)
        self.partition = build_partition(load_dataset(c.data), self.artifacts, c.nodes,
                                         c.partition, c.seed, c.max_samples)
        self.say(f"building firmware ({c.emulator.pio_env}) ...")
        # an image carrying exactly the fleet's model (a user's folder needs no platformio.ini edit)
        self.image = build_firmware(c.emulator, models=[self.artifacts.folder])
        if self.partition.note:
            self.say(self.partition.note)
        doc = write_partition(self.partition, self.data_dir)
        ids = [str(n["id"]) for n in doc["nodes"]]
        self.say(f"data: {self.artifacts.name} model, {doc['partition']}, {len(ids)} nodes -> "
                 f"{self.data_dir}")
        return ids

    def say(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    # -- broker ----------------------------------------------------------------------------

    def start_broker(self, node_ids: list[str]) -> None:
        """The broker: --broker's, else a private mosquitto on free loopback ports, provisioned
        for these nodes (accounts, ACL, TLS for the coordinator) unless the config is insecure."""
        if self.config.broker_url is not None:
            address = parse_broker_url(self.config.broker_url)
            if not port_accepts(address.host, address.port, timeout=2.0):
                raise TransportError(f"no MQTT broker accepts connections at {address.url}")
            self.broker_url, self.coordinator = address.url, address
            return
        if self.config.secure:
            self._start_provisioned_broker(node_ids)
            return
        broker = MosquittoBroker(self.run_dir / "broker")  # writes its config, picks the port
        self._spawn_broker([broker.binary, "-c", str(broker.config_path)], broker.host,
                           broker.port, broker.log_path, broker.diagnostics)
        self.broker_url = broker.url
        self.coordinator = parse_broker_url(broker.url)
        self.say(f"broker: {self.broker_url} (private mosquitto, open: --insecure, pid "
                 f"{self.pid_of_broker})")

    def _start_provisioned_broker(self, node_ids: list[str]) -> None:
        from tinyfl.provision import BrokerSettings, coordinator_address, new_fleet, write_fleet

        self.secrets = new_fleet(self.config.fleet, node_ids)
        log = self.provision_dir / "broker" / "mosquitto.log"
        settings = BrokerSettings(("127.0.0.1",), "127.0.0.1", free_port(), free_port(), str(log))
        write_fleet(self.provision_dir, self.secrets, self.config.topics.prefix, settings)
        conf = self.provision_dir / "broker" / "mosquitto.conf"

        def diagnostics() -> str:
            return log_tail(log) if log.exists() else "    (no log)"

        self._spawn_broker([find_mosquitto(), "-c", str(conf)], "127.0.0.1", settings.port, log,
                           diagnostics)
        self.broker_url = f"mqtt://127.0.0.1:{settings.port}"
        self.coordinator = coordinator_address(self.provision_dir)
        self.say(f"broker: {self.broker_url} for the nodes, {self.coordinator} for the "
                 f"coordinator (private mosquitto with accounts, ACL and TLS, pid "
                 f"{self.pid_of_broker}; secrets in {self.provision_dir})")

    @property
    def pid_of_broker(self) -> int:
        return -1 if self.broker_proc is None else self.broker_proc.pid

    def _spawn_broker(self, cmd: list[str], host: str, port: int, log: Path,
                      diagnostics: Callable[[], str]) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log.parent / "mosquitto.console", "ab") as console:
            self.broker_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        self.broker_record = ProcessRecord("broker", "", self.broker_proc.pid,
                                           start_time_of(self.broker_proc.pid), tuple(cmd),
                                           str(log))
        deadline = time.monotonic() + BROKER_START_TIMEOUT
        while not port_accepts(host, port):
            if self.broker_proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable(f"mosquitto did not come up:\n{diagnostics()}")
            time.sleep(0.02)

    # -- nodes -----------------------------------------------------------------------------

    def start_node(self, node_id: str) -> NodeProcess:
        address = parse_broker_url(self.broker_url)
        node = self.nodes.get(node_id)
        if node is None:
            account = self.secrets.nodes[node_id] if self.secrets is not None else None
            spec = NodeSpec(node_id, self.data_dir / blob_name(node_id), self.node_dir,
                            self.config.emulator, self.config.keep_alive_s,
                            username=account.node_id if account else None,
                            password=account.password if account else None,
                            keys=(account.frame_key, self.secrets.fleet_key)
                            if account and self.secrets else None,
                            # the esp32dev main holds no secure-aggregation seeds
                            peer_seeds=self.secrets.device_seeds_of(node_id)
                            if account and self.secrets
                            and self.config.emulator is not Emulator.ESP32_DOUBLE else None,
                            replay_hz=self.config.sensor_replay_hz,
                            label_topic=self.config.label_topic,
                            state_file=(self.node_dir / f"{node_id}.state").absolute(),
                            state_word_us=self.config.state_word_us)
            node = NodeProcess(spec, self.image, address.host, address.port,
                               self.config.topics.prefix)
            self.nodes[node_id] = node
        elif node.log_path.exists():
            # QEMU truncates its serial log file: keep the dead run's log for the post-mortem.
            os.replace(node.log_path, node.log_path.with_suffix(".prev.log"))
        node.start(new_session=True)
        self.records[node_id] = ProcessRecord("node", node_id, node.pid, start_time_of(node.pid),
                                              tuple(node.command()), str(node.log_path))
        return node

    def state(self) -> FleetState:
        procs = [p for p in (self.supervisor, self.broker_record) if p is not None]
        procs += [self.records[i] for i in sorted(self.records)]
        return FleetState(fleet=self.config.fleet, prefix=self.config.topics.prefix,
                          task=self.config.model, emulator=self.config.emulator.value,
                          broker_url=self.broker_url, broker_owned=self.broker_proc is not None,
                          processes=procs,
                          provision=str(self.provision_dir) if self.secrets is not None else "")

    def save(self) -> None:
        write_state(self.run_dir, self.state())

    def _address(self) -> BrokerAddress:
        if self.coordinator is None:
            raise RuntimeError("the broker is not started")
        return self.coordinator

    def failure_report(self, node_id: str) -> str:
        node = self.nodes[node_id]
        what = "halted (fatal error logged)" if node.alive else describe_exit(node.returncode)
        return f"{node_id}: {what}; last log lines ({node.log_path}):\n{log_tail(node.log_path)}"

    async def up(self, node_ids: list[str], progress: bool) -> None:
        """Start the broker and the nodes and wait until every node has said hello; on any
        failure stop everything started and raise FleetError/TransportError."""
        try:
            self.start_broker(node_ids)
            async with _HelloWatch(self._address(), self.config.topics,
                                   self.config.fleet) as watch:
                for node_id in node_ids:
                    self.start_node(node_id)
                await self._wait_hellos(watch, set(node_ids), progress)
        except BaseException:
            self.stop()
            raise

    async def _wait_hellos(self, watch: _HelloWatch, expected: set[str], progress: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.hello_timeout
        seen: set[str] = set()
        while seen != expected:
            failed = [i for i in sorted(expected - seen)
                      if not self.nodes[i].alive or halted(self.nodes[i])]
            if failed:
                # The multi-line report goes to the output; the error stays one line.
                self.say("\n".join(self.failure_report(i) for i in failed))
                raise FleetError(f"{len(failed)} node(s) failed before saying hello: "
                                 f"{', '.join(failed)} (logs above)")
            if loop.time() > deadline:
                missing = sorted(expected - seen)
                self.say("\n".join(self.failure_report(i) for i in missing))
                raise FleetError(
                    f"{len(missing)} of {len(expected)} nodes sent no hello within "
                    f"{self.config.hello_timeout:g} s: {', '.join(missing)} (logs above)")
            for node_id in await watch.hellos(POLL_INTERVAL):
                if node_id in expected:
                    seen.add(node_id)
            if progress:
                print(f"\rhello {len(seen)}/{len(expected)}", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)

    # -- supervision (--foreground) ---------------------------------------------------------

    async def supervise(self, stop: asyncio.Event, restart: str, max_restarts: int) -> None:
        """Report nodes that die and restart them per policy, until `stop` is set."""
        restarts: dict[str, int] = {}
        reported: set[str] = set()
        waiting_hello: set[str] = set()
        async with _HelloWatch(self._address(), self.config.topics,
                               self.config.fleet) as watch:
            while not stop.is_set():
                for node_id, node in sorted(self.nodes.items()):
                    if node.alive or node_id in reported:
                        continue
                    code = node.returncode
                    self.say(f"node {self.failure_report(node_id)}")
                    wanted = restart == "always" or (restart == "on-failure" and code != 0)
                    if not wanted or restarts.get(node_id, 0) >= max_restarts:
                        why = "restart policy" if not wanted else f"{max_restarts} restarts done"
                        self.say(f"{node_id}: not restarted ({why})")
                        reported.add(node_id)
                        continue
                    restarts[node_id] = restarts.get(node_id, 0) + 1
                    self.start_node(node_id)
                    self.save()
                    waiting_hello.add(node_id)
                    self.say(f"{node_id}: restarted (pid {node.pid}, restart "
                             f"{restarts[node_id]}/{max_restarts})")
                for node_id in await watch.hellos(POLL_INTERVAL):
                    if node_id in waiting_hello:
                        waiting_hello.discard(node_id)
                        self.say(f"{node_id}: hello again")

    # -- stopping --------------------------------------------------------------------------

    def stop(self) -> None:
        """Nodes first (their last will reaches a live broker), then the broker."""
        records = list(self.records.values())
        for node in self.nodes.values():
            node.stop()
        if self.broker_proc is not None and self.broker_proc.poll() is None:
            self.broker_proc.terminate()
            try:
                self.broker_proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.broker_proc.kill()
                self.broker_proc.wait(5.0)
        # Anything recorded but no longer ours to wait() on (never expected): verified stop.
        stop_processes([r for r in records if verify(r) is Liveness.RUNNING])


def fleet_address(state: FleetState) -> BrokerAddress:
    """How a coordinator or a tool reaches a fleet's broker: the provisioned coordinator account
    over TLS when the fleet is secured, else the broker URL the nodes use."""
    if state.provision:
        from tinyfl.provision import coordinator_address

        return coordinator_address(Path(state.provision))
    return parse_broker_url(state.broker_url)


def coordinate_command(state: FleetState) -> str:
    """The `tinyfl coordinate` connection options for this fleet (no secret: a password file)."""
    address = fleet_address(state)
    if not state.provision:
        return f"tinyfl coordinate --broker {address.url} --fleet {state.fleet}"
    folder = Path(state.provision)
    return (f"tinyfl coordinate --broker {address.scheme}://{address.username}@{address.host}:"
            f"{address.port} --ca-file {folder / 'broker' / 'ca.crt'} --password-file "
            f"{folder / 'coordinator.password'} --keys {folder / 'coordinator.json'} "
            f"--fleet {state.fleet}")


def supervisor_record() -> ProcessRecord:
    info = proc_info(os.getpid())
    assert info is not None
    return ProcessRecord("supervisor", "", os.getpid(), info.start_time, info.cmdline)


class _HelloWatch:
    """A subscription to every node's hello under the prefix; ignores retained (stale) ones."""

    def __init__(self, url: BrokerAddress, topics: Topics, fleet: str) -> None:
        self.url = url
        self.topics = topics
        self.transport = MqttTransport()
        self.client_id = f"tinyfl-fleet-{fleet}-{os.getpid()}-{id(self) % 10000}"

    async def __aenter__(self) -> _HelloWatch:  # noqa: PYI034 -- private, never subclassed
        await self.transport.connect(self.url, client_id=self.client_id)
        await self.transport.subscribe(self.topics.all_nodes("hello"), qos=1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()

    async def hellos(self, wait: float) -> list[str]:
        """Node ids of the live, valid hellos that arrive within `wait` seconds."""
        ids: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                message = await self.transport.receive(timeout=left)
            except (asyncio.TimeoutError, TimeoutError):
                break
            if message.retain or not message.payload:
                continue
            try:
                frame = decode(message.payload)
            except WireError as exc:
                log.warning("bad hello on %s: %s", message.topic, exc)
                continue
            if isinstance(frame, Hello):
                ids.append(frame.node_id)
        return ids


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set `stop`; returns the function that removes the handlers."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove
