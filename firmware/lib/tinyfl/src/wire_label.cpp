// The LABEL frame's decoder (docs/WIRE.md, "LABEL"). Its own object file, outside the core's
// flash budget ("labels" in tools/firmware_size.py): only a node that takes labels links it.
#include <string.h>

#include "tinyfl/cursor.h"
#include "tinyfl/label.h"
#include "wire_internal.h"

namespace tinyfl {

using namespace wire_detail;

namespace {

// One interval, read whole (10 bytes), then checked against the one before it.
void read_interval(Reader& r, uint64_t previous_end, LabelInterval* iv) {
  iv->start_ms = r.u32();
  iv->duration_ms = r.u32();
  iv->label = static_cast<int16_t>(r.u16());
  if (!r.ok()) return;
  const uint64_t end = static_cast<uint64_t>(iv->start_ms) + iv->duration_ms;
  if (iv->duration_ms == 0 || end > 0xFFFFFFFFull) return r.fail(Status::BadValue);
  if (iv->start_ms < previous_end) return r.fail(Status::BadValue);
  if (iv->label < kNoLabel) r.fail(Status::BadValue);
}

}  // namespace

Status decode_label(const uint8_t* body, size_t len, LabelView* out) {
  memset(out, 0, sizeof *out);
  Reader r(body, len);
  out->round_id = r.u32();
  const uint32_t seq_lo = r.u32();
  out->seq = (static_cast<uint64_t>(r.u32()) << 32) | seq_lo;
  if (r.ok() && out->seq == 0) r.fail(Status::BadValue);
  const uint8_t n = r.u8();
  if (n > kMaxLabelIntervals) r.fail(Status::BadValue);  // before the intervals are read
  uint64_t previous_end = 0;
  for (uint8_t i = 0; i < n && r.ok(); ++i) {
    read_interval(r, previous_end, &out->intervals[i]);
    previous_end = static_cast<uint64_t>(out->intervals[i].start_ms) + out->intervals[i].duration_ms;
  }
  if (r.ok()) out->n = n;
  return finish(r);
}

Status decode_label_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, LabelView* out) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  const Status s = open_typed(buf, len, auth, FrameType::Label, &body, &hdr);
  if (s != Status::Ok) {
    memset(out, 0, sizeof *out);
    return s;
  }
  return decode_label(body, hdr.body_len, out);
}

}  // namespace tinyfl
