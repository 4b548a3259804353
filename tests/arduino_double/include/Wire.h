// Test double of the Arduino Wire (I2C) class with one device on the bus: an emulated MPU-6050 at
// 0x68 whose readings come from a recording (--imu BLOB; wire_mpu6050.cpp).
#pragma once
#include <Arduino.h>

class TwoWire {
 public:
  bool begin(int sda = -1, int scl = -1) {
    (void)sda;
    (void)scl;
    return true;
  }
  bool setClock(uint32_t) { return true; }
  void beginTransmission(uint8_t address);
  size_t write(uint8_t b);
  // 0: acknowledged; 2: no device at the address (as the ESP32 core).
  uint8_t endTransmission(bool send_stop = true);
  uint8_t requestFrom(uint8_t address, uint8_t len);
  int available() { return static_cast<int>(rx_len_ - rx_head_); }
  int read() { return rx_head_ < rx_len_ ? rx_[rx_head_++] : -1; }

 private:
  uint8_t address_ = 0;
  uint8_t tx_[32];
  size_t tx_len_ = 0;
  uint8_t rx_[32];
  size_t rx_head_ = 0, rx_len_ = 0;
};

extern TwoWire Wire;
