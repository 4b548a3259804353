// The firmware model blob parser (format version 2, docs/MODEL.md) and backbone_run(), which
// walks the host-planned graph; the kernels are in backbone_kernels.cpp.
#include "tinyfl/backbone.h"

#include <math.h>
#include <string.h>

#include "backbone_kernels.h"
#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"

namespace tinyfl {

namespace {

using kernels::le_f64;
using kernels::le_i32;

constexpr int32_t kInt32Min = -2147483647 - 1;
// Largest dot-product length whose int32 accumulator cannot overflow: 127 * 255 * n < 2^31
// (a FULLY_CONNECTED input, a u16, is always below it).
constexpr uint32_t kMaxDepth = 66000;
// Window geometry bound: keeps every index computation of the kernels inside int32.
constexpr uint64_t kMaxSpan = 0xFFFF;

bool shift_ok(int s) { return s >= -31 && s <= 30; }

uint64_t pad4(uint64_t n) { return (n + 3u) & ~static_cast<uint64_t>(3u); }

// Products of u16 dimensions, checked to fit the u32 sizes the layer records.
bool size_of(uint64_t n, uint32_t* out) {
  if (n == 0 || n > 0xFFFFFFFFu) return false;
  *out = static_cast<uint32_t>(n);
  return true;
}

bool set_sizes(BackboneLayer* l, uint64_t in, uint64_t out) {
  return size_of(in, &l->in_size) && size_of(out, &l->out_size);
}

// A sliding window (convolution or pool) along one axis: every output window starts inside the
// padded input and ends after its start, and the effective filter fits u16, so the kernels' index
// arithmetic stays small. With `all_overlap`, every window also overlaps the image (an average
// needs at least one tap).
bool window_ok(uint16_t in, uint16_t out, uint16_t k, uint16_t stride, uint16_t dil, uint16_t pad,
               bool all_overlap) {
  const uint64_t eff = (static_cast<uint64_t>(k) - 1) * dil + 1;
  const uint64_t last_start = (static_cast<uint64_t>(out) - 1) * stride;
  if (eff > kMaxSpan || last_start > kMaxSpan + pad) return false;
  if (all_overlap && (pad >= eff || last_start >= static_cast<uint64_t>(in) + pad)) return false;
  return true;
}

Status parse_conv(Reader& r, uint32_t len, bool depthwise, BackboneLayer* l) {
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
      l->dil_h == 0 || l->dil_w == 0 || l->act_min > l->act_max ||
      (depthwise && l->out_c % l->in_c != 0) ||
      !window_ok(l->in_h, l->out_h, l->k_h, l->stride_h, l->dil_h, l->pad_top, false) ||
      !window_ok(l->in_w, l->out_w, l->k_w, l->stride_w, l->dil_w, l->pad_left, false)) {
    return Status::BadValue;
  }
  // Taps per output: the depth of the dot product, and the weights per output channel.
  const uint64_t taps = static_cast<uint64_t>(l->k_h) * l->k_w * (depthwise ? 1 : l->in_c);
  if (taps > kMaxDepth) return Status::BadValue;
  const uint64_t oc = l->out_c;
  const uint64_t fixed = 32 + 9 * oc + oc * taps;
  if (len != pad4(fixed)) return Status::BadLength;
  l->bias = r.bytes(4 * oc);
  l->mults = r.bytes(4 * oc);
  l->shifts = r.bytes(oc);
  l->weights = reinterpret_cast<const int8_t*>(r.bytes(oc * taps));
  r.bytes(len - fixed);
  if (!r.ok()) return r.status();
  for (size_t c = 0; c < oc; ++c) {
    if (le_i32(l->mults + 4 * c) < 0 || !shift_ok(static_cast<int8_t>(l->shifts[c]))) {
      return Status::BadValue;
    }
  }
  if (!set_sizes(l, static_cast<uint64_t>(l->in_h) * l->in_w * l->in_c,
                 static_cast<uint64_t>(l->out_h) * l->out_w * l->out_c)) {
    return Status::BadValue;
  }
  return Status::Ok;
}

Status parse_pool(Reader& r, uint32_t len, bool average, BackboneLayer* l) {
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
      l->act_min > l->act_max ||
      !window_ok(l->in_h, l->out_h, l->k_h, l->stride_h, 1, l->pad_top, average) ||
      !window_ok(l->in_w, l->out_w, l->k_w, l->stride_w, 1, l->pad_left, average) ||
      !set_sizes(l, static_cast<uint64_t>(l->in_h) * l->in_w * l->in_c,
                 static_cast<uint64_t>(l->out_h) * l->out_w * l->out_c)) {
    return Status::BadValue;
  }
  return Status::Ok;
}

Status parse_mean(Reader& r, uint32_t len, BackboneLayer* l) {
  if (len != 16) return Status::BadLength;
  l->in_h = r.u16();  // outer
  l->in_w = r.u16();  // reduced
  l->in_c = r.u16();  // inner
  const uint16_t mode = r.u16();
  l->multiplier = static_cast<int32_t>(r.u32());
  l->shift = static_cast<int8_t>(r.u8());
  l->in_zp = static_cast<int8_t>(r.u8());
  l->out_zp = static_cast<int8_t>(r.u8());
  const uint8_t reserved = r.u8();
  if (!r.ok()) return r.status();
  if (l->in_h == 0 || l->in_w == 0 || l->in_c == 0 || mode > 1 || reserved != 0 ||
      l->multiplier < 0 || !shift_ok(l->shift)) {
    return Status::BadValue;
  }
  l->mean_rescale = mode == 0;
  l->out_h = l->in_h;
  l->out_w = 1;
  l->out_c = l->in_c;
  if (!set_sizes(l, static_cast<uint64_t>(l->in_h) * l->in_w * l->in_c,
                 static_cast<uint64_t>(l->in_h) * l->in_c)) {
    return Status::BadValue;
  }
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
  const uint64_t n = l->in_c, m = l->out_c;
  const uint64_t fixed = 8 + 12 * m + m * n;
  if (len != pad4(fixed)) return Status::BadLength;
  l->bias = r.bytes(4 * m);
  l->scales = r.bytes(8 * m);
  l->weights = reinterpret_cast<const int8_t*>(r.bytes(m * n));
  r.bytes(len - fixed);
  if (!r.ok()) return r.status();
  for (size_t c = 0; c < m; ++c) {
    const double s = le_f64(l->scales + 8 * c);
    if (!isfinite(s)) return Status::NonFinite;
    if (s < 0.0) return Status::BadValue;
  }
  l->in_h = l->in_w = l->out_h = l->out_w = 1;
  if (!set_sizes(l, n, m)) return Status::BadValue;
  return Status::Ok;
}

// Elementwise ops (Add, Requantize) start with a u32 element count.
Status parse_count(Reader& r, BackboneLayer* l) {
  const uint32_t count = r.u32();
  if (!r.ok()) return r.status();
  if (!set_sizes(l, count, count)) return Status::BadValue;
  l->in_h = l->in_w = l->out_h = l->out_w = 1;
  return Status::Ok;
}

Status parse_add(Reader& r, uint32_t len, BackboneLayer* l) {
  if (len != 28) return Status::BadLength;
  Status s = parse_count(r, l);
  if (s != Status::Ok) return s;
  l->in_zp = static_cast<int8_t>(r.u8());
  l->in2_zp = static_cast<int8_t>(r.u8());
  l->out_zp = static_cast<int8_t>(r.u8());
  l->act_min = static_cast<int8_t>(r.u8());
  l->act_max = static_cast<int8_t>(r.u8());
  l->left_shift = r.u8();
  const uint16_t reserved = r.u16();
  l->in_mults[0] = static_cast<int32_t>(r.u32());
  l->in_mults[1] = static_cast<int32_t>(r.u32());
  l->multiplier = static_cast<int32_t>(r.u32());
  l->in_shifts[0] = static_cast<int8_t>(r.u8());
  l->in_shifts[1] = static_cast<int8_t>(r.u8());
  l->shift = static_cast<int8_t>(r.u8());
  const uint8_t reserved2 = r.u8();
  if (!r.ok()) return r.status();
  // left_shift <= 20 keeps (q - zp) << left_shift (|q - zp| <= 255) inside int32, and input
  // shifts <= 0 keep the two rescaled inputs small enough to sum (TFLite's SmallerThanOne).
  if (reserved != 0 || reserved2 != 0 || l->act_min > l->act_max || l->left_shift > 20 ||
      l->in_mults[0] < 0 || l->in_mults[1] < 0 || l->multiplier < 0 || l->in_shifts[0] > 0 ||
      l->in_shifts[1] > 0 || !shift_ok(l->in_shifts[0]) || !shift_ok(l->in_shifts[1]) ||
      !shift_ok(l->shift)) {
    return Status::BadValue;
  }
  return Status::Ok;
}

Status parse_pad(Reader& r, uint32_t len, BackboneLayer* l) {
  if (len != 24) return Status::BadLength;
  uint16_t* dims[] = {&l->in_h, &l->in_w, &l->in_c, &l->out_h, &l->out_w, &l->out_c,
                      &l->pad_top, &l->pad_left, &l->pad_front};
  for (uint16_t* d : dims) *d = r.u16();
  const uint16_t reserved = r.u16();
  l->pad_value = static_cast<int8_t>(r.u8());
  const uint8_t r1 = r.u8(), r2 = r.u8(), r3 = r.u8();
  if (!r.ok()) return r.status();
  // The input, placed at its offsets, lies inside the output.
  if (reserved != 0 || r1 != 0 || r2 != 0 || r3 != 0 || l->in_h == 0 || l->in_w == 0 ||
      l->in_c == 0 || static_cast<uint32_t>(l->pad_top) + l->in_h > l->out_h ||
      static_cast<uint32_t>(l->pad_left) + l->in_w > l->out_w ||
      static_cast<uint32_t>(l->pad_front) + l->in_c > l->out_c ||
      !set_sizes(l, static_cast<uint64_t>(l->in_h) * l->in_w * l->in_c,
                 static_cast<uint64_t>(l->out_h) * l->out_w * l->out_c)) {
    return Status::BadValue;
  }
  return Status::Ok;
}

Status parse_requantize(Reader& r, uint32_t len, BackboneLayer* l) {
  if (len != 16) return Status::BadLength;
  Status s = parse_count(r, l);
  if (s != Status::Ok) return s;
  l->in_zp = static_cast<int8_t>(r.u8());
  l->out_zp = static_cast<int8_t>(r.u8());
  l->act_min = static_cast<int8_t>(r.u8());
  l->act_max = static_cast<int8_t>(r.u8());
  l->multiplier = static_cast<int32_t>(r.u32());
  l->shift = static_cast<int8_t>(r.u8());
  const uint8_t r1 = r.u8(), r2 = r.u8(), r3 = r.u8();
  if (!r.ok()) return r.status();
  if (r1 != 0 || r2 != 0 || r3 != 0 || l->act_min > l->act_max || l->multiplier < 0 ||
      !shift_ok(l->shift)) {
    return Status::BadValue;
  }
  return Status::Ok;
}

Status parse_payload(uint8_t op, Reader& p, uint32_t plen, BackboneLayer* l) {
  switch (op) {
    case static_cast<uint8_t>(BackboneOp::Conv2D): return parse_conv(p, plen, false, l);
    case static_cast<uint8_t>(BackboneOp::DepthwiseConv2D): return parse_conv(p, plen, true, l);
    case static_cast<uint8_t>(BackboneOp::MaxPool2D): return parse_pool(p, plen, false, l);
    case static_cast<uint8_t>(BackboneOp::AvgPool2D): return parse_pool(p, plen, true, l);
    case static_cast<uint8_t>(BackboneOp::Mean): return parse_mean(p, plen, l);
    case static_cast<uint8_t>(BackboneOp::FullyConnected): return parse_fc(p, plen, l);
    case static_cast<uint8_t>(BackboneOp::Add): return parse_add(p, plen, l);
    case static_cast<uint8_t>(BackboneOp::Pad): return parse_pad(p, plen, l);
    case static_cast<uint8_t>(BackboneOp::Requantize): return parse_requantize(p, plen, l);
    default: return Status::Unsupported;
  }
}

bool in_arena(uint32_t ref) { return ref < kBackboneRefEmbedding; }

bool overlaps(uint32_t a, uint32_t a_len, uint32_t b, uint32_t b_len) {
  return static_cast<uint64_t>(a) < static_cast<uint64_t>(b) + b_len &&
         static_cast<uint64_t>(b) < static_cast<uint64_t>(a) + a_len;
}

// An input operand of layer i: the model input with its exact length, or an arena region that
// an earlier layer wrote whole (same offset and length) and no layer since has overwritten.
Status check_input(const Backbone& m, uint8_t i, uint32_t ref, uint32_t size) {
  if (ref == kBackboneRefInput) return size == m.input_len() ? Status::Ok : Status::BadValue;
  if (!in_arena(ref)) return Status::BadValue;  // the embedding is written last, never read
  for (int k = i - 1; k >= 0; --k) {
    const BackboneLayer& w = m.layers[k];
    if (!in_arena(w.out_ref) || !overlaps(w.out_ref, w.out_size, ref, size)) continue;
    return (w.out_ref == ref && w.out_size == size) ? Status::Ok : Status::BadValue;
  }
  return Status::BadValue;  // would read bytes no layer wrote
}

// Operands of layer i (its payload parsed): inside the arena, written before they are read, the
// embedding written by the last layer only, and no input overlapping the output (no kernel runs
// in place).
Status check_operands(const Backbone& m, uint8_t i, uint16_t count) {
  const BackboneLayer& l = m.layers[i];
  const bool last = i + 1 == count;
  if (l.out_ref == kBackboneRefInput) return Status::BadValue;
  if ((l.out_ref == kBackboneRefEmbedding) != last) return Status::BadValue;
  if (last && l.out_size != m.embedding_len) return Status::BadValue;
  if (in_arena(l.out_ref) &&
      static_cast<uint64_t>(l.out_ref) + l.out_size > static_cast<uint64_t>(m.arena_bytes)) {
    return Status::BadValue;
  }
  for (uint8_t k = 0; k < l.input_count; ++k) {
    const uint32_t ref = l.in_ref[k];
    if (in_arena(ref) &&
        static_cast<uint64_t>(ref) + l.in_size > static_cast<uint64_t>(m.arena_bytes)) {
      return Status::BadValue;
    }
    Status s = check_input(m, i, ref, l.in_size);
    if (s != Status::Ok) return s;
    if (in_arena(ref) && in_arena(l.out_ref) && overlaps(ref, l.in_size, l.out_ref, l.out_size)) {
      return Status::BadValue;
    }
  }
  return Status::Ok;
}

Status parse_header(const uint8_t* blob, size_t len, Backbone* m, uint16_t* count,
                    uint32_t* total) {
  if (len < kBackboneHeaderSize + 4) return Status::Truncated;
  if (memcmp(blob, "TFMB", 4) != 0) return Status::BadMagic;
  Reader h(blob + 4, kBackboneHeaderSize - 4);
  const uint16_t version = h.u16();
  *count = h.u16();
  *total = h.u32();
  // A v1 blob (a chain without an arena plan) is refused: re-export it from its .tflite.
  if (version != kBackboneBlobVersion) return Status::BadVersion;
  if (*total > len) return Status::Truncated;
  if (*total < len || *total < kBackboneHeaderSize + 4) return Status::BadLength;
  if (crc32(blob, *total - 4) != Reader(blob + *total - 4, 4).u32()) return Status::BadCrc;
  if (*count == 0) return Status::BadValue;
  if (*count > kBackboneMaxLayers) return Status::TooLarge;
  m->in_h = h.u16();
  m->in_w = h.u16();
  m->in_c = h.u16();
  m->in_zp = static_cast<int8_t>(h.u8());
  const uint8_t r1 = h.u8();
  m->in_scale = h.f32();
  m->embedding_len = h.u16();
  m->out_zp = static_cast<int8_t>(h.u8());
  const uint8_t r2 = h.u8();
  m->out_scale = h.f32();
  m->arena_bytes = h.u32();
  const uint32_t r3 = h.u32();
  if (!h.ok()) return h.status();
  if (!isfinite(m->in_scale) || !isfinite(m->out_scale)) return Status::NonFinite;
  if (m->input_len() == 0 || m->embedding_len == 0 || r1 != 0 || r2 != 0 || r3 != 0) {
    return Status::BadValue;
  }
  m->crc = crc32(blob, *total - 4);
  return Status::Ok;
}

}  // namespace

int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == kInt32Min && b == kInt32Min) return 2147483647;
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

namespace {

// Parses into `m` (already reset); backbone_parse() resets it again on any error, so a failed
// parse never leaves a half-filled model behind.
Status parse_into(const uint8_t* blob, size_t len, Backbone& m) {
  uint16_t count = 0;
  uint32_t total = 0;
  Status s = parse_header(blob, len, &m, &count, &total);
  if (s != Status::Ok) return s;
  Reader r(blob + kBackboneHeaderSize, total - 4 - kBackboneHeaderSize);
  for (uint8_t i = 0; i < count; ++i) {
    BackboneLayer& l = m.layers[i];
    const uint8_t op = r.u8();
    l.input_count = r.u8();
    const uint16_t reserved = r.u16();
    l.in_ref[0] = r.u32();
    l.in_ref[1] = r.u32();
    l.out_ref = r.u32();
    const uint32_t plen = r.u32();
    if (!r.ok()) return r.status();
    if (reserved != 0) return Status::BadValue;
    if (plen > r.remaining()) return Status::Truncated;
    Reader p(r.bytes(plen), plen);
    s = parse_payload(op, p, plen, &l);
    if (s != Status::Ok) return s;
    l.op = static_cast<BackboneOp>(op);
    const uint8_t inputs = l.op == BackboneOp::Add ? 2 : 1;
    if (l.input_count != inputs || (inputs == 1 && l.in_ref[1] != 0)) return Status::BadValue;
    s = check_operands(m, i, count);
    if (s != Status::Ok) return s;
  }
  if (r.remaining() != 0) return Status::BadLength;
  m.layer_count = static_cast<uint8_t>(count);
  return Status::Ok;
}

}  // namespace

// Parses in place: a Backbone is a few KiB, too much to build a second copy on a small stack.
Status backbone_parse(const uint8_t* blob, size_t len, Backbone* out) {
  if (blob == nullptr || out == nullptr) return Status::BadValue;
  *out = Backbone{};
  const Status s = parse_into(blob, len, *out);
  if (s != Status::Ok) *out = Backbone{};
  return s;
}

Status backbone_run(const Backbone& m, const int8_t* input, size_t input_len, int8_t* embedding,
                    size_t embedding_len, uint8_t* arena, size_t arena_len, size_t* arena_used) {
  if (m.layer_count == 0 || input == nullptr || embedding == nullptr) return Status::BadValue;
  if (input_len != m.input_len() || embedding_len != m.embedding_len) return Status::WrongShape;
  if (m.arena_bytes > 0 && (arena == nullptr || arena_len < m.arena_bytes)) {
    return Status::BufferFull;
  }
  int8_t* base = reinterpret_cast<int8_t*>(arena);
  auto at = [&](uint32_t ref) -> int8_t* {
    if (ref == kBackboneRefEmbedding) return embedding;
    return base + ref;
  };
  for (uint8_t i = 0; i < m.layer_count; ++i) {
    const BackboneLayer& l = m.layers[i];
    const int8_t* in = l.in_ref[0] == kBackboneRefInput ? input : at(l.in_ref[0]);
    int8_t* out = at(l.out_ref);
    switch (l.op) {
      case BackboneOp::Conv2D: kernels::conv2d(l, in, out); break;
      case BackboneOp::DepthwiseConv2D: kernels::depthwise_conv2d(l, in, out); break;
      case BackboneOp::MaxPool2D: kernels::max_pool2d(l, in, out); break;
      case BackboneOp::AvgPool2D: kernels::avg_pool2d(l, in, out); break;
      case BackboneOp::Mean: kernels::mean(l, in, out); break;
      case BackboneOp::FullyConnected: kernels::fully_connected(l, in, out); break;
      case BackboneOp::Add: {
        const int8_t* b = l.in_ref[1] == kBackboneRefInput ? input : at(l.in_ref[1]);
        kernels::add(l, in, b, out);
        break;
      }
      case BackboneOp::Pad: kernels::pad(l, in, out); break;
      case BackboneOp::Requantize: kernels::requantize(l, in, out); break;
    }
  }
  if (arena_used != nullptr) *arena_used = m.arena_bytes;
  return Status::Ok;
}

}  // namespace tinyfl
