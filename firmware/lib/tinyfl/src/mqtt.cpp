#include "tinyfl/mqtt.h"

#include <string.h>

namespace tinyfl {
namespace mqtt {

namespace {

// Control packet types (MQTT 3.1.1, 2.2.1): the high nibble of the first byte.
constexpr uint8_t kConnect = 1;
constexpr uint8_t kConnack = 2;
constexpr uint8_t kPublish = 3;
constexpr uint8_t kPuback = 4;
constexpr uint8_t kSubscribe = 8;
constexpr uint8_t kSuback = 9;
constexpr uint8_t kPingreq = 12;
constexpr uint8_t kPingresp = 13;
constexpr uint8_t kDisconnect = 14;

constexpr uint32_t kMaxString = 0xFFFF;  // MQTT strings carry a 16-bit length

// MQTT is big-endian; Writer is little-endian, so 16-bit fields go out byte by byte.
void put_u16be(Writer& w, uint16_t v) {
  w.u8(static_cast<uint8_t>(v >> 8));
  w.u8(static_cast<uint8_t>(v));
}

uint16_t get_u16be(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

void put_string(Writer& w, const char* s, size_t n) {
  put_u16be(w, static_cast<uint16_t>(n));
  w.bytes(reinterpret_cast<const uint8_t*>(s), n);
}

// Topic names (not filters) must be non-empty, carry no wildcards (MQTT-3.3.2-2) and no U+0000
// (MQTT-1.5.3-2). UTF-8 well-formedness is left to the broker, which checks what it forwards.
bool topic_name_ok(const char* s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] == '+' || s[i] == '#' || s[i] == '\0') return false;
  }
  return true;
}

// A filter's wildcards must fill whole levels and '#' must come last (MQTT 3.1.1, 4.7.1); a broker
// closes the connection on a bad filter, so refuse it here where the caller can see why.
bool topic_filter_ok(const char* s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    const bool level_start = i == 0 || s[i - 1] == '/';
    const bool level_end = i + 1 == n || s[i + 1] == '/';
    if (s[i] == '#' && (!level_start || i + 1 != n)) return false;
    if (s[i] == '+' && (!level_start || !level_end)) return false;
  }
  return true;
}

}  // namespace

size_t varint_size(uint32_t value) {
  if (value < 128u) return 1;
  if (value < 16384u) return 2;
  if (value < 2097152u) return 3;
  if (value <= kMaxRemainingLength) return 4;
  return 0;
}

Status encode_varint(Writer& w, uint32_t value) {
  if (value > kMaxRemainingLength) return Status::TooLarge;
  do {
    uint8_t b = static_cast<uint8_t>(value & 0x7F);
    value >>= 7;
    if (value != 0) b |= 0x80;
    w.u8(b);
  } while (value != 0);
  return w.status();
}

Status decode_varint(const uint8_t* data, size_t len, uint32_t* value, size_t* used) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i >= len) return Status::Truncated;
    v |= static_cast<uint32_t>(data[i] & 0x7F) << (7 * i);
    if ((data[i] & 0x80) == 0) {
      *value = v;
      *used = i + 1;
      return Status::Ok;
    }
  }
  return Status::TooLarge;
}

Status encode_connect(Writer& w, const ConnectOptions& o) {
  if (o.client_id == nullptr) return Status::BadValue;
  const size_t id_len = strlen(o.client_id);
  // An empty id asks the broker to assign one, which 3.1.1 allows only for clean sessions.
  if (id_len == 0 && !o.clean_session) return Status::BadValue;
  if (id_len > kMaxString) return Status::TooLarge;
  uint32_t rem = 10 + 2 + static_cast<uint32_t>(id_len);

  uint8_t flags = o.clean_session ? 0x02 : 0x00;
  size_t will_topic_len = 0;
  if (o.will_topic != nullptr) {
    will_topic_len = strlen(o.will_topic);
    if (will_topic_len > kMaxString) return Status::TooLarge;
    if (!topic_name_ok(o.will_topic, will_topic_len) || o.will_qos > 2) return Status::BadValue;
    if (o.will_payload == nullptr && o.will_len != 0) return Status::BadValue;
    flags |= static_cast<uint8_t>(0x04 | (o.will_qos << 3) | (o.will_retain ? 0x20 : 0));
    rem += 2 + static_cast<uint32_t>(will_topic_len) + 2 + o.will_len;
  }
  size_t user_len = 0;
  size_t pass_len = 0;
  if (o.password != nullptr && o.username == nullptr) return Status::BadValue;  // MQTT-3.1.2-22
  if (o.username != nullptr) {
    user_len = strlen(o.username);
    if (user_len > kMaxString) return Status::TooLarge;
    flags |= 0x80;
    rem += 2 + static_cast<uint32_t>(user_len);
  }
  if (o.password != nullptr) {
    pass_len = strlen(o.password);
    if (pass_len > kMaxString) return Status::TooLarge;
    flags |= 0x40;
    rem += 2 + static_cast<uint32_t>(pass_len);
  }

  w.u8(kConnect << 4);
  Status s = encode_varint(w, rem);
  if (s != Status::Ok) return s;
  put_string(w, "MQTT", 4);
  w.u8(4);  // protocol level 4 = 3.1.1
  w.u8(flags);
  put_u16be(w, o.keep_alive_s);
  put_string(w, o.client_id, id_len);
  if (o.will_topic != nullptr) {
    put_string(w, o.will_topic, will_topic_len);
    put_u16be(w, o.will_len);
    if (o.will_len != 0) w.bytes(o.will_payload, o.will_len);  // memcpy from null is UB even for 0
  }
  if (o.username != nullptr) put_string(w, o.username, user_len);
  if (o.password != nullptr) put_string(w, o.password, pass_len);
  return w.status();
}

Status encode_subscribe(Writer& w, uint16_t packet_id, const char* filter, uint8_t qos) {
  if (filter == nullptr || packet_id == 0 || qos > 2) return Status::BadValue;
  const size_t n = strlen(filter);
  if (n > kMaxString) return Status::TooLarge;
  if (!topic_filter_ok(filter, n)) return Status::BadValue;
  // The low nibble 0b0010 is mandatory for SUBSCRIBE (MQTT-3.8.1-1).
  w.u8((kSubscribe << 4) | 0x02);
  Status s = encode_varint(w, static_cast<uint32_t>(2 + 2 + n + 1));
  if (s != Status::Ok) return s;
  put_u16be(w, packet_id);
  put_string(w, filter, n);
  w.u8(qos);
  return w.status();
}

// Everything of a PUBLISH but its payload bytes (the remaining length counts `len` of them).
static Status encode_publish_header(Writer& w, const char* topic, size_t len, uint8_t qos, bool retain,
                                    bool dup, uint16_t packet_id) {
  if (topic == nullptr || qos > 2) return Status::BadValue;
  if (qos == 2) return Status::Unsupported;
  if ((qos == 0 && (dup || packet_id != 0)) || (qos == 1 && packet_id == 0)) return Status::BadValue;
  const size_t topic_len = strlen(topic);
  if (topic_len > kMaxString) return Status::TooLarge;
  if (!topic_name_ok(topic, topic_len)) return Status::BadValue;
  const size_t header = 2 + topic_len + (qos != 0 ? 2 : 0);
  if (len > kMaxRemainingLength - header) return Status::TooLarge;

  w.u8(static_cast<uint8_t>((kPublish << 4) | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0)));
  Status s = encode_varint(w, static_cast<uint32_t>(header + len));
  if (s != Status::Ok) return s;
  put_string(w, topic, topic_len);
  if (qos != 0) put_u16be(w, packet_id);
  return w.status();
}

Status encode_publish(Writer& w, const char* topic, const uint8_t* payload, size_t len, uint8_t qos,
                      bool retain, bool dup, uint16_t packet_id) {
  if (payload == nullptr && len != 0) return Status::BadValue;
  Status s = encode_publish_header(w, topic, len, qos, retain, dup, packet_id);
  if (s != Status::Ok) return s;
  if (len != 0) w.bytes(payload, len);  // memcpy from null is UB even for 0 bytes
  return w.status();
}

Status encode_puback(Writer& w, uint16_t packet_id) {
  if (packet_id == 0) return Status::BadValue;
  w.u8(kPuback << 4);
  w.u8(2);
  put_u16be(w, packet_id);
  return w.status();
}

Status encode_pingreq(Writer& w) {
  w.u8(kPingreq << 4);
  w.u8(0);
  return w.status();
}

Status encode_disconnect(Writer& w) {
  w.u8(kDisconnect << 4);
  w.u8(0);
  return w.status();
}

// ---------------------------------------------------------------------------------------------

Client::Client(uint8_t* rx_buf, size_t rx_cap, uint8_t* tx_buf, size_t tx_cap)
    : rx_buf_(rx_buf), rx_cap_(rx_buf != nullptr ? rx_cap : 0), tx_buf_(tx_buf),
      tx_cap_(tx_buf != nullptr ? tx_cap : 0) {}

template <typename Encode>
Status Client::queue_packet(const Encode& encode) {
  Writer sizing(nullptr, 0);
  Status s = encode(sizing);
  if (s != Status::Ok) return s;
  s = make_room(sizing.size());
  if (s != Status::Ok) return s;
  Writer w(tx_buf_ + tx_end_, sizing.size());
  s = encode(w);
  if (s != Status::Ok) return s;  // same inputs as the size pass: unreachable in practice
  tx_end_ += w.size();
  tx_unstamped_ = true;
  return Status::Ok;
}

Status Client::make_room(size_t need) {
  if (need > tx_cap_) return Status::TooLarge;
  if (need > tx_cap_ - tx_size()) return Status::BufferFull;
  if (need > tx_cap_ - tx_end_) {
    // Slide the unsent bytes to the front only when the tail is too short: most packets are
    // written out before the next one is queued, so this rarely copies anything.
    memmove(tx_buf_, tx_buf_ + tx_head_, tx_size());
    tx_end_ -= tx_head_;
    tx_head_ = 0;
  }
  return Status::Ok;
}

void Client::tx_consume(size_t n) {
  tx_head_ += n < tx_size() ? n : tx_size();
  if (tx_head_ == tx_end_) tx_head_ = tx_end_ = 0;
  flush_acks();
}

bool Client::queue_puback(uint16_t packet_id) {
  // Acks wait in FIFO order behind earlier ones that did not fit.
  if (pending_ack_count_ == 0) {
    if (queue_packet([&](Writer& w) { return encode_puback(w, packet_id); }) == Status::Ok) return true;
  }
  if (pending_ack_count_ == kMaxPendingAcks) return false;
  pending_acks_[pending_ack_count_++] = packet_id;
  return true;
}

void Client::flush_acks() {
  while (pending_ack_count_ > 0) {
    const uint16_t id = pending_acks_[0];
    if (queue_packet([&](Writer& w) { return encode_puback(w, id); }) != Status::Ok) return;
    --pending_ack_count_;
    memmove(pending_acks_, pending_acks_ + 1, pending_ack_count_ * sizeof pending_acks_[0]);
  }
}

uint16_t Client::peek_packet_id() const {
  const uint16_t id = static_cast<uint16_t>(next_id_ + 1);
  return id == 0 ? 1 : id;  // 0 is not a valid packet id (MQTT-2.3.1-1)
}

void Client::drop_session() {
  state_ = State::Idle;
  tx_head_ = tx_end_ = 0;
  ping_outstanding_ = false;
  tx_unstamped_ = false;
  memset(pending_subs_, 0, sizeof pending_subs_);
  pending_ack_count_ = 0;
  rx_state_ = Rx::Header;
  rx_got_ = 0;
}

void Client::reset() { drop_session(); }

Status Client::connect(const ConnectOptions& o, uint32_t now_ms) {
  // Validate before forgetting the old session, so a bad call changes nothing.
  Writer sizing(nullptr, 0);
  Status s = encode_connect(sizing, o);
  if (s != Status::Ok) return s;
  drop_session();
  s = queue_packet([&](Writer& w) { return encode_connect(w, o); });
  if (s != Status::Ok) return s;
  state_ = State::Connecting;
  keep_alive_s_ = o.keep_alive_s;
  connect_timeout_ms_ = o.connect_timeout_ms != 0 ? o.connect_timeout_ms : kDefaultConnectTimeoutMs;
  connect_ms_ = last_tx_ms_ = last_rx_ms_ = now_ms;
  tx_unstamped_ = false;
  return Status::Ok;
}

Status Client::subscribe(const char* filter, uint8_t qos, uint16_t* packet_id) {
  if (state_ != State::Connected) return Status::NotConnected;
  if (packet_id == nullptr || qos > 2) return Status::BadValue;
  if (qos == 2) return Status::Unsupported;
  size_t slot = 0;
  while (slot < kMaxPendingSubscribes && pending_subs_[slot] != 0) ++slot;
  if (slot == kMaxPendingSubscribes) return Status::BufferFull;
  const uint16_t id = peek_packet_id();
  Status s = queue_packet([&](Writer& w) { return encode_subscribe(w, id, filter, qos); });
  if (s != Status::Ok) return s;
  next_id_ = id;
  pending_subs_[slot] = id;
  *packet_id = id;
  return Status::Ok;
}

Status Client::publish(const char* topic, const uint8_t* payload, size_t len, uint8_t qos, bool retain,
                       uint16_t* packet_id) {
  if (state_ != State::Connected) return Status::NotConnected;
  if (qos > 2) return Status::BadValue;
  if (qos == 2) return Status::Unsupported;
  flush_acks();  // acks owed to the broker go out before new traffic takes their room
  const uint16_t id = qos != 0 ? peek_packet_id() : 0;
  Status s = queue_packet([&](Writer& w) { return encode_publish(w, topic, payload, len, qos, retain, false, id); });
  if (s != Status::Ok) return s;
  if (qos != 0) next_id_ = id;
  if (packet_id != nullptr) *packet_id = id;
  return Status::Ok;
}

Status Client::reserve_publish(const char* topic, size_t len, uint8_t qos, bool retain, uint8_t** payload) {
  if (state_ != State::Connected) return Status::NotConnected;
  if (qos > 2) return Status::BadValue;
  if (qos == 2) return Status::Unsupported;
  flush_acks();
  const uint16_t id = qos != 0 ? peek_packet_id() : 0;
  Writer sizing(nullptr, 0);
  Status s = encode_publish_header(sizing, topic, len, qos, retain, false, id);
  if (s != Status::Ok) return s;
  s = make_room(sizing.size() + len);
  if (s != Status::Ok) return s;
  reserved_at_ = tx_end_;
  Writer w(tx_buf_ + tx_end_, sizing.size());
  s = encode_publish_header(w, topic, len, qos, retain, false, id);
  if (s != Status::Ok) return s;
  tx_end_ += w.size() + len;
  *payload = tx_buf_ + tx_end_ - len;
  return Status::Ok;
}

Status Client::commit_publish(uint8_t qos, uint16_t* packet_id) {
  const uint16_t id = qos != 0 ? peek_packet_id() : 0;
  if (qos != 0) next_id_ = id;
  if (packet_id != nullptr) *packet_id = id;
  tx_unstamped_ = true;
  return Status::Ok;
}

void Client::cancel_publish() {
  tx_end_ = reserved_at_;
  if (tx_head_ == tx_end_) tx_head_ = tx_end_ = 0;
}

Status Client::disconnect() {
  if (state_ == State::Idle) return Status::NotConnected;
  Status s = queue_packet([](Writer& w) { return encode_disconnect(w); });
  if (s != Status::Ok) return s;
  // Keep tx so the caller can still write DISCONNECT; everything else about the session ends.
  const size_t head = tx_head_, end = tx_end_;
  drop_session();
  tx_head_ = head;
  tx_end_ = end;
  return Status::Ok;
}

// ---------------------------------------------------------------------------------------------
// Receive path: Header byte -> remaining-length bytes -> body. Each check runs at the byte that
// makes it decidable, so where an event lands never depends on how the bytes were split.

Status Client::header_error(uint8_t header) const {
  const uint8_t type = header >> 4;
  const uint8_t flags = header & 0x0F;
  if (state_ == State::Connecting) return header == (kConnack << 4) ? Status::Ok : Status::Protocol;
  switch (type) {
    case kConnack:
      return flags != 0 ? Status::BadType : Status::Protocol;  // a second CONNACK
    case kPublish: {
      const uint8_t qos = (flags >> 1) & 0x03;
      // QoS 3 is malformed; QoS 2 exceeds every QoS we subscribe with (MQTT-3.8.4-6).
      return qos >= 2 ? Status::BadValue : Status::Ok;
    }
    case kPuback:
    case kSuback:
    case kPingresp:
      return flags != 0 ? Status::BadType : Status::Ok;
    default:
      // CONNECT/SUBSCRIBE/PINGREQ/DISCONNECT go to servers only; PUBREC/PUBREL/PUBCOMP belong to
      // QoS 2 and UNSUBACK to UNSUBSCRIBE, neither of which we send; 0 and 15 are reserved.
      return Status::BadType;
  }
}

Status Client::length_error() const {
  const uint8_t type = rx_header_ >> 4;
  switch (type) {
    case kConnack:
    case kPuback:
      return rx_rem_ == 2 ? Status::Ok : Status::BadLength;
    case kSuback:
      return rx_rem_ == 3 ? Status::Ok : Status::BadLength;  // we subscribe one filter per packet
    case kPingresp:
      return rx_rem_ == 0 ? Status::Ok : Status::BadLength;
    default: {  // PUBLISH: topic length, at least one topic byte, packet id if QoS 1
      const uint32_t min_len = 3 + (((rx_header_ >> 1) & 0x03) != 0 ? 2 : 0);
      return rx_rem_ >= min_len ? Status::Ok : Status::BadLength;
    }
  }
}

void Client::protocol_error(Event* ev, Status why) {
  drop_session();
  *ev = Event{};
  ev->type = EventType::ProtocolError;
  ev->code = static_cast<uint8_t>(why);
}

size_t Client::feed(const uint8_t* data, size_t len, uint32_t now_ms, Event* ev) {
  *ev = Event{};
  if (state_ == State::Idle) return len;
  size_t i = 0;
  while (i < len && ev->type == EventType::None) {
    switch (rx_state_) {
      case Rx::Header: {
        rx_header_ = data[i++];
        const Status s = header_error(rx_header_);
        if (s != Status::Ok) {
          protocol_error(ev, s);
          break;
        }
        rx_state_ = Rx::Length;
        rx_len_bytes_ = 0;
        rx_rem_ = 0;
        break;
      }
      case Rx::Length: {
        const uint8_t b = data[i++];
        rx_rem_ |= static_cast<uint32_t>(b & 0x7F) << (7 * rx_len_bytes_);
        ++rx_len_bytes_;
        if ((b & 0x80) != 0) {
          if (rx_len_bytes_ == 4) protocol_error(ev, Status::TooLarge);  // a 5th byte is never valid
          break;
        }
        const Status s = length_error();
        if (s != Status::Ok) {
          protocol_error(ev, s);
          break;
        }
        rx_state_ = Rx::Body;
        rx_got_ = 0;
        if (rx_rem_ == 0) finish_packet(now_ms, ev);
        break;
      }
      case Rx::Body: {
        const size_t want = rx_rem_ - rx_got_;
        const size_t n = len - i < want ? len - i : want;
        if ((rx_header_ >> 4) == kPublish) {
          // Keep the first rx_cap bytes; beyond that an oversized packet is only counted, which
          // keeps its topic and packet id (they come first) for the OversizedDropped report.
          if (rx_got_ < rx_cap_) {
            const size_t room = rx_cap_ - rx_got_;
            memcpy(rx_buf_ + rx_got_, data + i, n < room ? n : room);
          }
        } else {
          memcpy(small_ + rx_got_, data + i, n);  // length_error() capped these at 3 bytes
        }
        rx_got_ += static_cast<uint32_t>(n);
        i += n;
        if (rx_got_ == rx_rem_) finish_packet(now_ms, ev);
        break;
      }
    }
  }
  if (tx_unstamped_) {  // an auto-PUBACK, or a publish since the last call with a clock
    last_tx_ms_ = now_ms;
    tx_unstamped_ = false;
  }
  return i;
}

void Client::finish_packet(uint32_t now_ms, Event* ev) {
  rx_state_ = Rx::Header;
  last_rx_ms_ = now_ms;
  ping_outstanding_ = false;  // any packet proves the broker is alive
  switch (rx_header_ >> 4) {
    case kConnack: {
      const uint8_t ack_flags = small_[0];
      const uint8_t code = small_[1];
      // Only bit 0 (session present) is defined, and it must be 0 on a refusal (MQTT-3.2.2-4).
      if ((ack_flags & 0xFE) != 0 || code > kConnNotAuthorized || (code != 0 && ack_flags != 0)) {
        protocol_error(ev, Status::BadValue);
        return;
      }
      ev->code = code;
      if (code == kConnAccepted) {
        ev->type = EventType::Connected;
        state_ = State::Connected;
      } else {
        ev->type = EventType::ConnectRefused;
        drop_session();  // the broker closes the connection after a refusal (MQTT-3.2.2-5)
      }
      return;
    }
    case kPuback: {
      const uint16_t id = get_u16be(small_);
      if (id == 0) {
        protocol_error(ev, Status::BadValue);
        return;
      }
      ev->type = EventType::PubAck;
      ev->packet_id = id;
      return;
    }
    case kSuback: {
      const uint16_t id = get_u16be(small_);
      const uint8_t code = small_[2];
      if (code > 2 && code != kSubackFailure) {
        protocol_error(ev, Status::BadValue);
        return;
      }
      size_t slot = 0;
      while (slot < kMaxPendingSubscribes && (id == 0 || pending_subs_[slot] != id)) ++slot;
      if (slot == kMaxPendingSubscribes) {
        protocol_error(ev, Status::Protocol);
        return;
      }
      pending_subs_[slot] = 0;
      ev->type = EventType::SubAck;
      ev->packet_id = id;
      ev->code = code;
      return;
    }
    case kPingresp:
      return;  // no event: it only cleared ping_outstanding_ above
    default:
      finish_publish(ev);
      return;
  }
}

void Client::finish_publish(Event* ev) {
  const uint8_t qos = (rx_header_ >> 1) & 0x03;
  const size_t id_len = qos != 0 ? 2 : 0;
  const bool oversized = rx_rem_ > rx_cap_;
  const size_t stored = oversized ? rx_cap_ : rx_rem_;

  Event out{};
  out.type = oversized ? EventType::OversizedDropped : EventType::Message;
  out.qos = qos;
  out.retain = (rx_header_ & 0x01) != 0;
  out.payload_len = rx_rem_;
  if (stored < 2) {  // not even the topic length was kept: nothing more to check or report
    *ev = out;
    return;
  }
  const size_t topic_len = get_u16be(rx_buf_);
  if (topic_len == 0) {
    protocol_error(ev, Status::BadValue);
    return;
  }
  const size_t header = 2 + topic_len + id_len;
  if (header > rx_rem_) {
    protocol_error(ev, Status::BadLength);
    return;
  }
  const char* topic = reinterpret_cast<const char*>(rx_buf_ + 2);
  const bool have_topic = 2 + topic_len <= stored;
  if (have_topic && !topic_name_ok(topic, topic_len)) {
    protocol_error(ev, Status::BadValue);
    return;
  }
  const bool have_header = header <= stored;
  uint16_t id = 0;
  if (have_header && qos != 0) {
    id = get_u16be(rx_buf_ + 2 + topic_len);
    if (id == 0) {
      protocol_error(ev, Status::BadValue);
      return;
    }
    // Acknowledge even a dropped message: the broker must not hold it in flight, and a redelivery
    // would be dropped again anyway.
    if (!queue_puback(id)) {
      protocol_error(ev, Status::BufferFull);
      return;
    }
  }
  if (have_topic) {
    out.topic = topic;
    out.topic_len = static_cast<uint16_t>(topic_len);
  }
  if (have_header) {
    out.packet_id = id;
    out.payload_len = rx_rem_ - header;
    if (!oversized) out.payload = rx_buf_ + header;
  }
  *ev = out;
}

// ---------------------------------------------------------------------------------------------

Event Client::poll(uint32_t now_ms) {
  Event ev{};
  flush_acks();
  if (tx_unstamped_) {
    last_tx_ms_ = now_ms;
    tx_unstamped_ = false;
  }
  if (state_ == State::Connecting) {
    if (now_ms - connect_ms_ >= connect_timeout_ms_) {
      drop_session();
      ev.type = EventType::PingTimeout;
      ev.code = kTimeoutConnect;
    }
    return ev;
  }
  if (state_ != State::Connected || keep_alive_s_ == 0) return ev;
  const uint32_t keep_alive_ms = static_cast<uint32_t>(keep_alive_s_) * 1000u;
  if (ping_outstanding_) {
    // 1.5 x keep-alive is the grace the spec gives the broker on its side (MQTT-3.1.2-24).
    if (now_ms - ping_sent_ms_ >= keep_alive_ms + keep_alive_ms / 2) {
      drop_session();
      ev.type = EventType::PingTimeout;
      ev.code = kTimeoutPing;
    }
    return ev;
  }
  // Ping on silence in either direction: a quiet receive side is how a dead link shows while we
  // keep publishing QoS 0.
  if (now_ms - last_tx_ms_ >= keep_alive_ms || now_ms - last_rx_ms_ >= keep_alive_ms) {
    if (queue_packet([](Writer& w) { return encode_pingreq(w); }) == Status::Ok) {
      ping_outstanding_ = true;
      ping_sent_ms_ = last_tx_ms_ = now_ms;
      tx_unstamped_ = false;
    }
  }
  return ev;
}

}  // namespace mqtt
}  // namespace tinyfl
