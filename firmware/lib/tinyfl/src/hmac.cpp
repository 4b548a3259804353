// HMAC (RFC 2104, section 2): H(K ^ opad || H(K ^ ipad || text)), with K the key padded with zeros
// to the 64-byte block (or the SHA-256 of the key when it is longer than the block).
#include "tinyfl/hmac.h"

#include <string.h>

namespace tinyfl {

namespace {

constexpr uint8_t kIpad = 0x36;
constexpr uint8_t kOpad = 0x5c;

}  // namespace

void HmacSha256::init(const uint8_t* key, size_t key_len) {
  uint8_t block[kSha256BlockLen];
  memset(block, 0, sizeof block);
  if (key_len > kSha256BlockLen) {
    sha256(key, key_len, block);
  } else if (key_len > 0) {
    memcpy(block, key, key_len);
  }
  Sha256 ctx;
  for (uint8_t& b : block) b ^= kIpad;
  ctx.update(block, sizeof block);
  memcpy(inner_key_, ctx.h_, sizeof inner_key_);
  ctx.init();
  for (uint8_t& b : block) b ^= kIpad ^ kOpad;
  ctx.update(block, sizeof block);
  memcpy(outer_key_, ctx.h_, sizeof outer_key_);
  ctx.wipe();
  secure_wipe(block, sizeof block);
  reset();
}

void HmacSha256::reset() {
  memcpy(inner_.h_, inner_key_, sizeof inner_key_);
  inner_.bytes_ = kSha256BlockLen;
}

void HmacSha256::update(const uint8_t* data, size_t len) { inner_.update(data, len); }

void HmacSha256::final(uint8_t out[kHmacSha256Len]) {
  uint8_t inner_digest[kSha256DigestLen];
  inner_.final(inner_digest);
  memcpy(inner_.h_, outer_key_, sizeof outer_key_);
  inner_.bytes_ = kSha256BlockLen;
  inner_.update(inner_digest, sizeof inner_digest);
  inner_.final(out);
  secure_wipe(inner_digest, sizeof inner_digest);
  reset();
}

void hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len,
                 uint8_t out[kHmacSha256Len]) {
  HmacSha256 mac;
  mac.init(key, key_len);
  mac.update(data, len);
  mac.final(out);
  mac.wipe();
}

bool tag_equal(const uint8_t* a, const uint8_t* b, size_t len) {
  // The accumulator is volatile so the compiler cannot turn the loop into one that stops at the
  // first difference.
  volatile uint8_t diff = 0;
  for (size_t i = 0; i < len; ++i) diff = static_cast<uint8_t>(diff | (a[i] ^ b[i]));
  return len != 0 && diff == 0;
}

}  // namespace tinyfl
