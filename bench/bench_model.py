#!/usr/bin/env python3
"""Backbone accuracy: a head trained centrally on the fleet's int8 embeddings, tested on held-out
data, for the committed models/<task>/ artifacts. Writes bench/results/model.json.

For each task: the fleet's and the test split's int8 inputs (tinyfl.model.build.load_task: HAR
= UCI HAPT fleet users / test users 2, 4, 9, 10, 12, 13, 18, 20, 24; NSL-KDD = the 80% of
KDDTrain+_20Percent not used for pretraining / KDDTest+) go through the frozen int8 backbone in
LiteRT's reference interpreter (OpResolverType.BUILTIN_REF; the numpy backbone when LiteRT is
missing, slower), the embeddings are dequantized as the node does, and a k x (d + 1) head is
trained from zeros with the node's own SGD (tinyfl.model.head.train_local via
tinyfl.model.evaluate.fit_head: 30 epochs, batch 32, lr 0.05, one pass over all fleet samples,
i.e. centralized). The float (Keras) figures come from metadata.json, measured the same way by
`tinyfl model build` (which has TensorFlow). The numpy backbone's agreement with LiteRT is
measured on the first 256 test inputs.

    python bench/bench_model.py [--tasks har,nsl-kdd]
    python bench/bench_model.py --tasks nsl-kdd --seeds 5   # seed spread, model_seeds.json

Targets (issue 4): HAR >= 90% (6 classes), NSL-KDD >= 78% (5 classes).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.model.backbone import prepare, run
from tinyfl.model.build import embed, load_task
from tinyfl.model.evaluate import HEAD_BATCH, HEAD_EPOCHS, HEAD_LR, dequantize, fit_head
from tinyfl.model.tflite import read_model

TARGETS = {"har": 0.90, "nsl-kdd": 0.78}
AGREEMENT_SAMPLES = 256


def _embed(tflite: bytes, x: np.ndarray) -> tuple[np.ndarray, str]:
    try:
        importlib.import_module("ai_edge_litert.interpreter")
    except ImportError:
        layers = prepare(read_model(tflite))
        return np.stack([run(layers, xi) for xi in x]), "numpy backbone"
    return embed(tflite, x), "LiteRT BUILTIN_REF"


def bench(task: str, folder: Path | None = None) -> dict[str, Any]:
    folder = folder if folder is not None else ROOT / "models" / task
    meta = json.loads((folder / "metadata.json").read_text())
    tflite = (folder / "backbone.tflite").read_bytes()
    data = load_task(task)
    t0 = time.monotonic()
    fleet_q, engine = _embed(tflite, data.fleet[0])
    test_q, _ = _embed(tflite, data.test[0])
    t_embed = time.monotonic() - t0
    e = meta["embedding"]
    fit = fit_head(dequantize(fleet_q, e["scale"], e["zero_point"]), data.fleet[1],
                   dequantize(test_q, e["scale"], e["zero_point"]), data.test[1],
                   len(data.classes))
    layers = prepare(read_model(tflite))
    n = min(AGREEMENT_SAMPLES, len(data.test[1]))
    same = sum(np.array_equal(run(layers, data.test[0][i]), test_q[i]) for i in range(n))
    training = meta["training"]
    return {
        "task": task,
        "model_hash": meta["model_hash"],
        "classes": len(data.classes),
        "fleet_samples": len(data.fleet[1]),
        "test_samples": len(data.test[1]),
        "embeddings_from": engine,
        "embed_seconds": round(t_embed, 2),
        "head": {"init": "zeros", "epochs": HEAD_EPOCHS, "batch_size": HEAD_BATCH, "lr": HEAD_LR},
        "int8_test_accuracy": fit.test_accuracy,
        "int8_fleet_train_accuracy": fit.train_accuracy,
        "float_test_accuracy": training["float_test_accuracy_fleet_head"],
        "pretraining_head_int8_test_accuracy": training["int8_test_accuracy_pretraining_head"],
        "pretraining_head_float_test_accuracy": training["float_test_accuracy_pretraining_head"],
        "int8_float_prediction_agreement": training["int8_float_prediction_agreement"],
        "numpy_backbone_equal_to_litert": f"{same}/{n}",
        "target": TARGETS[task],
        "target_met": fit.test_accuracy >= TARGETS[task],
        "firmware_blob_bytes": meta["firmware_blob_bytes"],
        "activation_scratch_bytes": meta["activation_scratch_bytes"],
    }


def seed_spread(task: str, seeds: int) -> dict[str, Any]:
    """The same measurement on backbones built (`tinyfl model build`, default options) with seeds
    0 .. seeds-1 in a temporary folder: how much of a result is the training seed's."""
    import tempfile

    from tinyfl.model.build import DEFAULT_EPOCHS, BuildConfig, build

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            out = Path(tmp) / f"{task}-seed{seed}"
            build(BuildConfig(task, out, DEFAULT_EPOCHS[task], seed), log=lambda _: None)
            r = bench(task, out)
            print(f"{task} seed {seed}: int8 {r['int8_test_accuracy']:.4f}", flush=True)
            runs.append({"seed": seed, "model_hash": r["model_hash"],
                         "int8_test_accuracy": r["int8_test_accuracy"],
                         "float_test_accuracy": r["float_test_accuracy"]})
    acc = np.array([r["int8_test_accuracy"] for r in runs])
    return {"task": task, "epochs": DEFAULT_EPOCHS[task], "runs": runs,
            "int8_test_accuracy": {"min": float(acc.min()), "max": float(acc.max()),
                                   "mean": float(acc.mean()), "std": float(acc.std())}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="har,nsl-kdd")
    ap.add_argument("--seeds", type=int, default=0, metavar="N",
                    help="instead: rebuild each task with seeds 0..N-1 (needs the model extra) "
                         "and write results/model_seeds.json")
    args = ap.parse_args(argv)
    if args.seeds > 0:
        spread = [seed_spread(task, args.seeds) for task in args.tasks.split(",")]
        out = ROOT / "bench" / "results" / "model_seeds.json"
        out.write_text(json.dumps({"python": platform.python_version(), "results": spread},
                                  indent=2) + "\n")
        print(f"wrote {out}")
        return 0
    results = []
    for task in args.tasks.split(","):
        r = bench(task)
        results.append(r)
        print(f"{task}: int8 {r['int8_test_accuracy']:.4f} (float {r['float_test_accuracy']:.4f}, "
              f"target {r['target']:.2f}: {'met' if r['target_met'] else 'NOT met'}); numpy == "
              f"LiteRT on {r['numpy_backbone_equal_to_litert']}", flush=True)
    out = ROOT / "bench" / "results" / "model.json"
    out.write_text(json.dumps({"python": platform.python_version(), "results": results},
                              indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
