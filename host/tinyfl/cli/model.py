"""`tinyfl model build`: a model folder from the user's data (tinyfl.model.build).

Needs the `model` extra (TensorFlow, ai-edge-litert); everything downstream runs on the model
folder without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfl.cli import Subparsers
from tinyfl.errors import UsageError

SUMMARY = "build a model folder (int8 backbone, initial head, test set) from a dataset"


def _groups(text: str | None) -> tuple[str, ...]:
    return tuple(g.strip() for g in text.split(",") if g.strip()) if text else ()


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    from tinyfl.model.budget import BOARDS

    parser = subparsers.add_parser(
        "model", help=SUMMARY, description="Model folders (subcommand: build).")
    commands = parser.add_subparsers(title="subcommands", metavar="<subcommand>", dest="model_cmd")
    b = commands.add_parser(
        "build",
        help="backbone from the source data, int8 conversion, checks, model folder",
        description=(
            "Split --data into the backbone's source, the fleet and the held-out test set, get a "
            "backbone (a built-in family trained on the source samples, --keras or --tflite), "
            "convert it to full int8 with the node's input codes, check every op against the "
            "node's kernels and the --board budget (exit 8 naming what does not fit), and write "
            "the model folder atomically: backbone.tflite, backbone.tfmb, backbone.h, "
            "head_init.npy, test.npz, metadata.json."),
    )
    b.add_argument("--data", type=Path, required=True, metavar="FILE.npz",
                   help="the dataset (tinyfl data fetch / import-csv, or your own npz)")
    b.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="the model folder to write, e.g. models/pump")
    s = b.add_argument_group("split (a group is in exactly one of source, fleet, test)")
    s.add_argument("--source-groups", metavar="G1,G2", help="groups that pretrain the backbone")
    s.add_argument("--test-groups", metavar="G1,G2", help="held-out groups the runs score on")
    s.add_argument("--source-fraction", type=float, default=0.0, metavar="F",
                   help="data without groups: this share of the rows pretrains the backbone")
    s.add_argument("--split-seed", type=int, default=0, help="seed of --source-fraction's rows")
    s.add_argument("--test-data", type=Path, metavar="FILE.npz", help="a separate held-out file")
    m = b.add_argument_group("backbone (default: the family for the input's shape)")
    src = m.add_mutually_exclusive_group()
    src.add_argument("--family", metavar="NAME[:k=v,...]",
                     help="conv1d (windows), mlp (feature vectors), dscnn (2-D inputs), with "
                          "sizes, e.g. conv1d:c1=16,c2=32 or mlp:hidden=128-64,input_noise=0.2")
    src.add_argument("--keras", type=Path, metavar="FILE.keras",
                     help="your trained classifier: layers up to the last Dense are the backbone")
    src.add_argument("--tflite", type=Path, metavar="FILE",
                     help="your full-int8 backbone whose output is the embedding")
    m.add_argument("--dsp", action="append", metavar="BLOCK[:k=v,...]",
                   help="a DSP block the node runs on every raw window before the backbone; "
                        "repeat for several, features concatenated in order: spectral[:bands=N] "
                        "(log2 band energies of each channel's FFT), stats (RMS, peak, crest "
                        "factor, zero-crossing rate, skewness, kurtosis per channel), "
                        "mel:rate=HZ,frame=N[,hop=H,mels=M,coeffs=K,scale=mel|log,fmin=F,fmax=F] "
                        "(framed log mel energies or MFCC); docs/DSP.md")
    m.add_argument("--augment", metavar="SPEC", help="imu-rotation:COPIES[,deg=D] for x/y/z "
                   "channel triples")
    m.add_argument("--epochs", type=int, default=30, help="(default: %(default)s)")
    m.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    m.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    m.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: "
                   "%(default)s)")
    b.add_argument("--board", choices=tuple(BOARDS), default="qemu_cortex_m4",
                   help="flash/RAM budget to check (default: %(default)s)")
    return parser


def run(args: argparse.Namespace) -> int:
    if getattr(args, "model_cmd", None) != "build":
        raise UsageError("missing subcommand: tinyfl model build --data FILE --out DIR ...")
    from tinyfl.data.splits import SplitRule
    from tinyfl.model.build import BuildConfig, build

    cfg = BuildConfig(
        data=args.data, out=args.out,
        split=SplitRule(_groups(args.source_groups), _groups(args.test_groups),
                        args.source_fraction, args.split_seed),
        test_data=args.test_data, family=args.family, keras=args.keras, tflite=args.tflite,
        augment=args.augment, dsp=tuple(args.dsp or ()), epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
        lr=args.lr, board=args.board, command=_command(args))
    build(cfg, log=lambda line: print(line, flush=True))
    return 0


def _command(args: argparse.Namespace) -> str:
    """The build as a command line (what metadata.json records), from the parsed options: the
    same build gives the same text however it was typed; --out is left out (it is the folder)."""
    from tinyfl.model.build import command_line

    argv = ["tinyfl", "model", "build"]
    for option in ("data", "source_groups", "test_groups", "source_fraction", "split_seed",
                   "test_data", "family", "keras", "tflite", "augment", "epochs", "seed",
                   "batch_size", "lr", "board"):
        value = getattr(args, option)
        if option == "augment":
            for block in args.dsp or ():
                argv += ["--dsp", block]
        if value is not None and value is not False and not (
                option in ("source_fraction", "split_seed") and not value):
            argv += [f"--{option.replace('_', '-')}", str(value)]
    return command_line(argv)
