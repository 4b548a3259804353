"""A lossy link for tests: an asyncio TCP proxy on 127.0.0.1 that injects seeded, bounded faults
between MQTT clients and the broker.

A TCP proxy sees a byte stream, not packets: it cannot drop single bytes or messages without
corrupting the stream for both ends. So its faults are the ones a real flaky link produces at
the connection level:

* **delay**: a chunk is held back a random time before it is forwarded (order kept; the read
  side waits too, so a slow direction pushes back on its sender like a slow radio would);
* **stall**: a direction stops forwarding for a while, then delivers everything (a fade);
* **reset**: both sockets are closed with an RST, mid-stream (a router reboot);
* **blackhole**: both directions swallow everything for a while, then the connection is
  closed (a dead link that the peers notice only when it is torn down: what they sent in
  the meantime is lost);
* **refuse**: a new connection is closed at once.

Resets and blackholes end every connection after a random lifetime, so a test of a few
seconds sees them for certain; delays and stalls are drawn per chunk. Every random draw comes
from `random.Random` seeded from the proxy's seed and the connection's number: a connection's
fate (refused, its lifetime, reset or blackhole) is drawn when it is accepted, so the fates of
the first N connections are fixed by the seed; the per-chunk draws depend on how the peers'
bytes happen to be split into chunks. Every duration is capped (`FaultPlan.check`):
the proxy slows a test down by a bounded amount, never indefinitely. Counts of what was
injected are in `stats`, so a test can assert that the faults really happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FaultPlan", "FaultProxy", "FaultStats"]

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024  # bytes read at once per direction: bounds what a connection buffers
MAX_DELAY = 2.0  # seconds: caps on every injected wait
MAX_LIFETIME = 60.0


@dataclass(frozen=True)
class FaultPlan:
    """What to inject. Probabilities are per chunk (delay, stall) or per connection (refuse,
    and blackhole versus reset when a connection's lifetime ends)."""

    delay_p: float = 0.3
    delay_max: float = 0.05
    stall_p: float = 0.05
    stall_max: float = 0.5
    refuse_p: float = 0.1
    lifetime: tuple[float, float] = (1.5, 4.0)  # seconds a connection lives, uniform
    blackhole_p: float = 0.4  # share of ended connections that go silent first
    blackhole_max: float = 1.0

    def check(self) -> None:
        """ValueError unless every probability is in [0, 1] and every duration is capped."""
        for name in ("delay_p", "stall_p", "refuse_p", "blackhole_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("delay_max", "stall_max", "blackhole_max"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_DELAY:
                raise ValueError(f"{name} must be in [0, {MAX_DELAY}] s, got {value}")
        low, high = self.lifetime
        if not 0.0 < low <= high <= MAX_LIFETIME:
            raise ValueError(f"lifetime must satisfy 0 < low <= high <= {MAX_LIFETIME} s")


@dataclass
class FaultStats:
    """What the proxy did, summed over its connections."""

    connections: int = 0
    refused: int = 0
    delays: int = 0
    stalls: int = 0
    resets: int = 0
    blackholes: int = 0
    bytes_forwarded: int = 0
    bytes_swallowed: int = 0
    delayed_s: float = 0.0

    @property
    def faults(self) -> int:
        return self.refused + self.delays + self.stalls + self.resets + self.blackholes


@dataclass(frozen=True)
class _Fate:
    """How a connection ends, drawn when it is accepted."""

    refused: bool
    lifetime: float
    blackhole: float  # seconds of silence before the close; 0 = a plain reset

    @classmethod
    def draw(cls, plan: FaultPlan, rng: random.Random) -> _Fate:
        refused = rng.random() < plan.refuse_p
        lifetime = rng.uniform(*plan.lifetime)
        silent = rng.random() < plan.blackhole_p
        blackhole = rng.uniform(plan.blackhole_max / 2, plan.blackhole_max) if silent else 0.0
        return cls(refused, lifetime, blackhole)


@dataclass(eq=False)  # kept in a set, by identity
class _Link:
    """One proxied connection: both streams, its fate and per-chunk draws, and whether it is
    swallowing."""

    fate: _Fate
    rng: random.Random
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    swallowing: bool = False
    tasks: list[asyncio.Future[Any]] = field(default_factory=list)


class FaultProxy:
    """Listens on 127.0.0.1 (an ephemeral port unless given) and forwards to a loopback
    upstream, injecting the faults of `plan`:

        async with FaultProxy(broker.host, broker.port, seed=7) as proxy:
            url = proxy.url  # mqtt://127.0.0.1:<port>
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int = 0,
        plan: FaultPlan | None = None,
        port: int = 0,
    ) -> None:
        if not ipaddress.ip_address(upstream_host).is_loopback:
            raise ValueError(f"the proxy forwards to loopback addresses only, not {upstream_host}")
        self.plan = plan or FaultPlan()
        self.plan.check()
        self.upstream = (upstream_host, upstream_port)
        self.seed = seed
        self.stats = FaultStats()
        self.faults_on = True  # False: a plain pipe (for set-up or a clean tail of a test)
        self._port = port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._accepted = 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, self._port)

    async def stop(self) -> None:
        """Stop listening and close every connection (as a reset)."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._abort(link)
            for task in link.tasks:
                task.cancel()
        for link in list(self._links):
            await asyncio.gather(*link.tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FaultProxy:  # noqa: PYI034 -- not meant for subclassing
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- one connection --------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, self._accepted = self._accepted, self._accepted + 1
        fate = _Fate.draw(self.plan, random.Random(f"{self.seed}/{number}/fate"))
        rng = random.Random(f"{self.seed}/{number}/chunks")
        self.stats.connections += 1
        if self.faults_on and fate.refused:
            self.stats.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:  # the broker is away: the client sees what it would see directly
            _reset(writer)
            return
        for w in (writer, up_writer):
            with contextlib.suppress(OSError):
                w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(fate, rng, writer, up_writer)
        self._links.add(link)
        pipes = asyncio.gather(
            self._pipe(link, reader, up_writer), self._pipe(link, up_reader, writer)
        )
        end = asyncio.ensure_future(self._end_later(link))
        link.tasks = [pipes, end]
        try:
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
            if pipes.done():  # both ends closed in turn: a clean close stays clean
                for w in (writer, up_writer):
                    w.close()
        finally:
            self._abort(link)  # no-op after a clean close
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            self._links.discard(link)

    async def _pipe(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forwards one direction until EOF or an error, with per-chunk delays and stalls."""
        plan, rng = self.plan, link.rng
        try:
            while chunk := await reader.read(CHUNK):
                if link.swallowing:
                    self.stats.bytes_swallowed += len(chunk)
                    continue
                if self.faults_on:
                    wait = 0.0
                    if rng.random() < plan.stall_p:
                        self.stats.stalls += 1
                        wait = rng.uniform(plan.stall_max / 2, plan.stall_max)
                    elif rng.random() < plan.delay_p:
                        self.stats.delays += 1
                        wait = rng.uniform(0.0, plan.delay_max)
                    if wait:
                        self.stats.delayed_s += wait
                        await asyncio.sleep(wait)
                if link.swallowing:  # went dead while this chunk waited
                    self.stats.bytes_swallowed += len(chunk)
                    continue
                writer.write(chunk)
                await writer.drain()
                self.stats.bytes_forwarded += len(chunk)
            if writer.can_write_eof():  # pass the half-close on; the other direction goes on
                writer.write_eof()
        except (ConnectionError, OSError):
            self._abort(link)  # one side broke: the other learns it the same way

    async def _end_later(self, link: _Link) -> None:
        """Ends the connection after its lifetime: reset at once, or blackhole, then close."""
        await asyncio.sleep(link.fate.lifetime)
        while not self.faults_on:  # a clean phase: keep the connection, look again later
            await asyncio.sleep(self.plan.lifetime[0])
        if link.fate.blackhole:
            self.stats.blackholes += 1
            link.swallowing = True
            await asyncio.sleep(link.fate.blackhole)
        else:
            self.stats.resets += 1

    def _abort(self, link: _Link) -> None:
        _reset(link.client)
        _reset(link.upstream)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a dropped link looks to the peer."""
    if writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
