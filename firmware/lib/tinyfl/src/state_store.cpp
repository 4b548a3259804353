#include "tinyfl/state_store.h"

#include <math.h>
#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"

namespace tinyfl {

// A new node counter changes the record: bump kStateVersion and the layout in state_store.h.
static_assert(sizeof(NodeCounters) == 7 * sizeof(uint32_t), "NodeCounters changed: update the state record");
static_assert(kStateRecordMax % 4 == 0, "records are whole flash words");

namespace {

constexpr size_t kVerifyChunk = 64;  // read-back piece, on the stack

bool shape_ok(uint16_t rows, uint16_t cols) {
  return rows >= 1 && rows <= kMaxClasses && cols >= 2 && cols <= kMaxDim + 1u;
}

}  // namespace

float StateView::head(size_t i) const {
  Reader r(head_raw + 4 * i, 4);
  return r.f32();
}

Status encode_state(const StateFields& f, uint32_t sequence, uint8_t* dst, size_t cap, size_t* len) {
  if (!shape_ok(f.rows, f.cols) || f.head == nullptr) return Status::BadValue;
  const size_t n = static_cast<size_t>(f.rows) * f.cols;
  for (size_t i = 0; i < n; ++i)
    if (!isfinite(f.head[i])) return Status::NonFinite;
  const size_t total = state_record_size(f.rows, f.cols);
  Writer w(dst, cap);
  w.u32(kStateMagic);
  w.u8(kStateVersion);
  w.u8(f.flags);
  w.u16(0);
  w.u32(sequence);
  w.u32(static_cast<uint32_t>(total));
  w.bytes(f.model_hash, sizeof f.model_hash);
  w.u32(f.round_id);
  w.u16(f.rows);
  w.u16(f.cols);
  const NodeCounters& c = f.counters;
  const uint32_t counters[] = {c.connects,       c.rounds_served,     c.globals_rejected, c.updates_resent,
                               c.masks_revealed, c.oversized_dropped, c.protocol_errors};
  for (uint32_t v : counters) w.u32(v);
  w.u32(f.cache_samples);
  for (size_t i = 0; i < n; ++i) w.f32(f.head[i]);
  if (!w.ok()) return w.status();
  w.u32(crc32(dst, w.size()));
  if (!w.ok()) return w.status();
  *len = w.size();
  return Status::Ok;
}

Status decode_state(const uint8_t* src, size_t len, StateView* out) {
  *out = StateView{};
  Reader r(src, len);
  const uint32_t magic = r.u32();
  const uint8_t version = r.u8();
  out->flags = r.u8();
  const uint16_t reserved = r.u16();
  out->sequence = r.u32();
  const uint32_t total = r.u32();
  if (!r.ok()) return r.status();
  if (magic != kStateMagic) return Status::BadMagic;
  if (version != kStateVersion) return Status::BadVersion;
  const uint8_t* hash = r.bytes(sizeof out->model_hash);
  out->round_id = r.u32();
  out->rows = r.u16();
  out->cols = r.u16();
  NodeCounters& c = out->counters;
  uint32_t* const counters[] = {&c.connects,       &c.rounds_served,     &c.globals_rejected, &c.updates_resent,
                                &c.masks_revealed, &c.oversized_dropped, &c.protocol_errors};
  for (uint32_t* v : counters) *v = r.u32();
  out->cache_samples = r.u32();
  if (!r.ok()) return r.status();
  memcpy(out->model_hash, hash, sizeof out->model_hash);
  if (reserved != 0 || (out->flags & ~kStateTrainedHead) != 0 || !shape_ok(out->rows, out->cols))
    return Status::BadValue;
  // The length must be the one the shape implies: a torn header cannot make us read past it.
  if (total != state_record_size(out->rows, out->cols)) return Status::BadLength;
  if (total > len) return Status::Truncated;
  Reader tail(src + total - 4, 4);
  if (tail.u32() != crc32(src, total - 4)) return Status::BadCrc;
  out->head_raw = src + kStateHeaderBytes;
  out->head_crc = crc32(out->head_raw, 4 * out->size());
  for (size_t i = 0; i < out->size(); ++i)
    if (!isfinite(out->head(i))) return Status::NonFinite;  // a CRC-valid NaN: written by no node
  return Status::Ok;
}

bool StateStore::read_slot(uint8_t slot, StateView* out, bool* io_error) {
  const size_t n = region_.slot_size() < cap_ ? region_.slot_size() : cap_;
  if (!region_.read(slot, 0, buf_, n)) {
    *io_error = true;
    return false;
  }
  return decode_state(buf_, n, out) == Status::Ok;
}

bool StateStore::scan(StateView* out, bool* io_error) {
  // One buffer: read both slots, then the winner again if the other one was read last.
  StateView view[kStateSlots] = {};
  bool valid[kStateSlots] = {};
  for (uint8_t slot = 0; slot < kStateSlots; ++slot) valid[slot] = read_slot(slot, &view[slot], io_error);
  uint8_t winner = valid[1] && (!valid[0] || state_newer(view[1].sequence, view[0].sequence)) ? 1 : 0;
  any_ = valid[0] || valid[1];
  if (any_ && winner == 0 && !read_slot(0, &view[0], io_error)) any_ = false;  // changed under us
  scanned_ = !*io_error;
  if (!any_) return false;
  *out = view[winner];
  newest_slot_ = winner;
  newest_seq_ = out->sequence;
  return true;
}

Status StateStore::load(const uint8_t model_hash[8], StateView* out) {
  if (cap_ < kStateRecordMax) return Status::TooLarge;
  bool io_error = false;
  const bool found = scan(out, &io_error);
  if (io_error) return Status::PipeError;
  if (!found) return Status::NoData;
  return memcmp(out->model_hash, model_hash, sizeof out->model_hash) == 0 ? Status::Ok : Status::WrongModel;
}

bool StateStore::verify(uint8_t slot, size_t len) {
  uint8_t chunk[kVerifyChunk];
  for (size_t at = 0; at < len; at += sizeof chunk) {
    const size_t n = len - at < sizeof chunk ? len - at : sizeof chunk;
    if (!region_.read(slot, at, chunk, n) || memcmp(chunk, buf_ + at, n) != 0) return false;
  }
  return true;
}

Status StateStore::save(const StateFields& f) {
  if (cap_ < kStateRecordMax) return Status::TooLarge;
  if (!scanned_) {  // first save without a load: find the newest record before choosing a slot
    StateView ignored{};
    bool io_error = false;
    scan(&ignored, &io_error);
    if (io_error) {
      ++stats_.failures;
      return Status::PipeError;
    }
  }
  const uint8_t target = any_ ? static_cast<uint8_t>(1u - newest_slot_) : 0;
  const uint32_t sequence = any_ ? newest_seq_ + 1u : 1u;
  size_t len = 0;
  Status s = encode_state(f, sequence, buf_, cap_, &len);
  if (s != Status::Ok) return s;
  if (len > region_.slot_size()) return Status::TooLarge;
  // From here the target slot is torn until the write completes; the newest record stays intact.
  // Whatever fails, the next save scans again rather than trust what it thinks the slots hold.
  scanned_ = false;
  ++stats_.erases;
  bool ok = region_.erase(target);
  if (ok) {
    ++stats_.writes;
    stats_.bytes_written += static_cast<uint32_t>(len);
    ok = region_.write(target, 0, buf_, len) && verify(target, len);
  }
  if (!ok) {
    ++stats_.failures;
    return Status::PipeError;
  }
  scanned_ = any_ = true;
  newest_slot_ = target;
  newest_seq_ = sequence;
  ++stats_.saves;
  return Status::Ok;
}

}  // namespace tinyfl
