"""MqttTransport against a locked mosquitto: a password file (allow_anonymous false) with an ACL,
and a TLS listener whose certificate a private CA signed (made here with `cryptography`).

Right credentials work; wrong or missing ones, an untrusted certificate and a host name the
certificate does not carry each fail at once with a TransportError that says why, instead of
retrying until the connect timeout. No message or log line shows the password.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.broker import (  # type: ignore[import-not-found]
    MosquittoBroker,
    write_acl_file,
    write_password_file,
)
from support.tls import make_tls_files
from tinyfl.errors import TransportError
from tinyfl.transport import BrokerAddress, MqttTransport, mqtt_publish_packet_size

pytestmark = pytest.mark.broker

USER, SECRET = "alice", "correct horse battery"
WRONG = "wrong horse"
# Patient budgets: a test that passes only because the budget ran out would be a retry loop.
SLOW_RETRY = {"connect_timeout": 8.0, "backoff_initial": 0.05, "backoff_cap": 0.2}
FAIL_FAST = 2.0  # a permanent failure must be reported well within this


def _locked(workdir: Path, *, tls: bool) -> MosquittoBroker:
    passwords = write_password_file(workdir / "passwd", {USER: SECRET, "bob": "bob's own"})
    acl = write_acl_file(workdir / "acl", {USER: ["test/#"], "bob": ["bob/#"]})
    files = make_tls_files(workdir / "tls") if tls else None
    broker = MosquittoBroker(workdir / "broker", password_file=passwords, acl_file=acl, tls=files)
    broker.start()
    return broker


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    broker = _locked(tmp_path_factory.mktemp("locked"), tls=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def locked_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    broker = _locked(tmp_path_factory.mktemp("locked-tls"), tls=True)
    yield broker
    broker.stop()


def _address(broker: MosquittoBroker, password: str | None = SECRET, **kw: object) -> BrokerAddress:
    return BrokerAddress(
        broker.host, broker.port, tls=broker.tls is not None,
        username=USER if password is not None else None, password=password, **kw,  # type: ignore[arg-type]
    )


def _ca(broker: MosquittoBroker) -> str:
    assert broker.tls is not None
    return str(broker.tls.ca_file)


async def _round_trip(address: BrokerAddress) -> MqttTransport:
    """Connect, subscribe, publish, receive; returns the (closed) transport for its stats."""
    transport = MqttTransport(**SLOW_RETRY)  # type: ignore[arg-type]
    await transport.connect(address, client_id=f"t-{uuid.uuid4().hex[:8]}")
    try:
        topic = f"test/{uuid.uuid4().hex[:8]}/update"
        await transport.subscribe(topic, qos=0)  # QoS 0 delivery: no PUBACK of ours to count
        sent = transport.stats.bytes_sent
        await transport.publish(topic, b"x" * 100)
        assert transport.stats.bytes_sent - sent == mqtt_publish_packet_size(topic, 100, 1)
        message = await transport.receive(timeout=5)
        assert (message.topic, message.payload) == (topic, b"x" * 100)
    finally:
        await transport.close()
    return transport


async def _refused(address: BrokerAddress) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        await MqttTransport(**SLOW_RETRY).connect(address, client_id="x")  # type: ignore[arg-type]
    return str(info.value), time.monotonic() - started


def test_right_password_connects(locked: MosquittoBroker) -> None:
    asyncio.run(_round_trip(_address(locked)))


def test_wrong_password_is_refused_at_once_without_showing_it(
    locked: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    message, took = asyncio.run(_refused(_address(locked, WRONG)))
    assert took < FAIL_FAST, "a refused CONNECT was retried"
    assert "refused the connection" in message and "not retried" in message
    assert "check the user name 'alice'" in message
    assert WRONG not in message and WRONG not in caplog.text and SECRET not in caplog.text


def test_missing_credentials_are_refused_with_the_fix(locked: MosquittoBroker) -> None:
    message, took = asyncio.run(_refused(_address(locked, None)))
    assert took < FAIL_FAST
    assert "refused the connection" in message and "--username" in message


def test_the_acl_limits_a_user_to_its_topics(locked: MosquittoBroker) -> None:
    """mosquitto 2.0 grants a denied SUBSCRIBE but never delivers through it (MQTT 3.1.1)."""

    async def scenario() -> None:
        alice = MqttTransport(**SLOW_RETRY)  # type: ignore[arg-type]
        bob = MqttTransport(**SLOW_RETRY)  # type: ignore[arg-type]
        await alice.connect(_address(locked), client_id="acl-alice")
        bob_address = BrokerAddress(locked.host, locked.port, username="bob", password="bob's own")
        await bob.connect(bob_address, client_id="acl-bob")
        try:
            own = f"test/acl/{uuid.uuid4().hex[:8]}"
            await alice.subscribe("bob/#")
            await alice.subscribe(own)
            await bob.publish("bob/inbox", b"private")
            await alice.publish(own, b"mine")
            assert (await alice.receive(timeout=5)).topic == own
            with pytest.raises(asyncio.TimeoutError):
                await alice.receive(timeout=0.3)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())


def test_tls_with_the_private_ca_connects_and_counts_mqtt_bytes(
    locked_tls: MosquittoBroker,
) -> None:
    assert locked_tls.url.startswith("mqtts://")
    asyncio.run(_round_trip(_address(locked_tls, ca_file=_ca(locked_tls))))


def test_tls_without_the_ca_fails_verification_at_once(locked_tls: MosquittoBroker) -> None:
    message, took = asyncio.run(_refused(_address(locked_tls)))
    assert took < FAIL_FAST, "an untrusted certificate was retried"
    assert "failed TLS certificate verification" in message and "--ca-file" in message
    assert "self-signed certificate" in message or "unable to get local issuer" in message


def test_tls_checks_the_host_name(locked_tls: MosquittoBroker) -> None:
    """The same broker by a name its certificate does not carry (only 127.0.0.1 and ::1)."""
    wrong_name = BrokerAddress(
        "localhost", locked_tls.port, tls=True, username=USER, password=SECRET,
        ca_file=_ca(locked_tls),
    )
    message, took = asyncio.run(_refused(wrong_name))
    assert took < FAIL_FAST
    assert "failed TLS certificate verification" in message
    assert "Hostname mismatch" in message or "IP address mismatch" in message


def test_tls_with_a_wrong_password_is_still_refused(locked_tls: MosquittoBroker) -> None:
    message, _ = asyncio.run(_refused(_address(locked_tls, WRONG, ca_file=_ca(locked_tls))))
    assert "refused the connection" in message and WRONG not in message


def test_tls_session_reconnects_and_resubscribes_after_a_restart(tmp_path: Path) -> None:
    broker = _locked(tmp_path, tls=True)

    async def scenario() -> None:
        transport = MqttTransport(**SLOW_RETRY)  # type: ignore[arg-type]
        await transport.connect(_address(broker, ca_file=_ca(broker)), client_id="tls-restart")
        try:
            topic = f"test/{uuid.uuid4().hex[:8]}"
            await transport.subscribe(topic)
            await asyncio.to_thread(broker.restart)
            await transport.wait_connected(timeout=5)
            assert transport.stats.reconnects == 1
            # several messages in a burst: TLS may hand them over in one record
            for index in range(5):
                await transport.publish(topic, bytes([index]) * 10)
            got = [(await transport.receive(timeout=5)).payload[0] for _ in range(5)]
            assert got == list(range(5))
        finally:
            await transport.close()

    try:
        asyncio.run(scenario())
    finally:
        broker.stop()
