// Bounds-checked little-endian cursors over caller-owned bytes.
//
// Reader: every read checks the remaining length first and latches the first failure, so a decoder
// can read a whole structure and check `status()` once. Writer: with a null buffer it only counts
// bytes (the size-only pass); otherwise it refuses to write past the end and latches BufferFull.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tinyfl/status.h"

namespace tinyfl {

class Reader {
 public:
  Reader(const uint8_t* data, size_t len) : data_(data), len_(len) {}

  uint8_t u8() { return static_cast<uint8_t>(take(1) ? data_[pos_ - 1] : 0); }
  uint16_t u16() {
    if (!take(2)) return 0;
    const uint8_t* p = data_ + pos_ - 2;
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
  }
  uint32_t u32() {
    if (!take(4)) return 0;
    const uint8_t* p = data_ + pos_ - 4;
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
           (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  }
  float f32() {
    uint32_t bits = u32();
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  // Returns a pointer into the input for `n` bytes, or null (and a latched error) if absent.
  const uint8_t* bytes(size_t n) { return take(n) ? data_ + pos_ - n : nullptr; }
  void fail(Status s) {
    if (status_ == Status::Ok) status_ = s;
  }

  Status status() const { return status_; }
  bool ok() const { return status_ == Status::Ok; }
  size_t position() const { return pos_; }
  size_t remaining() const { return len_ - pos_; }

 private:
  bool take(size_t n) {
    if (status_ != Status::Ok) return false;
    if (n > len_ - pos_) {
      status_ = Status::Truncated;
      return false;
    }
    pos_ += n;
    return true;
  }

  const uint8_t* data_;
  size_t len_;
  size_t pos_ = 0;
  Status status_ = Status::Ok;
};

class Writer {
 public:
  // buf == nullptr: size-only pass, counts bytes and never fails.
  Writer(uint8_t* buf, size_t cap) : buf_(buf), cap_(cap) {}

  void u8(uint8_t v) { put(&v, 1); }
  void u16(uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
    put(b, 2);
  }
  void u32(uint32_t v) {
    const uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                          static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
    put(b, 4);
  }
  void f32(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    u32(bits);
  }
  void bytes(const uint8_t* p, size_t n) { put(p, n); }
  // Pointer to `n` writable bytes at the cursor (null in size-only mode or when full).
  uint8_t* reserve(size_t n) {
    uint8_t* p = (buf_ != nullptr && status_ == Status::Ok && n <= cap_ - pos_) ? buf_ + pos_ : nullptr;
    advance(n);
    return p;
  }
  // Overwrites 4 bytes at an earlier offset (for lengths known only at the end).
  void patch_u32(size_t at, uint32_t v) {
    if (buf_ == nullptr || status_ != Status::Ok || at + 4 > pos_) return;
    for (int i = 0; i < 4; ++i) buf_[at + i] = static_cast<uint8_t>(v >> (8 * i));
  }

  Status status() const { return status_; }
  bool ok() const { return status_ == Status::Ok; }
  size_t size() const { return pos_; }
  uint8_t* data() const { return buf_; }

 private:
  void put(const uint8_t* p, size_t n) {
    uint8_t* dst = reserve(n);
    if (dst != nullptr && n > 0) memcpy(dst, p, n);  // memcpy from null is undefined even for 0
  }
  void advance(size_t n) {
    if (buf_ != nullptr && (status_ != Status::Ok || n > cap_ - pos_)) {
      status_ = Status::BufferFull;
      return;
    }
    pos_ += n;
  }

  uint8_t* buf_;
  size_t cap_;
  size_t pos_ = 0;
  Status status_ = Status::Ok;
};

}  // namespace tinyfl
