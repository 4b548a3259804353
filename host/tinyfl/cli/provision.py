"""`tinyfl provision`: credentials and keys for a fleet, and its locked-down broker.

    tinyfl provision --fleet lab --nodes 16 --out secrets/lab       # node01..node16
    tinyfl provision --fleet lab --nodes ids.txt --out secrets/lab  # one id per line
    tinyfl provision revoke node07 --out secrets/lab                # retire a node
    tinyfl provision clear-retained node07 --out secrets/lab        # its retained topics, later
    tinyfl provision clear-retained --unknown --out secrets/lab     # of ids never provisioned
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tinyfl.cli import Subparsers
from tinyfl.errors import TinyFLError, TransportError, UsageError

if TYPE_CHECKING:
    from tinyfl.provision.retained import ClearReport
    from tinyfl.transport.address import BrokerAddress

SUMMARY = "make a fleet's credentials, keys and broker configuration (docs/SECURITY.md)"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "provision", help=SUMMARY,
        description="Generate per-node MQTT credentials and 256-bit frame keys, a fleet key, "
                    "pairwise secure-aggregation seeds, each party's files (mode 0600, folders "
                    "0700) and a mosquitto configuration with a password file, an ACL and a TLS "
                    "listener (private CA). `revoke ID` retires a node and deletes its retained "
                    "topics on the broker; `clear-retained ID...` or `clear-retained --unknown` "
                    "deletes retained topics of revoked or never provisioned ids. Secrets are "
                    "never printed.")
    parser.add_argument("action", nargs="*", metavar="revoke ID | clear-retained ID...",
                        help="retire node ID from the folder given with --out, or delete the "
                             "retained hello/status of ids no longer (or never) provisioned")
    parser.add_argument("--fleet", help="fleet name; topics are tinyfl/NAME/...")
    parser.add_argument("--nodes", metavar="N|FILE",
                        help="N nodes node01..nodeN, or a file with one node id per line")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="provisioning folder (created 0700)")
    parser.add_argument("--host", action="append", metavar="NAME",
                        help="a name or address the broker is reached as, for its TLS "
                             "certificate (repeatable; default localhost and 127.0.0.1)")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address the broker listens on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=1883, help="plain listener (default 1883)")
    parser.add_argument("--tls-port", type=int, default=8883, help="TLS listener (default 8883)")
    broker = parser.add_argument_group("revoke and clear-retained: the running broker")
    broker.add_argument("--broker", metavar="mqtts://HOST:PORT",
                        help="the broker to clear retained topics on, as the folder's admin "
                             "account (default: the TLS listener recorded at provisioning)")
    broker.add_argument("--ca-file", metavar="FILE",
                        help="CA of the broker's certificate (default: the fleet's broker/ca.crt)")
    broker.add_argument("--offline", action="store_true",
                        help="revoke: change the files only; clear the retained topics later")
    broker.add_argument("--unknown", action="store_true",
                        help="clear-retained: every id with retained topics that is not "
                             "provisioned in --out")
    broker.add_argument("--dry-run", action="store_true",
                        help="clear-retained: list what would be deleted, delete nothing")
    broker.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to reach the broker (default: %(default)s)")
    return parser


def _node_ids(spec: str) -> list[str]:
    if spec.isdigit():
        n = int(spec)
        if not 1 <= n <= 10_000:
            raise UsageError(f"--nodes must be 1..10000, got {n}")
        return [f"node{i:0{max(2, len(str(n)))}d}" for i in range(1, n + 1)]
    try:
        lines = Path(spec).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"--nodes {spec}: neither a number nor a readable file ({exc})") from exc
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def run(args: argparse.Namespace) -> int:
    from tinyfl.provision import BrokerSettings, new_fleet, write_fleet
    from tinyfl.wire import default_prefix

    if args.action:
        if args.action[0] == "revoke" and len(args.action) == 2:
            return _revoke(args, args.action[1])
        if args.action[0] == "clear-retained":
            return _clear_command(args, args.action[1:])
        raise UsageError("usage: tinyfl provision revoke ID --out DIR, or "
                         "tinyfl provision clear-retained ID...|--unknown --out DIR")
    if not args.fleet or not args.nodes:
        raise UsageError("--fleet NAME and --nodes N|FILE are required")
    if (args.out / "fleet.json").exists():
        raise UsageError(f"{args.out} already holds a provisioned fleet; revoke nodes there or "
                         "pick another --out")
    prefix = default_prefix(args.fleet)
    fleet = new_fleet(args.fleet, _node_ids(args.nodes))
    broker = BrokerSettings(tuple(args.host or ("localhost", "127.0.0.1")), args.bind,
                            args.port, args.tls_port)
    write_fleet(args.out, fleet, prefix, broker)
    print(f"fleet {args.fleet}: {len(fleet.nodes)} nodes provisioned in {args.out} (topics "
          f"{prefix}/...)")
    print(f"  broker: mosquitto -c {args.out / 'broker' / 'mosquitto.conf'} (plain "
          f"{broker.bind}:{broker.port}, TLS {broker.bind}:{broker.tls_port}, CA "
          f"{args.out / 'broker' / 'ca.crt'})")
    print(f"  coordinator: {args.out / 'coordinator.json'}; node files: {args.out / 'nodes'}/")
    return 0


def _revoke(args: argparse.Namespace, node_id: str) -> int:
    """The files first (the account is gone from the password file and ACL), then the broker:
    reload it, so the node's connection is dropped and its password refused, then delete the
    node's retained topics, so it vanishes from `fleet status` and the coordinator's registry."""
    from tinyfl.fleet.reload import RELOAD_HINT, reload_fleet_broker
    from tinyfl.provision import check_admin_url, remove_node

    if not args.offline:  # a bad --broker or --ca-file is refused before anything changes
        if args.broker:
            check_admin_url(args.broker)
        if args.ca_file and not Path(args.ca_file).is_file():
            raise UsageError(f"--ca-file {args.ca_file}: no such file")
    kept = remove_node(args.out, node_id)
    print(f"revoked {node_id}: {len(kept.nodes)} nodes remain in {args.out} (password file, ACL "
          "and coordinator.json rewritten)")
    pid = reload_fleet_broker(args.out)
    if pid is not None:
        print(f"  broker: reloaded (SIGHUP to the fleet's mosquitto, pid {pid})")
    else:
        print(f"  broker: not started by `tinyfl fleet up` here: {RELOAD_HINT}")
    later = f"tinyfl provision clear-retained {node_id} --out {args.out}" + (
        f" --broker {args.broker}" if args.broker else "") + (
        f" --ca-file {args.ca_file}" if args.ca_file else "")
    if args.offline:
        print(f"  retained topics: left on the broker (--offline); clear them with `{later}`")
        return 0
    try:
        address = _admin(args)
        report = _clear(address, args, [node_id])
    except TransportError as exc:
        raise TransportError(f"{node_id} is revoked (credentials and frame key removed), but its "
                             f"retained hello/status remain on the broker: {exc}. When it can be "
                             f"reached: `{later}`") from None
    _print_report(report, [node_id], address)
    return _outcome(report, later)


def _clear_command(args: argparse.Namespace, ids: list[str]) -> int:
    from tinyfl.provision import read_fleet
    from tinyfl.provision.retained import find_retained

    if bool(ids) == args.unknown:
        raise UsageError("clear-retained takes node ids or --unknown (one of the two)")
    for node_id in ids:  # any id a topic level can hold (fake ones too), but one level only
        if not node_id or any(c in node_id for c in "/+#\0"):
            raise UsageError(f"{node_id!r} is not one topic level (no '/', '+', '#')")
    fleet, prefix, _ = read_fleet(args.out)
    still = sorted(set(ids) & set(fleet.nodes))
    if still:
        # a provisioned node's retained HELLO is how the coordinator finds it after a restart
        raise UsageError(f"{', '.join(still)} still provisioned: revoke first "
                         "(`tinyfl provision revoke ID`)")
    address = _admin(args)
    if args.unknown:
        found = find_retained(address, prefix, timeout=args.timeout)
        ids = sorted(set(found) - set(fleet.nodes))
        print(f"{len(ids)} unknown id{'s' if len(ids) != 1 else ''} with retained topics under "
              f"{prefix}/nodes/ on {address.url}" + (": " + ", ".join(ids) if ids else ""))
        if not ids:
            return 0
    if args.dry_run:
        print("  --dry-run: nothing deleted")
        return 0
    report = _clear(address, args, ids)
    _print_report(report, ids, address)
    return _outcome(report, f"tinyfl provision clear-retained {' '.join(ids)} --out {args.out}")


def _admin(args: argparse.Namespace) -> BrokerAddress:
    from tinyfl.provision import admin_address

    return admin_address(args.out, args.broker, args.ca_file)


def _clear(address: BrokerAddress, args: argparse.Namespace, ids: list[str]) -> ClearReport:
    from tinyfl.provision import read_fleet
    from tinyfl.provision.retained import clear_retained

    _, prefix, _ = read_fleet(args.out)
    return clear_retained(address, prefix, ids, timeout=args.timeout)


def _print_report(report: ClearReport, ids: list[str], address: BrokerAddress) -> None:
    for node_id in ids:
        if node_id in report.cleared:
            print(f"  retained topics of {node_id} deleted on {address.url}: "
                  + ", ".join(report.cleared[node_id]))
        elif not any(t.split("/")[-2] == node_id for t in report.remaining):
            print(f"  no retained topics of {node_id} on {address.url}")


def _outcome(report: ClearReport, rerun: str) -> int:
    if report.remaining:
        raise TinyFLError(
            f"still retained after deleting: {', '.join(report.remaining)}. The broker took "
            "the delete but kept the message: it may not know the admin account or its ACL line "
            f"yet (reload it), or a client still publishes there; then `{rerun}`")
    return 0
