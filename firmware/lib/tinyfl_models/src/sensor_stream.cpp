#include "tinyfl/sensor_stream.h"

#include <math.h>
#include <string.h>

#include "tinyfl/crc32.h"

namespace tinyfl {

namespace {

int8_t to_code(float v, float scale, int8_t zero_point) {
  // nearbyintf: round half to even in the default rounding mode, as numpy's round
  const float q = nearbyintf(v / scale) + static_cast<float>(zero_point);
  return static_cast<int8_t>(q < -128.0f ? -128 : (q > 127.0f ? 127 : static_cast<int>(q)));
}

}  // namespace

Status SensorStream::begin(const CompiledModel& model, uint16_t stride, uint16_t n_classes) {
  model_ = nullptr;
  Status s = prepare_compiled_model(model, work_);
  if (s != Status::Ok) return s;
  const bool staged = work_.stage.block_count != 0;
  const uint32_t window = staged ? work_.stage.window : work_.model.in_w;
  const uint32_t channels = staged ? work_.stage.channels : work_.model.in_c;
  if (stride == 0) stride = static_cast<uint16_t>(window);
  if ((!staged && work_.model.in_h != 1) || channels > kSensorMaxChannels || window * channels > kDspMaxInput ||
      stride < 1 || stride > window)
    return Status::WrongShape;
  if (n_classes < 2 || n_classes > kMaxClasses) return Status::BadValue;
  s = cache_.configure(work_.model.embedding_len, n_classes, work_.model.out_scale, work_.model.out_zp);
  if (s != Status::Ok) return s;
  model_ = &model;
  window_ = static_cast<uint16_t>(window);
  channels_ = static_cast<uint16_t>(channels);
  stride_ = stride;
  n_classes_ = n_classes;
  scale_ = staged ? work_.stage.in_scale : work_.model.in_scale;
  zero_point_ = staged ? work_.stage.in_zp : work_.model.in_zp;
  head_ = filled_ = since_cut_ = label_run_ = 0;
  label_ = kNoLabel;
  pending_ = false;
  counters_ = StreamCounters{};
  return Status::Ok;
}

Status SensorStream::set_label(int16_t label) {
  if (label != kNoLabel && (label < 0 || label >= n_classes_)) return Status::BadValue;
  if (label != label_) label_run_ = 0;
  label_ = label;
  return Status::Ok;
}

Status SensorStream::add_codes(const int8_t* codes) { return push(codes); }

Status SensorStream::add_reading(const float* values) {
  int8_t codes[kSensorMaxChannels];
  for (uint16_t c = 0; c < channels_; ++c) {
    if (!isfinite(values[c])) return Status::NonFinite;
    codes[c] = to_code(values[c], scale_, zero_point_);
  }
  return push(codes);
}

Status SensorStream::add_counts(const int16_t* counts, float count_scale) {
  float values[kSensorMaxChannels];
  for (uint16_t c = 0; c < channels_; ++c) values[c] = static_cast<float>(counts[c]) * count_scale;
  return add_reading(values);
}

Status SensorStream::push(const int8_t* codes) {
  if (model_ == nullptr) return Status::NotConnected;
  memcpy(ring_ + head_ * channels_, codes, channels_);
  head_ = (head_ + 1u) % window_;
  if (filled_ < window_) ++filled_;
  ++since_cut_;
  ++label_run_;
  ++counters_.readings;
  if (filled_ < window_ || (counters_.windows > 0 && since_cut_ < stride_)) return Status::Ok;
  since_cut_ = 0;
  ++counters_.windows;
  if (pending_) {  // the main loop has not embedded the last window yet: this one is lost
    ++counters_.overruns;
    return Status::Ok;
  }
  if (label_ == kNoLabel) {
    ++counters_.unlabelled;
  } else if (label_run_ < window_) {
    ++counters_.mixed;
  } else {  // only a window under one label is embedded: copy it, oldest reading first
    const size_t older = (window_ - head_) * static_cast<size_t>(channels_);
    memcpy(pending_window_, ring_ + head_ * channels_, older);
    memcpy(pending_window_ + older, ring_, head_ * static_cast<size_t>(channels_));
    pending_label_ = static_cast<uint8_t>(label_);
    pending_ = true;
  }
  return Status::Ok;
}

Status SensorStream::step() {
  if (!pending_) return Status::Ok;
  pending_ = false;
  int8_t embedding[kMaxDim];
  const int8_t* input = pending_window_;
  Status s = Status::Ok;
  if (work_.stage.block_count != 0) {
    DspInput front{work_};
    s = front.run(pending_window_, &input);
  }
  if (s == Status::Ok)
    s = backbone_run(work_.model, input, work_.model.input_len(), embedding, work_.model.embedding_len, work_.arena,
                     sizeof work_.arena);
  if (s != Status::Ok) return s;
  ++counters_.embedded;
  counters_.embedding_crc =
      crc32(reinterpret_cast<const uint8_t*>(embedding), work_.model.embedding_len, counters_.embedding_crc);
  keep(embedding, pending_label_);
  return Status::Ok;
}

uint32_t SensorStream::random_sample_of(uint8_t label, uint32_t held) {
  uint32_t k = rng_.next() % held;  // the k-th held sample of `label`
  for (uint32_t i = 0; i < cache_.size(); ++i)
    if (cache_.label(i) == label && k-- == 0) return i;
  return 0;  // not reached: `held` samples of `label` are in the cache
}

void SensorStream::keep(const int8_t* embedding, uint8_t label) {
  const uint32_t n_seen = ++counters_.seen[label];
  if (cache_.size() < cache_.capacity()) {
    if (cache_.add(embedding, label) == Status::Ok) ++counters_.kept;
    return;
  }
  uint32_t held[kMaxClasses] = {};
  for (uint32_t i = 0; i < cache_.size(); ++i) ++held[cache_.label(i)];
  uint8_t largest = 0;
  for (uint8_t c = 1; c < n_classes_; ++c)
    if (held[c] > held[largest]) largest = c;
  if (held[label] < held[largest]) {  // not a largest class: displace one of the largest
    cache_.replace(random_sample_of(largest, held[largest]), embedding, label);
    ++counters_.kept;
  } else if (rng_.next() % n_seen < held[label]) {  // with probability m_c / n_c
    cache_.replace(random_sample_of(label, held[label]), embedding, label);
    ++counters_.kept;
  } else {
    ++counters_.dropped;
  }
}

Status BlobReplay::begin(uint32_t rate_hz, uint32_t now_ms) {
  if (rate_hz == 0) return Status::BadValue;
  if (blob_.kind != static_cast<uint8_t>(BlobKind::RawWindows) ||
      blob_.dim != static_cast<uint32_t>(stream_.window()) * stream_.channels())
    return Status::WrongShape;
  if (blob_.scale != stream_.scale() || blob_.zero_point != stream_.zero_point()) return Status::WrongModel;
  rate_hz_ = rate_hz;
  start_ms_ = now_ms;
  next_ = 0;
  total_ = blob_.n_samples * stream_.window();
  return Status::Ok;
}

Status BlobReplay::advance(uint32_t now_ms) {
  const uint16_t t = stream_.window(), c = stream_.channels();
  Status s = Status::Ok;
  for (uint32_t fed = 0; s == Status::Ok && next_ < total_ && fed < t; ++fed, ++next_) {
    if (static_cast<int32_t>(now_ms - due_ms(next_)) < 0) break;  // not due yet (wrap-safe)
    const uint32_t w = next_ / t, r = next_ % t;
    if (r == 0 && blob_labels_)
      s = stream_.set_label(blob_.label(w) < blob_.n_classes ? blob_.label(w) : kNoLabel);
    if (s == Status::Ok) s = stream_.add_codes(blob_.sample(w) + static_cast<size_t>(r) * c);
  }
  return s;
}

uint32_t BlobReplay::wait_ms(uint32_t now_ms) const {
  if (done()) return 0xFFFFFFFFu;
  const int32_t left = static_cast<int32_t>(due_ms(next_) - now_ms);
  return left > 0 ? static_cast<uint32_t>(left) : 0u;
}

Status begin_replay(const BlobView& blob, BackboneWork& work, SensorStream& stream, BlobReplay& replay,
                    uint32_t rate_hz, uint32_t now_ms, LogLine& line) {
  const CompiledModel* model = nullptr;
  Status s = prepare_blob_model(blob, work, &model);
  if (s == Status::Ok) s = stream.begin(*model, 0, blob.n_classes);
  if (s == Status::Ok) s = replay.begin(rate_hz, now_ms);
  if (s != Status::Ok) return s;
  line.str("samples: replaying ").u32(blob.n_samples).str(" raw windows (").u32(replay.total());
  line.str(" readings) at ").u32(rate_hz).str(" Hz through the ").str(model->task).str(" model ");
  line.hex(model->hash, 8);
  return Status::Ok;
}

void describe_stream(const SensorStream& stream, const EmbeddingCache& cache, LogLine& line) {
  const StreamCounters& k = stream.counters();
  line.str("stream: ").u32(k.readings).str(" readings, ").u32(k.windows).str(" windows, ").u32(k.embedded);
  line.str(" embedded (crc32 ").hex32(k.embedding_crc).str("), ").u32(k.unlabelled).str(" unlabelled, ");
  line.u32(k.mixed).str(" mixed, ").u32(k.overruns).str(" overruns, ").u32(k.kept).str(" kept; ");
  line.u32(cache.size()).str(" cached");
}

void describe_labels(const LabelReceiver& labels, const SensorStream& stream, uint16_t n_classes, LogLine& line) {
  line.str("labels: ").u32(labels.counters().accepted).str(" accepted, ").u32(labels.counters().refused);
  line.str(" refused; per class seen ");
  for (uint16_t c = 0; c < n_classes && c < kMaxClasses; ++c) line.str(c == 0 ? "" : ",").u32(stream.counters().seen[c]);
}

void run_replay_node(Node& node, Port& port, SensorStream& stream, BlobReplay& replay, const EmbeddingCache& cache,
                     uint32_t log_every, NodeStateKeeper* keeper, LabelReceiver* labels) {
  uint32_t logged = 0;
  bool ended = false;
  for (;;) {
    const uint32_t now = port.millis();
    // the operator's label for the readings due now (the schedule's, at this loop's granularity)
    Status s = labels != nullptr ? stream.set_label(labels->label_at(now)) : Status::Ok;
    if (s == Status::Ok) s = replay.advance(now);
    if (s == Status::Ok) s = stream.step();
    if (s != Status::Ok) {
      LogLine line;
      line.str("stream error: ").str(status_name(s));
      port.log(line.c_str());
    }
    const uint32_t windows = stream.counters().windows;
    if ((windows >= logged + log_every && log_every != 0) || (replay.done() && !ended && !stream.pending())) {
      logged = windows;
      ended = replay.done();
      LogLine line;
      describe_stream(stream, cache, line);
      if (ended) line.str("; replay done");
      port.log(line.c_str());
      if (labels != nullptr) {
        LogLine more;
        describe_labels(*labels, stream, cache.n_classes(), more);
        port.log(more.c_str());
      }
    }
    const uint32_t node_ms = node.poll();
    if (keeper != nullptr) keeper->after_poll(node);
    const uint32_t replay_ms = stream.pending() ? 0u : replay.wait_ms(port.millis());
    port.wait(node_ms < replay_ms ? node_ms : replay_ms);
  }
}

}  // namespace tinyfl
