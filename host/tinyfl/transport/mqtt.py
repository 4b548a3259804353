"""An asyncio MQTT 3.1.1 client: paho-mqtt 2.x driven by the event loop, QoS 1, self-healing.

paho does the protocol; asyncio does the waiting. paho's socket hooks register its socket with
the running loop (`on_socket_open` -> `loop.add_reader(sock, client.loop_read)`,
`on_socket_register_write` -> `loop.add_writer(sock, client.loop_write)`, and their inverses),
and a small task calls `client.loop_misc()` every second for keep-alive. No `loop_start()`
thread: every paho call happens on the event loop's thread, so there are no locks to get wrong
and a coordinator can run hundreds of transports in one process (docs/ARCHITECTURE.md, section 5).

One paho method is replaced: `_create_socket_connection`. paho's own connect blocks in
`socket.create_connection` for up to its timeout, which would freeze the event loop (and every
round deadline with it) while a broker is unreachable. Here asyncio opens the TCP connection
without blocking and paho receives the connected socket; everything after that is stock paho.

Behaviour worth knowing:

* **QoS 1, at least once.** `publish(qos=1)` returns when the broker's PUBACK arrives. If the
  connection drops first, paho re-sends the message (DUP) after the reconnect and the same call
  still completes on its PUBACK; a message may therefore arrive twice, never zero times while the
  transport lives. Consumers deduplicate (the coordinator keys updates by node and round).
* **Publishing while disconnected waits** for the reconnection, up to `publish_timeout` (or the
  call's `timeout`), then raises TransportError. Nothing is silently dropped or queued forever.
* **Reconnect** runs on its own after any connection loss: capped exponential backoff with jitter
  (`backoff_initial` .. `backoff_cap` seconds), a new clean session, then every subscription is
  sent again in one SUBSCRIBE and only when the broker acknowledged it does the transport count
  as connected again. The broker re-sends retained messages on that SUBSCRIBE: treat retained
  topics (hello, status, global) as state, not as events.
* **First connect** is bounded: `connect()` retries refused or timed-out attempts with backoff
  for at most `connect_timeout` seconds (or its `timeout`), then raises TransportError naming the
  broker and the last error. A broker that answers CONNACK with a refusal fails at once.
* **Last will**: `close()` sends DISCONNECT, so the broker discards the will; `abort()` drops the
  TCP connection like a crash would, so the broker publishes it.
* **Byte counters** (`stats`) count every byte of every MQTT packet on the socket (fixed header,
  topic, packet id, payload, and control packets such as CONNECT, SUBACK, PUBACK, PINGREQ), plus
  PUBLISH-only totals computed with `mqtt_publish_packet_size`, for per-message accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from tinyfl.errors import TransportError, UsageError
from tinyfl.transport.serial_bridge import (
    DEFAULT_MQTT_PORT,
    Backoff,
    BrokerAddress,
    parse_broker_url,
)

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

__all__ = [
    "Message",
    "MqttTransport",
    "Transport",
    "TransportStats",
    "Will",
    "check_topic_filter",
    "check_topic_name",
    "mqtt_publish_packet_size",
    "mqtt_remaining_length_size",
    "resolve_broker",
    "topic_matches",
]

log = logging.getLogger(__name__)

MAX_REMAINING_LENGTH = 268_435_455  # 4 varint bytes of 7 bits (MQTT 3.1.1 section 2.2.3)
MAX_TOPIC_BYTES = 65_535  # u16 length prefix
MISC_INTERVAL = 1.0  # seconds between loop_misc() calls; paho asks for at least once a second
CLOSE_TIMEOUT = 2.0  # how long close() waits for the DISCONNECT to be written
# A connection that stayed up this long was healthy: the next outage starts the backoff afresh.
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


def resolve_broker(
    url: str | BrokerAddress | None, host: str | None, port: int = DEFAULT_MQTT_PORT
) -> BrokerAddress:
    """The broker from either a URL (`mqtt://HOST:PORT` or a BrokerAddress) or host and port."""
    if url is not None and host is not None:
        raise UsageError("give the broker as a URL or as host/port, not both")
    if isinstance(url, BrokerAddress):
        return url
    if url is not None:
        return parse_broker_url(url)
    if not host:
        raise UsageError("no broker given: pass a URL such as mqtt://127.0.0.1:1883 or host=...")
    if not 1 <= port <= 65535:
        raise UsageError(f"broker port must be 1-65535, got {port}")
    return BrokerAddress(host, port)


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
# paho, fed by asyncio


class _CountingSocket(socket.socket):
    """A socket that adds what it sends and receives to a TransportStats; paho only ever calls
    recv() and send() on it, so these two see every MQTT byte."""

    stats: TransportStats

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        data = super().recv(bufsize, flags)
        self.stats.bytes_received += len(data)
        return data

    def send(self, data: Any, flags: int = 0, /) -> int:
        sent = super().send(data, flags)
        self.stats.bytes_sent += sent
        return sent


if not hasattr(paho.Client, "_create_socket_connection"):  # pragma: no cover
    raise ImportError(
        "this paho-mqtt has no Client._create_socket_connection, which MqttTransport replaces "
        "to connect without blocking the event loop; install paho-mqtt>=2.0,<3"
    )


class _PahoClient(paho.Client):
    """paho's Client, handed a socket that asyncio already connected (see the module docstring)."""

    prepared_socket: socket.socket | None = None

    def _create_socket_connection(self) -> socket.socket:
        sock, self.prepared_socket = self.prepared_socket, None
        if sock is None:  # paho tried to connect on its own; reconnect_on_failure=False forbids it
            raise ConnectionError("MqttTransport supplies the socket; paho may not open one")
        return sock


class _Refused(Exception):
    """The broker answered CONNACK with a refusal: retrying will not help."""


class _ConnectionLost(Exception):
    """The connection went down while waiting for an acknowledgement."""


async def _open_socket(host: str, port: int, stats: TransportStats) -> socket.socket:
    """A connected, non-blocking TCP socket to the broker; OSError with the last failure."""
    loop = asyncio.get_running_loop()
    try:  # an IP literal needs no resolver thread
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = _CountingSocket(family, kind, proto)
        sock.stats = stats
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            # MQTT packets are small and answered: Nagle's algorithm would only add latency.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last or OSError(f"no address found for {host}")


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and not isinstance(exc, socket.gaierror) and exc.errno:
        return os.strerror(exc.errno)  # "Connection refused", not asyncio's "Connect call failed"
    return str(exc) or type(exc).__name__


class MqttTransport:
    """A broker connection on the running asyncio loop (see the module docstring for semantics).

        transport = MqttTransport()
        await transport.connect("mqtt://127.0.0.1:1883", client_id="coordinator")
        await transport.subscribe("tinyfl/demo/nodes/+/update")
        await transport.publish("tinyfl/demo/global", frame, retain=True)
        async for message in transport.messages():
            ...
        await transport.close()

    One transport serves one connect(); after close(), abort() or a failed connect() make a new
    one. All methods must be called from the loop that ran connect().
    """

    def __init__(
        self,
        *,
        keepalive: int = 30,
        connect_timeout: float = 10.0,
        attempt_timeout: float = 5.0,
        publish_timeout: float = 30.0,
        backoff_initial: float = 0.25,
        backoff_cap: float = 10.0,
    ) -> None:
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("attempt_timeout", attempt_timeout),
            ("publish_timeout", publish_timeout),
        ):
            if not value > 0:
                raise UsageError(f"{name} must be > 0, got {value}")
        if not 1 <= keepalive <= 65535:
            raise UsageError(f"keepalive must be 1..65535 seconds, got {keepalive}")
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.attempt_timeout = attempt_timeout
        self.publish_timeout = publish_timeout
        self._backoff = Backoff(initial=backoff_initial, cap=backoff_cap)
        self._stats = TransportStats()
        self._address: BrokerAddress | None = None
        self._client: _PahoClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: dict[str, int] = {}
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._ready = asyncio.Event()  # connected and every subscription acknowledged
        self._closed = asyncio.Event()  # close() or abort() began
        self._socket_gone = asyncio.Event()
        self._socket_gone.set()
        self._session_up = False  # CONNACK accepted on the current socket
        self._established = False  # the first connect() succeeded: losses trigger reconnects
        self._up_since = 0.0
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._pubacks: dict[int, asyncio.Future[None]] = {}
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._unsubacks: dict[int, asyncio.Future[None]] = {}
        self._misc_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        where = self._address.url if self._address else "unconnected"
        state = "closed" if self._closed.is_set() else "up" if self.connected else "down"
        return f"<MqttTransport {where} {state}>"

    @property
    def stats(self) -> TransportStats:
        return self._stats

    @property
    def connected(self) -> bool:
        """Connected with every subscription in place (False while reconnecting)."""
        return self._ready.is_set()

    @property
    def url(self) -> str:
        return self._address.url if self._address else ""

    # -- connecting ----------------------------------------------------------------------------

    async def connect(
        self,
        url: str | BrokerAddress | None = None,
        *,
        host: str | None = None,
        port: int = DEFAULT_MQTT_PORT,
        client_id: str,
        will: Will | None = None,
        timeout: float | None = None,
    ) -> None:
        """Connect with a clean session; TransportError if that fails for `timeout` seconds
        (default `connect_timeout`) or the broker refuses, UsageError for bad arguments."""
        if self._client is not None:
            raise UsageError("connect() runs once per MqttTransport; make a new one")
        address = resolve_broker(url, host, port)
        check_client_id(client_id)
        budget = self.connect_timeout if timeout is None else timeout
        if not budget > 0:
            raise UsageError(f"connect timeout must be > 0, got {budget}")
        self._loop = loop = asyncio.get_running_loop()
        self._address = address
        self._client = self._make_client(client_id, will)
        deadline = loop.time() + budget
        attempts = 0
        last: BaseException | None = None
        while True:
            attempts += 1
            try:
                await self._attempt(min(self.attempt_timeout, deadline - loop.time()))
                break
            except _Refused as exc:
                await self._shutdown(clean=False)
                raise TransportError(f"MQTT broker {address.url} refused the connection: {exc}")
            except (OSError, asyncio.TimeoutError) as exc:
                # A refusal says more than the timeout of a last attempt cut short by the budget.
                if not (isinstance(exc, asyncio.TimeoutError) and last is not None):
                    last = exc
            except BaseException:
                await self._shutdown(clean=False)
                raise
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self._shutdown(clean=False)
                raise TransportError(
                    f"could not connect to the MQTT broker at {address.url} within {budget:g} s "
                    f"({attempts} attempt{'s' if attempts > 1 else ''}); "
                    f"last error: {_describe(last)}"
                )
            await asyncio.sleep(min(self._backoff.next_delay(), remaining))
        self._established = True
        self._mark_ready()
        log.debug("connected to %s as %s", address.url, client_id)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (again) with all subscriptions restored; TransportError after
        `timeout` seconds (default `publish_timeout`) or once closed."""
        await self._wait_ready(self._deadline(timeout), "wait_connected")

    def _make_client(self, client_id: str, will: Will | None) -> _PahoClient:
        client = _PahoClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,  # reconnecting is ours, with backoff and resubscribe
        )
        client.suppress_exceptions = True  # a bug in a callback must not kill the reader
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        assert self._address is not None
        client.connect_async(self._address.host, self._address.port, keepalive=self.keepalive)
        return client

    async def _attempt(self, timeout: float) -> None:
        """One TCP connect + CONNECT/CONNACK within `timeout`; raises _Refused, OSError or
        TimeoutError and leaves no socket behind on failure."""
        loop, client, address = self._require()
        deadline = loop.time() + max(timeout, 0.0)
        sock = await asyncio.wait_for(
            _open_socket(address.host, address.port, self._stats), max(timeout, 0.0)
        )
        self._connack = connack = loop.create_future()
        client.prepared_socket = sock
        try:
            client.reconnect()  # registers the socket with the loop, queues CONNECT
            code = await asyncio.wait_for(connack, max(deadline - loop.time(), 0.0))
        except BaseException:
            if client.prepared_socket is sock:  # paho never took it
                client.prepared_socket = None
                sock.close()
            self._kill_socket()
            raise
        finally:
            self._connack = None
        if code.is_failure:
            self._kill_socket()
            raise _Refused(str(code))
        self._stats.connects += 1

    def _mark_ready(self) -> None:
        self._up_since = self._require()[0].time()
        self._ready.set()

    async def _reconnect(self) -> None:
        """Runs after a connection loss until connected and resubscribed again, or closed."""
        address = self._require()[2]
        while not self._closed.is_set():
            await asyncio.sleep(self._backoff.next_delay())
            try:
                await self._attempt(self.attempt_timeout)
            except _Refused as exc:
                log.warning("MQTT broker %s refused the reconnection: %s", address.url, exc)
                continue
            except (OSError, asyncio.TimeoutError) as exc:
                log.debug("reconnect to %s failed: %s", address.url, _describe(exc))
                continue
            try:
                await self._resubscribe()
            except _ConnectionLost:
                continue
            except asyncio.TimeoutError:
                log.warning("no SUBACK from %s after reconnecting; trying again", address.url)
                self._kill_socket()
                continue
            self._stats.reconnects += 1
            self._mark_ready()
            log.info("reconnected to %s", address.url)
            return

    async def _resubscribe(self) -> None:
        """Clean session: the broker forgot our subscriptions; send them all in one SUBSCRIBE."""
        if not self._subscriptions:
            return
        topics = list(self._subscriptions.items())
        codes = await self._send_subscribe(topics, self.attempt_timeout)
        for (topic, _), code in zip(topics, codes):
            if code.is_failure:
                log.error(
                    "broker %s refused the subscription to %r again: %s", self.url, topic, code
                )

    # -- paho's socket hooks and callbacks (all on the loop thread) ---------------------------

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: SocketLike) -> None:
        loop = self._require()[0]
        loop.add_reader(sock, self._on_readable)
        self._socket_gone.clear()
        self._misc_task = loop.create_task(self._misc_loop())

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: SocketLike) -> None:
        loop = self._require()[0]
        loop.remove_reader(sock)
        loop.remove_writer(sock)
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
        self._socket_gone.set()

    def _on_socket_register_write(
        self, client: paho.Client, userdata: Any, sock: SocketLike
    ) -> None:
        self._require()[0].add_writer(sock, self._on_writable)

    def _on_socket_unregister_write(
        self, client: paho.Client, userdata: Any, sock: SocketLike
    ) -> None:
        self._require()[0].remove_writer(sock)

    def _on_readable(self) -> None:
        try:
            self._require()[1].loop_read()
        except Exception:  # paho handles socket errors itself; anything else is a bug
            log.exception("MQTT read failed; dropping the connection")
            self._kill_socket()

    def _on_writable(self) -> None:
        try:
            self._require()[1].loop_write()
        except Exception:
            log.exception("MQTT write failed; dropping the connection")
            self._kill_socket()

    async def _misc_loop(self) -> None:
        """Keep-alive: paho sends PINGREQ when idle, drops a connection whose PINGRESP is late."""
        client = self._require()[1]
        # A quarter of the keep-alive at most, so a PINGREQ leaves well before the broker's
        # 1.5 x keep-alive limit even for keep-alives of a second or two.
        interval = min(MISC_INTERVAL, self.keepalive / 4)
        while True:
            await asyncio.sleep(interval)
            client.loop_misc()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        self._session_up = not reason.is_failure
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        loop = self._require()[0]
        was_ready = self._ready.is_set()
        self._ready.clear()
        self._session_up = False
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(
                ConnectionError(f"connection closed before CONNACK ({reason})")
            )
        for pending in (self._subacks, self._unsubacks):
            for future in pending.values():
                if not future.done():
                    future.set_exception(_ConnectionLost())
            pending.clear()
        if self._closed.is_set() or not self._established:
            return
        if was_ready:
            self._stats.connection_losses += 1
            if loop.time() - self._up_since >= STABLE_SECONDS:
                self._backoff.reset()
            log.warning("lost the connection to %s (%s); reconnecting", self.url, reason)
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = loop.create_task(self._reconnect())

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            log.warning("dropped a message with a topic that is not UTF-8")
            return
        payload = bytes(msg.payload)
        self._stats.messages_received += 1
        self._stats.publish_bytes_received += mqtt_publish_packet_size(topic, len(payload), msg.qos)
        self._queue.put_nowait(Message(topic, payload, bool(msg.retain)))

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        future = self._pubacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Any,
    ) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(list(reasons))

    def _on_unsubscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Any,
    ) -> None:
        future = self._unsubacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    # -- public operations -------------------------------------------------------------------

    async def subscribe(self, topic: str, qos: int = 1, *, timeout: float | None = None) -> None:
        """Subscribe and wait for the SUBACK, so nothing published afterwards is missed. The
        subscription is restored after every reconnect. TransportError if the broker refuses
        it or no SUBACK arrives within `timeout` (default `publish_timeout`)."""
        check_topic_filter(topic)
        check_qos(qos)
        deadline = self._deadline(timeout)
        await self._wait_ready(deadline, f"subscribe to {topic!r}")
        self._subscriptions[topic] = qos
        try:
            codes = await self._send_subscribe([(topic, qos)], self._remaining(deadline))
        except _ConnectionLost:
            # The reconnect resubscribes every recorded topic before it reports ready.
            await self._wait_ready(deadline, f"subscribe to {topic!r}")
            return
        except asyncio.TimeoutError:
            self._subscriptions.pop(topic, None)
            raise TransportError(f"no SUBACK from {self.url} for {topic!r} in time") from None
        if codes[0].is_failure:
            self._subscriptions.pop(topic, None)
            raise TransportError(f"broker {self.url} refused the subscription to {topic!r}")

    async def _send_subscribe(
        self, topics: list[tuple[str, int]], timeout: float
    ) -> list[ReasonCode]:
        loop, client, _ = self._require()
        result, mid = client.subscribe(topics)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _ConnectionLost()
        future: asyncio.Future[list[ReasonCode]] = loop.create_future()
        self._subacks[mid] = future
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._subacks.pop(mid, None)

    async def unsubscribe(self, topic: str, *, timeout: float | None = None) -> None:
        """Stop receiving `topic` (not restored after reconnects); waits for the UNSUBACK while
        connected. Unknown topics are ignored."""
        check_topic_filter(topic)
        self._check_open()
        if self._subscriptions.pop(topic, None) is None or not self._ready.is_set():
            return  # while disconnected there is nothing to tell: the new session starts empty
        loop, client, _ = self._require()
        result, mid = client.unsubscribe(topic)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return
        future: asyncio.Future[None] = loop.create_future()
        self._unsubacks[mid] = future
        try:
            await asyncio.wait_for(future, self._remaining(self._deadline(timeout)))
        except _ConnectionLost:
            return
        except asyncio.TimeoutError:
            raise TransportError(f"no UNSUBACK from {self.url} for {topic!r} in time") from None
        finally:
            self._unsubacks.pop(mid, None)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish; with qos >= 1 return once the broker acknowledged it (at least once).

        Waits for a reconnection if the broker is away. TransportError when `timeout` seconds
        (default `publish_timeout`) pass without connection or acknowledgement, or on close.
        """
        check_topic_name(topic)
        check_qos(qos)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise UsageError(f"payload must be bytes, got {type(payload).__name__}")
        data = bytes(payload)
        size = mqtt_publish_packet_size(topic, len(data), qos)  # UsageError if too large
        deadline = self._deadline(timeout)
        await self._wait_ready(deadline, f"publish to {topic!r}")
        loop, client, _ = self._require()
        info = client.publish(topic, data, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise TransportError(f"publish to {topic!r} failed: {paho.error_string(info.rc)}")
        self._stats.messages_sent += 1
        self._stats.publish_bytes_sent += size
        if qos == 0:
            return
        future: asyncio.Future[None] = loop.create_future()
        self._pubacks[info.mid] = future
        try:
            await asyncio.wait_for(future, self._remaining(deadline))
        except asyncio.TimeoutError:
            raise TransportError(
                f"no PUBACK from {self.url} for {topic!r} in time; the message may still arrive "
                "(it is re-sent after a reconnect)"
            ) from None
        finally:
            self._pubacks.pop(info.mid, None)

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message (in arrival order). TimeoutError after `timeout` seconds (None =
        wait forever); TransportError once the transport is closed and the queue is empty."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            self._queue.put_nowait(None)  # wake every other reader too
            raise TransportError("transport is closed")
        return item

    async def messages(self) -> AsyncIterator[Message]:
        """Every received message in order, until the transport is closed."""
        while True:
            try:
                yield await self.receive()
            except TransportError:
                return

    async def close(self) -> None:
        """Disconnect cleanly (the broker discards the will) and stop reconnecting. Pending
        operations fail with TransportError; messages already received stay readable."""
        await self._shutdown(clean=True)

    async def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a crash or power cut would, so the broker
        publishes the last will. Otherwise like close()."""
        await self._shutdown(clean=False)

    # -- helpers -----------------------------------------------------------------------------

    async def _shutdown(self, *, clean: bool) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._ready.clear()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        client = self._client
        if client is not None and client.socket() is not None:
            if clean and self._session_up:
                client.disconnect()  # written by loop_write; paho then closes the socket
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._socket_gone.wait(), CLOSE_TIMEOUT)
            self._kill_socket()
        closed = TransportError("transport is closed")
        for pending in (self._pubacks, self._subacks, self._unsubacks):
            for future in pending.values():
                if not future.done():
                    future.set_exception(closed)
            pending.clear()
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
        self._queue.put_nowait(None)

    def _kill_socket(self) -> None:
        """Close the current socket abruptly and let paho notice at once (it reads the EOF,
        closes, unregisters and reports the disconnect, all synchronously)."""
        client = self._client
        sock = client.socket() if client is not None else None
        if client is None or sock is None:
            return
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _ in range(64):  # bytes still buffered are read first; EOF follows
            if client.socket() is None:
                return
            client.loop_read()
        log.warning("paho did not close its socket after shutdown; the reader will")

    def _require(self) -> tuple[asyncio.AbstractEventLoop, _PahoClient, BrokerAddress]:
        if self._loop is None or self._client is None or self._address is None:
            raise UsageError("MqttTransport is not connected; call connect() first")
        return self._loop, self._client, self._address

    def _check_open(self) -> None:
        self._require()
        if self._closed.is_set():
            raise TransportError("transport is closed")

    def _deadline(self, timeout: float | None) -> float:
        loop = self._require()[0]
        return loop.time() + (self.publish_timeout if timeout is None else timeout)

    def _remaining(self, deadline: float) -> float:
        return max(deadline - self._require()[0].time(), 0.0)

    async def _wait_ready(self, deadline: float, what: str) -> None:
        self._check_open()
        if self._ready.is_set():
            return
        ready = asyncio.ensure_future(self._ready.wait())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait(
                {ready, closed},
                timeout=self._remaining(deadline),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
            closed.cancel()
        self._check_open()
        if not self._ready.is_set():
            raise TransportError(f"{what}: no connection to {self.url} (reconnecting) in time")
