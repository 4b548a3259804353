"""Keras backbones of the two tasks, with the softmax head used only for pretraining.

Why these shapes: the backbone must run on a Cortex-M4 node with TinyFL's int8 kernels
(tinyfl.model.backbone: CONV_2D, MAX_POOL_2D, MEAN, FULLY_CONNECTED and reshapes), in at most
48 KB of int8 weights and 16 KB of activation scratch, and hand the node's head an embedding of at
most 64 values. Keras' Conv1D, MaxPooling1D, GlobalAveragePooling1D and Dense lower exactly to
those TFLite ops; ReLU is fused into the convolutions and dense layers by the converter.

- HAR (UCI HAPT raw windows, (128, 6)): Conv1D(c1, 5)+ReLU -> MaxPool1D(2) -> Conv1D(c2, 5)+ReLU
  -> GlobalAveragePooling1D -> Dense(64)+ReLU = embedding. Defaults c1 = 32, c2 = 64:
  960 + 10240 + 4096 weights, about 15 KB int8 with biases.
- NSL-KDD (64 features in [0, 1]): Dense(128)+ReLU -> Dense(64)+ReLU = embedding, 16 KB int8
  (hidden width and input noise chosen on a validation split of the training file, see
  NSLKDD_INPUT_NOISE).

TensorFlow is an optional dependency (the `model` extra): it is imported inside the functions.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EMBED_DIM", "NSLKDD_INPUT_NOISE", "KerasModels", "har_models", "nslkdd_models",
    "seed_everything", "tensorflow",
]

EMBED_DIM = 64
# Standard deviation of the Gaussian noise added to the NSL-KDD features (in [0, 1]) while the
# backbone pretrains. Why: KDDTest+ holds attack types absent from the training file (Tavallaee
# et al. 2009), so the backbone should not hinge on exact feature values of the few source rows;
# noise training is a smoothness (Tikhonov) regulariser (Bishop, Neural Computation 7(1), 1995).
# Chosen (with the hidden width) on a validation split of the training file: held-out attack
# types plus a quarter of the normal rows (bench/model.md), not on KDDTest+.
NSLKDD_INPUT_NOISE = 0.2


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


def har_models(n_classes: int = 6, c1: int = 32, c2: int = 64, kernel: int = 5,
               dropout: float = 0.3) -> KerasModels:
    """The HAR 1D CNN on (128, 6) windows (see the module docstring)."""
    tf = tensorflow()

    layers = tf.keras.layers
    inp = layers.Input((128, 6), name="window")
    x = layers.Conv1D(c1, kernel, activation="relu", name="conv1")(inp)
    x = layers.MaxPooling1D(2, name="pool1")(x)
    x = layers.Conv1D(c2, kernel, activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    emb = layers.Dense(EMBED_DIM, activation="relu", name="embedding")(x)
    backbone = tf.keras.Model(inp, emb, name="har_backbone")
    return KerasModels(backbone, _classifier(backbone, n_classes, dropout))


def nslkdd_models(n_classes: int = 5, n_features: int = 64, hidden: int = 128,
                  dropout: float = 0.2, input_noise: float = NSLKDD_INPUT_NOISE) -> KerasModels:
    """The NSL-KDD MLP 64 -> 128 -> 64 (ReLU) on encoded feature vectors, pretrained with Gaussian
    input noise (see NSLKDD_INPUT_NOISE)."""
    tf = tensorflow()

    layers = tf.keras.layers
    inp = layers.Input((n_features,), name="features")
    x = layers.Dense(hidden, activation="relu", name="dense1")(inp)
    emb = layers.Dense(EMBED_DIM, activation="relu", name="embedding")(x)
    backbone = tf.keras.Model(inp, emb, name="nslkdd_backbone")
    return KerasModels(backbone, _classifier(backbone, n_classes, dropout, input_noise))
