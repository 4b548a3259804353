// Settings of an ESP32 node. Copy to node_settings_local.h (ignored by git) to keep real secrets
// out of the repository; it is used instead of this file when present.
#pragma once
#define TINYFL_WIFI_SSID "factory-sensors"
#define TINYFL_WIFI_PASSWORD "change-me"
#define TINYFL_BROKER_HOST "192.168.1.10"
#define TINYFL_BROKER_PORT 1883
#define TINYFL_NODE_ID "esp32-01"
#define TINYFL_TOPIC_PREFIX "tinyfl/default"
