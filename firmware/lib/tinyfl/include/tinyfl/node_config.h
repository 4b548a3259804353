// The per-node configuration record (docs/WIRE.md, "Node config record"): node id, topic prefix,
// keep-alive, the node's MQTT credentials and its frame and fleet keys, for boards that get them as
// bytes (QEMU's loader, a file a native node is given) rather than from a settings header.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/config.h"
#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint8_t kNodeConfigVersion = 4;
constexpr size_t kMaxCredential = 64;  // bytes of an MQTT username or password in the record

struct NodeConfigRecord {
  char node_id[kMaxNodeId + 1];
  char topic_prefix[97];
  uint16_t keep_alive_s;
  char username[kMaxCredential + 1];  // empty: connect without credentials
  char password[kMaxCredential + 1];  // empty: none; a password needs a username
  bool has_keys;                      // false: a fleet without keys (CRC frames)
  uint8_t frame_key[32];              // this node's HELLO and UPDATE key
  uint8_t fleet_key[32];              // the fleet's GLOBAL key
  uint16_t n_peers;                   // secure-aggregation seeds, one per other node
  char peer_ids[kMaxPeers][kMaxNodeId + 1];
  uint8_t peer_seeds[kMaxPeers][32];
};

// Parses and checks (magic, version, lengths, CRC) a record of at most `cap` bytes. Errors:
// Truncated, BadMagic, BadVersion (e.g. a version-2 record), BadValue (an empty id or prefix, a
// field too long, a password without a username, n_keys not 0 or 2, a peer id twice or the
// node's own), TooLarge (more than kMaxPeers peers), BadCrc. `out` is only valid
// on Ok. It holds secrets: wipe it (secure_wipe) when the node no longer needs it.
[[nodiscard]] Status parse_node_config(const uint8_t* buf, size_t cap, NodeConfigRecord* out);

}  // namespace tinyfl
