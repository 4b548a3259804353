// The esp32dev main's settings under the Arduino test double: from the double's command line (a
// node config record written by `tinyfl fleet`), so one build serves every node of a fleet. Plain
// MQTT: the double has no TLS client (WiFiClientSecure), so the main's TLS path is not built here.
#pragma once
#include "arduino_double.h"

#define TINYFL_WIFI_SSID "double-network"
#define TINYFL_WIFI_PASSWORD "double-network-password"
#define TINYFL_BROKER_HOST (arduino_double::settings().broker_host)
#define TINYFL_BROKER_PORT (arduino_double::settings().broker_port)
#define TINYFL_BROKER_INSECURE 1
#define TINYFL_NODE_ID (arduino_double::settings().node_id)
#define TINYFL_TOPIC_PREFIX (arduino_double::settings().topic_prefix)
#define TINYFL_MQTT_USERNAME (arduino_double::settings().username)
#define TINYFL_MQTT_PASSWORD (arduino_double::settings().password)
#define TINYFL_FRAME_KEY_BYTES (arduino_double::settings().frame_key)
#define TINYFL_FLEET_KEY_BYTES (arduino_double::settings().fleet_key)
#define TINYFL_MODEL (arduino_double::settings().model)
#define TINYFL_CLASSES (arduino_double::settings().classes)
#define TINYFL_SENSOR_HZ (arduino_double::settings().sensor_hz)
#define TINYFL_WINDOW_STRIDE (arduino_double::settings().stride)
#define TINYFL_LABELS_FROM_TOPIC (arduino_double::settings().labels_from_topic)
