// Builds one log line in a fixed buffer without printf (newlib's printf pulls in malloc on bare
// metal). Output past the buffer is cut, never overflowed.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace tinyfl {

class LogLine {
 public:
  LogLine& str(const char* s);
  LogLine& str(const char* s, size_t n);
  LogLine& u32(uint32_t v);
  LogLine& i32(int32_t v);
  // Lower-case hex, two digits per byte, in the order given (hashes, CRCs as bytes).
  LogLine& hex(const uint8_t* bytes, size_t n);
  // 8 hex digits, most significant first (a CRC32 as zlib prints it).
  LogLine& hex32(uint32_t v);
  // Fixed-point with `decimals` digits (0..6); NaN and Inf print as "nan"/"inf".
  LogLine& f32(float v, unsigned decimals = 4);
  const char* c_str() const { return buf_; }
  size_t size() const { return len_; }

 private:
  void put(char c);
  char buf_[160] = {};
  size_t len_ = 0;
};

}  // namespace tinyfl
