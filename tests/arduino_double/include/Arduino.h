// Test double of the Arduino core API, as much of it as TinyFL's Arduino port and mains use, for a
// Linux process (tests/arduino_double/library.json). Serial writes to stdout.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HIGH 0x1
#define LOW 0x0
#define INPUT 0x01
#define OUTPUT 0x03
#define INPUT_PULLUP 0x05
#define LED_BUILTIN 2
#define A0 36

uint32_t millis();
uint32_t micros();
void delay(uint32_t ms);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
int digitalRead(uint8_t pin);
int analogRead(uint8_t pin);
uint32_t esp_random();

class Print {
 public:
  virtual ~Print() = default;
  virtual size_t write(uint8_t b) = 0;
  virtual size_t write(const uint8_t* buf, size_t len) {
    size_t n = 0;
    while (n < len && write(buf[n]) == 1) ++n;
    return n;
  }
  size_t print(const char* s) { return write(reinterpret_cast<const uint8_t*>(s), strlen(s)); }
  size_t print(char c) { return write(static_cast<uint8_t>(c)); }
  size_t print(unsigned long v);
  size_t print(unsigned int v) { return print(static_cast<unsigned long>(v)); }
  size_t print(long v);
  size_t print(int v) { return print(static_cast<long>(v)); }
  size_t println() { return print("\n"); }
  template <class T>
  size_t println(T v) {
    const size_t n = print(v);
    return n + println();
  }
};

class Stream : public Print {
 public:
  virtual int available() = 0;
  virtual int read() = 0;
  virtual int peek() = 0;
};

// Serial: the log (stdout); reads nothing.
class HardwareSerial final : public Stream {
 public:
  void begin(unsigned long) {}
  size_t write(uint8_t b) override;
  size_t write(const uint8_t* buf, size_t len) override;
  int available() override { return 0; }
  int read() override { return -1; }
  int peek() override { return -1; }
  explicit operator bool() const { return true; }
};

extern HardwareSerial Serial;
extern HardwareSerial Serial1;
