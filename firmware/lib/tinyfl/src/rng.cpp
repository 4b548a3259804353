#include "tinyfl/rng.h"

namespace tinyfl {

uint32_t fnv1a32(const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t h = 0x811C9DC5u;
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 0x01000193u;
  }
  return h;
}

uint32_t fnv1a32(const char* s) {
  uint32_t h = 0x811C9DC5u;
  for (; *s != '\0'; ++s) {
    h ^= static_cast<uint8_t>(*s);
    h *= 0x01000193u;
  }
  return h;
}

namespace {
Rng seeded(uint32_t seed, uint32_t id_hash, uint32_t round_id) {
  return Rng(mix32(seed ^ id_hash ^ (round_id * 0x9E3779B9u)));
}
}  // namespace

Rng round_rng(uint32_t seed, const char* node_id, uint32_t round_id) {
  return seeded(seed, fnv1a32(node_id), round_id);
}

Rng round_rng(uint32_t seed, const uint8_t* node_id, size_t node_id_len, uint32_t round_id) {
  return seeded(seed, fnv1a32(node_id, node_id_len), round_id);
}

void shuffle(uint16_t* idx, uint32_t n, Rng& rng) {
  for (uint32_t i = n; i-- > 1;) {
    const uint32_t j = rng.next() % (i + 1u);
    const uint16_t t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
}

}  // namespace tinyfl
