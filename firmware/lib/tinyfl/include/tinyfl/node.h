// The node state machine: keeps an MQTT session to the broker over the port's byte pipe, announces
// itself, and serves federated rounds (docs/WIRE.md, "Node behaviour on GLOBAL").
//
//   offline --pipe_open + CONNECT--> connecting --CONNACK--> online --GLOBAL--> train, publish UPDATE
//      ^                                 |                      |
//      +------ backoff (1 s .. 60 s) ----+---- pipe error, ping or CONNACK timeout, protocol error
//
// Everything runs from poll(): feed it time, it moves bytes and returns how long the caller may
// sleep. Training runs inside poll() to completion; a round of a small head takes milliseconds.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tinyfl/cache.h"
#include "tinyfl/config.h"
#include "tinyfl/head.h"
#include "tinyfl/mqtt.h"
#include "tinyfl/node_config.h"
#include "tinyfl/port.h"
#include "tinyfl/status.h"
#include "tinyfl/wire.h"

namespace tinyfl {

constexpr uint32_t kFirmwareVersion = (0u << 16) | (1u << 8) | 0u;  // 0.1.0
constexpr size_t kMaxTopicPrefix = 96;
constexpr size_t kMaxTopic = kMaxTopicPrefix + kMaxNodeId + 16;

enum class Board : uint8_t { Native = 0, QemuCortexM4 = 1, Esp32Dev = 2, Nano33Ble = 3 };

// A secure-aggregation peer: its id and the 32-byte seed this node shares with it (dealt by
// provisioning; docs/PRIVACY.md).
struct PeerSeed {
  const char* id;  // NUL-terminated
  const uint8_t* seed;
};

struct NodeConfig {
  const char* node_id;       // 1..32 of [A-Za-z0-9_-]
  const char* topic_prefix;  // e.g. "tinyfl/demo"
  uint8_t model_hash[8];     // of the model (or feature specification) the samples come from
  Board board;
  uint16_t keep_alive_s;     // MQTT keep-alive; 0 picks 30 s
  const char* username;      // nullable
  const char* password;      // nullable
  // Both null: a fleet without keys (CRC frames). Both set: 32-byte keys (docs/SECURITY.md) the
  // node signs its HELLO and UPDATE with (frame_key) and checks every GLOBAL with (fleet_key).
  const uint8_t* frame_key;
  const uint8_t* fleet_key;
  // Secure aggregation: the seeds shared with other nodes (n_peers <= kMaxPeers; none: the node
  // serves no MASKED round, `no_seed`).
  const PeerSeed* peers;
  uint16_t n_peers;
  // The sample count HELLO announces (the coordinator caps each update's count at it and selects
  // no node announcing 0): 0 = the cache's size at connect, for a node whose samples are loaded
  // at boot; a node whose cache fills from a live stream announces the cache's capacity.
  uint32_t announced_samples;
};

// The settings a config record holds: MQTT credentials, keys and secure-aggregation peers (the
// id, prefix and keep-alive are the caller's to take from it or from elsewhere). `peers` is the
// caller's table of at least record.n_peers entries; it and `record` must outlive the node.
// Inline, so that it is the main's code, not the core's.
inline void apply_config_record(const NodeConfigRecord& record, PeerSeed* peers, NodeConfig* config) {
  config->username = record.username[0] != 0 ? record.username : nullptr;
  config->password = record.password[0] != 0 ? record.password : nullptr;
  config->frame_key = record.has_keys ? record.frame_key : nullptr;
  config->fleet_key = record.has_keys ? record.fleet_key : nullptr;
  for (uint16_t i = 0; i < record.n_peers; ++i) peers[i] = PeerSeed{record.peer_ids[i], record.peer_seeds[i]};
  config->peers = peers;
  config->n_peers = record.n_peers;
}

// A GLOBAL whose round id is more than this above the last one served is ignored (round_ahead):
// one forged or corrupted id near 2^32 cannot make a node ignore every later round. Round ids
// follow the coordinator's clock in seconds; 2^22 s is 48.5 days (docs/WIRE.md, "Round ids").
constexpr uint32_t kRoundIdMargin = 1u << 22;

// Where the node hands the messages of its label topic (docs/WIRE.md, "LABEL"), unchecked:
// tinyfl/label.h's LabelReceiver checks them, outside the core.
using MessageHook = void (*)(void* context, const uint8_t* payload, size_t len);

struct NodeCounters {
  uint32_t connects;
  uint32_t rounds_served;
  uint32_t globals_rejected;
  uint32_t updates_resent;
  uint32_t masks_revealed;  // UNMASK requests answered
  uint32_t oversized_dropped;
  uint32_t protocol_errors;
};

class Node {
 public:
  // The node keeps references to `port` and `cache`; both must outlive it.
  Node(Port& port, EmbeddingCache& cache);

  // Checks the configuration and builds the topics. Call once before poll().
  [[nodiscard]] Status begin(const NodeConfig& config);
  // One step: (re)connect when due, move bytes both ways, handle packets and timers.
  // Returns the milliseconds the caller may sleep (Port::wait) before the next step.
  uint32_t poll();
  // Runs poll() and Port::wait() forever: the main loop of a target with nothing else to do.
  [[noreturn]] void run();

  bool online() const { return state_ == State::Online; }
  uint32_t last_round() const { return last_round_; }
  // The newest round id of a genuine GLOBAL (tag verified, not older than the last served, not
  // too far ahead) this node has seen, served or not (e.g. refused for an empty cache): what an
  // operator's LABEL must not be older than (tinyfl/label.h).
  uint32_t newest_round() const { return newest_round_ > last_round_ ? newest_round_ : last_round_; }
  const NodeCounters& counters() const { return counters_; }

  // For the persisted state (node_state.h), which watches the node between polls instead of being
  // called from it, so that none of this is in the core's flash: inline, compiled where used.
  // The round of the last UPDATE (0: none yet), whether the broker has not acknowledged it yet,
  // and whether it was masked (then head_ holds the masked values, not the delta).
  uint32_t update_round() const { return update_round_; }
  bool update_pending() const { return update_unacked_; }
  bool update_masked() const { return update_mask_bits_ != 0; }
  // The last round's global head and the node's (clipped) delta to it, k x (d + 1) each; the delta
  // only while !update_masked(). Valid from the poll that served the round until the next GLOBAL.
  const float* round_global_head() const { return global_head_; }
  const float* round_delta() const { return head_; }
  // Before begin(): the node subscribes to `<prefix>/nodes/<id>/label` and hands every message on
  // it to hook(context, ...) from inside poll(); without a hook it does not subscribe. The
  // payload lives in the MQTT receive buffer until the hook returns.
  void set_label_hook(MessageHook hook, void* context) {
    label_hook_ = hook;
    label_context_ = context;
  }
  // Whether the node holds keys, and what a LABEL on its topic is checked with then: its frame
  // key over the label topic. Inline, built where used, so the core keeps no copy of it.
  bool keyed() const { return keyed_; }
  FrameAuth label_auth() const { return FrameAuth{config_.frame_key, topic_label_, strlen(topic_label_)}; }

  // Before the first poll: the last served round id and the counters of a persisted state, so a
  // rebooted node refuses the rounds it served before (StaleRound) and keeps counting.
  void resume(uint32_t last_round, const NodeCounters& counters) {
    last_round_ = last_round;
    counters_ = counters;
  }

 private:
  enum class State : uint8_t { Offline, Connecting, Online };

  void start_connect(uint32_t now);
  void drop_connection(const char* why, Status status);
  void on_connected();
  void handle_event(const mqtt::Event& ev);
  void handle_global(const uint8_t* payload, size_t len);
  // UNMASK: the round seeds shared with the dropped peers, once per masked round (docs/PRIVACY.md).
  [[nodiscard]] Status handle_unmask(const uint8_t* payload, size_t len);
  [[nodiscard]] Status mask_update(const GlobalView& g, uint16_t n);
  int peer_index(const char* id, size_t len) const;
  [[nodiscard]] Status serve_round(const uint8_t* payload, size_t len, uint32_t* round_out);
  [[nodiscard]] Status publish_hello();
  bool update_fits_tx(uint8_t bits) const;
  void publish_pending_update();
  [[nodiscard]] Status encode_pending_update(uint8_t* dst, size_t len) const;
  void describe_update(UpdateFields* u) const;
  void flush_tx();
  void log_status(const char* what, Status s);

  Port& port_;
  EmbeddingCache& cache_;
  NodeConfig config_{};
  State state_ = State::Offline;
  uint32_t next_attempt_ms_ = 0;
  uint32_t backoff_ms_ = 0;
  uint32_t last_round_ = 0;
  uint32_t newest_round_ = 0;
  NodeCounters counters_{};

  char topic_hello_[kMaxTopic] = {};
  char topic_status_[kMaxTopic] = {};
  char topic_update_[kMaxTopic] = {};
  char topic_global_[kMaxTopic] = {};
  char topic_label_[kMaxTopic] = {};
  char client_id_[kMaxNodeId + 10] = {};
  // Who signs what (null when the fleet has no keys): the topics above under the node's keys.
  FrameAuth hello_auth_{};
  FrameAuth update_auth_{};
  FrameAuth global_auth_{};
  MessageHook label_hook_ = nullptr;
  void* label_context_ = nullptr;
  bool keyed_ = false;

  uint8_t mqtt_rx_[kMqttRxBuffer] = {};
  uint8_t mqtt_tx_[kMqttTxBuffer] = {};
  mqtt::Client mqtt_;

  // One round's working memory: the head being trained and the global head it started from. A
  // masked round sends masked values instead of the delta, so they share the storage; and once
  // trained, the global head's bytes hold the round seeds an UNMASK answer carries.
  union {
    float head_[kHeadValues] = {};
    uint32_t masked_[kHeadValues];
  };
  float global_head_[kHeadValues] = {};
  int8_t codes_[kHeadValues] = {};
  float scales_[kMaxClasses] = {};
  HeadTrainer trainer_;

  // The last round's outcome stays until a newer round replaces it. Its UPDATE is encoded straight
  // into the MQTT tx buffer, again after a reconnect while unacknowledged, and again whenever the
  // GLOBAL of that round arrives again (a broker that acknowledged it may have died with it).
  TrainResult result_{};
  uint32_t update_round_ = 0;
  uint8_t update_bits_ = 0;
  uint8_t update_scale_mode_ = 0;
  uint8_t update_mask_bits_ = 0;  // 0: a plain update; 9..32: masked, as masked_ holds it
  bool update_noised_ = false;    // distributed DP's noise is in masked_: statistics sent as 0
  // The masked round served, until its UNMASK is answered: who was selected (peer indexes) and
  // the threshold below which the node reveals nothing.
  uint32_t secagg_round_ = 0;
  uint16_t secagg_selected_ = 0;
  uint16_t secagg_threshold_ = 0;
  // (no initializers: written before they are read, and every byte of code counts here)
  bool peer_selected_[kMaxPeers];
  IdRef reveal_ids_[kMaxPeers];
  uint16_t update_packet_id_ = 0;
  bool update_unacked_ = false;
  uint8_t uplink_bits_supported_ = 0;
};

}  // namespace tinyfl
