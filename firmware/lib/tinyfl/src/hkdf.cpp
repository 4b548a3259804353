// HKDF-Extract and HKDF-Expand (RFC 5869, sections 2.2 and 2.3) over HMAC-SHA256 (hmac.h).
#include "tinyfl/hkdf.h"

#include <string.h>

namespace tinyfl {

void hkdf_extract(const uint8_t* salt, size_t salt_len, const uint8_t* ikm, size_t ikm_len,
                  uint8_t prk[kHmacSha256Len]) {
  // A key shorter than the block is zero-padded by HMAC, so HashLen zero bytes and an empty key
  // are the same key: no special case is needed for "salt not provided".
  hmac_sha256(salt, salt != nullptr ? salt_len : 0, ikm, ikm_len, prk);
}

Status HkdfExpand::init(const uint8_t* prk, size_t prk_len, const uint8_t* info, size_t info_len) {
  ready_ = false;
  if (prk == nullptr || prk_len < kHmacSha256Len || (info == nullptr && info_len != 0))
    return Status::BadLength;
  mac_.init(prk, prk_len);
  info_ = info;
  info_len_ = info_len;
  produced_ = 0;
  counter_ = 0;
  ready_ = true;
  return Status::Ok;
}

void HkdfExpand::next_block() {
  // T(i) = HMAC(PRK, T(i-1) || info || i), T(0) empty.
  if (counter_ > 0) mac_.update(block_, sizeof block_);
  mac_.update(info_, info_len_);
  ++counter_;
  mac_.update(&counter_, 1);
  mac_.final(block_);
}

Status HkdfExpand::read(uint8_t* out, size_t len) {
  if (!ready_) return Status::BadValue;
  if (len > remaining()) return Status::TooLarge;
  while (len > 0) {
    size_t used = produced_ % kHmacSha256Len;
    if (used == 0) next_block();  // produced_ is a multiple of 32 exactly when block_ is spent
    const size_t take = len < kHmacSha256Len - used ? len : kHmacSha256Len - used;
    memcpy(out, block_ + used, take);
    out += take;
    len -= take;
    produced_ += take;
  }
  return Status::Ok;
}

Status hkdf_expand(const uint8_t* prk, size_t prk_len, const uint8_t* info, size_t info_len,
                   uint8_t* out, size_t len) {
  HkdfExpand stream;
  Status s = stream.init(prk, prk_len, info, info_len);
  if (s == Status::Ok) s = stream.read(out, len);
  stream.wipe();
  return s;
}

}  // namespace tinyfl
