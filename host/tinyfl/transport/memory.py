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
  with the same capped exponential backoff and resubscribe: the connect, reconnect, queue and
  close logic is `session.Session`, the same code MqttTransport runs; this module only routes.

What it does not model: the network. Delivery is immediate and in order, nothing is lost or
duplicated, and `stats` counts only PUBLISH packets (sized as on the wire), not CONNECT, SUBACK,
PUBACK or PINGREQ. Everything runs on the event loop that called connect(); not thread-safe.
"""

from __future__ import annotations

import asyncio

from tinyfl.errors import UsageError
from tinyfl.transport.base import (
    BrokerAddress,
    Message,
    Will,
    check_qos,
    check_topic_filter,
    check_topic_name,
    mqtt_publish_packet_size,
    topic_matches,
)
from tinyfl.transport.session import Session

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


class MemoryTransport(Session):
    """`Transport` on a MemoryBroker; see the module docstring for what it models.

    Constructor arguments mean what they mean for MqttTransport. No credentials: the in-memory
    broker has no accounts (a BrokerAddress or URL given to connect() must be its own url).
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
        # An attempt is a function call here; its timeout only has to be positive.
        super().__init__(
            connect_timeout=connect_timeout,
            publish_timeout=publish_timeout,
            attempt_timeout=connect_timeout,
            backoff_initial=backoff_initial,
            backoff_cap=backoff_cap,
        )
        self.broker = broker
        self.client_id = ""
        self.will: Will | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "up" if self.connected else "down"
        return f"<MemoryTransport {self.client_id or 'unconnected'}@{self.broker.url} {state}>"

    @property
    def url(self) -> str:
        return self.broker.url

    # -- the session hooks ---------------------------------------------------------------------

    def _prepare(
        self, url: str | BrokerAddress | None, host: str | None, port: int, client_id: str,
        will: Will | None,
    ) -> None:
        if host is not None or (url is not None and url != self.broker.url):
            raise UsageError(f"a MemoryTransport connects only to its broker, {self.broker.url}")
        self.client_id, self.will = client_id, will

    async def _attempt(self, timeout: float) -> None:
        self.broker._attach(self, self.client_id)  # ConnectionRefusedError while stopped
        self._stats.connects += 1

    async def _resubscribe(self) -> None:
        for topic, qos in self._subscriptions.items():
            self.broker._subscribe(self, topic, qos)

    async def _teardown(self, *, clean: bool) -> None:
        if self.client_id:  # clean: the will is discarded; abort: the broker publishes it
            self.broker._detach(self, self.client_id, publish_will=not clean)
        await asyncio.sleep(0)

    def _drop_connection(self) -> None:
        self.broker._detach(self, self.client_id, publish_will=True)
        self._lost()

    # -- operations ----------------------------------------------------------------------------

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

    # -- broker side ---------------------------------------------------------------------------

    def _granted_qos(self, topic: str) -> int | None:
        granted = [qos for flt, qos in self._subscriptions.items() if topic_matches(flt, topic)]
        return max(granted) if granted else None

    def _deliver(self, topic: str, payload: bytes, qos: int, *, retain: bool) -> None:
        size = mqtt_publish_packet_size(topic, len(payload), qos)
        self._stats.messages_received += 1
        self._stats.publish_bytes_received += size
        self._stats.bytes_received += size
        self._enqueue(Message(topic, payload, retain))

    def _lost(self) -> None:
        """The broker dropped us (stop or takeover): reconnect in the background."""
        self._connection_lost("dropped by the broker")
