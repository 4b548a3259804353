// Int8 backbone kernels and the firmware model blob parser (see tinyfl/backbone.h, docs/MODEL.md).
#include "tinyfl/backbone.h"

#include <math.h>
#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"

namespace tinyfl {

namespace {

constexpr int32_t kInt32Max = 2147483647;
constexpr int32_t kInt32Min = -2147483647 - 1;
// Largest dot-product length whose int32 accumulator cannot overflow: 127 * 255 * n < 2^31.
constexpr uint32_t kMaxDepth = 66000;

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

int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// ------------------------------------------------------------------------------------------
// kernels (reference_integer_ops semantics)

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
        acc += le_i32(l.bias + 4 * oc);
        acc = multiply_by_quantized_multiplier(acc, le_i32(l.mults + 4 * oc),
                                               static_cast<int8_t>(l.shifts[oc]));
        *out++ = static_cast<int8_t>(clamp(acc + l.out_zp, l.act_min, l.act_max));
      }
    }
  }
}

void max_pool2d(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  for (int oy = 0; oy < l.out_h; ++oy) {
    const int y0 = oy * l.stride_h - l.pad_top;
    for (int ox = 0; ox < l.out_w; ++ox) {
      const int x0 = ox * l.stride_w - l.pad_left;
      for (int c = 0; c < l.in_c; ++c) {
        int32_t best = -128;
        for (int ky = 0; ky < l.k_h; ++ky) {
          const int y = y0 + ky;
          if (y < 0 || y >= l.in_h) continue;
          for (int kx = 0; kx < l.k_w; ++kx) {
            const int x = x0 + kx;
            if (x < 0 || x >= l.in_w) continue;
            const int32_t v = in[(static_cast<size_t>(y) * l.in_w + x) * l.in_c + c];
            if (v > best) best = v;
          }
        }
        *out++ = static_cast<int8_t>(clamp(best, l.act_min, l.act_max));
      }
    }
  }
}

// LiteRT's integer QuantizedMeanOrSum: sum, minus n * zp_in, one rescale (1/n folded into it).
void mean(const BackboneLayer& l, const int8_t* in, int8_t* out) {
  const int32_t n = l.in_w;
  for (int o = 0; o < l.in_h; ++o) {
    for (int i = 0; i < l.in_c; ++i) {
      const int8_t* p = in + static_cast<size_t>(o) * n * l.in_c + i;
      int32_t sum = 0;
      for (int r = 0; r < n; ++r) sum += p[static_cast<size_t>(r) * l.in_c];
      const int32_t v = multiply_by_quantized_multiplier(sum - l.in_zp * n, l.multiplier, l.shift);
      *out++ = static_cast<int8_t>(clamp(v + l.out_zp, -128, 127));
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
    acc += le_i32(l.bias + 4 * oc);
    double v = round(static_cast<double>(acc) * le_f64(l.scales + 8 * oc));
    if (v > kInt32Max) v = kInt32Max;
    if (v < kInt32Min) v = kInt32Min;
    const int64_t y = static_cast<int64_t>(v) + l.out_zp;
    *out++ = static_cast<int8_t>(y < l.act_min ? l.act_min : (y > l.act_max ? l.act_max : y));
  }
}

// ------------------------------------------------------------------------------------------
// blob parsing

bool shift_ok(int s) { return s >= -31 && s <= 30; }

size_t pad4(size_t n) { return (n + 3u) & ~static_cast<size_t>(3u); }

Status parse_conv(Reader& r, uint32_t len, BackboneLayer* l) {
  uint16_t* dims[] = {&l->in_h, &l->in_w, &l->in_c, &l->out_h, &l->out_w, &l->out_c,
                      &l->k_h, &l->k_w, &l->stride_h, &l->stride_w, &l->dil_h, &l->dil_w,
                      &l->pad_top, &l->pad_left};
  for (uint16_t* d : dims) *d = r.u16();
  l->in_zp = static_cast<int8_t>(r.u8());
  l->out_zp = static_cast<int8_t>(r.u8());
  l->act_min = static_cast<int8_t>(r.u8());
  l->act_max = static_cast<int8_t>(r.u8());
  if (!r.ok()) return r.status();
  if (l->in_h == 0 || l->in_w == 0 || l->in_c == 0 || l->out_h == 0 || l->out_w == 0 ||
      l->out_c == 0 || l->k_h == 0 || l->k_w == 0 || l->stride_h == 0 || l->stride_w == 0 ||
      l->dil_h == 0 || l->dil_w == 0 || l->act_min > l->act_max) {
    return Status::BadValue;
  }
  const uint32_t depth = static_cast<uint32_t>(l->k_h) * l->k_w * l->in_c;
  if (depth > kMaxDepth) return Status::BadValue;
  const size_t oc = l->out_c;
  if (len != pad4(32 + 9 * oc + oc * depth)) return Status::BadLength;
  l->bias = r.bytes(4 * oc);
  l->mults = r.bytes(4 * oc);
  l->shifts = r.bytes(oc);
  l->weights = reinterpret_cast<const int8_t*>(r.bytes(oc * depth));
  r.bytes(len - (32 + 9 * oc + oc * depth));
  if (!r.ok()) return r.status();
  for (size_t c = 0; c < oc; ++c) {
    if (le_i32(l->mults + 4 * c) < 0 || !shift_ok(static_cast<int8_t>(l->shifts[c]))) {
      return Status::BadValue;
    }
  }
  l->in_size = static_cast<uint32_t>(l->in_h) * l->in_w * l->in_c;
  l->out_size = static_cast<uint32_t>(l->out_h) * l->out_w * l->out_c;
  return Status::Ok;
}

Status parse_pool(Reader& r, uint32_t len, BackboneLayer* l) {
  if (len != 24) return Status::BadLength;
  uint16_t* dims[] = {&l->in_h, &l->in_w, &l->in_c, &l->out_h, &l->out_w, &l->k_h, &l->k_w,
                      &l->stride_h, &l->stride_w, &l->pad_top, &l->pad_left};
  for (uint16_t* d : dims) *d = r.u16();
  l->act_min = static_cast<int8_t>(r.u8());
  l->act_max = static_cast<int8_t>(r.u8());
  if (!r.ok()) return r.status();
  l->out_c = l->in_c;
  if (l->in_h == 0 || l->in_w == 0 || l->in_c == 0 || l->out_h == 0 || l->out_w == 0 ||
      l->k_h == 0 || l->k_w == 0 || l->stride_h == 0 || l->stride_w == 0 ||
      l->act_min > l->act_max) {
    return Status::BadValue;
  }
  l->in_size = static_cast<uint32_t>(l->in_h) * l->in_w * l->in_c;
  l->out_size = static_cast<uint32_t>(l->out_h) * l->out_w * l->out_c;
  return Status::Ok;
}

Status parse_mean(Reader& r, uint32_t len, BackboneLayer* l) {
  if (len != 16) return Status::BadLength;
  l->in_h = r.u16();  // outer
  l->in_w = r.u16();  // reduced
  l->in_c = r.u16();  // inner
  const uint16_t reserved = r.u16();
  l->multiplier = static_cast<int32_t>(r.u32());
  l->shift = static_cast<int8_t>(r.u8());
  l->in_zp = static_cast<int8_t>(r.u8());
  l->out_zp = static_cast<int8_t>(r.u8());
  r.u8();
  if (!r.ok()) return r.status();
  if (l->in_h == 0 || l->in_w == 0 || l->in_c == 0 || reserved != 0 || l->multiplier < 0 ||
      !shift_ok(l->shift)) {
    return Status::BadValue;
  }
  l->out_h = l->in_h;
  l->out_w = 1;
  l->out_c = l->in_c;
  l->in_size = static_cast<uint32_t>(l->in_h) * l->in_w * l->in_c;
  l->out_size = static_cast<uint32_t>(l->in_h) * l->in_c;
  return Status::Ok;
}

Status parse_fc(Reader& r, uint32_t len, BackboneLayer* l) {
  l->in_c = r.u16();
  l->out_c = r.u16();
  l->in_zp = static_cast<int8_t>(r.u8());
  l->out_zp = static_cast<int8_t>(r.u8());
  l->act_min = static_cast<int8_t>(r.u8());
  l->act_max = static_cast<int8_t>(r.u8());
  if (!r.ok()) return r.status();
  if (l->in_c == 0 || l->out_c == 0 || l->act_min > l->act_max) {
    return Status::BadValue;
  }
  const size_t n = l->in_c, m = l->out_c;
  if (len != pad4(8 + 12 * m + m * n)) return Status::BadLength;
  l->bias = r.bytes(4 * m);
  l->scales = r.bytes(8 * m);
  l->weights = reinterpret_cast<const int8_t*>(r.bytes(m * n));
  r.bytes(len - (8 + 12 * m + m * n));
  if (!r.ok()) return r.status();
  for (size_t c = 0; c < m; ++c) {
    const double s = le_f64(l->scales + 8 * c);
    if (!isfinite(s)) return Status::NonFinite;
    if (s < 0.0) return Status::BadValue;
  }
  l->in_h = l->in_w = l->out_h = l->out_w = 1;
  l->in_size = static_cast<uint32_t>(n);
  l->out_size = static_cast<uint32_t>(m);
  return Status::Ok;
}

}  // namespace

int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == kInt32Min && b == kInt32Min) return kInt32Max;
  const int64_t ab = static_cast<int64_t>(a) * b;
  const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return static_cast<int32_t>((ab + nudge) / (static_cast<int64_t>(1) << 31));
}

int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((static_cast<int64_t>(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  // x * 2^left wraps like the int32 arithmetic of the reference (multipliers < 1 give left = 0).
  const int32_t scaled = static_cast<int32_t>(static_cast<uint32_t>(x) << left);
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right);
}

Status backbone_parse(const uint8_t* blob, size_t len, Backbone* out) {
  if (blob == nullptr || out == nullptr) return Status::BadValue;
  *out = Backbone{};
  if (len < kBackboneHeaderSize + 4) return Status::Truncated;
  if (memcmp(blob, "TFMB", 4) != 0) return Status::BadMagic;
  Reader h(blob + 4, kBackboneHeaderSize - 4);
  const uint16_t version = h.u16();
  const uint16_t count = h.u16();
  const uint32_t total = h.u32();
  if (version != kBackboneBlobVersion) return Status::BadVersion;
  if (total > len) return Status::Truncated;
  if (total < len || total < kBackboneHeaderSize + 4) return Status::BadLength;
  if (crc32(blob, total - 4) != Reader(blob + total - 4, 4).u32()) return Status::BadCrc;
  if (count == 0) return Status::BadValue;
  if (count > kBackboneMaxLayers) return Status::TooLarge;

  Backbone m;
  m.in_h = h.u16();
  m.in_w = h.u16();
  m.in_c = h.u16();
  m.in_zp = static_cast<int8_t>(h.u8());
  h.u8();
  m.in_scale = h.f32();
  m.embedding_len = h.u16();
  m.out_zp = static_cast<int8_t>(h.u8());
  h.u8();
  m.out_scale = h.f32();
  if (!h.ok()) return h.status();
  if (m.input_len() == 0 || m.embedding_len == 0 || !isfinite(m.in_scale) ||
      !isfinite(m.out_scale)) {
    return Status::BadValue;
  }
  m.crc = crc32(blob, total - 4);

  Reader r(blob + kBackboneHeaderSize, total - 4 - kBackboneHeaderSize);
  uint32_t prev_out = m.input_len();
  for (uint16_t i = 0; i < count; ++i) {
    const uint8_t op = r.u8();
    const uint8_t flags = r.u8();
    const uint16_t reserved = r.u16();
    const uint32_t plen = r.u32();
    if (!r.ok()) return r.status();
    if (flags != 0 || reserved != 0) return Status::BadValue;
    if (plen > r.remaining()) return Status::Truncated;
    Reader p(r.bytes(plen), plen);
    BackboneLayer& l = m.layers[i];
    Status s;
    switch (op) {
      case static_cast<uint8_t>(BackboneOp::Conv2D): s = parse_conv(p, plen, &l); break;
      case static_cast<uint8_t>(BackboneOp::MaxPool2D): s = parse_pool(p, plen, &l); break;
      case static_cast<uint8_t>(BackboneOp::Mean): s = parse_mean(p, plen, &l); break;
      case static_cast<uint8_t>(BackboneOp::FullyConnected): s = parse_fc(p, plen, &l); break;
      default: return Status::Unsupported;
    }
    if (s != Status::Ok) return s;
    l.op = static_cast<BackboneOp>(op);
    if (l.in_size != prev_out) return Status::BadValue;  // layers must chain
    prev_out = l.out_size;
    // Intermediate activations sit at the two ends of the arena; a layer needs its input and
    // output there at once (the model input and the embedding are the caller's buffers).
    const size_t need = (i > 0 ? l.in_size : 0) + (i + 1 < count ? l.out_size : 0);
    if (need > m.arena_bytes) m.arena_bytes = need;
  }
  if (r.remaining() != 0) return Status::BadLength;
  if (prev_out != m.embedding_len) return Status::BadValue;
  m.layer_count = static_cast<uint8_t>(count);
  *out = m;
  return Status::Ok;
}

Status backbone_run(const Backbone& m, const int8_t* input, size_t input_len, int8_t* embedding,
                    size_t embedding_len, uint8_t* arena, size_t arena_len, size_t* arena_used) {
  if (m.layer_count == 0 || input == nullptr || embedding == nullptr) return Status::BadValue;
  if (input_len != m.input_len() || embedding_len != m.embedding_len) return Status::WrongShape;
  if (m.arena_bytes > 0 && (arena == nullptr || arena_len < m.arena_bytes)) {
    return Status::BufferFull;
  }
  int8_t* low = reinterpret_cast<int8_t*>(arena);
  const int8_t* in = input;
  for (uint8_t i = 0; i < m.layer_count; ++i) {
    const BackboneLayer& l = m.layers[i];
    int8_t* out = embedding;
    if (i + 1 < m.layer_count) out = (i % 2 == 0) ? low : low + (arena_len - l.out_size);
    switch (l.op) {
      case BackboneOp::Conv2D: conv2d(l, in, out); break;
      case BackboneOp::MaxPool2D: max_pool2d(l, in, out); break;
      case BackboneOp::Mean: mean(l, in, out); break;
      case BackboneOp::FullyConnected: fully_connected(l, in, out); break;
    }
    in = out;
  }
  if (arena_used != nullptr) *arena_used = m.arena_bytes;
  return Status::Ok;
}

}  // namespace tinyfl
