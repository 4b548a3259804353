"""`tinyfl model build`: train, quantize and export a task's int8 backbone (tinyfl.model.build).

Needs the `model` extra (TensorFlow, ai-edge-litert); everything downstream runs on the committed
artifacts in models/<task>/ without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfl.cli import Subparsers
from tinyfl.errors import UsageError

SUMMARY = "build a task's int8 backbone and its artifacts (needs the model extra)"


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "model", help=SUMMARY, description="Backbone models (subcommand: build)."
    )
    commands = parser.add_subparsers(title="subcommands", metavar="<subcommand>", dest="model_cmd")
    b = commands.add_parser(
        "build",
        help="train on the source split, convert to full int8, write models/<task>/",
        description=(
            "Train the task's Keras backbone on its source split only, convert it to a full-int8 "
            ".tflite whose input quantization is the node's data codes, export the firmware "
            "model blob and C header, and write backbone.tflite, backbone.tfmb, backbone.h, "
            "head_init.npy and metadata.json atomically. Fails (exit 8) when the backbone "
            "exceeds 48 KB of weights or 16 KB of activation scratch."
        ),
    )
    b.add_argument("--task", required=True, choices=("har", "nsl-kdd"), help="dataset")
    b.add_argument("--out", type=Path, help="output folder (default: models/<task>)")
    b.add_argument("--epochs", type=int, help="training epochs (default: 40 HAR, 30 NSL-KDD)")
    b.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    b.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    return parser


def run(args: argparse.Namespace) -> int:
    if getattr(args, "model_cmd", None) != "build":
        raise UsageError("missing subcommand: tinyfl model build --task har|nsl-kdd")
    from tinyfl.model.build import DEFAULT_EPOCHS, BuildConfig, build

    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.task]
    if epochs < 1 or args.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be >= 1")
    out = args.out if args.out is not None else Path("models") / args.task
    build(BuildConfig(args.task, out, epochs, args.seed, args.batch_size),
          log=lambda s: print(s, flush=True))
    return 0
