#include "tinyfl/node.h"

#include <math.h>
#include <string.h>

#include "tinyfl/logline.h"
#include "tinyfl/quant.h"
#include "tinyfl/rng.h"
#include "tinyfl/noise.h"
#include "tinyfl/secagg.h"
#include "tinyfl/sha256.h"
#include "tinyfl/wire.h"

namespace tinyfl {

namespace {

constexpr uint32_t kBackoffMinMs = 1000;
constexpr uint32_t kBackoffMaxMs = 60000;
constexpr uint32_t kIdleSleepMs = 1000;
constexpr uint32_t kConnackTimeoutMs = 5000;
constexpr uint16_t kDefaultKeepAliveS = 30;

// HELLO's uplink_bits flag for an uplink of `bits` (0 for a width the wire does not know).
uint8_t uplink_flag(uint8_t bits) {
  switch (bits) {
    case 8: return kUplink8Bit;
    case 4: return kUplink4Bit;
    case 2: return kUplink2Bit;
    case 32: return kUplinkFloat32;
    default: return 0;
  }
}

// dst = a + b + c (+ d), or false when it does not fit.
bool join(char* dst, size_t cap, const char* a, const char* b, const char* c, const char* d = "") {
  const char* parts[] = {a, b, c, d};
  size_t n = 0;
  for (const char* p : parts) {
    const size_t len = strlen(p);
    if (n + len + 1 > cap) return false;
    memcpy(dst + n, p, len);
    n += len;
  }
  dst[n] = 0;
  return true;
}

// Milliseconds from `now` until `deadline`, 0 when it has passed (wrap-safe).
uint32_t ms_until(uint32_t deadline, uint32_t now) {
  const int32_t left = static_cast<int32_t>(deadline - now);
  return left > 0 ? static_cast<uint32_t>(left) : 0;
}

bool topic_equals(const char* topic, const char* t, uint16_t len) {
  return strlen(topic) == len && memcmp(topic, t, len) == 0;
}

// Node ids compare as bytes (a prefix first), as the host's bytes comparison does.
bool id_less(const char* a, size_t a_len, const char* b, size_t b_len) {
  const int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
  return c < 0 || (c == 0 && a_len < b_len);
}

}  // namespace

Node::Node(Port& port, EmbeddingCache& cache)
    : port_(port), cache_(cache), mqtt_(mqtt_rx_, sizeof mqtt_rx_, mqtt_tx_, sizeof mqtt_tx_) {}

Status Node::begin(const NodeConfig& config) {
  if (config.node_id == nullptr || !valid_node_id(config.node_id, strlen(config.node_id))) return Status::BadValue;
  if (config.topic_prefix == nullptr || strlen(config.topic_prefix) == 0 ||
      strlen(config.topic_prefix) > kMaxTopicPrefix)
    return Status::BadValue;
  if (cache_.dim() == 0) return Status::NoData;
  if ((config.frame_key == nullptr) != (config.fleet_key == nullptr)) return Status::BadValue;
  if (config.n_peers > kMaxPeers || (config.n_peers != 0 && config.peers == nullptr)) return Status::BadValue;
  for (uint16_t i = 0; i < config.n_peers; ++i)
    if (config.peers[i].id == nullptr || config.peers[i].seed == nullptr) return Status::BadValue;
  config_ = config;
  if (config_.keep_alive_s == 0) config_.keep_alive_s = kDefaultKeepAliveS;
  const char* p = config.topic_prefix;
  const char* id = config.node_id;
  if (!join(topic_hello_, sizeof topic_hello_, p, "/nodes/", id, "/hello") ||
      !join(topic_status_, sizeof topic_status_, p, "/nodes/", id, "/status") ||
      !join(topic_update_, sizeof topic_update_, p, "/nodes/", id, "/update") ||
      !join(topic_label_, sizeof topic_label_, p, "/nodes/", id, "/label") ||
      !join(topic_global_, sizeof topic_global_, p, "/global", ""))
    return Status::TooLarge;
  keyed_ = config.frame_key != nullptr;
  if (keyed_) {
    hello_auth_ = FrameAuth{config.frame_key, topic_hello_, strlen(topic_hello_)};
    update_auth_ = FrameAuth{config.frame_key, topic_update_, strlen(topic_update_)};
    global_auth_ = FrameAuth{config.fleet_key, topic_global_, strlen(topic_global_)};
  }
  uplink_bits_supported_ = 0;
  const uint8_t widths[] = {8, 4, 2, 32};
  for (uint8_t bits : widths)
    if (update_fits_tx(bits)) uplink_bits_supported_ |= uplink_flag(bits);
  if (uplink_bits_supported_ == 0) return Status::TooLarge;
  // A fixed client id per node: a reconnect replaces a stale session of the same node at once.
  if (!join(client_id_, sizeof client_id_, "tinyfl-", id, "")) return Status::TooLarge;
  LogLine line;
  line.str("node ").str(id).str(" ready: ").u32(cache_.size()).str(" samples, d=").u32(cache_.dim())
      .str(" k=").u32(cache_.n_classes()).str(keyed_ ? ", signed" : "");
  port_.log(line.c_str());
  return Status::Ok;
}

// An uplink is offered when its UPDATE fits the MQTT tx buffer whole.
bool Node::update_fits_tx(uint8_t bits) const {
  UpdateFields u{};
  u.auth = keyed_ ? &update_auth_ : nullptr;
  u.delta.codes = codes_;  // the size pass reads every field, so all must point somewhere
  u.delta.scales = scales_;
  u.delta.values = head_;
  u.delta.bits = bits;
  u.delta.scale_mode = bits == 32 ? 0 : 1;
  u.delta.rows = cache_.n_classes();
  u.delta.cols = static_cast<uint16_t>(cache_.dim() + 1u);
  const size_t fixed_header = 5, topic = 2 + strlen(topic_update_), packet_id = 2;
  return fixed_header + topic + packet_id + encoded_size_update(u) <= sizeof mqtt_tx_;
}

void Node::log_status(const char* what, Status s) {
  LogLine line;
  line.str(what).str(": ").str(status_name(s));
  port_.log(line.c_str());
}

void Node::start_connect(uint32_t now) {
  if (!port_.pipe_open()) {
    drop_connection("broker unreachable", Status::PipeError);
    return;
  }
  static const uint8_t kOffline[] = {'o', 'f', 'f', 'l', 'i', 'n', 'e'};
  mqtt::ConnectOptions opts{};
  opts.client_id = client_id_;
  opts.will_topic = topic_status_;
  opts.will_payload = kOffline;
  opts.will_len = sizeof kOffline;
  opts.will_qos = 1;
  opts.will_retain = true;
  opts.keep_alive_s = config_.keep_alive_s;
  opts.clean_session = true;
  // A broker answers CONNECT within milliseconds; on a byte pipe that lost the CONNECT (a serial
  // bridge or emulator link still coming up) a short wait gets the node online sooner.
  opts.connect_timeout_ms = kConnackTimeoutMs;
  opts.username = config_.username;
  opts.password = config_.password;
  const Status s = mqtt_.connect(opts, now);
  if (s != Status::Ok) {
    drop_connection("connect", s);
    return;
  }
  state_ = State::Connecting;
  ++counters_.connects;
}

void Node::drop_connection(const char* why, Status status) {
  if (state_ != State::Offline || status != Status::PipeError) log_status(why, status);
  mqtt_.reset();
  port_.pipe_close();
  state_ = State::Offline;
  // Exponential backoff with jitter so a fleet does not reconnect in lockstep after a broker restart.
  backoff_ms_ = backoff_ms_ == 0 ? kBackoffMinMs : (backoff_ms_ * 2 > kBackoffMaxMs ? kBackoffMaxMs : backoff_ms_ * 2);
  next_attempt_ms_ = port_.millis() + backoff_ms_ / 2 + port_.entropy() % (backoff_ms_ / 2 + 1);
}

Status Node::publish_hello() {
  HelloFields hello{};
  hello.node_id = config_.node_id;
  hello.node_id_len = static_cast<uint8_t>(strlen(config_.node_id));
  hello.fw_version = kFirmwareVersion;
  memcpy(hello.model_hash, config_.model_hash, sizeof hello.model_hash);
  hello.n_samples = config_.announced_samples != 0 ? config_.announced_samples : cache_.size();
  hello.free_ram = port_.free_ram();
  hello.max_payload = static_cast<uint32_t>(mqtt::max_incoming_payload(sizeof mqtt_rx_, strlen(topic_global_)));
  hello.embed_dim = cache_.dim();
  hello.n_classes = cache_.n_classes();
  hello.uplink_bits = uplink_bits_supported_;
  hello.board = static_cast<uint8_t>(config_.board);
  hello.auth = keyed_ ? &hello_auth_ : nullptr;
  uint8_t frame[128];
  size_t len = 0;
  Status s = encode_hello(hello, frame, sizeof frame, &len);
  if (s != Status::Ok) return s;
  uint16_t pid = 0;
  static const uint8_t kOnline[] = {'o', 'n', 'l', 'i', 'n', 'e'};
  s = mqtt_.publish(topic_status_, kOnline, sizeof kOnline, 1, true, &pid);
  if (s != Status::Ok) return s;
  return mqtt_.publish(topic_hello_, frame, len, 1, true, &pid);
}

void Node::on_connected() {
  state_ = State::Online;
  backoff_ms_ = 0;
  Status s = publish_hello();
  uint16_t pid = 0;
  if (s == Status::Ok) s = mqtt_.subscribe(topic_global_, 1, &pid);
  if (s == Status::Ok && label_hook_ != nullptr) s = mqtt_.subscribe(topic_label_, 1, &pid);
  if (s != Status::Ok) {
    drop_connection("announce", s);
    return;
  }
  port_.log("online");
  publish_pending_update();
}

void Node::describe_update(UpdateFields* u) const {
  const uint16_t k = cache_.n_classes();
  *u = UpdateFields{};
  u->round_id = update_round_;
  u->n_samples = result_.n_samples;
  // under distributed DP the statistics would be data in the clear, outside the guarantee: 0
  u->loss = update_noised_ || result_.epochs == 0 ? 0.0f : result_.epoch_loss[result_.epochs - 1];
  u->accuracy = update_noised_ ? 0.0f : result_.accuracy;
  u->auth = keyed_ ? &update_auth_ : nullptr;
  u->update_norm = update_noised_ ? 0.0f : result_.update_norm;
  if (update_mask_bits_ != 0) {
    u->masked = true;
    u->masked_delta = MaskedFields{update_mask_bits_, k, static_cast<uint16_t>(cache_.dim() + 1u), masked_};
    return;
  }
  u->delta.bits = update_bits_;
  u->delta.scale_mode = update_scale_mode_;
  u->delta.rows = k;
  u->delta.cols = static_cast<uint16_t>(cache_.dim() + 1u);
  if (update_bits_ == 32) {
    u->delta.values = head_;  // train_local leaves the (clipped) delta in head_
  } else {
    u->delta.codes = codes_;
    u->delta.scales = scales_;
  }
}

Status Node::encode_pending_update(uint8_t* dst, size_t len) const {
  UpdateFields u{};
  describe_update(&u);
  size_t written = 0;
  const Status s = encode_update(u, dst, len, &written);
  if (s != Status::Ok) return s;
  return written == len ? Status::Ok : Status::BadLength;
}

void Node::publish_pending_update() {
  if (!update_unacked_ || state_ != State::Online) return;
  UpdateFields u{};
  describe_update(&u);
  const Status s = mqtt_.publish_in_place(topic_update_, encoded_size_update(u), 1, false, &update_packet_id_,
                                          [this](uint8_t* dst, size_t len) { return encode_pending_update(dst, len); });
  if (s != Status::Ok) log_status("publish update", s);
}

void Node::handle_event(const mqtt::Event& ev) {
  switch (ev.type) {
    case mqtt::EventType::Connected:
      on_connected();
      break;
    case mqtt::EventType::ConnectRefused: {
      LogLine line;
      line.str("broker refused connection, code ").u32(ev.code);
      port_.log(line.c_str());
      drop_connection("connect refused", Status::Protocol);
      break;
    }
    case mqtt::EventType::SubAck:
      if (ev.code == 0x80) drop_connection("subscribe refused", Status::Protocol);
      break;
    case mqtt::EventType::PubAck:
      if (update_unacked_ && ev.packet_id == update_packet_id_) update_unacked_ = false;
      break;
    case mqtt::EventType::Message:
      if (topic_equals(topic_global_, ev.topic, ev.topic_len)) handle_global(ev.payload, ev.payload_len);
      else if (label_hook_ != nullptr && topic_equals(topic_label_, ev.topic, ev.topic_len))
        label_hook_(label_context_, ev.payload, ev.payload_len);
      break;
    case mqtt::EventType::OversizedDropped:
      ++counters_.oversized_dropped;
      log_status("dropped a message larger than the receive buffer", Status::TooLarge);
      break;
    case mqtt::EventType::PingTimeout:
      drop_connection(ev.code == mqtt::kTimeoutConnect ? "no CONNACK" : "broker silent", Status::Timeout);
      break;
    case mqtt::EventType::ProtocolError:
      ++counters_.protocol_errors;
      drop_connection("mqtt", Status::Protocol);
      break;
    case mqtt::EventType::None:
      break;
  }
}

void Node::handle_global(const uint8_t* payload, size_t len) {
  if (len > 3 && payload[3] == static_cast<uint8_t>(FrameType::Unmask)) {
    const Status s = handle_unmask(payload, len);
    if (s != Status::Ok) log_status("unmask refused", s);
    return;
  }
  uint32_t round = 0;
  const Status s = serve_round(payload, len, &round);
  if (s == Status::Ok) return;
  // The retained GLOBAL comes back after every reconnect, and the coordinator publishes it again
  // after its own: the round this node served is asked for again. An UPDATE still unacknowledged
  // was already re-sent on reconnect; an acknowledged one may have died with a broker.
  if (s == Status::StaleRound) {
    if (round == update_round_ && update_round_ != 0 && !update_unacked_) {
      update_unacked_ = true;
      ++counters_.updates_resent;
      port_.log("round asked again: update sent again");
      publish_pending_update();
    }
    return;
  }
  ++counters_.globals_rejected;
  // round 0: the frame was refused before its round id was read (e.g. bad_tag)
  LogLine line;
  line.str("GLOBAL of round ").u32(round).str(" ignored: ").str(status_name(s));
  port_.log(line.c_str());
}

Status Node::serve_round(const uint8_t* payload, size_t len, uint32_t* round_out) {
  GlobalView g{};
  Status s = decode_global_frame(payload, len, keyed_ ? &global_auth_ : nullptr, &g);
  if (s != Status::Ok) return s;
  *round_out = g.round_id;
  if (g.round_id <= last_round_) return Status::StaleRound;
  if (last_round_ != 0 && g.round_id - last_round_ > kRoundIdMargin) return Status::RoundAhead;
  if (g.round_id > newest_round_) newest_round_ = g.round_id;  // genuine and current, served or not
  if (!g.selects(config_.node_id, strlen(config_.node_id))) {
    last_round_ = g.round_id;  // not ours: nothing to do until the next round
    return Status::NotSelected;
  }
  if (memcmp(g.model_hash, config_.model_hash, sizeof g.model_hash) != 0) return Status::WrongModel;
  const uint16_t d = cache_.dim(), k = cache_.n_classes();
  if (g.embed_dim != d || g.n_classes != k || g.head.rows != k || g.head.cols != d + 1u)
    return Status::WrongShape;
  if (g.epochs > kMaxEpochs) return Status::Unsupported;
  if (cache_.size() == 0) return Status::NoData;
  const size_t n = static_cast<size_t>(k) * (d + 1u);
  for (size_t i = 0; i < n; ++i) {
    global_head_[i] = g.head.value(i);
    if (!isfinite(global_head_[i])) return Status::NonFinite;
  }

  if ((uplink_bits_supported_ & uplink_flag(g.uplink_bits)) == 0) return Status::Unsupported;
  if (g.masked) {  // a seed with every other selected node (it is selected), or no masking
    if (g.uplink_bits == 32) return Status::Unsupported;
    uint16_t found = 0;
    for (uint16_t i = 0; i < g.n_selected; ++i) {
      const IdRef id = g.selected_id(i);
      if (peer_index(id.id, id.len) >= 0) ++found;
    }
    if (found + 1u != g.n_selected) return Status::NoKey;
  }
  TrainConfig tc{};
  tc.epochs = g.epochs;
  tc.batch_size = g.batch_size;
  tc.lr = g.lr;
  tc.prox_mu = g.prox_mu;
  tc.clip_norm = g.clip_norm;
  Rng rng = round_rng(g.seed, config_.node_id, g.round_id);
  s = trainer_.train_local(global_head_, head_, d, k, cache_, tc, rng, &result_);
  if (s != Status::Ok) return s;
  update_mask_bits_ = 0;
  update_noised_ = g.masked && g.noise_var != 0;
  if (g.masked) {
    s = quantize_scaled(head_, n, g.uplink_bits, g.secagg_scale, rng, codes_);
    if (s == Status::Ok) s = mask_update(g, static_cast<uint16_t>(n));
    if (s != Status::Ok) return s;
  } else if (g.uplink_bits != 32) {
    s = quantize(head_, k, static_cast<uint16_t>(d + 1u), g.uplink_bits, g.uplink_scale_mode, rng, codes_, scales_);
    if (s != Status::Ok) return s;
  }
  last_round_ = g.round_id;
  update_round_ = g.round_id;
  update_bits_ = g.uplink_bits;
  update_scale_mode_ = g.uplink_bits == 32 ? 0 : g.uplink_scale_mode;
  update_unacked_ = true;
  ++counters_.rounds_served;
  UpdateFields u{};
  describe_update(&u);
  LogLine line;
  line.str("round ").u32(g.round_id).str(": ").u32(result_.n_samples).str(" samples, ").u32(result_.epochs)
      .str(" epochs, loss ").f32(result_.epoch_loss[0]).str(" -> ").f32(result_.epoch_loss[result_.epochs - 1])
      .str(", acc ").f32(result_.accuracy).str(", |delta| ").f32(result_.update_norm).str(", ")
      .u32(static_cast<uint32_t>(encoded_size_update(u))).str(" B up");
  port_.log(line.c_str());
  publish_pending_update();
  return Status::Ok;
}

int Node::peer_index(const char* id, size_t len) const {
  for (uint16_t i = 0; i < config_.n_peers; ++i)
    if (strlen(config_.peers[i].id) == len && memcmp(config_.peers[i].id, id, len) == 0) return i;
  return -1;
}

// masked_ = codes + noise + sum of +-m_uv over the other selected nodes, modulo 2^b (docs/WIRE.md);
// the noise only when the GLOBAL asks for it (noise_var); the round is remembered for its UNMASK.
Status Node::mask_update(const GlobalView& g, uint16_t n) {
  const uint32_t mask = g.mask_bits == 32 ? 0xFFFFFFFFu : (1u << g.mask_bits) - 1u;
  for (uint16_t i = 0; i < n; ++i) masked_[i] = static_cast<uint32_t>(static_cast<int32_t>(codes_[i])) & mask;
  if (g.noise_var != 0) {  // --dp distributed: this node's share of the noise, before the masks
    uint8_t key[kNoiseKeyLen] = {};
    Status s = Status::Ok;
    for (uint16_t p = 0; p < config_.n_peers && s == Status::Ok; ++p) s = noise_key_add(config_.peers[p].seed, key);
    if (s == Status::Ok) s = add_discrete_gaussian(key, g.round_id, g.noise_var, masked_, n, g.mask_bits);
    secure_wipe(key, sizeof key);
    if (s != Status::Ok) return s;
  }
  const size_t self_len = strlen(config_.node_id);
  memset(peer_selected_, 0, sizeof peer_selected_);
  for (uint16_t i = 0; i < g.n_selected; ++i) {
    const IdRef id = g.selected_id(i);
    const int p = peer_index(id.id, id.len);
    if (p < 0) continue;  // itself (every other selected id has a seed: checked before training)
    peer_selected_[p] = true;
    uint8_t seed[kRoundSeedLen];
    Status s = secagg_round_seed(config_.peers[p].seed, g.round_id, seed);
    if (s == Status::Ok)
      s = secagg_apply_mask(seed, masked_, n, g.mask_bits, id_less(config_.node_id, self_len, id.id, id.len));
    secure_wipe(seed, sizeof seed);
    if (s != Status::Ok) return s;
  }
  update_mask_bits_ = g.mask_bits;
  secagg_round_ = g.round_id;
  secagg_selected_ = g.n_selected;
  secagg_threshold_ = g.threshold;
  return Status::Ok;
}

Status Node::handle_unmask(const uint8_t* payload, size_t len) {
  UnmaskView u{};
  Status s = decode_unmask_frame(payload, len, keyed_ ? &global_auth_ : nullptr, &u);
  if (s != Status::Ok) return s;
  // Only for the masked round it served, once, with enough survivors, for selected peers: a
  // coordinator cannot learn a round seed any other way (docs/PRIVACY.md).
  if (u.round_id != secagg_round_ || secagg_round_ == 0) return Status::StaleRound;
  if (u.n_survivors < secagg_threshold_ || u.n_dropped > kMaxPeers ||
      static_cast<uint32_t>(u.n_survivors) + u.n_dropped != secagg_selected_)
    return Status::BadValue;
  for (uint16_t i = 0; i < u.n_dropped; ++i) {  // (a peer named twice reveals nothing more)
    const IdRef id = u.dropped_id(i);
    const int p = peer_index(id.id, id.len);
    if (p < 0 || !peer_selected_[p]) return Status::BadValue;
    reveal_ids_[i] = id;
  }
  // The round seeds go into the global head's storage: the round is trained, it is free.
  static_assert(sizeof(float) * kHeadValues >= kMaxPeers * kRoundSeedLen, "room for the round seeds");
  uint8_t(*seeds)[kRoundSeedLen] = reinterpret_cast<uint8_t(*)[kRoundSeedLen]>(global_head_);
  for (uint16_t i = 0; i < u.n_dropped && s == Status::Ok; ++i) {
    const int p = peer_index(reveal_ids_[i].id, reveal_ids_[i].len);
    s = secagg_round_seed(config_.peers[p].seed, u.round_id, seeds[i]);
  }
  if (s != Status::Ok) return s;
  RevealFields f{u.round_id, u.n_dropped, reveal_ids_, seeds, keyed_ ? &update_auth_ : nullptr};
  uint16_t pid = 0;
  s = mqtt_.publish_in_place(topic_update_, encoded_size_reveal(f), 1, false, &pid, [&f](uint8_t* dst, size_t n) {
    size_t written = 0;
    const Status e = encode_reveal(f, dst, n, &written);
    return e != Status::Ok ? e : (written == n ? Status::Ok : Status::BadLength);
  });
  secure_wipe(seeds, static_cast<size_t>(u.n_dropped) * kRoundSeedLen);
  if (s != Status::Ok) return s;
  secagg_round_ = 0;  // answered: never again for this round
  ++counters_.masks_revealed;
  port_.log("revealed the round's masks of its dropped nodes");
  return Status::Ok;
}

void Node::flush_tx() {
  while (mqtt_.tx_size() > 0) {
    const int32_t n = port_.pipe_write(mqtt_.tx_data(), mqtt_.tx_size());
    if (n < 0) {
      drop_connection("pipe write", Status::PipeError);
      return;
    }
    if (n == 0) return;  // the socket is full; the rest goes on the next poll
    mqtt_.tx_consume(static_cast<size_t>(n));
  }
}

uint32_t Node::poll() {
  const uint32_t now = port_.millis();
  if (state_ == State::Offline) {
    if (ms_until(next_attempt_ms_, now) > 0) return ms_until(next_attempt_ms_, now);
    start_connect(now);
    if (state_ == State::Offline) return ms_until(next_attempt_ms_, port_.millis());
  }
  uint8_t chunk[256];
  for (;;) {
    const int32_t n = port_.pipe_read(chunk, sizeof chunk);
    if (n < 0) {
      drop_connection("pipe closed", Status::PipeError);
      return ms_until(next_attempt_ms_, port_.millis());
    }
    if (n == 0) break;
    size_t used = 0;
    while (used < static_cast<size_t>(n) && state_ != State::Offline) {
      mqtt::Event ev{};
      used += mqtt_.feed(chunk + used, static_cast<size_t>(n) - used, port_.millis(), &ev);
      handle_event(ev);
      flush_tx();
    }
    if (state_ == State::Offline) return ms_until(next_attempt_ms_, port_.millis());
  }
  handle_event(mqtt_.poll(port_.millis()));
  if (state_ == State::Offline) return ms_until(next_attempt_ms_, port_.millis());
  flush_tx();
  return mqtt_.tx_size() > 0 ? 10 : kIdleSleepMs;
}

void Node::run() {
  for (;;) port_.wait(poll());
}

}  // namespace tinyfl
