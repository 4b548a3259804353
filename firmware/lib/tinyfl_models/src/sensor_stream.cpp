#include "tinyfl/sensor_stream.h"

#include <math.h>
#include <string.h>

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
  label_ = pending_label_ = kNoLabel;
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
  // oldest reading first: the ring from head_ to its end, then from its start to head_
  const size_t older = (window_ - head_) * static_cast<size_t>(channels_);
  memcpy(pending_window_, ring_ + head_ * channels_, older);
  memcpy(pending_window_ + older, ring_, head_ * static_cast<size_t>(channels_));
  pending_label_ = label_run_ >= window_ ? label_ : kNoLabel;
  if (label_ == kNoLabel) ++counters_.unlabelled;
  else if (label_run_ < window_) ++counters_.mixed;
  pending_ = label_run_ >= window_ && label_ != kNoLabel;  // only labelled windows are embedded
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
  keep(embedding, static_cast<uint8_t>(pending_label_));
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

}  // namespace tinyfl
