#include "tinyfl/node_config.h"

#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"

namespace tinyfl {

namespace {

bool id_char(uint8_t c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
         c == '-';
}

enum class Field { Id, Text, Optional };

// Two NUL-terminated strings are equal (a loop: the C library's strcmp costs 700 bytes of flash).
bool same(const char* a, const char* b) {
  while (*a != 0 && *a == *b) ++a, ++b;
  return *a == *b;
}

// Copies a length-prefixed string into a NUL-terminated field of `cap` bytes. Every field
// refuses an embedded NUL (it would cut the string short unseen); an id takes only
// [A-Za-z0-9_-]; only an Optional field may be empty.
void read_str(Reader& r, char* dst, size_t cap, Field field) {
  const uint8_t len = r.u8();
  const uint8_t* p = r.bytes(len);
  if (p == nullptr) return;
  bool ok = (len > 0 || field == Field::Optional) && len + 1u <= cap;
  for (size_t i = 0; ok && i < len; ++i) ok = p[i] != 0 && (field != Field::Id || id_char(p[i]));
  if (!ok) {
    r.fail(Status::BadValue);
    return;
  }
  memcpy(dst, p, len);
  dst[len] = 0;
}

}  // namespace

Status parse_node_config(const uint8_t* buf, size_t cap, NodeConfigRecord* out) {
  Reader r(buf, cap);
  const uint8_t* magic = r.bytes(4);
  if (magic == nullptr) return r.status();
  if (memcmp(magic, "TFNC", 4) != 0) return Status::BadMagic;
  if (r.u8() != kNodeConfigVersion) return r.ok() ? Status::BadVersion : r.status();
  r.bytes(3);  // reserved
  *out = NodeConfigRecord{};
  read_str(r, out->node_id, sizeof out->node_id, Field::Id);
  read_str(r, out->topic_prefix, sizeof out->topic_prefix, Field::Text);
  out->keep_alive_s = r.u16();
  r.u16();  // reserved
  read_str(r, out->username, sizeof out->username, Field::Optional);
  read_str(r, out->password, sizeof out->password, Field::Optional);
  const uint8_t n_keys = r.u8();
  if (n_keys != 0 && n_keys != 2) r.fail(Status::BadValue);
  out->has_keys = n_keys == 2;
  if (out->has_keys) {
    const uint8_t* frame_key = r.bytes(sizeof out->frame_key);
    const uint8_t* fleet_key = r.bytes(sizeof out->fleet_key);
    if (frame_key != nullptr && fleet_key != nullptr) {
      memcpy(out->frame_key, frame_key, sizeof out->frame_key);
      memcpy(out->fleet_key, fleet_key, sizeof out->fleet_key);
    }
  }
  out->n_peers = r.u16();
  if (r.ok() && out->n_peers > kMaxPeers) return Status::TooLarge;
  for (uint16_t i = 0; i < out->n_peers && r.ok(); ++i) {
    read_str(r, out->peer_ids[i], sizeof out->peer_ids[i], Field::Id);
    const uint8_t* seed = r.bytes(sizeof out->peer_seeds[i]);
    if (seed != nullptr) memcpy(out->peer_seeds[i], seed, sizeof out->peer_seeds[i]);
  }
  const size_t covered = r.position();
  const uint32_t crc = r.u32();
  if (!r.ok()) return r.status();
  if (crc != crc32(buf, covered)) return Status::BadCrc;
  if (out->password[0] != 0 && out->username[0] == 0) return Status::BadValue;  // MQTT-3.1.2-22
  for (uint16_t i = 0; i < out->n_peers; ++i) {
    if (same(out->peer_ids[i], out->node_id)) return Status::BadValue;
    for (uint16_t j = 0; j < i; ++j)
      if (same(out->peer_ids[i], out->peer_ids[j])) return Status::BadValue;
  }
  return Status::Ok;
}

}  // namespace tinyfl
