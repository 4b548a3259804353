"""`tinyfl export`: a run's trained head on its backbone, as one deployable .tflite (and C header)
(tinyfl.coordinator.export_run: checked against the host with LiteRT before it is written)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfl.cli import Subparsers
from tinyfl.errors import UsageError

SUMMARY = "export a run's trained head with its backbone as one .tflite (and C header)"
DEFAULT_SAMPLES = 64  # tinyfl.coordinator.export_run.DEFAULT_SAMPLES


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help=SUMMARY,
        description=(
            "Build the deployable model of a run: the int8 backbone of its model folder, then "
            "DEQUANTIZE, the run's trained head as a float32 FULLY_CONNECTED, and SOFTMAX. Input: "
            "the backbone's int8 window; output: float32 class probabilities. The result is "
            "checked against the host computation with LiteRT and written atomically."
        ),
    )
    parser.add_argument("--run", type=Path, required=True,
                        help="run folder written by tinyfl coordinate (holds checkpoint.npz)")
    parser.add_argument("--out", type=Path, required=True, help="output .tflite file")
    parser.add_argument("--header", type=Path,
                        help="also write a C header of the .tflite bytes (tinyfl_deploy_model)")
    parser.add_argument("--model", help="model folder (default: the one the run trained with)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help="sample inputs for the LiteRT check; 0 skips it "
                             "(default: %(default)s)")
    return parser


def _output_path(path: Path, option: str) -> Path:
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: folder {path.parent} does not exist")
    return path


def run(args: argparse.Namespace) -> int:
    from tinyfl.coordinator.export_run import export_run
    from tinyfl.model.export import DEFAULT_HEADER_NAME

    out = _output_path(args.out, "--out")
    header = _output_path(args.header, "--header") if args.header is not None else None
    if header is not None and header.resolve() == out.resolve():
        raise UsageError("--header and --out name the same file")
    done = export_run(args.run, out, header, args.model, args.samples)
    art = done.artifacts
    shape = "x".join(str(v) for v in art.input_shape)
    print(f"exported {args.run} (round {done.round}) on {done.folder} (model "
          f"{art.model_hash.hex()})")
    print(f"  {out}: {done.size:,} bytes; int8 input {shape} (scale {art.input_scale:.6g}, "
          f"zero point {art.input_zero_point}) -> float32 probabilities of {len(art.classes)} "
          f"classes: {', '.join(art.classes)}")
    if header is not None:
        print(f"  {header}: C header, array {DEFAULT_HEADER_NAME}")
    print(f"  {done.verdict}")
    return 0
