// Label schedules and the node's label topic (tinyfl/label.h). Outside the core's flash budget
// ("labels" in tools/firmware_size.py).
#include "tinyfl/label.h"

#include "tinyfl/logline.h"

namespace tinyfl {

Status check_label(const uint8_t* buf, size_t len, const FrameAuth* auth, uint32_t newest_round, uint64_t last_seq,
                   uint16_t n_classes, LabelView* out) {
  const Status s = decode_label_frame(buf, len, auth, out);
  if (s != Status::Ok) return s;
  // A recorded frame of an older round, or an older (or the same) schedule of this boot: a
  // replay or a reordering, never what the operator sends now.
  if (out->round_id < newest_round || out->seq <= last_seq) return Status::StaleRound;
  for (uint8_t i = 0; i < out->n; ++i)
    if (out->intervals[i].label >= 0 && static_cast<uint16_t>(out->intervals[i].label) >= n_classes)
      return Status::BadValue;
  return Status::Ok;
}

void LabelSchedule::set(const LabelView& v, uint32_t received_ms) {
  n_ = v.n <= kMaxLabelIntervals ? v.n : kMaxLabelIntervals;
  for (uint8_t i = 0; i < n_; ++i) intervals_[i] = v.intervals[i];
  received_ms_ = received_ms;
}

int16_t LabelSchedule::label_at(uint32_t now_ms) const {
  const uint32_t t = now_ms - received_ms_;  // modulo 2^32, as every millis() difference
  for (uint8_t i = 0; i < n_; ++i) {
    const LabelInterval& iv = intervals_[i];
    if (t >= iv.start_ms && t - iv.start_ms < iv.duration_ms) return iv.label;
  }
  return kNoLabel;
}

bool LabelSchedule::ended(uint32_t now_ms) const {
  if (n_ == 0) return true;
  const LabelInterval& last = intervals_[n_ - 1];
  return now_ms - received_ms_ >= last.start_ms + last.duration_ms;  // fits: checked when decoded
}

Status LabelReceiver::accept(const uint8_t* frame, size_t len, uint32_t now_ms) {
  LabelView v;
  const FrameAuth auth = node_.label_auth();
  const Status s = check_label(frame, len, node_.keyed() ? &auth : nullptr, node_.newest_round(), last_seq_,
                               n_classes_, &v);
  LogLine line;
  if (s != Status::Ok) {
    ++counters_.refused;
    // the seq in two halves: LogLine prints 32-bit numbers (0 when the body did not decode)
    line.str("LABEL refused: ").str(status_name(s)).str(" (round ").u32(v.round_id).str(", seq ");
    line.hex32(static_cast<uint32_t>(v.seq >> 32)).hex32(static_cast<uint32_t>(v.seq)).str(")");
    port_.log(line.c_str());
    return s;
  }
  last_seq_ = v.seq;
  schedule_.set(v, now_ms);
  ++counters_.accepted;
  line.str("labels: seq ").hex32(static_cast<uint32_t>(v.seq >> 32)).hex32(static_cast<uint32_t>(v.seq));
  line.str(", round ").u32(v.round_id).str(", ").u32(v.n).str(" intervals");
  for (uint8_t i = 0; i < v.n; ++i) {
    const LabelInterval& iv = v.intervals[i];
    line.str(i == 0 ? ": " : ", ");
    if (iv.label == kNoLabel) line.str("none");
    else line.u32(static_cast<uint32_t>(iv.label));  // (LogLine::i32 would cost the core's flash)
    line.str(" at +").u32(iv.start_ms).str(" ms for ").u32(iv.duration_ms).str(" ms");
  }
  port_.log(line.c_str());
  return Status::Ok;
}

int16_t LabelReceiver::label_at(uint32_t now_ms) {
  if (schedule_.size() != 0 && schedule_.ended(now_ms)) schedule_.clear();
  return schedule_.label_at(now_ms);
}

void LabelReceiver::on_frame(void* self, const uint8_t* payload, size_t len) {
  LabelReceiver* r = static_cast<LabelReceiver*>(self);
  (void)r->accept(payload, len, r->port_.millis());  // every outcome is logged and counted
}

}  // namespace tinyfl
