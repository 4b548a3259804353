#include "sensor_node.h"

#include <math.h>
#include <string.h>

#include "tinyfl/logline.h"

namespace port_arduino {

void LabelPins::begin() {
  for (uint8_t i = 0; i < count_; ++i) pinMode(pins_[i], INPUT_PULLUP);
}

int16_t LabelPins::label() {
  int16_t code = 0;
  for (uint8_t i = 0; i < count_; ++i)
    if (digitalRead(pins_[i]) == HIGH) code = static_cast<int16_t>(code | (1 << i));
  return code == (1 << count_) - 1 ? tinyfl::kNoLabel : code;
}

void StatusLed::begin() {
  if (pin_ >= 0) pinMode(pin_, OUTPUT);
}

void StatusLed::show(bool running, bool online, uint32_t now_ms) {
  if (pin_ < 0) return;
  const uint32_t half_period_ms = !running ? 100u : 500u;
  const bool on = running && online ? true : (now_ms / half_period_ms) % 2 == 0;
  if (lit_ == static_cast<int8_t>(on)) return;
  lit_ = static_cast<int8_t>(on);
  digitalWrite(pin_, on != active_low_ ? HIGH : LOW);
}

SensorNode::SensorNode(Stream& pipe, PipeOpener& opener, Print& log, tinyfl::StateRegion& state)
    : port_(pipe, opener, log),
      storage_(),
      cache_(storage_),
      stream_(work_, cache_, 0),
      node_(port_, cache_),
      store_(state, record_, sizeof record_),
      keeper_(store_, port_, cache_),
      receiver_(node_, port_, 0),
      topic_labels_(*this) {}

bool SensorNode::fail(const char* what, tinyfl::Status s) {
  tinyfl::LogLine line;
  line.str("fatal: ").str(what).str(": ").str(tinyfl::status_name(s));
  port_.log(line.c_str());
  running_ = false;
  return false;
}

namespace {

const tinyfl::CompiledModel* find_model(const char* task) {
  for (size_t i = 0; i < tinyfl::compiled_model_count(); ++i) {
    const tinyfl::CompiledModel& m = tinyfl::compiled_model(i);
    if (task == nullptr || strcmp(task, m.task) == 0) return &m;
  }
  return nullptr;
}

}  // namespace

bool SensorNode::begin(const NodeSettings& settings, Sensor& sensor, LabelSource* labels, bool state_ok,
                       StatusLed* led) {
  running_ = false;
  led_ = led;
  if (led_ != nullptr) led_->begin();
  const tinyfl::CompiledModel* model = find_model(settings.model);
  if (model == nullptr) {
    tinyfl::LogLine line;
    line.str("fatal: this firmware carries no model ").str(settings.model != nullptr ? settings.model : "at all");
    port_.log(line.c_str());
    return false;
  }
  // A fresh seed per boot: which samples the reservoir keeps need not repeat after a reboot.
  stream_.reseed(port_.entropy());
  tinyfl::Status s = stream_.begin(*model, settings.stride, settings.classes);
  if (s != tinyfl::Status::Ok) return fail("the model as a sensor stream", s);
  if (!sensor.begin()) {
    tinyfl::LogLine line;
    line.str("fatal: the sensor (").str(sensor.name()).str(") does not answer");
    port_.log(line.c_str());
    return false;
  }
  if (sensor.channels() != stream_.channels() || settings.rate_hz == 0)
    return fail("sensor channels or rate for the model", tinyfl::Status::WrongShape);
  sensor_ = &sensor;
  labels_ = labels;
  classes_ = settings.classes;
  rate_hz_ = settings.rate_hz;

  tinyfl::NodeConfig config = settings.node;
  memcpy(config.model_hash, model->hash, sizeof config.model_hash);
  config.announced_samples = cache_.capacity();  // the cache fills as the node runs
  if (labels == &topic_labels_) {  // the node subscribes to its label topic at connect
    receiver_.set_classes(settings.classes);
    receiver_.attach();
  }
  s = node_.begin(config);
  if (s != tinyfl::Status::Ok) return fail("node config", s);
  keeper_.set_min_save_interval(settings.save_interval_s * 1000u);
  (void)keeper_.restore(node_, config.model_hash, state_ok);  // every outcome is logged

  tinyfl::LogLine line;
  line.str("samples: streaming ").str(sensor.name()).str(" at ").u32(rate_hz_).str(" Hz through the ");
  line.str(model->task).str(" model ").hex(model->hash, 8).str(", windows of ").u32(stream_.window());
  line.str(labels_ == nullptr ? ", no label source: nothing to train on"
                               : (labels_ == &topic_labels_ ? ", labels from the label topic" : ", labelled"));
  port_.log(line.c_str());
  base_us_ = micros();
  k_ = 0;
  logged_windows_ = 0;
  running_ = true;
  return true;
}

void SensorNode::next_reading() {
  if (++k_ == rate_hz_) {
    k_ = 0;
    base_us_ += 1000000u;
  }
}

void SensorNode::take_reading() {
  float values[tinyfl::kSensorMaxChannels];
  bool ok = sensor_->read(values);
  for (uint16_t c = 0; ok && c < stream_.channels(); ++c) ok = isfinite(values[c]);  // broken = failed
  // The label that holds now, after the reading: a label change is seen with the first reading
  // taken under the new state.
  int16_t label = labels_ != nullptr ? labels_->label() : tinyfl::kNoLabel;
  if (label != tinyfl::kNoLabel && (label < 0 || label >= static_cast<int16_t>(classes_))) label = tinyfl::kNoLabel;
  if (!ok) {
    // Keep the timing: a reading of zeros under no label, so no window holding it is trained on.
    ++counters_.failed;
    memset(values, 0, sizeof values);
    label = tinyfl::kNoLabel;
  }
  tinyfl::Status s = stream_.set_label(label);
  if (s == tinyfl::Status::Ok) s = stream_.add_reading(values);
  if (s != tinyfl::Status::Ok) {
    tinyfl::LogLine line;
    line.str("stream error: ").str(tinyfl::status_name(s));
    port_.log(line.c_str());
  }
}

uint32_t SensorNode::wait_ms(uint32_t now_us) const {
  if (stream_.pending()) return 0;
  const int32_t left_us = static_cast<int32_t>(due_us(k_) - now_us);
  // Rounded up: a loop that wakes early would spin until the reading is due.
  return left_us > 0 ? (static_cast<uint32_t>(left_us) + 999u) / 1000u : 0u;
}

void SensorNode::loop() {
  if (!running_) {
    if (led_ != nullptr) led_->show(false, false, ::millis());
    delay(10);
    return;
  }
  // The readings due, at most one window's worth so that polls keep coming. A loop more than a
  // window behind (a long blocking call) skips ahead: the readings it missed are lost, counted.
  uint32_t now_us = micros();
  const uint32_t window = stream_.window();
  for (uint32_t n = 0; n < window && static_cast<int32_t>(now_us - due_us(k_)) >= 0; ++n) {
    take_reading();
    next_reading();
  }
  while (static_cast<int32_t>(now_us - due_us(k_)) >= static_cast<int32_t>(1000000u / rate_hz_ * window)) {
    ++counters_.late;
    next_reading();
  }
  const tinyfl::Status s = stream_.step();
  if (s != tinyfl::Status::Ok) {
    tinyfl::LogLine line;
    line.str("stream error: ").str(tinyfl::status_name(s));
    port_.log(line.c_str());
  }
  const uint32_t windows = stream_.counters().windows;
  if (windows >= logged_windows_ + 50 && !stream_.pending()) {
    logged_windows_ = windows;
    tinyfl::LogLine line;
    tinyfl::describe_stream(stream_, cache_, line);
    line.str("; ").u32(counters_.failed).str(" failed, ").u32(counters_.late).str(" late");
    port_.log(line.c_str());
    if (labels_ == &topic_labels_) {
      tinyfl::LogLine more;
      tinyfl::describe_labels(receiver_, stream_, classes_, more);
      port_.log(more.c_str());
    }
  }
  const uint32_t node_ms = node_.poll();
  keeper_.after_poll(node_);
  if (led_ != nullptr) led_->show(true, node_.online(), ::millis());
  const uint32_t reading_ms = wait_ms(micros());
  // The LED blinks while offline: wake at least every 100 ms to toggle it.
  uint32_t ms = node_ms < reading_ms ? node_ms : reading_ms;
  if (!node_.online() && ms > 100) ms = 100;
  port_.wait(ms);
}

}  // namespace port_arduino
