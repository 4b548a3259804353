// nano33ble: a TinyFL node on an Arduino Nano 33 BLE. The USB serial line is the MQTT byte pipe;
// `tinyfl bridge --port /dev/ttyACM0 --broker mqtt://HOST:1883` connects it to the broker. Logs go
// to the hardware UART (pins 0/1) so they never mix with MQTT bytes. Not buildable offline.
#include <Arduino.h>

#include "port_arduino.h"
#include "state_arduino.h"
#include "tinyfl/node.h"
#include "tinyfl/node_state.h"

// `tinyfl provision` writes node_settings_local.h per node (id, prefix, MQTT account, frame and
// fleet keys; its WiFi and TLS settings do not apply to a serial board). Git ignores the name.
#if __has_include("node_settings_local.h")
#include "node_settings_local.h"
#endif
#include "provisioned_settings.h"

#ifndef TINYFL_NODE_ID
#define TINYFL_NODE_ID "nano-01"
#endif
#ifndef TINYFL_TOPIC_PREFIX
#define TINYFL_TOPIC_PREFIX "tinyfl/default"
#endif

namespace {

class SerialOpener final : public port_arduino::PipeOpener {
 public:
  bool open() override { return static_cast<bool>(Serial); }
  void close() override {}
  bool is_open() override { return static_cast<bool>(Serial); }
} opener;

port_arduino::ArduinoPort port(Serial, opener, Serial1);
tinyfl::CacheStorage<> sample_storage;
tinyfl::EmbeddingCache sample_cache(sample_storage);
tinyfl::Node node(port, sample_cache);
// The persisted state (flash page): loaded in setup(), saved after each round the node served.
port_arduino::FlashStateRegion state_region;
uint8_t state_record[tinyfl::kStateRecordMax];
tinyfl::StateStore state_store(state_region, state_record, sizeof state_record);
tinyfl::NodeStateKeeper state_keeper(state_store, port, sample_cache);

}  // namespace

void setup() {
  Serial.begin(115200);
  Serial1.begin(115200);
  if (sample_cache.configure(64, 5, 1.0f / 255.0f, -128) != tinyfl::Status::Ok) port.log("cache config failed");
  tinyfl::NodeConfig config{};
  config.node_id = TINYFL_NODE_ID;
  config.topic_prefix = TINYFL_TOPIC_PREFIX;
  config.board = tinyfl::Board::Nano33Ble;
  port_arduino::apply_provisioned_settings(config);  // account and keys, if provisioned
  if (node.begin(config) != tinyfl::Status::Ok) port.log("node config rejected");
  (void)state_keeper.restore(node, config.model_hash, state_region.begin());  // logs every outcome
}

void loop() { state_keeper.step(node); }
