// esp32dev: a TinyFL node on an ESP32 DevKit with WiFi and an I2C IMU. The node itself (readings
// at the model's rate, windows through the compiled backbone, rounds, persisted state, status LED)
// is port_arduino::SensorNode; this file is the board's wiring only:
//   MPU-6050 on I2C (SDA GPIO 21, SCL GPIO 22), the machine-state label on GPIO 25, 26, 27
//   (pulled up; all high = no label), the status LED on GPIO 2, the state in NVS.
//
// The broker connection is TLS (WiFiClientSecure) verified against the fleet's CA, which
// `tinyfl provision` writes into node_settings_local.h as TINYFL_BROKER_CA_PEM. Plain TCP only
// with TINYFL_BROKER_INSECURE set to 1: the MQTT password then crosses the network in clear.
#include <Arduino.h>
#include <WiFi.h>
#include <Wire.h>

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

#include "mpu6050_sensor.h"
#include "provisioned_settings.h"
#include "sensor_node.h"
#include "state_arduino.h"

namespace {

constexpr int kSdaPin = 21;
constexpr int kSclPin = 22;
constexpr int kLedPin = 2;  // the DevKit's blue LED, lit when high
const uint8_t kLabelPins[] = {25, 26, 27};

#if defined(TINYFL_BROKER_INSECURE) && TINYFL_BROKER_INSECURE
WiFiClient client;
#else
WiFiClientSecure client;  // a WiFiClient (a Stream) that speaks TLS
#endif

class WifiOpener final : public port_arduino::PipeOpener {
 public:
  bool open() override {
    if (WiFi.status() != WL_CONNECTED) {
      // The node retries with backoff; nudge the WiFi stack to rejoin at most every 10 s.
      const uint32_t now = millis();
      if (!rejoin_asked_ || now - last_rejoin_ms_ >= 10000u) {
        rejoin_asked_ = true;
        last_rejoin_ms_ = now;
        WiFi.reconnect();
      }
      return false;
    }
    client.stop();
    // With TLS, connect() also checks the certificate chain against the CA and the host name
    // against the certificate; a broker that fails either is refused (the node backs off).
    return client.connect(TINYFL_BROKER_HOST, TINYFL_BROKER_PORT) == 1;
  }
  void close() override { client.stop(); }
  bool is_open() override { return client.connected(); }

 private:
  bool rejoin_asked_ = false;
  uint32_t last_rejoin_ms_ = 0;
} opener;

port_arduino::NvsStateRegion state_region;
port_arduino::SensorNode node(client, opener, Serial, state_region);
Mpu6050Sensor imu(Wire);
port_arduino::LabelPins label_pins(kLabelPins, sizeof kLabelPins);
port_arduino::StatusLed led(kLedPin, /*active_low=*/false);

}  // namespace

void setup() {
  Serial.begin(115200);
#if defined(TINYFL_BROKER_INSECURE) && TINYFL_BROKER_INSECURE
  node.port().log("broker connection is plain TCP (TINYFL_BROKER_INSECURE): credentials are not encrypted");
#else
  client.setCACert(TINYFL_BROKER_CA_PEM);  // the fleet's private CA only, not a public bundle
#endif
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(TINYFL_WIFI_SSID, TINYFL_WIFI_PASSWORD);
  Wire.begin(kSdaPin, kSclPin);
  Wire.setClock(400000);
  label_pins.begin();

  // id, prefix, account and keys from the settings header; model, classes, rate and stride
  // from it or their defaults (provisioned_settings.h). A node that cannot run says why.
  const port_arduino::NodeSettings settings = port_arduino::sketch_settings(tinyfl::Board::Esp32Dev);
  // labels from the machine-state pins, or from the operator's label topic (`tinyfl label`)
  port_arduino::LabelSource* labels = &label_pins;
  if (TINYFL_LABELS_FROM_TOPIC) labels = &node.topic_labels();
  (void)node.begin(settings, imu, labels, state_region.begin(), &led);
}

void loop() { node.loop(); }
