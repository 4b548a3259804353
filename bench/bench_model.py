#!/usr/bin/env python3
"""Backbones per family and dataset: build time, flash, scratch, instructions per sample on the
emulated Cortex-M4F, central-head accuracy, and how far TFLite Micro and XNNPACK are from the
reference. Writes bench/results/model.json and bench/model.md.

Rows: the committed model folders (models/har and models/watch: conv1d on IMU windows;
models/nsl-kdd: mlp on feature vectors) plus a dscnn on 2-D inputs, built here from the watch
windows' spectrograms (tinyfl.data.transforms, subjects 1-2 source, 9-10 held out, as
models/watch), plus the HAR and watch windows through a DSP stage (`--dsp` DSP_BLOCKS, the
committed recipes' split, an mlp on the features; docs/DSP.md). For each:

- build seconds, firmware blob bytes and the planned scratch arena: from the folder's
  metadata.json (written by `tinyfl model build`, which timed and measured them);
- instructions per sample: one input through `backbone_run` on QEMU mps2-an386 with
  `-icount shift=0` (firmware/src/bench, built with TINYFL_MODELS naming every folder), and for
  a model with a DSP stage one raw window through `dsp_stage_run` before it; the same image's
  per-block DSP figures (`bench dsp_*` lines) make the DSP cost table;
- central head: the node's SGD on every fleet sample's int8 embedding, scored on the held-out
  set (`tinyfl.model.evaluate.fit_head`, recorded by the build);
- TFLite Micro and LiteRT's default XNNPACK delegate against the reference interpreter
  (OpResolverType.BUILTIN_REF, the bit-exact ground truth): differing embedding bytes on up to
  SAMPLES held-out inputs.

    python bench/bench_model.py [--no-dscnn]
    python bench/bench_model.py --seeds 5 --model nsl-kdd   # seed spread, model_seeds.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.data.dataset import load_dataset, save_dataset
from tinyfl.data.packaged import RECIPES, cached
from tinyfl.data.splits import quantize, split_rows
from tinyfl.data.transforms import spectrograms
from tinyfl.model.artifacts import ModelArtifacts, load_artifacts
from tinyfl.model.build import embed, micro_embed

SAMPLES = 300  # held-out inputs for the TFLite Micro / XNNPACK comparison
COMMITTED = ("har", "nsl-kdd", "watch")
# firmware/src/bench: "bench backbone_NAME instructions_per_op=N" and "... _arena_bytes value=N"
INSTRUCTIONS_LINE = re.compile(r"^bench backbone_(\S+) instructions_per_op=([\d.]+)")
STAGE_LINE = re.compile(r"^bench dsp_stage_(\S+) instructions_per_op=([\d.]+)")
DSP_BLOCK_LINE = re.compile(r"^bench (dsp_(?!stage_)\S+) instructions_per_op=([\d.]+)")
DSP_BLOCKS = ("spectral:bands=16", "stats")
DSP_DATASETS = ("har", "watch")
ARENA_LINE = re.compile(r"^bench backbone_(\S+)_arena_bytes value=(\d+)")


def held_out(art: ModelArtifacts, data: Path, test: Path | None) -> np.ndarray:
    """Up to SAMPLES held-out inputs of a model as int8 codes (evenly spread)."""
    dataset = load_dataset(test if test else data, require_every_class=False)
    if test is None:
        dataset = dataset.select(split_rows(dataset, art.split).test)
    rows = np.linspace(0, len(dataset) - 1, min(SAMPLES, len(dataset))).astype(int)
    return quantize(dataset.x[rows], art.input_scale, art.input_zero_point)


def xnnpack_embed(tflite: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)  # the default: XNNPACK delegate
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for i in range(x.shape[0]):
        interp.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x[i:i + 1])
        interp.invoke()
        rows.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(rows).astype(np.int8)


def differing(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"bytes": int((diff != 0).sum()), "of": int(diff.size),
            "share": float((diff != 0).mean()), "max_abs": int(diff.max())}


def instructions(folders: list[Path]) -> dict[str, dict[str, int]]:
    """{model name: {"instructions": per sample, "arena_bytes": ..., "dsp_instructions": ...}}
    on the emulated board, and under "dsp blocks" {bench name: instructions} of the DSP blocks."""
    env = {**os.environ, "TINYFL_MODELS": " ".join(str(f) for f in folders)}
    subprocess.run(["pio", "run", "-s", "-e", "qemu_bench"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=900)
    out = subprocess.run(
        ["qemu-system-arm", "-machine", "mps2-an386", "-icount", "shift=0", "-nographic",
         "-monitor", "none", "-serial", "stdio", "-semihosting-config", "enable=on,target=native",
         "-kernel", ".pio/build/qemu_bench/program.elf"], cwd=ROOT, capture_output=True,
        text=True, timeout=900, check=True).stdout
    found: dict[str, dict[str, int]] = {}
    for line in out.splitlines():
        for key, pattern in (("instructions", INSTRUCTIONS_LINE), ("arena_bytes", ARENA_LINE),
                             ("dsp_instructions", STAGE_LINE)):
            m = pattern.match(line)
            if m:
                found.setdefault(m.group(1), {})[key] = round(float(m.group(2)))
        m = DSP_BLOCK_LINE.match(line)
        if m:
            found.setdefault("dsp blocks", {})[m.group(1)] = round(float(m.group(2)))
    subprocess.run(["pio", "run", "-s", "-e", "qemu_bench"], cwd=ROOT, check=True,
                   capture_output=True, timeout=900)  # back to the default image
    return found


def model_build(data: Path, args: list[str], out: Path, capture_output: bool = False) -> None:
    """`tinyfl model build --data DATA ARGS --out OUT` with this checkout's package."""
    subprocess.run([sys.executable, "-m", "tinyfl.cli.main", "-q", "model", "build", "--data",
                    str(data), *args, "--out", str(out)], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "host")},
                   capture_output=capture_output)


def build_dscnn(workdir: Path) -> tuple[Path, Path]:
    """The watch windows as spectrograms and a dscnn model folder built from them."""
    data = workdir / "watch-spectra.npz"
    save_dataset(data, spectrograms(load_dataset(cached("watch").data)))
    out = workdir / "watch-spectra"
    args = list(RECIPES["watch"])
    args[args.index("conv1d")] = "dscnn"
    args = [a for a in args if a not in ("--augment", "imu-rotation:8")]
    model_build(data, args, out)
    return out, data


def build_dsp(workdir: Path, name: str) -> tuple[Path, Path]:
    """A model folder of dataset `name`'s windows through a DSP stage of DSP_BLOCKS, with the
    committed recipe's split (no augmentation: it rotates raw windows)."""
    data = cached(name).data
    out = workdir / f"{name}-spectral"
    args = list(RECIPES[name])
    args = args[:args.index("--family")] + ["--epochs", "40"]
    for block in DSP_BLOCKS:
        args += ["--dsp", block]
    model_build(data, args, out)
    return out, data


def row(art: ModelArtifacts, data: Path, test: Path | None,
        counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    meta = art.metadata
    tflite = (art.folder / "backbone.tflite").read_bytes()
    raw = held_out(art, data, test)
    # the backbone's input: the raw codes, or the DSP stage's features of them
    codes = art.stage.run(raw) if art.stage is not None else raw
    reference = embed(tflite, codes)
    assert np.array_equal(art.embed(raw.reshape(len(raw), -1)), reference.reshape(
        len(codes), -1)), "numpy stage and backbone differ from LiteRT"
    backbone = meta["backbone"]
    return {
        "model": art.name,
        "family": backbone.get("family", backbone["from"]),
        "input": meta["input"]["shape"],
        "dsp": art.stage.describe() if art.stage is not None else None,
        "dsp_instructions_per_window": counts.get(art.name, {}).get("dsp_instructions"),
        "classes": len(art.classes),
        "build_seconds": meta["build_seconds"],
        "firmware_blob_bytes": meta["firmware_blob_bytes"],
        "arena_bytes": meta["activation_scratch_bytes"],
        "node_arena_bytes": counts.get(art.name, {}).get("arena_bytes"),
        "instructions_per_sample": counts.get(art.name, {}).get("instructions"),
        "central_head_test_accuracy": meta["accuracy"]["central_head_test"],
        "initial_head_test_accuracy": meta["accuracy"]["initial_head_test"],
        "tflite_micro_vs_reference": differing(micro_embed(tflite, codes), reference),
        "xnnpack_vs_reference": differing(xnnpack_embed(tflite, codes), reference),
        "compared_inputs": len(codes),
    }


def markdown(rows: list[dict[str, Any]], dsp_blocks: dict[str, int]) -> str:
    lines = [
        "# Backbones per family and dataset",
        "",
        (f"Recorded {time.strftime('%Y-%m-%d')} by `python bench/bench_model.py` (raw numbers in "
        "`results/model.json`; how each figure is measured: the script's docstring). "
        "Instructions: QEMU mps2-an386 `-icount shift=0`, arm-none-eabi-gcc 12 `-Os`; time at "
        "64 MHz assumes one instruction per cycle."),
        "",
        ("| model | family | input | DSP stage | build (s) | blob (B) | arena (B) | DSP instructions "
         "| backbone instructions | ms at 64 MHz | central head | initial head |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ins, dsp = r["instructions_per_sample"], r.get("dsp_instructions_per_window")
        total = None if ins is None else ins + (dsp or 0)
        lines.append(
            f"| {r['model']} | {r['family']} | {' x '.join(map(str, r['input']))} | "
            f"{r.get('dsp') or 'none'} | "
            f"{r['build_seconds']} | {r['firmware_blob_bytes']} | {r['arena_bytes']} | "
            f"{dsp if dsp is not None else '-'} | {ins if ins is not None else 'n/a'} | "
            f"{'n/a' if total is None else f'{total / 64e3:.1f}'} | "
            f"{100 * r['central_head_test_accuracy']:.2f}% | "
            f"{100 * r['initial_head_test_accuracy']:.2f}% |")
    lines += dsp_section(rows, dsp_blocks)
    lines += [
        "",
        "## Other interpreters against the reference",
        "",
        ("Embedding bytes that differ from LiteRT's reference interpreter (BUILTIN_REF), which the "
        "node and the numpy backbone equal byte for byte, on evenly spread held-out inputs:"),
        "",
        "| model | inputs | TFLite Micro | XNNPACK (LiteRT default) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        t, x = r["tflite_micro_vs_reference"], r["xnnpack_vs_reference"]
        lines.append(
            f"| {r['model']} | {r['compared_inputs']} | {t['bytes']} of {t['of']} "
            f"({100 * t['share']:.2f}%, at most {t['max_abs']}) | {x['bytes']} of {x['of']} "
            f"({100 * x['share']:.2f}%, at most {x['max_abs']}) |")
    return "\n".join(lines) + "\n"


def dsp_section(rows: list[dict[str, Any]], dsp_blocks: dict[str, int]) -> list[str]:
    """The DSP front-end against raw windows per dataset, and the per-block cost table."""
    by_name = {r["model"]: r for r in rows}
    lines = ["", "## DSP front-end against raw windows", "",
             ("The same data, split and board budget (qemu_cortex_m4); the raw rows are the "
              "committed folders (conv1d with rotation augmentation), the DSP rows an mlp on the "
              "stage's features (no augmentation: it rotates raw windows). Central head: the "
              "node's SGD on every fleet sample's embedding, scored on the held-out set."), "",
             "| data | front-end | backbone | central head | initial head | instructions per window |",
             "|---|---|---|---|---|---|"]
    for name in DSP_DATASETS:
        for model in (name, f"{name}-spectral"):
            r = by_name.get(model)
            if r is None:
                continue
            ins = r["instructions_per_sample"]
            total = None if ins is None else ins + (r.get("dsp_instructions_per_window") or 0)
            lines.append(f"| {name} | {r.get('dsp') or 'raw windows'} | {r['family']} | "
                         f"{100 * r['central_head_test_accuracy']:.2f}% | "
                         f"{100 * r['initial_head_test_accuracy']:.2f}% | "
                         f"{total if total is not None else 'n/a'} |")
    if dsp_blocks:
        lines += ["", "## DSP blocks on the emulated Cortex-M4F", "",
                  ("One call on a pseudo-random int16 window (firmware/src/bench, `bench dsp_*`); "
                   "the flash of the stage (dsp.o, dsp_stage.o) is the `dsp` line of "
                   "bench/firmware.md."), "",
                  "| block | instructions | ms at 64 MHz |", "|---|---|---|"]
        lines += [f"| {k} | {v} | {v / 64e3:.2f} |" for k, v in sorted(dsp_blocks.items())]
    return lines


def seed_spread(name: str, seeds: int) -> dict[str, Any]:
    """models/NAME's recipe built with seeds 0 .. seeds-1: how much of a result is the seed's."""
    fetched = cached(name)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            out = Path(tmp) / f"{name}-seed{seed}"
            model_build(fetched.data, [*fetched.build_args, "--seed", str(seed)], out,
                        capture_output=True)
            acc = load_artifacts(out).metadata["accuracy"]["central_head_test"]
            print(f"{name} seed {seed}: central head {acc:.4f}", flush=True)
            runs.append({"seed": seed, "central_head_test_accuracy": acc})
    acc = np.array([r["central_head_test_accuracy"] for r in runs])
    return {"model": name, "runs": runs,
            "central_head_test_accuracy": {"min": float(acc.min()), "max": float(acc.max()),
                                           "mean": float(acc.mean()), "std": float(acc.std())}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-dscnn", action="store_true", help="only the committed folders")
    ap.add_argument("--seeds", type=int, default=0, metavar="N",
                    help="instead: rebuild --model with seeds 0..N-1, write model_seeds.json")
    ap.add_argument("--model", default="nsl-kdd", choices=COMMITTED)
    args = ap.parse_args(argv)
    if args.seeds > 0:
        out = ROOT / "bench" / "results" / "model_seeds.json"
        out.write_text(json.dumps({"python": platform.python_version(),
                                   "results": [seed_spread(args.model, args.seeds)]},
                                  indent=2) + "\n")
        print(f"wrote {out}")
        return 0
    with tempfile.TemporaryDirectory(prefix="tinyfl-bench-model-") as tmp:
        models = [(load_artifacts(n), cached(n).data, cached(n).test) for n in COMMITTED]
        if not args.no_dscnn:
            folder, data = build_dscnn(Path(tmp))
            models.append((load_artifacts(folder), data, None))
        for name in DSP_DATASETS:
            folder, data = build_dsp(Path(tmp), name)
            models.append((load_artifacts(folder), data, None))
        counts = instructions([art.folder for art, _, _ in models])
        rows = []
        for art, data, test in models:
            rows.append(row(art, data, test, counts))
            print(json.dumps(rows[-1]), flush=True)
    (ROOT / "bench" / "results" / "model.json").write_text(
        json.dumps({"python": platform.python_version(), "rows": rows}, indent=2) + "\n")
    (ROOT / "bench" / "model.md").write_text(markdown(rows, counts.get("dsp blocks", {})))
    print("wrote bench/model.md and bench/results/model.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
