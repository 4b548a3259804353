// A board's NodeSettings from its settings header (`tinyfl provision` writes node_settings_local.h
// per node: id, prefix, MQTT account, frame and fleet keys) and the application's sensor settings,
// with defaults for what the header leaves out. Include it after the settings header: the macros
// are read in the sketch's translation unit. What the header does not define stays unset (an
// open broker, CRC frames).
#pragma once
#include "sensor_node.h"
#include "tinyfl/node.h"

// The application: which compiled model, how many labels, and the sensor's rate and window step.
#ifndef TINYFL_MODEL
#define TINYFL_MODEL "har"
#endif
#ifndef TINYFL_CLASSES
#define TINYFL_CLASSES 6
#endif
#ifndef TINYFL_SENSOR_HZ
#define TINYFL_SENSOR_HZ 50  // the rate the model was trained at
#endif
#ifndef TINYFL_WINDOW_STRIDE
#define TINYFL_WINDOW_STRIDE 64  // half a HAR window: windows overlap by half, as in training
#endif
// At least this many seconds between two saves of the node's state (0: after every round served);
// a board whose state flash has no wear levelling sets it (docs/PORTING.md, "Persisted state").
// 1: the readings' labels come from the operator's label topic (`tinyfl label`) instead of the
// machine-state pins.
#ifndef TINYFL_LABELS_FROM_TOPIC
#define TINYFL_LABELS_FROM_TOPIC 0
#endif
#ifndef TINYFL_STATE_SAVE_INTERVAL_S
#define TINYFL_STATE_SAVE_INTERVAL_S 0
#endif

namespace port_arduino {

inline void apply_provisioned_settings(tinyfl::NodeConfig& config) {
#ifdef TINYFL_MQTT_USERNAME
  config.username = TINYFL_MQTT_USERNAME;
#endif
#ifdef TINYFL_MQTT_PASSWORD
  config.password = TINYFL_MQTT_PASSWORD;
#endif
#if defined(TINYFL_FRAME_KEY) && defined(TINYFL_FLEET_KEY)
  static const uint8_t frame_key[32] = TINYFL_FRAME_KEY;
  static const uint8_t fleet_key[32] = TINYFL_FLEET_KEY;
  config.frame_key = frame_key;
  config.fleet_key = fleet_key;
#elif defined(TINYFL_FRAME_KEY_BYTES) && defined(TINYFL_FLEET_KEY_BYTES)
  // Keys the board reads at run time (a secure element, an encrypted partition; the Arduino test
  // double's command line): pointers to 32 bytes each, or both null for a fleet without keys.
  config.frame_key = TINYFL_FRAME_KEY_BYTES;
  config.fleet_key = TINYFL_FLEET_KEY_BYTES;
#endif
  (void)config;
}

// Everything SensorNode::begin needs from the settings header, for this board.
inline NodeSettings sketch_settings(tinyfl::Board board) {
  NodeSettings settings{};
  settings.node.node_id = TINYFL_NODE_ID;
  settings.node.topic_prefix = TINYFL_TOPIC_PREFIX;
  settings.node.board = board;
  apply_provisioned_settings(settings.node);  // the account (a provisioned broker refuses
                                              // anonymous clients) and keys
  settings.model = TINYFL_MODEL;
  settings.classes = TINYFL_CLASSES;
  settings.rate_hz = TINYFL_SENSOR_HZ;
  settings.stride = TINYFL_WINDOW_STRIDE;
  settings.save_interval_s = TINYFL_STATE_SAVE_INTERVAL_S;
  return settings;
}

}  // namespace port_arduino
