"""`tinyfl bridge`: connect a serial-only board's MQTT byte stream to a broker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from tinyfl.cli import Subparsers
from tinyfl.cli.broker_options import add_broker_options, broker_from_args
from tinyfl.errors import UsageError
from tinyfl.transport.serial_bridge import BridgeConfig, SerialBridge, check_port_url

SUMMARY = "pipe a serial-only board's MQTT byte stream to a broker"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bridge",
        help=SUMMARY,
        description=(
            "Move bytes between a board that speaks MQTT 3.1.1 over its serial line and a "
            "broker's TCP port (over TLS for an mqtts:// broker). Reconnects either side with "
            "backoff; stop with Ctrl-C or SIGTERM. The bridge never reads MQTT: a user name and "
            "password are the board's own, sent in its CONNECT (node settings), so the bridge "
            "takes none."
        ),
    )
    parser.add_argument(
        "--port",
        required=True,
        help="serial device or pyserial URL: /dev/ttyACM0, socket://HOST:PORT, loop://",
    )
    add_broker_options(parser, default="mqtt://localhost:1883", credentials=False)
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default: %(default)s)")
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="longest wait between reconnect attempts (default: %(default)s)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> BridgeConfig:
    """Validate everything up front so a typo exits with code 2 instead of retrying forever."""
    if args.baud <= 0:
        raise UsageError(f"--baud must be positive, got {args.baud}")
    if args.max_backoff <= 0:
        raise UsageError(f"--max-backoff must be positive, got {args.max_backoff}")
    check_port_url(args.port)
    broker = broker_from_args(args, credentials=False)
    if broker.username is not None:
        raise UsageError(
            f"bad broker URL {str(broker)!r}: credentials belong in the board's CONNECT, not the "
            "bridge (it only moves the board's bytes)"
        )
    return BridgeConfig(
        port_url=args.port,
        broker=broker,
        baudrate=args.baud,
        backoff_initial=min(0.25, args.max_backoff),
        backoff_max=args.max_backoff,
    )


def run(args: argparse.Namespace) -> int:
    bridge = SerialBridge(config_from_args(args))
    if asyncio.run(_run_until_terminated(bridge)) == signal.SIGINT:
        raise KeyboardInterrupt  # stopped cleanly; reported as any Ctrl-C is (exit 130)
    return 0


async def _run_until_terminated(bridge: SerialBridge) -> int | None:
    """SIGTERM (systemd, docker stop) and SIGINT (Ctrl-C) both end the bridge through its stop
    event: a KeyboardInterrupt raised wherever the loop happens to be could leave the serial
    reader or the broker session half closed. Returns the signal that stopped it."""
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
    await bridge.run(stop)
    return received[0] if received else None
