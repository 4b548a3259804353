#!/usr/bin/env python3
"""Turns a full-int8 .tflite backbone into the firmware model blob and its C header.

    python tools/export_firmware_model.py MODEL.tflite --blob OUT.tfmb [--header OUT.h] [--name N]

The blob (docs/MODEL.md) carries the prepared layers: int8 weights, int32 biases, per-channel
multipliers and shifts, zero points and clamps, so the node runs TFLite's integer arithmetic
without re-deriving anything. Exit code 8 (ModelError) for a corrupt model or an unsupported op;
nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.model.firmware_blob import blob_c_header, export_blob
from tinyfl.model.tflite import ModelError, read_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--blob", type=Path, required=True)
    ap.add_argument("--header", type=Path)
    ap.add_argument("--name", default="tinyfl_model_blob")
    ap.add_argument("--task", default="", help="task name written into the header")
    args = ap.parse_args(argv)
    try:
        blob = export_blob(read_model(args.model.read_bytes()))
        header = blob_c_header(blob, args.name, args.task) if args.header else None
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args.blob.write_bytes(blob)
    if args.header and header is not None:
        args.header.write_text(header)
    print(f"{args.blob}: {len(blob)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
