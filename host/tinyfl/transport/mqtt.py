"""An asyncio MQTT 3.1.1 client: paho-mqtt 2.x driven by the event loop, QoS 1, self-healing.

paho does the protocol; asyncio does the waiting. paho's socket hooks register its socket with
the running loop (`on_socket_open` -> `loop.add_reader(sock, client.loop_read)`,
`on_socket_register_write` -> `loop.add_writer(sock, client.loop_write)`, and their inverses),
and a small task calls `client.loop_misc()` every second for keep-alive. No `loop_start()`
thread: every paho call happens on the event loop's thread, so there are no locks to get wrong
and a coordinator can run hundreds of transports in one process (docs/ARCHITECTURE.md, section 5).

One paho method is replaced: `_create_socket_connection`. paho's own connect blocks (in the TCP
connect and in the TLS handshake), which would freeze the event loop while a broker is slow or
unreachable; here asyncio opens the connection (`sockets.open_socket`) and paho receives the
connected socket; everything after that is stock paho. The session life cycle (connect retry,
reconnect, the message queue, close) is `session.Session`, shared with MemoryTransport.

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
  broker and the last error. A broker that answers CONNACK with a refusal (bad user name or
  password, not authorized) or whose TLS certificate does not verify fails at once: retrying
  cannot change either.
* **Credentials and TLS** come with the broker address: `mqtt://USER@HOST` plus a password
  (from a file or TINYFL_MQTT_PASSWORD in the commands, see `address`), `mqtts://` for TLS with
  the certificate and host name verified against the system CAs or `ca_file`. The password is
  sent in CONNECT only; it is never logged (docs/BROKER.md).
* **Last will**: `close()` sends DISCONNECT, so the broker discards the will; `abort()` drops the
  TCP connection like a crash would, so the broker publishes it.
* **Incoming size bound.** A PUBLISH whose payload is larger than `max_incoming` bytes
  (default `MAX_INCOMING_PAYLOAD`, 1 MiB) is dropped before it reaches the queue, counted in
  `stats.messages_dropped_oversize` and logged: a stranger on an open broker could otherwise
  make every subscriber hold copies of 256 MB payloads. paho still reads the whole packet
  (MQTT 3.1.1 has no way to refuse one), so the first defence is the broker's
  `message_size_limit`; this bound keeps what a transport keeps.
* **Byte counters** (`stats`) count every byte of every MQTT packet on the socket (fixed header,
  topic, packet id, payload, and control packets such as CONNECT, SUBACK, PUBACK, PINGREQ), plus
  PUBLISH-only totals computed with `mqtt_publish_packet_size`, for per-message accounting
  (with TLS: the MQTT bytes inside it, not the TLS records).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from tinyfl.errors import TransportError, UsageError
from tinyfl.transport.address import tls_context
from tinyfl.transport.base import (
    STABLE_SECONDS,
    BrokerAddress,
    Message,
    Transport,
    TransportStats,
    Will,
    check_qos,
    check_topic_filter,
    check_topic_name,
    mqtt_publish_packet_size,
    mqtt_remaining_length_size,
    resolve_broker,
    topic_matches,
)
from tinyfl.transport.session import ConnectionLost, PermanentFailure, Session
from tinyfl.transport.sockets import open_socket

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

# Message, Transport, TransportStats, Will, STABLE_SECONDS and the topic and packet-size functions
# live in `base` now; they stay importable from here for existing callers.
__all__ = [
    "MAX_INCOMING_PAYLOAD",
    "STABLE_SECONDS",
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

MISC_INTERVAL = 1.0  # seconds between loop_misc() calls; paho asks for at least once a second
CLOSE_TIMEOUT = 2.0  # how long close() waits for the DISCONNECT to be written
# The largest payload a transport accepts by default. Legitimate frames are far smaller: a
# float32 GLOBAL or UPDATE of a head a microcontroller trains (say 64 features x 10 classes)
# is under 3 KB, so 1 MiB leaves hundreds of times the room. Larger heads pass `max_incoming`.
MAX_INCOMING_PAYLOAD = 1 << 20
# CONNACK refusals that mean "these credentials are not welcome": MQTT 3.1.1 return codes 4 and
# 5 (section 3.2.2.3), which paho reports as the MQTT 5 reason codes 0x86 and 0x87.
_AUTH_CODES = (4, 5, 0x86, 0x87)


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


class MqttTransport(Session):
    """A broker connection on the running asyncio loop (see the module docstring for semantics).

        transport = MqttTransport()
        await transport.connect("mqtts://coordinator@broker.lan", client_id="coordinator")
        await transport.subscribe("tinyfl/demo/nodes/+/update")
        await transport.publish("tinyfl/demo/global", frame, retain=True)
        async for message in transport.messages():
            ...
        await transport.close()

    `connect()` also takes a `BrokerAddress` (with a password and a CA file, as
    `address_from_options` builds it). One transport serves one connect(); after close(),
    abort() or a failed connect() make a new one. All methods must be called from the loop that
    ran connect().
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
        max_incoming: int = MAX_INCOMING_PAYLOAD,
    ) -> None:
        super().__init__(
            connect_timeout=connect_timeout,
            publish_timeout=publish_timeout,
            attempt_timeout=attempt_timeout,
            backoff_initial=backoff_initial,
            backoff_cap=backoff_cap,
        )
        if not 1 <= keepalive <= 65535:
            raise UsageError(f"keepalive must be 1..65535 seconds, got {keepalive}")
        self.keepalive = keepalive
        if max_incoming < 1:
            raise UsageError(f"max_incoming must be >= 1 byte, got {max_incoming}")
        self.max_incoming = max_incoming
        self._address: BrokerAddress | None = None
        self._tls: ssl.SSLContext | None = None
        self._client: _PahoClient | None = None
        self._socket_gone = asyncio.Event()
        self._socket_gone.set()
        self._session_up = False  # CONNACK accepted on the current socket
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._pubacks: dict[int, asyncio.Future[None]] = {}
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._unsubacks: dict[int, asyncio.Future[None]] = {}
        self._misc_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self._address.url if self._address else ""

    # -- the session hooks ---------------------------------------------------------------------

    def _prepare(
        self, url: str | BrokerAddress | None, host: str | None, port: int, client_id: str,
        will: Will | None,
    ) -> None:
        address = resolve_broker(url, host, port)
        self._tls = tls_context(address) if address.tls else None
        self._address = address
        self._client = self._make_client(address, client_id, will)

    def _make_client(self, address: BrokerAddress, client_id: str, will: Will | None) -> _PahoClient:
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
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        # TLS is not paho's business here (no tls_set): open_socket hands it a TLS socket.
        client.connect_async(address.host, address.port, keepalive=self.keepalive)
        return client

    async def _attempt(self, timeout: float) -> None:
        """One connect + CONNECT/CONNACK within `timeout`; raises PermanentFailure, OSError or
        TimeoutError and leaves no socket behind on failure."""
        loop, client, address = self._require()
        deadline = loop.time() + max(timeout, 0.0)
        sock = await asyncio.wait_for(
            open_socket(address.host, address.port, self._stats, self._tls), max(timeout, 0.0)
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
            raise PermanentFailure(f"refused the connection: {code}{self._refusal_hint(code)}")
        self._stats.connects += 1

    def _refusal_hint(self, code: ReasonCode) -> str:
        if code.value not in _AUTH_CODES or self._address is None:
            return ""
        if self._address.username is None:
            return ("; the broker wants a user name and password (--username, and the password "
                    "from --password-file or TINYFL_MQTT_PASSWORD)")
        return f"; check the user name {self._address.username!r} and its password"

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

    async def _teardown(self, *, clean: bool) -> None:
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

    def _drop_connection(self) -> None:
        self._kill_socket()

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
        client = self._require()[1]
        try:
            client.loop_read()
            # TLS may hold whole decrypted packets that the socket no longer signals as
            # readable: drain them now, as paho's own loop does (it checks pending()).
            sock = client.socket()
            while isinstance(sock, ssl.SSLSocket) and sock.pending() and client.socket() is sock:
                client.loop_read()
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
        self._session_up = False
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(
                ConnectionError(f"connection closed before CONNACK ({reason})")
            )
        for pending in (self._subacks, self._unsubacks):
            for future in pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost())
            pending.clear()
        self._connection_lost(reason)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            log.warning("dropped a message with a topic that is not UTF-8")
            return
        if len(msg.payload) > self.max_incoming:
            self._drop_oversize(topic, len(msg.payload))
            return
        payload = bytes(msg.payload)
        self._stats.messages_received += 1
        self._stats.publish_bytes_received += mqtt_publish_packet_size(topic, len(payload), msg.qos)
        self._enqueue(Message(topic, payload, bool(msg.retain)))

    def _drop_oversize(self, topic: str, size: int) -> None:
        """One line per message: each costs its sender more than `max_incoming` bytes, so the
        log grows far slower than the traffic that causes it."""
        self._stats.messages_dropped_oversize += 1
        log.warning(
            "dropped a %d-byte message on %s: over the %d-byte limit (%d dropped so far)",
            size, topic, self.max_incoming, self._stats.messages_dropped_oversize,
        )

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
        except ConnectionLost:
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
            raise ConnectionLost()
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
        except ConnectionLost:
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

    # -- helpers -----------------------------------------------------------------------------

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

