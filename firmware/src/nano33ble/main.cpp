// nano33ble: a TinyFL node on an Arduino Nano 33 BLE with its on-board IMU. The USB serial line is
// the MQTT byte pipe; `tinyfl bridge --port /dev/ttyACM0 --broker mqtt://HOST:1883` connects it to
// the broker. Logs go to the hardware UART (pins 0/1) so they never mix with MQTT bytes. The node
// itself is port_arduino::SensorNode; this file is the board's wiring only: the LSM9DS1, the
// machine-state label on D2, D3, D4 (pulled up; all high = no label), the built-in LED, the state
// in the last two flash pages.
#include <Arduino.h>

#include "lsm9ds1_sensor.h"
#include "sensor_node.h"
#include "state_arduino.h"

// `tinyfl provision` writes node_settings_local.h per node (id, prefix, MQTT account, frame and
// fleet keys; its WiFi and TLS settings do not apply to a serial board). Git ignores the name.
#if __has_include("node_settings_local.h")
#include "node_settings_local.h"
#endif
// The state lives in two flash pages rated for 10,000 erases each: saved at most once an hour,
// they last over two years at any round rate (docs/PORTING.md, "Persisted state").
#ifndef TINYFL_STATE_SAVE_INTERVAL_S
#define TINYFL_STATE_SAVE_INTERVAL_S 3600
#endif
#include "provisioned_settings.h"

#ifndef TINYFL_NODE_ID
#define TINYFL_NODE_ID "nano-01"
#endif
#ifndef TINYFL_TOPIC_PREFIX
#define TINYFL_TOPIC_PREFIX "tinyfl/default"
#endif
namespace {

const uint8_t kLabelPins[] = {2, 3, 4};

class SerialOpener final : public port_arduino::PipeOpener {
 public:
  bool open() override { return static_cast<bool>(Serial); }
  void close() override {}
  bool is_open() override { return static_cast<bool>(Serial); }
} opener;

port_arduino::FlashStateRegion state_region;
port_arduino::SensorNode node(Serial, opener, Serial1, state_region);
Lsm9ds1Sensor imu;
port_arduino::LabelPins label_pins(kLabelPins, sizeof kLabelPins);
port_arduino::StatusLed led(LED_BUILTIN, /*active_low=*/false);

}  // namespace

void setup() {
  Serial.begin(115200);
  Serial1.begin(115200);
  label_pins.begin();
  // id, prefix, account and keys from the settings header; model, classes, rate and stride
  // from it or their defaults (provisioned_settings.h). A node that cannot run says why.
  const port_arduino::NodeSettings settings = port_arduino::sketch_settings(tinyfl::Board::Nano33Ble);
  // labels from the machine-state pins, or from the operator's label topic (`tinyfl label`)
  port_arduino::LabelSource* labels = &label_pins;
  if (TINYFL_LABELS_FROM_TOPIC) labels = &node.topic_labels();
  (void)node.begin(settings, imu, labels, state_region.begin(), &led);
}

void loop() { node.loop(); }
