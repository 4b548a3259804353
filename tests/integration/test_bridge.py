"""`tinyfl bridge` against a real mosquitto, with a local TCP server playing the board's serial line.

The "board" speaks real MQTT 3.1.1 bytes (built below from the spec) through the bridge, a paho
probe sits on the broker, and the test breaks each side in turn: broker restart, board unplugged.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.broker import MosquittoBroker, write_password_file
from support.mqtt_probe import Message, MqttProbe
from support.tls import make_tls_files
from tinyfl.transport.serial_bridge import BridgeConfig, SerialBridge, parse_broker_url

pytestmark = pytest.mark.broker

STEP_TIMEOUT = 5.0
TOPICS = "tinyfl/test"
STATUS = f"{TOPICS}/nodes/b1/status"
UPDATE = f"{TOPICS}/nodes/b1/update"
GLOBAL = f"{TOPICS}/global"


# --- MQTT 3.1.1 bytes, straight from the spec (sections 2.2.3, 3.1, 3.3, 3.8, 3.12) ----------


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def mqtt_connect(client_id: str, will_topic: str, will_message: str, keepalive: int = 30) -> bytes:
    """CONNECT with clean session and a retained QoS 1 last will (how nodes connect, WIRE.md)."""
    flags = 0x02 | 0x04 | (1 << 3) | 0x20
    header = _utf8("MQTT") + bytes([4, flags]) + struct.pack(">H", keepalive)
    return _packet(0x10, header + _utf8(client_id) + _utf8(will_topic) + _utf8(will_message))


def mqtt_subscribe(packet_id: int, topic: str, qos: int = 0) -> bytes:
    return _packet(0x82, struct.pack(">H", packet_id) + _utf8(topic) + bytes([qos]))


def mqtt_publish(topic: str, payload: bytes) -> bytes:
    """QoS 0, not retained: no packet id."""
    return _packet(0x30, _utf8(topic) + payload)


MQTT_PINGREQ = b"\xc0\x00"


# --- The board's end of the serial line ---------------------------------------------------


class BoardLine:
    """A TCP server the bridge reaches as `socket://127.0.0.1:PORT`; the accepted connection is
    the board's UART. `unplug()` and `plug_in()` make the "serial port" vanish and return."""

    def __init__(self) -> None:
        self._server: socket.socket | None = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self.conn: socket.socket | None = None
        self.sent = 0
        self.received = 0

    def accept(self, timeout: float = STEP_TIMEOUT) -> None:
        assert self._server is not None
        self._server.settimeout(timeout)
        self.conn, _ = self._server.accept()

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)
        self.sent += len(data)

    def read_packet(self, timeout: float = STEP_TIMEOUT) -> tuple[int, bytes]:
        """(first byte, body) of the next MQTT packet the bridge delivers to the board."""
        first = self._read_exact(1, timeout)[0]
        length, shift = 0, 0
        while True:
            digit = self._read_exact(1, timeout)[0]
            length |= (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        return first, self._read_exact(length, timeout)

    def _read_exact(self, n: int, timeout: float) -> bytes:
        assert self.conn is not None
        self.conn.settimeout(timeout)
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            assert chunk, "bridge closed the serial line"
            data += chunk
        self.received += len(data)
        return data

    def connect_mqtt(self, will: str, client_id: str = "board-1") -> None:
        """The board's MQTT session start: CONNECT, expect CONNACK accepted. Each session gets
        its own will payload so the test can tell which session the broker declared dead."""
        self.send(mqtt_connect(client_id, STATUS, will))
        first, body = self.read_packet()
        assert (first, body) == (0x20, b"\x00\x00"), (hex(first), body)

    def unplug(self) -> None:
        for sock in (self.conn, self._server):
            if sock is not None:
                sock.close()
        self.conn = self._server = None

    def plug_in(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))


# --- Running the bridge in-process --------------------------------------------------------


class BridgeThread:
    """SerialBridge on its own event loop in a thread, so the synchronous test can poke both ends
    and read `bridge.stats` / `bridge.broker_up` while it runs."""

    def __init__(self, config: BridgeConfig) -> None:
        self.bridge = SerialBridge(config)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="bridge", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the test thread by stop()
            self._error = exc

    async def _amain(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self.bridge.run(self._stop)

    def start(self) -> BridgeThread:
        self._thread.start()
        assert self._ready.wait(STEP_TIMEOUT)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STEP_TIMEOUT)
        assert not self._thread.is_alive(), "bridge did not stop"
        if self._error is not None:
            raise self._error


def wait_until(condition: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def fast_config(port_url: str, broker: MosquittoBroker) -> BridgeConfig:
    """Short backoff so reconnects take tens of milliseconds, not seconds."""
    return BridgeConfig(
        port_url=port_url,
        broker=parse_broker_url(broker.url),
        backoff_initial=0.05,
        backoff_max=0.3,
        connect_timeout=2.0,
    )


@pytest.fixture
def board_line() -> Iterator[BoardLine]:
    line = BoardLine()
    yield line
    line.unplug()


@pytest.fixture
def probe(fresh_broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe]) -> MqttProbe:
    p = mqtt_probe(fresh_broker, "probe")
    p.subscribe(f"{TOPICS}/#", qos=1)
    return p


def payload_is(expected: bytes) -> Callable[[Message], bool]:
    return lambda message: message.payload == expected


# --- Tests --------------------------------------------------------------------------------


def test_bridge_survives_broker_restart_and_board_unplug(
    fresh_broker: MosquittoBroker, board_line: BoardLine, probe: MqttProbe
) -> None:
    runner = BridgeThread(fast_config(board_line.url, fresh_broker)).start()
    bridge = runner.bridge
    try:
        # 1. Both directions through one MQTT session.
        board_line.accept()
        wait_until(lambda: bridge.broker_up, "the first broker connection")
        board_line.connect_mqtt(will="offline-1")
        board_line.send(mqtt_subscribe(1, GLOBAL))
        assert board_line.read_packet() == (0x90, b"\x00\x01\x00")  # SUBACK, id 1, QoS 0
        board_line.send(mqtt_publish(UPDATE, b"update-1"))
        probe.wait_for(UPDATE, predicate=payload_is(b"update-1"))
        probe.publish(GLOBAL, b"round-1", qos=1)
        first, body = board_line.read_packet()
        assert first & 0xF0 == 0x30 and body == _utf8(GLOBAL) + b"round-1"

        # 2. Broker restart: board bytes sent meanwhile are dropped, the bridge reconnects on
        #    its own, and the board's next session goes through.
        fresh_broker.stop()
        wait_until(lambda: not bridge.broker_up, "the bridge to see the broker go")
        board_line.send(MQTT_PINGREQ)  # part of the dead session
        wait_until(lambda: bridge.stats.dropped_from_board >= 2, "the dead session's bytes dropped")
        wait_until(lambda: not probe.connected, "the probe to see the broker go")
        fresh_broker.start()
        wait_until(
            lambda: bridge.broker_up and bridge.stats.broker_connects == 2,
            "the bridge to reconnect to the restarted broker",
        )
        probe.wait_connected()
        board_line.connect_mqtt(will="offline-2")
        board_line.send(mqtt_publish(UPDATE, b"update-2"))
        probe.wait_for(UPDATE, predicate=payload_is(b"update-2"))

        # 3. Board unplugged: the bridge drops the board's broker session too (the broker
        #    publishes its last will), waits for the port, and resumes when it returns.
        board_line.unplug()
        will = probe.wait_for(STATUS, predicate=payload_is(b"offline-2"))
        assert will.qos == 1
        wait_until(lambda: bridge.stats.serial_open_failures >= 2, "failed reopen attempts")
        assert not bridge.broker_up and bridge.stats.serial_opens == 1
        board_line.plug_in()
        board_line.accept()
        wait_until(
            lambda: bridge.broker_up and bridge.stats.broker_connects == 3,
            "a fresh broker connection for the returning board",
        )
        board_line.connect_mqtt(will="offline-3")
        board_line.send(mqtt_publish(UPDATE, b"update-3"))
        probe.wait_for(UPDATE, predicate=payload_is(b"update-3"))
        wait_until(
            lambda: (
                bridge.stats.board_to_broker + bridge.stats.dropped_from_board == board_line.sent
            ),
            "every board byte forwarded or counted as dropped",
        )
    finally:
        runner.stop()
    stats = bridge.stats
    assert stats.serial_opens == 2
    assert stats.broker_connects == 3
    assert stats.dropped_from_board == len(MQTT_PINGREQ)
    assert stats.board_to_broker + stats.dropped_from_board == board_line.sent
    assert stats.broker_to_board >= board_line.received


def test_bridge_waits_for_a_broker_that_is_not_up_yet(
    fresh_broker: MosquittoBroker, board_line: BoardLine, mqtt_probe: Callable[..., MqttProbe]
) -> None:
    fresh_broker.stop()
    runner = BridgeThread(fast_config(board_line.url, fresh_broker)).start()
    try:
        board_line.accept()
        wait_until(lambda: runner.bridge.stats.broker_connect_failures >= 2, "failed connects")
        assert not runner.bridge.broker_up
        fresh_broker.start()
        wait_until(lambda: runner.bridge.broker_up, "the bridge to find the late broker")
        probe = mqtt_probe(fresh_broker)
        probe.subscribe(UPDATE)
        board_line.connect_mqtt(will="offline")
        board_line.send(mqtt_publish(UPDATE, b"late"))
        probe.wait_for(UPDATE, predicate=payload_is(b"late"))
    finally:
        runner.stop()


def test_loop_url_smoke(broker: MosquittoBroker) -> None:
    """pyserial's loop:// opens through serial_for_url and the bridge connects and stops cleanly."""
    runner = BridgeThread(fast_config("loop://", broker)).start()
    try:
        wait_until(lambda: runner.bridge.broker_up, "a broker connection with a loop:// port")
        assert runner.bridge.stats.serial_opens == 1
    finally:
        runner.stop()
    assert not runner.bridge.broker_up


def _read_fd(fd: int, n: int, timeout: float = STEP_TIMEOUT) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"only {data!r} from the tty within {timeout} s"
        data += os.read(fd, n - len(data))
    return data


def test_bridge_over_a_real_tty(
    broker: MosquittoBroker, mqtt_probe: Callable[..., MqttProbe]
) -> None:
    """pyserial's POSIX backend (termios, flock, in_waiting) on a pseudo-terminal: the path a
    USB-serial board takes."""
    master, slave = os.openpty()
    runner = BridgeThread(fast_config(os.ttyname(slave), broker)).start()
    try:
        probe = mqtt_probe(broker)
        topic = f"{TOPICS}/tty"
        probe.subscribe(topic)
        wait_until(lambda: runner.bridge.broker_up, "the bridge on a tty")
        os.write(master, mqtt_connect("tty-board", STATUS, "offline-tty"))
        assert _read_fd(master, 4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
        payload = bytes(range(256)) * 8  # binary, and more than one read chunk's worth
        os.write(master, mqtt_publish(topic, payload))
        probe.wait_for(topic, predicate=payload_is(payload))
    finally:
        runner.stop()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_cli_bridge_passes_traffic_and_stops_on_signal(
    broker: MosquittoBroker,
    board_line: BoardLine,
    mqtt_probe: Callable[..., MqttProbe],
    signum: int,
    exit_code: int,
) -> None:
    probe = mqtt_probe(broker)
    topic = f"{TOPICS}/cli/{signum}"
    probe.subscribe(topic)
    env: dict[str, Any] = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinyfl.cli.main",
            "bridge",
            "--port",
            board_line.url,
            "--broker",
            broker.url,
            "--max-backoff",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        board_line.accept(timeout=15.0)  # includes interpreter start-up
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:  # the board retries CONNECT, as firmware does, until the broker answers
            board_line.send(mqtt_connect(f"cli-board-{signum}", STATUS, "offline"))
            try:
                first, _ = board_line.read_packet(timeout=0.5)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no CONNACK through the CLI bridge"
        assert first == 0x20
        board_line.send(mqtt_publish(topic, b"via-cli"))
        probe.wait_for(topic, predicate=payload_is(b"via-cli"))
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=STEP_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    assert f"serial port {board_line.url} open" in stderr
    assert f"broker {broker.url} connected" in stderr
    assert "bridge stopped; totals: board->broker" in stderr


# --- TLS towards a locked broker ----------------------------------------------------------


def mqtt_connect_with_credentials(client_id: str, user: str, password: str) -> bytes:
    """CONNECT (MQTT 3.1.1) with clean session, user name and password: the board's own."""
    header = _utf8("MQTT") + bytes([4, 0x80 | 0x40 | 0x02]) + struct.pack(">H", 30)
    body = header + _utf8(client_id) + _utf8(user) + _utf8(password)
    return bytes([0x10, len(body)]) + body


def test_bridge_carries_the_boards_credentials_over_tls(
    tmp_path: Path, board_line: BoardLine
) -> None:
    """mqtts://: the bridge speaks TLS to the broker (private CA) and the board's CONNECT,
    credentials and all, goes through inside it; a wrong password gets the broker's refusal."""
    passwords = write_password_file(tmp_path / "passwd", {"board-1": "board secret"})
    broker = MosquittoBroker(
        tmp_path / "broker", password_file=passwords, tls=make_tls_files(tmp_path / "tls")
    )
    broker.start()
    assert broker.tls is not None
    address = parse_broker_url(broker.url).with_credentials(None, None, str(broker.tls.ca_file))
    config = BridgeConfig(port_url=board_line.url, broker=address, backoff_initial=0.05,
                          backoff_max=0.3, connect_timeout=2.0)
    runner = BridgeThread(config).start()
    try:
        board_line.accept()
        wait_until(lambda: runner.bridge.broker_up, "a TLS connection to the broker")
        board_line.send(mqtt_connect_with_credentials("board-1", "board-1", "wrong"))
        assert board_line.read_packet() == (0x20, b"\x00\x05")  # CONNACK: not authorized
        wait_until(lambda: runner.bridge.stats.broker_connects == 2, "the next broker session")
        board_line.send(mqtt_connect_with_credentials("board-1", "board-1", "board secret"))
        assert board_line.read_packet() == (0x20, b"\x00\x00")  # CONNACK: accepted
    finally:
        runner.stop()
        broker.stop()


def test_bridge_does_not_trust_a_broker_certificate_without_its_ca(
    tmp_path: Path, board_line: BoardLine
) -> None:
    broker = MosquittoBroker(tmp_path / "broker", tls=make_tls_files(tmp_path / "tls"))
    broker.start()
    config = BridgeConfig(port_url=board_line.url, broker=parse_broker_url(broker.url),
                          backoff_initial=0.05, backoff_max=0.1, connect_timeout=2.0)
    runner = BridgeThread(config).start()
    try:
        board_line.accept()
        wait_until(lambda: runner.bridge.stats.broker_connect_failures >= 2, "refusals")
        assert not runner.bridge.broker_up and runner.bridge.stats.broker_connects == 0
    finally:
        runner.stop()
        broker.stop()
