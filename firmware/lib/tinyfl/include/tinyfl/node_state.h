// Persisted node state, wired to a node: at boot the newest record restores the node's last
// served round id and counters (and the head it trained); after each round the node served, once
// the broker acknowledged its UPDATE, the state is saved (state_store.h has the record and the
// two-slot argument).
//
// The keeper watches the node between polls (Node::update_round() and friends) instead of being
// called from node.cpp, so the core's flash budget does not pay for it; a main runs
//   keeper.restore(node, hash);
//   for (;;) { const uint32_t ms = node.poll(); keeper.after_poll(node); port.wait(ms); }
// (keeper.step(node) is one turn of that loop, keeper.run(node) the loop).
//
// Why save on the PUBACK and not when the round is trained: a node that dies before its UPDATE
// reached the broker must not have persisted the round, or after the reboot it would refuse the
// round's GLOBAL (asked again by the coordinator) as stale with no UPDATE left to send; without
// the round persisted it trains the round again, deterministically (the round's seed), and sends
// the same UPDATE.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/config.h"
#include "tinyfl/node.h"
#include "tinyfl/port.h"
#include "tinyfl/state_store.h"

namespace tinyfl {

class NodeStateKeeper {
 public:
  // Keeps references; all must outlive the keeper. The store's buffer is reused for every save.
  NodeStateKeeper(StateStore& store, Port& port, const EmbeddingCache& cache) : store_(store), port_(port), cache_(cache) {}

  // Loads the newest state of `model_hash` and resumes the node from it (before its first poll).
  // Ok: resumed; NoData: nothing persisted yet (a fresh node); WrongModel: the newest state is of
  // another model (ignored, overwritten by the next save); WrongShape: its head is not this
  // cache's k x (d + 1) (ignored); PipeError: the storage failed (the node runs without it).
  // Every outcome is logged as one "state: ..." line. `storage_ok` false (the port could not open
  // its storage): nothing is loaded or ever saved, PipeError.
  Status restore(Node& node, const uint8_t model_hash[8], bool storage_ok = true);

  // Call after every poll: notices a newly served round (keeps its head) and saves once the
  // broker acknowledged its UPDATE. A failed save is logged and tried again after the next round.
  void after_poll(Node& node);

  // At most one save per `ms` of the port's clock (0, the default: one after every round served;
  // the first save is never held back). For a flash without wear levelling (the Nano 33 BLE's
  // pages are rated for 10,000 erases): a node that reboots in between resumes from the last
  // round saved, older than the last one served, and may serve a later round again (the
  // coordinator drops the duplicate UPDATE; WIRE.md).
  void set_min_save_interval(uint32_t ms) { min_interval_ms_ = ms; }
  // One turn of a main loop: node.poll(), after_poll(), then the port's wait.
  void step(Node& node);
  [[noreturn]] void run(Node& node);

  // The head of the last round saved or loaded (rows() x cols() values; 0 x 0 before any).
  const float* head() const { return head_; }
  uint16_t rows() const { return rows_; }
  uint16_t cols() const { return cols_; }
  uint32_t saved_round() const { return saved_round_; }

 private:
  void capture(const Node& node);
  void save(const Node& node);

  StateStore& store_;
  Port& port_;
  const EmbeddingCache& cache_;
  uint8_t model_hash_[8] = {};
  float head_[kHeadValues] = {};
  uint16_t rows_ = 0;
  uint16_t cols_ = 0;
  uint8_t flags_ = 0;
  uint32_t captured_round_ = 0;  // the round whose head head_ holds
  uint32_t saved_round_ = 0;     // the round of the newest record
  bool off_ = false;             // no storage: after_poll does nothing
  uint32_t min_interval_ms_ = 0;
  uint32_t last_save_ms_ = 0;
  bool saved_once_ = false;      // since boot
};

}  // namespace tinyfl
