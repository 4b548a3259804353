// Test double of the ESP32 WiFi class: the network is this machine's, joined at begin(), down
// during the outage --wifi-outage sets (arduino_double::wifi_down()).
#pragma once
#include <Arduino.h>
#include <WiFiClient.h>

#include "arduino_double.h"

enum wl_status_t { WL_IDLE_STATUS = 0, WL_NO_SSID_AVAIL = 1, WL_CONNECTED = 3, WL_DISCONNECTED = 6 };
enum wifi_mode_t { WIFI_OFF = 0, WIFI_STA = 1 };

class WiFiClass {
 public:
  bool mode(wifi_mode_t) { return true; }
  bool setAutoReconnect(bool) { return true; }
  wl_status_t begin(const char* ssid, const char* password) {
    joined_ = ssid != nullptr && password != nullptr;
    return status();
  }
  bool reconnect();  // logs "double: wifi reconnect" (wifi_client.cpp)
  wl_status_t status() const { return joined_ && !arduino_double::wifi_down() ? WL_CONNECTED : WL_DISCONNECTED; }

 private:
  bool joined_ = false;
};

extern WiFiClass WiFi;
