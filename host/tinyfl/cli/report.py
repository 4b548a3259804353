"""`tinyfl report --run runs/<id>`: (re)draw a run folder's plots and report.html.

Reads metrics.jsonl, config.json and, when present, baselines.json (written by `tinyfl demo` or by
`tinyfl.report.write_report` with references); writes accuracy.png, bytes.png, participation.png
and report.html beside them. Works while a run is still going: it draws the rounds so far.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfl.cli import Subparsers

SUMMARY = "write a run folder's plots and self-contained report.html"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help=SUMMARY,
        description=(
            "Draw test accuracy, bytes and per-node participation per round from a run folder "
            "(metrics.jsonl, config.json, baselines.json if present) and write them with a "
            "self-contained report.html (images embedded, no external resources)."
        ),
    )
    parser.add_argument(
        "--run", required=True, type=Path, metavar="DIR", help="the run folder, e.g. runs/<id>"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from tinyfl.report import write_report  # matplotlib loads only for this command

    path = write_report(args.run)
    print(path)
    return 0
