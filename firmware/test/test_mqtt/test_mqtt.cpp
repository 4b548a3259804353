// Sans-IO MQTT client: exact packet bytes written by hand from the MQTT 3.1.1 spec (OASIS standard,
// sections 2.2.3 and 3.x), the broker's replies as byte strings, and timers driven by fake time.
#include "../check.h"
#include "tinyfl/mqtt.h"

using namespace tinyfl;
using namespace tinyfl::mqtt;

namespace {

// An event with its topic and payload copied out, since the originals live only until next feed().
struct Seen {
  EventType type;
  uint16_t packet_id;
  uint8_t code;
  uint8_t qos;
  bool retain;
  bool has_topic;
  char topic[64];
  uint16_t topic_len;
  bool has_payload;
  uint8_t payload[256];
  size_t payload_len;
};

Seen copy_event(const Event& e) {
  Seen s{};
  s.type = e.type;
  s.packet_id = e.packet_id;
  s.code = e.code;
  s.qos = e.qos;
  s.retain = e.retain;
  s.has_topic = e.topic != nullptr;
  s.topic_len = e.topic_len;
  if (e.topic != nullptr && e.topic_len < sizeof s.topic) memcpy(s.topic, e.topic, e.topic_len);
  s.has_payload = e.payload != nullptr;
  s.payload_len = e.payload_len;
  if (e.payload != nullptr && e.payload_len <= sizeof s.payload) memcpy(s.payload, e.payload, e.payload_len);
  return s;
}

// Feeds `len` bytes in chunks of `chunk` (0: all at once), collecting events. Returns the count.
int feed_all(Client& c, const uint8_t* data, size_t len, uint32_t now, Seen* out, int max, size_t chunk = 0) {
  int n = 0;
  size_t pos = 0;
  while (pos < len) {
    size_t avail = len - pos;
    if (chunk != 0 && avail > chunk) avail = chunk;
    size_t off = 0;
    while (off < avail) {
      Event ev;
      size_t used = c.feed(data + pos + off, avail - off, now, &ev);
      if (used == 0 || used > avail - off) return -1;  // the client must always make progress
      off += used;
      if (ev.type != EventType::None && n < max) out[n++] = copy_event(ev);
    }
    pos += avail;
  }
  return n;
}

bool tx_equals(const Client& c, const uint8_t* expect, size_t len) {
  return c.tx_size() == len && memcmp(c.tx_data(), expect, len) == 0;
}

ConnectOptions basic_options() {
  ConnectOptions o{};
  o.client_id = "n1";
  o.keep_alive_s = 60;
  o.clean_session = true;
  return o;
}

const uint8_t kConnackOk[] = {0x20, 0x02, 0x00, 0x00};

struct Fixture {
  uint8_t rx[256];
  uint8_t tx[256];
  Client client{rx, sizeof rx, tx, sizeof tx};
};

// Connects with keep-alive `ka` at t=0 and accepts; returns true when Connected was reported.
bool bring_up(Client& c, uint16_t ka = 60) {
  ConnectOptions o = basic_options();
  o.keep_alive_s = ka;
  if (c.connect(o, 0) != Status::Ok) return false;
  c.tx_consume(c.tx_size());
  Seen ev[2];
  int n = feed_all(c, kConnackOk, sizeof kConnackOk, 0, ev, 2);
  return n == 1 && ev[0].type == EventType::Connected && c.connected() && c.tx_size() == 0;
}

}  // namespace

// ---- remaining length (2.2.3) -------------------------------------------------------------------

TINYFL_TEST(varint_boundaries_match_spec_table) {
  struct Case {
    uint32_t value;
    uint8_t bytes[4];
    size_t len;
  };
  const Case cases[] = {
      {0, {0x00}, 1},
      {127, {0x7F}, 1},
      {128, {0x80, 0x01}, 2},
      {16383, {0xFF, 0x7F}, 2},
      {16384, {0x80, 0x80, 0x01}, 3},
      {2097151, {0xFF, 0xFF, 0x7F}, 3},
      {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
      {268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
  };
  for (const Case& k : cases) {
    uint8_t buf[4];
    Writer w(buf, sizeof buf);
    CHECK(encode_varint(w, k.value) == Status::Ok);
    CHECK_EQ(w.size(), k.len);
    CHECK(memcmp(buf, k.bytes, k.len) == 0);
    CHECK_EQ(varint_size(k.value), k.len);
    uint32_t v = 0;
    size_t used = 0;
    CHECK(decode_varint(k.bytes, k.len, &v, &used) == Status::Ok);
    CHECK_EQ(v, k.value);
    CHECK_EQ(used, k.len);
  }
  CHECK_EQ(varint_size(268435456u), 0);
  Writer w(nullptr, 0);
  CHECK(encode_varint(w, 268435456u) == Status::TooLarge);
}

TINYFL_TEST(varint_decode_rejects_fifth_byte_and_truncation) {
  const uint8_t five[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
  uint32_t v;
  size_t used;
  CHECK(decode_varint(five, sizeof five, &v, &used) == Status::TooLarge);
  const uint8_t cut[] = {0x80, 0x80};
  CHECK(decode_varint(cut, sizeof cut, &v, &used) == Status::Truncated);
  CHECK(decode_varint(cut, 0, &v, &used) == Status::Truncated);
  // 3.1.1 does not demand the shortest form, so a padded zero is accepted.
  const uint8_t padded[] = {0x80, 0x00};
  CHECK(decode_varint(padded, sizeof padded, &v, &used) == Status::Ok);
  CHECK_EQ(v, 0);
  CHECK_EQ(used, 2);
}

TINYFL_TEST(client_rejects_fifth_remaining_length_byte) {
  Fixture f;
  CHECK(bring_up(f.client));
  const uint8_t bad[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
  Event ev;
  size_t used = f.client.feed(bad, sizeof bad, 1, &ev);
  CHECK_EQ(used, 5);  // the 4th length byte still continuing is already the violation
  CHECK(ev.type == EventType::ProtocolError);
  CHECK_EQ(ev.code, static_cast<uint8_t>(Status::TooLarge));
  CHECK(!f.client.connected());
}

TINYFL_TEST(client_parses_multibyte_remaining_length) {
  // PUBLISH with remaining length 200 (0xC8 0x01): topic "a", 197 payload bytes.
  Fixture f;
  CHECK(bring_up(f.client));
  uint8_t pkt[203] = {0x30, 0xC8, 0x01, 0x00, 0x01, 'a'};
  for (int i = 0; i < 197; ++i) pkt[6 + i] = static_cast<uint8_t>(i);
  Seen ev[2];
  CHECK_EQ(feed_all(f.client, pkt, sizeof pkt, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::Message);
  CHECK_EQ(ev[0].payload_len, 197);
  CHECK_EQ(ev[0].payload[196], 196);
}

// ---- CONNECT / CONNACK (3.1, 3.2) ---------------------------------------------------------------

TINYFL_TEST(connect_minimal_bytes) {
  uint8_t buf[64];
  Writer w(buf, sizeof buf);
  CHECK(encode_connect(w, basic_options()) == Status::Ok);
  const uint8_t expect[] = {0x10, 0x0E,                          // CONNECT, remaining length 14
                            0x00, 0x04, 'M',  'Q', 'T', 'T',     // protocol name
                            0x04,                                // level 4 = 3.1.1
                            0x02,                                // clean session
                            0x00, 0x3C,                          // keep-alive 60 s
                            0x00, 0x02, 'n',  '1'};              // client id
  CHECK_EQ(w.size(), sizeof expect);
  CHECK(memcmp(buf, expect, sizeof expect) == 0);
}

TINYFL_TEST(connect_with_will_and_credentials_bytes) {
  ConnectOptions o = basic_options();
  const uint8_t off[] = {'o', 'f', 'f'};
  o.will_topic = "s";
  o.will_payload = off;
  o.will_len = 3;
  o.will_qos = 1;
  o.will_retain = true;
  o.keep_alive_s = 30;
  o.username = "u";
  o.password = "p";
  uint8_t buf[64];
  Writer w(buf, sizeof buf);
  CHECK(encode_connect(w, o) == Status::Ok);
  const uint8_t expect[] = {0x10, 0x1C,
                            0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
                            // user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 |
                            // will 0x04 | clean 0x02
                            0xEE,
                            0x00, 0x1E,
                            0x00, 0x02, 'n', '1',
                            0x00, 0x01, 's',
                            0x00, 0x03, 'o', 'f', 'f',
                            0x00, 0x01, 'u',
                            0x00, 0x01, 'p'};
  CHECK_EQ(w.size(), sizeof expect);
  CHECK(memcmp(buf, expect, sizeof expect) == 0);

  Writer sizing(nullptr, 0);
  CHECK(encode_connect(sizing, o) == Status::Ok);
  CHECK_EQ(sizing.size(), sizeof expect);
}

TINYFL_TEST(connect_username_only_and_no_clean_session) {
  ConnectOptions o = basic_options();
  o.clean_session = false;
  o.username = "u";
  o.keep_alive_s = 0;
  uint8_t buf[64];
  Writer w(buf, sizeof buf);
  CHECK(encode_connect(w, o) == Status::Ok);
  const uint8_t expect[] = {0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x80, 0x00, 0x00,
                            0x00, 0x02, 'n',  '1',  0x00, 0x01, 'u'};
  CHECK_EQ(w.size(), sizeof expect);
  CHECK(memcmp(buf, expect, sizeof expect) == 0);
}

TINYFL_TEST(connect_rejects_bad_options) {
  Writer w(nullptr, 0);
  ConnectOptions o = basic_options();
  o.password = "p";  // password needs a user name in 3.1.1
  CHECK(encode_connect(w, o) == Status::BadValue);
  o = basic_options();
  o.client_id = nullptr;
  CHECK(encode_connect(w, o) == Status::BadValue);
  o = basic_options();
  o.client_id = "";
  CHECK(encode_connect(w, o) == Status::Ok);
  o.clean_session = false;
  CHECK(encode_connect(w, o) == Status::BadValue);
  o = basic_options();
  o.will_topic = "s";
  o.will_qos = 3;
  CHECK(encode_connect(w, o) == Status::BadValue);
  o.will_qos = 0;
  o.will_topic = "s/#";
  CHECK(encode_connect(w, o) == Status::BadValue);
  o.will_topic = "s";
  o.will_len = 2;  // length without bytes
  CHECK(encode_connect(w, o) == Status::BadValue);

  // A rejected connect() leaves the client as it was.
  Fixture f;
  CHECK(bring_up(f.client));
  CHECK(f.client.connect(o, 5) == Status::BadValue);
  CHECK(f.client.connected());
}

TINYFL_TEST(client_connect_queues_connect_and_accepts_connack) {
  Fixture f;
  CHECK(!f.client.connected());
  CHECK(f.client.connect(basic_options(), 0) == Status::Ok);
  CHECK(f.client.connecting());
  CHECK_EQ(f.client.tx_size(), 16);
  CHECK_EQ(f.client.tx_data()[0], 0x10);
  f.client.tx_consume(16);
  CHECK_EQ(f.client.tx_size(), 0);
  Seen ev[2];
  CHECK_EQ(feed_all(f.client, kConnackOk, sizeof kConnackOk, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::Connected);
  CHECK_EQ(ev[0].code, 0);
  CHECK(f.client.connected());
  CHECK(!f.client.connecting());
}

TINYFL_TEST(connack_refusal_codes) {
  for (uint8_t code = 1; code <= 5; ++code) {
    Fixture f;
    CHECK(f.client.connect(basic_options(), 0) == Status::Ok);
    const uint8_t connack[] = {0x20, 0x02, 0x00, code};
    Seen ev[2];
    CHECK_EQ(feed_all(f.client, connack, sizeof connack, 1, ev, 2), 1);
    CHECK(ev[0].type == EventType::ConnectRefused);
    CHECK_EQ(ev[0].code, code);
    CHECK(!f.client.connected());
    CHECK(!f.client.connecting());
    CHECK_EQ(f.client.tx_size(), 0);
    // Without a session, later bytes are swallowed and produce nothing.
    CHECK_EQ(feed_all(f.client, kConnackOk, sizeof kConnackOk, 2, ev, 2), 0);
    CHECK(!f.client.connected());
  }
}

TINYFL_TEST(connack_malformed_values) {
  const uint8_t bad[][4] = {
      {0x20, 0x02, 0x00, 0x06},  // reserved return code
      {0x20, 0x02, 0x02, 0x00},  // reserved acknowledge flag
      {0x20, 0x02, 0x01, 0x05},  // session present on a refusal
  };
  for (const auto& pkt : bad) {
    Fixture f;
    CHECK(f.client.connect(basic_options(), 0) == Status::Ok);
    Seen ev[2];
    CHECK_EQ(feed_all(f.client, pkt, 4, 1, ev, 2), 1);
    CHECK(ev[0].type == EventType::ProtocolError);
    CHECK_EQ(ev[0].code, static_cast<uint8_t>(Status::BadValue));
  }
  // session present = 1 with return code 0 is valid
  Fixture f;
  CHECK(f.client.connect(basic_options(), 0) == Status::Ok);
  const uint8_t present[] = {0x20, 0x02, 0x01, 0x00};
  Seen ev[2];
  CHECK_EQ(feed_all(f.client, present, 4, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::Connected);
}

TINYFL_TEST(packet_before_connack_is_protocol_error) {
  Fixture f;
  CHECK(f.client.connect(basic_options(), 0) == Status::Ok);
  const uint8_t pingresp[] = {0xD0, 0x00};
  Event ev;
  CHECK_EQ(f.client.feed(pingresp, 2, 1, &ev), 1);
  CHECK(ev.type == EventType::ProtocolError);
  CHECK_EQ(ev.code, static_cast<uint8_t>(Status::Protocol));
  CHECK(!f.client.connecting());
}

TINYFL_TEST(second_connack_is_protocol_error) {
  Fixture f;
  CHECK(bring_up(f.client));
  Seen ev[2];
  CHECK_EQ(feed_all(f.client, kConnackOk, sizeof kConnackOk, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::ProtocolError);
  CHECK(!f.client.connected());
}

// ---- SUBSCRIBE / SUBACK (3.8, 3.9) --------------------------------------------------------------

TINYFL_TEST(subscribe_bytes_and_suback) {
  Fixture f;
  CHECK(bring_up(f.client));
  uint16_t id = 0;
  CHECK(f.client.subscribe("tinyfl/f/global", 1, &id) == Status::Ok);
  CHECK_EQ(id, 1);
  const uint8_t expect[] = {0x82, 0x14, 0x00, 0x01, 0x00, 0x0F, 't', 'i', 'n', 'y', 'f', 'l',
                            '/',  'f',  '/',  'g',  'l',  'o',  'b', 'a', 'l', 0x01};
  CHECK(tx_equals(f.client, expect, sizeof expect));
  f.client.tx_consume(f.client.tx_size());

  const uint8_t suback[] = {0x90, 0x03, 0x00, 0x01, 0x01};
  Seen ev[2];
  CHECK_EQ(feed_all(f.client, suback, sizeof suback, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::SubAck);
  CHECK_EQ(ev[0].packet_id, 1);
  CHECK_EQ(ev[0].code, 1);
  // The same SUBACK again answers nothing outstanding.
  CHECK_EQ(feed_all(f.client, suback, sizeof suback, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::ProtocolError);
  CHECK_EQ(ev[0].code, static_cast<uint8_t>(Status::Protocol));
}

TINYFL_TEST(suback_failure_code_and_out_of_order_acks) {
  Fixture f;
  CHECK(bring_up(f.client));
  uint16_t a = 0, b = 0;
  CHECK(f.client.subscribe("x", 0, &a) == Status::Ok);
  CHECK(f.client.subscribe("y/+", 1, &b) == Status::Ok);
  CHECK_EQ(b, a + 1);
  const uint8_t acks[] = {0x90, 0x03, 0x00, static_cast<uint8_t>(b), 0x80,
                          0x90, 0x03, 0x00, static_cast<uint8_t>(a), 0x00};
  Seen ev[3];
  CHECK_EQ(feed_all(f.client, acks, sizeof acks, 1, ev, 3), 2);
  CHECK(ev[0].type == EventType::SubAck);
  CHECK_EQ(ev[0].packet_id, b);
  CHECK_EQ(ev[0].code, 0x80);
  CHECK(ev[1].type == EventType::SubAck);
  CHECK_EQ(ev[1].packet_id, a);
  CHECK_EQ(ev[1].code, 0);
  CHECK(f.client.connected());
}

TINYFL_TEST(suback_malformed) {
  const uint8_t bad_code[] = {0x90, 0x03, 0x00, 0x01, 0x03};
  const uint8_t bad_len[] = {0x90, 0x04, 0x00, 0x01, 0x01, 0x01};
  const uint8_t bad_flags[] = {0x92, 0x03, 0x00, 0x01, 0x01};
  const uint8_t* pkts[] = {bad_code, bad_len, bad_flags};
  const size_t lens[] = {sizeof bad_code, sizeof bad_len, sizeof bad_flags};
  const Status why[] = {Status::BadValue, Status::BadLength, Status::BadType};
  for (int i = 0; i < 3; ++i) {
    Fixture f;
    CHECK(bring_up(f.client));
    uint16_t id;
    CHECK(f.client.subscribe("g", 1, &id) == Status::Ok);
    Seen ev[2];
    CHECK_EQ(feed_all(f.client, pkts[i], lens[i], 1, ev, 2), 1);
    CHECK(ev[0].type == EventType::ProtocolError);
    CHECK_EQ(ev[0].code, static_cast<uint8_t>(why[i]));
  }
}

TINYFL_TEST(subscribe_validates_filters_and_limits) {
  Fixture f;
  uint16_t id;
  CHECK(f.client.subscribe("a", 0, &id) == Status::NotConnected);
  CHECK(bring_up(f.client));
  CHECK(f.client.subscribe("a/#", 0, &id) == Status::Ok);
  CHECK(f.client.subscribe("+/b/+", 0, &id) == Status::Ok);
  CHECK(f.client.subscribe("#", 0, &id) == Status::Ok);
  CHECK(f.client.subscribe("+", 0, &id) == Status::Ok);
  CHECK_EQ(id, 4);
  // All kMaxPendingSubscribes slots are taken until SUBACKs arrive.
  CHECK(f.client.subscribe("z", 0, &id) == Status::BufferFull);
  const uint8_t ack1[] = {0x90, 0x03, 0x00, 0x01, 0x00};
  Seen ev[1];
  CHECK_EQ(feed_all(f.client, ack1, sizeof ack1, 1, ev, 1), 1);
  const size_t before = f.client.tx_size();
  CHECK(f.client.subscribe("a#", 0, &id) == Status::BadValue);
  CHECK(f.client.subscribe("#/a", 0, &id) == Status::BadValue);
  CHECK(f.client.subscribe("a+", 0, &id) == Status::BadValue);
  CHECK(f.client.subscribe("a/+b", 0, &id) == Status::BadValue);
  CHECK(f.client.subscribe("", 0, &id) == Status::BadValue);
  CHECK(f.client.subscribe("a", 2, &id) == Status::Unsupported);
  CHECK(f.client.subscribe("a", 3, &id) == Status::BadValue);
  CHECK(f.client.subscribe("a", 0, nullptr) == Status::BadValue);
  CHECK_EQ(f.client.tx_size(), before);
  CHECK(f.client.subscribe("z", 0, &id) == Status::Ok);
  CHECK_EQ(id, 5);  // failed calls did not use up ids
}

// ---- PUBLISH / PUBACK (3.3, 3.4) ----------------------------------------------------------------

TINYFL_TEST(publish_qos0_bytes) {
  Fixture f;
  CHECK(bring_up(f.client));
  const uint8_t hi[] = {'h', 'i'};
  uint16_t id = 99;
  CHECK(f.client.publish("t/a", hi, 2, 0, true, &id) == Status::Ok);
  CHECK_EQ(id, 0);
  const uint8_t expect[] = {0x31, 0x07, 0x00, 0x03, 't', '/', 'a', 'h', 'i'};
  CHECK(tx_equals(f.client, expect, sizeof expect));
  // Empty payload, no retain, id pointer may be null.
  f.client.tx_consume(f.client.tx_size());
  CHECK(f.client.publish("t", nullptr, 0, 0, false, nullptr) == Status::Ok);
  const uint8_t expect2[] = {0x30, 0x03, 0x00, 0x01, 't'};
  CHECK(tx_equals(f.client, expect2, sizeof expect2));
}

TINYFL_TEST(publish_qos1_bytes_and_puback_round_trip) {
  Fixture f;
  CHECK(bring_up(f.client));
  const uint8_t on[] = {'o', 'n'};
  uint16_t id = 0;
  CHECK(f.client.publish("st", on, 2, 1, false, &id) == Status::Ok);
  CHECK_EQ(id, 1);
  const uint8_t expect[] = {0x32, 0x08, 0x00, 0x02, 's', 't', 0x00, 0x01, 'o', 'n'};
  CHECK(tx_equals(f.client, expect, sizeof expect));
  f.client.tx_consume(f.client.tx_size());
  const uint8_t puback[] = {0x40, 0x02, 0x00, 0x01};
  Seen ev[2];
  CHECK_EQ(feed_all(f.client, puback, sizeof puback, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::PubAck);
  CHECK_EQ(ev[0].packet_id, 1);
  CHECK_EQ(f.client.tx_size(), 0);  // nothing answers a PUBACK
}

TINYFL_TEST(publish_rejects_bad_arguments) {
  Fixture f;
  const uint8_t p[] = {1};
  CHECK(f.client.publish("t", p, 1, 0, false, nullptr) == Status::NotConnected);
  CHECK(bring_up(f.client));
  CHECK(f.client.publish("t/+", p, 1, 0, false, nullptr) == Status::BadValue);
  CHECK(f.client.publish("t/#", p, 1, 0, false, nullptr) == Status::BadValue);
  CHECK(f.client.publish("", p, 1, 0, false, nullptr) == Status::BadValue);
  CHECK(f.client.publish(nullptr, p, 1, 0, false, nullptr) == Status::BadValue);
  CHECK(f.client.publish("t", nullptr, 1, 0, false, nullptr) == Status::BadValue);
  CHECK(f.client.publish("t", p, 1, 2, false, nullptr) == Status::Unsupported);
  CHECK(f.client.publish("t", p, 1, 3, false, nullptr) == Status::BadValue);
  CHECK_EQ(f.client.tx_size(), 0);
}

TINYFL_TEST(packet_ids_increment_and_skip_zero) {
  Fixture f;
  CHECK(bring_up(f.client));
  const uint8_t p[] = {7};
  uint16_t prev = 0;
  bool ok = true;
  for (uint32_t i = 0; i < 65535u + 3u && ok; ++i) {
    uint16_t id = 0;
    ok = f.client.publish("t", p, 1, 1, false, &id) == Status::Ok && id != 0 &&
         (prev == 0 || id == prev + 1 || (prev == 65535 && id == 1));
    prev = id;
    f.client.tx_consume(f.client.tx_size());
  }
  CHECK(ok);
  CHECK_EQ(prev, 3);  // 65538 ids handed out: 1..65535, then 1, 2, 3
  // QoS 0 publishes do not consume ids.
  uint16_t id = 0;
  CHECK(f.client.publish("t", p, 1, 0, false, &id) == Status::Ok);
  CHECK(f.client.publish("t", p, 1, 1, false, &id) == Status::Ok);
  CHECK_EQ(id, 4);
}

TINYFL_TEST(puback_id_zero_and_bad_length) {
  const uint8_t zero[] = {0x40, 0x02, 0x00, 0x00};
  const uint8_t longer[] = {0x40, 0x03, 0x00, 0x01, 0x00};
  Fixture f;
  CHECK(bring_up(f.client));
  Seen ev[2];
  CHECK_EQ(feed_all(f.client, zero, sizeof zero, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::ProtocolError);
  CHECK_EQ(ev[0].code, static_cast<uint8_t>(Status::BadValue));
  Fixture g;
  CHECK(bring_up(g.client));
  Event e;
  CHECK_EQ(g.client.feed(longer, sizeof longer, 1, &e), 2);  // decided at the length byte
  CHECK(e.type == EventType::ProtocolError);
  CHECK_EQ(e.code, static_cast<uint8_t>(Status::BadLength));
}

TINYFL_TEST(incoming_publish_qos0) {
  Fixture f;
  CHECK(bring_up(f.client));
  const uint8_t pkt[] = {0x31, 0x0A, 0x00, 0x06, 't', '/', 'g', 'l', 'o', 'b', 0xDE, 0xAD};
  Event ev;
  CHECK_EQ(f.client.feed(pkt, sizeof pkt, 1, &ev), sizeof pkt);
  CHECK(ev.type == EventType::Message);
  CHECK_EQ(ev.topic_len, 6);
  CHECK(memcmp(ev.topic, "t/glob", 6) == 0);
  CHECK_EQ(ev.payload_len, 2);
  CHECK_EQ(ev.payload[0], 0xDE);
  CHECK_EQ(ev.payload[1], 0xAD);
  CHECK_EQ(ev.qos, 0);
  CHECK(ev.retain);
  CHECK_EQ(ev.packet_id, 0);
  // topic and payload point into the caller's rx buffer
  CHECK(reinterpret_cast<const uint8_t*>(ev.topic) >= f.rx && ev.payload + ev.payload_len <= f.rx + sizeof f.rx);
  CHECK_EQ(f.client.tx_size(), 0);
}

TINYFL_TEST(incoming_publish_qos1_queues_puback) {
  Fixture f;
  CHECK(bring_up(f.client));
  const uint8_t pkt[] = {0x3A, 0x07, 0x00, 0x01, 'g', 0x12, 0x34, 'x', 'y'};  // DUP, QoS 1
  Event ev;
  CHECK_EQ(f.client.feed(pkt, sizeof pkt, 1, &ev), sizeof pkt);
  CHECK(ev.type == EventType::Message);
  CHECK_EQ(ev.packet_id, 0x1234);
  CHECK_EQ(ev.qos, 1);
  CHECK(!ev.retain);
  CHECK_EQ(ev.payload_len, 2);
  CHECK(memcmp(ev.payload, "xy", 2) == 0);
  const uint8_t puback[] = {0x40, 0x02, 0x12, 0x34};
  CHECK(tx_equals(f.client, puback, sizeof puback));
  // Empty payload is fine.
  f.client.tx_consume(4);
  const uint8_t empty[] = {0x32, 0x05, 0x00, 0x01, 'g', 0x00, 0x07};
  CHECK_EQ(f.client.feed(empty, sizeof empty, 1, &ev), sizeof empty);
  CHECK(ev.type == EventType::Message);
  CHECK_EQ(ev.payload_len, 0);
  const uint8_t puback7[] = {0x40, 0x02, 0x00, 0x07};
  CHECK(tx_equals(f.client, puback7, sizeof puback7));
}

TINYFL_TEST(incoming_publish_malformed) {
  struct Bad {
    uint8_t bytes[12];
    size_t len;
    size_t consumed;  // where the error is reported
    Status why;
  };
  const Bad bad[] = {
      {{0x34, 0x05, 0x00, 0x01, 'g', 0x00, 0x01}, 7, 1, Status::BadValue},   // QoS 2
      {{0x36, 0x05, 0x00, 0x01, 'g', 0x00, 0x01}, 7, 1, Status::BadValue},   // QoS 3
      {{0x30, 0x02, 0x00, 0x00}, 4, 2, Status::BadLength},                   // no room for a topic
      {{0x32, 0x04, 0x00, 0x01, 'g', 0x00}, 6, 2, Status::BadLength},        // no room for an id
      {{0x30, 0x03, 0x00, 0x00, 'x'}, 5, 5, Status::BadValue},               // empty topic
      {{0x30, 0x04, 0x00, 0x05, 'a', 'b'}, 6, 6, Status::BadLength},         // topic past the end
      {{0x32, 0x05, 0x00, 0x01, 'g', 0x00, 0x00}, 7, 7, Status::BadValue},   // packet id 0
      {{0x30, 0x04, 0x00, 0x02, 'a', '#'}, 6, 6, Status::BadValue},          // wildcard in a name
      {{0x30, 0x04, 0x00, 0x02, 'a', 0x00}, 6, 6, Status::BadValue},         // U+0000 in a name
  };
  for (const Bad& b : bad) {
    Fixture f;
    CHECK(bring_up(f.client));
    Event ev;
    CHECK_EQ(f.client.feed(b.bytes, b.len, 1, &ev), b.consumed);
    CHECK(ev.type == EventType::ProtocolError);
    CHECK_EQ(ev.code, static_cast<uint8_t>(b.why));
    CHECK(!f.client.connected());
    CHECK_EQ(f.client.tx_size(), 0);
  }
}

TINYFL_TEST(garbled_headers) {
  // reserved 0 and 15, server-bound CONNECT/SUBSCRIBE/PINGREQ/DISCONNECT, QoS 2 flow, UNSUBACK,
  // bad fixed-header flags on PUBACK/PINGRESP/CONNACK
  const uint8_t headers[] = {0x00, 0xF0, 0x10, 0x82, 0xC0, 0xE0, 0x50, 0x62, 0x70, 0xB0, 0x41, 0xD1, 0x21};
  for (uint8_t h : headers) {
    Fixture f;
    CHECK(bring_up(f.client));
    const uint8_t pkt[] = {h, 0x00, 0xD0, 0x00};
    Event ev;
    CHECK_EQ(f.client.feed(pkt, sizeof pkt, 1, &ev), 1);
    CHECK(ev.type == EventType::ProtocolError);
    CHECK_EQ(ev.code, static_cast<uint8_t>(Status::BadType));
    // Everything after the error is swallowed without events until the next connect().
    CHECK_EQ(f.client.feed(pkt + 1, 3, 1, &ev), 3);
    CHECK(ev.type == EventType::None);
  }
  const uint8_t pingresp_len[] = {0xD0, 0x01, 0x00};
  Fixture f;
  CHECK(bring_up(f.client));
  Event ev;
  CHECK_EQ(f.client.feed(pingresp_len, sizeof pingresp_len, 1, &ev), 2);
  CHECK(ev.type == EventType::ProtocolError);
  CHECK_EQ(ev.code, static_cast<uint8_t>(Status::BadLength));
  // and the client reconnects cleanly afterwards
  CHECK(bring_up(f.client));
}

TINYFL_TEST(truncated_packets_wait_for_more) {
  Fixture f;
  CHECK(bring_up(f.client));
  const uint8_t pkt[] = {0x32, 0x07, 0x00, 0x01, 'g', 0x00, 0x09, 'o', 'k'};
  for (size_t cut = 0; cut < sizeof pkt; ++cut) {
    Event ev;
    CHECK_EQ(f.client.feed(pkt, cut, 1, &ev), cut);
    CHECK(ev.type == EventType::None);
    CHECK_EQ(f.client.feed(pkt + cut, sizeof pkt - cut, 2, &ev), sizeof pkt - cut);
    CHECK(ev.type == EventType::Message);
    CHECK_EQ(ev.packet_id, 9);
    CHECK(memcmp(ev.payload, "ok", 2) == 0);
  }
  CHECK_EQ(f.client.tx_size(), 4 * sizeof pkt);
  Event ev;
  CHECK_EQ(f.client.feed(pkt, 0, 1, &ev), 0);
  CHECK(ev.type == EventType::None);
}

// ---- oversized packets --------------------------------------------------------------------------

TINYFL_TEST(oversized_qos1_is_skipped_acked_and_next_packet_parsed) {
  uint8_t rx[32], tx[64];
  Client c(rx, sizeof rx, tx, sizeof tx);
  CHECK(bring_up(c));
  // QoS 1 PUBLISH: topic "t/x", id 0x0102, 300 bytes of payload (remaining length 307 = 0xB3 0x02),
  // then a small QoS 0 PUBLISH and a PUBACK.
  uint8_t stream[310 + 7 + 4];
  size_t n = 0;
  const uint8_t head[] = {0x33, 0xB3, 0x02, 0x00, 0x03, 't', '/', 'x', 0x01, 0x02};
  memcpy(stream, head, sizeof head);
  n = sizeof head;
  for (int i = 0; i < 300; ++i) stream[n++] = 0xAA;
  const uint8_t small[] = {0x30, 0x05, 0x00, 0x01, 'g', 'o', 'k'};
  memcpy(stream + n, small, sizeof small);
  n += sizeof small;
  const uint8_t puback[] = {0x40, 0x02, 0x00, 0x05};
  memcpy(stream + n, puback, sizeof puback);
  n += sizeof puback;

  const size_t chunks[] = {0, 1, 7, 64};
  for (size_t chunk : chunks) {
    c.reset();
    CHECK(bring_up(c));
    Seen ev[4];
    CHECK_EQ(feed_all(c, stream, n, 1, ev, 4, chunk), 3);
    CHECK(ev[0].type == EventType::OversizedDropped);
    CHECK(ev[0].has_topic);
    CHECK_EQ(ev[0].topic_len, 3);
    CHECK(memcmp(ev[0].topic, "t/x", 3) == 0);
    CHECK_EQ(ev[0].packet_id, 0x0102);
    CHECK_EQ(ev[0].payload_len, 300);
    CHECK(!ev[0].has_payload);
    CHECK_EQ(ev[0].qos, 1);
    CHECK(ev[0].retain);
    CHECK(ev[1].type == EventType::Message);
    CHECK_EQ(ev[1].payload_len, 2);
    CHECK(memcmp(ev[1].payload, "ok", 2) == 0);
    CHECK(ev[2].type == EventType::PubAck);
    CHECK_EQ(ev[2].packet_id, 5);
    const uint8_t ack[] = {0x40, 0x02, 0x01, 0x02};
    CHECK(tx_equals(c, ack, sizeof ack));
    CHECK(c.connected());
  }
}

TINYFL_TEST(oversized_without_captured_topic) {
  uint8_t rx[8], tx[64];
  Client c(rx, sizeof rx, tx, sizeof tx);
  CHECK(bring_up(c));
  // topic of 20 bytes does not fit 8 bytes of rx: no topic, no id, no PUBACK
  uint8_t pkt[2 + 2 + 20 + 2 + 10] = {0x32, 34, 0x00, 20};
  for (int i = 0; i < 20; ++i) pkt[4 + i] = 'a';
  pkt[24] = 0x00;
  pkt[25] = 0x09;
  Seen ev[2];
  CHECK_EQ(feed_all(c, pkt, sizeof pkt, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::OversizedDropped);
  CHECK(!ev[0].has_topic);
  CHECK_EQ(ev[0].packet_id, 0);
  CHECK_EQ(ev[0].payload_len, 34);
  CHECK_EQ(c.tx_size(), 0);
  CHECK(c.connected());

  // topic fits but the packet id does not: topic reported, no PUBACK possible
  uint8_t rx2[9];
  Client d(rx2, sizeof rx2, tx, sizeof tx);
  CHECK(bring_up(d));
  const uint8_t pkt2[] = {0x32, 12, 0x00, 0x06, 'a', 'b', 'c', 'd', 'e', 'f', 0x00, 0x03, 'p', 'q'};
  CHECK_EQ(feed_all(d, pkt2, sizeof pkt2, 1, ev, 2), 1);
  CHECK(ev[0].type == EventType::OversizedDropped);
  CHECK(ev[0].has_topic);
  CHECK(memcmp(ev[0].topic, "abcdef", 6) == 0);
  CHECK_EQ(ev[0].packet_id, 0);
  CHECK_EQ(d.tx_size(), 0);

  // a rx buffer of zero bytes still keeps the session: CONNACK/SUBACK/PUBACK do not use it
  uint8_t tx3[64];
  Client e(nullptr, 0, tx3, sizeof tx3);
  CHECK(bring_up(e));
  uint16_t id;
  CHECK(e.subscribe("g", 1, &id) == Status::Ok);
  const uint8_t replies[] = {0x90, 0x03, 0x00, 0x01, 0x01, 0x30, 0x03, 0x00, 0x01, 'g'};
  CHECK_EQ(feed_all(e, replies, sizeof replies, 1, ev, 2), 2);
  CHECK(ev[0].type == EventType::SubAck);
  CHECK(ev[1].type == EventType::OversizedDropped);
  CHECK_EQ(ev[1].payload_len, 3);
}

TINYFL_TEST(max_incoming_payload_is_the_exact_bound) {
  uint8_t rx[32], tx[64];
  Client c(rx, sizeof rx, tx, sizeof tx);
  CHECK(bring_up(c));
  const size_t fit = max_incoming_payload(sizeof rx, 3);
  CHECK_EQ(fit, 25);
  CHECK_EQ(max_incoming_payload(6, 3), 0);
  for (size_t extra = 0; extra < 2; ++extra) {
    const size_t payload = fit + extra;
    uint8_t pkt[64] = {0x32, static_cast<uint8_t>(7 + payload), 0x00, 0x03, 't', '/', 'x', 0x00, 0x01};
    Seen ev[2];
    CHECK_EQ(feed_all(c, pkt, 9 + payload, 1, ev, 2), 1);
    CHECK(ev[0].type == (extra == 0 ? EventType::Message : EventType::OversizedDropped));
    CHECK_EQ(ev[0].payload_len, payload);
  }
}

TINYFL_TEST(oversized_huge_packet_streams_in_constant_memory) {
  uint8_t rx[16], tx[64];
  Client c(rx, sizeof rx, tx, sizeof tx);
  CHECK(bring_up(c));
  // Remaining length 268435455 (the maximum), QoS 0, topic "big".
  const uint8_t head[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x03, 'b', 'i', 'g'};
  Event ev;
  CHECK_EQ(c.feed(head, sizeof head, 1, &ev), sizeof head);
  CHECK(ev.type == EventType::None);
  static uint8_t chunk[1 << 16];
  uint32_t left = 268435455u - 5u;
  bool quiet = true;
  while (left > 0) {
    const size_t n = left < sizeof chunk ? left : sizeof chunk;
    size_t used = c.feed(chunk, n, 2, &ev);
    if (left == n) break;
    quiet = quiet && used == n && ev.type == EventType::None;
    left -= static_cast<uint32_t>(n);
  }
  CHECK(quiet);
  CHECK(ev.type == EventType::OversizedDropped);
  CHECK_EQ(ev.topic_len, 3);
  CHECK(memcmp(ev.topic, "big", 3) == 0);
  CHECK_EQ(ev.payload_len, 268435455u - 5u);
  CHECK(c.connected());
}

TINYFL_TEST(oversized_malformed_still_detected) {
  uint8_t rx[8], tx[64];
  Client c(rx, sizeof rx, tx, sizeof tx);
  CHECK(bring_up(c));
  // topic length 200 in a packet of remaining length 20
  uint8_t pkt[22] = {0x30, 20, 0x00, 200};
  Event ev;
  CHECK_EQ(c.feed(pkt, sizeof pkt, 1, &ev), sizeof pkt);
  CHECK(ev.type == EventType::ProtocolError);
  CHECK_EQ(ev.code, static_cast<uint8_t>(Status::BadLength));
}

// ---- byte-at-a-time equivalence -----------------------------------------------------------------

namespace {

size_t build_session_stream(uint8_t* s) {
  size_t n = 0;
  auto put = [&](const uint8_t* p, size_t len) {
    memcpy(s + n, p, len);
    n += len;
  };
  const uint8_t suback[] = {0x90, 0x03, 0x00, 0x01, 0x01};
  const uint8_t msg0[] = {0x31, 0x09, 0x00, 0x06, 'g', 'l', 'o', 'b', 'a', 'l', 'Z'};
  const uint8_t pingresp[] = {0xD0, 0x00};
  const uint8_t msg1[] = {0x32, 0x08, 0x00, 0x02, 'u', '1', 0x00, 0x2A, 'h', 'i'};
  const uint8_t puback[] = {0x40, 0x02, 0x00, 0x02};
  put(kConnackOk, sizeof kConnackOk);
  put(suback, sizeof suback);
  put(msg0, sizeof msg0);
  put(pingresp, sizeof pingresp);
  put(msg1, sizeof msg1);
  // oversized for a 24-byte rx: QoS 1, topic "big", id 7, 40 payload bytes
  const uint8_t big[] = {0x32, 47, 0x00, 0x03, 'b', 'i', 'g', 0x00, 0x07};
  put(big, sizeof big);
  for (int i = 0; i < 40; ++i) s[n++] = static_cast<uint8_t>(i);
  put(puback, sizeof puback);
  put(msg0, sizeof msg0);
  const uint8_t garbage[] = {0x30, 0x03, 0x00, 0x09, 'x', 0x32};  // topic runs past the end
  put(garbage, sizeof garbage);
  put(msg0, sizeof msg0);  // after the error: ignored
  return n;
}

struct Run {
  Seen ev[16];
  int n;
  uint8_t tx[128];
  size_t tx_len;
};

// Feeds the stream in pieces decided by `split(i)`, performing the subscribe/publish right after
// Connected, exactly as a node would. split returns the next chunk size.
template <typename Split>
void run_with(const uint8_t* s, size_t len, Split split, Run* out) {
  uint8_t rx[24], tx[128];
  Client c(rx, sizeof rx, tx, sizeof tx);
  out->n = 0;
  if (c.connect(basic_options(), 0) != Status::Ok) return;
  c.tx_consume(c.tx_size());
  size_t pos = 0;
  while (pos < len) {
    size_t want = split(pos);
    if (want == 0 || want > len - pos) want = len - pos;
    size_t off = 0;
    while (off < want) {
      Event ev;
      size_t used = c.feed(s + pos + off, want - off, 1, &ev);
      if (used == 0) return;
      off += used;
      if (ev.type == EventType::None) continue;
      if (out->n < 16) out->ev[out->n++] = copy_event(ev);
      if (ev.type == EventType::Connected) {
        uint16_t id;
        uint8_t one = 1;
        if (c.subscribe("global", 1, &id) != Status::Ok) return;
        if (c.publish("x", &one, 1, 1, false, &id) != Status::Ok) return;
      }
    }
    pos += want;
  }
  out->tx_len = c.tx_size();
  memcpy(out->tx, c.tx_data(), c.tx_size());
}

bool same_runs(const Run& a, const Run& b) {
  if (a.n != b.n || a.tx_len != b.tx_len || memcmp(a.tx, b.tx, a.tx_len) != 0) return false;
  for (int i = 0; i < a.n; ++i) {
    const Seen& x = a.ev[i];
    const Seen& y = b.ev[i];
    if (x.type != y.type || x.packet_id != y.packet_id || x.code != y.code || x.qos != y.qos ||
        x.retain != y.retain || x.has_topic != y.has_topic || x.topic_len != y.topic_len ||
        memcmp(x.topic, y.topic, x.topic_len) != 0 || x.has_payload != y.has_payload ||
        x.payload_len != y.payload_len || (x.has_payload && memcmp(x.payload, y.payload, x.payload_len) != 0))
      return false;
  }
  return true;
}

}  // namespace

TINYFL_TEST(byte_at_a_time_equals_whole_buffer) {
  uint8_t s[256];
  const size_t len = build_session_stream(s);
  static Run whole, bytes, random;
  run_with(s, len, [](size_t) { return size_t(0); }, &whole);
  run_with(s, len, [](size_t) { return size_t(1); }, &bytes);

  CHECK_EQ(whole.n, 8);
  const EventType expect[] = {EventType::Connected, EventType::SubAck,  EventType::Message,
                              EventType::Message,   EventType::OversizedDropped, EventType::PubAck,
                              EventType::Message,   EventType::ProtocolError};
  for (int i = 0; i < 8 && i < whole.n; ++i) CHECK(whole.ev[i].type == expect[i]);
  CHECK_EQ(whole.ev[3].packet_id, 0x2A);
  CHECK_EQ(whole.ev[4].packet_id, 7);
  CHECK_EQ(whole.ev[7].code, static_cast<uint8_t>(Status::BadLength));
  CHECK_EQ(whole.tx_len, 0);  // the error dropped the queued PUBACKs along with the session
  CHECK(same_runs(whole, bytes));

  uint32_t seed = 12345;
  for (int trial = 0; trial < 200; ++trial) {
    run_with(s, len, [&](size_t) {
      seed = seed * 1103515245u + 12345u;
      return size_t((seed >> 16) % 13);
    }, &random);
    CHECK(same_runs(whole, random));
  }
}

TINYFL_TEST(byte_at_a_time_tx_matches_before_error) {
  // Same stream cut before the garbage: the queued bytes (SUBSCRIBE, PUBLISH, two PUBACKs) agree.
  uint8_t s[256];
  const size_t len = build_session_stream(s) - 6 - 11;
  static Run whole, bytes;
  run_with(s, len, [](size_t) { return size_t(0); }, &whole);
  run_with(s, len, [](size_t) { return size_t(1); }, &bytes);
  CHECK(same_runs(whole, bytes));
  const uint8_t expect_tail[] = {0x40, 0x02, 0x00, 0x2A, 0x40, 0x02, 0x00, 0x07};
  CHECK(whole.tx_len >= sizeof expect_tail);
  CHECK(memcmp(whole.tx + whole.tx_len - sizeof expect_tail, expect_tail, sizeof expect_tail) == 0);
}

// ---- keep-alive and timeouts (3.1.2.10, 3.12, 3.13) ---------------------------------------------

TINYFL_TEST(keep_alive_pings_and_pingresp_clears) {
  Fixture f;
  CHECK(bring_up(f.client, 10));  // CONNECT queued at t=0, CONNACK at t=0
  CHECK(f.client.poll(9999).type == EventType::None);
  CHECK_EQ(f.client.tx_size(), 0);
  CHECK(f.client.poll(10000).type == EventType::None);
  const uint8_t pingreq[] = {0xC0, 0x00};
  CHECK(tx_equals(f.client, pingreq, sizeof pingreq));
  f.client.tx_consume(2);
  CHECK(f.client.poll(12000).type == EventType::None);
  CHECK_EQ(f.client.tx_size(), 0);  // one ping outstanding at a time
  const uint8_t pingresp[] = {0xD0, 0x00};
  Event ev;
  CHECK_EQ(f.client.feed(pingresp, 2, 12000, &ev), 2);
  CHECK(ev.type == EventType::None);
  CHECK(f.client.poll(19999).type == EventType::None);
  CHECK_EQ(f.client.tx_size(), 0);
  CHECK(f.client.poll(20000).type == EventType::None);  // 10 s after the last ping went out
  CHECK(tx_equals(f.client, pingreq, sizeof pingreq));
  CHECK(f.client.connected());
}

TINYFL_TEST(ping_timeout_after_one_and_a_half_keep_alive) {
  Fixture f;
  CHECK(bring_up(f.client, 10));
  CHECK(f.client.poll(10000).type == EventType::None);
  CHECK_EQ(f.client.tx_size(), 2);
  CHECK(f.client.poll(24999).type == EventType::None);
  Event ev = f.client.poll(25000);
  CHECK(ev.type == EventType::PingTimeout);
  CHECK_EQ(ev.code, kTimeoutPing);
  CHECK(!f.client.connected());
  CHECK_EQ(f.client.tx_size(), 0);
  CHECK(f.client.poll(90000).type == EventType::None);  // reported once
}

TINYFL_TEST(any_packet_answers_a_ping) {
  Fixture f;
  CHECK(bring_up(f.client, 10));
  CHECK(f.client.poll(10000).type == EventType::None);
  const uint8_t msg[] = {0x30, 0x03, 0x00, 0x01, 'g'};
  Event ev;
  CHECK_EQ(f.client.feed(msg, sizeof msg, 11000, &ev), sizeof msg);
  CHECK(f.client.poll(25000).type == EventType::None);
  CHECK(f.client.connected());
}

TINYFL_TEST(publishing_defers_ping_until_receive_silence) {
  Fixture f;
  CHECK(bring_up(f.client, 10));  // last sent and last received at t=0
  const uint8_t p[] = {1};
  CHECK(f.client.poll(3000).type == EventType::None);
  const uint8_t msg[] = {0x30, 0x03, 0x00, 0x01, 'g'};
  Event ev;
  CHECK_EQ(f.client.feed(msg, sizeof msg, 4000, &ev), sizeof msg);  // received at 4 s
  CHECK(f.client.publish("t", p, 1, 0, false, nullptr) == Status::Ok);
  CHECK(f.client.poll(5000).type == EventType::None);  // stamps the publish at 5 s
  f.client.tx_consume(f.client.tx_size());
  CHECK(f.client.poll(13999).type == EventType::None);
  CHECK_EQ(f.client.tx_size(), 0);
  // 10 s of receive silence pings even though we sent 9 s ago
  CHECK(f.client.poll(14000).type == EventType::None);
  CHECK_EQ(f.client.tx_size(), 2);
}

TINYFL_TEST(keep_alive_zero_never_pings) {
  Fixture f;
  CHECK(bring_up(f.client, 0));
  for (uint32_t t = 0; t < 1000000u; t += 50000u) CHECK(f.client.poll(t).type == EventType::None);
  CHECK_EQ(f.client.tx_size(), 0);
  CHECK(f.client.connected());
}

TINYFL_TEST(connect_timeout) {
  Fixture f;
  CHECK(f.client.connect(basic_options(), 1000) == Status::Ok);
  CHECK(f.client.poll(10999).type == EventType::None);
  Event ev = f.client.poll(11000);
  CHECK(ev.type == EventType::PingTimeout);
  CHECK_EQ(ev.code, kTimeoutConnect);
  CHECK(!f.client.connecting());

  ConnectOptions o = basic_options();
  o.connect_timeout_ms = 500;
  CHECK(f.client.connect(o, 0xFFFFFF00u) == Status::Ok);  // across the 32-bit wrap
  CHECK(f.client.poll(0xFFFFFFFFu).type == EventType::None);
  CHECK(f.client.poll(0x000000F3u).type == EventType::None);
  CHECK(f.client.poll(0x000000F4u).type == EventType::PingTimeout);
}

// ---- tx buffer ----------------------------------------------------------------------------------

TINYFL_TEST(tx_full_publish_queues_nothing) {
  uint8_t rx[64], tx[64];
  Client c(rx, sizeof rx, tx, sizeof tx);
  CHECK(bring_up(c));
  uint8_t payload[40] = {};
  uint16_t id = 0;
  CHECK(c.publish("t", payload, 40, 1, false, &id) == Status::Ok);  // 2 + 45 = 47 bytes
  CHECK_EQ(id, 1);
  const size_t before = c.tx_size();
  CHECK_EQ(before, 47);
  CHECK(c.publish("t", payload, 40, 1, false, &id) == Status::BufferFull);
  CHECK_EQ(c.tx_size(), before);
  CHECK(memcmp(c.tx_data() + 47 - 40, payload, 40) == 0);
  CHECK(c.publish("t", payload, 60, 0, false, &id) == Status::TooLarge);  // can never fit 64
  c.tx_consume(20);  // partial write: the rest stays queued, in order
  CHECK_EQ(c.tx_size(), 27);
  CHECK(c.publish("t", payload, 20, 1, false, &id) == Status::Ok);  // fits after compaction
  CHECK_EQ(id, 2);  // the refused publish did not take an id
  CHECK_EQ(c.tx_size(), 27 + 27);
  CHECK_EQ(c.tx_data()[27], 0x32);
  CHECK_EQ(c.tx_data()[27 + 6], 2);
}

TINYFL_TEST(pubacks_wait_for_tx_room) {
  uint8_t rx[64], tx[32];
  Client c(rx, sizeof rx, tx, sizeof tx);
  CHECK(bring_up(c));
  uint8_t payload[24] = {};
  CHECK(c.publish("t", payload, 24, 0, false, nullptr) == Status::Ok);  // 2 + 27 = 29 of 32
  uint8_t msg[] = {0x32, 0x05, 0x00, 0x01, 'g', 0x00, 0x01};
  for (uint8_t i = 1; i <= kMaxPendingAcks; ++i) {
    msg[6] = i;
    Event ev;
    CHECK_EQ(c.feed(msg, sizeof msg, 1, &ev), sizeof msg);
    CHECK(ev.type == EventType::Message);
  }
  CHECK_EQ(c.tx_size(), 29);
  c.tx_consume(29);
  // 8 acks wait; 32 bytes hold all of them, in arrival order
  CHECK_EQ(c.tx_size(), 4 * kMaxPendingAcks);
  for (uint8_t i = 0; i < kMaxPendingAcks; ++i) CHECK_EQ(c.tx_data()[4 * i + 3], i + 1);

  // With the tx buffer full and all slots waiting, one more QoS 1 message cannot be acked.
  for (uint8_t i = 9; i <= 9 + kMaxPendingAcks; ++i) {
    msg[6] = i;
    Event ev;
    CHECK_EQ(c.feed(msg, sizeof msg, 1, &ev), sizeof msg);
    CHECK(ev.type == (i < 9 + kMaxPendingAcks ? EventType::Message : EventType::ProtocolError));
    if (ev.type == EventType::ProtocolError) CHECK_EQ(ev.code, static_cast<uint8_t>(Status::BufferFull));
  }
}

TINYFL_TEST(disconnect_bytes_and_state) {
  Fixture f;
  CHECK(f.client.disconnect() == Status::NotConnected);
  CHECK(bring_up(f.client));
  CHECK(f.client.disconnect() == Status::Ok);
  const uint8_t expect[] = {0xE0, 0x00};
  CHECK(tx_equals(f.client, expect, sizeof expect));
  CHECK(!f.client.connected());
  const uint8_t p[] = {1};
  CHECK(f.client.publish("t", p, 1, 0, false, nullptr) == Status::NotConnected);
  CHECK(f.client.poll(1000000).type == EventType::None);
}

TINYFL_TEST(encoders_size_pass_matches_and_refuse_small_buffers) {
  const uint8_t payload[5] = {1, 2, 3, 4, 5};
  Writer sizing(nullptr, 0);
  CHECK(encode_publish(sizing, "a/b", payload, 5, 1, false, true, 9) == Status::Ok);
  uint8_t buf[64];
  Writer w(buf, sizeof buf);
  CHECK(encode_publish(w, "a/b", payload, 5, 1, false, true, 9) == Status::Ok);
  CHECK_EQ(sizing.size(), w.size());
  CHECK_EQ(buf[0], 0x3A);  // DUP | QoS 1
  Writer tiny(buf, 4);
  CHECK(encode_publish(tiny, "a/b", payload, 5, 1, false, false, 9) == Status::BufferFull);
  Writer z(nullptr, 0);
  CHECK(encode_publish(z, "a", payload, 1, 0, false, true, 0) == Status::BadValue);  // DUP on QoS 0
  CHECK(encode_publish(z, "a", payload, 1, 1, false, false, 0) == Status::BadValue);  // id 0 on QoS 1
  uint8_t small[4];
  Writer p(small, sizeof small);
  CHECK(encode_puback(p, 0xBEEF) == Status::Ok);
  CHECK(small[0] == 0x40 && small[1] == 0x02 && small[2] == 0xBE && small[3] == 0xEF);
  Writer q(small, sizeof small);
  CHECK(encode_pingreq(q) == Status::Ok);
  CHECK(small[0] == 0xC0 && small[1] == 0x00);
}

TINYFL_TEST(reconnect_forgets_session) {
  Fixture f;
  CHECK(bring_up(f.client));
  uint16_t id;
  CHECK(f.client.subscribe("g", 1, &id) == Status::Ok);
  const uint8_t half[] = {0x30, 0x05, 0x00};  // a packet cut by the pipe dropping
  Event ev;
  CHECK_EQ(f.client.feed(half, sizeof half, 1, &ev), sizeof half);
  f.client.reset();
  CHECK(!f.client.connected());
  CHECK_EQ(f.client.tx_size(), 0);
  CHECK(f.client.connect(basic_options(), 2) == Status::Ok);
  CHECK_EQ(f.client.tx_size(), 16);  // only the CONNECT
  CHECK_EQ(f.client.tx_data()[0], 0x10);
  f.client.tx_consume(16);
  Seen seen[2];
  CHECK_EQ(feed_all(f.client, kConnackOk, sizeof kConnackOk, 3, seen, 2), 1);  // fresh parse state
  CHECK(seen[0].type == EventType::Connected);
  const uint8_t old_suback[] = {0x90, 0x03, 0x00, 0x01, 0x01};  // the old SUBSCRIBE is forgotten
  CHECK_EQ(feed_all(f.client, old_suback, sizeof old_suback, 3, seen, 2), 1);
  CHECK(seen[0].type == EventType::ProtocolError);
}

int main() { return tinyfl_test::run_all(); }
