// A node's sensor path (issue 13): readings arrive one at a time at the model's rate, forever; the
// stream keeps a ring buffer of one window, cuts a window every `stride` readings, and embeds it
// (through the model's DSP stage, if any, and the backbone) into the sample cache under the label
// the application set. No heap: the ring, the pending window and the counters are members.
//
// Timing: add_*() is cheap (a copy into the ring); the one long step, embedding a window, runs in
// step(), which the main loop calls between polls, so the MQTT keep-alive never waits for more
// than one window's embedding.
//
// Labels: set_label(k) from a button, a machine-state signal or the operator's label topic
// (tinyfl/label.h's LabelReceiver::label_at); kNoLabel (defined there) when unknown. A window is
// trained on only when one label held for all its readings; windows without one label are
// counted (unlabelled, mixed) and dropped.
//
// The cache, once full, is a class-balancing reservoir (Chrysakis and Moens, "Online Continual
// Learning from Imbalanced Data", ICML 2020): a window of a class that is not among the largest in
// the cache replaces a random sample of a largest class; a window of a largest class c replaces a
// random sample of c with probability m_c / n_c (m_c held, n_c seen), else it is dropped. So each
// class keeps a uniform sample of its own stream, and a rare class is not pushed out by a common one.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/blob.h"
#include "tinyfl/cache.h"
#include "tinyfl/label.h"
#include "tinyfl/logline.h"
#include "tinyfl/models.h"
#include "tinyfl/node.h"
#include "tinyfl/node_state.h"
#include "tinyfl/rng.h"
#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint16_t kSensorMaxChannels = 16;  // values per reading (an IMU: 6 or 9)

struct StreamCounters {
  uint32_t readings = 0;
  uint32_t windows = 0;     // cut from the stream
  uint32_t embedded = 0;    // run through the model
  uint32_t unlabelled = 0;  // no label for the whole window
  uint32_t mixed = 0;       // the label changed inside the window
  uint32_t overruns = 0;    // a window completed while the previous one still waited for step()
  uint32_t kept = 0;        // added to the cache or replacing a sample in it
  uint32_t dropped = 0;     // not kept by the reservoir
  uint32_t seen[kMaxClasses] = {};  // labelled windows per class
  uint32_t embedding_crc = 0;       // CRC32 of every embedding made, in order (as the blob loader's)
};

class SensorStream {
 public:
  SensorStream(BackboneWork& work, EmbeddingCache& cache, uint32_t seed) : work_(work), cache_(cache), rng_(seed) {}
  // The reservoir's random draws from here on (a node seeds it from its port's entropy at boot).
  void reseed(uint32_t seed) { rng_ = Rng(seed); }

  // Takes `model` (parsed into the work) with windows of its raw input, cut every `stride`
  // readings (1 .. window; 0: the window, windows side by side), and empties the cache for `n_classes` classes. WrongShape for a
  // stride outside 1 .. window, a model input that is no window (h != 1) or has more than
  // kSensorMaxChannels channels, BadValue for
  // n_classes outside 2 .. kMaxClasses, and the model's own errors.
  [[nodiscard]] Status begin(const CompiledModel& model, uint16_t stride, uint16_t n_classes);

  uint16_t window() const { return window_; }      // readings per window
  uint16_t channels() const { return channels_; }  // values per reading
  float scale() const { return scale_; }           // of the raw int8 codes
  int8_t zero_point() const { return zero_point_; }

  // One reading of channels() values: int8 codes in the model's raw quantization, values in the
  // model's units (quantized here: round half to even, as the host's numpy), or int16 counts of a
  // sensor times `count_scale` units per count. BadValue for a non-finite value; NotConnected
  // before begin().
  [[nodiscard]] Status add_codes(const int8_t* codes);
  [[nodiscard]] Status add_reading(const float* values);
  [[nodiscard]] Status add_counts(const int16_t* counts, float count_scale);

  // The label of the readings from now on (0 .. n_classes - 1), or kNoLabel. BadValue otherwise.
  [[nodiscard]] Status set_label(int16_t label);

  // Embeds the window waiting since the last step, if any, and offers it to the reservoir. Ok
  // when there was nothing to do.
  [[nodiscard]] Status step();
  bool pending() const { return pending_; }

  const StreamCounters& counters() const { return counters_; }

 private:
  Status push(const int8_t* codes);
  void keep(const int8_t* embedding, uint8_t label);
  uint32_t random_sample_of(uint8_t label, uint32_t held);

  BackboneWork& work_;
  EmbeddingCache& cache_;
  Rng rng_;
  const CompiledModel* model_ = nullptr;
  uint16_t window_ = 0, channels_ = 0, stride_ = 0, n_classes_ = 0;
  float scale_ = 1.0f;
  int8_t zero_point_ = 0;
  int8_t ring_[kDspMaxInput];     // the last window's readings, oldest at head_
  int8_t pending_window_[kDspMaxInput];
  uint32_t head_ = 0;             // next reading's slot in the ring
  uint32_t filled_ = 0;           // readings in the ring, up to window_
  uint32_t since_cut_ = 0;        // readings since the last window was cut
  int16_t label_ = kNoLabel;
  uint32_t label_run_ = 0;        // readings in a row under label_
  bool pending_ = false;
  uint8_t pending_label_ = 0;     // the label of the window waiting, when pending_
  StreamCounters counters_;
};

// Plays a raw-window data blob as a live sensor (the emulated nodes' sensor replay): its windows'
// readings in order, `rate_hz` readings per second of the caller's clock, each window under its
// label, or (use_blob_labels(false)) under whatever label the caller sets on the stream, e.g. the
// operator's label topic. With the stream's stride equal to the window, the stream cuts exactly
// the blob's windows.
class BlobReplay {
 public:
  BlobReplay(const BlobView& blob, SensorStream& stream) : blob_(blob), stream_(stream) {}

  // Starts at now_ms. WrongShape / WrongModel when the blob's windows are not the stream's (kind,
  // length, quantization), BadValue for rate 0.
  [[nodiscard]] Status begin(uint32_t rate_hz, uint32_t now_ms);
  // False: the replay leaves the stream's label alone (the caller's labels, not the blob's).
  void use_blob_labels(bool use) { blob_labels_ = use; }
  // Feeds the readings due by now_ms, at most one window's worth per call (the caller polls
  // between calls).
  [[nodiscard]] Status advance(uint32_t now_ms);
  // Milliseconds until the next reading is due: 0 when one is due, 0xFFFFFFFF when all are played.
  uint32_t wait_ms(uint32_t now_ms) const;
  bool done() const { return next_ >= total_; }
  uint32_t total() const { return total_; }

 private:
  uint32_t due_ms(uint32_t reading) const {
    return start_ms_ + static_cast<uint32_t>(static_cast<uint64_t>(reading) * 1000u / rate_hz_);
  }

  const BlobView& blob_;
  SensorStream& stream_;
  uint32_t rate_hz_ = 0, start_ms_ = 0, next_ = 0, total_ = 0;
  bool blob_labels_ = true;
};

// "stream: 6400 readings, 50 windows, 50 embedded (crc32 1a2b3c4d), 0 unlabelled, 0 mixed,
// 0 overruns, 50 kept; 50 cached"
void describe_stream(const SensorStream& stream, const EmbeddingCache& cache, LogLine& line);

// Sets up the replay of a raw-window blob through the compiled model it names (stream windows
// side by side, the blob's classes), starting at now_ms, and describes it in `line` ("samples:
// replaying 350 raw windows (44800 readings) at 500 Hz through the har model 6fd44058ec534a5d").
// The model lookup's WrongModel, the stream's and the replay's errors.
[[nodiscard]] Status begin_replay(const BlobView& blob, BackboneWork& work, SensorStream& stream, BlobReplay& replay,
                                  uint32_t rate_hz, uint32_t now_ms, LogLine& line);

// A node whose samples come from a replayed blob: runs forever, feeding the stream, embedding a
// window between polls and logging the stream's counters every `log_every` windows and when the
// replay ends. `keeper` (nullable) persists the node's state after each poll, as its run() does.
// `labels` (nullable; attached to the node, the replay told use_blob_labels(false)): the label of
// every reading comes from the operator's label topic instead of the blob.
[[noreturn]] void run_replay_node(Node& node, Port& port, SensorStream& stream, BlobReplay& replay,
                                  const EmbeddingCache& cache, uint32_t log_every, NodeStateKeeper* keeper,
                                  LabelReceiver* labels = nullptr);

// "labels: 3 accepted, 1 refused; per class seen 12,0,7" (after describe_stream, with labels)
void describe_labels(const LabelReceiver& labels, const SensorStream& stream, uint16_t n_classes, LogLine& line);

}  // namespace tinyfl
