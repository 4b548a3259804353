// An InvenSense MPU-6050 (accelerometer and gyroscope, I2C) as the node's sensor: application code,
// an example of port_arduino::Sensor. Readings in the HAR model's units and channel order:
// acceleration x, y, z in g (gravity included), then angular rate x, y, z in rad/s.
//
// Register map and scales from the MPU-6000/MPU-6050 Register Map and Descriptions (RM-MPU-6000A,
// revision 4.2): ±4 g is 8192 counts per g, ±250 °/s is 131 counts per °/s; both ranges hold
// what the HAR model's input can represent (about ±1.95 in either unit).
#pragma once
#include <Arduino.h>
#include <Wire.h>

#include "sensor_node.h"

class Mpu6050Sensor final : public port_arduino::Sensor {
 public:
  explicit Mpu6050Sensor(TwoWire& wire, uint8_t address = 0x68) : wire_(wire), address_(address) {}

  bool begin() override {
    uint8_t who = 0;
    if (!read_registers(kWhoAmI, &who, 1) || (who & 0x7E) != 0x68) return false;
    return write_register(kPwrMgmt1, 0x01)        // awake, clocked from the X gyro's PLL
           && write_register(kConfig, 0x03)       // 44 Hz low-pass: below the 50 Hz reading rate's Nyquist
           && write_register(kSmplrtDiv, 19)      // 1 kHz / (1 + 19) = 50 samples per second
           && write_register(kGyroConfig, 0x00)   // ±250 °/s
           && write_register(kAccelConfig, 0x08);  // ±4 g
  }

  uint16_t channels() const override { return 6; }

  bool read(float* values) override {
    uint8_t raw[14];  // ACCEL_XOUT_H .. GYRO_ZOUT_L: 3 accel, temperature, 3 gyro, big-endian
    if (!read_registers(kAccelXoutH, raw, sizeof raw)) return false;
    for (int i = 0; i < 3; ++i) {
      values[i] = static_cast<float>(be16(raw + 2 * i)) / kCountsPerG;
      values[3 + i] = static_cast<float>(be16(raw + 8 + 2 * i)) / kCountsPerRadS;
    }
    return true;
  }

  const char* name() const override { return "MPU-6050"; }

 private:
  static constexpr uint8_t kSmplrtDiv = 0x19, kConfig = 0x1A, kGyroConfig = 0x1B, kAccelConfig = 0x1C;
  static constexpr uint8_t kAccelXoutH = 0x3B, kPwrMgmt1 = 0x6B, kWhoAmI = 0x75;
  static constexpr float kCountsPerG = 8192.0f;
  static constexpr float kCountsPerRadS = 131.0f * 57.29577951308232f;  // 131 per °/s, 180/pi °/rad

  static int16_t be16(const uint8_t* p) { return static_cast<int16_t>(static_cast<uint16_t>(p[0] << 8 | p[1])); }

  bool write_register(uint8_t reg, uint8_t value) {
    wire_.beginTransmission(address_);
    wire_.write(reg);
    wire_.write(value);
    return wire_.endTransmission() == 0;
  }

  bool read_registers(uint8_t reg, uint8_t* dst, size_t len) {
    wire_.beginTransmission(address_);
    wire_.write(reg);
    if (wire_.endTransmission(false) != 0) return false;  // repeated start: the read follows
    if (wire_.requestFrom(address_, static_cast<uint8_t>(len)) != len) return false;
    for (size_t i = 0; i < len; ++i) {
      const int b = wire_.read();
      if (b < 0) return false;
      dst[i] = static_cast<uint8_t>(b);
    }
    return true;
  }

  TwoWire& wire_;
  uint8_t address_;
};
