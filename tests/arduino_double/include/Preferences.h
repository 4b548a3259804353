// Test double of the ESP32 Preferences (NVS) class: every namespace's blobs in one file
// (--nvs FILE), rewritten whole through a rename at each change, so that a killed process leaves
// the old or the new contents, as NVS does.
#pragma once
#include <Arduino.h>

class Preferences {
 public:
  bool begin(const char* name, bool read_only = false);
  void end() { open_ = false; }
  bool isKey(const char* key);
  size_t getBytesLength(const char* key);
  size_t getBytes(const char* key, void* buf, size_t max_len);
  size_t putBytes(const char* key, const void* value, size_t len);
  bool remove(const char* key);

 private:
  bool open_ = false;
  bool read_only_ = false;
  char name_[16] = {};
};
