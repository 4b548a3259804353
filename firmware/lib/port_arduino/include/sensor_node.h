// The node every Arduino board runs: readings from the application's Sensor at the model's rate,
// labels from a LabelSource, windows through the compiled model's DSP stage and backbone into the
// cache (tinyfl/sensor_stream.h), rounds over the board's byte pipe, the state persisted after
// each round it served, and a status LED. A board's main keeps only its wiring:
//
//   port_arduino::SensorNode node(client, opener, Serial, state_region);  // pipe, how to open
//                                                       // it, log, where the state persists
//   void setup() { ...; node.begin(settings, imu, &label_pins, state_region.begin(), &led); }
//   void loop() { node.loop(); }
//
// Everything large (the backbone's arena, the cache, the stream's ring) is a member: give the
// SensorNode static storage. No heap.
#pragma once
#include <Arduino.h>

#include "port_arduino.h"
#include "tinyfl/label.h"
#include "tinyfl/models.h"
#include "tinyfl/node.h"
#include "tinyfl/node_state.h"
#include "tinyfl/sensor_stream.h"
#include "tinyfl/state_store.h"

namespace port_arduino {

// A sensor the application wires to the node: one reading of channels() values per read(), in the
// units the model was trained on (the HAR model: acceleration in g, then angular rate in rad/s).
class Sensor {
 public:
  // Starts the sensor; false when it does not answer (the node then does not run).
  virtual bool begin() = 0;
  virtual uint16_t channels() const = 0;
  // One reading; false when this one failed (counted; the windows holding it are not trained on).
  virtual bool read(float* values) = 0;
  virtual const char* name() const = 0;  // for the log, e.g. "MPU-6050"

 protected:
  ~Sensor() = default;
};

// Where the current label comes from: a button, a machine-state signal, an operator. Asked once
// per reading; tinyfl::kNoLabel when unknown.
class LabelSource {
 public:
  virtual int16_t label() = 0;

 protected:
  ~LabelSource() = default;
};

// A machine-state code on digital inputs (first pin the least significant bit), pulled up: a PLC
// output or a selector switch. The all-ones code (nothing connected) means no label.
class LabelPins final : public LabelSource {
 public:
  LabelPins(const uint8_t* pins, uint8_t count) : pins_(pins), count_(count > 15 ? 15 : count) {}
  void begin();
  int16_t label() override;

 private:
  const uint8_t* pins_;
  uint8_t count_;
};

// The board's LED: blinking at 1 Hz while the node is not online (WiFi, broker or bridge
// missing), steady while online, blinking at 5 Hz when the node cannot run (no sensor, no model).
class StatusLed {
 public:
  StatusLed(int pin, bool active_low) : pin_(pin), active_low_(active_low) {}
  void begin();
  void show(bool running, bool online, uint32_t now_ms);

 private:
  int pin_;
  bool active_low_;
  int8_t lit_ = -1;  // what the pin shows now (-1 before the first show)
};

struct NodeSettings {
  tinyfl::NodeConfig node;  // id, prefix, board, credentials and keys; the model hash is filled in
  const char* model;        // the compiled model's task ("har"), nullptr for the image's first
  uint16_t classes;         // labels the LabelSource gives: 0 .. classes - 1
  uint32_t rate_hz;         // readings per second, the rate the model was trained at
  uint16_t stride;          // readings from one window to the next (0: windows side by side)
  uint32_t save_interval_s;  // at least this long between state saves (0: after every round)
};

// Counters of the sensor side the stream does not see.
struct SensorCounters {
  uint32_t failed = 0;  // read() returned false
  uint32_t late = 0;    // readings skipped because the loop fell more than a window behind
};

class SensorNode {
 public:
  SensorNode(Stream& pipe, PipeOpener& opener, Print& log, tinyfl::StateRegion& state);

  // Starts the sensor, the model, the stream and the node, and restores the persisted state
  // (`state_ok` false: its storage did not open; the node runs without it). `labels` and `led`
  // are nullable (no labels: nothing is trained on). False when the node cannot run: the reason is
  // logged and loop() only blinks the LED.
  bool begin(const NodeSettings& settings, Sensor& sensor, LabelSource* labels, bool state_ok, StatusLed* led);
  // One turn: the readings due (at most one window), one window embedded, one poll, the state
  // saved when a round was acknowledged, the LED, then sleep until the next reading or event.
  void loop();

  // Labels from the operator's label topic (`tinyfl label`; tinyfl/label.h): pass it to begin()
  // as the LabelSource and the node subscribes to its label topic.
  LabelSource& topic_labels() { return topic_labels_; }

  tinyfl::Port& port() { return port_; }
  const tinyfl::Node& node() const { return node_; }
  const tinyfl::SensorStream& stream() const { return stream_; }
  const SensorCounters& counters() const { return counters_; }

 private:
  bool fail(const char* what, tinyfl::Status s);  // logs "fatal: ..."; false
  void take_reading();
  uint32_t due_us(uint32_t k) const { return base_us_ + static_cast<uint32_t>(static_cast<uint64_t>(k) * 1000000u / rate_hz_); }
  void next_reading();
  uint32_t wait_ms(uint32_t now_us) const;

  class TopicLabels final : public LabelSource {
   public:
    explicit TopicLabels(SensorNode& owner) : owner_(owner) {}
    int16_t label() override { return owner_.receiver_.label_at(::millis()); }

   private:
    SensorNode& owner_;
  };

  ArduinoPort port_;
  tinyfl::CacheStorage<> storage_;
  tinyfl::EmbeddingCache cache_;
  tinyfl::BackboneWork work_;
  tinyfl::SensorStream stream_;
  tinyfl::Node node_;
  uint8_t record_[tinyfl::kStateRecordMax];
  tinyfl::StateStore store_;
  tinyfl::NodeStateKeeper keeper_;
  tinyfl::LabelReceiver receiver_;
  TopicLabels topic_labels_;
  Sensor* sensor_ = nullptr;
  LabelSource* labels_ = nullptr;
  StatusLed* led_ = nullptr;
  uint16_t classes_ = 0;
  uint32_t rate_hz_ = 0;
  uint32_t base_us_ = 0;  // when reading k = 0 of this second was due
  uint32_t k_ = 0;        // the next reading's index in this second, 0 .. rate_hz_ - 1
  uint32_t logged_windows_ = 0;
  bool running_ = false;
  SensorCounters counters_;
};

}  // namespace port_arduino
