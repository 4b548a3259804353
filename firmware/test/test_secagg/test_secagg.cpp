// Secure-aggregation masks (tinyfl/secagg.h) against testvectors/secagg/masks.txt, which the host
// (tinyfl.strategy.secagg) also reproduces: the same round seed and the same mask for every value
// width, including a mask long enough to cross into a second HKDF chunk; and the node noise of
// --dp distributed (tinyfl/noise.h) against testvectors/secagg/noise.txt (tinyfl.strategy.ddp).
#include <stdlib.h>

#include "../check.h"
#include "tinyfl/noise.h"
#include "tinyfl/secagg.h"

using namespace tinyfl;

namespace {

unsigned char g_text[1 << 16];
uint32_t g_values[4096];
uint32_t g_expect[4096];

bool hex_bytes(const char* hex, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    unsigned byte = 0;
    if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return false;
    out[i] = static_cast<uint8_t>(byte);
  }
  return true;
}

}  // namespace

TINYFL_TEST(masks_match_the_golden_vectors) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("secagg/masks.txt"), g_text, sizeof g_text - 1);
  CHECK(len > 0);
  if (len <= 0) return;
  g_text[len] = 0;
  int cases = 0;
  for (char* line = strtok(reinterpret_cast<char*>(g_text), "\n"); line != nullptr; line = strtok(nullptr, "\n")) {
    char seed_hex[65], round_hex[65];
    unsigned long round_id = 0;
    unsigned bits = 0, n = 0;
    int used = 0;
    CHECK(sscanf(line, "%64s %lu %u %u %64s %n", seed_hex, &round_id, &bits, &n, round_hex, &used) == 5);
    CHECK(n <= 4096);
    uint8_t pair_seed[32], want_round[32], round_seed[kRoundSeedLen];
    CHECK(hex_bytes(seed_hex, pair_seed, 32) && hex_bytes(round_hex, want_round, 32));
    CHECK(secagg_round_seed(pair_seed, static_cast<uint32_t>(round_id), round_seed) == Status::Ok);
    CHECK(memcmp(round_seed, want_round, 32) == 0);
    const char* p = line + used;
    for (unsigned i = 0; i < n; ++i) {
      char* end = nullptr;
      g_expect[i] = static_cast<uint32_t>(strtoul(p, &end, 10));
      p = *end == ',' ? end + 1 : end;
    }
    memset(g_values, 0, sizeof g_values);
    CHECK(secagg_apply_mask(round_seed, g_values, n, static_cast<uint8_t>(bits), true) == Status::Ok);
    CHECK(memcmp(g_values, g_expect, n * sizeof(uint32_t)) == 0);
    // subtracting the same mask gives 0 back, modulo 2^bits
    CHECK(secagg_apply_mask(round_seed, g_values, n, static_cast<uint8_t>(bits), false) == Status::Ok);
    bool zero = true;
    for (unsigned i = 0; i < n; ++i) zero = zero && g_values[i] == 0;
    CHECK(zero);
    ++cases;
  }
  CHECK(cases >= 5);
}

TINYFL_TEST(noise_matches_the_golden_vectors) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("secagg/noise.txt"), g_text, sizeof g_text - 1);
  CHECK(len > 0);
  if (len <= 0) return;
  g_text[len] = 0;
  int keys = 0, cases = 0;
  for (char* line = strtok(reinterpret_cast<char*>(g_text), "\n"); line != nullptr; line = strtok(nullptr, "\n")) {
    char key_hex[65];
    uint8_t key[kNoiseKeyLen];
    if (strncmp(line, "key ", 4) == 0) {  // key s1,s2,s3 k
      uint8_t acc[kNoiseKeyLen] = {};
      const char* p = line + 4;
      while (*p != ' ') {
        uint8_t seed[32];
        CHECK(hex_bytes(p, seed, 32));
        CHECK(noise_key_add(seed, acc) == Status::Ok);
        p += 64;
        if (*p == ',') ++p;
      }
      CHECK(hex_bytes(p + 1, key, 32));
      CHECK(memcmp(acc, key, 32) == 0);
      ++keys;
      continue;
    }
    unsigned long round_id = 0, var = 0;
    unsigned n = 0;
    int used = 0;
    CHECK(sscanf(line, "noise %64s %lu %lu %u %n", key_hex, &round_id, &var, &n, &used) == 4);
    CHECK(n <= 4096 && hex_bytes(key_hex, key, 32));
    const char* p = line + used;
    for (unsigned i = 0; i < n; ++i) {
      char* end = nullptr;
      g_expect[i] = static_cast<uint32_t>(static_cast<int32_t>(strtol(p, &end, 10)));
      p = *end == ',' ? end + 1 : end;
    }
    memset(g_values, 0, sizeof g_values);
    CHECK(add_discrete_gaussian(key, static_cast<uint32_t>(round_id), static_cast<uint32_t>(var), g_values, n, 32) ==
          Status::Ok);
    CHECK(memcmp(g_values, g_expect, n * sizeof(uint32_t)) == 0);
    // modulo 2^b: the same noise reduced
    memset(g_values, 0, sizeof g_values);
    CHECK(add_discrete_gaussian(key, static_cast<uint32_t>(round_id), static_cast<uint32_t>(var), g_values, n, 17) ==
          Status::Ok);
    bool reduced = true;
    for (unsigned i = 0; i < n; ++i) reduced = reduced && g_values[i] == (g_expect[i] & 0x1FFFFu);
    CHECK(reduced);
    ++cases;
  }
  CHECK(keys == 1 && cases >= 5);
}

TINYFL_TEST(noise_refuses_bad_parameters) {
  uint8_t key[kNoiseKeyLen] = {1};
  uint32_t v[2] = {};
  CHECK(add_discrete_gaussian(key, 1, 0, v, 2, 16) == Status::BadValue);
  CHECK(add_discrete_gaussian(key, 1, kMaxNoiseVar + 1u, v, 2, 16) == Status::BadValue);
  CHECK(add_discrete_gaussian(key, 1, 8, v, 2, 33) == Status::BadValue);
}

int main() { return tinyfl_test::run_all(); }
