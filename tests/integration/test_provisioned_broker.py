"""The broker `tinyfl provision` configures, run for real: no anonymous or wrong-password client
gets in, a node can publish only on its own topics and read only the GLOBAL, and TLS works with
the fleet's CA and only with it. `provision revoke` reloads the broker the way `fleet up` records
it, so the node's account is refused, and deletes the node's retained topics and no one else's;
`clear-retained --unknown` deletes those of ids that were never provisioned."""

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
from tinyfl.fleet.state import FleetState, ProcessRecord, start_time_of, write_state

pytestmark = pytest.mark.broker
PREFIX = "tinyfl/lab"


class Client:
    """A paho client with credentials (and TLS), recording what it receives."""

    def __init__(self, port: int, user: str | None, password: str | None,
                 ca: Path | None = None, tls: bool = False,
                 will: tuple[str, bytes] | None = None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.result: str | None = None
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{port}")
        self.disconnected = threading.Event()
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:  # as a node sets it: status "offline", retained
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_disconnect = lambda *a: self.disconnected.set()
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
    cmd = [find_mosquitto(), "-c", str(out / "broker" / "mosquitto.conf")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_accepts("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    # the run record `tinyfl fleet up` leaves beside its provisioning folder (runs/<id>/provision):
    # how revoke finds the broker to reload
    write_state(tmp_path, FleetState(
        "lab", PREFIX, "har", "native", f"mqtt://127.0.0.1:{port}", True,
        [ProcessRecord("broker", "", proc.pid, start_time_of(proc.pid), tuple(cmd))],
        provision=str(out)))
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


def _retained(port: int, out: Path, wait: float = 1.0) -> dict[str, bytes]:
    """{topic: payload} of every retained node topic a fresh subscriber gets."""
    watcher = Client(port, "coordinator", _secret(out, "coordinator")["password"])
    try:
        watcher.client.subscribe(f"{PREFIX}/nodes/+/+", qos=1)
        time.sleep(wait)
    finally:
        watcher.close()
    return dict(watcher.received)


def _announce(port: int, out: Path, node: str) -> Client:
    """A node as the firmware behaves: will "offline", retained HELLO and "online"; left
    connected."""
    client = Client(port, node, _secret(out, node)["password"],
                    will=(f"{PREFIX}/nodes/{node}/status", b"offline"))
    client.client.publish(f"{PREFIX}/nodes/{node}/hello", b"HELLO " + node.encode(), qos=1,
                          retain=True).wait_for_publish(5)
    client.client.publish(f"{PREFIX}/nodes/{node}/status", b"online", qos=1,
                          retain=True).wait_for_publish(5)
    return client


def test_revoke_locks_the_node_out_and_deletes_only_its_retained_topics(
        lab: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]) -> None:
    out, port, _ = lab
    node1_password = _secret(out, "node01")["password"]
    node1, node2 = _announce(port, out, "node01"), _announce(port, out, "node02")
    try:
        assert len(_retained(port, out)) == 4
        assert main(["provision", "revoke", "node01", "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        # the reload dropped the revoked node's live connection (its will fired, and was deleted)
        assert node1.disconnected.wait(5)
    finally:
        node1.close()
        node2.close()
    assert "reloaded (SIGHUP to the fleet's mosquitto" in printed
    assert "retained topics of node01 deleted on mqtts://localhost:" in printed
    assert "hello, status" in printed
    assert node1_password not in printed
    again = Client(port, "node01", node1_password)
    again.close()
    assert again.result == "Not authorized"
    assert _retained(port, out) == {f"{PREFIX}/nodes/node02/hello": b"HELLO node02",
                                    f"{PREFIX}/nodes/node02/status": b"online"}  # closed cleanly: no will


def test_the_admin_account_writes_only_retained_node_topics(lab: tuple[Path, int, int]) -> None:
    out, port, tls_port = lab
    admin_password = json.loads((out / "admin.json").read_text())["password"]
    coordinator = Client(port, "coordinator", _secret(out, "coordinator")["password"])
    admin = Client(tls_port, "admin", admin_password, out / "broker" / "ca.crt", tls=True)
    try:
        assert admin.result == "Success"
        coordinator.client.subscribe(f"{PREFIX}/#", qos=1)
        time.sleep(0.3)
        for topic in ("nodes/node02/update", "global", "coordinator/x"):
            admin.client.publish(f"{PREFIX}/{topic}", b"forged", qos=1).wait_for_publish(5)
        admin.client.publish(f"{PREFIX}/nodes/node02/status", b"", qos=1,
                             retain=True).wait_for_publish(5)
        time.sleep(1.0)
    finally:
        admin.close()
        coordinator.close()
    assert coordinator.received == [(f"{PREFIX}/nodes/node02/status", b"")]


def test_clear_retained_unknown_deletes_fake_nodes_and_keeps_the_fleets(
        lab: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]) -> None:
    out, port, tls_port = lab
    node2 = _announce(port, out, "node02")
    node2.close()
    # fake HELLOs, as a stranger on a once-open broker would have left them (on this broker only
    # the admin account may write another id's topics); one id the wire would refuse
    admin = Client(tls_port, "admin", json.loads((out / "admin.json").read_text())["password"],
                   out / "broker" / "ca.crt", tls=True)
    fakes = ["ghost1", "ghost2", "x" * 40]
    try:
        for fake in fakes:
            for kind, payload in (("hello", b"FAKE HELLO"), ("status", b"online")):
                admin.client.publish(f"{PREFIX}/nodes/{fake}/{kind}", payload, qos=1,
                                     retain=True).wait_for_publish(5)
    finally:
        admin.close()
    assert len(_retained(port, out)) == 8

    assert main(["provision", "clear-retained", "--unknown", "--dry-run", "--out", str(out)]) == 0
    listed = capsys.readouterr().out
    assert f"3 unknown ids with retained topics under {PREFIX}/nodes/" in listed
    assert "ghost1, ghost2, " + "x" * 40 in listed and "node02" not in listed
    assert len(_retained(port, out)) == 8  # a dry run deletes nothing

    assert main(["provision", "clear-retained", "--unknown", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "retained topics of ghost2 deleted on mqtts://localhost:" in printed
    assert _retained(port, out) == {f"{PREFIX}/nodes/node02/hello": b"HELLO node02",
                                    f"{PREFIX}/nodes/node02/status": b"online"}
    assert main(["provision", "clear-retained", "--unknown", "--out", str(out)]) == 0
    assert "0 unknown ids" in capsys.readouterr().out
