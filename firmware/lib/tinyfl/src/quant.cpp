#include "tinyfl/quant.h"

#include <float.h>
#include <math.h>

#include "tinyfl/half.h"

namespace tinyfl {
namespace {

// max|x| over n values; false if one of them is NaN or infinite.
bool max_abs(const float* x, size_t n, float* out) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float a = fabsf(x[i]);
    if (!(a <= FLT_MAX)) return false;  // also catches NaN
    if (a > m) m = a;
  }
  *out = m;
  return true;
}

// One scale per tensor or per row; scales[s] = max|x| / qmax in float32, rounded to the binary16 the
// wire carries (the receiver dequantizes with that one, so the codes are made with it too).
bool compute_scales(const float* x, uint16_t rows, uint16_t cols, uint8_t scale_mode, int8_t qmax, float* scales) {
  const float q = static_cast<float>(qmax);
  if (scale_mode == kScalePerTensor) {
    float m;
    if (!max_abs(x, static_cast<size_t>(rows) * cols, &m)) return false;
    scales[0] = round_to_half(m / q);
    return true;
  }
  for (uint16_t r = 0; r < rows; ++r) {
    float m;
    if (!max_abs(x + static_cast<size_t>(r) * cols, cols, &m)) return false;
    scales[r] = round_to_half(m / q);
  }
  return true;
}

// floor(x / scale + u) clamped to [-qmax, qmax]; 0 when scale is 0. floorf of a finite value.
inline int8_t round_code(float x, float scale, float u, float qmax) {
  if (scale == 0.0f) return 0;
  float q = floorf(x / scale + u);
  if (q > qmax) q = qmax;
  if (q < -qmax) q = -qmax;
  return static_cast<int8_t>(q);
}

template <typename Dither>
Status quantize_with(const float* x, uint16_t rows, uint16_t cols, uint8_t bits, uint8_t scale_mode,
                     Dither&& dither, int8_t* codes, float* scales) {
  const int8_t qmax = quant_qmax(bits);
  if (qmax == 0 || scale_mode > kScalePerRow) return Status::BadValue;
  if (!compute_scales(x, rows, cols, scale_mode, qmax, scales)) return Status::NonFinite;
  const float qf = static_cast<float>(qmax);
  size_t i = 0;
  for (uint16_t r = 0; r < rows; ++r) {
    const float scale = scales[scale_mode == kScalePerRow ? r : 0];
    for (uint16_t c = 0; c < cols; ++c, ++i) codes[i] = round_code(x[i], scale, dither(), qf);
  }
  return Status::Ok;
}

}  // namespace

Status quantize(const float* x, uint16_t rows, uint16_t cols, uint8_t bits, uint8_t scale_mode, Rng& rng,
                int8_t* codes, float* scales) {
  return quantize_with(x, rows, cols, bits, scale_mode, [&rng]() { return rng.uniform01(); }, codes, scales);
}

Status quantize_scaled(const float* x, size_t n, uint8_t bits, float scale, Rng& rng, int8_t* codes) {
  const int8_t qmax = quant_qmax(bits);
  if (qmax == 0 || !(scale > 0.0f) || !(scale <= FLT_MAX)) return Status::BadValue;
  float unused;
  if (!max_abs(x, n, &unused)) return Status::NonFinite;
  const float qf = static_cast<float>(qmax);
  for (size_t i = 0; i < n; ++i) codes[i] = round_code(x[i], scale, rng.uniform01(), qf);
  return Status::Ok;
}

Status quantize_nearest(const float* x, uint16_t rows, uint16_t cols, uint8_t bits, uint8_t scale_mode,
                        int8_t* codes, float* scales) {
  return quantize_with(x, rows, cols, bits, scale_mode, []() { return 0.5f; }, codes, scales);
}

Status dequantize(const int8_t* codes, const float* scales, uint16_t rows, uint16_t cols, uint8_t scale_mode,
                  float* out) {
  if (scale_mode > kScalePerRow) return Status::BadValue;
  size_t i = 0;
  for (uint16_t r = 0; r < rows; ++r) {
    const float scale = scales[scale_mode == kScalePerRow ? r : 0];
    for (uint16_t c = 0; c < cols; ++c, ++i) out[i] = static_cast<float>(codes[i]) * scale;
  }
  return Status::Ok;
}

}  // namespace tinyfl
