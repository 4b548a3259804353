// The per-node configuration record (docs/WIRE.md, "Node config record"): node id, topic prefix,
// keep-alive and the node's MQTT credentials, for boards that get them as bytes (QEMU's loader,
// a file a native node is given) rather than from a settings header.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/config.h"
#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint8_t kNodeConfigVersion = 2;
constexpr size_t kMaxCredential = 64;  // bytes of an MQTT username or password in the record

struct NodeConfigRecord {
  char node_id[kMaxNodeId + 1];
  char topic_prefix[97];
  uint16_t keep_alive_s;
  char username[kMaxCredential + 1];  // empty: connect without credentials
  char password[kMaxCredential + 1];  // empty: none; a password needs a username
};

// Parses and checks (magic, version, lengths, CRC) a record of at most `cap` bytes. Errors:
// Truncated, BadMagic, BadVersion (e.g. a version-1 record), BadValue (an empty id or prefix, a
// field too long, a password without a username), BadCrc. `out` is only valid on Ok.
[[nodiscard]] Status parse_node_config(const uint8_t* buf, size_t cap, NodeConfigRecord* out);

}  // namespace tinyfl
