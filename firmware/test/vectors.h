// Reader of the named-array test vector container ("TFTV", testvectors/head/README.md) shared by
// the trainer and quantizer tests.
#pragma once
#include <stdint.h>
#include <string.h>

#include "check.h"

struct Array {
  uint8_t dtype = 0;
  uint8_t ndim = 0;
  uint32_t dims[4] = {};
  uint32_t count = 0;
  const unsigned char* data = nullptr;

  float f32(uint32_t i = 0) const {
    float v;
    memcpy(&v, data + 4u * i, 4);
    return v;
  }
  uint32_t u32(uint32_t i = 0) const {
    uint32_t v;
    memcpy(&v, data + 4u * i, 4);
    return v;
  }
  uint16_t u16(uint32_t i = 0) const { return static_cast<uint16_t>(data[2u * i] | (data[2u * i + 1] << 8)); }
  uint8_t u8(uint32_t i = 0) const { return data[i]; }
  int8_t i8(uint32_t i = 0) const { return static_cast<int8_t>(data[i]); }
};

struct Vectors {
  unsigned char buf[1 << 18];
  long len = -1;

  bool load(const char* rel) {
    len = tinyfl_test::read_file(tinyfl_test::vector_path(rel), buf, sizeof buf);
    return len >= 12 && memcmp(buf, "TFTV", 4) == 0;
  }

  // Finds `name`; fails the test (and returns an empty array) when it is missing.
  Array get(const char* name) const {
    static const uint32_t kSize[] = {0, 1, 1, 2, 4, 4};
    Array a;
    long pos = 12;
    uint32_t count;
    memcpy(&count, buf + 8, 4);
    for (uint32_t e = 0; e < count && pos < len; ++e) {
      const uint8_t n = buf[pos];
      const bool match = strlen(name) == n && memcmp(buf + pos + 1, name, n) == 0;
      pos += 1 + n;
      a.dtype = buf[pos];
      a.ndim = buf[pos + 1];
      pos += 2;
      a.count = 1;
      for (uint8_t i = 0; i < a.ndim; ++i) {
        memcpy(&a.dims[i], buf + pos, 4);
        a.count *= a.dims[i];
        pos += 4;
      }
      a.data = buf + pos;
      pos += static_cast<long>(a.count * kSize[a.dtype <= 5 ? a.dtype : 0]);
      if (match) return a;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "array %s missing from test vector", name);
    tinyfl_test::fail(msg, __FILE__, __LINE__);
    return Array{};
  }
};
