// TinyFL port for Arduino boards. The byte pipe is any Arduino `Stream`: a WiFiClient connected to
// the broker (ESP32) or the USB serial line bridged to the broker by `tinyfl bridge` (Nano 33 BLE).
// The same shape as the tested native and QEMU ports; it cannot be built or run on machines without
// PlatformIO's registry (see docs/PORTING.md).
#pragma once
#include <Arduino.h>

#include "tinyfl/port.h"

namespace port_arduino {

// How the pipe is (re)opened: a TCP connect for WiFi boards, nothing for a serial line.
class PipeOpener {
 public:
  virtual bool open() = 0;
  virtual void close() = 0;
  virtual bool is_open() = 0;

 protected:
  ~PipeOpener() = default;
};

class ArduinoPort final : public tinyfl::Port {
 public:
  ArduinoPort(Stream& pipe, PipeOpener& opener, Print& log) : pipe_(pipe), opener_(opener), log_(log) {}
  uint32_t millis() override { return ::millis(); }
  bool pipe_open() override { return opener_.open(); }
  void pipe_close() override { opener_.close(); }
  int32_t pipe_read(uint8_t* buf, size_t cap) override;
  int32_t pipe_write(const uint8_t* buf, size_t len) override;
  void wait(uint32_t max_ms) override;
  uint32_t entropy() override;
  void log(const char* line) override;

 private:
  Stream& pipe_;
  PipeOpener& opener_;
  Print& log_;
};

}  // namespace port_arduino
