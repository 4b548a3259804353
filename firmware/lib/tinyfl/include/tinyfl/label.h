// Labels from the operator (docs/WIRE.md, "LABEL"): a signed schedule of label intervals on the
// node's own topic `<prefix>/nodes/<id>/label`, relative to the moment the node receives it.
//
//   decode_label_frame  the frame: header, tag or CRC, body; no I/O, no heap, first error wins
//   check_label         what a node accepts: the frame, then freshness (round id, seq), classes
//   LabelSchedule       pure: the schedule's label at a given millis()
//   LabelReceiver       the glue: hooked into the Node, checks each LABEL, keeps the schedule
//
// Outside the core's flash budget (tools/firmware_size.py, "labels"): the Node only routes the
// topic's messages to a hook (Node::set_label_hook); everything here runs in that hook. An
// application (a sensor main) asks the receiver for the label at each reading and hands it to
// SensorStream::set_label (docs/PORTING.md, "Labels").
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/node.h"
#include "tinyfl/port.h"
#include "tinyfl/status.h"
#include "tinyfl/wire.h"

namespace tinyfl {

constexpr int16_t kNoLabel = -1;             // no label: the window is counted, not trained on
constexpr uint8_t kMaxLabelIntervals = 8;    // per LABEL frame

struct LabelInterval {
  uint32_t start_ms;     // after receipt
  uint32_t duration_ms;  // >= 1; start_ms + duration_ms fits 32 bits
  int16_t label;         // a class, or kNoLabel
};

// A decoded LABEL body. The intervals are copied out (80 bytes at most): the schedule outlives
// the MQTT receive buffer the frame sat in.
struct LabelView {
  uint32_t round_id;  // the newest round id the sender saw (0: none)
  uint64_t seq;       // >= 1, strictly increasing per node
  uint8_t n;          // 0..kMaxLabelIntervals; 0 clears the schedule
  LabelInterval intervals[kMaxLabelIntervals];
};

// The body (as decode_frame gives it); it must be consumed exactly.
[[nodiscard]] Status decode_label(const uint8_t* body, size_t len, LabelView* out);
// decode_frame, verify_frame with the receiver's `auth` (null: a node without keys), then the body;
// a valid frame of another type is BadType.
[[nodiscard]] Status decode_label_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, LabelView* out);

// What a node accepts (docs/WIRE.md, "LABEL", freshness): decode_label_frame under `auth`, then
// round_id not below `newest_round` (Node::newest_round: of the genuine GLOBALs it has seen) and seq above
// `last_seq` (StaleRound), then every label below n_classes (BadValue). `out` holds the frame's
// fields whenever the body decoded, so a refusal can be logged with them.
[[nodiscard]] Status check_label(const uint8_t* buf, size_t len, const FrameAuth* auth, uint32_t newest_round,
                                 uint64_t last_seq, uint16_t n_classes, LabelView* out);

// A schedule of label intervals relative to the millis() it was received at. Pure: no clock.
class LabelSchedule {
 public:
  // Replaces the schedule by `v`'s intervals, counted from received_ms.
  void set(const LabelView& v, uint32_t received_ms);
  void clear() { n_ = 0; }
  // The label of the interval holding now_ms, kNoLabel between, after and without intervals.
  // Differences are taken modulo 2^32 ms (49.7 days): a schedule asked about after that long
  // sees its intervals again, so a long-lived caller clears it once it is over (ended()).
  int16_t label_at(uint32_t now_ms) const;
  // True when no interval is left at or after now_ms (an empty schedule has ended).
  bool ended(uint32_t now_ms) const;
  uint8_t size() const { return n_; }
  const LabelInterval& interval(uint8_t i) const { return intervals_[i]; }

 private:
  LabelInterval intervals_[kMaxLabelIntervals] = {};
  uint8_t n_ = 0;
  uint32_t received_ms_ = 0;
};

struct LabelCounters {
  uint32_t accepted = 0;
  uint32_t refused = 0;
};

// A node's label topic, end to end: attach() before node.begin() makes the node subscribe to its
// label topic and hand every message on it to accept(), which checks it (check_label, with the
// node's frame key, its newest round and the last seq accepted since boot), replaces the schedule
// and logs the outcome ("labels: seq ..., 3 intervals" or "LABEL refused: bad_tag").
class LabelReceiver {
 public:
  LabelReceiver(Node& node, Port& port, uint16_t n_classes) : node_(node), port_(port), n_classes_(n_classes) {}

  void attach() { node_.set_label_hook(&LabelReceiver::on_frame, this); }
  // The class count labels must stay below, when it is known only after construction.
  void set_classes(uint16_t n_classes) { n_classes_ = n_classes; }
  // One LABEL frame received at now_ms: Ok when it replaced the schedule, else why not.
  [[nodiscard]] Status accept(const uint8_t* frame, size_t len, uint32_t now_ms);
  // The label for a reading at now_ms (kNoLabel without one); drops a schedule that has ended.
  int16_t label_at(uint32_t now_ms);

  const LabelSchedule& schedule() const { return schedule_; }
  const LabelCounters& counters() const { return counters_; }
  uint64_t last_seq() const { return last_seq_; }

 private:
  static void on_frame(void* self, const uint8_t* payload, size_t len);

  Node& node_;
  Port& port_;
  uint16_t n_classes_;
  LabelSchedule schedule_;
  uint64_t last_seq_ = 0;  // RAM only: a reboot forgets it (docs/WIRE.md says what that allows)
  LabelCounters counters_;
};

}  // namespace tinyfl
