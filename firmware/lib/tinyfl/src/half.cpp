#include "tinyfl/half.h"

#include <string.h>

namespace tinyfl {

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// value >> shift rounded to nearest, ties to even (shift >= 1).
uint32_t shift_round_even(uint32_t value, unsigned shift) {
  if (shift >= 32) return 0;
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  return kept + ((rest > half || (rest == half && (kept & 1u) != 0)) ? 1u : 0u);
}

}  // namespace

uint16_t float_to_half(float f) {
  uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t exp = (u >> 23) & 0xFFu;
  uint32_t mant = u & 0x7FFFFFu;
  if (exp == 0xFFu) return static_cast<uint16_t>(sign | 0x7C00u | (mant != 0 ? 0x200u : 0u));
  if (u & 0x7FFFFFFFu) {
    // Saturate finite values above the largest half (its float32 bits are 0x477FE000).
    if ((u & 0x7FFFFFFFu) > 0x477FE000u) return static_cast<uint16_t>(sign | 0x7BFFu);
  } else {
    return sign;  // +-0
  }
  const int e = static_cast<int>(exp) - 127;  // unbiased exponent of a finite, non-zero float
  if (e >= -14) {
    // Normal half: 10 mantissa bits, rounding may carry into the exponent (still <= 0x7BFF,
    // because values above 65504 were saturated and 65504 + half an ulp rounds to even = 65504).
    const uint32_t rounded = shift_round_even((static_cast<uint32_t>(e + 15) << 23) | mant, 13);
    return static_cast<uint16_t>(sign | rounded);
  }
  // Subnormal half (or zero): the value is mant' * 2^-24 with mant' = (1.mant) * 2^(e + 24).
  if (exp != 0) mant |= 0x800000u;  // the implicit bit (float32 subnormals have none)
  const int shift = 13 + (-14 - e);  // from 23 fraction bits to the half subnormal grid
  if (shift > 25) return sign;       // below 2^-26: under half the smallest subnormal, 0
  return static_cast<uint16_t>(sign | shift_round_even(mant, static_cast<unsigned>(shift)));
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1Fu) return float_of(sign | 0x7F800000u | (mant << 13));
  if (exp != 0) return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return float_of(sign);
  // Subnormal half: normalize into a float32 normal.
  int e = -14;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  mant &= 0x3FFu;
  return float_of(sign | (static_cast<uint32_t>(e + 127) << 23) | (mant << 13));
}

}  // namespace tinyfl
