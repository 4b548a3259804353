#include "tinyfl/logline.h"

#include <math.h>

namespace tinyfl {

void LogLine::put(char c) {
  if (len_ + 1 < sizeof buf_) {
    buf_[len_++] = c;
    buf_[len_] = 0;
  }
}

LogLine& LogLine::str(const char* s) {
  while (s != nullptr && *s) put(*s++);
  return *this;
}

LogLine& LogLine::str(const char* s, size_t n) {
  for (size_t i = 0; i < n; ++i) put(s[i]);
  return *this;
}

LogLine& LogLine::hex(const uint8_t* bytes, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    put(kDigits[bytes[i] >> 4]);
    put(kDigits[bytes[i] & 15]);
  }
  return *this;
}

LogLine& LogLine::hex32(uint32_t v) {
  const uint8_t be[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                         static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
  return hex(be, 4);
}

LogLine& LogLine::u32(uint32_t v) {
  char digits[10];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) put(digits[--n]);
  return *this;
}

LogLine& LogLine::i32(int32_t v) {
  if (v < 0) {
    put('-');
    return u32(0u - static_cast<uint32_t>(v));
  }
  return u32(static_cast<uint32_t>(v));
}

LogLine& LogLine::f32(float v, unsigned decimals) {
  if (isnan(v)) return str("nan");
  if (isinf(v)) return str(v < 0 ? "-inf" : "inf");
  if (decimals > 6) decimals = 6;
  if (v < 0) {
    put('-');
    v = -v;
  }
  if (v >= 4e9f) return str("big");
  uint32_t scale = 1;
  for (unsigned i = 0; i < decimals; ++i) scale *= 10;
  const uint32_t whole = static_cast<uint32_t>(v);
  uint32_t frac = static_cast<uint32_t>((v - static_cast<float>(whole)) * static_cast<float>(scale) + 0.5f);
  uint32_t carry = 0;
  if (frac >= scale) {
    frac -= scale;
    carry = 1;
  }
  u32(whole + carry);
  if (decimals == 0) return *this;
  put('.');
  for (uint32_t div = scale / 10; div > 0; div /= 10) put(static_cast<char>('0' + (frac / div) % 10));
  return *this;
}

}  // namespace tinyfl
