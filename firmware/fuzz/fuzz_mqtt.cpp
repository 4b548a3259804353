// libFuzzer target for the sans-IO MQTT client's receive path.
//
// Input: [rx_cap] [tx_cap] [split hi] [split lo] [mode] [clock step] [tick] [bytes from the broker...]
//   mode bit 0   stay in Connecting, so the broker bytes start with a CONNACK (refusals included)
//   mode bits 1-3 drain tx after every n-th event (0: never), so PUBACKs must wait for room
//   mode bits 4-7 size/4 of a QoS 0 publish left queued in tx
//   tick         poll the timers every `tick` broker bytes (0: only after events)
// The broker bytes go to a client twice: in two pieces cut at a data-derived point, and a byte at a
// time. Both runs must produce the same events and the same queued tx bytes, and every event must
// be well-formed: pointers inside the exact-size heap rx buffer (ASan guards both ends), consumed
// counts in range. The harness reacts like a node (subscribe and publish after Connected, reconnect
// after a drop, drain tx, advance the clock), always at the same byte offsets in both runs.
//
// Build and run (60 s):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Ifirmware/lib/tinyfl/include \
//     firmware/fuzz/fuzz_mqtt.cpp firmware/lib/tinyfl/src/mqtt.cpp \
//     firmware/lib/tinyfl/src/status.cpp -o /tmp/fuzz_mqtt
//   mkdir -p /tmp/fuzz_mqtt_corpus && /tmp/fuzz_mqtt -max_total_time=60 /tmp/fuzz_mqtt_corpus
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinyfl/mqtt.h"

using namespace tinyfl;
using namespace tinyfl::mqtt;

namespace {

void require(bool cond) {
  if (!cond) abort();
}

struct Config {
  size_t rx_cap;
  size_t tx_cap;
  size_t split;
  bool stay_connecting;
  uint32_t drain_every;
  size_t filler;
  uint32_t step_ms;
  size_t tick;
};

// FNV-1a over everything observable, to compare the two runs.
struct Digest {
  uint64_t h = 1469598103934665603ull;
  uint32_t events = 0;
  void add(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  template <typename T>
  void add_value(T v) {
    add(&v, sizeof v);
  }
};

const uint8_t kConnack[] = {0x20, 0x02, 0x00, 0x00};

bool in_rx(const void* p, size_t n, const uint8_t* rx, size_t cap) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return rx != nullptr && b >= rx && n <= cap && b + n <= rx + cap;
}

// What a node does once connected: subscribe (SUBACK id 1 or so becomes valid), publish QoS 1,
// and optionally leave a QoS 0 publish sitting in tx. Each may not fit a small tx: fine.
void after_connected(Client& c, const Config& cfg) {
  static const uint8_t kFiller[64] = {};
  uint16_t id;
  const uint8_t one = 1;
  (void)c.subscribe("g/+", 1, &id);
  (void)c.publish("p", &one, 1, 1, false, &id);
  if (cfg.filler != 0) (void)c.publish("f", kFiller, cfg.filler, 0, false, nullptr);
}

void start(Client& c, const Config& cfg, uint32_t now) {
  ConnectOptions o{};
  o.client_id = "f";
  o.keep_alive_s = 5;
  o.clean_session = true;
  require(c.connect(o, now) == Status::Ok);  // tx_cap >= 16 always holds this 15-byte CONNECT
  c.tx_consume(c.tx_size());
  if (cfg.stay_connecting) return;
  Event ev;
  require(c.feed(kConnack, sizeof kConnack, now, &ev) == sizeof kConnack);
  require(ev.type == EventType::Connected && c.connected());
  after_connected(c, cfg);
}

void check_event(const Event& ev, const Client& c, const uint8_t* rx, size_t rx_cap) {
  require(static_cast<uint8_t>(ev.type) <= static_cast<uint8_t>(EventType::ProtocolError));
  switch (ev.type) {
    case EventType::Message:
      require(ev.topic != nullptr && ev.topic_len > 0 && in_rx(ev.topic, ev.topic_len, rx, rx_cap));
      require(ev.payload != nullptr && in_rx(ev.payload, ev.payload_len, rx, rx_cap));
      require(ev.payload >= reinterpret_cast<const uint8_t*>(ev.topic) + ev.topic_len);
      require(ev.qos <= 1 && (ev.qos == 0) == (ev.packet_id == 0));
      require(memchr(ev.topic, 0, ev.topic_len) == nullptr);
      require(c.connected());
      break;
    case EventType::OversizedDropped:
      require(ev.payload == nullptr && ev.qos <= 1);
      if (ev.topic != nullptr) require(ev.topic_len > 0 && in_rx(ev.topic, ev.topic_len, rx, rx_cap));
      require(c.connected());
      break;
    case EventType::SubAck:
      require(ev.packet_id != 0 && (ev.code <= 2 || ev.code == kSubackFailure));
      break;
    case EventType::PubAck:
      require(ev.packet_id != 0);
      break;
    case EventType::ConnectRefused:
      require(ev.code >= 1 && ev.code <= 5);
      require(!c.connected() && !c.connecting() && c.tx_size() == 0);
      break;
    case EventType::ProtocolError:
    case EventType::PingTimeout:
      require(!c.connected() && !c.connecting() && c.tx_size() == 0);
      break;
    case EventType::Connected:
      require(c.connected() && ev.code == 0);
      break;
    case EventType::None:
      break;
  }
}

void record(Digest& d, const Event& ev) {
  ++d.events;
  d.add_value(static_cast<uint8_t>(ev.type));
  d.add_value(ev.packet_id);
  d.add_value(ev.code);
  d.add_value(ev.qos);
  d.add_value(static_cast<uint8_t>(ev.retain));
  d.add_value(static_cast<uint64_t>(ev.payload_len));
  d.add_value(ev.topic_len);
  if (ev.topic != nullptr) d.add(ev.topic, ev.topic_len);
  if (ev.payload != nullptr) d.add(ev.payload, ev.payload_len);
}

// Advances the clock, runs the timers and restarts a dropped session.
void tick(Client& c, const Config& cfg, uint32_t* clock, Digest& d) {
  *clock += cfg.step_ms;
  const Event timer = c.poll(*clock);
  require(timer.type == EventType::None || timer.type == EventType::PingTimeout);
  if (timer.type != EventType::None) {
    check_event(timer, c, nullptr, 0);
    record(d, timer);
  }
  if (!c.connected() && !c.connecting()) start(c, cfg, *clock);
}

void react(Client& c, const Config& cfg, const Event& ev, uint32_t* clock, Digest& d) {
  if (ev.type == EventType::Connected) after_connected(c, cfg);
  if (cfg.drain_every != 0 && d.events % cfg.drain_every == 0) c.tx_consume(c.tx_size());
  if (d.events % 5 == 0) c.tx_consume(1);  // a short write
  tick(c, cfg, clock, d);
}

Digest run(const uint8_t* data, size_t len, const Config& cfg, bool bytewise) {
  uint8_t* rx = cfg.rx_cap != 0 ? new uint8_t[cfg.rx_cap] : nullptr;
  uint8_t* tx = new uint8_t[cfg.tx_cap];
  Digest d;
  {
    Client c(rx, cfg.rx_cap, tx, cfg.tx_cap);
    uint32_t clock = 0;
    start(c, cfg, clock);
    size_t pos = 0;
    while (pos < len) {
      size_t end = bytewise ? pos + 1 : (pos < cfg.split ? cfg.split : len);
      if (cfg.tick != 0) {
        const size_t next_tick = (pos / cfg.tick + 1) * cfg.tick;
        if (next_tick < end) end = next_tick;
      }
      while (pos < end) {
        Event ev;
        const size_t used = c.feed(data + pos, end - pos, clock, &ev);
        require(used > 0 && used <= end - pos);
        pos += used;
        require(c.tx_size() <= cfg.tx_cap);
        check_event(ev, c, rx, cfg.rx_cap);
        if (ev.type == EventType::None) {
          require(pos == end);  // no event: the client took everything offered
          continue;
        }
        record(d, ev);
        react(c, cfg, ev, &clock, d);
      }
      if (cfg.tick != 0 && pos % cfg.tick == 0) tick(c, cfg, &clock, d);
    }
    d.add(c.tx_data(), c.tx_size());
  }
  delete[] rx;
  delete[] tx;
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = 7;
  if (size < kHeader) return 0;
  const size_t body_len = size - kHeader;
  Config cfg{};
  cfg.rx_cap = data[0] % 80;       // 0..79: many PUBLISHes end up oversized
  cfg.tx_cap = 16 + data[1] % 112;  // small enough that PUBACKs wait for room
  cfg.split = ((size_t(data[2]) << 8) | data[3]) % (body_len + 1);
  cfg.stay_connecting = (data[4] & 1) != 0;
  cfg.drain_every = (data[4] >> 1) & 7;
  cfg.filler = size_t(data[4] >> 4) * 4;
  cfg.step_ms = uint32_t(data[5]) * 64;  // up to 16 s: crosses keep-alive 5 s and both timeouts
  cfg.tick = data[6];
  const uint8_t* body = data + kHeader;
  const Digest a = run(body, body_len, cfg, false);
  const Digest b = run(body, body_len, cfg, true);
  require(a.events == b.events && a.h == b.h);
  return 0;
}
