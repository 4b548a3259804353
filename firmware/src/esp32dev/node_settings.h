// Settings of an ESP32 node. `tinyfl provision` writes a complete node_settings_local.h per node
// (credentials, the fleet's CA certificate); put it beside this file (it is ignored by git) and it
// is used instead of this one. This template alone does not build on purpose: it has no CA
// certificate, and the node never falls back to plain MQTT on its own.
#pragma once
#define TINYFL_WIFI_SSID "factory-sensors"
#define TINYFL_WIFI_PASSWORD "change-me"
#define TINYFL_BROKER_HOST "broker.lan"  // a name the broker's TLS certificate carries
#define TINYFL_BROKER_PORT 8883          // the TLS listener
// #define TINYFL_BROKER_CA_PEM "-----BEGIN CERTIFICATE-----\n" ... (PEM of the broker's CA)
// Plain MQTT instead, credentials readable on the network: only on purpose, with port 1883.
// #define TINYFL_BROKER_INSECURE 1
#define TINYFL_NODE_ID "esp32-01"
#define TINYFL_TOPIC_PREFIX "tinyfl/default"
// #define TINYFL_MQTT_USERNAME "esp32-01"
// #define TINYFL_MQTT_PASSWORD "..."
// The node's frame key and the fleet key (32 bytes each; tinyfl provision writes them): frames
// are then signed and only GLOBALs that verify are served. Without them frames carry a CRC.
// #define TINYFL_FRAME_KEY {0x.., ...}
// #define TINYFL_FLEET_KEY {0x.., ...}
