#!/usr/bin/env python3
"""Writes the int8 backbone test vectors: a tiny full-int8 .tflite, its firmware blob, and the
reference interpreter's outputs for 64 random int8 inputs.

    python tools/gen_backbone_vectors.py           # (re)write testvectors/backbone/
    python tools/gen_backbone_vectors.py --check   # exit 1 unless the stored outputs equal what
                                                   # the reference interpreter computes now from
                                                   # the stored .tflite (and the blob is current)

Needs TensorFlow and ai-edge-litert (the `model` extra); the tests that read these files do not.

The model is deliberately small and untrained (fixed seeds): it exists to pin the int8 arithmetic
of every op the HAR backbone uses, not to be accurate. Keras Conv1D(8, 5, relu) -> MaxPool1D(2)
-> Conv1D(16, 5, relu) -> GlobalAveragePooling1D -> Dense(32, relu) on (128, 6) windows; the
converter lowers it to EXPAND_DIMS / CONV_2D / RESHAPE / MAX_POOL_2D / MEAN / FULLY_CONNECTED.

The reference is LiteRT's interpreter with the reference op resolver and no delegate
(OpResolverType.BUILTIN_REF), whose kernels implement TFLite's integer-only arithmetic (Jacob et
al., CVPR 2018). When tflite-micro is installed it is run too and its
differences are reported (its MEAN and per-channel FULLY_CONNECTED kernels round differently from
LiteRT's reference kernels; the node follows LiteRT). The numpy backbone must agree exactly.

TF's converter is not guaranteed to be byte-deterministic across versions, so `--check` does not
rebuild the model: it re-runs the reference on the stored .tflite and inputs and compares.

Files (layouts in testvectors/backbone/README.md): tiny.tflite, tiny.tfmb (firmware model blob,
docs/MODEL.md), tiny_io.bin (TFTV container: x int8 (64, 128, 6), y int8 (64, 32)); and the same
three for `branchy` (build_branchy_tflite: an ADD branch, depthwise, average pool, pad, RELU;
x int8 (64, 32, 3), y int8 (64, 16)).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.model.build import convert, embed, micro_embed
from tinyfl.model.firmware_blob import export_blob
from tinyfl.model.tflite import read_model

OUT = ROOT / "testvectors" / "backbone"
N_INPUTS = 64
SEED = 20240604
WINDOW, CHANNELS, EMBED = 128, 6, 32
BRANCHY_SHAPE, BRANCHY_EMBED = (32, 3), 16


def _vector_container() -> ModuleType:
    """The repo's one Python reader/writer of the TFTV container (tools/gen_head_vectors.py)."""
    spec = importlib.util.spec_from_file_location("gen_head_vectors", ROOT / "tools" / "gen_head_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_tflite() -> bytes:
    """Builds the seeded Keras model and converts it to full int8 (int8 input and output)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    init = tf.keras.initializers
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input((WINDOW, CHANNELS)),
            tf.keras.layers.Conv1D(8, 5, activation="relu", kernel_initializer=init.GlorotUniform(1),
                                   bias_initializer=init.RandomUniform(-0.1, 0.1, seed=2)),
            tf.keras.layers.MaxPooling1D(2),
            tf.keras.layers.Conv1D(16, 5, activation="relu", kernel_initializer=init.GlorotUniform(3),
                                   bias_initializer=init.RandomUniform(-0.1, 0.1, seed=4)),
            tf.keras.layers.GlobalAveragePooling1D(),
            tf.keras.layers.Dense(EMBED, activation="relu", kernel_initializer=init.GlorotUniform(5),
                                  bias_initializer=init.RandomUniform(-0.1, 0.1, seed=6)),
        ]
    )
    rep_rng = np.random.default_rng(SEED + 1)
    rep = rep_rng.normal(0.0, 1.0, size=(100, WINDOW, CHANNELS)).astype(np.float32)
    return convert(model, rep)


def build_branchy_tflite() -> bytes:
    """The second test model: a graph, not a chain, with the ops the HAR backbone does not use.
    Conv1D(8, 3, relu) -> ZeroPadding1D(2) -> DepthwiseConv1D(3, depth multiplier 2) ->
    Conv1D(16, 1) -> Add(with a Conv1D(16, 3) shortcut) -> ReLU -> AveragePooling1D(2) ->
    GlobalAveragePooling1D -> Dense(16) on (32, 3) windows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED + 10)
    L = tf.keras.layers
    inp = tf.keras.Input(BRANCHY_SHAPE)
    x = L.Conv1D(8, 3, activation="relu", bias_initializer="random_normal")(inp)
    x = L.ZeroPadding1D(2)(x)
    main = L.DepthwiseConv1D(3, depth_multiplier=2, bias_initializer="random_normal")(x)
    main = L.Conv1D(16, 1, bias_initializer="random_normal")(main)
    short = L.Conv1D(16, 3, bias_initializer="random_normal")(x)
    y = L.ReLU()(L.Add()([main, short]))
    y = L.AveragePooling1D(2)(y)
    y = L.GlobalAveragePooling1D()(y)
    out = L.Dense(BRANCHY_EMBED, bias_initializer="random_normal")(y)
    rep = np.random.default_rng(SEED + 11).normal(0.0, 1.0, size=(100, *BRANCHY_SHAPE))
    return convert(tf.keras.Model(inp, out), rep.astype(np.float32))


def make_inputs() -> npt.NDArray[np.int8]:
    """N random int8 windows spanning the whole int8 range (exercises saturation too)."""
    rng = np.random.default_rng(SEED + 2)
    return rng.integers(-128, 128, size=(N_INPUTS, WINDOW, CHANNELS), dtype=np.int8)


def cross_check(tflite: bytes, x: npt.NDArray[np.int8], y: npt.NDArray[np.int8]) -> list[str]:
    """Differences between `y` and the other implementations that must equal it."""
    problems = []
    try:
        micro: npt.NDArray[np.int8] | None = micro_embed(tflite, x)
    except ImportError:  # tflite-micro is the optional `model-check` extra
        micro = None
    if micro is not None:
        # Informational: TFLM's MEAN and per-channel FULLY_CONNECTED kernels round differently
        # from LiteRT's reference kernels (the node follows LiteRT), so off-by-one bytes are
        # expected here and are reported, not failed.
        diff = micro.astype(np.int16) - y
        print(f"note: tflite-micro differs in {int((diff != 0).sum())} of {diff.size} bytes "
              f"(max |diff| {int(np.abs(diff).max())})")
    from tinyfl.model.backbone import run_model

    host = np.stack([run_model(read_model(tflite), x[i]) for i in range(x.shape[0])])
    if not np.array_equal(host.reshape(y.shape), y):
        problems.append(f"numpy backbone differs on {int((host.reshape(y.shape) != y).any(axis=1).sum())} inputs")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the stored files, write nothing")
    args = ap.parse_args(argv)
    tv = _vector_container()

    if args.check:
        problems = []
        for name in ("tiny", "branchy"):
            tflite = (OUT / f"{name}.tflite").read_bytes()
            arrays = tv.unpack((OUT / f"{name}_io.bin").read_bytes())
            x, y = arrays["x"], arrays["y"]
            if not np.array_equal(embed(tflite, x), y):
                problems.append(f"{name}: stored outputs differ from the reference interpreter")
            if (OUT / f"{name}.tfmb").read_bytes() != export_blob(read_model(tflite)):
                problems.append(f"{name}.tfmb is not the export of {name}.tflite")
            problems += [f"{name}: {p}" for p in cross_check(tflite, x, y)]
        for p in problems:
            print(f"check failed: {p}", file=sys.stderr)
        print(f"{'FAIL' if problems else 'ok'}: tiny and branchy checked")
        return 1 if problems else 0

    OUT.mkdir(parents=True, exist_ok=True)
    problems = []
    rng = np.random.default_rng(SEED + 3)
    branchy_x = rng.integers(-128, 128, size=(N_INPUTS, *BRANCHY_SHAPE), dtype=np.int8)
    for name, tflite, x in (("tiny", build_tflite(), make_inputs()),
                            ("branchy", build_branchy_tflite(), branchy_x)):
        y = embed(tflite, x)
        (OUT / f"{name}.tflite").write_bytes(tflite)
        (OUT / f"{name}.tfmb").write_bytes(export_blob(read_model(tflite)))
        (OUT / f"{name}_io.bin").write_bytes(tv.pack({"x": x, "y": y}))
        problems += [f"{name}: {p}" for p in cross_check(tflite, x, y)]
        print(f"wrote {OUT}: {name}.tflite ({len(tflite)} B), {x.shape[0]} reference outputs")
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
