// The keeper wired to a real Node over a scripted byte pipe: what a boot loads, when a round is
// saved (only once its UPDATE is acknowledged), what a rebooted node refuses, and what it does
// when the storage fails or holds a state that is not its own.
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "tinyfl/cursor.h"
#include "tinyfl/mqtt.h"
#include "tinyfl/node.h"
#include "tinyfl/node_state.h"
#include "tinyfl/state_store.h"
#include "tinyfl/wire.h"

using namespace tinyfl;

namespace {

constexpr uint16_t kDim = 3, kClasses = 2;
const uint8_t kModel[8] = {9, 9, 8, 8, 7, 7, 6, 6};

// Bytes in, bytes out discarded; every log line kept (the keeper reports through the log).
class ScriptPort final : public Port {
 public:
  uint8_t in[4096];
  size_t in_len = 0, in_pos = 0;
  char logs[32][160];
  int n_logs = 0;

  uint32_t now = 0;
  uint32_t millis() override { return now; }
  bool pipe_open() override { return true; }
  void pipe_close() override {}
  int32_t pipe_read(uint8_t* buf, size_t cap) override {
    const size_t n = in_len - in_pos < cap ? in_len - in_pos : cap;
    memcpy(buf, in + in_pos, n);
    in_pos += n;
    return static_cast<int32_t>(n);
  }
  int32_t pipe_write(const uint8_t*, size_t len) override { return static_cast<int32_t>(len); }
  void wait(uint32_t) override {}
  uint32_t entropy() override { return 1; }
  void log(const char* line) override {
    if (n_logs < 32) strncpy(logs[n_logs++], line, sizeof logs[0] - 1);
  }
  void feed(const uint8_t* p, size_t n) {
    memcpy(in + in_len, p, n);
    in_len += n;
  }
  bool logged(const char* text) const {
    for (int i = 0; i < n_logs; ++i)
      if (strstr(logs[i], text) != nullptr) return true;
    return false;
  }
};

// Two slots in RAM that can be told to fail their writes.
class RamRegion final : public StateRegion {
 public:
  uint8_t mem[2][1024];
  bool fail_writes = false;
  RamRegion() { memset(mem, 0xFF, sizeof mem); }
  size_t slot_size() const override { return sizeof mem[0]; }
  bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) override {
    if (slot > 1 || offset + len > sizeof mem[0]) return false;
    memcpy(dst, mem[slot] + offset, len);
    return true;
  }
  bool erase(uint8_t slot) override {
    if (slot > 1) return false;
    memset(mem[slot], 0xFF, sizeof mem[0]);
    return true;
  }
  bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) override {
    if (fail_writes || slot > 1 || offset + len > sizeof mem[0]) return false;
    memcpy(mem[slot] + offset, src, len);
    return true;
  }
};

RamRegion region;
uint8_t record[kStateRecordMax];

// One boot of a node: its cache, the node, and the keeper on the shared region.
struct Boot {
  ScriptPort port;
  CacheStorage<8, kDim> samples;
  EmbeddingCache cache{samples};
  Node node{port, cache};
  StateStore store{region, record, sizeof record};
  NodeStateKeeper keeper{store, port, cache};
  bool ready = false;

  explicit Boot(uint16_t classes = kClasses, bool with_peer = false) {
    if (cache.configure(kDim, classes, 0.05f, 0) != Status::Ok) return;
    for (int i = 0; i < 8; ++i) {
      const int8_t x[kDim] = {static_cast<int8_t>(10 * i), static_cast<int8_t>(-3 * i), 1};
      if (cache.add(x, static_cast<uint8_t>(i % classes)) != Status::Ok) return;
    }
    NodeConfig c{};
    c.node_id = "keeper";
    c.topic_prefix = "tinyfl/k";
    memcpy(c.model_hash, kModel, sizeof c.model_hash);
    static const uint8_t seed[32] = {0x5E};
    static const PeerSeed peer[] = {{"p2", seed}};  // secure aggregation with one other node
    c.peers = with_peer ? peer : nullptr;
    c.n_peers = with_peer ? 1 : 0;
    ready = node.begin(c) == Status::Ok;
  }

  void step() {
    (void)node.poll();
    keeper.after_poll(node);
  }

  void online() {
    step();  // CONNECT out
    const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    port.feed(connack, sizeof connack);
    step();
  }

  // The retained GLOBAL of `round` for this node's shape, as the broker delivers it.
  // masked: a secure-aggregation round of this node and p2.
  void global(uint32_t round, bool masked = false) {
    static float head[kClasses * (kDim + 1)];
    for (size_t i = 0; i < sizeof head / sizeof head[0]; ++i) head[i] = 0.01f * static_cast<float>(i);
    GlobalFields g{};
    g.round_id = round;
    memcpy(g.model_hash, kModel, sizeof g.model_hash);
    g.embed_dim = kDim;
    g.n_classes = kClasses;
    g.epochs = 1;
    g.batch_size = 2;
    g.lr = 0.2f;
    g.uplink_bits = 8;
    g.uplink_scale_mode = 1;
    g.seed = 3;
    g.head = TensorFields{32, 0, kClasses, kDim + 1, nullptr, nullptr, head};
    static const IdRef selected[2] = {{"keeper", 6}, {"p2", 2}};
    if (masked) {
      g.masked = true;
      g.n_selected = 2;
      g.selected = selected;
      g.mask_bits = 17;
      g.threshold = 2;
      g.secagg_scale = 1.0f / 127.0f;
    }
    uint8_t frame[512], packet[600];
    size_t len = 0;
    if (encode_global(g, frame, sizeof frame, &len) != Status::Ok) return;
    Writer w(packet, sizeof packet);
    if (mqtt::encode_publish(w, "tinyfl/k/global", frame, len, 0, true, false, 0) != Status::Ok) return;
    port.feed(packet, w.size());
    step();
  }

  // PUBACKs for every packet id the node may have used so far: its UPDATE is acknowledged.
  void acknowledge() {
    for (uint8_t id = 1; id <= 8; ++id) {
      const uint8_t puback[] = {0x40, 0x02, 0x00, id};
      port.feed(puback, sizeof puback);
    }
    step();
  }
};

StateView newest(Status* s) {
  static uint8_t buf[kStateRecordMax];
  StateStore store(region, buf, sizeof buf);
  StateView v{};
  *s = store.load(kModel, &v);
  return v;
}

}  // namespace

TINYFL_TEST(saved_only_after_the_update_is_acknowledged) {
  region = RamRegion();
  static Boot b;
  CHECK(b.ready);
  CHECK(b.keeper.restore(b.node, kModel) == Status::NoData);
  CHECK(b.port.logged("state: nothing loaded: no_data"));
  b.online();
  b.global(100);
  CHECK_EQ(b.node.update_round(), 100);
  CHECK(b.node.update_pending());
  Status s = Status::Ok;
  newest(&s);
  CHECK(s == Status::NoData);  // trained and sent, not acknowledged: nothing persisted yet
  b.acknowledge();
  CHECK(!b.node.update_pending());
  const StateView v = newest(&s);
  CHECK(s == Status::Ok);
  CHECK_EQ(v.round_id, 100);
  CHECK_EQ(v.sequence, 1);
  CHECK_EQ(v.flags, kStateTrainedHead);
  CHECK_EQ(v.rows, kClasses);
  CHECK_EQ(v.cols, kDim + 1);
  CHECK_EQ(v.counters.rounds_served, 1);
  CHECK_EQ(v.cache_samples, 8);
  // the trained head: the round's global head plus the node's delta
  for (size_t i = 0; i < v.size(); ++i)
    CHECK(v.head(i) == b.node.round_global_head()[i] + b.node.round_delta()[i]);
  CHECK(v.head(0) != b.node.round_global_head()[0]);  // it did train
  CHECK(b.port.logged("state: saved round 100 seq 1 slot 0 head crc "));
  CHECK_EQ(b.keeper.saved_round(), 100);
  b.step();
  b.step();
  CHECK_EQ(b.store.stats().saves, 1);  // once per round, not per poll
}

TINYFL_TEST(a_rebooted_node_resumes_and_refuses_what_it_served) {
  // (the region holds round 100 from the previous case)
  static Boot b;
  CHECK(b.ready);
  CHECK(b.keeper.restore(b.node, kModel) == Status::Ok);
  CHECK_EQ(b.node.last_round(), 100);
  CHECK_EQ(b.node.counters().rounds_served, 1);
  CHECK_EQ(b.keeper.saved_round(), 100);
  CHECK(b.port.logged("state: loaded round 100 seq 1 slot 0 head crc "));
  b.online();
  b.global(100);  // asked again after the reboot: stale, not trained again
  CHECK_EQ(b.node.update_round(), 0);
  CHECK_EQ(b.node.counters().rounds_served, 1);
  b.global(101);
  b.acknowledge();
  Status s = Status::Ok;
  const StateView v = newest(&s);
  CHECK(s == Status::Ok);
  CHECK_EQ(v.round_id, 101);
  CHECK_EQ(v.sequence, 2);
  CHECK_EQ(b.store.newest_slot(), 1);
  CHECK_EQ(v.counters.rounds_served, 2);
}

TINYFL_TEST(a_failed_save_is_logged_and_the_next_round_saves) {
  static Boot b;
  CHECK(b.keeper.restore(b.node, kModel) == Status::Ok);  // round 101
  b.online();
  region.fail_writes = true;
  b.global(102);
  b.acknowledge();
  CHECK(b.port.logged("state: save of round 102 failed: pipe_error"));
  CHECK(b.node.online());  // the node goes on
  region.fail_writes = false;
  Status s = Status::Ok;
  CHECK_EQ(newest(&s).round_id, 101);
  b.global(103);
  b.acknowledge();
  CHECK_EQ(newest(&s).round_id, 103);
}

TINYFL_TEST(foreign_or_misshapen_states_are_not_loaded) {
  static Boot three_classes(3);
  CHECK(three_classes.ready);
  CHECK(three_classes.keeper.restore(three_classes.node, kModel) == Status::WrongShape);
  CHECK_EQ(three_classes.node.last_round(), 0);
  static Boot other;
  const uint8_t other_model[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  CHECK(other.keeper.restore(other.node, other_model) == Status::WrongModel);
  CHECK_EQ(other.node.last_round(), 0);
  CHECK(other.port.logged("state: nothing loaded: wrong_model"));
}

TINYFL_TEST(without_storage_nothing_is_written) {
  region = RamRegion();
  static Boot b;
  CHECK(b.keeper.restore(b.node, kModel, false) == Status::PipeError);
  CHECK(b.port.logged("state: storage unavailable"));
  b.online();
  b.global(200);
  b.acknowledge();
  CHECK_EQ(b.node.counters().rounds_served, 1);
  CHECK_EQ(b.store.stats().erases, 0);
  Status s = Status::Ok;
  newest(&s);
  CHECK(s == Status::NoData);
}

TINYFL_TEST(a_masked_round_keeps_the_global_head_not_its_delta) {
  region = RamRegion();
  static Boot b(kClasses, true);
  CHECK(b.ready);
  CHECK(b.keeper.restore(b.node, kModel) == Status::NoData);
  b.online();
  b.global(300, true);
  CHECK(b.node.update_masked());
  b.acknowledge();
  Status s = Status::Ok;
  const StateView v = newest(&s);
  CHECK(s == Status::Ok);
  CHECK_EQ(v.round_id, 300);
  CHECK_EQ(v.flags, 0);  // the delta went out masked: only the global head is kept
  for (size_t i = 0; i < v.size(); ++i) CHECK(v.head(i) == 0.01f * static_cast<float>(i));
  CHECK(b.port.logged("state: saved round 300"));
}

TINYFL_TEST(a_minimum_interval_spaces_the_saves_and_keeps_the_latest_round) {
  region = RamRegion();
  static Boot b;
  b.keeper.set_min_save_interval(60000);
  CHECK(b.keeper.restore(b.node, kModel) == Status::NoData);
  b.online();
  b.global(400);
  b.acknowledge();
  Status s = Status::Ok;
  CHECK_EQ(newest(&s).round_id, 400);  // the first save is not held back
  b.port.now = 20000;
  b.global(401);
  b.acknowledge();
  b.port.now = 40000;
  b.global(402);
  b.acknowledge();
  CHECK_EQ(newest(&s).round_id, 400);  // within the minute: nothing written
  CHECK_EQ(b.store.stats().saves, 1);
  b.port.now = 60000;
  b.step();
  const StateView v = newest(&s);
  CHECK(s == Status::Ok);
  CHECK_EQ(v.round_id, 402);  // then the newest round served, with its head
  CHECK_EQ(v.counters.rounds_served, 3);
  for (size_t i = 0; i < v.size(); ++i)
    CHECK(v.head(i) == b.node.round_global_head()[i] + b.node.round_delta()[i]);
  CHECK_EQ(b.store.stats().saves, 2);
}

int main() { return tinyfl_test::run_all(); }
