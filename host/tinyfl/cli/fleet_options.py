"""Where a command that speaks to a running fleet finds it: the broker (docs/BROKER.md), the topic
prefix (--fleet or --prefix) and the fleet's keys (--keys coordinator.json). `tinyfl coordinate`
and `tinyfl label` share these."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfl.cli.broker_options import add_broker_options
from tinyfl.errors import UsageError
from tinyfl.wire import Keyring, check_prefix, default_prefix

__all__ = ["add_fleet_options", "keys_from_args", "prefix_from_args"]


def add_fleet_options(parser: argparse.ArgumentParser, *, keys_help: str) -> None:
    """A "where" group: the broker options with credentials, --fleet, --prefix and --keys."""
    where = parser.add_argument_group("where")
    add_broker_options(where, default=None, credentials=True)
    where.add_argument("--fleet", help="fleet name; topics live under tinyfl/<fleet>/")
    where.add_argument("--prefix", help="topic prefix instead of tinyfl/<fleet>")
    where.add_argument("--keys", type=Path, metavar="FILE",
                       help="the fleet's coordinator.json (tinyfl provision; or its folder): "
                       + keys_help)


def prefix_from_args(args: argparse.Namespace) -> str:
    """The topic prefix of --prefix or --fleet (exactly one of them)."""
    if args.prefix and args.fleet:
        raise UsageError("give --fleet or --prefix, not both")
    if args.prefix:
        return check_prefix(args.prefix)
    if not args.fleet:
        raise UsageError("--fleet NAME is required (topics live under tinyfl/<fleet>/)")
    return default_prefix(args.fleet)


def keys_from_args(args: argparse.Namespace) -> Keyring | None:
    """The keyring of --keys, None without it (a fleet without keys)."""
    if args.keys is None:
        return None
    from tinyfl.provision import read_keyring  # cryptography is loaded only when needed

    return read_keyring(args.keys)
