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
            uint8_t version = 3, const uint8_t* keys = nullptr, uint8_t n_keys = 0) {
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
  size_t n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret", 3, keys, 2);
  tinyfl::NodeConfigRecord rec;
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::Ok));
  CHECK(rec.has_keys);
  CHECK(memcmp(rec.frame_key, keys, 32) == 0 && memcmp(rec.fleet_key, keys + 32, 32) == 0);
  n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret", 3, keys, 1);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n, &rec)), static_cast<int>(Status::BadValue));
  n = make(buf, "node01", "tinyfl/lab", "node01", "s3cret", 3, keys, 2);
  CHECK_EQ(static_cast<int>(tinyfl::parse_node_config(buf, n - 5, &rec)), static_cast<int>(Status::Truncated));
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
