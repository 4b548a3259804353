"""A transparent byte pipe between a serial-only board and an MQTT broker's TCP port.

The board runs its own MQTT 3.1.1 client over its serial line (docs/ARCHITECTURE.md, section 1), so the bridge
never parses MQTT: it moves bytes. What it does own is the life cycle of the two ends:

* broker connection lost: the MQTT session on it is dead, so bytes the board sends meanwhile are
  dropped (counted) while the bridge reconnects; the board's keep-alive notices the silence and it
  starts a new session with a fresh CONNECT.
* serial port lost: the broker session belongs to the board, so the broker socket is closed too
  (the broker then publishes the board's last will) and both ends are reopened when the port
  returns.

Both ends reconnect with capped exponential backoff. The TCP side uses asyncio streams (TLS for
an mqtts:// broker); pyserial
has no async API, so every blocking serial call runs in a worker thread with a short read timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Protocol, cast

import serial  # type: ignore[import-untyped, unused-ignore]

from tinyfl.errors import UsageError
from tinyfl.transport.address import tls_context
from tinyfl.transport.base import (
    DEFAULT_MQTT_PORT,
    STABLE_SECONDS,
    Backoff,
    BrokerAddress,
    parse_broker_url,
)

# Backoff, BrokerAddress, parse_broker_url and DEFAULT_MQTT_PORT live in `base` (one definition
# for every transport); they stay importable from here for existing callers.
__all__ = [
    "DEFAULT_MQTT_PORT",
    "Backoff",
    "BridgeConfig",
    "BridgeStats",
    "BrokerAddress",
    "SerialBridge",
    "check_port_url",
    "parse_broker_url",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Serial port names


def check_port_url(url: str) -> None:
    """Reject serial port names that can never open, so a typo fails at once instead of retrying.

    A missing device (`/dev/ttyACM0` not plugged in yet) is not an error here: the bridge waits
    for it. Unknown `scheme://` handlers and network URLs without host:port are.
    """
    if not url:
        raise UsageError("serial port is empty: give a device such as /dev/ttyACM0 or a URL")
    if "://" not in url:
        return
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("socket", "rfc2217"):
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port:
            raise UsageError(f"bad serial URL {url!r}: expected {scheme}://HOST:PORT")
        return
    try:
        _open_port(url, baudrate=115200, read_timeout=0.0, write_timeout=0.0, probe_only=True)
    except ValueError as exc:
        raise UsageError(f"bad serial URL {url!r}: {exc}") from None
    except (serial.SerialException, OSError):
        pass  # a known handler whose device is absent (e.g. hwgrep://): the bridge waits for it


# --------------------------------------------------------------------------------------------
# Counters and settings


@dataclass
class BridgeStats:
    """Running totals, readable from any thread (plain ints, updated only by the event loop)."""

    board_to_broker: int = 0
    broker_to_board: int = 0
    dropped_from_board: int = 0
    serial_opens: int = 0
    serial_open_failures: int = 0
    broker_connects: int = 0
    broker_connect_failures: int = 0

    def summary(self) -> str:
        return (
            f"board->broker {self.board_to_broker} B, broker->board {self.broker_to_board} B, "
            f"dropped {self.dropped_from_board} B"
        )


@dataclass(frozen=True)
class BridgeConfig:
    """Everything one bridge needs; the defaults suit a USB-serial board on a gateway."""

    port_url: str
    broker: BrokerAddress
    baudrate: int = 115200
    # Bounds how long stopping or closing the port waits for an in-flight read.
    read_timeout: float = 0.05
    # A board that stops draining its serial input must not wedge the bridge forever.
    write_timeout: float = 5.0
    connect_timeout: float = 5.0
    backoff_initial: float = 0.25
    backoff_max: float = 10.0
    chunk_size: int = 4096

    def backoff(self) -> Backoff:
        return Backoff(self.backoff_initial, self.backoff_max)


# --------------------------------------------------------------------------------------------
# Serial side


class SerialPort(Protocol):
    """The part of pyserial's `SerialBase` the bridge uses."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


class _SerialLost(Exception):
    """The serial port failed; wraps the cause so it is never mistaken for a broker socket error
    (pyserial's SerialException is an OSError, like ConnectionResetError)."""


def _open_port(
    url: str,
    *,
    baudrate: int,
    read_timeout: float,
    write_timeout: float,
    probe_only: bool = False,
) -> SerialPort:
    """Open a device path or any pyserial URL (`socket://`, `loop://`, `rfc2217://`, ...).

    With `probe_only` the port object is created but not opened: that resolves the URL handler
    (raising ValueError for an unknown scheme) without touching the device.
    """
    port = serial.serial_for_url(
        url,
        baudrate=baudrate,
        timeout=read_timeout,
        write_timeout=write_timeout,
        exclusive=True,  # two bridges on one tty would interleave two MQTT streams
        do_not_open=probe_only,
    )
    return cast(SerialPort, port)


class SerialLink:
    """A pyserial port driven from asyncio: each blocking call runs in a worker thread.

    A cancelled `await` does not stop its worker thread, so `close()` takes the same locks as the
    reader and writer: it waits for an in-flight read (at most one read timeout) instead of
    closing the port under it.
    """

    def __init__(self, port: SerialPort, chunk_size: int) -> None:
        self._port = port
        self._chunk_size = chunk_size
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False

    @classmethod
    async def open(cls, config: BridgeConfig) -> SerialLink:
        """Open the port (in a thread: `socket://` connects, a tty may block briefly)."""
        try:
            port = await asyncio.to_thread(
                _open_port,
                config.port_url,
                baudrate=config.baudrate,
                read_timeout=config.read_timeout,
                write_timeout=config.write_timeout,
            )
        except (serial.SerialException, OSError) as exc:
            raise _SerialLost(str(exc)) from exc
        return cls(port, config.chunk_size)

    async def read(self) -> bytes:
        """Up to chunk_size bytes; b"" when the read timeout passed with nothing received."""
        return await asyncio.to_thread(self._read_blocking)

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._write_blocking, data)

    async def close(self) -> None:
        await asyncio.to_thread(self._close_blocking)

    def _read_blocking(self) -> bytes:
        """Block for the first byte (up to the read timeout), then take what is already buffered.

        Reading a fixed large size would always wait out the timeout; this returns as soon as
        the board pauses, which keeps MQTT round trips short.
        """
        with self._read_lock:
            if self._closed:
                raise _SerialLost("port closed")
            try:
                data = self._port.read(1)
                while data and len(data) < self._chunk_size:
                    waiting = self._port.in_waiting
                    if waiting <= 0:
                        break
                    data += self._port.read(min(waiting, self._chunk_size - len(data)))
            except (serial.SerialException, OSError) as exc:
                raise _SerialLost(str(exc) or type(exc).__name__) from exc
            return bytes(data)

    def _write_blocking(self, data: bytes) -> None:
        with self._write_lock:
            if self._closed:
                raise _SerialLost("port closed")
            try:
                self._port.write(data)
            except (serial.SerialException, OSError) as exc:
                raise _SerialLost(str(exc) or type(exc).__name__) from exc

    def _close_blocking(self) -> None:
        with self._read_lock, self._write_lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()


# --------------------------------------------------------------------------------------------
# The bridge


class SerialBridge:
    """Pipe bytes between `config.port_url` and `config.broker` until stopped.

    `run()` never gives up on either end; it returns when `stop` is set and unwinds cleanly when
    cancelled (Ctrl-C). `stats` and `broker_up` may be read from other threads, e.g. by tests.
    """

    def __init__(self, config: BridgeConfig) -> None:
        check_port_url(config.port_url)  # a typo is a UsageError now, not an endless retry
        self.config = config
        self.stats = BridgeStats()
        self._broker_writer: asyncio.StreamWriter | None = None
        self._dropped_in_outage = 0

    @property
    def broker_up(self) -> bool:
        return self._broker_writer is not None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Bridge until `stop` is set (or the task is cancelled); errors other than lost
        connections (i.e. bugs) propagate."""
        stop = stop if stop is not None else asyncio.Event()
        serving = asyncio.ensure_future(self._serve())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (serving, stopping):
                task.cancel()
            await asyncio.gather(serving, stopping, return_exceptions=True)
            log.info("bridge stopped; totals: %s", self.stats.summary())
        error = None if serving.cancelled() else serving.exception()
        if error is not None:
            raise error

    async def _serve(self) -> None:
        backoff = self.config.backoff()
        while True:
            link = await self._open_serial(backoff)
            opened = time.monotonic()
            try:
                reason = await self._session(link)
                uptime = time.monotonic() - opened
                # Logged before closing: pyserial's socket:// close() alone sleeps 0.3 s.
                log.warning(
                    "serial port %s lost (%s) after %.1f s; broker connection closed with it",
                    self.config.port_url,
                    reason,
                    uptime,
                )
            finally:
                await link.close()
            if uptime >= STABLE_SECONDS:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _open_serial(self, backoff: Backoff) -> SerialLink:
        """Open the port, retrying with backoff; logs the first failure loudly, repeats quietly."""
        last_error = ""
        while True:
            try:
                link = await SerialLink.open(self.config)
            except _SerialLost as exc:
                self.stats.serial_open_failures += 1
                delay = backoff.next_delay()
                level = logging.DEBUG if str(exc) == last_error else logging.WARNING
                log.log(
                    level,
                    "serial port %s unavailable (%s); retrying in %.2f s",
                    self.config.port_url,
                    exc,
                    delay,
                )
                last_error = str(exc)
                await asyncio.sleep(delay)
                continue
            self.stats.serial_opens += 1
            log.info("serial port %s open at %d baud", self.config.port_url, self.config.baudrate)
            return link

    async def _session(self, link: SerialLink) -> str:
        """Run both pumps on one open port; returns why the port was lost.

        The serial reader lives for the whole session so that board bytes are drained (and
        dropped) even while the broker is away, and so a vanished port is noticed at any time.
        """
        reader = asyncio.ensure_future(self._pump_serial(link))
        broker = asyncio.ensure_future(self._maintain_broker(link))
        try:
            done, _ = await asyncio.wait({reader, broker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, broker):
                task.cancel()
            await asyncio.gather(reader, broker, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if isinstance(exc, _SerialLost):
                return str(exc)
            if exc is not None:
                raise exc
        raise AssertionError("bridge pumps returned without a reason")  # pragma: no cover

    async def _pump_serial(self, link: SerialLink) -> None:
        """Board -> broker. Raises _SerialLost when the port fails."""
        while True:
            chunk = await link.read()
            if chunk:
                await self._to_broker(chunk)

    async def _to_broker(self, chunk: bytes) -> None:
        writer = self._broker_writer
        if writer is None or writer.is_closing():
            self.stats.dropped_from_board += len(chunk)
            self._dropped_in_outage += len(chunk)
            return
        try:
            writer.write(chunk)
            await writer.drain()
        except OSError:
            # The broker side notices too (its reader hits EOF after the abort) and reconnects.
            self.stats.dropped_from_board += len(chunk)
            self._dropped_in_outage += len(chunk)
            writer.transport.abort()
            return
        self.stats.board_to_broker += len(chunk)

    async def _maintain_broker(self, link: SerialLink) -> None:
        """Keep a broker connection up for the lifetime of the serial session.

        Raises _SerialLost if writing to the board fails; otherwise runs until cancelled.
        """
        backoff = self.config.backoff()
        while True:
            streams = await self._connect_broker(backoff)
            if streams is None:
                continue
            reader, writer = streams
            connected = time.monotonic()
            self._announce_connected()
            self._broker_writer = writer
            reason = None  # stays None when cancelled: serial port lost or bridge stopping
            try:
                reason = await self._pump_broker(reader, link)
            finally:
                self._broker_writer = None
                await _close_writer(writer)
                uptime = time.monotonic() - connected
                self._log_broker_closed(reason, uptime)
            if uptime >= STABLE_SECONDS:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _connect_broker(
        self, backoff: Backoff
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """One connection attempt; on failure sleeps the backoff delay and returns None."""
        broker = self.config.broker
        # mqtts://: the bridge ends TLS towards the broker (certificate and host name checked);
        # the board's own MQTT bytes, credentials included, travel inside it.
        tls = tls_context(broker) if broker.tls else None
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(broker.host, broker.port, ssl=tls),
                self.config.connect_timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            self.stats.broker_connect_failures += 1
            delay = backoff.next_delay()
            log.warning(
                "broker %s failed TLS certificate verification (%s): give its CA with "
                "--ca-file; retrying in %.2f s", broker.url, exc.verify_message, delay,
            )
            await asyncio.sleep(delay)
            return None
        except (OSError, asyncio.TimeoutError) as exc:
            self.stats.broker_connect_failures += 1
            delay = backoff.next_delay()
            log.info(
                "broker %s unreachable (%s); retrying in %.2f s",
                broker.url,
                str(exc) or type(exc).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            return None

    def _log_broker_closed(self, reason: str | None, uptime: float) -> None:
        url = self.config.broker.url
        if reason is None:
            log.info(
                "broker %s connection closed after %.1f s; %s", url, uptime, self.stats.summary()
            )
        else:
            log.warning(
                "broker %s disconnected (%s) after %.1f s; %s",
                url,
                reason,
                uptime,
                self.stats.summary(),
            )

    def _announce_connected(self) -> None:
        self.stats.broker_connects += 1
        dropped, self._dropped_in_outage = self._dropped_in_outage, 0
        note = f"; dropped {dropped} B from the board while it was away" if dropped else ""
        log.info("broker %s connected%s", self.config.broker.url, note)

    async def _pump_broker(self, reader: asyncio.StreamReader, link: SerialLink) -> str:
        """Broker -> board until the broker connection ends; returns why it ended."""
        while True:
            try:
                data = await reader.read(self.config.chunk_size)
            except OSError as exc:
                return str(exc) or type(exc).__name__
            if not data:
                return "closed by broker"
            # counted before the write awaits: a stop that cancels it after the bytes left must
            # not lose them from the total (seen under load: the board had more than counted)
            self.stats.broker_to_board += len(data)
            await link.write(data)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a broker connection without letting a dead peer stall the caller."""
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
