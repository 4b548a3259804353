"""What every transport shares: the message types, the `Transport` interface, MQTT topic and
packet-size rules (pure functions), reconnect backoff, and the broker address (re-exported from
`address`).

`MqttTransport` (a real broker), `MemoryTransport` (tests) and the serial bridge import these
from here, so there is one definition of each rule.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from tinyfl.errors import UsageError
from tinyfl.transport.address import (
    DEFAULT_MQTT_PORT,
    DEFAULT_MQTTS_PORT,
    PASSWORD_ENV,
    BrokerAddress,
    address_from_options,
    parse_broker_url,
    public_url,
    resolve_broker,
)

__all__ = [
    "DEFAULT_MQTTS_PORT",
    "DEFAULT_MQTT_PORT",
    "PASSWORD_ENV",
    "STABLE_SECONDS",
    "Backoff",
    "BrokerAddress",
    "Message",
    "Transport",
    "TransportStats",
    "Will",
    "address_from_options",
    "check_client_id",
    "check_qos",
    "check_topic_filter",
    "check_topic_name",
    "mqtt_publish_packet_size",
    "mqtt_remaining_length_size",
    "parse_broker_url",
    "public_url",
    "resolve_broker",
    "topic_matches",
]

MAX_REMAINING_LENGTH = 268_435_455  # 4 varint bytes of 7 bits (MQTT 3.1.1 section 2.2.3)
MAX_TOPIC_BYTES = 65_535  # u16 length prefix
# A connection that stayed up this long counts as healthy: the next outage starts the backoff
# from the beginning. Shorter-lived connections keep growing it, so a peer that accepts and then
# immediately drops us is not hammered.
STABLE_SECONDS = 2.0


# --------------------------------------------------------------------------------------------
# Packet sizes (pure)


def mqtt_remaining_length_size(remaining: int) -> int:
    """Bytes of the variable-length "remaining length" field encoding `remaining` (1 to 4)."""
    if not 0 <= remaining <= MAX_REMAINING_LENGTH:
        raise UsageError(
            f"MQTT remaining length must be 0..{MAX_REMAINING_LENGTH}, got {remaining}"
        )
    size = 1
    while remaining >= 128:
        remaining //= 128
        size += 1
    return size


def mqtt_publish_packet_size(topic: str, payload_len: int, qos: int) -> int:
    """Exact bytes of an MQTT 3.1.1 PUBLISH packet on the wire (section 3.3).

    1 byte of packet type and flags, the remaining length as a 1-4 byte varint, then the topic
    (u16 length + UTF-8 bytes), a u16 packet id when qos > 0, and the payload. This is what the
    benchmark calls "whole MQTT packets on the wire": everything but TCP/IP headers.
    """
    if qos not in (0, 1, 2):
        raise UsageError(f"MQTT QoS must be 0, 1 or 2, got {qos}")
    if payload_len < 0:
        raise UsageError(f"payload length must be >= 0, got {payload_len}")
    topic_bytes = len(topic.encode("utf-8"))
    if topic_bytes > MAX_TOPIC_BYTES:
        raise UsageError(f"MQTT topic must be at most {MAX_TOPIC_BYTES} bytes, got {topic_bytes}")
    remaining = 2 + topic_bytes + (2 if qos else 0) + payload_len
    return 1 + mqtt_remaining_length_size(remaining) + remaining


# --------------------------------------------------------------------------------------------
# Topics (pure)


def _check_topic_common(topic: object, what: str) -> str:
    if not isinstance(topic, str) or not topic:
        raise UsageError(f"MQTT {what} must be a non-empty string, got {topic!r}")
    if "\0" in topic:
        raise UsageError(f"MQTT {what} {topic!r} must not contain NUL")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise UsageError(f"MQTT {what} must be at most {MAX_TOPIC_BYTES} bytes of UTF-8")
    return topic


def check_topic_name(topic: str) -> str:
    """`topic` if it can be published to (no wildcards; MQTT 3.1.1 section 4.7), else UsageError."""
    _check_topic_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise UsageError(f"cannot publish to {topic!r}: wildcards belong in subscriptions only")
    return topic


def check_topic_filter(topic_filter: str) -> str:
    """`topic_filter` if it is a valid subscription: '+' only as a whole level, '#' only as the
    whole last level (MQTT 3.1.1 section 4.7.1). UsageError otherwise."""
    _check_topic_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise UsageError(f"bad topic filter {topic_filter!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise UsageError(f"bad topic filter {topic_filter!r}: '+' must be a whole level")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a (valid) filter matches a topic name, as the broker decides (section 4.7).

    '+' matches exactly one level (possibly empty), '#' the rest including the parent ("a/#"
    matches "a"), and a wildcard in the first level never matches a topic starting with '$'.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


def check_qos(qos: int) -> int:
    if isinstance(qos, bool) or qos not in (0, 1, 2):
        raise UsageError(f"MQTT QoS must be 0, 1 or 2, got {qos!r}")
    return qos


def check_client_id(client_id: str) -> str:
    """Any non-empty client id without NUL; brokers differ on length, mosquitto takes long ones."""
    if not isinstance(client_id, str) or not client_id or "\0" in client_id:
        raise UsageError(
            f"MQTT client id must be a non-empty string without NUL, got {client_id!r}"
        )
    if len(client_id.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise UsageError("MQTT client id must be at most 65535 bytes of UTF-8")
    return client_id


# --------------------------------------------------------------------------------------------
# The interface shared with the in-memory transport


class Message(NamedTuple):
    """One received message. `retain` is true only for a retained message delivered because of a
    (re)subscription, as MQTT 3.1.1 says (section 3.3.1.3)."""

    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class Will:
    """The last will: what the broker publishes for this client if its connection dies without a
    DISCONNECT (WIRE.md: a node's `status` topic, payload `offline`, retained)."""

    topic: str
    payload: bytes = b""
    qos: int = 1
    retain: bool = True

    def __post_init__(self) -> None:
        check_topic_name(self.topic)
        check_qos(self.qos)
        if not isinstance(self.payload, bytes):
            raise UsageError(f"will payload must be bytes, got {type(self.payload).__name__}")


@dataclass
class TransportStats:
    """Running totals of one transport (plain ints, updated on the event loop).

    bytes_*: every byte of every MQTT packet through the socket, control packets included.
    publish_bytes_*: PUBLISH packets only, sized with `mqtt_publish_packet_size` (first send
    only; a DUP re-send after a reconnect shows up in bytes_sent alone).
    """

    bytes_sent: int = 0
    bytes_received: int = 0
    publish_bytes_sent: int = 0
    publish_bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    messages_dropped_oversize: int = 0  # over the transport's incoming size bound, not queued
    connects: int = 0
    reconnects: int = 0
    connection_losses: int = 0


class Transport(Protocol):
    """What the coordinator and the simulated nodes need from a broker connection.

    Implemented by `MqttTransport` (a real broker) and `memory.MemoryTransport` (tests); the
    integration tests run one behavioural suite against both.
    """

    @property
    def stats(self) -> TransportStats: ...

    @property
    def connected(self) -> bool: ...

    async def connect(
        self,
        url: str | BrokerAddress | None = None,
        *,
        host: str | None = None,
        port: int = DEFAULT_MQTT_PORT,
        client_id: str,
        will: Will | None = None,
        timeout: float | None = None,
    ) -> None: ...

    async def wait_connected(self, timeout: float | None = None) -> None: ...

    async def subscribe(
        self, topic: str, qos: int = 1, *, timeout: float | None = None
    ) -> None: ...

    async def unsubscribe(self, topic: str, *, timeout: float | None = None) -> None: ...

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None: ...

    async def receive(self, timeout: float | None = None) -> Message: ...

    def messages(self) -> AsyncIterator[Message]: ...

    async def close(self) -> None: ...

    async def abort(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Backoff


@dataclass
class Backoff:
    """Capped exponential delays with a little jitter.

    Jitter only shortens a delay (to 75-100 %), so a fleet of bridges that lost the same broker does
    not reconnect in lockstep, and `cap` stays a true upper bound.
    """

    initial: float = 0.25
    cap: float = 10.0
    factor: float = 2.0
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise UsageError(f"backoff needs 0 < initial <= cap, got {self.initial}, {self.cap}")
        self._next = self.initial

    def next_delay(self) -> float:
        """The delay before the next attempt; each call grows the following one."""
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        return delay * random.uniform(0.75, 1.0)

    def reset(self) -> None:
        self._next = self.initial

