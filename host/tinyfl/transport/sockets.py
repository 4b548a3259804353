"""Sockets for paho, opened by asyncio without blocking the event loop: TCP, then TLS.

paho's own connect blocks in `socket.create_connection` and, for TLS, in a blocking handshake of
up to its keep-alive; either would freeze the event loop (and every round deadline with it)
while a broker is slow or unreachable. Here the TCP connect and the TLS handshake are awaited
on the loop and paho receives a connected, non-blocking socket (docs/ARCHITECTURE.md, section 5).

The sockets count the bytes paho reads and writes through them: every byte of every MQTT packet
(for TLS, the plaintext MQTT bytes, not the TLS records around them).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from tinyfl.transport.base import TransportStats
from tinyfl.transport.session import PermanentFailure

__all__ = ["open_socket"]


class _CountingSocket(socket.socket):
    """A TCP socket that adds what it sends and receives to a TransportStats; paho only ever
    calls recv() and send() on it, so these two see every MQTT byte."""

    stats: TransportStats

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        data = super().recv(bufsize, flags)
        self.stats.bytes_received += len(data)
        return data

    def send(self, data: Any, flags: int = 0, /) -> int:
        sent = super().send(data, flags)
        self.stats.bytes_sent += sent
        return sent


class _CountingSSLSocket(ssl.SSLSocket):
    """The TLS counterpart: counts the decrypted MQTT bytes, like _CountingSocket."""

    stats: TransportStats

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        data = super().recv(buflen, flags)
        self.stats.bytes_received += len(data)
        return data

    def send(self, data: Any, flags: int = 0) -> int:
        sent = super().send(data, flags)
        self.stats.bytes_sent += sent
        return sent


async def open_socket(
    host: str, port: int, stats: TransportStats, tls: ssl.SSLContext | None
) -> socket.socket:
    """A connected, non-blocking socket to the broker, TLS-wrapped when `tls` is given.

    OSError with the last failure; PermanentFailure when the broker's certificate does not
    verify (a retry would meet the same certificate).
    """
    sock = await _open_tcp(host, port, stats)
    if tls is None:
        return sock
    try:
        return await _handshake(sock, tls, host, stats)
    except ssl.SSLCertVerificationError as exc:
        raise PermanentFailure(
            f"failed TLS certificate verification ({exc.verify_message}): if it uses a private "
            "CA, give that CA's certificate (--ca-file); the host name must match the "
            "certificate"
        ) from None


async def _open_tcp(host: str, port: int, stats: TransportStats) -> socket.socket:
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


async def _handshake(
    sock: socket.socket, context: ssl.SSLContext, host: str, stats: TransportStats
) -> ssl.SSLSocket:
    """The TLS handshake on the loop: each step that would block waits for the socket instead.
    The context checks the certificate chain and the host name (server_hostname)."""
    loop = asyncio.get_running_loop()
    context.sslsocket_class = _CountingSSLSocket
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    assert isinstance(tls, _CountingSSLSocket)
    tls.stats = stats
    try:
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                await _ready(loop, tls, write=False)
            except ssl.SSLWantWriteError:
                await _ready(loop, tls, write=True)
    except BaseException:
        tls.close()
        raise


async def _ready(loop: asyncio.AbstractEventLoop, sock: socket.socket, *, write: bool) -> None:
    waiter: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    if write:
        loop.add_writer(sock, wake)
    else:
        loop.add_reader(sock, wake)
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(sock)
        else:
            loop.remove_reader(sock)
