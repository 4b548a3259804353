// The secure-aggregation frames of the codec (docs/WIRE.md, "Secure aggregation"): UNMASK and
// REVEAL, and the views of masked values. The MASKED sections of GLOBAL and UPDATE are read and
// written with those frames in wire.cpp.
#include <string.h>

#include "tinyfl/cursor.h"
#include "tinyfl/wire.h"
#include "wire_internal.h"

namespace tinyfl {

using namespace wire_detail;

namespace {

// Bits [pos, pos + n) of an LSB-first stream, n <= 32.
uint32_t read_bits(const uint8_t* data, uint64_t pos, unsigned n) {
  uint32_t v = 0;
  for (unsigned k = 0; k < n;) {
    const unsigned off = static_cast<unsigned>(pos & 7u);
    const unsigned take = (8u - off) < (n - k) ? (8u - off) : (n - k);
    const uint32_t chunk = (static_cast<uint32_t>(data[pos >> 3]) >> off) & ((1u << take) - 1u);
    v |= chunk << k;
    k += take;
    pos += take;
  }
  return v;
}

void write_ids(Writer& w, const IdRef* ids, uint16_t n, bool* ok) {
  if (n != 0 && ids == nullptr) *ok = false;
  for (uint16_t i = 0; ids != nullptr && i < n; ++i) {
    if (ids[i].id == nullptr) *ok = false;
    w.u8(ids[i].len);
    if (ids[i].id != nullptr) w.bytes(reinterpret_cast<const uint8_t*>(ids[i].id), ids[i].len);
    else (void)w.reserve(ids[i].len);
  }
}

}  // namespace

uint32_t MaskedView::value(size_t i) const { return read_bits(data, static_cast<uint64_t>(i) * bits, bits); }

IdRef UnmaskView::dropped_id(uint16_t i) const {
  const uint8_t* p = dropped_raw;
  for (uint16_t k = 0; k < i; ++k) p += 1u + p[0];
  return IdRef{reinterpret_cast<const char*>(p + 1), p[0]};
}

IdRef RevealView::peer(uint16_t i) const {
  const uint8_t* p = raw;
  for (uint16_t k = 0; k < i; ++k) p += 1u + p[0] + kRoundSeedLen;
  return IdRef{reinterpret_cast<const char*>(p + 1), p[0]};
}

const uint8_t* RevealView::seed(uint16_t i) const {
  const IdRef id = peer(i);
  return reinterpret_cast<const uint8_t*>(id.id) + id.len;
}

Status decode_unmask(const uint8_t* body, size_t len, UnmaskView* out) {
  Reader r(body, len);
  out->round_id = r.u32();
  out->n_survivors = r.u16();
  out->n_dropped = r.u16();
  if (r.ok() && (out->round_id == 0 || out->n_survivors == 0 || out->n_dropped == 0)) r.fail(Status::BadValue);
  out->dropped_raw = body + (r.ok() ? r.position() : 0);
  for (uint16_t i = 0; i < out->n_dropped && r.ok(); ++i) {
    const char* id;
    uint8_t id_len;
    read_id(r, &id, &id_len);
  }
  return finish(r);
}

Status decode_reveal(const uint8_t* body, size_t len, RevealView* out) {
  Reader r(body, len);
  out->round_id = r.u32();
  out->n = r.u16();
  if (r.ok() && (out->round_id == 0 || out->n == 0)) r.fail(Status::BadValue);
  out->raw = body + (r.ok() ? r.position() : 0);
  for (uint16_t i = 0; i < out->n && r.ok(); ++i) {
    const char* id;
    uint8_t id_len;
    read_id(r, &id, &id_len);
    (void)r.bytes(kRoundSeedLen);
  }
  return finish(r);
}

Status decode_unmask_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, UnmaskView* out) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  const Status s = open_typed(buf, len, auth, FrameType::Unmask, &body, &hdr);
  return s != Status::Ok ? s : decode_unmask(body, hdr.body_len, out);
}

Status decode_reveal_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, RevealView* out) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  const Status s = open_typed(buf, len, auth, FrameType::Reveal, &body, &hdr);
  return s != Status::Ok ? s : decode_reveal(body, hdr.body_len, out);
}

Status encode_unmask(const UnmaskFields& f, uint8_t* buf, size_t cap, size_t* len) {
  Writer w(buf, cap);
  bool ok = true;
  write_header(w, FrameType::Unmask, f.auth);
  w.u32(f.round_id);
  w.u16(f.n_survivors);
  w.u16(f.n_dropped);
  write_ids(w, f.dropped, f.n_dropped, &ok);
  return end_frame(w, ok, f.auth, len);
}

Status encode_reveal(const RevealFields& f, uint8_t* buf, size_t cap, size_t* len) {
  Writer w(buf, cap);
  bool ok = !(f.n != 0 && (f.peers == nullptr || f.seeds == nullptr));
  write_header(w, FrameType::Reveal, f.auth);
  w.u32(f.round_id);
  w.u16(f.n);
  for (uint16_t i = 0; i < f.n; ++i) {
    write_ids(w, f.peers != nullptr ? f.peers + i : nullptr, 1, &ok);
    put(w, f.seeds != nullptr ? f.seeds[i] : nullptr, kRoundSeedLen);
  }
  return end_frame(w, ok, f.auth, len);
}

size_t encoded_size_reveal(const RevealFields& f) {
  size_t n = 0;
  (void)encode_reveal(f, nullptr, 0, &n);
  return n;
}

}  // namespace tinyfl
