"""`tinyfl provision`: credentials and keys for a fleet, and its locked-down broker.

    tinyfl provision --fleet lab --nodes 16 --out secrets/lab       # node01..node16
    tinyfl provision --fleet lab --nodes ids.txt --out secrets/lab  # one id per line
    tinyfl provision revoke node07 --out secrets/lab                # retire a node
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfl.cli import Subparsers
from tinyfl.errors import UsageError

SUMMARY = "make a fleet's credentials, keys and broker configuration (docs/SECURITY.md)"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "provision", help=SUMMARY,
        description="Generate per-node MQTT credentials and 256-bit frame keys, a fleet key, "
                    "pairwise secure-aggregation seeds, each party's files (mode 0600, folders "
                    "0700) and a mosquitto configuration with a password file, an ACL and a TLS "
                    "listener (private CA). `revoke ID` retires a node. Secrets are never "
                    "printed.")
    parser.add_argument("action", nargs="*", metavar="revoke ID",
                        help="retire node ID from the folder given with --out")
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
    from tinyfl.provision import BrokerSettings, new_fleet, remove_node, write_fleet
    from tinyfl.wire import default_prefix

    if args.action:
        if len(args.action) != 2 or args.action[0] != "revoke":
            raise UsageError("usage: tinyfl provision revoke ID --out DIR")
        kept = remove_node(args.out, args.action[1])
        print(f"revoked {args.action[1]}: {len(kept.nodes)} nodes remain in {args.out}; restart "
              "or reload the broker (its password file and ACL changed)")
        return 0
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
