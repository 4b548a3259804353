#include "tinyfl/wire.h"

#include <math.h>
#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"
#include "tinyfl/half.h"
#include "tinyfl/hmac.h"
#include "wire_internal.h"

namespace tinyfl {

using namespace wire_detail;

namespace {

float load_f32(const uint8_t* p) {
  const uint32_t bits = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                        (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float load_f16(const uint8_t* p) {
  return half_to_float(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

bool valid_bits(uint8_t bits) { return bits == 8 || bits == 4 || bits == 2 || bits == 32; }

// Values per byte for packed bits (8 -> 1, 4 -> 2, 2 -> 4).
unsigned per_byte(uint8_t bits) { return 8u / bits; }

// Bytes of a tensor's data; 64-bit so rows*cols*4 cannot wrap on a 32-bit target.
uint64_t data_bytes_of(uint8_t bits, size_t n) {
  if (bits == 32) return static_cast<uint64_t>(n) * 4u;
  const unsigned per = per_byte(bits);
  return n / per + (n % per != 0 ? 1u : 0u);
}

uint16_t n_scales_of(uint8_t bits, uint8_t scale_mode, uint16_t rows) {
  if (bits == 32) return 0;
  return scale_mode == 1 ? rows : 1;
}

// f must be finite (NonFinite) and >= 0, or > 0 when `positive` (BadValue).
void check_nonneg(Reader& r, float f, bool positive = false) {
  if (!isfinite(f)) r.fail(Status::NonFinite);
  else if (positive ? !(f > 0.0f) : !(f >= 0.0f)) r.fail(Status::BadValue);
}

void read_hash(Reader& r, uint8_t* out) {
  const uint8_t* p = r.bytes(kModelHashLen);
  if (p != nullptr) memcpy(out, p, kModelHashLen);
  else memset(out, 0, kModelHashLen);
}

// tensor: bits, scale_mode, rows, cols (and the expected shape, when given), scales, data.
void read_tensor(Reader& r, TensorView* t, bool check_shape, uint16_t want_rows, uint32_t want_cols) {
  memset(t, 0, sizeof *t);
  t->bits = r.u8();
  if (!valid_bits(t->bits)) r.fail(Status::BadValue);
  t->scale_mode = r.u8();
  if (t->scale_mode > 1 || (t->bits == 32 && t->scale_mode != 0)) r.fail(Status::BadValue);
  t->rows = r.u16();
  t->cols = r.u16();
  if (check_shape && (t->rows != want_rows || t->cols != want_cols)) r.fail(Status::BadValue);
  if (!r.ok()) return;
  const uint16_t m = t->n_scales();
  t->scales_raw = r.bytes(static_cast<size_t>(m) * 2u);
  for (uint16_t j = 0; j < m && r.ok(); ++j) check_nonneg(r, t->scale(j));
  if (!r.ok()) return;
  const size_t n = t->size();
  const uint64_t nbytes = data_bytes_of(t->bits, n);
  if (nbytes > r.remaining()) {
    r.fail(Status::Truncated);
    return;
  }
  t->data = r.bytes(static_cast<size_t>(nbytes));
  if (t->data == nullptr) return;
  if (t->bits == 32) {
    for (size_t i = 0; i < n; ++i)
      if (!isfinite(load_f32(t->data + 4 * i))) return r.fail(Status::NonFinite);
    return;
  }
  // Packed codes: the most negative code is invalid, and so are set bits after the last value.
  const unsigned bits = t->bits, per = per_byte(t->bits);
  const unsigned mask = (1u << bits) - 1u, most_negative = 1u << (bits - 1u);
  const size_t full = static_cast<size_t>(nbytes);
  for (size_t b = 0; b < full; ++b) {
    const unsigned byte = t->data[b];
    const unsigned used = (b + 1 == full && n % per != 0) ? static_cast<unsigned>(n % per) : per;
    for (unsigned k = 0; k < used; ++k)
      if (((byte >> (k * bits)) & mask) == most_negative) return r.fail(Status::BadValue);
    if (used < per && (byte >> (used * bits)) != 0) return r.fail(Status::BadValue);
  }
}

// --- encoding -------------------------------------------------------------------------------

void write_f16(Writer& w, float f) { w.u16(float_to_half(f)); }

void store_f32(uint8_t* p, float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(bits >> (8 * k));
}

void write_id(Writer& w, const char* id, uint8_t len) {
  w.u8(len);
  put(w, id, len);
}

// Writes a tensor; returns false when its inputs cannot be encoded (a missing array, or a code out
// of range for `bits`, which packing would silently change). Sizes are right either way.
bool write_tensor(Writer& w, const TensorFields& t) {
  w.u8(t.bits);
  w.u8(t.scale_mode);
  w.u16(t.rows);
  w.u16(t.cols);
  if (!valid_bits(t.bits)) return false;
  const size_t n = static_cast<size_t>(t.rows) * t.cols;
  const uint16_t m = n_scales_of(t.bits, t.scale_mode, t.rows);
  const bool have_data = t.bits == 32 ? t.values != nullptr : t.codes != nullptr;
  const bool ok = (m == 0 || t.scales != nullptr) && (n == 0 || have_data);
  bool scales_ok = ok;
  uint8_t* p = w.reserve(static_cast<size_t>(m) * 2u);
  for (uint16_t j = 0; p != nullptr && ok && j < m; ++j) {
    // A scale the wire cannot carry exactly would make the receiver dequantize other values.
    const uint16_t h = float_to_half(t.scales[j]);
    if (half_to_float(h) != t.scales[j]) scales_ok = false;
    p[2u * j] = static_cast<uint8_t>(h);
    p[2u * j + 1u] = static_cast<uint8_t>(h >> 8);
  }
  const size_t nbytes = static_cast<size_t>(data_bytes_of(t.bits, n));
  p = w.reserve(nbytes);
  if (p == nullptr || !ok) return ok;  // size-only pass or out of room (the Writer says which)
  if (!scales_ok) return false;
  if (t.bits == 32) {
    for (size_t i = 0; i < n; ++i) store_f32(p + 4 * i, t.values[i]);
    return true;
  }
  memset(p, 0, nbytes);
  const unsigned bits = t.bits, per = per_byte(t.bits), mask = (1u << bits) - 1u;
  const int qmax = (1 << (bits - 1u)) - 1;
  for (size_t i = 0; i < n; ++i) {
    const int c = t.codes[i];
    if (c < -qmax || c > qmax) return false;
    p[i / per] |= static_cast<uint8_t>((static_cast<unsigned>(c) & mask) << ((i % per) * bits));
  }
  return true;
}

Status check_frame(const uint8_t* buf, size_t len) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  Status s = decode_frame(buf, len, &hdr, &body);
  if (s != Status::Ok) return s;
  const bool masked = (hdr.flags & kFlagMasked) != 0;
  switch (static_cast<FrameType>(hdr.type)) {
    case FrameType::Hello: {
      HelloView v;
      return decode_hello(body, hdr.body_len, &v);
    }
    case FrameType::Global: {
      GlobalView v;
      return decode_global(body, hdr.body_len, &v, masked);
    }
    case FrameType::Update: {
      UpdateView v;
      return decode_update(body, hdr.body_len, &v, masked);
    }
    case FrameType::Unmask: {
      UnmaskView v;
      return decode_unmask(body, hdr.body_len, &v);
    }
    case FrameType::Reveal: {
      RevealView v;
      return decode_reveal(body, hdr.body_len, &v);
    }
    case FrameType::Label:  // the node never encodes one (the host does): nothing to check here
      break;
  }
  return Status::BadType;
}

bool auth_ok(const FrameAuth* auth) {
  return auth == nullptr || (auth->key != nullptr && auth->topic != nullptr && auth->topic_len >= 1 &&
                             auth->topic_len <= kMaxAuthTopic);
}

// Writes n values of `bits` bits LSB-first; false when one does not fit or values is null.
bool write_masked(Writer& w, const MaskedFields& m) {
  w.u8(m.bits);
  w.u16(m.rows);
  w.u16(m.cols);
  const bool bits_ok = m.bits >= kMinMaskBits && m.bits <= kMaxMaskBits;
  const size_t n = static_cast<size_t>(m.rows) * m.cols;
  const uint64_t total = static_cast<uint64_t>(n) * (bits_ok ? m.bits : 0u);
  uint8_t* p = w.reserve(static_cast<size_t>((total + 7u) / 8u));
  if (!bits_ok || (n != 0 && m.values == nullptr)) return false;
  if (p == nullptr) return true;  // size-only pass or out of room
  memset(p, 0, static_cast<size_t>((total + 7u) / 8u));
  const uint64_t limit = m.bits == 32 ? 0x100000000ull : (1ull << m.bits);
  uint64_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    if (m.values[i] >= limit) return false;
    for (unsigned k = 0; k < m.bits; ++k, ++pos)
      if ((m.values[i] >> k) & 1u) p[pos >> 3] |= static_cast<uint8_t>(1u << (pos & 7u));
  }
  return true;
}

}  // namespace

namespace wire_detail {

// str node_id: read in full, then checked.
void read_id(Reader& r, const char** id, uint8_t* len) {
  *len = r.u8();
  const uint8_t* p = r.bytes(*len);
  *id = reinterpret_cast<const char*>(p);
  if (p != nullptr && !valid_node_id(*id, *len)) r.fail(Status::BadValue);
}

Status finish(const Reader& r) {
  if (r.ok() && r.remaining() != 0) return Status::BadLength;
  return r.status();
}

void write_header(Writer& w, FrameType type, const FrameAuth* auth, bool masked) {
  const uint8_t h[kFrameHeaderSize] = {'T', 'F', kWireVersion, static_cast<uint8_t>(type),
                                       masked ? kFlagMasked : uint8_t{0},
                                       auth != nullptr ? kAuthTag : kAuthCrc};
  w.bytes(h, sizeof h);
}

// Copies n bytes, or (p == nullptr, an invalid input) only moves the cursor so sizes stay right.
void put(Writer& w, const void* p, size_t n) {
  if (p != nullptr) w.bytes(static_cast<const uint8_t*>(p), n);
  else (void)w.reserve(n);
}

// Appends the trailer (the CRC, or the tag under `auth`) and, with a buffer, checks the frame by
// decoding it.
Status end_frame(Writer& w, bool fields_ok, const FrameAuth* auth, size_t* len) {
  if (!auth_ok(auth)) fields_ok = false;
  const bool writing = w.data() != nullptr && w.ok();
  if (auth == nullptr) {
    w.u32(writing ? crc32(w.data(), w.size()) : 0u);
  } else {
    const size_t signed_len = w.size();
    uint8_t* p = w.reserve(kTagLen);
    if (p != nullptr && fields_ok) frame_tag(*auth, w.data(), signed_len, p);
  }
  if (len != nullptr) *len = w.size();
  if (w.data() == nullptr) return Status::Ok;
  if (!w.ok()) return w.status();
  if (!fields_ok) return Status::BadValue;
  return check_frame(w.data(), w.size());
}

// decode_frame and verify_frame, then the type: the body's bytes and the MASKED flag.
Status open_typed(const uint8_t* buf, size_t len, const FrameAuth* auth, FrameType type, const uint8_t** body,
                  FrameHeader* hdr) {
  Status s = decode_frame(buf, len, hdr, body);
  if (s != Status::Ok) return s;
  s = verify_frame(buf, *hdr, auth);
  if (s != Status::Ok) return s;
  return hdr->type == static_cast<uint8_t>(type) ? Status::Ok : Status::BadType;
}

}  // namespace wire_detail

bool valid_node_id(const char* id, size_t len) {
  if (id == nullptr || len == 0 || len > kMaxWireNodeId) return false;
  for (size_t i = 0; i < len; ++i) {
    const char c = id[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// --- TensorView -------------------------------------------------------------------------------

uint16_t TensorView::n_scales() const { return n_scales_of(bits, scale_mode, rows); }

size_t TensorView::data_bytes() const { return static_cast<size_t>(data_bytes_of(bits, size())); }

float TensorView::scale(uint16_t j) const { return load_f16(scales_raw + 2u * j); }

float TensorView::scale_of_row(uint16_t r) const {
  if (bits == 32) return 0.0f;
  return scale(scale_mode == 1 ? r : 0);
}

int8_t TensorView::code(size_t i) const {
  if (bits == 32) return 0;
  if (bits == 8) return static_cast<int8_t>(data[i]);
  const unsigned per = per_byte(bits);
  const unsigned raw = (data[i / per] >> ((i % per) * bits)) & ((1u << bits) - 1u);
  const int v = (raw & (1u << (bits - 1u))) ? static_cast<int>(raw) - (1 << bits) : static_cast<int>(raw);
  return static_cast<int8_t>(v);
}

float TensorView::value(size_t i) const {
  if (bits == 32) return load_f32(data + 4 * i);
  return static_cast<float>(code(i)) * scale_of_row(static_cast<uint16_t>(i / cols));
}

// --- GlobalView / UpdateView ------------------------------------------------------------------

IdRef GlobalView::selected_id(uint16_t i) const {
  const uint8_t* p = selected_raw;
  for (uint16_t k = 0; k < i; ++k) p += 1u + p[0];
  return IdRef{reinterpret_cast<const char*>(p + 1), p[0]};
}

bool GlobalView::selects(const char* id, size_t len) const {
  if (n_selected == 0) return true;
  const uint8_t* p = selected_raw;
  for (uint16_t k = 0; k < n_selected; ++k) {
    if (p[0] == len && memcmp(p + 1, id, len) == 0) return true;
    p += 1u + p[0];
  }
  return false;
}

// --- decoding ---------------------------------------------------------------------------------

Status decode_frame(const uint8_t* buf, size_t len, FrameHeader* hdr, const uint8_t** body) {
  if (buf == nullptr || len < kFrameHeaderSize) return Status::Truncated;
  if (buf[0] != 'T' || buf[1] != 'F') return Status::BadMagic;
  if (buf[2] != kWireVersion) return Status::BadVersion;
  if (buf[3] < static_cast<uint8_t>(FrameType::Hello) || buf[3] > static_cast<uint8_t>(FrameType::Label))
    return Status::BadType;
  if ((buf[4] & ~kFlagMasked) != 0) return Status::BadValue;
  if ((buf[4] & kFlagMasked) != 0 && buf[3] != static_cast<uint8_t>(FrameType::Global) &&
      buf[3] != static_cast<uint8_t>(FrameType::Update))
    return Status::BadValue;
  if (buf[5] != kAuthCrc && buf[5] != kAuthTag) return Status::BadValue;
  const size_t trailer = buf[5] == kAuthTag ? kTagLen : kCrcLen;
  if (len < kFrameHeaderSize + trailer) return Status::Truncated;
  const size_t end = len - trailer;
  if (buf[5] == kAuthCrc) {
    Reader c(buf + end, kCrcLen);
    if (c.u32() != crc32(buf, end)) return Status::BadCrc;
  }
  hdr->version = buf[2];
  hdr->type = buf[3];
  hdr->flags = buf[4];
  hdr->auth = buf[5];
  hdr->body_len = end - kFrameHeaderSize;
  hdr->trailer = buf + end;
  *body = buf + kFrameHeaderSize;
  return Status::Ok;
}

void frame_tag(const FrameAuth& auth, const uint8_t* buf, size_t signed_len, uint8_t out[kTagLen]) {
  HmacSha256 mac;
  mac.init(auth.key, kFrameKeyLen);
  const uint8_t topic_len = static_cast<uint8_t>(auth.topic_len);
  mac.update(&topic_len, 1);
  mac.update(reinterpret_cast<const uint8_t*>(auth.topic), auth.topic_len);
  mac.update(buf, signed_len);
  uint8_t full[kHmacSha256Len];
  mac.final(full);
  memcpy(out, full, kTagLen);
  secure_wipe(full, sizeof full);
  mac.wipe();
}

Status verify_frame(const uint8_t* buf, const FrameHeader& hdr, const FrameAuth* auth) {
  if (auth == nullptr) return hdr.auth == kAuthCrc ? Status::Ok : Status::NoKey;
  if (!auth_ok(auth)) return Status::BadValue;
  if (hdr.auth != kAuthTag) return Status::Unauthenticated;
  uint8_t want[kTagLen];
  frame_tag(*auth, buf, kFrameHeaderSize + hdr.body_len, want);
  const bool same = tag_equal(want, hdr.trailer, kTagLen);
  secure_wipe(want, sizeof want);
  return same ? Status::Ok : Status::BadTag;
}

Status decode_hello(const uint8_t* body, size_t len, HelloView* out) {
  Reader r(body, len);
  read_id(r, &out->node_id, &out->node_id_len);
  out->fw_version = r.u32();
  read_hash(r, out->model_hash);
  out->n_samples = r.u32();
  out->free_ram = r.u32();
  out->max_payload = r.u32();
  out->embed_dim = r.u16();
  out->n_classes = r.u16();
  out->uplink_bits = r.u8();
  if ((out->uplink_bits & 0xF0u) != 0) r.fail(Status::BadValue);
  out->board = r.u8();
  if (out->board > 3) r.fail(Status::BadValue);
  return finish(r);
}

// The secure-aggregation section of a MASKED GLOBAL: read whole, then checked (docs/WIRE.md).
void read_secagg(Reader& r, GlobalView* out) {
  out->mask_bits = r.u8();
  if (r.u8() != 0) r.fail(Status::BadValue);  // reserved
  out->threshold = r.u16();
  out->secagg_scale = r.f32();
  out->noise_var = r.u32();
  if (!r.ok()) return;
  if (out->n_selected < 2) return r.fail(Status::BadValue);
  if (out->mask_bits < kMinMaskBits || out->mask_bits > kMaxMaskBits) return r.fail(Status::BadValue);
  if (out->threshold < 2 || out->threshold > out->n_selected) return r.fail(Status::BadValue);
  if (out->noise_var > kMaxNoiseVar) return r.fail(Status::BadValue);
  check_nonneg(r, out->secagg_scale, true);
}

void read_masked(Reader& r, MaskedView* m) {
  memset(m, 0, sizeof *m);
  m->bits = r.u8();
  if (r.ok() && (m->bits < kMinMaskBits || m->bits > kMaxMaskBits)) return r.fail(Status::BadValue);
  m->rows = r.u16();
  m->cols = r.u16();
  if (!r.ok()) return;
  const uint64_t total = static_cast<uint64_t>(m->size()) * m->bits;
  const uint64_t nbytes = (total + 7u) / 8u;
  if (nbytes > r.remaining()) return r.fail(Status::Truncated);
  m->data = r.bytes(static_cast<size_t>(nbytes));
  if (m->data != nullptr && total % 8u != 0 && (m->data[nbytes - 1] >> (total % 8u)) != 0)
    r.fail(Status::BadValue);  // padding bits
}

Status decode_global(const uint8_t* body, size_t len, GlobalView* out, bool masked) {
  Reader r(body, len);
  out->masked = masked;
  out->mask_bits = 0;
  out->threshold = 0;
  out->secagg_scale = 0.0f;
  out->noise_var = 0;
  out->round_id = r.u32();
  if (out->round_id == 0) r.fail(Status::BadValue);
  read_hash(r, out->model_hash);
  out->embed_dim = r.u16();
  out->n_classes = r.u16();
  out->epochs = r.u16();
  if (out->epochs < 1 || out->epochs > kMaxWireEpochs) r.fail(Status::BadValue);
  out->batch_size = r.u16();
  if (out->batch_size < 1 || out->batch_size > kMaxWireBatch) r.fail(Status::BadValue);
  out->lr = r.f32();
  check_nonneg(r, out->lr, true);
  out->prox_mu = r.f32();
  check_nonneg(r, out->prox_mu);
  out->clip_norm = r.f32();
  check_nonneg(r, out->clip_norm);
  out->uplink_bits = r.u8();
  if (!valid_bits(out->uplink_bits)) r.fail(Status::BadValue);
  out->uplink_scale_mode = r.u8();
  if (out->uplink_scale_mode > 1) r.fail(Status::BadValue);
  if (r.u16() != 0) r.fail(Status::BadValue);  // reserved
  out->seed = r.u32();
  out->n_selected = r.u16();
  const size_t list_start = r.position();
  out->selected_raw = body + (r.ok() ? list_start : 0);
  for (uint16_t i = 0; i < out->n_selected && r.ok(); ++i) {
    const char* id;
    uint8_t id_len;
    read_id(r, &id, &id_len);
  }
  out->selected_raw_len = r.ok() ? r.position() - list_start : 0;
  read_tensor(r, &out->head, true, out->n_classes, static_cast<uint32_t>(out->embed_dim) + 1u);
  if (masked && r.ok()) read_secagg(r, out);
  return finish(r);
}

Status decode_update(const uint8_t* body, size_t len, UpdateView* out, bool masked) {
  Reader r(body, len);
  out->masked = masked;
  memset(&out->masked_delta, 0, sizeof out->masked_delta);
  memset(&out->delta, 0, sizeof out->delta);
  out->round_id = r.u32();
  if (out->round_id == 0) r.fail(Status::BadValue);
  out->n_samples = r.u32();
  out->loss = half_to_float(r.u16());
  check_nonneg(r, out->loss);
  out->accuracy = half_to_float(r.u16());
  check_nonneg(r, out->accuracy);
  if (r.ok() && out->accuracy > 1.0f) r.fail(Status::BadValue);
  out->update_norm = half_to_float(r.u16());
  check_nonneg(r, out->update_norm);
  if (!r.ok()) return r.status();
  if (masked) read_masked(r, &out->masked_delta);
  else read_tensor(r, &out->delta, false, 0, 0);
  return finish(r);
}

Status decode_hello_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, HelloView* out) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  const Status s = open_typed(buf, len, auth, FrameType::Hello, &body, &hdr);
  return s != Status::Ok ? s : decode_hello(body, hdr.body_len, out);
}

Status decode_global_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, GlobalView* out) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  const Status s = open_typed(buf, len, auth, FrameType::Global, &body, &hdr);
  return s != Status::Ok ? s : decode_global(body, hdr.body_len, out, (hdr.flags & kFlagMasked) != 0);
}

Status decode_update_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, UpdateView* out) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  const Status s = open_typed(buf, len, auth, FrameType::Update, &body, &hdr);
  return s != Status::Ok ? s : decode_update(body, hdr.body_len, out, (hdr.flags & kFlagMasked) != 0);
}

// --- encoding ---------------------------------------------------------------------------------

Status encode_hello(const HelloFields& f, uint8_t* buf, size_t cap, size_t* len) {
  Writer w(buf, cap);
  write_header(w, FrameType::Hello, f.auth);
  write_id(w, f.node_id, f.node_id_len);
  w.u32(f.fw_version);
  w.bytes(f.model_hash, kModelHashLen);
  w.u32(f.n_samples);
  w.u32(f.free_ram);
  w.u32(f.max_payload);
  w.u16(f.embed_dim);
  w.u16(f.n_classes);
  w.u8(f.uplink_bits);
  w.u8(f.board);
  return end_frame(w, f.node_id != nullptr, f.auth, len);
}

Status encode_global(const GlobalFields& f, uint8_t* buf, size_t cap, size_t* len) {
  Writer w(buf, cap);
  bool ok = true;
  write_header(w, FrameType::Global, f.auth, f.masked);
  w.u32(f.round_id);
  w.bytes(f.model_hash, kModelHashLen);
  w.u16(f.embed_dim);
  w.u16(f.n_classes);
  w.u16(f.epochs);
  w.u16(f.batch_size);
  w.f32(f.lr);
  w.f32(f.prox_mu);
  w.f32(f.clip_norm);
  w.u8(f.uplink_bits);
  w.u8(f.uplink_scale_mode);
  w.u16(0);
  w.u32(f.seed);
  w.u16(f.n_selected);
  if (f.n_selected != 0 && f.selected == nullptr) ok = false;
  for (uint16_t i = 0; f.selected != nullptr && i < f.n_selected; ++i) {
    if (f.selected[i].id == nullptr) ok = false;
    write_id(w, f.selected[i].id, f.selected[i].len);
  }
  if (!write_tensor(w, f.head)) ok = false;
  if (f.masked) {
    w.u8(f.mask_bits);
    w.u8(0);
    w.u16(f.threshold);
    w.f32(f.secagg_scale);
    w.u32(f.noise_var);
  }
  return end_frame(w, ok, f.auth, len);
}

Status encode_update(const UpdateFields& f, uint8_t* buf, size_t cap, size_t* len) {
  Writer w(buf, cap);
  write_header(w, FrameType::Update, f.auth, f.masked);
  w.u32(f.round_id);
  w.u32(f.n_samples);
  write_f16(w, f.loss);
  write_f16(w, f.accuracy);
  write_f16(w, f.update_norm);
  const bool ok = f.masked ? write_masked(w, f.masked_delta) : write_tensor(w, f.delta);
  return end_frame(w, ok, f.auth, len);
}

size_t encoded_size_hello(const HelloFields& f) {
  size_t n = 0;
  (void)encode_hello(f, nullptr, 0, &n);
  return n;
}

size_t encoded_size_global(const GlobalFields& f) {
  size_t n = 0;
  (void)encode_global(f, nullptr, 0, &n);
  return n;
}

size_t encoded_size_update(const UpdateFields& f) {
  size_t n = 0;
  (void)encode_update(f, nullptr, 0, &n);
  return n;
}

}  // namespace tinyfl
