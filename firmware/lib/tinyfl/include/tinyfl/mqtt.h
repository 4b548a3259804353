// Sans-IO MQTT 3.1.1 client: feed it received bytes and the time, take the bytes it wants written.
//
// The client never touches a socket, a clock or the heap. The caller owns both buffers:
//   rx: holds one incoming PUBLISH at a time (topic + packet id + payload); a bigger PUBLISH is
//       skipped as it streams in and reported as OversizedDropped, without losing the session.
//   tx: queued outgoing packets, drained by the caller through tx_data()/tx_consume().
//
// Scope, chosen for a node that publishes QoS 0/1 and subscribes to a few topics with a clean
// session: no QoS 2 (a QoS 2 PUBLISH from the broker is a protocol error, since we never subscribe
// with QoS 2 the broker must not send one), no retransmission of unacknowledged publishes (a clean
// session loses them anyway; the caller republishes after reconnecting), no UNSUBSCRIBE.
//
// Typical loop:
//   poll(now) -> handle event; read pipe -> feed() until consumed -> handle events;
//   write tx_data()/tx_size() to the pipe -> tx_consume(written).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/cursor.h"
#include "tinyfl/status.h"

namespace tinyfl {
namespace mqtt {

// Largest value the 4-byte remaining-length field can carry.
constexpr uint32_t kMaxRemainingLength = 268435455u;
// Used when ConnectOptions::connect_timeout_ms is 0.
constexpr uint32_t kDefaultConnectTimeoutMs = 10000u;
// Outstanding SUBSCRIBEs awaiting their SUBACK.
constexpr size_t kMaxPendingSubscribes = 4;
// PUBACKs held back while the tx buffer is full; one more is a caller bug (tx never drained).
constexpr size_t kMaxPendingAcks = 8;

// CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
enum ConnackCode : uint8_t {
  kConnAccepted = 0,
  kConnBadProtocol = 1,
  kConnIdRejected = 2,
  kConnServerUnavailable = 3,
  kConnBadCredentials = 4,
  kConnNotAuthorized = 5,
};
constexpr uint8_t kSubackFailure = 0x80;

// Event::code of a PingTimeout event.
constexpr uint8_t kTimeoutPing = 0;     // no packet within 1.5 x keep-alive after a PINGREQ
constexpr uint8_t kTimeoutConnect = 1;  // no CONNACK within the connect timeout

// Largest payload of an incoming PUBLISH on `topic_len` bytes of topic that still fits an rx buffer
// of `rx_cap` bytes at QoS 1 (topic length field, topic, packet id, payload); 0 also when not even
// the header fits.
constexpr size_t max_incoming_payload(size_t rx_cap, size_t topic_len) {
  return rx_cap >= 4 + topic_len ? rx_cap - 4 - topic_len : 0;
}

struct ConnectOptions {
  const char* client_id;        // may be "" only with clean_session
  const char* will_topic;       // null: no last will (the will_* fields below are then ignored)
  const uint8_t* will_payload;  // may be null when will_len is 0
  uint16_t will_len;
  uint8_t will_qos;             // 0..2
  bool will_retain;
  uint16_t keep_alive_s;        // 0 disables pings and ping timeouts
  bool clean_session;
  const char* username;         // nullable
  const char* password;         // nullable; requires a username (MQTT 3.1.1 3.1.2.9)
  uint32_t connect_timeout_ms;  // 0: kDefaultConnectTimeoutMs
};

enum class EventType : uint8_t {
  None,
  Connected,         // CONNACK 0; code = 0
  ConnectRefused,    // CONNACK 1..5; code = return code; the session is dropped
  SubAck,            // packet_id, code = granted QoS (0..2) or kSubackFailure
  PubAck,            // packet_id of our QoS 1 PUBLISH
  Message,           // topic/payload point into rx_buf; qos, retain, packet_id (QoS 1)
  OversizedDropped,  // PUBLISH larger than rx_buf, skipped; see Event
  PingTimeout,       // code = kTimeoutPing or kTimeoutConnect; the session is dropped
  ProtocolError,     // code = static_cast<uint8_t>(Status) naming why; the session is dropped
};

// One event per call. Pointers are valid until the next feed().
//
// OversizedDropped: payload is null; qos and retain are set. topic/topic_len are set (else null/0)
// when the topic fitted in rx_buf. When the packet id (QoS 1) fitted as well, packet_id is set and
// the PUBACK was queued. payload_len is the size of the dropped payload when topic and packet id
// fitted, else the packet's remaining length.
//
// ProtocolError codes: BadType (packet type or flags a client must not receive), TooLarge
// (remaining length over 4 bytes), BadLength (lengths disagree), BadValue (a field outside its
// range: return code, packet id 0, QoS 2/3, empty or wildcard topic), Protocol (out of order:
// packet before CONNACK, second CONNACK, SUBACK for no SUBSCRIBE), BufferFull (more than
// kMaxPendingAcks PUBACKs waited for tx space).
struct Event {
  EventType type;
  uint16_t packet_id;
  uint8_t code;
  const char* topic;  // not NUL-terminated
  uint16_t topic_len;
  const uint8_t* payload;
  size_t payload_len;
  uint8_t qos;
  bool retain;
};

// ---- Pure encoders. Each validates its arguments, then writes one whole packet to `w`; a
// Writer(nullptr, 0) gives the size. On error nothing meaningful is written.

// Bytes the remaining-length field takes for `value` (1..4), or 0 if value > kMaxRemainingLength.
size_t varint_size(uint32_t value);
TINYFL_NODISCARD Status encode_varint(Writer& w, uint32_t value);
// Decodes a remaining-length field from the start of `data`. Truncated if it needs more bytes,
// TooLarge if a 4th byte still has the continuation bit set.
TINYFL_NODISCARD Status decode_varint(const uint8_t* data, size_t len, uint32_t* value, size_t* used);

TINYFL_NODISCARD Status encode_connect(Writer& w, const ConnectOptions& o);
TINYFL_NODISCARD Status encode_subscribe(Writer& w, uint16_t packet_id, const char* filter, uint8_t qos);
TINYFL_NODISCARD Status encode_publish(Writer& w, const char* topic, const uint8_t* payload, size_t len,
                                       uint8_t qos, bool retain, bool dup, uint16_t packet_id);
TINYFL_NODISCARD Status encode_puback(Writer& w, uint16_t packet_id);
TINYFL_NODISCARD Status encode_pingreq(Writer& w);
TINYFL_NODISCARD Status encode_disconnect(Writer& w);

class Client {
 public:
  Client(uint8_t* rx_buf, size_t rx_cap, uint8_t* tx_buf, size_t tx_cap);
  // Copies would share the caller's buffers.
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Forgets any session, clears rx/tx and queues CONNECT. Feed the CONNACK to get Connected.
  TINYFL_NODISCARD Status connect(const ConnectOptions& o, uint32_t now_ms);
  // QoS 0 or 1. *packet_id (non-null) receives the id its SubAck will carry. BufferFull: no tx room,
  // or kMaxPendingSubscribes SUBSCRIBEs still await their SUBACK.
  TINYFL_NODISCARD Status subscribe(const char* filter, uint8_t qos, uint16_t* packet_id);
  // QoS 0 or 1; packet_id may be null. BufferFull: no room now (drain tx and retry);
  // TooLarge: the packet can never fit tx_buf. Either way nothing is queued.
  TINYFL_NODISCARD Status publish(const char* topic, const uint8_t* payload, size_t len, uint8_t qos,
                                  bool retain, uint16_t* packet_id);
  // Zero-copy publish of a payload the caller encodes in place: `fill(dst, len)` writes exactly
  // `len` bytes straight into the tx buffer and returns Ok, or anything else to take the packet
  // back (nothing is queued then). Same checks and results as publish().
  template <typename Fill>
  TINYFL_NODISCARD Status publish_in_place(const char* topic, size_t len, uint8_t qos, bool retain,
                                           uint16_t* packet_id, const Fill& fill) {
    uint8_t* dst = nullptr;
    Status s = reserve_publish(topic, len, qos, retain, &dst);
    if (s != Status::Ok) return s;
    s = fill(dst, len);
    return s == Status::Ok ? commit_publish(qos, packet_id) : (cancel_publish(), s);
  }
  // Queues DISCONNECT and ends the session; write out tx, then close the pipe.
  TINYFL_NODISCARD Status disconnect();

  // Consumes up to `len` bytes, stopping right after the byte that completes a packet with an
  // event. Returns the bytes consumed and sets *ev (None if no event). Call again with the rest.
  // Without a session (before connect(), after an error, timeout, refusal or disconnect) bytes
  // are consumed and ignored.
  size_t feed(const uint8_t* data, size_t len, uint32_t now_ms, Event* ev);
  // Runs the timers: queues PINGREQ when nothing was sent or received for keep-alive, reports
  // PingTimeout (and drops the session) when the broker goes silent or CONNACK never comes.
  Event poll(uint32_t now_ms);

  const uint8_t* tx_data() const { return tx_buf_ + tx_head_; }
  size_t tx_size() const { return tx_end_ - tx_head_; }
  // Call after every write, even a partial one; it also queues PUBACKs that waited for room.
  void tx_consume(size_t n);

  bool connected() const { return state_ == State::Connected; }
  // True from connect() until CONNACK, an error or a timeout.
  bool connecting() const { return state_ == State::Connecting; }
  // Pipe lost: forget the session, drop rx/tx.
  void reset();

 private:
  enum class State : uint8_t { Idle, Connecting, Connected };
  enum class Rx : uint8_t { Header, Length, Body };

  TINYFL_NODISCARD Status reserve_publish(const char* topic, size_t len, uint8_t qos, bool retain,
                                          uint8_t** payload);
  Status commit_publish(uint8_t qos, uint16_t* packet_id);
  void cancel_publish();
  // Size pass, room check, then the real write: a packet is queued whole or not at all.
  template <typename Encode>
  TINYFL_NODISCARD Status queue_packet(const Encode& encode);
  TINYFL_NODISCARD Status make_room(size_t need);
  TINYFL_NODISCARD bool queue_puback(uint16_t packet_id);
  void flush_acks();
  uint16_t peek_packet_id() const;
  void drop_session();
  Status header_error(uint8_t header) const;
  Status length_error() const;
  void finish_packet(uint32_t now_ms, Event* ev);
  void finish_publish(Event* ev);
  void protocol_error(Event* ev, Status why);

  uint8_t* rx_buf_;
  size_t rx_cap_;
  uint8_t* tx_buf_;
  size_t tx_cap_;
  size_t tx_head_ = 0;
  size_t tx_end_ = 0;

  State state_ = State::Idle;
  uint16_t next_id_ = 0;
  uint16_t keep_alive_s_ = 0;
  uint32_t connect_timeout_ms_ = 0;
  uint32_t connect_ms_ = 0;
  uint32_t last_tx_ms_ = 0;
  uint32_t last_rx_ms_ = 0;
  uint32_t ping_sent_ms_ = 0;
  bool ping_outstanding_ = false;
  size_t reserved_at_ = 0;     // tx_end_ before a reserve_publish, for cancel_publish
  bool tx_unstamped_ = false;  // a packet was queued by a call without a clock (publish/subscribe)

  uint16_t pending_subs_[kMaxPendingSubscribes] = {};
  uint16_t pending_acks_[kMaxPendingAcks] = {};
  uint8_t pending_ack_count_ = 0;

  Rx rx_state_ = Rx::Header;
  uint8_t rx_header_ = 0;
  uint8_t rx_len_bytes_ = 0;
  uint32_t rx_rem_ = 0;
  uint32_t rx_got_ = 0;
  // CONNACK/PUBACK/SUBACK bodies (2-3 bytes) live here, so rx_buf holds only PUBLISH and even a
  // tiny rx_buf keeps the session working.
  uint8_t small_[4] = {};
};

}  // namespace mqtt
}  // namespace tinyfl
