"""Entry point of the `tinyfl` console script.

Adding a command is one line: write `tinyfl/cli/<command>.py` (see `tinyfl.cli.Command`) and list
the module in COMMANDS below.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tinyfl import __version__
from tinyfl.cli import (
    Command,
    bridge,
    coordinate,
    data,
    demo,
    export,
    fleet,
    label,
    model,
    provision,
    report,
)
from tinyfl.errors import TinyFLError

COMMANDS: tuple[Command, ...] = (
    bridge, coordinate, data, demo, export, fleet, label, model, provision, report)

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyfl",
        description="Federated learning on microcontroller fleets over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"tinyfl {__version__}")
    _add_verbosity(parser, default=False)
    subparsers = parser.add_subparsers(title="commands", metavar="<command>")
    for command in COMMANDS:
        subparser = command.add_parser(subparsers)
        _add_verbosity(subparser, default=argparse.SUPPRESS)
        subparser.set_defaults(_run=command.run)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    """-v/-q work before or after the command name; SUPPRESS keeps the subcommand's unset
    flags from overwriting ones given before it."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log debug details"
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="log warnings and errors only"
    )


def configure_logging(verbose: bool, quiet: bool) -> None:
    """Timestamped log lines on stderr, so long-running commands leave a readable trail."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; TinyFLError becomes `error: ...` plus its code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.verbose, args.quiet)
    try:
        code: int = run(args)
    except TinyFLError as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
