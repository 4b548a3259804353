"""The int8 backbone in numpy, bit-exact with TFLite's reference kernels (and the node's C++).

Why: the coordinator evaluates and exports models on machines without TensorFlow, and the node's
embedding must equal the host's byte for byte, so both follow one arithmetic: TFLite's integer-only
inference (Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; TFLite's int8 quantization spec). A real multiplier
M = S_in * S_w / S_out is stored as a Q31 fixed-point `multiplier` and a power-of-two `shift`
(QuantizeMultiplier); an int32 accumulator is rescaled by SaturatingRoundingDoublingHighMul and
RoundingDivideByPOT (MultiplyByQuantizedMultiplier), then offset by the output zero point and
clamped to the fused activation's range.

`prepare(model)` turns a .tflite's linear chain of ops into compute layers (reshapes vanish:
activations are contiguous row-major, NHWC), checking every shape once; `run(layers, x)` is then a
pure function of the int8 input. The firmware blob (tinyfl.model.firmware_blob) serializes exactly
these layers, so the C++ kernels see the same multipliers, shifts and clamps.

Supported ops: EXPAND_DIMS, RESHAPE, SQUEEZE (no-ops on data), CONV_2D (per-channel int8; a Keras
Conv1D is a 1-row CONV_2D), MAX_POOL_2D, MEAN over contiguous axes (LiteRT's integer
reference mean), FULLY_CONNECTED (per-channel int8,
rescaled in double as LiteRT's reference kernel does), fused NONE/RELU/RELU6/RELU_N1_TO_1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tinyfl.model.tflite import ModelError, Operator, Tensor, TfliteModel

__all__ = [
    "SUPPORTED_OPS",
    "Conv2D",
    "FullyConnected",
    "Layer",
    "MaxPool2D",
    "Mean",
    "activation_range",
    "mean_multiplier",
    "multiply_by_quantized_multiplier",
    "prepare",
    "quantize_multiplier",
    "round_half_away",
    "rounding_divide_by_pot",
    "run",
    "run_model",
    "saturating_rounding_doubling_high_mul",
]

SUPPORTED_OPS = frozenset(
    {"EXPAND_DIMS", "RESHAPE", "SQUEEZE", "CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED"}
)
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# ---------------------------------------------------------------------------------------------
# fixed-point arithmetic (tensorflow/lite/kernels/internal/common.h, quantization_util.cc)


def tflite_round(x: float) -> int:
    """std::round: halves away from zero (TfLiteRound), unlike Python's round-half-even."""
    a = abs(x)
    f = math.floor(a)
    return int(math.copysign(f + (1 if a - f >= 0.5 else 0), x))  # a - f is exact; a + 0.5 is not


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).

    `real` is a double; frexp gives q in [0.5, 1); q * 2^31 rounds half away from zero and may
    round up to 2^31, which is renormalised. Shifts below -31 flush to zero, as TFLite does.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if q_fixed > INT32_MAX:
        raise ModelError(f"multiplier {real} does not fit Q31")
    return q_fixed, shift


def saturating_rounding_doubling_high_mul(a: I64, b: I64) -> I64:
    """gemmlowp's SaturatingRoundingDoublingHighMul: round(a * b / 2^31) with C's truncating
    division after a +-2^30 nudge; the one overflow case (INT32_MIN * INT32_MIN) saturates."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.sign(nudged) * (np.abs(nudged) >> 31)  # truncation toward zero
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x: I64, exponent: I64) -> I64:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, halves away from zero."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: I64, multiplier: I64, shift: I64) -> I64:
    """MultiplyByQuantizedMultiplier (TFLite's default double-rounding form):
    RoundingDivideByPOT(SRDHM(x * 2^max(shift, 0), multiplier), max(-shift, 0))."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    scaled = (np.asarray(x, dtype=np.int64) << left).astype(np.int32).astype(np.int64)  # int32 wrap
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right)


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8: the fused activation's bounds in the output's
    quantized domain (zp + round(f / scale), in float32), intersected with [-128, 127]."""

    def q(f: float) -> int:
        return zero_point + tflite_round(float(np.float32(f) / np.float32(scale)))

    if activation == 0:  # NONE
        return -128, 127
    if activation == 1:  # RELU
        return max(-128, q(0.0)), 127
    if activation == 2:  # RELU_N1_TO_1
        return max(-128, q(-1.0)), min(127, q(1.0))
    if activation == 3:  # RELU6
        return max(-128, q(0.0)), min(127, q(6.0))
    raise ModelError(f"unsupported fused activation {activation} (only NONE, RELU, RELU6, "
                     "RELU_N1_TO_1 on int8)")


# ---------------------------------------------------------------------------------------------
# layers


@dataclass(frozen=True)
class Conv2D:
    """Per-channel int8 convolution, NHWC input (h, w, cin), weights (cout, kh, kw, cin)."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
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
class MaxPool2D:
    """int8 max pooling; input and output share scale and zero point (nothing to rescale)."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    filter: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    act: tuple[int, int]


@dataclass(frozen=True)
class Mean:
    """Mean over the middle axis of (outer, reduce, inner), all in integers as LiteRT's reference
    QuantizedMeanOrSum does it: the Q31 multiplier of S_in / S_out absorbs 1/n (shifted left by
    floor(log2 n) first, to keep precision), then
    out = MBQM(sum(q) - zp_in * n, multiplier, shift) + zp_out, clamped to int8."""

    outer: int
    reduce: int
    inner: int
    in_zp: int
    multiplier: int  # already divided by `reduce`
    shift: int
    out_zp: int


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


Layer = Conv2D | MaxPool2D | Mean | FullyConnected


def _padding(padding: int, size: int, filt: int, stride: int, dilation: int, out: int) -> int:
    """ComputePaddingHeightWidth: SAME pads (total // 2) before; VALID pads nothing. Checks that
    the stored output size is the one the padding implies."""
    eff = (filt - 1) * dilation + 1
    expected = (size + stride - 1) // stride if padding == 0 else (size + stride - eff) // stride
    if padding not in (0, 1) or expected != out or out <= 0:
        raise ModelError(f"output size {out} does not follow from input {size}, filter {filt}, "
                         f"stride {stride}, padding {'SAME' if padding == 0 else 'VALID'}")
    return max((out - 1) * stride + eff - size, 0) // 2


def _hwc(t: Tensor) -> tuple[int, int, int]:
    if len(t.shape) != 4 or t.shape[0] != 1:
        raise ModelError(f"tensor {t.index} ({t.name}): expected shape (1, h, w, c), got "
                         f"{list(t.shape)}")
    return t.shape[1], t.shape[2], t.shape[3]


def _int8_quant(t: Tensor) -> tuple[float, int]:
    if t.type != 9 or t.quant is None or len(t.quant.scale) != 1:
        raise ModelError(f"tensor {t.index} ({t.name}) must be per-tensor quantized INT8, is "
                         f"{t.type_name}")
    return t.quant.scale[0], t.quant.zero_point[0]


def _weights(model: TfliteModel, op: Operator, n_out: int
             ) -> tuple[I8, I32, list[float], float, int, float, int]:
    """int8 weights, int32 bias and per-channel weight scales of a conv or FC op, plus the
    input's and output's (scale, zero point). Weights must be symmetric per-channel int8 along
    dimension 0 (TFLite's int8 spec), the bias int32."""
    x, w = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
    s_in, zp_in = _int8_quant(x)
    s_out, zp_out = _int8_quant(model.tensors[op.outputs[0]])
    if w.type != 9 or w.quant is None:
        raise ModelError(f"{op.name} {op.index}: weights must be INT8, are {w.type_name}")
    if any(z != 0 for z in w.quant.zero_point):
        raise ModelError(f"{op.name} {op.index}: int8 weights must be symmetric (zero point 0)")
    scales = w.quant.scale
    if len(scales) != n_out or (n_out > 1 and w.quant.quantized_dimension != 0):
        raise ModelError(f"{op.name} {op.index}: {len(scales)} weight scales for {n_out} channels "
                         "(only per-channel int8 weights are supported)")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = model.tensors[op.inputs[2]]
        if b.type != 2:
            raise ModelError(f"{op.name} {op.index}: bias must be INT32, is {b.type_name}")
        bias = b.array().astype(np.int32).reshape(-1)
        if bias.size != n_out:
            raise ModelError(f"{op.name} {op.index}: {bias.size} biases for {n_out} channels")
    else:
        bias = np.zeros(n_out, dtype=np.int32)
    return w.array().astype(np.int8), bias, list(scales), s_in, zp_in, s_out, zp_out


def _conv(model: TfliteModel, op: Operator) -> Conv2D:
    x, w, out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    h, wd, cin = _hwc(x)
    oh, ow, cout = _hwc(out)
    if len(w.shape) != 4 or w.shape[0] != cout or w.shape[3] != cin:
        raise ModelError(f"CONV_2D {op.index}: filter {list(w.shape)} does not match input "
                         f"channels {cin} / output channels {cout} (grouped conv unsupported)")
    kh, kw = w.shape[1], w.shape[2]
    o = op.options
    sh, sw = int(o["stride_h"]), int(o["stride_w"])
    dh, dw = int(o["dilation_h_factor"]), int(o["dilation_w_factor"])
    if min(sh, sw, dh, dw) < 1:
        raise ModelError(f"CONV_2D {op.index}: stride and dilation must be positive")
    pt = _padding(int(o["padding"]), h, kh, sh, dh, oh)
    pl = _padding(int(o["padding"]), wd, kw, sw, dw, ow)
    weights, bias, scales, s_in, zp_in, s_out, zp_out = _weights(model, op, cout)
    # PopulateConvolutionQuantizationParams: M_c = double(S_in) * double(S_w[c]) / double(S_out)
    mult = np.zeros(cout, dtype=np.int32)
    shift = np.zeros(cout, dtype=np.int32)
    for c in range(cout):
        mult[c], shift[c] = quantize_multiplier(float(s_in) * float(scales[c]) / float(s_out))
    act = activation_range(int(o["fused_activation_function"]), s_out, zp_out)
    return Conv2D((h, wd, cin), (oh, ow, cout), (sh, sw), (dh, dw), (pt, pl), weights, bias, mult,
                  shift, zp_in, zp_out, act)


def _max_pool(model: TfliteModel, op: Operator) -> MaxPool2D:
    x, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    h, w, c = _hwc(x)
    oh, ow, oc = _hwc(out)
    if _int8_quant(x) != _int8_quant(out) or oc != c:
        raise ModelError(f"MAX_POOL_2D {op.index}: input and output must share channels and "
                         "quantization")
    o = op.options
    fh, fw, sh, sw = (int(o[k]) for k in ("filter_height", "filter_width", "stride_h", "stride_w"))
    if min(fh, fw, sh, sw) < 1:
        raise ModelError(f"MAX_POOL_2D {op.index}: filter and stride must be positive")
    pt = _padding(int(o["padding"]), h, fh, sh, 1, oh)
    pl = _padding(int(o["padding"]), w, fw, sw, 1, ow)
    s, zp = _int8_quant(out)
    act = activation_range(int(o.get("fused_activation_function", 0)), s, zp)
    return MaxPool2D((h, w, c), (oh, ow, c), (fh, fw), (sh, sw), (pt, pl), act)


def mean_multiplier(real: float, n: int) -> tuple[int, int]:
    """(multiplier, shift) of S_in / (S_out * n): QuantizeMultiplier(S_in / S_out), then the
    multiplier is scaled by 2^k / n (k = floor(log2 n), at most 32 and at most 31 + shift so the
    final shift stays >= -31) with truncating integer division, and the shift lowered by k."""
    mult, shift = quantize_multiplier(real)
    k = min(n.bit_length() - 1, 32, 31 + shift)
    if k < 0:
        raise ModelError(f"MEAN rescale {real} is too small to represent")
    return (mult << k) // n, shift - k


def _mean(model: TfliteModel, op: Operator) -> Mean:
    x, ax, out = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]], model.tensors[op.outputs[0]]
    s_in, zp_in = _int8_quant(x)
    s_out, zp_out = _int8_quant(out)
    dims = x.shape
    axes = sorted({int(a) % len(dims) for a in ax.array().reshape(-1)}) if dims else []
    if not axes or axes != list(range(axes[0], axes[-1] + 1)):
        raise ModelError(f"MEAN {op.index}: axes {axes} are not one contiguous run")
    outer = int(np.prod(dims[: axes[0]], dtype=np.int64))
    red = int(np.prod(dims[axes[0] : axes[-1] + 1], dtype=np.int64))
    inner = int(np.prod(dims[axes[-1] + 1 :], dtype=np.int64))
    if red < 1 or red > 1 << 23 or outer * inner != int(np.prod(out.shape, dtype=np.int64)):
        raise ModelError(f"MEAN {op.index}: output shape {list(out.shape)} does not match")
    mult, shift = mean_multiplier(float(s_in) / float(s_out), red)
    return Mean(outer, red, inner, zp_in, mult, shift, zp_out)


def _fully_connected(model: TfliteModel, op: Operator) -> FullyConnected:
    x, w, out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if len(w.shape) != 2:
        raise ModelError(f"FULLY_CONNECTED {op.index}: weights must be 2-D, are {list(w.shape)}")
    m, n = w.shape
    if int(np.prod(x.shape, dtype=np.int64)) != n or int(np.prod(out.shape, dtype=np.int64)) != m:
        raise ModelError(f"FULLY_CONNECTED {op.index}: only batch 1 ({n} -> {m}) is supported")
    if int(op.options.get("weights_format", 0)) != 0:
        raise ModelError(f"FULLY_CONNECTED {op.index}: shuffled weights are unsupported")
    weights, bias, scales, s_in, zp_in, s_out, zp_out = _weights(model, op, m)
    eff = np.array([float(s_in) * float(sc) / float(s_out) for sc in scales], dtype=np.float64)
    act = activation_range(int(op.options.get("fused_activation_function", 0)), s_out, zp_out)
    return FullyConnected(n, m, weights, bias, eff, zp_in, zp_out, act)


def _build_layer(model: TfliteModel, op: Operator) -> Layer:
    if op.name == "CONV_2D":
        return _conv(model, op)
    if op.name == "MAX_POOL_2D":
        return _max_pool(model, op)
    if op.name == "MEAN":
        return _mean(model, op)
    return _fully_connected(model, op)


def prepare(model: TfliteModel) -> list[Layer]:
    """Compute layers of a single-input, single-output chain of supported ops (reshapes dropped).

    Raises ModelError naming the first op that is unsupported or does not continue the chain.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError("a backbone has one input and one output")
    current = model.inputs[0]
    _int8_quant(model.tensors[current])
    layers: list[Layer] = []
    for op in model.operators:
        if op.name not in SUPPORTED_OPS:
            raise ModelError(f"unsupported op {op.name} (operator {op.index}); supported: "
                             f"{', '.join(sorted(SUPPORTED_OPS))}")
        if not op.inputs or op.inputs[0] != current or len(op.outputs) != 1:
            raise ModelError(f"{op.name} {op.index} does not continue the chain (a backbone is a "
                             "linear sequence of ops)")
        src, dst = model.tensors[current], model.tensors[op.outputs[0]]
        if op.name in ("EXPAND_DIMS", "RESHAPE", "SQUEEZE"):
            if np.prod(src.shape, dtype=np.int64) != np.prod(dst.shape, dtype=np.int64) or (
                _int8_quant(src) != _int8_quant(dst)
            ):
                raise ModelError(f"{op.name} {op.index} changes size or quantization")
        else:
            try:
                layers.append(_build_layer(model, op))
            except (KeyError, IndexError) as exc:
                # A corrupted file can lack an option table field the op needs.
                raise ModelError(f"{op.name} {op.index}: missing or malformed option {exc}") from None
        current = op.outputs[0]
    if current != model.outputs[0]:
        raise ModelError("the chain of ops does not end at the model's output")
    _int8_quant(model.tensors[current])
    if not layers:
        raise ModelError("model has no compute layer")
    return layers


# ---------------------------------------------------------------------------------------------
# kernels (reference_integer_ops semantics)


def round_half_away(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """C's round() on doubles, exactly (floor, then compare the exact remainder with 0.5)."""
    a = np.abs(v)
    f = np.floor(a)
    out: npt.NDArray[np.float64] = np.copysign(f + (a - f >= 0.5), v)
    return out


def _requantize(acc: I64, layer: Conv2D) -> I8:
    """acc + bias -> rescale per output channel (last axis) -> + zp_out -> clamp."""
    acc = acc + layer.bias.astype(np.int64)
    y = multiply_by_quantized_multiplier(acc, layer.multiplier.astype(np.int64),
                                         layer.shift.astype(np.int64)) + layer.out_zp
    return np.clip(y, layer.act[0], layer.act[1]).astype(np.int8)


def conv2d(layer: Conv2D, x: I8) -> I8:
    """Padding taps are skipped by TFLite; padding with the input zero point makes them add 0."""
    h, w, cin = layer.in_shape
    oh, ow, cout = layer.out_shape
    kh, kw = layer.weights.shape[1:3]
    (sh, sw), (dh, dw), (pt, pl) = layer.stride, layer.dilation, layer.pad
    centered = x.reshape(h, w, cin).astype(np.int64) - layer.in_zp
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    padded = np.zeros((max(need_h, pt + h), max(need_w, pl + w), cin), dtype=np.int64)
    padded[pt : pt + h, pl : pl + w] = centered
    cols = np.stack(
        [padded[fy * dh : fy * dh + (oh - 1) * sh + 1 : sh, fx * dw : fx * dw + (ow - 1) * sw + 1 : sw]
         for fy in range(kh) for fx in range(kw)],
        axis=2,
    )  # (oh, ow, kh*kw, cin)
    acc = cols.reshape(oh * ow, kh * kw * cin) @ layer.weights.reshape(cout, -1).astype(np.int64).T
    return _requantize(acc, layer).reshape(oh, ow, cout)


def max_pool2d(layer: MaxPool2D, x: I8) -> I8:
    """Windows are clipped to the input (padding never wins a max), then clamped."""
    h, w, c = layer.in_shape
    oh, ow, _ = layer.out_shape
    (fh, fw), (sh, sw), (pt, pl) = layer.filter, layer.stride, layer.pad
    padded = np.full(((oh - 1) * sh + fh + h, (ow - 1) * sw + fw + w, c), -129, dtype=np.int16)
    padded[pt : pt + h, pl : pl + w] = x.reshape(h, w, c)
    best = np.full((oh, ow, c), -129, dtype=np.int16)
    for fy in range(fh):
        for fx in range(fw):
            best = np.maximum(best, padded[fy : fy + (oh - 1) * sh + 1 : sh,
                                           fx : fx + (ow - 1) * sw + 1 : sw])
    return np.clip(best, layer.act[0], layer.act[1]).astype(np.int8)


def mean(layer: Mean, x: I8) -> I8:
    """Integer sum minus n * zp_in, one MultiplyByQuantizedMultiplier, + zp_out, clamp."""
    sums = x.reshape(layer.outer, layer.reduce, layer.inner).astype(np.int64).sum(axis=1)
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


def run(layers: list[Layer], x: I8) -> I8:
    """The backbone's int8 output (flattened) for one int8 input."""
    y = np.asarray(x, dtype=np.int8)
    for layer in layers:
        if isinstance(layer, Conv2D):
            y = conv2d(layer, y)
        elif isinstance(layer, MaxPool2D):
            y = max_pool2d(layer, y)
        elif isinstance(layer, Mean):
            y = mean(layer, y)
        else:
            y = fully_connected(layer, y)
    return y.reshape(-1)


def run_model(model: TfliteModel, x: I8) -> I8:
    """Convenience: prepare + run (prepare once and reuse the layers for many inputs)."""
    return run(prepare(model), x)
