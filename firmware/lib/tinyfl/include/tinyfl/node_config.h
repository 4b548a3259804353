// The per-node configuration record (docs/WIRE.md, "Node config record"): node id, topic prefix
// and keep-alive, for boards that get them as bytes in memory (QEMU's loader) rather than from a
// command line or a config header.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/config.h"
#include "tinyfl/status.h"

namespace tinyfl {

struct NodeConfigRecord {
  char node_id[kMaxNodeId + 1];
  char topic_prefix[97];
  uint16_t keep_alive_s;
};

// Parses and checks (magic, version, lengths, CRC) a record of at most `cap` bytes.
[[nodiscard]] Status parse_node_config(const uint8_t* buf, size_t cap, NodeConfigRecord* out);

}  // namespace tinyfl
