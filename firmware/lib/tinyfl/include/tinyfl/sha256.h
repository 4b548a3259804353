// SHA-256 (FIPS 180-4, section 6.2), incremental and one-shot, plus a wipe the compiler keeps.
//
// The hash under HMAC-SHA256 frame tags and HKDF mask expansion (hmac.h, hkdf.h; docs/CRYPTO.md).
// Written for small code on Cortex-M (one rolled 64-round loop, a 16-word message schedule ring)
// and for constant time: the compression has no branch and no table index that depends on the
// data; only the message length (public) steers update() and final(). No heap, no I/O.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace tinyfl {

constexpr size_t kSha256BlockLen = 64;   // bytes per compression (also HMAC's block size B)
constexpr size_t kSha256DigestLen = 32;  // bytes of a digest

// Sets `len` bytes at `p` to zero with memset called through a volatile function pointer, so the
// stores are not elided even when the buffer is dead afterwards (keys, pads, midstates on the
// stack).
void secure_wipe(void* p, size_t len);

class HmacSha256;

class Sha256 {
 public:
  Sha256() { init(); }
  // Starts a new message (the initial hash value H(0) of FIPS 180-4 section 5.3.3).
  void init();
  // Absorbs `len` bytes; `data` may be null when len is 0. Any split gives the same digest.
  void update(const uint8_t* data, size_t len);
  // Pads, writes the 32-byte digest and wipes the context (init() before reusing it).
  void final(uint8_t out[kSha256DigestLen]);
  // Zeroes the whole context (state, buffered bytes, length).
  void wipe() { secure_wipe(this, sizeof *this); }

 private:
  friend class HmacSha256;  // resumes from a keyed midstate (hmac.cpp)

  uint32_t h_[8];
  uint8_t buf_[kSha256BlockLen];
  uint64_t bytes_;  // message length so far; bytes_ % 64 of them wait in buf_
};

// SHA-256 of `len` bytes in one call.
void sha256(const uint8_t* data, size_t len, uint8_t out[kSha256DigestLen]);

}  // namespace tinyfl
