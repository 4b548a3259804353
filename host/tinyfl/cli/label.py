"""`tinyfl label --node ID --label K [--for S] [--start-in S]`: an operator's label schedule for
one node that learns from a live sensor, signed with the node's frame key and published on its
label topic (docs/WIRE.md, "LABEL"). Parses and prints; tinyfl.coordinator.labels does the work.
"""

from __future__ import annotations

import argparse
import asyncio

from tinyfl.cli import Subparsers
from tinyfl.cli.broker_options import CREDENTIALS_HELP, broker_from_args
from tinyfl.cli.fleet_options import add_fleet_options, keys_from_args, prefix_from_args
from tinyfl.wire import NO_LABEL, Topics

SUMMARY = "send a node the labels of its sensor readings (a signed schedule of intervals)"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "label",
        help=SUMMARY,
        description=(
            "Publish a LABEL frame on <prefix>/nodes/<id>/label: from the moment the node "
            "receives it, its sensor windows are labelled by these intervals (none outside "
            "them), replacing its previous schedule. The node must be online (the frame is not "
            "retained) and, on a provisioned fleet, the frame is signed with the node's key "
            "from --keys. " + CREDENTIALS_HELP
        ),
    )
    add_fleet_options(parser, keys_help="the node's frame key signs the frame. Without it the "
                      "frame carries a CRC (a fleet without keys)")
    what = parser.add_argument_group("what (one of --label, --schedule, --clear)")
    what.add_argument("--node", required=True, metavar="ID", help="the node's id")
    choice = what.add_mutually_exclusive_group(required=True)
    choice.add_argument("--label", metavar="K", help="a class 0..k-1, or 'none'")
    choice.add_argument(
        "--schedule", metavar="SPEC",
        help="up to 8 intervals LABEL@START+DURATION in seconds after receipt, comma-separated "
        "and in order, e.g. '2@0+30,none@30+5,0@40+60'",
    )
    choice.add_argument("--clear", action="store_true",
                        help="an empty schedule: no label from now on")
    what.add_argument("--for", dest="duration", type=float, default=60.0, metavar="SECONDS",
                      help="with --label: how long it holds (default: %(default)s)")
    what.add_argument("--start-in", type=float, default=0.0, metavar="SECONDS",
                      help="with --label: seconds after receipt it starts (default: 0)")
    return parser


def run(args: argparse.Namespace) -> int:
    from tinyfl.coordinator.labels import parse_schedule, send_labels, single_interval

    if args.label is not None:
        intervals = single_interval(args.label, args.duration, args.start_in)
    else:
        intervals = parse_schedule("" if args.clear else args.schedule)
    topics = Topics(prefix_from_args(args))
    address = broker_from_args(args, credentials=True)
    sent = asyncio.run(send_labels(address, topics, args.node, intervals, keys_from_args(args)))
    label = sent.label
    print(f"sent {len(label.intervals)} interval(s) to {sent.topic} "
          f"({'signed' if sent.signed else 'CRC, unsigned'}, round {label.round_id}, "
          f"seq {label.seq}, {sent.frame_bytes} B)")
    for iv in label.intervals:
        name = "none" if iv.label == NO_LABEL else str(iv.label)
        print(f"  label {name:>5}  from +{iv.start_ms / 1000:g} s for {iv.duration_ms / 1000:g} s")
    return 0
