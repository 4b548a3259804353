// Test double of the ESP32 WiFiClient: a TCP connection of this machine, non-blocking once open.
#pragma once
#include <Arduino.h>

class WiFiClient final : public Stream {
 public:
  ~WiFiClient() override { stop(); }
  // 1 when connected, 0 when not (name not resolved, refused).
  int connect(const char* host, uint16_t port);
  // True while the connection is open or bytes it received are still unread.
  uint8_t connected();
  void stop();
  size_t write(uint8_t b) override { return write(&b, 1); }
  size_t write(const uint8_t* buf, size_t len) override;
  int available() override;
  int read() override;
  int peek() override;

 private:
  void fill();
  int fd_ = -1;
  bool closed_ = true;  // the peer closed or the connection broke
  uint8_t rx_[4096];
  size_t rx_head_ = 0, rx_len_ = 0;
};
