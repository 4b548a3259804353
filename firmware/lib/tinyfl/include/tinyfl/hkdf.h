// HKDF with HMAC-SHA256 (RFC 5869): Extract derives a key from input keying material, Expand is
// the keyed PRG that turns a 32-byte seed and an info string into any number of bytes.
//
// Why this PRG: secure aggregation masks come from per-pair seeds, and both ends (the node here,
// the host with Python's hmac/hashlib) must expand a seed to the same bytes. HKDF-Expand is
// HMAC-SHA256 in feedback-counter mode, T(i) = HMAC(PRK, T(i-1) || info || i), standardised, with
// published vectors and a few lines on the host; it needs no cipher beyond the HMAC the frames
// already use. The info string binds the stream to its use (e.g. round id and both peer ids), so
// one seed never yields the same bytes for two rounds or two pairs.
//
// HkdfExpand hands out the stream in pieces of any size (a node can mask its head parameter by
// parameter from a 32-byte block buffer); read(a) then read(b) gives the same bytes as one
// read(a + b). RFC 5869 caps the output at 255 blocks (8160 bytes) per (PRK, info); longer masks
// take several info strings (e.g. with a chunk index).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/hmac.h"
#include "tinyfl/status.h"

namespace tinyfl {

constexpr size_t kHkdfMaxOutput = 255 * kHmacSha256Len;  // RFC 5869, section 2.3: L <= 255 HashLen

// HKDF-Extract (RFC 5869, section 2.2): prk = HMAC-SHA256(salt, ikm). No salt (null or length 0)
// means 32 zero bytes, as the RFC says.
void hkdf_extract(const uint8_t* salt, size_t salt_len, const uint8_t* ikm, size_t ikm_len,
                  uint8_t prk[kHmacSha256Len]);

// HKDF-Expand (RFC 5869, section 2.3) as a stream.
class HkdfExpand {
 public:
  // Keys the stream with `prk` (normally 32 bytes: a seed or hkdf_extract's output) and `info`.
  // The context keeps a pointer to `info`, not a copy: the caller's bytes must stay valid and
  // unchanged until the last read(). BadLength when prk_len is below 32 (RFC 5869 wants at least
  // HashLen bytes); `info` may be null when info_len is 0.
  TINYFL_NODISCARD Status init(const uint8_t* prk, size_t prk_len, const uint8_t* info,
                               size_t info_len);
  // Writes the next `len` bytes of the output. TooLarge (and nothing written) when they would go
  // past kHkdfMaxOutput bytes in total; BadValue before a successful init().
  TINYFL_NODISCARD Status read(uint8_t* out, size_t len);
  // Output bytes still available.
  size_t remaining() const { return produced_ <= kHkdfMaxOutput ? kHkdfMaxOutput - produced_ : 0; }
  // Zeroes the keyed HMAC and the current output block.
  void wipe() { secure_wipe(this, sizeof *this); }

 private:
  void next_block();

  HmacSha256 mac_;
  uint8_t block_[kHmacSha256Len];  // T(counter_)
  const uint8_t* info_ = nullptr;
  size_t info_len_ = 0;
  size_t produced_ = 0;  // output bytes handed out so far
  uint8_t counter_ = 0;  // i of the block in block_ (0: none yet)
  bool ready_ = false;   // set by a successful init(), cleared by wipe()
};

// HKDF-Expand in one call: `len` bytes (at most kHkdfMaxOutput) into `out`.
TINYFL_NODISCARD Status hkdf_expand(const uint8_t* prk, size_t prk_len, const uint8_t* info,
                                    size_t info_len, uint8_t* out, size_t len);

}  // namespace tinyfl
