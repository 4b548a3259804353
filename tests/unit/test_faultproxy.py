"""The lossy-link proxy of the fault tests (support/faultproxy.py), against a loopback echo
server: what it forwards arrives intact and in order, and each fault it counts really happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from support.faultproxy import FaultPlan, FaultProxy

CALM = FaultPlan(delay_p=0.0, stall_p=0.0, refuse_p=0.0, lifetime=(30.0, 30.0))


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def proxied(plan: FaultPlan, seed: int = 1) -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with FaultProxy("127.0.0.1", port, seed=seed, plan=plan) as proxy:
            yield proxy
    finally:
        server.close()
        await server.wait_closed()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(scenario(), 20)

    asyncio.run(main())


def test_delayed_and_stalled_bytes_arrive_intact_and_in_order() -> None:
    plan = FaultPlan(delay_p=1.0, delay_max=0.005, stall_p=0.2, stall_max=0.02, refuse_p=0.0,
                     lifetime=(30.0, 30.0))

    async def scenario() -> None:
        async with proxied(plan) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            sent = b""
            for i in range(100):  # ping-pong: every message is a chunk of its own, each a draw
                piece = i.to_bytes(4, "big") * 25
                writer.write(piece)
                assert await reader.readexactly(len(piece)) == piece
                sent += piece
            # and a stream in one go, which the proxy reads in whatever chunks come
            writer.write(sent * 50)
            assert await reader.readexactly(len(sent) * 50) == sent * 50
            writer.close()
            assert proxy.stats.delays > 0 and proxy.stats.stalls > 0
            assert proxy.stats.bytes_forwarded == 2 * 51 * len(sent)
            assert proxy.stats.resets == proxy.stats.blackholes == proxy.stats.refused == 0

    run(scenario)


@pytest.mark.parametrize("blackhole_p", [0.0, 1.0])
def test_every_connection_ends_after_its_lifetime(blackhole_p: float) -> None:
    """A reset ends it at once; a blackhole first swallows what is sent, then ends it."""
    plan = FaultPlan(delay_p=0.0, stall_p=0.0, refuse_p=0.0, lifetime=(0.3, 0.3),
                     blackhole_p=blackhole_p, blackhole_max=0.4)

    async def scenario() -> None:
        async with proxied(plan) as proxy:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            started = loop.time()
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            await asyncio.sleep(0.35)  # past the lifetime: gone, or going silent
            writer.write(b"lost")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            with contextlib.suppress(ConnectionError):
                assert await reader.read(100) == b""  # nothing echoed, then EOF or RST
            ended = loop.time() - started
            assert 0.3 <= ended <= 0.3 + plan.blackhole_max + 0.5
            assert (proxy.stats.resets, proxy.stats.blackholes) == (
                (0, 1) if blackhole_p else (1, 0)
            )
            assert proxy.stats.bytes_swallowed == (4 if blackhole_p else 0)

    run(scenario)


def test_refused_connections_are_closed_at_once() -> None:
    async def scenario() -> None:
        async with proxied(FaultPlan(refuse_p=1.0)) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            with contextlib.suppress(ConnectionError):
                assert await reader.read(100) == b""
            writer.close()
            assert proxy.stats.refused == proxy.stats.connections == 1

    run(scenario)


def test_a_clean_close_passes_through_without_faults() -> None:
    async def scenario() -> None:
        async with proxied(CALM) as proxy:
            proxy.faults_on = False
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"bye")
            writer.write_eof()  # the echo server answers, then closes its side
            assert await reader.read() == b"bye"
            writer.close()
            assert proxy.stats.faults == 0

    run(scenario)


def test_the_proxy_stays_on_loopback_and_its_waits_are_capped() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("192.0.2.1", 1883)
    with pytest.raises(ValueError, match="delay_max"):
        FaultProxy("127.0.0.1", 1883, plan=FaultPlan(delay_max=30.0))
    with pytest.raises(ValueError, match="lifetime"):
        FaultProxy("127.0.0.1", 1883, plan=FaultPlan(lifetime=(1.0, 3600.0)))

    async def scenario() -> None:
        async with proxied(CALM) as proxy:
            assert proxy.url.startswith("mqtt://127.0.0.1:")

    run(scenario)
