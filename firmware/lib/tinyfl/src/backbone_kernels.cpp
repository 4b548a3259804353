// Int8 kernels of the backbone, with the semantics of LiteRT's reference kernels
// (reference_integer_ops / reference_ops; TFLite's int8 quantization spec; Jacob et al., CVPR
// 2018). Arithmetic per op: docs/MODEL.md. Layers come from backbone_parse(), which has checked
// every shape, range and operand, so these loops do no checks of their own.
#include "backbone_kernels.h"

#include <math.h>
#include <string.h>

namespace tinyfl {
namespace kernels {

namespace {

constexpr int32_t kInt32Max = 2147483647;
constexpr int32_t kInt32Min = -2147483647 - 1;

int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// v + zp_out, clamped to [lo, hi]. In 64 bits: a blob from outside may hold a rescale that lands
// next to INT32_MAX, and the sum must not be undefined behaviour (valid models never get close).
int8_t offset_clamp(int32_t v, int32_t zp, int32_t lo, int32_t hi) {
  const int64_t y = static_cast<int64_t>(v) + zp;
  return static_cast<int8_t>(y < lo ? lo : (y > hi ? hi : y));
}

// acc + bias wraps like the reference's int32 arithmetic on the hardware it runs on (a bias can
// be anything in a blob from outside; defined behaviour either way). The host does the same.
int32_t wrapping_add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

// acc + bias -> per-channel rescale -> + zp_out -> fused activation clamp.
int8_t requantize_channel(const BackboneLayer& l, int32_t acc, int oc) {
  acc = wrapping_add(acc, le_i32(l.bias + 4 * oc));
  acc = multiply_by_quantized_multiplier(acc, le_i32(l.mults + 4 * oc),
                                         static_cast<int8_t>(l.shifts[oc]));
  return offset_clamp(acc, l.out_zp, l.act_min, l.act_max);
}

// C's truncating division rounded half away from zero, as the reference AveragePool divides.
int32_t divide_round(int32_t sum, int32_t n) {
  return sum > 0 ? (sum + n / 2) / n : (sum - n / 2) / n;
}

}  // namespace

int32_t le_i32(const uint8_t* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                              (static_cast<uint32_t>(p[2]) << 16) |
                              (static_cast<uint32_t>(p[3]) << 24));
}

double le_f64(const uint8_t* p) {
  uint64_t bits = 0;
  for (int i = 7; i >= 0; --i) bits = (bits << 8) | p[i];
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

void conv2d(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  const int32_t in_offset = -l.in_zp;
  const size_t filter_size = static_cast<size_t>(l.k_h) * l.k_w * l.in_c;
  for (int oy = 0; oy < l.out_h; ++oy) {
    const int in_y0 = oy * l.stride_h - l.pad_top;
    for (int ox = 0; ox < l.out_w; ++ox) {
      const int in_x0 = ox * l.stride_w - l.pad_left;
      for (int oc = 0; oc < l.out_c; ++oc) {
        const int8_t* w = l.weights + oc * filter_size;
        int32_t acc = 0;
        for (int ky = 0; ky < l.k_h; ++ky) {
          const int y = in_y0 + ky * l.dil_h;
          if (y < 0 || y >= l.in_h) continue;  // padding taps add nothing
          for (int kx = 0; kx < l.k_w; ++kx) {
            const int x = in_x0 + kx * l.dil_w;
            if (x < 0 || x >= l.in_w) continue;
            const int8_t* px = in + (static_cast<size_t>(y) * l.in_w + x) * l.in_c;
            const int8_t* pw = w + (static_cast<size_t>(ky) * l.k_w + kx) * l.in_c;
            for (int ic = 0; ic < l.in_c; ++ic) acc += pw[ic] * (px[ic] + in_offset);
          }
        }
        *out++ = requantize_channel(l, acc, oc);
      }
    }
  }
}

// DepthwiseConvPerChannel: output channel c * multiplier + m reads input channel c; weights are
// (k_h, k_w, out_c).
void depthwise_conv2d(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  const int32_t in_offset = -l.in_zp;
  const int mult = l.out_c / l.in_c;
  for (int oy = 0; oy < l.out_h; ++oy) {
    const int in_y0 = oy * l.stride_h - l.pad_top;
    for (int ox = 0; ox < l.out_w; ++ox) {
      const int in_x0 = ox * l.stride_w - l.pad_left;
      for (int oc = 0; oc < l.out_c; ++oc) {
        const int ic = oc / mult;
        int32_t acc = 0;
        for (int ky = 0; ky < l.k_h; ++ky) {
          const int y = in_y0 + ky * l.dil_h;
          if (y < 0 || y >= l.in_h) continue;
          for (int kx = 0; kx < l.k_w; ++kx) {
            const int x = in_x0 + kx * l.dil_w;
            if (x < 0 || x >= l.in_w) continue;
            const int32_t v = in[(static_cast<size_t>(y) * l.in_w + x) * l.in_c + ic];
            const int32_t w = l.weights[(static_cast<size_t>(ky) * l.k_w + kx) * l.out_c + oc];
            acc += w * (v + in_offset);
          }
        }
        *out++ = requantize_channel(l, acc, oc);
      }
    }
  }
}

// Max and average pooling share the window walk: only the in-image part of a window counts.
template <bool kAverage>
void pool2d(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  for (int oy = 0; oy < l.out_h; ++oy) {
    const int y0 = oy * l.stride_h - l.pad_top;
    for (int ox = 0; ox < l.out_w; ++ox) {
      const int x0 = ox * l.stride_w - l.pad_left;
      for (int c = 0; c < l.in_c; ++c) {
        int32_t acc = kAverage ? 0 : -128;
        int32_t count = 0;
        for (int ky = 0; ky < l.k_h; ++ky) {
          const int y = y0 + ky;
          if (y < 0 || y >= l.in_h) continue;
          for (int kx = 0; kx < l.k_w; ++kx) {
            const int x = x0 + kx;
            if (x < 0 || x >= l.in_w) continue;
            const int32_t v = in[(static_cast<size_t>(y) * l.in_w + x) * l.in_c + c];
            if (kAverage) {
              acc += v;
              ++count;
            } else if (v > acc) {
              acc = v;
            }
          }
        }
        // backbone_parse() guarantees every window overlaps the image, so count > 0.
        if (kAverage) acc = divide_round(acc, count);
        *out++ = static_cast<int8_t>(clamp(acc, l.act_min, l.act_max));
      }
    }
  }
}

void max_pool2d(const BackboneLayer& l, const int8_t* in, int8_t* out) { pool2d<false>(l, in, out); }
void avg_pool2d(const BackboneLayer& l, const int8_t* in, int8_t* out) { pool2d<true>(l, in, out); }

// LiteRT's integer MEAN: with differing quantization QuantizedMeanOrSum (sum, minus n * zp_in,
// one rescale with 1/n folded in); with equal quantization the plain truncating mean.
void mean(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  const int32_t n = l.in_w;
  for (int o = 0; o < l.in_h; ++o) {
    for (int i = 0; i < l.in_c; ++i) {
      const int8_t* p = in + static_cast<size_t>(o) * n * l.in_c + i;
      int32_t sum = 0;
      for (int r = 0; r < n; ++r) sum += p[static_cast<size_t>(r) * l.in_c];
      if (!l.mean_rescale) {
        *out++ = static_cast<int8_t>(sum / n);
        continue;
      }
      const int32_t v = multiply_by_quantized_multiplier(sum - l.in_zp * n, l.multiplier, l.shift);
      *out++ = offset_clamp(v, l.out_zp, -128, 127);
    }
  }
}

// Per-channel FULLY_CONNECTED as LiteRT's reference kernel computes it:
// (int32) round(double(acc) * double_scale[c]), then the output offset and the clamp.
void fully_connected(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  const int32_t in_offset = -l.in_zp;
  for (int oc = 0; oc < l.out_c; ++oc) {
    const int8_t* w = l.weights + static_cast<size_t>(oc) * l.in_c;
    int32_t acc = 0;
    for (int i = 0; i < l.in_c; ++i) acc += w[i] * (in[i] + in_offset);
    acc = wrapping_add(acc, le_i32(l.bias + 4 * oc));
    double v = round(static_cast<double>(acc) * le_f64(l.scales + 8 * oc));
    if (v > kInt32Max) v = kInt32Max;
    if (v < kInt32Min) v = kInt32Min;
    const int64_t y = static_cast<int64_t>(v) + l.out_zp;
    *out++ = static_cast<int8_t>(y < l.act_min ? l.act_min : (y > l.act_max ? l.act_max : y));
  }
}

// TFLite's reference int8 ADD: each input centred, shifted left (20) so the rescale to twice the
// larger input scale keeps precision, the two summed, the sum rescaled to the output.
void add(const BackboneLayer& l, const int8_t* a, const int8_t* b, int8_t* out) {
  for (uint32_t i = 0; i < l.out_size; ++i) {
    const int32_t xa = (a[i] - l.in_zp) * (1 << l.left_shift);
    const int32_t xb = (b[i] - l.in2_zp) * (1 << l.left_shift);
    const int32_t sum = multiply_by_quantized_multiplier(xa, l.in_mults[0], l.in_shifts[0]) +
                        multiply_by_quantized_multiplier(xb, l.in_mults[1], l.in_shifts[1]);
    const int32_t v = multiply_by_quantized_multiplier(sum, l.multiplier, l.shift);
    out[i] = offset_clamp(v, l.out_zp, l.act_min, l.act_max);
  }
}

// Constant padding with the output zero point (real 0): fill, then copy each input row of
// channels into place.
void pad(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  memset(out, static_cast<uint8_t>(l.pad_value), l.out_size);
  for (int y = 0; y < l.in_h; ++y) {
    for (int x = 0; x < l.in_w; ++x) {
      const size_t dst = ((static_cast<size_t>(y) + l.pad_top) * l.out_w + x + l.pad_left) *
                             l.out_c + l.pad_front;
      memcpy(out + dst, in + (static_cast<size_t>(y) * l.in_w + x) * l.in_c, l.in_c);
    }
  }
}

// RELU / RELU6 (activations.cc ReluX) and QUANTIZE int8 -> int8 (Requantize):
// clamp(zp_out + MBQM(q - zp_in, M, shift)).
void requantize(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  for (uint32_t i = 0; i < l.out_size; ++i) {
    const int32_t v = multiply_by_quantized_multiplier(in[i] - l.in_zp, l.multiplier, l.shift);
    out[i] = offset_clamp(v, l.out_zp, l.act_min, l.act_max);
  }
}

}  // namespace kernels
}  // namespace tinyfl
