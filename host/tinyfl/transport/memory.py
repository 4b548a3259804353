"""An MQTT broker and transport inside one process, for fast coordinator tests.

`MemoryTransport` has the interface and the behaviour of `MqttTransport` (the `Transport`
protocol), and the integration tests run one behavioural suite against both, so what passes
here passes against mosquitto. What it models, as mosquitto 2 does with `persistence false`:

* topic filters with `+` and `#` (and `$`-topics hidden from leading wildcards);
* retained messages: stored per topic, replaced by the next, deleted by an empty payload, sent
  (with retain set) on every matching SUBSCRIBE, forgotten when the broker restarts;
* last will: published on `abort()` and on a session takeover, discarded on `close()`; not
  published when the broker itself stops (nobody is left to publish it);
* QoS: a subscriber receives min(publish QoS, best matching subscription QoS); one copy per
  message however many of a client's filters match; a client receives its own publishes;
* outages: `MemoryBroker.stop()` / `start()` / `restart()` drop every client, which reconnect
  with the same capped exponential backoff and resubscribe, exactly like MqttTransport.

What it does not model: the network. Delivery is immediate and in order, nothing is lost or
duplicated, and `stats` counts only PUBLISH packets (sized as on the wire), not CONNECT, SUBACK,
PUBACK or PINGREQ. Everything runs on the event loop that called connect(); not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tinyfl.errors import TransportError, UsageError
from tinyfl.transport.mqtt import (
    STABLE_SECONDS,
    Message,
    TransportStats,
    Will,
    check_client_id,
    check_qos,
    check_topic_filter,
    check_topic_name,
    mqtt_publish_packet_size,
    topic_matches,
)
from tinyfl.transport.serial_bridge import DEFAULT_MQTT_PORT, Backoff, BrokerAddress

__all__ = ["MemoryBroker", "MemoryTransport"]


class MemoryBroker:
    """The shared state of an in-memory fleet: sessions by client id and retained messages."""

    def __init__(self, name: str = "broker") -> None:
        self.url = f"memory://{name}"
        self._running = True
        self._sessions: dict[str, MemoryTransport] = {}
        self._retained: dict[str, tuple[bytes, int]] = {}

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<MemoryBroker {self.url} {state}, {len(self._sessions)} clients>"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def clients(self) -> list[str]:
        """Client ids connected right now."""
        return list(self._sessions)

    @property
    def retained(self) -> dict[str, bytes]:
        """A snapshot of the retained messages, topic -> payload."""
        return {topic: payload for topic, (payload, _) in self._retained.items()}

    def stop(self) -> None:
        """Like killing mosquitto (no persistence): every client loses its connection, no will is
        published, retained messages are gone, and connecting fails until start()."""
        self._running = False
        sessions = list(self._sessions.values())
        self._sessions.clear()
        self._retained.clear()
        for session in sessions:
            session._lost()

    def start(self) -> None:
        self._running = True

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- called by MemoryTransport -------------------------------------------------------------

    def _attach(self, session: MemoryTransport, client_id: str) -> None:
        if not self._running:
            raise ConnectionRefusedError(f"{self.url} is stopped")
        previous = self._sessions.get(client_id)
        if previous is not None:  # takeover, as mosquitto does: drop the old one, publish its will
            self._detach(previous, client_id, publish_will=True)
            previous._lost()
        self._sessions[client_id] = session

    def _detach(self, session: MemoryTransport, client_id: str, *, publish_will: bool) -> None:
        if self._sessions.get(client_id) is not session:
            return
        del self._sessions[client_id]
        will = session.will
        if publish_will and will is not None:
            self._route(will.topic, will.payload, will.qos, will.retain)

    def _subscribe(self, session: MemoryTransport, topic_filter: str, qos: int) -> None:
        for topic, (payload, stored_qos) in list(self._retained.items()):
            if topic_matches(topic_filter, topic):
                session._deliver(topic, payload, min(qos, stored_qos), retain=True)

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self._retained[topic] = (payload, qos)
            else:
                self._retained.pop(topic, None)
        for session in list(self._sessions.values()):
            granted = session._granted_qos(topic)
            if granted is not None:
                session._deliver(topic, payload, min(qos, granted), retain=False)


class MemoryTransport:
    """`Transport` on a MemoryBroker; see the module docstring for what it models.

    Constructor arguments mean what they mean for MqttTransport.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        *,
        connect_timeout: float = 10.0,
        publish_timeout: float = 30.0,
        backoff_initial: float = 0.25,
        backoff_cap: float = 10.0,
    ) -> None:
        if not connect_timeout > 0 or not publish_timeout > 0:
            raise UsageError("connect_timeout and publish_timeout must be > 0")
        self.broker = broker
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.client_id = ""
        self.will: Will | None = None
        self._backoff = Backoff(initial=backoff_initial, cap=backoff_cap)
        self._stats = TransportStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: dict[str, int] = {}
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._established = False
        self._up_since = 0.0
        self._supervisor: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "up" if self.connected else "down"
        return f"<MemoryTransport {self.client_id or 'unconnected'}@{self.broker.url} {state}>"

    @property
    def stats(self) -> TransportStats:
        return self._stats

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def url(self) -> str:
        return self.broker.url

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
        """Connect to the broker given to the constructor; `url`, if given, must be its url."""
        if self._loop is not None:
            raise UsageError("connect() runs once per MemoryTransport; make a new one")
        if host is not None or (url is not None and url != self.broker.url):
            raise UsageError(f"a MemoryTransport connects only to its broker, {self.broker.url}")
        check_client_id(client_id)
        budget = self.connect_timeout if timeout is None else timeout
        if not budget > 0:
            raise UsageError(f"connect timeout must be > 0, got {budget}")
        self._loop = loop = asyncio.get_running_loop()
        self.client_id, self.will = client_id, will
        deadline = loop.time() + budget
        attempts = 0
        last: ConnectionRefusedError | None = None
        while True:
            attempts += 1
            try:
                self.broker._attach(self, client_id)
                break
            except ConnectionRefusedError as exc:
                last = exc
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._closed.set()
                self._queue.put_nowait(None)
                raise TransportError(
                    f"could not connect to the MQTT broker at {self.broker.url} within "
                    f"{budget:g} s ({attempts} attempt{'s' if attempts > 1 else ''}); "
                    f"last error: {last}"
                )
            await asyncio.sleep(min(self._backoff.next_delay(), remaining))
        self._stats.connects += 1
        self._established = True
        self._mark_ready()
        await asyncio.sleep(0)

    async def wait_connected(self, timeout: float | None = None) -> None:
        await self._wait_ready(self._deadline(timeout), "wait_connected")

    async def subscribe(self, topic: str, qos: int = 1, *, timeout: float | None = None) -> None:
        check_topic_filter(topic)
        check_qos(qos)
        await self._wait_ready(self._deadline(timeout), f"subscribe to {topic!r}")
        self._subscriptions[topic] = qos
        self.broker._subscribe(self, topic, qos)
        await asyncio.sleep(0)

    async def unsubscribe(self, topic: str, *, timeout: float | None = None) -> None:
        check_topic_filter(topic)
        self._check_open()
        self._subscriptions.pop(topic, None)
        await asyncio.sleep(0)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        check_topic_name(topic)
        check_qos(qos)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise UsageError(f"payload must be bytes, got {type(payload).__name__}")
        data = bytes(payload)
        size = mqtt_publish_packet_size(topic, len(data), qos)
        await self._wait_ready(self._deadline(timeout), f"publish to {topic!r}")
        self._stats.messages_sent += 1
        self._stats.publish_bytes_sent += size
        self._stats.bytes_sent += size
        self.broker._route(topic, data, qos, retain)
        await asyncio.sleep(0)

    async def receive(self, timeout: float | None = None) -> Message:
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            self._queue.put_nowait(None)
            raise TransportError("transport is closed")
        return item

    async def messages(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.receive()
            except TransportError:
                return

    async def close(self) -> None:
        """Disconnect cleanly: the will is discarded."""
        await self._shutdown(publish_will=False)

    async def abort(self) -> None:
        """Vanish like a crashed client: the broker publishes the will."""
        await self._shutdown(publish_will=True)

    # -- broker side ---------------------------------------------------------------------------

    def _granted_qos(self, topic: str) -> int | None:
        granted = [qos for flt, qos in self._subscriptions.items() if topic_matches(flt, topic)]
        return max(granted) if granted else None

    def _deliver(self, topic: str, payload: bytes, qos: int, *, retain: bool) -> None:
        size = mqtt_publish_packet_size(topic, len(payload), qos)
        self._stats.messages_received += 1
        self._stats.publish_bytes_received += size
        self._stats.bytes_received += size
        self._queue.put_nowait(Message(topic, payload, retain))

    def _lost(self) -> None:
        """The broker dropped us (stop or takeover): reconnect in the background."""
        was_ready = self._ready.is_set()
        self._ready.clear()
        if self._closed.is_set() or not self._established or self._loop is None:
            return
        if was_ready:
            self._stats.connection_losses += 1
            if self._loop.time() - self._up_since >= STABLE_SECONDS:
                self._backoff.reset()
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closed.is_set():
            await asyncio.sleep(self._backoff.next_delay())
            try:
                self.broker._attach(self, self.client_id)
            except ConnectionRefusedError:
                continue
            self._stats.connects += 1
            for topic, qos in self._subscriptions.items():
                self.broker._subscribe(self, topic, qos)
            self._stats.reconnects += 1
            self._mark_ready()
            return

    # -- helpers -------------------------------------------------------------------------------

    async def _shutdown(self, *, publish_will: bool) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._ready.clear()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        if self.client_id:
            self.broker._detach(self, self.client_id, publish_will=publish_will)
        self._queue.put_nowait(None)
        await asyncio.sleep(0)

    def _mark_ready(self) -> None:
        assert self._loop is not None
        self._up_since = self._loop.time()
        self._ready.set()

    def _check_open(self) -> None:
        if self._loop is None:
            raise UsageError("MemoryTransport is not connected; call connect() first")
        if self._closed.is_set():
            raise TransportError("transport is closed")

    def _deadline(self, timeout: float | None) -> float:
        self._check_open()
        assert self._loop is not None
        return self._loop.time() + (self.publish_timeout if timeout is None else timeout)

    async def _wait_ready(self, deadline: float, what: str) -> None:
        self._check_open()
        if self._ready.is_set():
            return
        assert self._loop is not None
        ready = asyncio.ensure_future(self._ready.wait())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait(
                {ready, closed},
                timeout=max(deadline - self._loop.time(), 0.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
            closed.cancel()
        self._check_open()
        if not self._ready.is_set():
            raise TransportError(f"{what}: no connection to {self.url} (reconnecting) in time")
