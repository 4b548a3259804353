// The Nano 33 BLE's on-board LSM9DS1 (through the Arduino_LSM9DS1 library) as the node's sensor:
// application code, an example of port_arduino::Sensor. Readings in the HAR model's units and
// channel order: acceleration x, y, z in g, then angular rate x, y, z in rad/s (the library reads
// degrees per second). The library samples at 119 Hz; a read takes the latest sample. The axes are
// the board's: a model trained on another device's axes needs the board mounted to match.
#pragma once
#include <Arduino.h>
#include <Arduino_LSM9DS1.h>

#include "sensor_node.h"

class Lsm9ds1Sensor final : public port_arduino::Sensor {
 public:
  bool begin() override { return IMU.begin() == 1; }
  uint16_t channels() const override { return 6; }

  bool read(float* values) override {
    float gx = 0, gy = 0, gz = 0;
    if (IMU.readAcceleration(values[0], values[1], values[2]) != 1) return false;
    if (IMU.readGyroscope(gx, gy, gz) != 1) return false;
    values[3] = gx * kRadPerDegree;
    values[4] = gy * kRadPerDegree;
    values[5] = gz * kRadPerDegree;
    return true;
  }

  const char* name() const override { return "LSM9DS1"; }

 private:
  static constexpr float kRadPerDegree = 0.017453292519943295f;
};
