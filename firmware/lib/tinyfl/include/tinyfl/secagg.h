// Secure-aggregation masks (docs/PRIVACY.md; bytes in docs/WIRE.md): a pair's seed for one round,
// and the pair's mask added to (or subtracted from) a node's values modulo 2^bits. The host's
// tinyfl.strategy.secagg computes the same; testvectors/secagg/masks.txt pins both down.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/status.h"
#include "tinyfl/wire.h"

namespace tinyfl {

// r_uv = HKDF-Expand(s_uv, "tinyfl round" | u32 round_id, 32): what a REVEAL carries; it unmasks
// that round only.
[[nodiscard]] Status secagg_round_seed(const uint8_t pair_seed[32], uint32_t round_id,
                                       uint8_t out[kRoundSeedLen]);

// values[i] = values[i] + m_i (add) or - m_i modulo 2^bits, i < n, where m is read as ceil(bits/8)
// little-endian bytes per value from HKDF-Expand(r_uv, "tinyfl mask" | u16 chunk) in chunks of
// 8160 bytes. bits is 9..32; values must already be below 2^bits.
[[nodiscard]] Status secagg_apply_mask(const uint8_t round_seed[kRoundSeedLen], uint32_t* values, size_t n,
                                       uint8_t bits, bool add);

}  // namespace tinyfl
