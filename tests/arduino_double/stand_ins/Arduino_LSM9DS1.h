// Stand-in declarations of the Arduino_LSM9DS1 library (its documented API: begin, readAcceleration
// in g, readGyroscope in degrees per second), as the Nano 33 BLE's example sensor calls it: for
// compile checks only (tests/unit/test_arduino_sketches.py). Nothing here runs.
#pragma once

class LSM9DS1Class {
 public:
  int begin();
  int readAcceleration(float& x, float& y, float& z);
  int readGyroscope(float& x, float& y, float& z);
};

extern LSM9DS1Class IMU;
