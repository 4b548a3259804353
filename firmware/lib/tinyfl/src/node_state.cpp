#include "tinyfl/node_state.h"

#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/logline.h"

namespace tinyfl {

// The head's CRC is logged over its bytes in memory, which equal the record's little-endian f32
// only on a little-endian target (every supported one is).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "head CRCs assume little-endian floats");

namespace {

uint32_t head_crc(const float* head, size_t n) {
  return crc32(reinterpret_cast<const uint8_t*>(head), n * sizeof(float));
}

}  // namespace

Status NodeStateKeeper::restore(Node& node, const uint8_t model_hash[8], bool storage_ok) {
  memcpy(model_hash_, model_hash, sizeof model_hash_);
  off_ = !storage_ok;
  if (off_) {
    port_.log("state: storage unavailable, nothing persists");
    return Status::PipeError;
  }
  StateView v{};
  Status s = store_.load(model_hash, &v);
  const uint16_t k = cache_.n_classes(), cols = static_cast<uint16_t>(cache_.dim() + 1u);
  if (s == Status::Ok && (v.rows != k || v.cols != cols)) s = Status::WrongShape;
  LogLine line;
  if (s != Status::Ok) {
    line.str("state: nothing loaded: ").str(status_name(s));
    port_.log(line.c_str());
    return s;
  }
  rows_ = v.rows;
  cols_ = v.cols;
  flags_ = v.flags;
  for (size_t i = 0; i < v.size(); ++i) head_[i] = v.head(i);
  captured_round_ = saved_round_ = v.round_id;
  node.resume(v.round_id, v.counters);
  line.str("state: loaded round ").u32(v.round_id).str(" seq ").u32(v.sequence).str(" slot ")
      .u32(store_.newest_slot()).str(" head crc ").hex32(v.head_crc)
      .str((v.flags & kStateTrainedHead) != 0 ? " trained" : " global").str(", ").u32(v.counters.rounds_served)
      .str(" rounds served, ").u32(v.cache_samples).str(" samples then");
  port_.log(line.c_str());
  return Status::Ok;
}

// The head of the round just served, while the node still holds it: the global head plus the
// node's clipped delta, or the global head alone for a masked round.
void NodeStateKeeper::capture(const Node& node) {
  rows_ = cache_.n_classes();
  cols_ = static_cast<uint16_t>(cache_.dim() + 1u);
  const size_t n = static_cast<size_t>(rows_) * cols_;
  const float* w0 = node.round_global_head();
  const float* delta = node.update_masked() ? nullptr : node.round_delta();
  for (size_t i = 0; i < n; ++i) head_[i] = delta != nullptr ? w0[i] + delta[i] : w0[i];
  flags_ = delta != nullptr ? kStateTrainedHead : 0;
  captured_round_ = node.update_round();
}

void NodeStateKeeper::save(const Node& node) {
  StateFields f{};
  memcpy(f.model_hash, model_hash_, sizeof f.model_hash);
  f.round_id = captured_round_;
  f.flags = flags_;
  f.rows = rows_;
  f.cols = cols_;
  f.counters = node.counters();
  f.cache_samples = cache_.size();
  f.head = head_;
  LogLine line;
  // Logged before the first byte is erased: a power-cut test kills the node after this line.
  line.str("state: saving round ").u32(f.round_id);
  port_.log(line.c_str());
  const Status s = store_.save(f);
  // Saved or not, this round is done: a failing flash is not retried every poll.
  saved_round_ = captured_round_;
  line = LogLine();
  if (s != Status::Ok) {
    line.str("state: save of round ").u32(f.round_id).str(" failed: ").str(status_name(s));
    port_.log(line.c_str());
    return;
  }
  const StateStoreStats& st = store_.stats();
  line.str("state: saved round ").u32(f.round_id).str(" seq ").u32(store_.newest_sequence()).str(" slot ")
      .u32(store_.newest_slot()).str(" head crc ").hex32(head_crc(head_, static_cast<size_t>(rows_) * cols_))
      .str(", ").u32(static_cast<uint32_t>(state_record_size(rows_, cols_))).str(" B; flash so far: ")
      .u32(st.erases).str(" erases, ").u32(st.writes).str(" writes, ").u32(st.bytes_written).str(" B");
  port_.log(line.c_str());
}

void NodeStateKeeper::after_poll(Node& node) {
  const uint32_t round = node.update_round();
  if (off_ || round == 0) return;
  if (round != captured_round_) capture(node);
  if (round == saved_round_ || node.update_pending()) return;
  const uint32_t now = port_.millis();
  if (saved_once_ && min_interval_ms_ != 0 && now - last_save_ms_ < min_interval_ms_) return;
  saved_once_ = true;
  last_save_ms_ = now;
  save(node);
}

void NodeStateKeeper::step(Node& node) {
  const uint32_t idle_ms = node.poll();
  after_poll(node);  // before the wait: a save is due as soon as the PUBACK is in
  port_.wait(idle_ms);
}

void NodeStateKeeper::run(Node& node) {
  for (;;) step(node);
}

}  // namespace tinyfl
