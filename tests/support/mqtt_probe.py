"""A small synchronous MQTT client for tests: subscribe, wait for a message, publish.

paho-mqtt 2.x with its own network thread (`loop_start`), which is fine in tests; product code
drives paho from asyncio instead (docs/ARCHITECTURE.md, section 5). The probe resubscribes after a reconnect,
so it survives broker restarts.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

DEFAULT_TIMEOUT = 5.0
_ids = itertools.count(1)


@dataclass(frozen=True)
class Message:
    """One received message, copied out of paho's objects."""

    topic: str
    payload: bytes
    qos: int
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


class ProbeTimeout(AssertionError):
    """Nothing matching arrived in time (an AssertionError, so pytest reports it as a failure)."""


class MqttProbe:
    """Connects on construction; use as a context manager or call close().

    Received messages are kept in arrival order; `wait_for` consumes the first one that matches,
    including messages that arrived before it was called.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        keepalive: int = 30,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id or f"probe-{next(_ids)}-{time.monotonic_ns() % 10**6}"
        self._cond = threading.Condition()
        self._messages: list[Message] = []
        self._subscriptions: dict[str, int] = {}
        self._connected = False
        self._acked_mids: set[int] = set()
        self._resubscribing: set[int] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port, keepalive=keepalive)
        self.client.loop_start()
        self.wait_connected(timeout)

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            return
        with self._cond:
            topics = list(self._subscriptions.items())
            for topic, qos in topics:  # clean session: the broker forgot them
                # SUBACKs are handled on this same thread, after this callback returns.
                mid = client.subscribe(topic, qos)[1]
                if mid is not None:
                    self._resubscribing.add(mid)
            self._connected = True
            self._cond.notify_all()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        with self._cond:
            self._connected = False
            self._resubscribing.clear()
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any
    ) -> None:
        with self._cond:
            self._acked_mids.add(mid)
            self._resubscribing.discard(mid)
            self._cond.notify_all()

    # -- test API --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    def wait_connected(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Block until connected (initially, or again after a broker restart) with every earlier
        subscription acknowledged again."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._connected and not self._resubscribing, timeout
            ):
                raise ProbeTimeout(
                    f"{self.client_id}: not connected to {self.host}:{self.port} within {timeout} s"
                )

    def subscribe(self, topic: str, qos: int = 1, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Subscribe and wait for the SUBACK, so nothing published afterwards is missed."""
        with self._cond:
            self._subscriptions[topic] = qos
        result, mid = self.client.subscribe(topic, qos)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise ProbeTimeout(f"{self.client_id}: subscribe {topic!r} failed: {result}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acked_mids, timeout):
                raise ProbeTimeout(f"{self.client_id}: no SUBACK for {topic!r} within {timeout} s")

    def wait_for(
        self,
        topic_pattern: str,
        timeout: float = DEFAULT_TIMEOUT,
        predicate: Callable[[Message], bool] | None = None,
    ) -> Message:
        """Consume and return the first message whose topic matches the pattern (MQTT wildcards
        allowed) and that satisfies `predicate`."""

        def take() -> Message | None:
            for index, message in enumerate(self._messages):
                if mqtt.topic_matches_sub(topic_pattern, message.topic) and (
                    predicate is None or predicate(message)
                ):
                    return self._messages.pop(index)
            return None

        found: list[Message] = []
        with self._cond:

            def ready() -> bool:
                message = take()
                if message is not None:
                    found.append(message)
                return bool(found)

            if not self._cond.wait_for(ready, timeout):
                seen = [f"{m.topic}: {m.payload[:40]!r}" for m in self._messages]
                raise ProbeTimeout(
                    f"{self.client_id}: nothing on {topic_pattern!r} within "
                    f"{timeout} s; unconsumed: {seen or 'none'}"
                )
        return found[0]

    def messages(self) -> list[Message]:
        """A snapshot of the received, not yet consumed messages."""
        with self._cond:
            return list(self._messages)

    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Publish and wait until paho has sent it (QoS 0) or the broker acknowledged it."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise ProbeTimeout(
                f"{self.client_id}: publish to {topic!r} not done within {timeout} s"
            )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttProbe:  # noqa: PYI034 -- not meant for subclassing
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
