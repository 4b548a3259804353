// The node state machine against a scripted in-memory byte pipe: what it sends after CONNACK, how
// it serves and rejects rounds, and that an unacknowledged UPDATE survives a reconnect. The same
// behaviour runs against a real mosquitto in tests/integration/test_node.py.
#include "../check.h"
#include "tinyfl/crc32.h"
#include "tinyfl/label.h"
#include "tinyfl/mqtt.h"
#include "tinyfl/node.h"
#include "tinyfl/noise.h"
#include "tinyfl/secagg.h"
#include "tinyfl/wire.h"

using namespace tinyfl;

namespace {

constexpr uint16_t kD = 4, kK = 3;
const uint8_t kHash[8] = {1, 2, 3, 4, 5, 6, 7, 8};

class FakePort final : public Port {
 public:
  uint32_t now = 0;
  bool broken = false;
  uint8_t in[8192];
  size_t in_len = 0, in_pos = 0;
  uint8_t out[16384];
  size_t out_len = 0;
  int opens = 0;

  uint32_t millis() override { return now; }
  bool pipe_open() override {
    ++opens;
    broken = false;
    in_len = in_pos = 0;
    return true;
  }
  void pipe_close() override {}
  int32_t pipe_read(uint8_t* buf, size_t cap) override {
    if (broken) return -1;
    size_t n = in_len - in_pos < cap ? in_len - in_pos : cap;
    memcpy(buf, in + in_pos, n);
    in_pos += n;
    return static_cast<int32_t>(n);
  }
  int32_t pipe_write(const uint8_t* buf, size_t len) override {
    if (broken) return -1;
    if (out_len + len > sizeof out) return 0;
    memcpy(out + out_len, buf, len);
    out_len += len;
    return static_cast<int32_t>(len);
  }
  void wait(uint32_t) override {}
  uint32_t entropy() override { return 12345; }
  void log(const char* line) override {
    strncpy(last_log, line, sizeof last_log - 1);
  }
  void push(const uint8_t* p, size_t n) {
    memcpy(in + in_len, p, n);
    in_len += n;
  }
  char last_log[200] = {};
};

// One MQTT packet the node wrote.
struct Sent {
  uint8_t type;
  uint16_t packet_id;
  char topic[160];
  const uint8_t* payload;
  size_t payload_len;
};

// Splits the node's output into packets (fixed header, varint length) and describes each.
int parse_sent(const uint8_t* p, size_t len, Sent* sent, int max) {
  int n = 0;
  size_t pos = 0;
  while (pos < len && n < max) {
    uint32_t rem = 0;
    size_t used = 0;
    if (mqtt::decode_varint(p + pos + 1, len - pos - 1, &rem, &used) != Status::Ok) return -1;
    const uint8_t* body = p + pos + 1 + used;
    Sent& s = sent[n++];
    s = Sent{};
    s.type = p[pos] >> 4;
    if (s.type == 3) {  // PUBLISH
      const size_t tl = static_cast<size_t>(body[0] << 8 | body[1]);
      memcpy(s.topic, body + 2, tl < sizeof s.topic - 1 ? tl : sizeof s.topic - 1);
      const bool qos1 = (p[pos] & 0x06) != 0;
      size_t off = 2 + tl;
      if (qos1) {
        s.packet_id = static_cast<uint16_t>(body[off] << 8 | body[off + 1]);
        off += 2;
      }
      s.payload = body + off;
      s.payload_len = rem - off;
    } else if (s.type == 8) {  // SUBSCRIBE
      s.packet_id = static_cast<uint16_t>(body[0] << 8 | body[1]);
    }
    pos += 1 + used + rem;
  }
  return n;
}

const Sent* find_publish(const Sent* sent, int n, const char* topic) {
  for (int i = n - 1; i >= 0; --i)
    if (sent[i].type == 3 && strcmp(sent[i].topic, topic) == 0) return &sent[i];
  return nullptr;
}

// Whether the node wrote `text` anywhere in its output (a topic of a SUBSCRIBE, say).
bool sent_contains(const FakePort& port, const char* text) {
  const size_t n = strlen(text);
  for (size_t i = 0; i + n <= port.out_len; ++i)
    if (memcmp(port.out + i, text, n) == 0) return true;
  return false;
}

// A PUBLISH from the broker to the node (QoS 0: no packet id, so no PUBACK expected).
size_t broker_publish(uint8_t* buf, size_t cap, const char* topic, const uint8_t* payload, size_t len) {
  Writer w(buf, cap);
  if (mqtt::encode_publish(w, topic, payload, len, 0, false, false, 0) != Status::Ok) return 0;
  return w.size();
}

struct Fixture {
  FakePort port;
  CacheStorage<16, kD> storage;
  EmbeddingCache cache{storage};
  Node node{port, cache};
  uint8_t frame[2048];
  uint8_t packet[2100];
  float head[kK * (kD + 1)] = {};

  Fixture() {
    if (cache.configure(kD, kK, 1.0f / 64, 0) != Status::Ok) return;
    for (int i = 0; i < 12; ++i) {
      const int8_t v[kD] = {static_cast<int8_t>(i * 5), static_cast<int8_t>(60 - i * 5), 7, static_cast<int8_t>(-i)};
      if (cache.add(v, static_cast<uint8_t>(i % kK)) != Status::Ok) return;
    }
    NodeConfig cfg{};
    cfg.node_id = "n1";
    cfg.topic_prefix = "tinyfl/t";
    memcpy(cfg.model_hash, kHash, 8);
    cfg.keep_alive_s = 30;
    ok = node.begin(cfg) == Status::Ok;
  }

  // Brings the node online: CONNECT out, CONNACK in.
  void connect() {
    node.poll();
    const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    port.push(connack, sizeof connack);
    node.poll();
  }

  size_t global_frame(uint32_t round, const uint8_t* hash, uint16_t d, uint8_t bits = 8) {
    GlobalFields g{};
    g.round_id = round;
    memcpy(g.model_hash, hash, 8);
    g.embed_dim = d;
    g.n_classes = kK;
    g.epochs = 2;
    g.batch_size = 4;
    g.lr = 0.1f;
    g.uplink_bits = bits;
    g.uplink_scale_mode = 1;
    g.seed = 9;
    g.head.bits = 32;
    g.head.rows = kK;
    g.head.cols = static_cast<uint16_t>(d + 1);
    g.head.values = head;
    size_t len = 0;
    return encode_global(g, frame, sizeof frame, &len) == Status::Ok ? len : 0;
  }

  void send_global(size_t len) {
    const size_t n = broker_publish(packet, sizeof packet, "tinyfl/t/global", frame, len);
    port.push(packet, n);
    node.poll();
  }

  bool ok = false;
};

}  // namespace

TINYFL_TEST(node_announces_after_connack) {
  static Fixture f;
  CHECK(f.ok);
  f.connect();
  CHECK(f.node.online());
  Sent sent[16];
  const int n = parse_sent(f.port.out, f.port.out_len, sent, 16);
  CHECK(n >= 4);
  CHECK_EQ(sent[0].type, 1);  // CONNECT first
  const Sent* status = find_publish(sent, n, "tinyfl/t/nodes/n1/status");
  CHECK(status != nullptr && status->payload_len == 6 && memcmp(status->payload, "online", 6) == 0);
  const Sent* hello = find_publish(sent, n, "tinyfl/t/nodes/n1/hello");
  CHECK(hello != nullptr);
  if (hello != nullptr) {
    HelloView h{};
    CHECK(decode_hello_frame(hello->payload, hello->payload_len, nullptr, &h) == Status::Ok);
    CHECK_EQ(h.n_samples, 12);
    CHECK_EQ(h.embed_dim, kD);
    CHECK_EQ(h.n_classes, kK);
    CHECK(memcmp(h.model_hash, kHash, 8) == 0);
  }
  CHECK_EQ(sent[n - 1].type, 8);  // SUBSCRIBE to the global topic last
  CHECK(!sent_contains(f.port, "/label"));  // no label hook: no label topic
}

TINYFL_TEST(node_rejects_wrong_model_and_shape_then_serves) {
  static Fixture f;
  f.connect();
  const uint8_t other[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  f.send_global(f.global_frame(1, other, kD));
  CHECK(strstr(f.port.last_log, "wrong_model") != nullptr);
  f.send_global(f.global_frame(2, kHash, kD - 1));
  CHECK(strstr(f.port.last_log, "wrong_shape") != nullptr);
  // A NaN weight in a frame that is otherwise valid (the encoder refuses to write one).
  const size_t len = f.global_frame(3, kHash, kD);
  const size_t first_value = len - 4 - 4 * kK * (kD + 1);
  const float nan = NAN;
  memcpy(f.frame + first_value, &nan, 4);
  const uint32_t crc = crc32(f.frame, len - 4);
  for (int i = 0; i < 4; ++i) f.frame[len - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  f.send_global(len);
  CHECK(strstr(f.port.last_log, "non_finite") != nullptr);
  CHECK_EQ(f.node.counters().globals_rejected, 3);
  f.port.out_len = 0;
  f.send_global(f.global_frame(4, kHash, kD));
  CHECK(f.node.online());
  CHECK_EQ(f.node.counters().rounds_served, 1);
  Sent sent[8];
  const int n = parse_sent(f.port.out, f.port.out_len, sent, 8);
  const Sent* up = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
  CHECK(up != nullptr);
  if (up != nullptr) {
    UpdateView u{};
    CHECK(decode_update_frame(up->payload, up->payload_len, nullptr, &u) == Status::Ok);
    CHECK_EQ(u.round_id, 4);
    CHECK_EQ(u.n_samples, 12);
    CHECK(u.loss > 0.0f);
    CHECK_EQ(u.delta.bits, 8);
  }
  // The same round again (a retained GLOBAL after reconnect) is not trained twice.
  f.send_global(f.global_frame(4, kHash, kD));
  CHECK_EQ(f.node.counters().rounds_served, 1);
}

TINYFL_TEST(unacknowledged_update_is_sent_again_after_reconnect) {
  static Fixture f;
  f.connect();
  f.port.out_len = 0;
  f.send_global(f.global_frame(1, kHash, kD));
  Sent sent[8];
  int n = parse_sent(f.port.out, f.port.out_len, sent, 8);
  const Sent* first = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
  CHECK(first != nullptr);
  if (first == nullptr) return;
  static uint8_t first_payload[2048];
  const size_t first_len = first->payload_len;
  memcpy(first_payload, first->payload, first_len);

  f.port.broken = true;  // the link dies before the PUBACK arrives
  f.node.poll();
  CHECK(!f.node.online());
  f.port.now += 70000;  // past any backoff
  f.port.out_len = 0;
  f.connect();
  CHECK(f.node.online());
  CHECK_EQ(f.port.opens, 2);
  f.send_global(f.global_frame(1, kHash, kD));  // the retained GLOBAL comes back
  n = parse_sent(f.port.out, f.port.out_len, sent, 8);
  const Sent* again = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
  CHECK(again != nullptr);
  if (again != nullptr) {
    CHECK_EQ(again->payload_len, first_len);
    CHECK(memcmp(again->payload, first_payload, first_len) == 0);  // the same bytes, not retrained
    const uint8_t puback[] = {0x40, 0x02, static_cast<uint8_t>(again->packet_id >> 8),
                              static_cast<uint8_t>(again->packet_id)};
    f.port.push(puback, sizeof puback);
    f.node.poll();
  }
  CHECK_EQ(f.node.counters().rounds_served, 1);
  CHECK_EQ(f.node.counters().updates_resent, 0);  // unacknowledged: re-sent as such on reconnect
}

TINYFL_TEST(acknowledged_update_is_sent_again_when_its_round_is_asked_again) {
  // The broker acknowledged the UPDATE and then died with it: after the coordinator reconnects it
  // publishes the round's GLOBAL again, and the node answers with the same bytes, once per ask.
  static Fixture f;
  f.connect();
  f.port.out_len = 0;
  f.send_global(f.global_frame(1, kHash, kD));
  Sent sent[8];
  int n = parse_sent(f.port.out, f.port.out_len, sent, 8);
  const Sent* first = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
  CHECK(first != nullptr);
  if (first == nullptr) return;
  static uint8_t first_payload[2048];
  const size_t first_len = first->payload_len;
  memcpy(first_payload, first->payload, first_len);
  const uint8_t puback[] = {0x40, 0x02, static_cast<uint8_t>(first->packet_id >> 8),
                            static_cast<uint8_t>(first->packet_id)};
  f.port.push(puback, sizeof puback);
  f.node.poll();
  for (int ask = 1; ask <= 2; ++ask) {
    f.port.out_len = 0;
    f.send_global(f.global_frame(1, kHash, kD));
    n = parse_sent(f.port.out, f.port.out_len, sent, 8);
    const Sent* again = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
    CHECK(again != nullptr && again->payload_len == first_len &&
          memcmp(again->payload, first_payload, first_len) == 0);
    if (again == nullptr) return;
    const uint8_t ack[] = {0x40, 0x02, static_cast<uint8_t>(again->packet_id >> 8),
                           static_cast<uint8_t>(again->packet_id)};
    f.port.push(ack, sizeof ack);
    f.node.poll();
    CHECK_EQ(f.node.counters().updates_resent, static_cast<uint32_t>(ask));
  }
  CHECK_EQ(f.node.counters().rounds_served, 1);
  // An older round's GLOBAL is not an ask for this one.
  f.port.out_len = 0;
  f.send_global(f.global_frame(1, kHash, kD));  // (still round 1: sent again)
  f.send_global(f.global_frame(2, kHash, kD));  // round 2 trained: now round 1 is history
  f.port.out_len = 0;
  f.send_global(f.global_frame(1, kHash, kD));
  n = parse_sent(f.port.out, f.port.out_len, sent, 8);
  CHECK(find_publish(sent, n, "tinyfl/t/nodes/n1/update") == nullptr);
}

TINYFL_TEST(a_round_id_far_ahead_is_ignored_and_logged) {
  static Fixture f;
  f.connect();
  f.send_global(f.global_frame(100, kHash, kD));
  CHECK_EQ(f.node.counters().rounds_served, 1);
  f.send_global(f.global_frame(100 + kRoundIdMargin + 1, kHash, kD));
  CHECK(strstr(f.port.last_log, "round_ahead") != nullptr);
  CHECK_EQ(f.node.counters().rounds_served, 1);
  f.send_global(f.global_frame(100 + kRoundIdMargin, kHash, kD));  // at the margin: served
  CHECK_EQ(f.node.counters().rounds_served, 2);
}

namespace {

const uint8_t kFrameKey[kFrameKeyLen] = {0xA1, 0xA2};
const uint8_t kFleetKey[kFrameKeyLen] = {0xF1, 0xF2};

// A node of a provisioned fleet: it signs what it sends and checks every GLOBAL.
struct KeyedFixture : Fixture {
  KeyedFixture() { ok = ok && node.begin(keyed_config()) == Status::Ok; }

  static NodeConfig keyed_config() {
    NodeConfig cfg{};
    cfg.node_id = "n1";
    cfg.topic_prefix = "tinyfl/t";
    memcpy(cfg.model_hash, kHash, 8);
    cfg.frame_key = kFrameKey;
    cfg.fleet_key = kFleetKey;
    return cfg;
  }

  size_t signed_global(uint32_t round, const uint8_t* key, const char* topic, const uint8_t* hash = kHash) {
    const size_t plain = global_frame(round, hash, kD);
    if (plain == 0) return 0;
    GlobalView v{};
    if (decode_global_frame(frame, plain, nullptr, &v) != Status::Ok) return 0;
    // re-sign: the same header and body, then the tag instead of the CRC
    frame[5] = kAuthTag;
    const FrameAuth auth{key, topic, strlen(topic)};
    frame_tag(auth, frame, plain - kCrcLen, frame + plain - kCrcLen);
    return plain - kCrcLen + kTagLen;
  }
};

// A keyed node whose application takes labels from its label topic (tinyfl/label.h).
struct LabelFixture : KeyedFixture {
  LabelReceiver labels{node, port, kK};

  LabelFixture() {
    labels.attach();  // before begin(), as an application does
    ok = ok && node.begin(keyed_config()) == Status::Ok;
  }

  // A LABEL of one interval (label from receipt for duration_ms) signed with `key` for `topic`,
  // written here from docs/WIRE.md: the firmware has no LABEL encoder.
  size_t label_frame(uint32_t round, uint64_t seq, int16_t label, uint32_t duration_ms, const uint8_t* key,
                     const char* topic) {
    Writer w(frame, sizeof frame);
    const uint8_t header[kFrameHeaderSize] = {'T', 'F', kWireVersion, static_cast<uint8_t>(FrameType::Label), 0,
                                              kAuthTag};
    w.bytes(header, sizeof header);
    w.u32(round);
    w.u32(static_cast<uint32_t>(seq));
    w.u32(static_cast<uint32_t>(seq >> 32));
    w.u8(1);
    w.u32(0);
    w.u32(duration_ms);
    w.u16(static_cast<uint16_t>(label));
    const size_t signed_len = w.size();
    uint8_t* tag = w.reserve(kTagLen);
    if (tag == nullptr) return 0;
    frame_tag(FrameAuth{key, topic, strlen(topic)}, frame, signed_len, tag);
    return w.size();
  }

  void send_label(const char* topic, size_t len) {
    port.push(packet, broker_publish(packet, sizeof packet, topic, frame, len));
    node.poll();
  }
};

}  // namespace

TINYFL_TEST(a_node_hands_its_label_topic_to_the_label_receiver) {
  static LabelFixture f;
  CHECK(f.ok);
  f.connect();
  CHECK(sent_contains(f.port, "tinyfl/t/nodes/n1/label"));  // subscribed, after the global topic
  const char* topic = "tinyfl/t/nodes/n1/label";
  f.port.now = 1000;
  f.send_label(topic, f.label_frame(0, 7, 2, 500, kFrameKey, topic));
  CHECK_EQ(f.labels.counters().accepted, 1);
  CHECK(strstr(f.port.last_log, "labels: seq 0000000000000007, round 0, 1 intervals") != nullptr);
  CHECK_EQ(f.labels.label_at(1000), 2);
  CHECK_EQ(f.labels.label_at(1499), 2);
  CHECK_EQ(f.labels.label_at(1500), kNoLabel);
  CHECK_EQ(f.labels.schedule().size(), 0);  // over, so dropped: 2^32 ms later it stays over

  f.send_label(topic, f.label_frame(0, 7, 2, 500, kFrameKey, topic));  // the same frame again
  CHECK(strstr(f.port.last_log, "LABEL refused: stale_round") != nullptr);
  f.send_label(topic, f.label_frame(0, 8, 1, 500, kFleetKey, topic));  // not the node's key
  CHECK(strstr(f.port.last_log, "LABEL refused: bad_tag") != nullptr);
  f.send_label(topic, f.label_frame(0, 8, kK, 500, kFrameKey, topic));  // not one of its classes
  CHECK(strstr(f.port.last_log, "LABEL refused: bad_value") != nullptr);
  const char* other = "tinyfl/t/nodes/n2/label";  // another node's: not this node's business
  f.send_label(other, f.label_frame(0, 9, 1, 500, kFrameKey, other));
  CHECK_EQ(f.labels.counters().accepted + f.labels.counters().refused, 4);

  f.send_global(f.signed_global(5, kFleetKey, "tinyfl/t/global"));  // a round served
  CHECK_EQ(f.node.last_round(), 5);
  f.send_label(topic, f.label_frame(4, 10, 1, 500, kFrameKey, topic));  // of an older round
  CHECK(strstr(f.port.last_log, "LABEL refused: stale_round (round 4") != nullptr);
  f.send_label(topic, f.label_frame(5, 10, 1, 500, kFrameKey, topic));
  CHECK_EQ(f.labels.counters().accepted, 2);
  CHECK_EQ(f.labels.counters().refused, 4);
  CHECK_EQ(f.labels.label_at(f.port.now), 1);
  // a genuine round the node does not serve (another model) still dates every older LABEL
  const uint8_t other_model[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  f.send_global(f.signed_global(6, kFleetKey, "tinyfl/t/global", other_model));
  CHECK(strstr(f.port.last_log, "wrong_model") != nullptr);
  CHECK_EQ(f.node.last_round(), 5);
  CHECK_EQ(f.node.newest_round(), 6);
  f.send_label(topic, f.label_frame(5, 11, 1, 500, kFrameKey, topic));
  CHECK(strstr(f.port.last_log, "LABEL refused: stale_round (round 5") != nullptr);
  // ... but a forged one does not: an unsigned GLOBAL of round 7 leaves the node at 6
  f.send_global(f.global_frame(7, kHash, kD));
  CHECK_EQ(f.node.newest_round(), 6);
  CHECK(f.node.online());
}

TINYFL_TEST(a_keyed_node_signs_its_frames_and_serves_only_signed_globals) {
  static KeyedFixture f;
  CHECK(f.ok);
  f.connect();
  Sent sent[16];
  int n = parse_sent(f.port.out, f.port.out_len, sent, 16);
  const Sent* hello = find_publish(sent, n, "tinyfl/t/nodes/n1/hello");
  CHECK(hello != nullptr);
  if (hello == nullptr) return;
  const char* hello_topic = "tinyfl/t/nodes/n1/hello";
  const FrameAuth hello_auth{kFrameKey, hello_topic, strlen(hello_topic)};
  HelloView h{};
  CHECK(decode_hello_frame(hello->payload, hello->payload_len, &hello_auth, &h) == Status::Ok);
  const FrameAuth wrong_key{kFleetKey, hello_topic, strlen(hello_topic)};
  CHECK(decode_hello_frame(hello->payload, hello->payload_len, &wrong_key, &h) == Status::BadTag);

  f.send_global(f.global_frame(1, kHash, kD));  // a CRC frame: anyone could have sent it
  CHECK(strstr(f.port.last_log, "unauthenticated") != nullptr);
  f.send_global(f.signed_global(2, kFrameKey, "tinyfl/t/global"));  // a node's key, not the fleet's
  CHECK(strstr(f.port.last_log, "bad_tag") != nullptr);
  f.send_global(f.signed_global(3, kFleetKey, "tinyfl/u/global"));  // signed for another fleet topic
  CHECK(strstr(f.port.last_log, "bad_tag") != nullptr);
  CHECK_EQ(f.node.counters().rounds_served, 0);
  CHECK_EQ(f.node.counters().globals_rejected, 3);

  f.port.out_len = 0;
  f.send_global(f.signed_global(4, kFleetKey, "tinyfl/t/global"));
  CHECK_EQ(f.node.counters().rounds_served, 1);
  n = parse_sent(f.port.out, f.port.out_len, sent, 16);
  const Sent* up = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
  CHECK(up != nullptr);
  if (up == nullptr) return;
  const char* up_topic = "tinyfl/t/nodes/n1/update";
  const FrameAuth up_auth{kFrameKey, up_topic, strlen(up_topic)};
  UpdateView u{};
  CHECK(decode_update_frame(up->payload, up->payload_len, &up_auth, &u) == Status::Ok);
  CHECK_EQ(u.round_id, 4);
  // moved to another node's topic, the tag no longer verifies
  const char* other = "tinyfl/t/nodes/n2/update";
  const FrameAuth other_auth{kFrameKey, other, strlen(other)};
  CHECK(decode_update_frame(up->payload, up->payload_len, &other_auth, &u) == Status::BadTag);
}

namespace {

const uint8_t kSeedP2[32] = {0x22};
const uint8_t kSeedP3[32] = {0x33};
const PeerSeed kPeers[] = {{"p2", kSeedP2}, {"p3", kSeedP3}};

// A node that shares secure-aggregation seeds with p2 and p3.
struct SecAggFixture : Fixture {
  SecAggFixture() {
    NodeConfig cfg{};
    cfg.node_id = "n1";
    cfg.topic_prefix = "tinyfl/t";
    memcpy(cfg.model_hash, kHash, 8);
    cfg.peers = kPeers;
    cfg.n_peers = 2;
    ok = ok && node.begin(cfg) == Status::Ok;
  }

  size_t masked_global(uint32_t round, uint16_t n_selected, const IdRef* selected, uint32_t noise_var = 0) {
    GlobalFields g{};
    g.round_id = round;
    memcpy(g.model_hash, kHash, 8);
    g.embed_dim = kD;
    g.n_classes = kK;
    g.epochs = 2;
    g.batch_size = 4;
    g.lr = 0.1f;
    g.clip_norm = 1.0f;
    g.uplink_bits = 8;
    g.seed = 9;
    g.n_selected = n_selected;
    g.selected = selected;
    g.head.bits = 32;
    g.head.rows = kK;
    g.head.cols = kD + 1;
    g.head.values = head;
    g.masked = true;
    g.mask_bits = 17;
    g.threshold = 2;
    g.secagg_scale = 1.0f / 127.0f;
    g.noise_var = noise_var;
    size_t len = 0;
    return encode_global(g, frame, sizeof frame, &len) == Status::Ok ? len : 0;
  }

  size_t unmask(uint32_t round, uint16_t survivors, const char* dropped) {
    const IdRef ids[1] = {{dropped, static_cast<uint8_t>(strlen(dropped))}};
    const UnmaskFields u{round, survivors, 1, ids, nullptr};
    size_t len = 0;
    return encode_unmask(u, frame, sizeof frame, &len) == Status::Ok ? len : 0;
  }
};

}  // namespace

TINYFL_TEST(a_masked_round_sends_codes_plus_masks_and_reveals_only_what_is_asked) {
  static SecAggFixture f;
  CHECK(f.ok);
  f.connect();
  const IdRef selected[3] = {{"n1", 2}, {"p2", 2}, {"p3", 2}};
  f.port.out_len = 0;
  f.send_global(f.masked_global(5, 3, selected));
  CHECK_EQ(f.node.counters().rounds_served, 1);
  Sent sent[8];
  int n = parse_sent(f.port.out, f.port.out_len, sent, 8);
  const Sent* up = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
  CHECK(up != nullptr);
  if (up == nullptr) return;
  UpdateView u{};
  CHECK(decode_update_frame(up->payload, up->payload_len, nullptr, &u) == Status::Ok);
  CHECK(u.masked && u.masked_delta.bits == 17 && u.masked_delta.size() == kK * (kD + 1u));
  // strip the masks (n1 < p2 and n1 < p3: both were added): what is left are 8-bit codes
  static uint32_t values[kK * (kD + 1)];
  for (size_t i = 0; i < u.masked_delta.size(); ++i) values[i] = u.masked_delta.value(i);
  uint8_t r2[kRoundSeedLen], r3[kRoundSeedLen];
  CHECK(secagg_round_seed(kSeedP2, 5, r2) == Status::Ok && secagg_round_seed(kSeedP3, 5, r3) == Status::Ok);
  CHECK(secagg_apply_mask(r2, values, u.masked_delta.size(), 17, false) == Status::Ok);
  CHECK(secagg_apply_mask(r3, values, u.masked_delta.size(), 17, false) == Status::Ok);
  bool codes = true, some = false;
  for (size_t i = 0; i < u.masked_delta.size(); ++i) {
    const int32_t c = values[i] >= (1u << 16) ? static_cast<int32_t>(values[i]) - (1 << 17) : static_cast<int32_t>(values[i]);
    codes = codes && c >= -127 && c <= 127;
    some = some || c != 0;
  }
  CHECK(codes && some);

  // too few survivors for the threshold (2): nothing revealed
  f.port.out_len = 0;
  f.send_global(f.unmask(5, 1, "p3"));
  CHECK(strstr(f.port.last_log, "unmask refused") != nullptr);
  // a peer that was not selected, or the wrong count: refused
  f.send_global(f.unmask(5, 2, "p9"));
  CHECK(strstr(f.port.last_log, "unmask refused: bad_value") != nullptr);
  CHECK_EQ(f.node.counters().masks_revealed, 0);
  // the real request: r_{n1,p3} of round 5, signed as its UPDATEs are (here: a CRC fleet)
  f.port.out_len = 0;
  f.send_global(f.unmask(5, 2, "p3"));
  CHECK_EQ(f.node.counters().masks_revealed, 1);
  n = parse_sent(f.port.out, f.port.out_len, sent, 8);
  const Sent* rev = find_publish(sent, n, "tinyfl/t/nodes/n1/update");
  CHECK(rev != nullptr);
  if (rev == nullptr) return;
  RevealView r{};
  CHECK(decode_reveal_frame(rev->payload, rev->payload_len, nullptr, &r) == Status::Ok);
  CHECK(r.round_id == 5 && r.n == 1 && r.peer(0).len == 2 && memcmp(r.peer(0).id, "p3", 2) == 0);
  CHECK(memcmp(r.seed(0), r3, kRoundSeedLen) == 0);
  // once per round: a second request gets nothing
  f.send_global(f.unmask(5, 2, "p3"));
  CHECK_EQ(f.node.counters().masks_revealed, 1);
  CHECK(strstr(f.port.last_log, "stale_round") != nullptr);
}

// The masked values of round 5 from a fresh node, with and without noise.
static bool masked_values(uint32_t noise_var, uint32_t* out, size_t n) {
  static SecAggFixture fixtures[2];
  SecAggFixture& f = fixtures[noise_var != 0 ? 1 : 0];
  if (!f.ok) return false;
  f.connect();
  const IdRef selected[3] = {{"n1", 2}, {"p2", 2}, {"p3", 2}};
  f.port.out_len = 0;
  f.send_global(f.masked_global(5, 3, selected, noise_var));
  Sent sent[8];
  const int k = parse_sent(f.port.out, f.port.out_len, sent, 8);
  const Sent* up = find_publish(sent, k, "tinyfl/t/nodes/n1/update");
  UpdateView u{};
  if (up == nullptr || decode_update_frame(up->payload, up->payload_len, nullptr, &u) != Status::Ok ||
      !u.masked || u.masked_delta.size() != n)
    return false;
  for (size_t i = 0; i < n; ++i) out[i] = u.masked_delta.value(i);
  // with noise the statistics go out as 0 (outside the guarantee); without, the real ones
  const bool blank = u.loss == 0.0f && u.accuracy == 0.0f && u.update_norm == 0.0f;
  return blank == (noise_var != 0);
}

TINYFL_TEST(distributed_dp_adds_exactly_the_noise_of_the_nodes_key_under_the_masks) {
  constexpr size_t n = kK * (kD + 1u);
  static uint32_t plain[n], noisy[n], noise[n];
  CHECK(masked_values(0, plain, n));
  CHECK(masked_values(300, noisy, n));
  // the node's noise key: from both of its pair seeds; its noise of round 5, modulo 2^17
  uint8_t key[kNoiseKeyLen] = {};
  CHECK(noise_key_add(kSeedP2, key) == Status::Ok && noise_key_add(kSeedP3, key) == Status::Ok);
  CHECK(add_discrete_gaussian(key, 5, 300, noise, n, 17) == Status::Ok);
  bool exact = true, some = false;
  for (size_t i = 0; i < n; ++i) {
    exact = exact && ((noisy[i] - plain[i]) & 0x1FFFFu) == noise[i];
    some = some || noise[i] != 0;
  }
  CHECK(exact && some);
}

TINYFL_TEST(a_masked_round_with_a_peer_it_has_no_seed_for_is_refused) {
  static SecAggFixture f;
  f.connect();
  const IdRef selected[3] = {{"n1", 2}, {"p2", 2}, {"zz", 2}};
  f.send_global(f.masked_global(6, 3, selected));
  CHECK_EQ(f.node.counters().rounds_served, 0);
  CHECK(strstr(f.port.last_log, "no_key") != nullptr);
}

TINYFL_TEST(begin_rejects_bad_config) {
  FakePort port;
  CacheStorage<16, kD> storage;
  EmbeddingCache cache{storage};
  Node node{port, cache};
  NodeConfig cfg{};
  cfg.node_id = "n1";
  cfg.topic_prefix = "tinyfl/t";
  CHECK(node.begin(cfg) == Status::NoData);  // no samples configured
  CHECK(cache.configure(kD, kK, 0.5f, 0) == Status::Ok);
  cfg.node_id = "bad id!";
  CHECK(node.begin(cfg) == Status::BadValue);
  cfg.node_id = "n1";
  cfg.topic_prefix = "";
  CHECK(node.begin(cfg) == Status::BadValue);
  cfg.topic_prefix = "tinyfl/t";
  const uint8_t key[kFrameKeyLen] = {1};
  cfg.frame_key = key;  // one key without the other
  CHECK(node.begin(cfg) == Status::BadValue);
}

int main() { return tinyfl_test::run_all(); }
