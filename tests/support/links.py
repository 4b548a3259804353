"""Deterministic TCP links between a client and the broker, for tests that need an exact timing
(tests/support/faultproxy.py injects random faults instead).

`Link` forwards 127.0.0.1:<port> to the broker. `lag` holds every chunk from the broker back
that many seconds (order kept); `hold()` stops delivering what the broker sends, and `cut()`
closes every connection without delivering what was held: what a client misses when its
broker dies with messages the broker had already acknowledged to their publishers.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Link"]

CHUNK = 65536


class Link:
    def __init__(self, host: str, port: int, *, lag: float = 0.0) -> None:
        self.host = host
        self.broker_port = port
        self.lag = lag
        self.port = 0
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()

    def hold(self) -> None:
        """From now on, keep what the broker sends instead of delivering it."""
        self._flowing.clear()

    def cut(self) -> None:
        """Close every open connection, dropping what was held; new ones flow again."""
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        self._flowing.set()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection(self.host, self.broker_port)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._open |= {client_w, broker_w}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while chunk := await src.read(CHUNK):
                    if down:
                        if self.lag:
                            await asyncio.sleep(self.lag)
                        await self._flowing.wait()
                        if dst.transport.is_closing():
                            return
                    dst.write(chunk)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(client_r, broker_w, False), pump(broker_r, client_w, True))
        self._open -= {client_w, broker_w}
