"""Shared fixtures: real local parts started by the tests (docs/ARCHITECTURE.md, section 5).

`broker` is one mosquitto for the whole session; `fresh_broker` is a private one for tests that
stop and restart it; `deep_queue_broker` a private one with room for floods.
`mqtt_probe(broker)` makes a connected paho probe that is closed at teardown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Test modules import helpers as `support.*`; make that independent of pytest's import mode.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from support.broker import BrokerUnavailable, MosquittoBroker
from support.mqtt_probe import MqttProbe

ProbeFactory = Callable[..., MqttProbe]


def _launch_broker(workdir: Path) -> MosquittoBroker:
    """Start mosquitto on a free port; a missing binary fails loudly instead of skipping.

    Retries with a new port because another process may grab the free port before mosquitto
    binds it.
    """
    last: BrokerUnavailable | None = None
    for attempt in range(3):
        try:
            path = workdir / f"try{attempt}"
            broker = MosquittoBroker(path)
            broker.start()
            return broker
        except BrokerUnavailable as exc:
            if "not found" in str(exc):
                pytest.fail(str(exc), pytrace=False)
            last = exc
    pytest.fail(f"could not start mosquitto: {last}", pytrace=False)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A session-wide mosquitto on 127.0.0.1; do not stop it (use `fresh_broker` for that)."""
    server = _launch_broker(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto of this test's own, free to stop()/start() (same port, same log)."""
    server = _launch_broker(tmp_path / "mosquitto")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def deep_queue_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto of this test's own, as TinyFL configures it: up to 100,000 messages queued
    per subscriber.

    mosquitto's default (max_queued_messages 1000) applies to QoS 0 deliveries too: beyond it,
    it drops messages to a subscriber that reads more slowly than others publish ("Outgoing
    messages are being dropped" in its log). tinyfl.fleet.broker raises the limit, so that a
    flood reaches the coordinator whole instead of the broker shedding it (and honest updates).
    """
    server = _launch_broker(tmp_path / "mosquitto")
    assert "max_queued_messages 100000" in server.config_path.read_text()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mqtt_probe() -> Iterator[ProbeFactory]:
    """Factory: `mqtt_probe(broker, client_id=None, **kw)` -> connected MqttProbe, closed later."""
    probes: list[MqttProbe] = []

    def make(server: MosquittoBroker, client_id: str | None = None, **kwargs: object) -> MqttProbe:
        probe = MqttProbe(server.host, server.port, client_id, **kwargs)  # type: ignore[arg-type]
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.close()
