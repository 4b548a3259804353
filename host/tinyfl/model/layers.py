"""The prepared int8 layers of a backbone and their numpy kernels (LiteRT reference semantics).

Each layer holds what TFLite's Prepare step derives once (Q31 multipliers and shifts, clamps,
paddings, shapes); each kernel is a pure function of that layer and its int8 input(s), and
reproduces LiteRT's reference kernel (`OpResolverType.BUILTIN_REF`) byte for byte. The firmware
core (firmware/lib/tinyfl/src/backbone_kernels.cpp) implements the same kernels; the firmware
blob (tinyfl.model.firmware_blob) carries these fields. Arithmetic per op: docs/MODEL.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinyfl.model.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    round_half_away,
)

__all__ = [
    "Add",
    "AvgPool2D",
    "Conv2D",
    "DepthwiseConv2D",
    "FullyConnected",
    "Layer",
    "MaxPool2D",
    "Mean",
    "Pad",
    "Requantize",
    "apply",
    "input_sizes",
    "output_size",
]

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
HWC = tuple[int, int, int]


@dataclass(frozen=True)
class Conv2D:
    """Per-channel int8 convolution, NHWC input (h, w, cin), weights (cout, kh, kw, cin)."""

    in_shape: HWC
    out_shape: HWC
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int]  # top, left
    weights: I8
    bias: I32
    multiplier: I32
    shift: I32
    in_zp: int
    out_zp: int
    act: tuple[int, int]


@dataclass(frozen=True)
class DepthwiseConv2D:
    """Per-channel int8 depthwise convolution; weights (kh, kw, cout), cout = cin * multiplier,
    output channel c * depth_multiplier + m reads input channel c."""

    in_shape: HWC
    out_shape: HWC
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int]
    weights: I8
    bias: I32
    multiplier: I32
    shift: I32
    in_zp: int
    out_zp: int
    act: tuple[int, int]


@dataclass(frozen=True)
class MaxPool2D:
    """int8 max pooling; input and output share scale and zero point (nothing to rescale)."""

    in_shape: HWC
    out_shape: HWC
    filter: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    act: tuple[int, int]


@dataclass(frozen=True)
class AvgPool2D:
    """int8 average pooling over the in-image part of each window (input and output share their
    quantization): sum, then divide by the tap count rounding half away from zero, clamp."""

    in_shape: HWC
    out_shape: HWC
    filter: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    act: tuple[int, int]


@dataclass(frozen=True)
class Mean:
    """Mean over the middle axis of (outer, reduce, inner). Two LiteRT reference paths:
    `rescale` (input and output quantization differ): QuantizedMeanOrSum, the Q31 multiplier of
    S_in / S_out with 1/n folded in, out = MBQM(sum(q) - zp_in * n, multiplier, shift) + zp_out;
    not `rescale` (same scale and zero point): the plain integer mean sum(q) / n, truncated."""

    outer: int
    reduce: int
    inner: int
    in_zp: int
    multiplier: int  # already divided by `reduce`
    shift: int
    out_zp: int
    rescale: bool = True


@dataclass(frozen=True)
class FullyConnected:
    """Per-channel int8 fully connected, weights (out, in). LiteRT's reference kernel rescales
    this one in double precision, not with a Q31 multiplier:
    out = (int32) round(double(acc) * (double(S_in) * double(S_w[c]) / double(S_out)))."""

    in_features: int
    out_features: int
    weights: I8
    bias: I32
    scale: npt.NDArray[np.float64]
    in_zp: int
    out_zp: int
    act: tuple[int, int]


@dataclass(frozen=True)
class Add:
    """Elementwise int8 ADD of two same-shape inputs, each with its own quantization (TFLite's
    reference int8 Add): both inputs are centred, shifted left by `left_shift` (20) and rescaled
    to twice the larger input scale, summed, and the sum rescaled to the output."""

    count: int
    in_zp: tuple[int, int]
    in_multiplier: tuple[int, int]
    in_shift: tuple[int, int]
    left_shift: int
    out_multiplier: int
    out_shift: int
    out_zp: int
    act: tuple[int, int]


@dataclass(frozen=True)
class Pad:
    """Constant padding of an (h, w, c) tensor; the pad value is the output zero point (real 0)."""

    in_shape: HWC
    out_shape: HWC
    before: HWC  # padding before each of h, w, c
    value: int


@dataclass(frozen=True)
class Requantize:
    """out = clamp(MBQM(q - zp_in, multiplier, shift) + zp_out): standalone RELU, RELU6 (the
    clamp) and QUANTIZE int8 -> int8 (the rescale) share this arithmetic in LiteRT."""

    count: int
    in_zp: int
    out_zp: int
    multiplier: int
    shift: int
    act: tuple[int, int]


Layer = (Conv2D | DepthwiseConv2D | MaxPool2D | AvgPool2D | Mean | FullyConnected | Add | Pad
         | Requantize)


def _i64(v: int) -> I64:
    return np.array(v, dtype=np.int64)


def _prod(shape: HWC) -> int:
    return shape[0] * shape[1] * shape[2]


def input_sizes(layer: Layer) -> tuple[int, ...]:
    """int8 elements each input of the layer holds."""
    if isinstance(layer, (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D, Pad)):
        return (_prod(layer.in_shape),)
    if isinstance(layer, Mean):
        return (layer.outer * layer.reduce * layer.inner,)
    if isinstance(layer, FullyConnected):
        return (layer.in_features,)
    if isinstance(layer, Add):
        return (layer.count, layer.count)
    return (layer.count,)


def output_size(layer: Layer) -> int:
    """int8 elements the layer writes."""
    if isinstance(layer, (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D, Pad)):
        return _prod(layer.out_shape)
    if isinstance(layer, Mean):
        return layer.outer * layer.inner
    if isinstance(layer, FullyConnected):
        return layer.out_features
    return layer.count


# ---------------------------------------------------------------------------------------------
# kernels


def _rescale(acc: I64, bias: I32, mult: I32, shift: I32, out_zp: int, act: tuple[int, int]) -> I8:
    """acc + bias -> rescale per output channel (last axis) -> + zp_out -> clamp."""
    acc = (acc + bias.astype(np.int64)).astype(np.int32).astype(np.int64)  # int32 wrap, as C
    y = multiply_by_quantized_multiplier(acc, mult.astype(np.int64), shift.astype(np.int64))
    return np.clip(y + out_zp, act[0], act[1]).astype(np.int8)


def _taps(layer: Conv2D | DepthwiseConv2D, x: I8, kh: int, kw: int) -> list[I64]:
    """The centred input under each filter tap, (oh, ow, cin) per tap, taps in (ky, kx) order.
    TFLite skips padding taps; padding with the input zero point (0 once centred) is the same."""
    h, w, cin = layer.in_shape
    oh, ow, _ = layer.out_shape
    (sh, sw), (dh, dw), (pt, pl) = layer.stride, layer.dilation, layer.pad
    centered = x.reshape(h, w, cin).astype(np.int64) - layer.in_zp
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    padded = np.zeros((max(need_h, pt + h), max(need_w, pl + w), cin), dtype=np.int64)
    padded[pt : pt + h, pl : pl + w] = centered
    return [padded[fy * dh : fy * dh + (oh - 1) * sh + 1 : sh,
                   fx * dw : fx * dw + (ow - 1) * sw + 1 : sw]
            for fy in range(kh) for fx in range(kw)]


def conv2d(layer: Conv2D, x: I8) -> I8:
    oh, ow, cout = layer.out_shape
    kh, kw = int(layer.weights.shape[1]), int(layer.weights.shape[2])
    cols = np.stack(_taps(layer, x, kh, kw), axis=2)  # (oh, ow, kh*kw, cin)
    acc = cols.reshape(oh * ow, -1) @ layer.weights.reshape(cout, -1).astype(np.int64).T
    return _rescale(acc, layer.bias, layer.multiplier, layer.shift, layer.out_zp,
                    layer.act).reshape(oh, ow, cout)


def depthwise_conv2d(layer: DepthwiseConv2D, x: I8) -> I8:
    oh, ow, cout = layer.out_shape
    kh, kw = int(layer.weights.shape[0]), int(layer.weights.shape[1])
    mult = cout // layer.in_shape[2]
    w = layer.weights.astype(np.int64).reshape(kh * kw, cout)
    acc = np.zeros((oh, ow, cout), dtype=np.int64)
    for t, tap in enumerate(_taps(layer, x, kh, kw)):
        acc += np.repeat(tap, mult, axis=2) * w[t]  # channel c feeds outputs c*mult ... c*mult+m-1
    return _rescale(acc, layer.bias, layer.multiplier, layer.shift, layer.out_zp, layer.act)


def _windows(layer: MaxPool2D | AvgPool2D, x: I8, fill: int) -> list[npt.NDArray[np.int32]]:
    """The input under each window tap, (oh, ow, c) per tap, `fill` outside the image."""
    h, w, c = layer.in_shape
    oh, ow, _ = layer.out_shape
    (fh, fw), (sh, sw), (pt, pl) = layer.filter, layer.stride, layer.pad
    padded = np.full(((oh - 1) * sh + fh + h, (ow - 1) * sw + fw + w, c), fill, dtype=np.int32)
    padded[pt : pt + h, pl : pl + w] = x.reshape(h, w, c)
    return [padded[fy : fy + (oh - 1) * sh + 1 : sh, fx : fx + (ow - 1) * sw + 1 : sw]
            for fy in range(fh) for fx in range(fw)]


def max_pool2d(layer: MaxPool2D, x: I8) -> I8:
    """Windows are clipped to the input (padding never wins a max), then clamped."""
    best = np.max(np.stack(_windows(layer, x, -129)), axis=0)
    out: I8 = np.clip(best, layer.act[0], layer.act[1]).astype(np.int8)
    return out


def avg_pool2d(layer: AvgPool2D, x: I8) -> I8:
    """Sum and count of the in-image taps; (sum +- count/2) / count in C's truncating division,
    i.e. rounded half away from zero; clamped to the fused activation."""
    total = np.sum(np.stack(_windows(layer, x, 0)), axis=0).astype(np.int64)
    ones = np.ones(layer.in_shape, dtype=np.int8)
    count = np.sum(np.stack(_windows(layer, ones, 0)), axis=0).astype(np.int64)
    half = count // 2
    avg = np.where(total > 0, (total + half) // count, -((half - total) // count))
    out: I8 = np.clip(avg, layer.act[0], layer.act[1]).astype(np.int8)
    return out


def mean(layer: Mean, x: I8) -> I8:
    sums = x.reshape(layer.outer, layer.reduce, layer.inner).astype(np.int64).sum(axis=1)
    if not layer.rescale:  # C's int division truncates toward zero
        q = np.abs(sums) // layer.reduce
        truncated: I8 = (np.sign(sums) * q).astype(np.int8).reshape(-1)
        return truncated
    shifted = sums - layer.in_zp * layer.reduce
    y = multiply_by_quantized_multiplier(shifted, np.array(layer.multiplier, dtype=np.int64),
                                         np.array(layer.shift, dtype=np.int64)) + layer.out_zp
    return np.clip(y, -128, 127).astype(np.int8).reshape(-1)


def fully_connected(layer: FullyConnected, x: I8) -> I8:
    """acc = sum w * (x - zp_in) + bias, rescaled in double and rounded half away from zero."""
    acc = layer.weights.astype(np.int64) @ (x.reshape(-1).astype(np.int64) - layer.in_zp)
    acc = (acc + layer.bias).astype(np.int32)  # the reference accumulates in int32
    scaled = round_half_away(acc.astype(np.float64) * layer.scale)
    y = np.clip(scaled, INT32_MIN, INT32_MAX).astype(np.int64) + layer.out_zp
    return np.clip(y, layer.act[0], layer.act[1]).astype(np.int8)


def add(layer: Add, a: I8, b: I8) -> I8:
    scaled = [
        multiply_by_quantized_multiplier(
            (v.reshape(-1).astype(np.int64) - zp) << layer.left_shift, _i64(m), _i64(s))
        for v, zp, m, s in zip((a, b), layer.in_zp, layer.in_multiplier, layer.in_shift,
                               strict=True)
    ]
    y = multiply_by_quantized_multiplier(scaled[0] + scaled[1], _i64(layer.out_multiplier),
                                         _i64(layer.out_shift)) + layer.out_zp
    return np.clip(y, layer.act[0], layer.act[1]).astype(np.int8)


def pad(layer: Pad, x: I8) -> I8:
    (h, w, c), (t, left, front) = layer.in_shape, layer.before
    out = np.full(layer.out_shape, layer.value, dtype=np.int8)
    out[t : t + h, left : left + w, front : front + c] = x.reshape(h, w, c)
    return out


def requantize(layer: Requantize, x: I8) -> I8:
    y = multiply_by_quantized_multiplier(x.reshape(-1).astype(np.int64) - layer.in_zp,
                                         _i64(layer.multiplier), _i64(layer.shift))
    return np.clip(y + layer.out_zp, layer.act[0], layer.act[1]).astype(np.int8)


def apply(layer: Layer, inputs: list[I8]) -> I8:
    """The layer's flattened int8 output for its int8 input(s)."""
    x = inputs[0]
    if isinstance(layer, Conv2D):
        y = conv2d(layer, x)
    elif isinstance(layer, DepthwiseConv2D):
        y = depthwise_conv2d(layer, x)
    elif isinstance(layer, MaxPool2D):
        y = max_pool2d(layer, x)
    elif isinstance(layer, AvgPool2D):
        y = avg_pool2d(layer, x)
    elif isinstance(layer, Mean):
        y = mean(layer, x)
    elif isinstance(layer, FullyConnected):
        y = fully_connected(layer, x)
    elif isinstance(layer, Add):
        y = add(layer, x, inputs[1])
    elif isinstance(layer, Pad):
        y = pad(layer, x)
    else:
        y = requantize(layer, x)
    return y.reshape(-1)
