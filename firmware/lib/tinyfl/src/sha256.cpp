// SHA-256 from FIPS 180-4: functions 4.1.2, constants 4.2.2, padding 5.1.1, initial value 5.3.3,
// computation 6.2.2. The 64 rounds are one loop over eight rotating locals; the message schedule
// keeps only the last 16 words (W[t] depends on W[t-2], W[t-7], W[t-15], W[t-16]).
#include "tinyfl/sha256.h"

#include <string.h>

namespace tinyfl {

namespace {

// FIPS 180-4, 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64
// primes.
const uint32_t kK[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

// FIPS 180-4, 5.3.3: the first 32 bits of the fractional parts of the square roots of the first
// 8 primes.
const uint32_t kH0[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

inline uint32_t load_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// One 512-bit block into the hash value (FIPS 180-4, 6.2.2 steps 1-4).
void compress(uint32_t h[8], const uint8_t* block) {
  uint32_t w[16];
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (unsigned t = 0; t < 64; ++t) {
    uint32_t wt;
    if (t < 16) {  // the round number, not the data, picks the branch
      wt = load_be32(block + 4 * t);
    } else {
      const uint32_t w15 = w[(t - 15) & 15u], w2 = w[(t - 2) & 15u];
      const uint32_t s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);   // sigma0
      const uint32_t s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);    // sigma1
      wt = s1 + w[(t - 7) & 15u] + s0 + w[t & 15u];                    // w[t & 15] is W[t-16]
    }
    w[t & 15u] = wt;
    const uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);  // Sigma1
    const uint32_t ch = (e & f) ^ (~e & g);
    const uint32_t t1 = hh + big_s1 + ch + kK[t] + wt;
    const uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);  // Sigma0
    const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    const uint32_t t2 = big_s0 + maj;
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
  secure_wipe(w, sizeof w);  // the schedule holds message words (key pads under HMAC)
}

}  // namespace

// memset called through a volatile function pointer: the compiler must load the pointer and call
// whatever it holds, so it cannot prove the call is a memset of dead memory and drop it (the
// store-elimination that removes a plain memset before a buffer goes out of scope).
namespace {
void* (*const volatile g_memset)(void*, int, size_t) = memset;
}  // namespace

void secure_wipe(void* p, size_t len) {
  if (len > 0) g_memset(p, 0, len);
}

void Sha256::init() {
  memcpy(h_, kH0, sizeof h_);
  bytes_ = 0;
}

void Sha256::update(const uint8_t* data, size_t len) {
  if (len == 0) return;  // data may be null then, and memcpy from null is undefined
  size_t fill = static_cast<size_t>(bytes_ % kSha256BlockLen);
  bytes_ += len;
  if (fill != 0) {
    const size_t take = len < kSha256BlockLen - fill ? len : kSha256BlockLen - fill;
    memcpy(buf_ + fill, data, take);
    data += take;
    len -= take;
    fill += take;
    if (fill < kSha256BlockLen) return;
    compress(h_, buf_);
  }
  for (; len >= kSha256BlockLen; data += kSha256BlockLen, len -= kSha256BlockLen) compress(h_, data);
  if (len > 0) memcpy(buf_, data, len);
}

void Sha256::final(uint8_t out[kSha256DigestLen]) {
  // FIPS 180-4, 5.1.1: a 1 bit, zeros up to 448 mod 512 bits, then the length in bits, 64-bit
  // big-endian.
  const uint64_t bits = bytes_ * 8u;
  size_t fill = static_cast<size_t>(bytes_ % kSha256BlockLen);
  buf_[fill++] = 0x80;
  if (fill > kSha256BlockLen - 8) {
    memset(buf_ + fill, 0, kSha256BlockLen - fill);
    compress(h_, buf_);
    fill = 0;
  }
  memset(buf_ + fill, 0, kSha256BlockLen - 8 - fill);
  store_be32(buf_ + 56, static_cast<uint32_t>(bits >> 32));
  store_be32(buf_ + 60, static_cast<uint32_t>(bits));
  compress(h_, buf_);
  for (unsigned i = 0; i < 8; ++i) store_be32(out + 4 * i, h_[i]);
  wipe();
}

void sha256(const uint8_t* data, size_t len, uint8_t out[kSha256DigestLen]) {
  Sha256 ctx;
  ctx.update(data, len);
  ctx.final(out);
}

}  // namespace tinyfl
