// The node config record parser (docs/WIRE.md, "Node config record"): what a QEMU board and a
// native node read their identity, MQTT credentials and keys from.
#include <string.h>

#include "../check.h"
#include "tinyfl/crc32.h"
#include "tinyfl/node_config.h"

namespace {

using tinyfl::Status;

// A record as tinyfl.wire.node_config writes it.
size_t put_str(uint8_t* out, size_t n, const char* s) {
  out[n++] = static_cast<uint8_t>(strlen(s));
  memcpy(out + n, s, strlen(s));
  return n + strlen(s);
}

size_t make(uint8_t* out, const char* id, const char* prefix, const char* user, const char* pass,
            uint8_t version = 4, const uint8_t* keys = nullptr, uint8_t n_keys = 0,
            const char* const* peers = nullptr, uint16_t n_peers = 0) {
  memcpy(out, "TFNC", 4);
  size_t n = 4;
  out[n++] = version;
  out[n++] = 0, out[n++] = 0, out[n++] = 0;
  n = put_str(out, n, id);
  n = put_str(out, n, prefix);
  out[n++] = 30, out[n++] = 0, out[n++] = 0, out[n++] = 0;  // keep-alive 30 s, reserved
  n = put_str(out, n, user);
  n = put_str(out, n, pass);
  out[n++] = n_keys;
  for (uint8_t k = 0; keys != nullptr && k < n_keys; ++k) {
    memcpy(out + n, keys + 32 * k, 32);
    n += 32;
  }
  out[n++] = static_cast<uint8_t>(n_peers), out[n++] = static_cast<uint8_t>(n_peers >> 8);
  for (uint16_t i = 0; i < n_peers; ++i) {
    n = put_str(out, n, peers[i]);
    for (int b = 0; b < 32; ++b) out[n++] = static_cast<uint8_t>(i * 32 + b);
  }
  const uint32_t crc = tinyfl::crc32(out, n);
  for (int i = 0; i < 4; ++i) out[n++] = static_cast<uint8_t>(crc >> (8 * i));
  return n;
}

}  // namespace

TINYFL_TEST(a_record_with_credentials_parses) {
  uint8_t buf[512];
  const size_t n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret");
  tinyfl::NodeConfigRecord rec;
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::Ok));
  CHECK(strcmp(rec.node_id, "node01") == 0 && strcmp(rec.topic_prefix, "tinyfl/lab") == 0);
  CHECK(strcmp(rec.username, "node01") == 0 && strcmp(rec.password, "s3cret") == 0);
  CHECK_EQ(rec.keep_alive_s, 30);
}

TINYFL_TEST(a_record_with_keys_parses_and_other_key_counts_are_refused) {
  uint8_t buf[512], keys[64];
  for (int i = 0; i < 64; ++i) keys[i] = static_cast<uint8_t>(i * 7 + 1);
  size_t n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret", 4, keys, 2);
  tinyfl::NodeConfigRecord rec;
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::Ok));
  CHECK(rec.has_keys);
  CHECK(memcmp(rec.frame_key, keys, 32) == 0 && memcmp(rec.fleet_key, keys + 32, 32) == 0);
  n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret", 4, keys, 1);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret", 4, keys, 2);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n - 5, &rec)), static_cast<int>(Status::Truncated));
}

TINYFL_TEST(peer_seeds_parse_and_bad_peer_lists_are_refused) {
  static uint8_t buf[4096];
  uint8_t keys[64] = {};
  const char* peers[] = {"node02", "node03"};
  size_t n = make(buf, "node01", "tinyfl/lab", "", "", 4, keys, 2, peers, 2);
  static tinyfl::NodeConfigRecord rec;
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::Ok));
  CHECK_EQ(rec.n_peers, 2);
  CHECK(strcmp(rec.peer_ids[1], "node03") == 0 && rec.peer_seeds[1][0] == 32 && rec.peer_seeds[1][31] == 63);
  const char* self[] = {"node02", "node01"};  // its own id among its peers
  n = make(buf, "node01", "tinyfl/lab", "", "", 4, keys, 2, self, 2);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  const char* twice[] = {"node02", "node02"};
  n = make(buf, "node01", "tinyfl/lab", "", "", 4, keys, 2, twice, 2);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  static const char* many[tinyfl::kMaxPeers + 1];
  static char names[tinyfl::kMaxPeers + 1][8];
  for (unsigned i = 0; i <= tinyfl::kMaxPeers; ++i) {
    snprintf(names[i], sizeof names[i], "p%u", i);
    many[i] = names[i];
  }
  n = make(buf, "node01", "tinyfl/lab", "", "", 4, keys, 2, many, tinyfl::kMaxPeers + 1);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::TooLarge));
}

TINYFL_TEST(a_record_without_credentials_parses) {
  uint8_t buf[512];
  const size_t n = make(buf, "n", "p", "", "");
  tinyfl::NodeConfigRecord rec;
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::Ok));
  CHECK(rec.username[0] == 0 && rec.password[0] == 0);
  CHECK(!rec.has_keys);
}

TINYFL_TEST(bad_records_are_refused_with_their_reason) {
  uint8_t buf[512];
  tinyfl::NodeConfigRecord rec;
  size_t n = make(buf, "node01", "tinyfl/lab", "", "s3cret");
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  n = make(buf, "node01", "tinyfl/lab", "u", "p", 1);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadVersion));
  n = make(buf, "node01", "tinyfl/lab", "u", "p", 2);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadVersion));
  n = make(buf, "node01", "tinyfl/lab", "u", "p", 3);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadVersion));
  n = make(buf, "", "tinyfl/lab", "u", "p");
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  n = make(buf, "node 1", "tinyfl/lab", "u", "p");  // not an id character
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  // an embedded NUL (found by the fuzzer: it cut the id to nothing unseen)
  n = make(buf, "node01", "tinyfl/lab", "u", "p");
  buf[9] = 0;
  const uint32_t crc = tinyfl::crc32(buf, n - 4);
  for (int i = 0; i < 4; ++i) buf[n - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  char long_user[tinyfl::kMaxCredential + 2];
  memset(long_user, 'u', sizeof long_user - 1);
  long_user[sizeof long_user - 1] = 0;
  n = make(buf, "node01", "tinyfl/lab", long_user, "");
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  n = make(buf, "node01", "tinyfl/lab", "u", "p");
  buf[10] ^= 1;
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadCrc));
}

TINYFL_TEST(every_truncation_is_an_error) {
  uint8_t buf[512];
  const size_t n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret");
  tinyfl::NodeConfigRecord rec;
  for (size_t cut = 0; cut < n; ++cut)
    CHECK(tinyfl::parse_node_config(buf, cut, &rec) != Status::Ok);
}

int main() { return tinyfl_test::run_all(); }
