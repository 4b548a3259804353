// The provisioned parts of a board's settings header (`tinyfl provision` writes
// node_settings_local.h per node): the MQTT account and the frame and fleet keys. Include it after
// the settings header; what the header does not define stays unset (an open broker, CRC frames).
#pragma once
#include "tinyfl/node.h"

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
#endif
  (void)config;
}

}  // namespace port_arduino
