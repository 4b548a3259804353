// The double's process: main() parses the double's command line, then runs the sketch's setup()
// once and loop() forever, as an Arduino core does. Time, pins, Serial and entropy live here.
#include <Arduino.h>
#include <WiFi.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "arduino_double.h"

void setup();
void loop();

HardwareSerial Serial;
HardwareSerial Serial1;
WiFiClass WiFi;

namespace {

uint64_t now_us() {
  static timespec start{};
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  if (start.tv_sec == 0 && start.tv_nsec == 0) start = t;
  return static_cast<uint64_t>(t.tv_sec - start.tv_sec) * 1000000u +
         static_cast<uint64_t>((t.tv_nsec - start.tv_nsec) / 1000);
}

uint8_t pin_modes[64];
uint8_t pin_levels[64];
uint8_t label_pins[8];
uint8_t label_pin_count = 0;

}  // namespace

namespace arduino_double {

// --label-pins 25,26,27: the pins that show the world's label, first pin the least significant bit.
bool parse_label_pins(const char* list) {
  label_pin_count = 0;
  for (const char* p = list; *p != 0;) {
    char* end = nullptr;
    const long pin = strtol(p, &end, 10);
    if (end == p || pin < 0 || pin >= 64 || label_pin_count == sizeof label_pins) return false;
    label_pins[label_pin_count++] = static_cast<uint8_t>(pin);
    p = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end != 0) return false;
  }
  return label_pin_count > 0;
}

}  // namespace arduino_double

uint32_t millis() { return static_cast<uint32_t>(now_us() / 1000u); }
uint32_t micros() { return static_cast<uint32_t>(now_us()); }

void delay(uint32_t ms) {
  const timespec t{static_cast<time_t>(ms / 1000u), static_cast<long>(ms % 1000u) * 1000000L};
  nanosleep(&t, nullptr);
}

void pinMode(uint8_t pin, uint8_t mode) {
  if (pin < sizeof pin_modes) pin_modes[pin] = mode;
}

void digitalWrite(uint8_t pin, uint8_t value) {
  if (pin >= sizeof pin_levels || pin_levels[pin] == value) return;
  pin_levels[pin] = value;
  if (pin_modes[pin] != OUTPUT) return;
  printf("double: pin %u %s\n", pin, value == HIGH ? "high" : "low");
  fflush(stdout);
}

int digitalRead(uint8_t pin) {
  // A machine-state pin shows its bit of the world's label; no label (or no world) reads as all
  // high, as pulled-up inputs with nothing connected.
  const int16_t label = arduino_double::world_label();
  for (uint8_t i = 0; i < label_pin_count; ++i)
    if (label_pins[i] == pin) return label < 0 || ((label >> i) & 1) != 0 ? HIGH : LOW;
  return pin < sizeof pin_modes && pin_modes[pin] == INPUT_PULLUP ? HIGH : LOW;
}

int analogRead(uint8_t) { return 0; }

bool arduino_double::wifi_down() {
  const Settings& s = settings();
  const uint32_t now = millis();
  return s.outage_ms != 0 && now >= s.outage_at_ms && now - s.outage_at_ms < s.outage_ms;
}

uint32_t esp_random() {
  uint32_t v = 0;
  const int fd = open("/dev/urandom", O_RDONLY);
  if (fd < 0 || read(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) abort();
  close(fd);
  return v;
}

size_t Print::print(unsigned long v) {
  char buf[24];
  return print((snprintf(buf, sizeof buf, "%lu", v), buf));
}

size_t Print::print(long v) {
  char buf[24];
  return print((snprintf(buf, sizeof buf, "%ld", v), buf));
}

size_t HardwareSerial::write(uint8_t b) { return write(&b, 1); }

size_t HardwareSerial::write(const uint8_t* buf, size_t len) {
  const size_t n = fwrite(buf, 1, len, stdout);
  if (len > 0 && buf[len - 1] == '\n') fflush(stdout);
  return n;
}

int main(int argc, char** argv) {
  arduino_double::load(argc, argv);
  setup();
  for (;;) loop();
}
