// Node-side noise of distributed differential privacy (--dp distributed, docs/PRIVACY.md; bytes
// in docs/WIRE.md): the discrete Gaussian N_Z(0, var) drawn with the exact integer sampler of
// Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020
// (Algorithms 1-3), from a bit stream keyed by a secret only the node holds. No floating point:
// every probability is a ratio of integers below 2^51. The host's tinyfl.strategy.ddp draws the
// same numbers; testvectors/secagg/noise.txt pins both down.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/hkdf.h"
#include "tinyfl/status.h"

namespace tinyfl {

constexpr size_t kNoiseKeyLen = 32;

// key ^= HKDF-Expand(pair_seed, "tinyfl noise key", 32). Over all of a node's pair seeds (from a
// zeroed key) this is its noise key: the coordinator holds none of the seeds, a peer one.
[[nodiscard]] Status noise_key_add(const uint8_t pair_seed[32], uint8_t key[kNoiseKeyLen]);

// The random bits: HKDF-Expand(key, "tinyfl noise" | u32 round_id | u16 chunk), chunks of 8160
// bytes, read LSB-first. A failed HKDF makes status() fail and every draw 0; the sampler's loops
// stop on it.
class NoiseBits {
 public:
  [[nodiscard]] Status init(const uint8_t key[kNoiseKeyLen], uint32_t round_id);
  uint64_t bits(unsigned k);                // k <= 56
  uint64_t uniform(uint64_t m);             // uniform on 0..m-1, m < 2^56
  bool bernoulli(uint64_t a, uint64_t b);   // a / b (b < 2^63), lazily: 2 bits on average, none when certain
  bool bernoulli_exp(uint64_t a, uint64_t b);  // exp(-a / b) (CKS Algorithm 1)
  bool ok() const { return status_ == Status::Ok; }
  Status status() const { return status_; }
  void wipe() { secure_wipe(this, sizeof *this); }

 private:
  bool exp_unit(uint64_t a, uint64_t b);  // exp(-a / b) for a <= b
  HkdfExpand stream_;
  const uint8_t* key_ = nullptr;
  uint8_t info_[18] = {};
  uint64_t buf_ = 0;
  unsigned have_ = 0;
  uint16_t chunk_ = 0;
  Status status_ = Status::BadValue;
};

// One draw of N_Z(0, var), 1 <= var <= kMaxNoiseVar (CKS Algorithm 3); 0 when the stream failed.
int32_t discrete_gaussian(NoiseBits& bits, uint32_t var);

// values[i] = values[i] + N_Z(0, var) modulo 2^bits for i < n, in order, from the stream of
// (key, round_id). BadValue for var outside 1..2^24 or bits outside 1..32.
[[nodiscard]] Status add_discrete_gaussian(const uint8_t key[kNoiseKeyLen], uint32_t round_id, uint32_t var,
                                           uint32_t* values, size_t n, uint8_t bits);

}  // namespace tinyfl
