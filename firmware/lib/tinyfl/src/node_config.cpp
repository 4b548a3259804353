#include "tinyfl/node_config.h"

#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"

namespace tinyfl {

namespace {

// Copies a length-prefixed string into a NUL-terminated field of `cap` bytes.
void read_str(Reader& r, char* dst, size_t cap) {
  const uint8_t len = r.u8();
  const uint8_t* p = r.bytes(len);
  if (p == nullptr) return;
  if (len == 0 || len + 1u > cap) {
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
  if (r.u8() != 1) return r.ok() ? Status::BadVersion : r.status();
  r.bytes(3);  // reserved
  *out = NodeConfigRecord{};
  read_str(r, out->node_id, sizeof out->node_id);
  read_str(r, out->topic_prefix, sizeof out->topic_prefix);
  out->keep_alive_s = r.u16();
  r.u16();  // reserved
  const size_t covered = r.position();
  const uint32_t crc = r.u32();
  if (!r.ok()) return r.status();
  if (crc != crc32(buf, covered)) return Status::BadCrc;
  return Status::Ok;
}

}  // namespace tinyfl
