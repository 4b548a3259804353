// HMAC-SHA256 (RFC 2104 with SHA-256, test cases in RFC 4231) and a constant-time tag comparison.
//
// Frames will carry a truncated HMAC tag under a per-node key (the coordinator's GLOBAL under the
// fleet key); docs/CRYPTO.md. The context keeps the two keyed midstates (the hash state after the
// ipad and after the opad block), so one key serves many messages at two compressions of set-up
// in total and none per message beyond the message itself; those midstates are key material:
// wipe() the context when done. Keys of any length; a key longer than 64 bytes is hashed first.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/sha256.h"

namespace tinyfl {

constexpr size_t kHmacSha256Len = kSha256DigestLen;  // bytes of a full tag

class HmacSha256 {
 public:
  // Loads a key (`key` may be null when key_len is 0) and starts the first message.
  void init(const uint8_t* key, size_t key_len);
  // Starts another message under the key already loaded.
  void reset();
  void update(const uint8_t* data, size_t len);
  // Writes the 32-byte tag of the message and starts the next one under the same key (reset()).
  // Truncated tags (RFC 2104 section 5) are the leading bytes of `out`.
  void final(uint8_t out[kHmacSha256Len]);
  // Zeroes the keyed midstates and the running hash: the key cannot be recovered from the context.
  void wipe() { secure_wipe(this, sizeof *this); }

 private:
  // Zero until init(): a context used without a key computes garbage, never reads stale memory.
  uint32_t inner_key_[8] = {};  // SHA-256 state after (K xor ipad)
  uint32_t outer_key_[8] = {};  // SHA-256 state after (K xor opad)
  Sha256 inner_;                // the running inner hash of the current message
};

// HMAC-SHA256 of one message under one key; leaves no key material on the stack.
void hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len,
                 uint8_t out[kHmacSha256Len]);

// True when the first `len` bytes of `a` and `b` are equal. It reads every byte whatever the
// contents (no early exit), so its time tells an attacker nothing about how many leading bytes of
// a forged tag were right. False when len is 0: an empty tag authenticates nothing.
bool tag_equal(const uint8_t* a, const uint8_t* b, size_t len);

}  // namespace tinyfl
