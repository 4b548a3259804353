#include "tinyfl/noise.h"

#include <string.h>

#include "tinyfl/wire.h"

namespace tinyfl {

namespace {

constexpr uint64_t kWMax = 1ull << 31;  // a proposal with |w| >= 2^31 is rejected (tinyfl.strategy.ddp)

uint32_t isqrt(uint32_t v) {
  uint32_t r = 0;
  for (uint32_t bit = 1u << 30; bit != 0; bit >>= 2) {
    if (v >= r + bit) {
      v -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
  }
  return r;
}

// CKS Algorithm 2 with s = 1: P(x) proportional to exp(-|x| / t).
int64_t discrete_laplace(NoiseBits& b, uint64_t t) {
  while (b.ok()) {
    const uint64_t u = b.uniform(t);
    if (!b.bernoulli_exp(u, t)) continue;
    uint64_t v = 0;
    while (b.ok() && b.bernoulli_exp(1, 1)) ++v;
    const uint64_t x = u + t * v;
    const bool negative = b.bernoulli(1, 2);
    if (negative && x == 0) continue;
    return negative ? -static_cast<int64_t>(x) : static_cast<int64_t>(x);
  }
  return 0;
}

}  // namespace

Status noise_key_add(const uint8_t pair_seed[32], uint8_t key[kNoiseKeyLen]) {
  static const uint8_t kInfo[] = {'t', 'i', 'n', 'y', 'f', 'l', ' ', 'n', 'o', 'i', 's', 'e', ' ', 'k', 'e', 'y'};
  uint8_t part[kNoiseKeyLen];
  const Status s = hkdf_expand(pair_seed, 32, kInfo, sizeof kInfo, part, sizeof part);
  for (size_t i = 0; s == Status::Ok && i < kNoiseKeyLen; ++i) key[i] ^= part[i];
  secure_wipe(part, sizeof part);
  return s;
}

Status NoiseBits::init(const uint8_t key[kNoiseKeyLen], uint32_t round_id) {
  static const char kLabel[] = "tinyfl noise";
  memcpy(info_, kLabel, 12);
  for (int k = 0; k < 4; ++k) info_[12 + k] = static_cast<uint8_t>(round_id >> (8 * k));
  info_[16] = info_[17] = 0;
  key_ = key;
  buf_ = 0;
  have_ = 0;
  chunk_ = 0;
  status_ = stream_.init(key_, kNoiseKeyLen, info_, sizeof info_);
  return status_;
}

uint64_t NoiseBits::bits(unsigned k) {
  while (ok() && have_ < k) {
    if (stream_.remaining() == 0) {  // the next 8160-byte chunk
      ++chunk_;
      info_[16] = static_cast<uint8_t>(chunk_);
      info_[17] = static_cast<uint8_t>(chunk_ >> 8);
      status_ = stream_.init(key_, kNoiseKeyLen, info_, sizeof info_);
    }
    uint8_t byte = 0;
    if (ok()) status_ = stream_.read(&byte, 1);
    buf_ |= static_cast<uint64_t>(byte) << have_;
    have_ += 8;
  }
  if (!ok()) return 0;
  const uint64_t out = k == 64 ? buf_ : buf_ & ((1ull << k) - 1u);
  buf_ = k == 64 ? 0 : buf_ >> k;
  have_ -= k;
  return out;
}

uint64_t NoiseBits::uniform(uint64_t m) {
  if (m <= 1) return 0;
  const unsigned k = 64u - static_cast<unsigned>(__builtin_clzll(m - 1u));  // bits of m - 1 (m >= 2)
  while (ok()) {
    const uint64_t r = bits(k);
    if (r < m) return r;
  }
  return 0;
}

bool NoiseBits::bernoulli(uint64_t a, uint64_t b) {
  // a uniform U in [0, 1) bit by bit against the binary digits of a / b (long division, r < b)
  if (a >= b) return true;
  if (a == 0) return false;
  uint64_t r = a;
  while (ok()) {
    r <<= 1;
    const uint64_t digit = r >= b ? 1u : 0u;
    if (digit != 0) r -= b;
    const uint64_t u = bits(1);
    if (u != digit) return u < digit;
  }
  return false;
}

bool NoiseBits::exp_unit(uint64_t a, uint64_t b) {
  uint64_t k = 1;
  while (ok() && bernoulli(a, b) && bernoulli(1, k)) ++k;
  return ok() && (k & 1u) == 1u;
}

bool NoiseBits::bernoulli_exp(uint64_t a, uint64_t b) {
  for (uint64_t whole = a / b; whole > 0; --whole)
    if (!exp_unit(1, 1)) return false;
  return exp_unit(a % b, b);
}

int32_t discrete_gaussian(NoiseBits& b, uint32_t var) {
  const uint64_t t = isqrt(var) + 1u;
  while (b.ok()) {
    const int64_t y = discrete_laplace(b, t);
    const uint64_t ay = static_cast<uint64_t>(y < 0 ? -y : y);
    if (ay >= (1ull << 33)) continue;  // |w| >= 2^31 for sure (t >= 2)
    const int64_t w = static_cast<int64_t>(ay * t) - static_cast<int64_t>(var);
    const uint64_t aw = static_cast<uint64_t>(w < 0 ? -w : w);
    if (aw >= kWMax) continue;
    if (b.bernoulli_exp(aw * aw, 2ull * var * t * t)) return static_cast<int32_t>(y);
  }
  return 0;
}

Status add_discrete_gaussian(const uint8_t key[kNoiseKeyLen], uint32_t round_id, uint32_t var, uint32_t* values,
                             size_t n, uint8_t bits) {
  if (var == 0 || var > kMaxNoiseVar || bits == 0 || bits > 32) return Status::BadValue;
  const uint32_t mask = bits == 32 ? 0xFFFFFFFFu : (1u << bits) - 1u;
  NoiseBits stream;
  Status s = stream.init(key, round_id);
  for (size_t i = 0; i < n && s == Status::Ok; ++i) {
    const int32_t e = discrete_gaussian(stream, var);
    s = stream.status();
    values[i] = (values[i] + static_cast<uint32_t>(e)) & mask;
  }
  stream.wipe();
  return s;
}

}  // namespace tinyfl
