"""The built-in backbone families, chosen by the shape of one input sample, and the user's own
Keras model; each with the softmax head used only for pretraining.

Why these shapes: the backbone must run on a node with TinyFL's int8 kernels (docs/MODEL.md) in
the flash and RAM of a small board (tinyfl.model.budget), and hand the head an embedding of at
most 64 values (TINYFL_MAX_DIM). Keras' Conv1D/Conv2D, DepthwiseConv2D, pooling, global average
pooling and Dense lower to those TFLite ops; ReLU is fused into the layers by the converter.

- `conv1d` for windows (T, C): Conv1D(c1, kernel)+ReLU -> MaxPool1D(2) -> Conv1D(c2, kernel)+ReLU
  -> GlobalAveragePooling1D -> Dense(embed)+ReLU. Defaults c1 = 32, c2 = 64, kernel 5, embed 64:
  for 6 channels 960 + 10240 + 4096 weights, about 15 KB int8 with biases.
- `mlp` for feature vectors (F,): Dense(h)+ReLU for each hidden width -> Dense(embed)+ReLU.
  Default one hidden layer of 128 (64 features: 16 KB int8).
- `dscnn` for 2-D inputs (H, W, C), a depthwise-separable CNN (Howard et al., MobileNets, 2017;
  as in Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers", 2017): Conv2D(filters,
  3x3, stride 2)+ReLU, then `blocks` x [DepthwiseConv2D(3x3)+ReLU -> Conv2D(filters, 1x1)+ReLU],
  GlobalAveragePooling2D -> Dense(embed)+ReLU.

Training-time options of every family: `dropout` in front of the head and `input_noise`, Gaussian
noise of that standard deviation added to the inputs while pretraining (a smoothness regulariser,
Bishop, Neural Computation 7(1), 1995; the converted backbone has no noise layer).

TensorFlow is an optional dependency (the `model` extra): it is imported inside the functions.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EMBED_DIM", "FAMILIES", "FAMILY_FOR_KIND", "Family", "KerasModels", "family_models",
    "keras_user_models", "parse_family", "seed_everything", "tensorflow",
]

EMBED_DIM = 64
def tensorflow() -> Any:
    """The `tensorflow` module, imported on first use (the `model` extra; no stubs needed)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    return importlib.import_module("tensorflow")


@dataclass(frozen=True)
class KerasModels:
    """The backbone (input -> embedding) and the classifier (backbone + softmax head) sharing it."""

    backbone: Any
    classifier: Any


def seed_everything(seed: int) -> None:
    """Python, numpy and TF seeds plus op determinism, so the same seed trains the same weights
    (on the same TF build and CPU)."""
    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _classifier(backbone: Any, n_classes: int, dropout: float, input_noise: float = 0.0) -> Any:
    """backbone -> dropout -> softmax "head"; with input_noise > 0, Gaussian noise of that
    standard deviation is added to the inputs in front of the backbone (training only: the
    backbone model itself, which is what gets converted, has no noise layer)."""
    tf = tensorflow()

    layers = tf.keras.layers
    if input_noise > 0:
        inp = layers.Input(backbone.input.shape[1:], name="noisy_input")
        emb = backbone(layers.GaussianNoise(input_noise, name="input_noise")(inp))
    else:
        inp, emb = backbone.input, backbone.output
    x = layers.Dropout(dropout, name="head_dropout")(emb)
    out = layers.Dense(n_classes, activation="softmax", name="head")(x)
    return tf.keras.Model(inp, out, name=f"{backbone.name}_classifier")



@dataclass(frozen=True)
class Family:
    """A built-in backbone family: its name, the input kind it takes and its default options."""

    name: str
    kind: str  # "windows", "features" or "images" (tinyfl.data.dataset.Dataset.kind)
    defaults: dict[str, Any]


FAMILIES = {
    "conv1d": Family("conv1d", "windows", {"c1": 32, "c2": 64, "kernel": 5, "embed": EMBED_DIM,
                                           "dropout": 0.3, "input_noise": 0.0}),
    "mlp": Family("mlp", "features", {"hidden": (128,), "embed": EMBED_DIM, "dropout": 0.2,
                                      "input_noise": 0.0}),
    "dscnn": Family("dscnn", "images", {"filters": 32, "blocks": 2, "embed": EMBED_DIM,
                                        "dropout": 0.2, "input_noise": 0.0}),
}
FAMILY_FOR_KIND = {family.kind: name for name, family in FAMILIES.items()}


def parse_family(spec: str | None, kind: str) -> tuple[Family, dict[str, Any]]:
    """`NAME[:key=value,...]` (e.g. `conv1d:c1=16,c2=32`, `mlp:hidden=128-64`) -> the family and
    its full options; None picks the family for the input kind. ValueError with what is allowed."""
    name, _, rest = (spec or FAMILY_FOR_KIND[kind]).partition(":")
    family = FAMILIES.get(name)
    if family is None:
        raise ValueError(f"unknown backbone family {name!r}; choose {', '.join(FAMILIES)}")
    if family.kind != kind:
        raise ValueError(f"family {name} takes {family.kind}, the data holds {kind} (use "
                         f"{FAMILY_FOR_KIND[kind]})")
    options = dict(family.defaults)
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in options:
            raise ValueError(f"family {name} takes {', '.join(sorted(options))}; got {item!r}")
        try:
            if key == "hidden":
                options[key] = tuple(int(v) for v in value.split("-"))
            elif isinstance(family.defaults[key], float):
                options[key] = float(value)
            else:
                options[key] = int(value)
        except ValueError:
            raise ValueError(f"family {name}: {key} must be a number, got {value!r}") from None
        if options[key] in ((),) or (isinstance(options[key], (int, float))
                                     and key not in ("dropout", "input_noise")
                                     and options[key] < 1):
            raise ValueError(f"family {name}: {key} must be positive, got {value!r}")
    return family, options


def family_models(family: Family, options: dict[str, Any], input_shape: tuple[int, ...],
                  n_classes: int) -> KerasModels:
    """The family's backbone for one input of `input_shape`, and its pretraining classifier."""
    tf = tensorflow()
    layers = tf.keras.layers
    o = options
    if family.name == "conv1d":
        inp = layers.Input(input_shape, name="window")
        x = layers.Conv1D(o["c1"], o["kernel"], activation="relu", name="conv1")(inp)
        x = layers.MaxPooling1D(2, name="pool1")(x)
        x = layers.Conv1D(o["c2"], o["kernel"], activation="relu", name="conv2")(x)
        x = layers.GlobalAveragePooling1D(name="gap")(x)
    elif family.name == "mlp":
        inp = layers.Input(input_shape, name="features")
        x = inp
        for i, width in enumerate(o["hidden"], 1):
            x = layers.Dense(width, activation="relu", name=f"dense{i}")(x)
    else:
        inp = layers.Input(input_shape, name="input_2d")
        x = layers.Conv2D(o["filters"], 3, strides=2, padding="same", activation="relu",
                          name="stem")(inp)
        for i in range(1, o["blocks"] + 1):
            x = layers.DepthwiseConv2D(3, padding="same", activation="relu", name=f"dw{i}")(x)
            x = layers.Conv2D(o["filters"], 1, activation="relu", name=f"pw{i}")(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    emb = layers.Dense(o["embed"], activation="relu", name="embedding")(x)
    backbone = tf.keras.Model(inp, emb, name=f"{family.name}_backbone")
    return KerasModels(backbone, _classifier(backbone, n_classes, o["dropout"], o["input_noise"]))


def keras_user_models(path: str, n_classes: int) -> tuple[KerasModels, Any]:
    """A user's trained Keras classifier: every layer up to its last Dense is the backbone, the
    last Dense is the initial head. Returns the models and the head's (kernel, bias).
    ValueError when the file has no final Dense with one unit per class."""
    tf = tensorflow()
    model = tf.keras.models.load_model(path, compile=False)
    dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
    if not dense or dense[-1] is not model.layers[-1]:
        raise ValueError(f"{path}: the last layer must be the Dense head (softmax or logits), "
                         f"found {type(model.layers[-1]).__name__}")
    head = dense[-1]
    if int(head.units) != n_classes:
        raise ValueError(f"{path}: the head has {head.units} units, the data {n_classes} classes")
    if len(model.inputs) != 1:
        raise ValueError(f"{path}: the model must have one input, it has {len(model.inputs)}")
    backbone = tf.keras.Model(model.inputs[0], head.input, name="keras_backbone")
    return KerasModels(backbone, model), head.get_weights()
