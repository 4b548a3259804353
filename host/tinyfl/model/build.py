"""`tinyfl model build`: a model folder from the user's data, for any sensor.

Pipeline: read the dataset file (tinyfl.data.dataset) -> split it into the backbone's source, the
fleet and the held-out test set (tinyfl.data.splits, by group or by rows) -> fit the int8 input
quantization on the source samples -> get a backbone, one of:

- a built-in family chosen from the shape of one sample (tinyfl.model.families: `conv1d` for
  windows, `mlp` for feature vectors, `dscnn` for 2-D inputs), trained on the source samples;
- the user's trained Keras classifier (`--keras`): every layer up to its last Dense;
- the user's full-int8 .tflite (`--tflite`) whose output is the embedding; its own input
  quantization then defines the codes;

-> convert to full int8 with the source samples as the representative dataset (plus, for
symmetric codes, one sample holding the extreme codes, so the converter gives the input tensor
exactly the codes' scale and zero point) -> check every op against the node's kernels (exit 8
naming the op) and the per-board budget (tinyfl.model.budget) -> embed the fleet and test samples
with LiteRT's reference kernels, the bit-exact ground truth of the node -> write the folder.

Why this shape: the node runs a frozen int8 backbone and only trains its head, so the backbone is
learned from data the fleet never holds and its input tensor must be the node's int8 codes byte
for byte.

Reproducibility: `families.seed_everything` seeds Python, numpy and TF and turns on TF's op
determinism, so the same data, seed and options write the same ARTIFACTS byte for byte on the
same TF build; metadata.json then differs only in TIMING_FIELDS.

The model folder (written to a temporary folder and renamed into place, so a folder either is
complete or is the previous one; tinyfl.model.artifacts reads it): backbone.tflite, backbone.tfmb
+ backbone.h (the firmware model blob and its C header), head_init.npy (the initial softmax head,
k x (d + 1) float32, weights then the bias column, on the dequantized int8 embedding
(q - zp) * scale), test.npz (the held-out samples' int8 embeddings and labels: what the
coordinator scores every round on), metadata.json (input and embedding quantization, classes,
the split and the groups of each role, the data files' SHA-256, ops, sizes, budget, accuracies,
the command). The model hash nodes report is the first 8 bytes of SHA-256 of backbone.tfmb
(followed by the DSP stage's record when `--dsp` gives one: tinyfl.dsp.stage, docs/DSP.md).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.data.dataset import Dataset, load_dataset
from tinyfl.data.splits import SplitRule, fit_input_quantization, quantize, split_rows
from tinyfl.dsp.stage import FEATURE_SCALE, DspStage, fit_stage, parse_block_spec
from tinyfl.errors import BuildError, DatasetError, UsageError
from tinyfl.files import replace_folder
from tinyfl.model import families
from tinyfl.model.augment import augment, parse_augment
from tinyfl.model.budget import BOARDS, check_budget
from tinyfl.model.evaluate import dequantize, fit_head

__all__ = [
    "ARTIFACTS",
    "METADATA_VERSION",
    "TIMING_FIELDS",
    "BuildConfig",
    "BuildError",
    "build",
    "convert",
    "embed",
    "micro_embed",
    "sizes",
]

METADATA_VERSION = 2
# What a build writes besides metadata.json. With the same data, seed, options, tool versions and
# machine, two builds write these byte for byte, and metadata.json differs only in TIMING_FIELDS
# (top-level keys measured with a clock).
ARTIFACTS = ("backbone.tflite", "backbone.tfmb", "backbone.h", "head_init.npy", "test.npz")
TIMING_FIELDS = ("build_seconds",)
MAX_EMBED_DIM = 64  # the firmware's TINYFL_MAX_DIM default

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]



@dataclass(frozen=True)
class BuildConfig:
    data: Path
    out: Path
    split: SplitRule
    test_data: Path | None = None
    family: str | None = None  # NAME[:key=value,...]; None: the family for the input's shape
    keras: Path | None = None
    tflite: Path | None = None
    augment: str | None = None
    epochs: int = 30
    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    board: str = "qemu_cortex_m4"
    dsp: tuple[str, ...] = ()  # block specs of the DSP stage (--dsp), in order
    command: str = ""  # the command line as typed, recorded in metadata.json


@dataclass(frozen=True)
class Codes:
    """One role's int8 input codes (n, *sample_shape) and labels."""

    x: I8
    y: U8


@dataclass(frozen=True)
class Prepared:
    data: Dataset
    classes: tuple[str, ...]
    groups: dict[str, list[str]]
    scale: float
    zero_point: int
    source: Codes
    fleet: Codes
    test: Codes
    data_files: dict[str, Any]
    # The backbone's input: the data's samples, or the DSP stage's features when there is one.
    kind: str
    sample_shape: tuple[int, ...]
    stage: DspStage | None = None

    def dequantize(self, q: I8) -> F32:
        return dequantize(q, self.scale, self.zero_point)


def _codes(x: F32, y: npt.NDArray[np.int64], scale: float, zero_point: int) -> Codes:
    return Codes(quantize(x, scale, zero_point), y.astype(np.uint8))


def prepare_data(cfg: BuildConfig, quant: tuple[float, int] | None,
                 log: Callable[[str], None]) -> Prepared:
    """The dataset split into source, fleet and test codes; `quant` fixes the input quantization
    (a given .tflite's), else it is fitted on the source samples."""
    data = load_dataset(cfg.data)
    split = split_rows(data, cfg.split)
    files = {"file": cfg.data.name, "sha256": data.sha256, "split": cfg.split.to_json(),
             "kind": data.kind}
    if cfg.test_data is not None:
        if split.test.any():
            raise UsageError("give --test-groups or --test-data, not both")
        test = load_dataset(cfg.test_data, require_every_class=False)
        if test.classes != data.classes:
            raise DatasetError(f"{cfg.test_data}: classes {list(test.classes)} are not the "
                               f"data's {list(data.classes)}")
        if test.sample_shape != data.sample_shape:
            raise DatasetError(f"{cfg.test_data}: samples of shape {test.sample_shape}, the data "
                               f"has {data.sample_shape}")
        files.update(test_file=cfg.test_data.name, test_sha256=test.sha256)
    elif split.test.any():
        test = data.select(split.test)
    else:
        raise UsageError("the model needs held-out data: --test-groups G1,G2 or --test-data FILE")
    scale, zp = quant or fit_input_quantization(data.x[split.source], data.kind)
    prepared = Prepared(
        data, data.classes, split.groups, scale, zp,
        _codes(data.x[split.source], data.y[split.source], scale, zp),
        _codes(data.x[split.fleet], data.y[split.fleet], scale, zp),
        _codes(test.x, test.y, scale, zp), files, data.kind, data.sample_shape)
    counts = {k: len(v.y) for k, v in (("source", prepared.source), ("fleet", prepared.fleet),
                                       ("test", prepared.test))}
    log(f"data: {len(data)} samples of shape {data.sample_shape} ({data.kind}), "
        f"{len(data.classes)} classes; source {counts['source']}, fleet {counts['fleet']}, "
        f"test {counts['test']}; input scale {scale!r}, zero point {zp}")
    return prepared


def _through_stage(p: Prepared, specs: tuple[str, ...], log: Callable[[str], None]) -> Prepared:
    """The prepared data with every role's raw windows replaced by the DSP stage's int8 features
    (the stage's free parameters fitted on the source windows): what the backbone takes."""
    try:
        stage = fit_stage([parse_block_spec(spec) for spec in specs], p.source.x, p.scale,
                          p.zero_point)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    log(f"DSP stage: {stage.describe()}")

    shape = stage.feature_shape

    def features(c: Codes) -> Codes:
        return Codes(stage.run(c.x).reshape(-1, *shape), c.y)

    return replace(p, scale=FEATURE_SCALE, zero_point=0, source=features(p.source),
                   fleet=features(p.fleet), test=features(p.test),
                   kind="images" if len(shape) == 3 else "features", sample_shape=shape,
                   stage=stage)


# --- the backbone ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backbone:
    tflite: bytes
    head_init: F32 | None  # the pretraining / user's head, None when it must be fitted
    float_test_accuracy: float | None
    description: dict[str, Any]


def _train_family(p: Prepared, cfg: BuildConfig, log: Callable[[str], None]) -> Backbone:
    try:
        family, options = families.parse_family(cfg.family, p.kind)
        copies, degrees = parse_augment(cfg.augment, p.sample_shape)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    families.seed_everything(cfg.seed)
    tf = families.tensorflow()
    models = families.family_models(family, options, p.sample_shape, len(p.classes))
    clf = models.classifier
    clf.compile(optimizer=tf.keras.optimizers.Adam(cfg.lr),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = p.dequantize(p.source.x), p.source.y.astype(np.int64)
    if copies:
        x, y = augment(x, y, p.scale, copies, degrees, cfg.seed)
    log(f"training {family.name} ({', '.join(f'{k}={v}' for k, v in options.items())}) on "
        f"{len(y)} source samples, {cfg.epochs} epochs")

    def progress(epoch: int, logs: dict[str, float] | None) -> None:
        if (epoch + 1) % 5 == 0 or epoch + 1 == cfg.epochs:
            logs = logs or {}
            log(f"  epoch {epoch + 1}/{cfg.epochs}: loss {logs.get('loss', 0):.4f} "
                f"accuracy {logs.get('accuracy', 0):.4f}")

    clf.fit(x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0,
            callbacks=[tf.keras.callbacks.LambdaCallback(on_epoch_end=progress)])
    kernel, bias = (np.asarray(v, np.float32) for v in clf.get_layer("head").get_weights())
    described = {"from": "family", "family": family.name,
                 "options": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in options.items()},
                 "augment": cfg.augment or None, "seed": cfg.seed, "epochs": cfg.epochs,
                 "batch_size": cfg.batch_size, "optimizer": f"Adam lr={cfg.lr}"}
    return _converted(models, kernel, bias, p, described)


def _from_keras(p: Prepared, cfg: BuildConfig, log: Callable[[str], None]) -> Backbone:
    assert cfg.keras is not None
    log(f"backbone from {cfg.keras}: every layer up to the last Dense")
    try:
        models, (kernel, bias) = families.keras_user_models(str(cfg.keras), len(p.classes))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot use {cfg.keras} as a backbone: {exc}") from exc
    shape = tuple(int(v) for v in models.backbone.input.shape[1:])
    if shape != p.sample_shape:
        raise BuildError(f"{cfg.keras} takes inputs of shape {shape}, the backbone's inputs are "
                         f"{p.sample_shape}")
    return _converted(models, np.asarray(kernel, np.float32), np.asarray(bias, np.float32), p,
                      {"from": "keras", "file": cfg.keras.name,
                       "sha256": hashlib.sha256(cfg.keras.read_bytes()).hexdigest()})


def _converted(models: families.KerasModels, kernel: F32, bias: F32, p: Prepared,
               described: dict[str, Any]) -> Backbone:
    pred = np.argmax(models.classifier.predict(p.dequantize(p.test.x), verbose=0), axis=1)
    float_acc = _accuracy(pred, p.test.y)
    tflite = convert(models.backbone, _calibration(p))
    head = np.concatenate([kernel.T, bias[:, None]], axis=1).astype(np.float32)
    return Backbone(tflite, head, float_acc, described)


def _calibration(p: Prepared) -> F32:
    """Representative inputs: the source samples; for symmetric codes (zero point 0) also one
    sample holding the codes -128 and 127, so the calibrated input range is exactly the codes'."""
    x = p.dequantize(p.source.x)
    if p.zero_point == 0:
        edge = np.zeros((1, *p.sample_shape), np.float32).reshape(1, -1)
        edge[0, 0] = np.float32(-128 * p.scale)
        edge[0, 1] = np.float32(127 * p.scale)
        x = np.concatenate([x, edge.reshape(1, *p.sample_shape)])
    return x


def _tflite_quant(path: Path) -> tuple[bytes, tuple[float, int]]:
    from tinyfl.model.tflite import ModelError, read_model

    try:
        tflite = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror or exc}") from exc
    model = read_model(tflite)
    x_t = model.tensors[model.inputs[0]]
    if x_t.quant is None or x_t.type_name != "INT8":
        raise ModelError(f"{path}: the input tensor must be int8 (a full-int8 model)")
    return tflite, (float(x_t.quant.scale[0]), int(x_t.quant.zero_point[0]))


def convert(backbone: Any, calibration: F32) -> bytes:
    """Full-int8 TFLite (int8 input and output) with a representative dataset."""
    tf = families.tensorflow()

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


# --- the build ---------------------------------------------------------------------------------


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


def _check_config(cfg: BuildConfig) -> None:
    sources = [s for s in (cfg.family, cfg.keras, cfg.tflite) if s is not None]
    if len(sources) > 1:
        raise UsageError("give one of --family, --keras and --tflite")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be >= 1")
    if cfg.dsp and cfg.augment:
        raise UsageError("--augment transforms raw windows and is not supported with --dsp")
    if cfg.board not in BOARDS:
        raise UsageError(f"unknown --board {cfg.board!r}; choose {', '.join(BOARDS)}")
    needed = ["ai_edge_litert.interpreter"] + ([] if cfg.tflite else ["tensorflow"])
    try:
        for module in needed:
            importlib.import_module(module)
    except ImportError as exc:
        raise BuildError(f"model build needs the `model` extra (pip install 'tinyfl[model]'): "
                         f"{exc}") from exc


def build(cfg: BuildConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Builds, checks and writes the model folder `cfg.out`; returns its metadata."""
    _check_config(cfg)
    if cfg.family is None and cfg.keras is None and cfg.tflite is None:
        families.tensorflow()  # imported before the data, so its start-up cost is not a stall
    t0 = time.monotonic()
    given = _tflite_quant(cfg.tflite) if cfg.tflite is not None else None
    # With a DSP stage a given .tflite's input quantization is the features', not the raw codes'.
    p = prepare_data(cfg, None if given is None or cfg.dsp else given[1], log)
    if cfg.dsp:
        p = _through_stage(p, cfg.dsp, log)
    if given is not None:
        backbone = Backbone(given[0], None, None, {
            "from": "tflite", "file": cfg.tflite.name if cfg.tflite else "",
            "sha256": hashlib.sha256(given[0]).hexdigest()})
    elif cfg.keras is not None:
        backbone = _from_keras(p, cfg, log)
    else:
        backbone = _train_family(p, cfg, log)
    if backbone.float_test_accuracy is not None:
        log(f"float classifier (pretraining head) on test: {backbone.float_test_accuracy:.4f}")
    return _finish(cfg, p, backbone, t0, log)


def _finish(cfg: BuildConfig, p: Prepared, backbone: Backbone, t0: float,
            log: Callable[[str], None]) -> dict[str, Any]:
    from tinyfl.model.backbone import prepare
    from tinyfl.model.firmware_blob import blob_c_header, export_blob, model_hash
    from tinyfl.model.tflite import read_model

    tflite = backbone.tflite
    model = read_model(tflite)
    prepare(model)  # every op against the node's kernels: ModelError (exit 8) naming the op
    x_t, y_t = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    if x_t.quant is None or y_t.quant is None or x_t.type_name != "INT8" or y_t.type_name != "INT8":
        raise BuildError("the backbone does not have int8 input and output tensors")
    in_scale, in_zp = float(x_t.quant.scale[0]), int(x_t.quant.zero_point[0])
    out_scale, out_zp = float(y_t.quant.scale[0]), int(y_t.quant.zero_point[0])
    matches = in_zp == p.zero_point and np.float32(in_scale) == np.float32(p.scale)
    log(f"  input quantization: scale {in_scale!r} zp {in_zp} (data codes: {p.scale!r} zp "
        f"{p.zero_point}; {'exact' if matches else 'DIFFERENT'})")
    if not matches:
        raise BuildError("the model's input quantization does not match the node's data codes")
    in_values = int(np.prod(x_t.shape[1:]))
    if in_values != int(np.prod(p.sample_shape)):
        raise BuildError(f"the backbone takes {list(x_t.shape[1:])}, its inputs are "
                         f"{list(p.sample_shape)}")
    embed_dim = int(np.prod(y_t.shape[1:]))
    if embed_dim > MAX_EMBED_DIM:
        raise BuildError(f"the embedding has {embed_dim} values; a node's head takes at most "
                         f"{MAX_EMBED_DIM} (TINYFL_MAX_DIM)")

    sz = sizes(tflite)
    blob = export_blob(model)
    name = cfg.out.name
    record = p.stage.to_record() if p.stage is not None else b""
    header = blob_c_header(blob, task=name, dsp_record=record)
    hash_ = model_hash(blob, record)
    budget = check_budget(cfg.board, len(blob), sz["activation_scratch_bytes"], embed_dim)
    log(f"  ops {', '.join(sz['op_sequence'])}")
    log("  " + budget.report().replace("\n", "\n  "))
    if not budget.fits:
        raise BuildError(f"the backbone does not fit {cfg.board}:\n{budget.report()}")

    log("embedding the fleet and test samples (LiteRT reference kernels)")
    emb_test = embed(tflite, p.test.x)
    emb_fleet = embed(tflite, p.fleet.x)
    deq_test = dequantize(emb_test, out_scale, out_zp)
    deq_fleet = dequantize(emb_fleet, out_scale, out_zp)
    k = len(p.classes)
    central = fit_head(deq_fleet, p.fleet.y, deq_test, p.test.y, k)
    head_init = backbone.head_init
    if head_init is None:  # a given .tflite: the head starts from one fitted on the source
        deq_source = dequantize(embed(tflite, p.source.x), out_scale, out_zp)
        head_init = fit_head(deq_source, p.source.y, deq_test, p.test.y, k).w
    init_pred = np.argmax(deq_test @ head_init[:, :-1].T + head_init[:, -1], axis=1)
    init_acc = _accuracy(init_pred, p.test.y)
    log(f"test accuracy: initial head {init_acc:.4f}, central head on the fleet's data "
        f"{central.test_accuracy:.4f}")

    head_buf, test_buf = io.BytesIO(), io.BytesIO()
    np.save(head_buf, head_init.astype(np.float32))
    np.savez_compressed(test_buf, embeddings=emb_test, labels=p.test.y)
    meta: dict[str, Any] = {
        "metadata_version": METADATA_VERSION,
        "name": name,
        "classes": list(p.classes),
        "model_hash": hash_.hex(),
        "model_hash_of": ("backbone.tfmb followed by the DSP stage's record (first 8 bytes of "
                          "SHA-256)" if record else "backbone.tfmb (first 8 bytes of SHA-256)"),
        "files": {},
        "input": _input_description(p, in_scale, in_zp),
        "embedding": {"shape": [embed_dim], "dtype": "int8", "scale": out_scale,
                      "zero_point": out_zp},
        "head_init": {"shape": list(head_init.shape), "dtype": "float32",
                      "what": "initial softmax head, weights then bias; input: dequantized int8 "
                              "embedding (q - zero_point) * scale",
                      "test_accuracy": init_acc},
        "test_set": {"file": "test.npz", "samples": int(p.test.y.size),
                     "what": "int8 embeddings of the held-out samples (LiteRT reference "
                             "kernels, bit-exact with the node) and their labels"},
        "data": {**p.data_files, "groups": p.groups,
                 "samples": {"source": int(p.source.y.size), "fleet": int(p.fleet.y.size),
                             "test": int(p.test.y.size)}},
        "backbone": backbone.description,
        **sz,
        "firmware_blob_bytes": len(blob),
        "budget": {"board": cfg.board, "fits": budget.fits, "flash_bytes": budget.flash_used,
                   "ram_bytes": budget.ram_used, "board_flash_bytes": budget.board.flash,
                   "board_ram_bytes": budget.board.ram},
        "accuracy": {"central_head_test": central.test_accuracy,
                     "initial_head_test": init_acc,
                     "float_pretraining_head_test": backbone.float_test_accuracy,
                     "central_head": "the node's SGD (tinyfl.model.evaluate.fit_head) on every "
                                     "fleet sample's int8 embedding"},
        "tool_versions": _versions(),
        "command": cfg.command,
        "build_seconds": 0.0,
    }
    files = dict(zip(ARTIFACTS, (tflite, blob, header.encode(), head_buf.getvalue(),
                                 test_buf.getvalue()), strict=True))
    meta["files"] = {fname: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                     for fname, b in files.items()}
    meta["build_seconds"] = round(time.monotonic() - t0, 1)
    files["metadata.json"] = (json.dumps(meta, indent=2) + "\n").encode()
    replace_folder(cfg.out, files)
    log(f"wrote {cfg.out}/ (model hash {hash_.hex()}) in {meta['build_seconds']} s")
    sys.stdout.flush()
    return meta


def _input_description(p: Prepared, in_scale: float, in_zp: int) -> dict[str, Any]:
    """metadata.json's "input": what a node's data blob carries (the raw windows when a DSP stage
    comes first) and, with a stage, the stage ("dsp") and the backbone's own input."""
    if p.stage is None:
        return {"shape": list(p.sample_shape), "kind": p.kind, "dtype": "int8",
                "scale": in_scale, "zero_point": in_zp}
    return {"shape": list(p.stage.input_shape), "kind": p.data.kind, "dtype": "int8",
            "scale": p.stage.input_scale, "zero_point": p.stage.input_zero_point,
            "dsp": p.stage.to_json(),
            "backbone_input": {"shape": list(p.sample_shape), "scale": in_scale,
                               "zero_point": in_zp}}


def command_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
