// esp32dev: a TinyFL node on an ESP32 with WiFi. Samples arrive from application code through
// add_sample(); this sketch only wires the node to WiFi and the broker. Not buildable offline.
//
// The broker connection is TLS (WiFiClientSecure) verified against the fleet's CA, which
// `tinyfl provision` writes into node_settings_local.h as TINYFL_BROKER_CA_PEM. Plain TCP only
// with TINYFL_BROKER_INSECURE set to 1: the MQTT password then crosses the network in clear.
#include <Arduino.h>
#include <WiFi.h>

#if __has_include("node_settings_local.h")
#include "node_settings_local.h"
#else
#include "node_settings.h"
#endif

#if defined(TINYFL_BROKER_INSECURE) && TINYFL_BROKER_INSECURE
#include <WiFiClient.h>
#else
#include <WiFiClientSecure.h>
#ifndef TINYFL_BROKER_CA_PEM
#error "TLS needs the broker's CA: TINYFL_BROKER_CA_PEM (tinyfl provision writes it into node_settings_local.h); plain MQTT only with #define TINYFL_BROKER_INSECURE 1"
#endif
#endif

#include "port_arduino.h"
#include "state_arduino.h"
#include "provisioned_settings.h"
#include "tinyfl/node.h"
#include "tinyfl/node_state.h"

namespace {

#if defined(TINYFL_BROKER_INSECURE) && TINYFL_BROKER_INSECURE
WiFiClient client;
#else
WiFiClientSecure client;  // a WiFiClient (a Stream) that speaks TLS
#endif

class WifiOpener final : public port_arduino::PipeOpener {
 public:
  bool open() override {
    if (WiFi.status() != WL_CONNECTED) return false;
    client.stop();
    // With TLS, connect() also checks the certificate chain against the CA and the host name
    // against the certificate; a broker that fails either is refused (the node backs off).
    return client.connect(TINYFL_BROKER_HOST, TINYFL_BROKER_PORT) == 1;
  }
  void close() override { client.stop(); }
  bool is_open() override { return client.connected(); }
} opener;

port_arduino::ArduinoPort port(client, opener, Serial);
tinyfl::CacheStorage<> sample_storage;
tinyfl::EmbeddingCache sample_cache(sample_storage);
tinyfl::Node node(port, sample_cache);
// The persisted state (NVS): loaded in setup(), saved after each round the node served.
port_arduino::NvsStateRegion state_region;
uint8_t state_record[tinyfl::kStateRecordMax];
tinyfl::StateStore state_store(state_region, state_record, sizeof state_record);
tinyfl::NodeStateKeeper state_keeper(state_store, port, sample_cache);

}  // namespace

void setup() {
  Serial.begin(115200);
#if defined(TINYFL_BROKER_INSECURE) && TINYFL_BROKER_INSECURE
  port.log("broker connection is plain TCP (TINYFL_BROKER_INSECURE): credentials are not encrypted");
#else
  client.setCACert(TINYFL_BROKER_CA_PEM);  // the fleet's private CA only, not a public bundle
#endif
  WiFi.mode(WIFI_STA);
  WiFi.begin(TINYFL_WIFI_SSID, TINYFL_WIFI_PASSWORD);
  // Feature-vector mode until a backbone is compiled in: 64 values in [0, 1] as int8.
  if (sample_cache.configure(64, 5, 1.0f / 255.0f, -128) != tinyfl::Status::Ok) port.log("cache config failed");
  tinyfl::NodeConfig config{};
  config.node_id = TINYFL_NODE_ID;
  config.topic_prefix = TINYFL_TOPIC_PREFIX;
  config.board = tinyfl::Board::Esp32Dev;
  // the provisioned account (a provisioned broker refuses anonymous clients) and keys
  port_arduino::apply_provisioned_settings(config);
  if (node.begin(config) != tinyfl::Status::Ok) port.log("node config rejected");
  (void)state_keeper.restore(node, config.model_hash, state_region.begin());  // logs every outcome
}

void loop() { state_keeper.step(node); }
