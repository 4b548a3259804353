"""The broker `tinyfl provision` configures, run for real: no anonymous or wrong-password client
gets in, a node can publish only on its own topics and read only the GLOBAL, and TLS works with
the fleet's CA and only with it."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tinyfl.cli.main import main
from tinyfl.fleet.broker import find_mosquitto, free_port, port_accepts

pytestmark = pytest.mark.broker
PREFIX = "tinyfl/lab"


class Client:
    """A paho client with credentials (and TLS), recording what it receives."""

    def __init__(self, port: int, user: str | None, password: str | None,
                 ca: Path | None = None, tls: bool = False) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.result: str | None = None
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{port}")
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set(ca_certs=str(ca) if ca else None)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.connected.wait(5)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object,
                    props: object) -> None:
        self.result = str(rc)
        self.connected.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    port, tls_port = free_port(), free_port()
    out = tmp_path / "lab"
    assert main(["provision", "--fleet", "lab", "--nodes", "2", "--out", str(out), "--port",
                 str(port), "--tls-port", str(tls_port)]) == 0
    proc = subprocess.Popen([find_mosquitto(), "-c", str(out / "broker" / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_accepts("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield out, port, tls_port
    finally:
        proc.terminate()
        proc.wait(10)


def _secret(out: Path, who: str) -> dict[str, str]:
    path = out / ("coordinator.json" if who == "coordinator" else f"nodes/{who}/node.json")
    doc: dict[str, str] = json.loads(path.read_text())
    return doc


def test_strangers_and_wrong_passwords_are_refused(lab: tuple[Path, int, int]) -> None:
    out, port, _ = lab
    for user, password in ((None, None), ("node01", "guess"), ("intruder", "x")):
        client = Client(port, user, password)
        client.close()
        assert client.result == "Not authorized", (user, client.result)
    client = Client(port, "node01", _secret(out, "node01")["password"])
    client.close()
    assert client.result == "Success"


def test_a_node_publishes_only_on_its_own_topics(lab: tuple[Path, int, int]) -> None:
    out, port, _ = lab
    coordinator = Client(port, "coordinator", _secret(out, "coordinator")["password"])
    node1 = Client(port, "node01", _secret(out, "node01")["password"])
    node2 = Client(port, "node02", _secret(out, "node02")["password"])
    try:
        coordinator.client.subscribe(f"{PREFIX}/nodes/+/update", qos=1)
        node2.client.subscribe(f"{PREFIX}/#", qos=1)  # a node may read only the GLOBAL
        time.sleep(0.3)
        node1.client.publish(f"{PREFIX}/nodes/node02/update", b"forged", qos=1)
        node1.client.publish(f"{PREFIX}/global", b"forged global", qos=1)
        node1.client.publish(f"{PREFIX}/nodes/node01/update", b"own", qos=1)
        coordinator.client.publish(f"{PREFIX}/global", b"round", qos=1)
        time.sleep(1.0)
    finally:
        for client in (coordinator, node1, node2):
            client.close()
    assert coordinator.received == [(f"{PREFIX}/nodes/node01/update", b"own")]
    assert node2.received == [(f"{PREFIX}/global", b"round")]


def test_tls_with_the_fleets_ca_and_only_with_it(lab: tuple[Path, int, int]) -> None:
    out, _, tls_port = lab
    password = _secret(out, "coordinator")["password"]
    client = Client(tls_port, "coordinator", password, out / "broker" / "ca.crt", tls=True)
    client.close()
    assert client.result == "Success"
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(tls_port, "coordinator", password, None, tls=True)
