// The test double's own side: what the command line set (docs/PORTING.md, "The Arduino test
// double"), and the world the emulated devices show (the label on the machine-state pins).
//   program --config node.cfg --broker HOST:PORT --imu BLOB --sensor-hz N [--stride N]
//           [--model TASK] [--nvs FILE] [--label-pins 25,26,27] [--wifi-outage AT_S:FOR_S]
//           [--labels pins|topic]
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace arduino_double {

struct Settings {
  const char* node_id;
  const char* topic_prefix;
  const char* username;  // nullptr: none
  const char* password;  // nullptr: none
  const uint8_t* frame_key;  // 32 bytes, or nullptr (with fleet_key) for a fleet without keys
  const uint8_t* fleet_key;
  const char* broker_host;
  uint16_t broker_port;
  uint32_t sensor_hz;
  uint16_t stride;      // 0: windows side by side
  const char* model;    // compiled model task
  uint16_t classes;     // of the replayed blob
  const char* nvs_path;  // nullptr: Preferences.begin() fails (no NVS)
  bool labels_from_topic;  // --labels topic: the sketch takes its labels from the label topic
  uint32_t outage_at_ms;   // the WiFi goes down this long after start, for outage_ms (0: never)
  uint32_t outage_ms;
};

const Settings& settings();

// The emulated IMU (wire_mpu6050.cpp): the label of the reading it served last, or -1 when it
// serves none (before the first and after the recording). The machine-state pins show it.
int16_t world_label();

// True while the emulated WiFi is down: WiFi.status() is not WL_CONNECTED, open connections break
// and new ones fail.
bool wifi_down();

// Parses the double's command line and loads the recording; exits with status 2 and a message on
// a bad one (core.cpp calls it before setup()).
void load(int argc, char** argv);
// Loads the recording the emulated IMU plays (a raw-window blob of 6 channels); its class count.
// "none": no IMU on the bus (6 classes).
uint16_t load_imu(const char* blob_path);

}  // namespace arduino_double
