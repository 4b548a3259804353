#include "tinyfl/secagg.h"

#include "tinyfl/hkdf.h"

namespace tinyfl {

Status secagg_round_seed(const uint8_t* pair_seed, uint32_t round_id, uint8_t out[kRoundSeedLen]) {
  uint8_t info[16] = {'t', 'i', 'n', 'y', 'f', 'l', ' ', 'r', 'o', 'u', 'n', 'd'};
  for (int k = 0; k < 4; ++k) info[12 + k] = static_cast<uint8_t>(round_id >> (8 * k));
  return hkdf_expand(pair_seed, 32, info, sizeof info, out, kRoundSeedLen);
}

Status secagg_apply_mask(const uint8_t round_seed[kRoundSeedLen], uint32_t* masked, size_t n, uint8_t bits,
                         bool add) {
  // bits is 9..32: the decoder checked the GLOBAL's mask_bits (header comment)
  uint8_t info[13] = {'t', 'i', 'n', 'y', 'f', 'l', ' ', 'm', 'a', 's', 'k', 0, 0};
  const size_t width = (bits + 7u) / 8u;
  const uint32_t mask = bits == 32 ? 0xFFFFFFFFu : (1u << bits) - 1u;
  HkdfExpand stream;
  uint16_t chunk = 0;
  Status s = stream.init(round_seed, kRoundSeedLen, info, sizeof info);
  for (size_t i = 0; i < n && s == Status::Ok; ++i) {
    if (stream.remaining() < width) {  // the next 8160-byte chunk (masks of > 2040 values)
      ++chunk;
      info[11] = static_cast<uint8_t>(chunk);
      info[12] = static_cast<uint8_t>(chunk >> 8);
      s = stream.init(round_seed, kRoundSeedLen, info, sizeof info);  // on failure read() fails too
    }
    uint8_t b[4] = {};
    s = stream.read(b, width);
    const uint32_t m = (static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
                        (static_cast<uint32_t>(b[2]) << 16) | (static_cast<uint32_t>(b[3]) << 24)) & mask;
    masked[i] = (add ? masked[i] + m : masked[i] - m) & mask;
  }
  stream.wipe();
  return s;
}

}  // namespace tinyfl
