// The round's pseudo-random generator (docs/WIRE.md, "PRNG and stochastic rounding").
//
// Both ends must draw the same numbers: the coordinator can replay a node's shuffles and rounding
// from (seed, node_id, round_id) alone, and host/tinyfl/rng.py mirrors this file bit for bit
// (checked by testvectors/quant/ and testvectors/head/). Quality is modest (xorshift32) and that is
// enough: it only orders minibatches and dithers quantization; it is not a secret.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace tinyfl {

// 32-bit finalizer of MurmurHash3: spreads every input bit over the whole word, so nearby seeds
// (round 7 vs round 8) start unrelated streams.
constexpr uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x85EBCA6Bu;
  x ^= x >> 13;
  x *= 0xC2B2AE35u;
  x ^= x >> 16;
  return x;
}

// FNV-1a, 32 bits, over `len` bytes: turns a node id into a word for seeding.
uint32_t fnv1a32(const void* data, size_t len);
// FNV-1a over a NUL-terminated string (the terminator is not hashed).
uint32_t fnv1a32(const char* s);

// xorshift32 (13, 17, 5). A zero state would stay zero forever, so it is replaced by 1.
class Rng {
 public:
  explicit constexpr Rng(uint32_t state) : state_(state != 0u ? state : 1u) {}

  // Advances the state and returns it.
  uint32_t next() {
    uint32_t x = state_;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    state_ = x;
    return x;
  }

  // Uniform in [0, 1): the top 24 bits of next() times 2^-24, exact in float32.
  float uniform01() { return static_cast<float>(next() >> 8) * 5.9604644775390625e-08f; }

  uint32_t state() const { return state_; }

 private:
  uint32_t state_;
};

// The round's generator: mix32(seed ^ fnv1a32(node_id) ^ (round_id * 0x9E3779B9)), 0 -> 1.
Rng round_rng(uint32_t seed, const char* node_id, uint32_t round_id);
Rng round_rng(uint32_t seed, const uint8_t* node_id, size_t node_id_len, uint32_t round_id);

// Fisher-Yates, from the last index down to 1: swaps idx[i] with idx[j], j = next() % (i + 1).
// Draws exactly n - 1 numbers (none for n <= 1).
void shuffle(uint16_t* idx, uint32_t n, Rng& rng);

}  // namespace tinyfl
