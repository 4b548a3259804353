// esp32dev: a TinyFL node on an ESP32 with WiFi. Samples arrive from application code through
// add_sample(); this sketch only wires the node to WiFi and the broker. Not buildable offline.
#include <Arduino.h>
#include <WiFi.h>

#if __has_include("node_settings_local.h")
#include "node_settings_local.h"
#else
#include "node_settings.h"
#endif
#include "port_arduino.h"
#include "tinyfl/node.h"

namespace {

WiFiClient client;

class WifiOpener final : public port_arduino::PipeOpener {
 public:
  bool open() override {
    if (WiFi.status() != WL_CONNECTED) return false;
    client.stop();
    return client.connect(TINYFL_BROKER_HOST, TINYFL_BROKER_PORT) == 1;
  }
  void close() override { client.stop(); }
  bool is_open() override { return client.connected(); }
} opener;

port_arduino::ArduinoPort port(client, opener, Serial);
tinyfl::CacheStorage<> sample_storage;
tinyfl::EmbeddingCache sample_cache(sample_storage);
tinyfl::Node node(port, sample_cache);

}  // namespace

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.begin(TINYFL_WIFI_SSID, TINYFL_WIFI_PASSWORD);
  // Feature-vector mode until a backbone is compiled in: 64 values in [0, 1] as int8.
  if (sample_cache.configure(64, 5, 1.0f / 255.0f, -128) != tinyfl::Status::Ok) port.log("cache config failed");
  tinyfl::NodeConfig config{};
  config.node_id = TINYFL_NODE_ID;
  config.topic_prefix = TINYFL_TOPIC_PREFIX;
  config.board = tinyfl::Board::Esp32Dev;
  if (node.begin(config) != tinyfl::Status::Ok) port.log("node config rejected");
}

void loop() { port.wait(node.poll()); }
