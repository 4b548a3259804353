#include "port_arduino.h"

namespace port_arduino {

int32_t ArduinoPort::pipe_read(uint8_t* buf, size_t cap) {
  if (!opener_.is_open()) return -1;
  size_t n = 0;
  while (n < cap && pipe_.available() > 0) {
    const int c = pipe_.read();
    if (c < 0) break;
    buf[n++] = static_cast<uint8_t>(c);
  }
  return static_cast<int32_t>(n);
}

int32_t ArduinoPort::pipe_write(const uint8_t* buf, size_t len) {
  if (!opener_.is_open()) return -1;
  return static_cast<int32_t>(pipe_.write(buf, len));
}

void ArduinoPort::wait(uint32_t max_ms) {
  // Arduino cores have no portable "sleep until a byte arrives"; yield in short steps instead.
  const uint32_t start = ::millis();
  while (pipe_.available() == 0 && ::millis() - start < max_ms) delay(1);
}

uint32_t ArduinoPort::entropy() {
#if defined(ARDUINO_ARCH_ESP32)
  return esp_random();
#else
  return static_cast<uint32_t>(micros()) * 2654435761u ^ static_cast<uint32_t>(analogRead(A0));
#endif
}

void ArduinoPort::log(const char* line) {
  log_.print(::millis());
  log_.print(' ');
  log_.println(line);
}

}  // namespace port_arduino
