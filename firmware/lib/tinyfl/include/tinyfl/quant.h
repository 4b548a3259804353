// Symmetric quantization of a float32 matrix to 8, 4 or 2-bit codes with float32 scales
// (docs/WIRE.md, "tensor" and "PRNG and stochastic rounding").
//
// The uplink uses stochastic rounding so that the coordinator's average of many nodes' updates is
// unbiased (E[q * scale] = x); the deterministic variant rounds to nearest for the downlink, where
// one message serves every node and bias cannot average out anyway. All math is float32 in a fixed
// order, so host/tinyfl/quant.py reproduces the codes bit for bit. Codes are one int8 per value;
// packing them into 4 or 2 bits is the wire codec's job.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/rng.h"
#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint8_t kScalePerTensor = 0;
constexpr uint8_t kScalePerRow = 1;

// Largest code of a `bits`-bit tensor: 127, 7 or 1; 0 for any other bit width.
constexpr int8_t quant_qmax(uint8_t bits) {
  return bits == 8 ? int8_t{127} : bits == 4 ? int8_t{7} : bits == 2 ? int8_t{1} : int8_t{0};
}

// Number of scales a tensor carries: 1 per tensor, `rows` per row.
constexpr uint16_t quant_scale_count(uint16_t rows, uint8_t scale_mode) {
  return scale_mode == kScalePerRow ? rows : uint16_t{1};
}

// Stochastic rounding: scale = max|x| / qmax over the tensor or the row, then for every value in
// row-major order q = clamp(floor(x / scale + u), -qmax, qmax) with u = rng.uniform01(); q = 0
// where scale = 0. One u is drawn per value, also where scale = 0, so the number of draws is
// always rows * cols. `x` and `codes` hold rows * cols values; `scales` holds
// quant_scale_count(rows, scale_mode) values. Errors: BadValue (bits not 8/4/2, scale_mode not
// 0/1), NonFinite (a value is NaN or infinite; nothing is drawn from rng then).
[[nodiscard]] Status quantize(const float* x, uint16_t rows, uint16_t cols, uint8_t bits, uint8_t scale_mode,
                              Rng& rng, int8_t* codes, float* scales);

// Stochastic rounding with a scale given from outside (a secure-aggregation round's common scale,
// docs/WIRE.md): q = clamp(floor(x / scale + u), -qmax, qmax), one u per value in row-major order
// as quantize() draws them. Errors: BadValue (bits not 8/4/2, scale not finite and > 0),
// NonFinite (a value is NaN or infinite; nothing drawn then).
[[nodiscard]] Status quantize_scaled(const float* x, size_t n, uint8_t bits, float scale, Rng& rng,
                                     int8_t* codes);

// Deterministic variant: u = 0.5 for every value (round half up), no generator.
[[nodiscard]] Status quantize_nearest(const float* x, uint16_t rows, uint16_t cols, uint8_t bits,
                                      uint8_t scale_mode, int8_t* codes, float* scales);

// out[i] = codes[i] * scale (float32), the scale of the tensor or of the value's row.
// Errors: BadValue (scale_mode not 0/1). `out` may not alias `scales`.
[[nodiscard]] Status dequantize(const int8_t* codes, const float* scales, uint16_t rows, uint16_t cols,
                                uint8_t scale_mode, float* out);

}  // namespace tinyfl
