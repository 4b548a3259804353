"""The session life cycle shared by every broker transport: connect with a bounded retry,
reconnect on its own after a loss, and the received-message queue.

`MqttTransport` (paho on a real broker) and `MemoryTransport` (an in-process broker) differ only
in how one connection attempt is made and torn down; everything a caller can observe about
connecting, losing the broker, waiting for it and closing lives here once, so the two cannot
drift apart. A subclass provides the hooks:

* `_prepare(address, client_id, will)`: remember where to connect (called once, by connect());
* `_attempt(timeout)`: one connection attempt, CONNECT to CONNACK. OSError or TimeoutError mean
  "try again later"; `PermanentFailure` means retrying cannot help (credentials refused,
  certificate not trusted);
* `_resubscribe()`: restore the recorded subscriptions on a new clean session (ConnectionLost or
  TimeoutError: drop the attempt and try again);
* `_teardown(clean)`: drop the connection on close() (clean) or abort() (as a crash would)
  and fail what is pending; `_drop_connection()`: drop it abruptly but stay open;

and calls `_connection_lost(reason)` when its connection goes down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator

from tinyfl.errors import TransportError, UsageError
from tinyfl.transport.base import (
    DEFAULT_MQTT_PORT,
    STABLE_SECONDS,
    Backoff,
    BrokerAddress,
    Message,
    TransportStats,
    Will,
    check_client_id,
)

__all__ = ["ConnectionLost", "PermanentFailure", "Session", "describe_error"]

log = logging.getLogger("tinyfl.transport")


class PermanentFailure(Exception):
    """Retrying cannot help: the broker refused the CONNECT (bad credentials, not authorized) or
    its TLS certificate did not verify. The message completes "MQTT broker <url> ..."."""


class ConnectionLost(Exception):
    """The connection went down while waiting for an acknowledgement."""


def describe_error(exc: BaseException | None) -> str:
    """A short reason for a failed attempt, for error messages and logs."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and not isinstance(exc, socket.gaierror) and exc.errno:
        return os.strerror(exc.errno)  # "Connection refused", not asyncio's "Connect call failed"
    return str(exc) or type(exc).__name__


class Session:
    """A broker session's life cycle; see the module docstring for the hooks."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        publish_timeout: float,
        attempt_timeout: float,
        backoff_initial: float,
        backoff_cap: float,
    ) -> None:
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("attempt_timeout", attempt_timeout),
            ("publish_timeout", publish_timeout),
        ):
            if not value > 0:
                raise UsageError(f"{name} must be > 0, got {value}")
        self.connect_timeout = connect_timeout
        self.attempt_timeout = attempt_timeout
        self.publish_timeout = publish_timeout
        self._backoff = Backoff(initial=backoff_initial, cap=backoff_cap)
        self._stats = TransportStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: dict[str, int] = {}
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._ready = asyncio.Event()  # connected and every subscription acknowledged
        self._closed = asyncio.Event()  # close() or abort() began
        self._established = False  # the first connect() succeeded: losses trigger reconnects
        self._up_since = 0.0
        self._supervisor: asyncio.Task[None] | None = None

    # -- hooks -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The broker's URL without credentials (safe to log)."""
        raise NotImplementedError

    def _prepare(
        self, url: str | BrokerAddress | None, host: str | None, port: int, client_id: str,
        will: Will | None,
    ) -> None:
        raise NotImplementedError

    async def _attempt(self, timeout: float) -> None:
        raise NotImplementedError

    async def _resubscribe(self) -> None:
        raise NotImplementedError

    async def _teardown(self, *, clean: bool) -> None:
        raise NotImplementedError

    def _drop_connection(self) -> None:
        """Drop the current connection abruptly; the session stays open and reconnects."""
        raise NotImplementedError

    # -- state -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "up" if self.connected else "down"
        return f"<{type(self).__name__} {self.url or 'unconnected'} {state}>"

    @property
    def stats(self) -> TransportStats:
        return self._stats

    @property
    def connected(self) -> bool:
        """Connected with every subscription in place (False while reconnecting)."""
        return self._ready.is_set()

    # -- connecting --------------------------------------------------------------------------

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
        (default `connect_timeout`) or fails permanently (refused CONNECT, untrusted
        certificate), UsageError for bad arguments."""
        if self._loop is not None:
            raise UsageError(f"connect() runs once per {type(self).__name__}; make a new one")
        check_client_id(client_id)
        budget = self.connect_timeout if timeout is None else timeout
        if not budget > 0:
            raise UsageError(f"connect timeout must be > 0, got {budget}")
        self._prepare(url, host, port, client_id, will)
        self._loop = loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        attempts = 0
        last: BaseException | None = None
        while True:
            attempts += 1
            try:
                await self._attempt(min(self.attempt_timeout, deadline - loop.time()))
                break
            except PermanentFailure as exc:
                await self._shutdown(clean=False)
                raise TransportError(
                    f"MQTT broker {self.url} {exc} (not retried: trying again cannot change it)"
                ) from None
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
                    f"could not connect to the MQTT broker at {self.url} within {budget:g} s "
                    f"({attempts} attempt{'s' if attempts > 1 else ''}); "
                    f"last error: {describe_error(last)}"
                )
            await asyncio.sleep(min(self._backoff.next_delay(), remaining))
        self._established = True
        self._mark_ready()
        log.debug("connected to %s as %s", self.url, client_id)
        await asyncio.sleep(0)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (again) with all subscriptions restored; TransportError after
        `timeout` seconds (default `publish_timeout`) or once closed."""
        await self._wait_ready(self._deadline(timeout), "wait_connected")

    def _mark_ready(self) -> None:
        assert self._loop is not None
        self._up_since = self._loop.time()
        self._ready.set()

    def _connection_lost(self, reason: object) -> None:
        """The subclass saw its connection go down: reconnect in the background."""
        was_ready = self._ready.is_set()
        self._ready.clear()
        if self._closed.is_set() or not self._established or self._loop is None:
            return
        if was_ready:
            self._stats.connection_losses += 1
            if self._loop.time() - self._up_since >= STABLE_SECONDS:
                self._backoff.reset()
            log.warning("lost the connection to %s (%s); reconnecting", self.url, reason)
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Runs after a connection loss until connected and resubscribed again, or closed.

        A permanent failure is logged and retried here all the same: nobody is waiting on this
        task to hear about it, and a broker whose password file is being fixed comes back.
        """
        while not self._closed.is_set():
            await asyncio.sleep(self._backoff.next_delay())
            try:
                await self._attempt(self.attempt_timeout)
            except PermanentFailure as exc:
                log.warning("MQTT broker %s %s on reconnecting; trying again", self.url, exc)
                continue
            except (OSError, asyncio.TimeoutError) as exc:
                log.debug("reconnect to %s failed: %s", self.url, describe_error(exc))
                continue
            try:
                await self._resubscribe()
            except ConnectionLost:
                continue
            except asyncio.TimeoutError:
                log.warning("no SUBACK from %s after reconnecting; trying again", self.url)
                self._drop_connection()
                continue
            self._stats.reconnects += 1
            self._mark_ready()
            log.info("reconnected to %s", self.url)
            return

    # -- receiving ---------------------------------------------------------------------------

    def _enqueue(self, message: Message) -> None:
        self._queue.put_nowait(message)

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

    # -- closing -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Disconnect cleanly (the broker discards the will) and stop reconnecting. Pending
        operations fail with TransportError; messages already received stay readable."""
        await self._shutdown(clean=True)

    async def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a crash or power cut would, so the broker
        publishes the last will. Otherwise like close()."""
        await self._shutdown(clean=False)

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
        await self._teardown(clean=clean)
        self._queue.put_nowait(None)

    # -- waiting -----------------------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise UsageError(f"{type(self).__name__} is not connected; call connect() first")
        return self._loop

    def _check_open(self) -> None:
        self._require_loop()
        if self._closed.is_set():
            raise TransportError("transport is closed")

    def _deadline(self, timeout: float | None) -> float:
        loop = self._require_loop()
        return loop.time() + (self.publish_timeout if timeout is None else timeout)

    def _remaining(self, deadline: float) -> float:
        return max(deadline - self._require_loop().time(), 0.0)

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
