"""TFLite's integer rescaling arithmetic in numpy (shared by the host's int8 kernels).

TFLite's integer-only inference (Jacob et al., "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", CVPR 2018; TFLite's int8 quantization spec): a real
multiplier M is stored as a Q31 fixed-point `multiplier` and a power-of-two `shift`
(QuantizeMultiplier); an int32 value is rescaled by SaturatingRoundingDoublingHighMul and
RoundingDivideByPOT (MultiplyByQuantizedMultiplier). The firmware core (backbone.cpp) implements
the same functions; both must agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from tinyfl.model.tflite import ModelError

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "activation_range",
    "multiply_by_quantized_multiplier",
    "quantize_multiplier",
    "round_half_away",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
    "tflite_round",
]

I64 = npt.NDArray[np.int64]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

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



def round_half_away(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """C's round() on doubles, exactly (floor, then compare the exact remainder with 0.5)."""
    a = np.abs(v)
    f = np.floor(a)
    out: npt.NDArray[np.float64] = np.copysign(f + (a - f >= 0.5), v)
    return out
