// Stand-in declarations of the ESP32 core's WiFiClientSecure, as the esp32dev main calls it: for
// compile checks of its TLS path only (tests/unit/test_arduino_sketches.py). Nothing here runs.
#pragma once
#include <Arduino.h>

class WiFiClientSecure final : public Stream {
 public:
  void setCACert(const char* root_ca);
  int connect(const char* host, uint16_t port);
  uint8_t connected();
  void stop();
  size_t write(uint8_t b) override;
  size_t write(const uint8_t* buf, size_t len) override;
  int available() override;
  int read() override;
  int peek() override;
};
