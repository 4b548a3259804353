"""Random small Keras models built only from the ops the node runs, converted to full int8.

One seed gives one model: an input kind (a 1-D window (T, C), a feature vector (F,) or a 2-D
input (H, W, C)), then a random stack of convolutions (kernel size, stride or dilation,
'same'/'valid' padding, activation), depthwise convolutions (depth multiplier), max/average
pooling, zero padding, standalone ReLU/ReLU6 and residual branches joined by Add, ending in global
average pooling or a static Reshape and a Dense layer. Sizes stay small so TF's conversion (the
slow part) is quick; the converter then lowers them to CONV_2D, DEPTHWISE_CONV_2D, *_POOL_2D, PAD, ADD, RELU,
RELU6, MEAN, RESHAPE, FULLY_CONNECTED.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tinyfl.model.build import convert


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def _act(rng: np.random.Generator) -> Any:
    tf = _tf()
    return [None, "relu", tf.nn.relu6][int(rng.integers(0, 3))]


def _block(rng: np.random.Generator, x: Any, dims: int, length: list[int], channels: int
           ) -> tuple[Any, int]:
    """One random layer (or residual block) on a (…, C) tensor of spatial size `length`."""
    L = _tf().keras.layers
    conv = L.Conv1D if dims == 1 else L.Conv2D
    dw = L.DepthwiseConv1D if dims == 1 else L.DepthwiseConv2D
    kind = int(rng.integers(0, 7))
    small = min(length)
    k = int(rng.integers(1, 4))
    stride = int(rng.integers(1, 3))
    dilation = int(rng.integers(1, 3)) if stride == 1 else 1  # Keras: dilation needs stride 1
    pad = "same" if rng.random() < 0.5 or small < (k - 1) * dilation + 2 else "valid"
    init = {"bias_initializer": "random_normal"}
    if kind == 0:
        c = int(rng.integers(2, 9))
        return conv(c, k, strides=stride, dilation_rate=dilation, padding=pad,
                    activation=_act(rng), **init)(x), c
    if kind == 1:
        m = int(rng.integers(1, 3))
        return dw(k, strides=stride, dilation_rate=dilation, padding=pad, depth_multiplier=m,
                  activation=_act(rng), **init)(x), channels * m
    if kind in (2, 3) and small >= 2:
        pool = (L.MaxPooling1D if dims == 1 else L.MaxPooling2D) if kind == 2 else (
            L.AveragePooling1D if dims == 1 else L.AveragePooling2D)
        p = int(rng.integers(2, 4)) if small >= 3 else 2
        return pool(p, strides=int(rng.integers(1, 3)), padding=pad)(x), channels
    if kind == 4:
        zp = L.ZeroPadding1D if dims == 1 else L.ZeroPadding2D
        amount = int(rng.integers(1, 3))
        return zp(amount)(x), channels
    if kind == 5:
        relu = L.ReLU(max_value=6.0) if rng.random() < 0.5 else L.ReLU()
        return relu(x), channels
    # residual: x + f(x), f keeps the shape ('same', stride 1, same channels)
    y = conv(channels, k, padding="same", activation=_act(rng), **init)(x)
    if rng.random() < 0.5:
        y = dw(k, padding="same", **init)(y)
    out = L.Add()([x, y])
    if rng.random() < 0.5:
        out = L.ReLU()(out)
    return out, channels


def _spatial(t: Any, dims: int) -> list[int]:
    return [int(d) for d in t.shape[1 : 1 + dims]]


def build_model(seed: int) -> tuple[Any, tuple[int, ...]]:
    """A random Keras model (seeded weights) and its input shape (without batch)."""
    tf = _tf()
    L = tf.keras.layers
    rng = np.random.default_rng(seed)
    tf.keras.utils.set_random_seed(seed)
    kind = int(rng.integers(0, 4))
    if kind == 3:  # feature vector
        shape: tuple[int, ...] = (int(rng.integers(4, 24)),)
        inp = tf.keras.Input(shape, batch_size=1)  # static shapes: RESHAPE without SHAPE ops
        x = L.Dense(int(rng.integers(4, 16)), activation=_act(rng))(inp)
        for _ in range(int(rng.integers(0, 3))):
            width = int(x.shape[-1])
            y = L.Dense(width, activation=_act(rng))(x)
            x = L.Add()([x, y]) if rng.random() < 0.6 else y
            if rng.random() < 0.3:
                x = L.ReLU()(x)
        out = L.Dense(int(rng.integers(3, 12)))(x)
        return tf.keras.Model(inp, out), shape
    dims = 1 if kind in (0, 1) else 2
    if dims == 1:
        shape = (int(rng.integers(8, 40)), int(rng.integers(1, 5)))
    else:
        shape = (int(rng.integers(4, 12)), int(rng.integers(4, 12)), int(rng.integers(1, 4)))
    inp = tf.keras.Input(shape, batch_size=1)  # static shapes: RESHAPE without SHAPE ops
    c0 = int(rng.integers(2, 8))
    x = (L.Conv1D if dims == 1 else L.Conv2D)(c0, int(rng.integers(1, 4)), padding="same",
                                              activation=_act(rng))(inp)
    channels = c0
    for _ in range(int(rng.integers(1, 6))):
        x, channels = _block(rng, x, dims, _spatial(x, dims), channels)
    if rng.random() < 0.6:
        x = (L.GlobalAveragePooling1D if dims == 1 else L.GlobalAveragePooling2D)()(x)
    else:
        # Reshape to a static size (Flatten would lower to SHAPE/STRIDED_SLICE for the batch).
        x = L.Reshape((int(np.prod(x.shape[1:])),))(x)
    out = L.Dense(int(rng.integers(3, 12)), activation=_act(rng))(x)
    return tf.keras.Model(inp, out), shape


def build_int8(seed: int) -> tuple[bytes, tuple[int, ...]]:
    """The seed's model converted to full int8 (representative dataset: 32 normal samples)."""
    model, shape = build_model(seed)
    rep = np.random.default_rng(seed + 1).normal(0.0, 1.0, size=(32, *shape)).astype(np.float32)
    return convert(model, rep), shape


def _special(name: str) -> tuple[Any, tuple[int, ...]]:
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(7)
    if name == "add_input_to_itself":  # ADD whose two operands are both the caller's input
        shape: tuple[int, ...] = (6,)
        inp = tf.keras.Input(shape, batch_size=1)
        out = L.Dense(5)(L.Add()([inp, inp]))
    elif name == "relu_on_input":  # standalone RELU reading the model input
        shape = (12,)
        inp = tf.keras.Input(shape, batch_size=1)
        out = L.Dense(4)(L.ReLU()(inp))
    elif name == "output_is_a_reshape":  # the embedding is a reshape alias of the last pool
        shape = (10, 3)
        inp = tf.keras.Input(shape, batch_size=1)
        out = L.Reshape((8,))(L.MaxPooling1D(2)(L.Conv1D(2, 3, activation="relu")(inp)))
    else:
        raise ValueError(name)
    return tf.keras.Model(inp, out), shape


SPECIAL_MODELS = ("add_input_to_itself", "relu_on_input", "output_is_a_reshape")


def build_special_int8(name: str) -> tuple[bytes, tuple[int, ...]]:
    """Hand-picked graph shapes the random stacks rarely produce (SPECIAL_MODELS)."""
    model, shape = _special(name)
    rep = np.random.default_rng(3).normal(0.0, 1.0, size=(32, *shape)).astype(np.float32)
    return convert(model, rep), shape
