"""MqttTransport against a real mosquitto, and one behavioural suite run against both it and the
in-memory transport, so the fake that the coordinator tests rely on is checked against the real
thing (docs/ARCHITECTURE.md: nothing is mocked where the real part can run).

Every scenario runs in a fresh event loop under an overall timeout; topics carry a per-test
prefix because the session broker keeps retained messages between tests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from support.broker import MosquittoBroker, free_port  # type: ignore[import-not-found]
from tinyfl.errors import TransportError, UsageError
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.transport.mqtt import (
    MAX_INCOMING_PAYLOAD,
    Message,
    MqttTransport,
    Transport,
    Will,
    mqtt_publish_packet_size,
    topic_matches,
)

SCENARIO_TIMEOUT = 30.0
STEP = 5.0  # bound on any single wait for a message or a reconnection
FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_cap": 0.5, "publish_timeout": 10.0}


@dataclass
class Harness:
    """One broker (mosquitto or in-memory) and the transports a scenario made on it."""

    kind: str
    url: str
    make: Callable[[], Transport]
    stop: Callable[[], Awaitable[None]]
    start: Callable[[], Awaitable[None]]
    prefix: str = field(default_factory=lambda: f"test/{uuid.uuid4().hex[:10]}")
    transports: list[Transport] = field(default_factory=list)

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    async def client(self, name: str, will: Will | None = None) -> Transport:
        transport = self.make()
        self.transports.append(transport)
        await transport.connect(self.url, client_id=f"{self.prefix}-{name}", will=will)
        return transport

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def run(self, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def main() -> None:
            try:
                await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT)
            finally:
                for transport in self.transports:
                    await transport.close()

        asyncio.run(main())


def mosquitto_harness(broker: MosquittoBroker) -> Harness:
    async def stop() -> None:
        await asyncio.to_thread(broker.stop)

    async def start() -> None:
        await asyncio.to_thread(broker.start)

    return Harness("mosquitto", broker.url, lambda: MqttTransport(**FAST), stop, start)


def memory_harness() -> Harness:
    memory = MemoryBroker("test")

    async def stop() -> None:
        memory.stop()

    async def start() -> None:
        memory.start()

    return Harness("memory", memory.url, lambda: MemoryTransport(memory, **FAST), stop, start)


KINDS = ["memory", pytest.param("mosquitto", marks=pytest.mark.broker)]


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    """Either transport on a broker shared by the session (do not stop it)."""
    if request.param == "memory":
        return memory_harness()
    return mosquitto_harness(request.getfixturevalue("broker"))


@pytest.fixture(params=KINDS)
def restartable(request: pytest.FixtureRequest) -> Harness:
    """Either transport on a broker of this test's own, free to stop and restart."""
    if request.param == "memory":
        return memory_harness()
    return mosquitto_harness(request.getfixturevalue("fresh_broker"))


async def next_message(transport: Transport) -> Message:
    return await transport.receive(timeout=STEP)


# --- the behavioural suite (both transports) -------------------------------------------------


def test_publish_subscribe_roundtrip(harness: Harness) -> None:
    async def scenario() -> None:
        sub = await harness.client("sub")
        pub = await harness.client("pub")
        await sub.subscribe(harness.topic("nodes/+/update"))
        payload = bytes(range(256)) * 4  # binary-safe, 1 KiB
        await pub.publish(harness.topic("nodes/n1/update"), payload)
        assert await next_message(sub) == Message(harness.topic("nodes/n1/update"), payload, False)
        assert pub.connected and sub.connected

    harness.run(scenario)


def test_wildcards_and_overlapping_filters(harness: Harness) -> None:
    async def scenario() -> None:
        sub = await harness.client("sub")
        pub = await harness.client("pub")
        await sub.subscribe(harness.topic("w/#"))
        await sub.subscribe(harness.topic("w/+"))  # overlaps: still one copy per message
        await sub.subscribe(harness.topic("x/+/z"))
        for suffix in ("w", "w/a", "w/a/b", "x/y/z", "x/y/q", "x/y/z/q", "done/marker"):
            await pub.publish(harness.topic(suffix), suffix.encode())
        await sub.subscribe(harness.topic("done/#"))
        await pub.publish(harness.topic("done/marker"), b"end")
        got = [(await next_message(sub)).topic for _ in range(5)]
        # "w/#" matches its parent "w"; "x/+/z" matches one level only
        assert got == [harness.topic(s) for s in ("w", "w/a", "w/a/b", "x/y/z", "done/marker")]

    harness.run(scenario)


def test_unsubscribe_stops_delivery(harness: Harness) -> None:
    async def scenario() -> None:
        node = await harness.client("node")
        await node.subscribe(harness.topic("a"))
        await node.subscribe(harness.topic("b"))
        await node.unsubscribe(harness.topic("a"))
        await node.unsubscribe(harness.topic("never-subscribed"))
        await node.publish(harness.topic("a"), b"dropped")
        await node.publish(harness.topic("b"), b"kept")
        assert (await next_message(node)).payload == b"kept"

    harness.run(scenario)


def test_receives_its_own_publications(harness: Harness) -> None:
    async def scenario() -> None:
        node = await harness.client("self")
        await node.subscribe(harness.topic("echo"))
        await node.publish(harness.topic("echo"), b"me")
        assert (await next_message(node)).payload == b"me"

    harness.run(scenario)


def test_retained_messages(harness: Harness) -> None:
    async def scenario() -> None:
        pub = await harness.client("pub")
        live = await harness.client("live")
        await live.subscribe(harness.topic("global"))
        await pub.publish(harness.topic("global"), b"round-1", retain=True)
        await pub.publish(harness.topic("global"), b"round-2", retain=True)
        # a subscriber that was already there sees retain=False (MQTT 3.1.1 section 3.3.1.3)
        assert await next_message(live) == Message(harness.topic("global"), b"round-1", False)
        assert await next_message(live) == Message(harness.topic("global"), b"round-2", False)

        late = await harness.client("late")
        await late.subscribe(harness.topic("#"))
        assert await next_message(late) == Message(harness.topic("global"), b"round-2", True)

        # an empty retained payload deletes it: the next subscriber gets only the marker
        await pub.publish(harness.topic("global"), b"", retain=True)
        later = await harness.client("later")
        await later.subscribe(harness.topic("#"))
        await pub.publish(harness.topic("marker"), b"m")
        assert await next_message(later) == Message(harness.topic("marker"), b"m", False)

    harness.run(scenario)


def test_qos1_publish_completes_and_counts(harness: Harness) -> None:
    async def scenario() -> None:
        pub = await harness.client("pub")
        topic = harness.topic("nodes/n1/update")
        await pub.publish(topic, bytes(10), qos=0)  # returns at once, written in order:
        await pub.publish(topic, bytes(393), qos=1)  # so once this is acknowledged, both went
        assert pub.stats.messages_sent == 2
        assert pub.stats.publish_bytes_sent == mqtt_publish_packet_size(
            topic, 393, 1
        ) + mqtt_publish_packet_size(topic, 10, 0)
        assert pub.stats.bytes_sent >= pub.stats.publish_bytes_sent

    harness.run(scenario)


def test_two_hundred_messages_arrive_in_order(harness: Harness) -> None:
    async def scenario() -> None:
        sub = await harness.client("sub")
        pub = await harness.client("pub")
        topic = harness.topic("seq")
        await sub.subscribe(topic)
        await asyncio.gather(*(pub.publish(topic, str(i).encode()) for i in range(100)))
        for i in range(100, 200):
            await pub.publish(topic, str(i).encode())
        got = [int((await next_message(sub)).payload) for _ in range(200)]
        assert got == list(range(200))
        assert sub.stats.messages_received == 200

    harness.run(scenario)


def test_last_will_on_abort_not_on_close(harness: Harness) -> None:
    async def scenario() -> None:
        watcher = await harness.client("watcher")
        await watcher.subscribe(harness.topic("nodes/+/status"))
        crashed = await harness.client(
            "n1", will=Will(harness.topic("nodes/n1/status"), b"offline")
        )
        polite = await harness.client("n2", will=Will(harness.topic("nodes/n2/status"), b"offline"))
        await crashed.publish(harness.topic("nodes/n1/status"), b"online", retain=True)
        assert (await next_message(watcher)).payload == b"online"

        await polite.close()  # DISCONNECT: the broker discards the will
        await crashed.abort()  # no DISCONNECT: the broker publishes it
        assert await next_message(watcher) == Message(
            harness.topic("nodes/n1/status"), b"offline", False
        )
        # the will was retained, replacing "online"
        late = await harness.client("late")
        await late.subscribe(harness.topic("nodes/+/status"))
        assert await next_message(late) == Message(
            harness.topic("nodes/n1/status"), b"offline", True
        )
        # and n2's will never came
        await late.publish(harness.topic("nodes/n9/status"), b"marker")
        assert (await next_message(watcher)).topic == harness.topic("nodes/n9/status")

    harness.run(scenario)


def test_closed_transport_refuses_work_and_ends_iteration(harness: Harness) -> None:
    async def scenario() -> None:
        node = await harness.client("node")
        await node.subscribe(harness.topic("a"))
        await node.publish(harness.topic("a"), b"kept")
        await node.close()
        assert not node.connected
        with pytest.raises(TransportError):
            await node.publish(harness.topic("a"), b"x")
        with pytest.raises(TransportError):
            await node.subscribe(harness.topic("b"))
        assert [m.payload async for m in node.messages()] == [b"kept"]  # then the end
        with pytest.raises(TransportError):
            await node.receive(timeout=STEP)
        await node.close()  # idempotent

    harness.run(scenario)


def test_receive_times_out(harness: Harness) -> None:
    async def scenario() -> None:
        node = await harness.client("node")
        with pytest.raises(asyncio.TimeoutError):
            await node.receive(timeout=0.05)

    harness.run(scenario)


def test_usage_errors(harness: Harness) -> None:
    async def scenario() -> None:
        node = await harness.client("node")
        with pytest.raises(UsageError):
            await node.publish(harness.topic("+/x"), b"")
        with pytest.raises(UsageError):
            await node.publish(harness.topic("x"), b"", qos=3)
        with pytest.raises(UsageError):
            await node.subscribe(harness.topic("a/#/b"))
        with pytest.raises(UsageError):
            await node.subscribe(harness.topic("a/b+"))
        with pytest.raises(UsageError):
            await node.publish(harness.topic("x"), "text")  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            await node.connect(harness.url, client_id="again")
        assert node.connected

    harness.run(scenario)


def test_broker_restart_reconnects_resubscribes_and_flows(restartable: Harness) -> None:
    async def scenario() -> None:
        sub = await restartable.client("sub")
        pub = await restartable.client("pub")
        await sub.subscribe(restartable.topic("nodes/+/update"))
        await sub.subscribe(restartable.topic("global"))
        await pub.publish(restartable.topic("nodes/n1/update"), b"before")
        assert (await next_message(sub)).payload == b"before"

        await restartable.restart()
        await sub.wait_connected(STEP)
        await pub.wait_connected(STEP)
        assert sub.stats.reconnects == 1 and sub.stats.connection_losses == 1
        # both subscriptions are back without the caller doing anything
        await pub.publish(restartable.topic("nodes/n2/update"), b"after")
        await pub.publish(restartable.topic("global"), b"g")
        assert (await next_message(sub)).payload == b"after"
        assert (await next_message(sub)).payload == b"g"

    restartable.run(scenario)


def test_publish_waits_for_the_broker_to_return(restartable: Harness) -> None:
    async def scenario() -> None:
        sub = await restartable.client("sub")
        pub = await restartable.client("pub")
        topic = restartable.topic("global")
        await sub.subscribe(topic)

        await restartable.stop()
        with pytest.raises(TransportError, match="no connection"):
            await pub.publish(topic, b"lost", timeout=0.3)
        # retained, so the subscriber gets it whichever of the two reconnects first
        pending = asyncio.ensure_future(pub.publish(topic, b"late", retain=True, timeout=STEP))
        await asyncio.sleep(0.2)
        assert not pending.done()
        await restartable.start()
        await pending
        message = await next_message(sub)
        assert (message.topic, message.payload) == (topic, b"late")

    restartable.run(scenario)


def test_first_connect_failure_is_bounded(restartable: Harness) -> None:
    async def scenario() -> None:
        await restartable.stop()
        transport = restartable.make()
        started = time.monotonic()
        with pytest.raises(TransportError, match="could not connect") as info:
            await transport.connect(restartable.url, client_id="nobody", timeout=1.0)
        assert time.monotonic() - started < 3.0
        assert restartable.url in str(info.value)
        with pytest.raises(TransportError):
            await transport.publish(restartable.topic("x"), b"")

    restartable.run(scenario)


# --- mosquitto only: the wire -----------------------------------------------------------------


@pytest.mark.broker
def test_byte_counters_see_whole_packets_on_the_wire(broker: MosquittoBroker) -> None:
    harness = mosquitto_harness(broker)

    async def scenario() -> None:
        pub = await harness.client("pub")
        sub = await harness.client("sub")
        topic = harness.topic("nodes/node-07/update")
        await sub.subscribe(topic, qos=1)
        sent, acked, received = (
            pub.stats.bytes_sent,
            pub.stats.bytes_received,
            sub.stats.bytes_received,
        )
        await pub.publish(topic, bytes(393), qos=1)
        await next_message(sub)
        # publisher: exactly one PUBLISH out, one PUBACK (4 bytes) in
        assert pub.stats.bytes_sent - sent == mqtt_publish_packet_size(topic, 393, 1)
        assert pub.stats.bytes_received - acked == 4
        # subscriber: the broker's PUBLISH (QoS 1, with its own packet id) is the same size
        assert sub.stats.bytes_received - received == mqtt_publish_packet_size(topic, 393, 1)
        assert sub.stats.publish_bytes_received == mqtt_publish_packet_size(topic, 393, 1)

    harness.run(scenario)


@pytest.mark.broker
def test_driven_by_the_event_loop_without_threads(broker: MosquittoBroker) -> None:
    harness = mosquitto_harness(broker)

    async def scenario() -> None:
        before = threading.active_count()
        node = await harness.client("node")
        await node.subscribe(harness.topic("t"))
        await node.publish(harness.topic("t"), b"x")
        await next_message(node)
        assert threading.active_count() == before  # no paho loop_start() thread

    harness.run(scenario)


@pytest.mark.broker
def test_refused_port_fails_within_the_timeout() -> None:
    async def scenario() -> None:
        transport = MqttTransport(backoff_initial=0.05, backoff_cap=0.2)
        url = f"mqtt://127.0.0.1:{free_port()}"
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            await transport.connect(url, client_id="x", timeout=0.5)
        assert time.monotonic() - started < 2.0
        assert "refused" in str(info.value).lower() and url in str(info.value)

    asyncio.run(scenario())


@pytest.mark.broker
def test_silent_peer_times_out_at_connack() -> None:
    """A TCP listener that never answers CONNECT: each attempt gives up at attempt_timeout."""

    async def scenario() -> None:
        peers: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = MqttTransport(attempt_timeout=0.2, backoff_initial=0.05, backoff_cap=0.1)
        started = time.monotonic()
        try:
            with pytest.raises(TransportError, match="timed out"):
                await transport.connect(f"mqtt://127.0.0.1:{port}", client_id="x", timeout=0.6)
            assert time.monotonic() - started < 2.0
            assert len(peers) >= 2  # it retried within the budget
        finally:
            for writer in peers:
                writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


@pytest.mark.broker
def test_large_payload_goes_through_partial_writes(broker: MosquittoBroker) -> None:
    """4 MiB is more than a socket takes at once: paho's writer hook finishes the job. (The
    subscriber raises its incoming bound, 1 MiB by default, to take it.)"""
    harness = mosquitto_harness(broker)
    harness.make = lambda: MqttTransport(max_incoming=8 << 20, **FAST)

    async def scenario() -> None:
        sub = await harness.client("sub")
        pub = await harness.client("pub")
        await sub.subscribe(harness.topic("big"))
        payload = bytes(range(256)) * (16 * 1024)
        await pub.publish(harness.topic("big"), payload)
        assert (await next_message(sub)).payload == payload

    harness.run(scenario)


@pytest.mark.broker
def test_payloads_over_the_incoming_bound_are_dropped_and_counted(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5 MB payload reaches mosquitto (its default message_size_limit is the MQTT maximum)
    and the subscriber, which drops it at its 1 MiB default instead of queueing it; messages
    at the bound and after the big one still arrive, on the same connection."""
    harness = mosquitto_harness(broker)

    async def scenario() -> None:
        sub = await harness.client("sub")
        pub = await harness.client("pub")
        assert isinstance(sub, MqttTransport) and sub.max_incoming == MAX_INCOMING_PAYLOAD
        await sub.subscribe(harness.topic("#"))
        at_bound = bytes(MAX_INCOMING_PAYLOAD)
        await pub.publish(harness.topic("big"), b"\xa5" * 5_000_000)
        await pub.publish(harness.topic("edge"), at_bound)
        await pub.publish(harness.topic("after"), b"small")
        first, second = await next_message(sub), await next_message(sub)
        assert (first.topic, len(first.payload)) == (harness.topic("edge"), len(at_bound))
        assert (second.topic, second.payload) == (harness.topic("after"), b"small")
        assert sub.stats.messages_dropped_oversize == 1
        assert sub.stats.messages_received == 2
        assert sub.stats.bytes_received > 5_000_000  # it did come over the wire
        assert sub.connected and sub.stats.connection_losses == 0

    with caplog.at_level(logging.WARNING, logger="tinyfl.transport.mqtt"):
        harness.run(scenario)
    assert any(
        "dropped a 5000000-byte message" in r.getMessage() and "1 dropped so far" in r.getMessage()
        for r in caplog.records
    ), caplog.text


def test_the_incoming_bound_must_be_positive() -> None:
    with pytest.raises(UsageError, match="max_incoming"):
        MqttTransport(max_incoming=0)


@pytest.mark.broker
def test_keepalive_pings_hold_an_idle_connection(broker: MosquittoBroker) -> None:
    """keepalive=2: mosquitto drops a client silent for 3 s, unless loop_misc pings. (2 s, not
    1 s: a 1.5 s grace failed once in a full suite run when the test process stalled.)"""
    harness = mosquitto_harness(broker)
    harness.make = lambda: MqttTransport(keepalive=2, **FAST)

    async def scenario() -> None:
        node = await harness.client("idle")
        sent = node.stats.bytes_sent
        await asyncio.sleep(4.0)
        assert node.connected and node.stats.connection_losses == 0
        assert node.stats.bytes_sent - sent >= 2  # at least one PINGREQ (2 bytes)

    harness.run(scenario)


def test_refusing_broker_fails_at_once() -> None:
    """A CONNACK refusal (here: not authorized) is final: no retries until the timeout."""

    async def scenario() -> None:
        async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)  # CONNECT arrives
            writer.write(bytes([0x20, 0x02, 0x00, 0x05]))  # CONNACK, return code 5
            await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        started = time.monotonic()
        try:
            with pytest.raises(TransportError, match="refused the connection: Not authorized"):
                await MqttTransport().connect(f"mqtt://127.0.0.1:{port}", client_id="x")
            assert time.monotonic() - started < 1.0
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


# --- pure topic matching, against the examples of MQTT 3.1.1 section 4.7 ---------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "anything/at/all", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "$SYS/broker/load", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("a/b", "a/b", True),
        ("a/b", "a/B", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_memory_takeover_publishes_the_old_will() -> None:
    """Same client id twice: the broker drops the first session and publishes its will, as
    mosquitto does (the dropped client then reconnects and takes over in turn)."""
    harness = memory_harness()

    async def scenario() -> None:
        watcher = await harness.client("watcher")
        await watcher.subscribe(harness.topic("status"))
        await harness.client("dup", will=Will(harness.topic("status"), b"offline"))
        await harness.client("dup")
        assert (await next_message(watcher)).payload == b"offline"

    harness.run(scenario)
