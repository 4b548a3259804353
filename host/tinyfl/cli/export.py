"""`tinyfl export`: a run's trained head on its backbone, as one deployable .tflite (and C header).

The model is built by tinyfl.model.export without TensorFlow. Before anything is written it is run
with LiteRT's reference kernels on deterministic sample inputs and compared with the host's numpy
backbone + head (argmax identical, probabilities within 1e-5); a disagreement fails with exit 8
and writes nothing. Without ai-edge-litert the check is skipped and the summary says so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinyfl.cli import Subparsers
from tinyfl.errors import UsageError

SUMMARY = "export a run's trained head with its backbone as one .tflite (and C header)"
DEFAULT_SAMPLES = 64
LITERT_MISSING = "ai-edge-litert is not installed (pip install 'tinyfl[model]')"


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
    parser.add_argument("--model", help="model folder (default: models/<the run's task>)")
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


def _default_model(run_dir: Path, task: str) -> str:
    """The folder the run trained with: `<task>:FOLDER` (`har:` or `nsl-kdd:`) in its
    config.json, else models/<task>."""
    try:
        spec = str(json.loads((run_dir / "config.json").read_text()).get("task", ""))
    except (OSError, ValueError, AttributeError):
        spec = ""
    name, _, folder = spec.partition(":")
    return folder if name == task and folder else task


def run(args: argparse.Namespace) -> int:
    from tinyfl.coordinator.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
    from tinyfl.files import atomic_write_all
    from tinyfl.model import export
    from tinyfl.model.artifacts import load_artifacts, model_dir
    from tinyfl.model.firmware_blob import export_blob
    from tinyfl.model.tflite import ModelError, read_model

    out = _output_path(args.out, "--out")
    header = _output_path(args.header, "--header") if args.header is not None else None
    if header is not None and header.resolve() == out.resolve():
        raise UsageError("--header and --out name the same file")
    if args.samples < 0:
        raise UsageError("--samples must be >= 0")
    run_dir: Path = args.run
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder at {run_dir}")
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{run_dir} has no {CHECKPOINT_NAME}: the run has not completed a "
                              "round yet, or this is not a folder written by tinyfl coordinate")
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)

    folder = model_dir(args.model if args.model else _default_model(run_dir, ckpt.task))
    if not args.model and not (folder / "metadata.json").is_file():
        raise ModelError(f"{run_dir} trained task {ckpt.task!r}, which has no model folder at "
                         f"{folder}; give the backbone's folder with --model")
    art = load_artifacts(folder)
    try:
        backbone = (folder / "backbone.tflite").read_bytes()
    except OSError as exc:
        raise ModelError(f"{folder}: cannot read backbone.tflite ({exc})") from exc
    # The model hash names the firmware blob; the .tflite is the one the fleet ran only if the
    # blob is derived from it.
    if export_blob(read_model(backbone)) != (folder / "backbone.tfmb").read_bytes():
        raise ModelError(f"{folder}: backbone.tflite is not the backbone of backbone.tfmb "
                         f"(model {art.model_hash.hex()}); rebuild the folder")
    export.check_run(ckpt, art, str(run_dir))

    tflite = export.build_deploy_model(
        backbone, ckpt.head,
        description=(f"TinyFL deployable model: backbone {art.model_hash.hex()} ({art.task}) + "
                     f"head of {run_dir.name} round {ckpt.round} + softmax"),
    )
    if args.samples:
        codes = export.sample_inputs(art.input_shape, art.input_zero_point, args.samples)
        check = export.verify(tflite, art, ckpt.head, codes)
        if check is None:
            verdict = f"LiteRT check skipped: {LITERT_MISSING}"
        elif not check.ok:
            raise ModelError(
                f"the exported model disagrees with the host computation on {args.samples} "
                f"sample inputs: argmax identical {check.argmax_equal}/{check.n}, max |dp| "
                f"{check.max_abs_diff:.3g} (limit {export.PROB_TOLERANCE:g}); nothing written")
        else:
            verdict = (f"LiteRT (reference kernels) = host on {check.n} sample inputs: argmax "
                       f"identical {check.argmax_equal}/{check.n}, max |dp| "
                       f"{check.max_abs_diff:.2g}")
    else:
        verdict = "LiteRT check skipped (--samples 0)"

    files = {out: tflite}
    if header is not None:
        files[header] = export.c_header(tflite, art.model_hash, art.task, art.classes).encode()
    atomic_write_all(files, durable=True)

    shape = "x".join(str(v) for v in art.input_shape)
    print(f"exported {run_dir} (round {ckpt.round}) on {folder} (model {art.model_hash.hex()})")
    print(f"  {out}: {len(tflite):,} bytes; int8 input {shape} (scale {art.input_scale:.6g}, "
          f"zero point {art.input_zero_point}) -> float32 probabilities of {len(art.classes)} "
          f"classes: {', '.join(art.classes)}")
    if header is not None:
        print(f"  {header}: C header, array {export.DEFAULT_HEADER_NAME}")
    print(f"  {verdict}")
    return 0
