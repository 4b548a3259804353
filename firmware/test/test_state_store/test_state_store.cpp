// The two-slot state store against an in-memory NOR flash that can lose power after any byte it
// programs and any word it erases: whatever the cut, the next boot loads the old state or the new
// one, never a mix, and the store goes on saving afterwards. Also: corrupt slots, a state of
// another model, the sequence wrapping, every refusal of the record decoder, failing storage.
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "tinyfl/crc32.h"
#include "tinyfl/state_store.h"

using namespace tinyfl;

namespace {

constexpr size_t kSlot = 4096;
constexpr uint16_t kRows = 5, kCols = 17;
constexpr size_t kN = kRows * kCols;
const uint8_t kHashA[8] = {1, 2, 3, 4, 5, 6, 7, 8};
const uint8_t kHashB[8] = {8, 7, 6, 5, 4, 3, 2, 1};

// NOR flash: erase sets 0xFF, a write can only clear bits. `budget` counts programmed bytes and
// erased words; when it runs out the power is gone: the operation stops where it was and every
// later one fails. `garbage_erase`: an interrupted erase leaves noise instead of a clean prefix.
class FlashRegion final : public StateRegion {
 public:
  uint8_t mem[2 * kSlot];
  long budget = -1;  // < 0: unlimited
  bool powered = true;
  bool garbage_erase = false;
  bool fail_read = false, fail_write = false, drop_byte = false;
  long ops = 0;

  FlashRegion() { memset(mem, 0xFF, sizeof mem); }
  size_t slot_size() const override { return kSlot; }
  bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) override {
    if (!powered || fail_read || slot > 1 || offset > kSlot || len > kSlot - offset) return false;
    memcpy(dst, mem + slot * kSlot + offset, len);
    return true;
  }
  bool erase(uint8_t slot) override {
    if (slot > 1) return false;
    uint8_t* p = mem + slot * kSlot;
    for (size_t w = 0; w < kSlot; w += 4) {
      if (!tick()) {
        if (garbage_erase)
          for (size_t i = w; i < kSlot; ++i) p[i] = static_cast<uint8_t>(i * 131u + 7u);
        return false;
      }
      memset(p + w, 0xFF, 4);
    }
    return true;
  }
  bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) override {
    CHECK(offset % 4 == 0 && len % 4 == 0);
    if (fail_write || slot > 1 || offset > kSlot || len > kSlot - offset) return false;
    uint8_t* p = mem + slot * kSlot + offset;
    for (size_t i = 0; i < len; ++i) {
      if (!tick()) return false;
      if (drop_byte && i == len / 2) continue;  // a flash that silently misses a byte
      p[i] &= src[i];
    }
    return true;
  }

 private:
  bool tick() {
    if (!powered) return false;
    ++ops;
    if (budget >= 0 && ops > budget) {
      powered = false;
      return false;
    }
    return true;
  }
};

uint8_t buf[kStateRecordMax];

float head_value(uint32_t round, size_t i) { return static_cast<float>(round) * 0.5f - static_cast<float>(i) * 0.01f; }

struct State {
  float head[kN];
  StateFields f;
};

State make_state(uint32_t round, const uint8_t* hash = kHashA) {
  State s{};
  for (size_t i = 0; i < kN; ++i) s.head[i] = head_value(round, i);
  memcpy(s.f.model_hash, hash, 8);
  s.f.round_id = round;
  s.f.flags = kStateTrainedHead;
  s.f.rows = kRows;
  s.f.cols = kCols;
  s.f.counters = NodeCounters{round, round + 1, 2, 3, 4, 5, 6};
  s.f.cache_samples = 100 + round;
  return s;
}

Status save(FlashRegion& r, uint32_t round, const uint8_t* hash = kHashA) {
  State s = make_state(round, hash);
  s.f.head = s.head;
  StateStore store(r, buf, sizeof buf);
  return store.save(s.f);
}

// A fresh boot: the round of the state loaded for kHashA, 0 when none; checks that every field
// is the one saved with that round, so a mix of two records cannot pass.
uint32_t boot_round(FlashRegion& r, Status* status = nullptr) {
  StateStore store(r, buf, sizeof buf);
  StateView v{};
  const Status s = store.load(kHashA, &v);
  if (status != nullptr) *status = s;
  if (s != Status::Ok) return 0;
  CHECK_EQ(v.rows, kRows);
  CHECK_EQ(v.cols, kCols);
  CHECK_EQ(v.counters.connects, v.round_id);
  CHECK_EQ(v.counters.rounds_served, v.round_id + 1);
  CHECK_EQ(v.counters.protocol_errors, 6);
  CHECK_EQ(v.cache_samples, 100 + v.round_id);
  for (size_t i = 0; i < kN; ++i)
    if (v.head(i) != head_value(v.round_id, i)) {
      CHECK(v.head(i) == head_value(v.round_id, i));
      break;
    }
  return v.round_id;
}

// Cuts the power after every possible operation of saving `new_round` onto `before`, reboots,
// and checks the state is the old one until the write completed, then the new one; and that the
// store saves again after the cut.
void power_cut_everywhere(const FlashRegion& before, uint32_t old_round, uint32_t new_round, bool garbage) {
  FlashRegion probe = before;
  CHECK(save(probe, new_round) == Status::Ok);
  const long total = probe.ops;
  CHECK(total == static_cast<long>(kSlot / 4 + state_record_size(kRows, kCols)));
  static FlashRegion r;
  for (long cut = 0; cut <= total; ++cut) {
    r = before;
    r.budget = cut;
    r.garbage_erase = garbage;
    const Status s = save(r, new_round);
    CHECK((s == Status::Ok) == (cut == total));
    r.powered = true;
    r.budget = -1;
    const uint32_t got = boot_round(r);
    if (got != (cut == total ? new_round : old_round)) {
      char m[120];
      snprintf(m, sizeof m, "cut after %ld of %ld ops: loaded round %u", cut, total, static_cast<unsigned>(got));
      tinyfl_test::fail(m, __FILE__, __LINE__);
      return;
    }
    // The next save after the reboot lands and wins, whatever the cut left in the other slot.
    CHECK(save(r, new_round + 1) == Status::Ok);
    CHECK_EQ(boot_round(r), new_round + 1);
    CHECK(save(r, new_round + 2) == Status::Ok);
    CHECK_EQ(boot_round(r), new_round + 2);
  }
}

}  // namespace

TINYFL_TEST(record_round_trip) {
  State s = make_state(7);
  s.f.head = s.head;
  size_t len = 0;
  CHECK(encode_state(s.f, 42, buf, sizeof buf, &len) == Status::Ok);
  CHECK_EQ(len, state_record_size(kRows, kCols));
  CHECK(len % 4 == 0);
  CHECK(buf[0] == 'T' && buf[1] == 'F' && buf[2] == 'S' && buf[3] == 'T');
  StateView v{};
  CHECK(decode_state(buf, len, &v) == Status::Ok);
  CHECK_EQ(v.sequence, 42);
  CHECK_EQ(v.round_id, 7);
  CHECK_EQ(v.flags, kStateTrainedHead);
  CHECK(memcmp(v.model_hash, kHashA, 8) == 0);
  CHECK_EQ(v.counters.globals_rejected, 2);
  CHECK_EQ(v.counters.oversized_dropped, 5);
  CHECK_EQ(v.head_crc, crc32(buf + kStateHeaderBytes, 4 * kN));
  for (size_t i = 0; i < kN; ++i) CHECK(v.head(i) == s.head[i]);
  // A slot is larger than its record: the bytes after it do not matter.
  memset(buf + len, 0x5A, sizeof buf - len);
  CHECK(decode_state(buf, sizeof buf, &v) == Status::Ok);
  // the largest head fits the buffer the store asks for
  static float big[kHeadValues];
  s.f.rows = kMaxClasses;
  s.f.cols = kMaxDim + 1;
  s.f.head = big;
  CHECK(encode_state(s.f, 1, buf, sizeof buf, &len) == Status::Ok);
  CHECK_EQ(len, kStateRecordMax);
}

TINYFL_TEST(encoder_refuses_bad_fields) {
  State s = make_state(3);
  s.f.head = s.head;
  size_t len = 0;
  CHECK(encode_state(s.f, 1, buf, state_record_size(kRows, kCols) - 1, &len) == Status::BufferFull);
  s.head[10] = NAN;
  CHECK(encode_state(s.f, 1, buf, sizeof buf, &len) == Status::NonFinite);
  s.head[10] = 0;
  s.f.rows = 0;
  CHECK(encode_state(s.f, 1, buf, sizeof buf, &len) == Status::BadValue);
  s.f.rows = kMaxClasses + 1;
  CHECK(encode_state(s.f, 1, buf, sizeof buf, &len) == Status::BadValue);
  s.f.rows = kRows;
  s.f.cols = 1;
  CHECK(encode_state(s.f, 1, buf, sizeof buf, &len) == Status::BadValue);
  s.f.cols = kMaxDim + 2;
  CHECK(encode_state(s.f, 1, buf, sizeof buf, &len) == Status::BadValue);
  s.f.cols = kCols;
  s.f.head = nullptr;
  CHECK(encode_state(s.f, 1, buf, sizeof buf, &len) == Status::BadValue);
}

TINYFL_TEST(decoder_refuses_every_damage) {
  State s = make_state(9);
  s.f.head = s.head;
  size_t len = 0;
  CHECK(encode_state(s.f, 5, buf, sizeof buf, &len) == Status::Ok);
  static uint8_t rec[kStateRecordMax];
  memcpy(rec, buf, len);
  StateView v{};
  for (size_t n = 0; n < len; ++n) CHECK(decode_state(rec, n, &v) != Status::Ok);  // every truncation
  // every single bit flip is refused (by a field check or the CRC)
  for (size_t i = 0; i < len; ++i)
    for (int bit = 0; bit < 8; ++bit) {
      rec[i] ^= static_cast<uint8_t>(1u << bit);
      if (decode_state(rec, len, &v) == Status::Ok) {
        CHECK(!"a flipped bit decoded");
        return;
      }
      rec[i] ^= static_cast<uint8_t>(1u << bit);
    }
  CHECK(decode_state(rec, len, &v) == Status::Ok);
  // Field checks come before the CRC, with their own reasons.
  auto with = [&](size_t at, uint8_t value, Status expect) {
    memcpy(rec, buf, len);
    rec[at] = value;
    CHECK(decode_state(rec, len, &v) == expect);
  };
  with(0, 'X', Status::BadMagic);
  with(4, 2, Status::BadVersion);
  with(5, 0x80, Status::BadValue);   // unknown flag
  with(6, 1, Status::BadValue);      // reserved
  with(12, 0x10, Status::BadLength);  // length disagrees with the shape
  with(28, 0, Status::BadValue);     // rows 0
  with(28, kMaxClasses + 1, Status::BadValue);
  with(30, 1, Status::BadValue);     // cols 1
  with(64, 0x12, Status::BadCrc);    // a head byte
  with(len - 1, 0x00, Status::BadCrc);
  // A CRC-valid record with a NaN in its head (no node writes one) is refused too.
  memcpy(rec, buf, len);
  const uint8_t nan[4] = {0x00, 0x00, 0xC0, 0x7F};
  memcpy(rec + kStateHeaderBytes, nan, 4);
  const uint32_t crc = crc32(rec, len - 4);
  for (int i = 0; i < 4; ++i) rec[len - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  CHECK(decode_state(rec, len, &v) == Status::NonFinite);
}

TINYFL_TEST(slots_alternate_and_newest_wins) {
  static FlashRegion r;
  r = FlashRegion();
  Status s = Status::Ok;
  CHECK_EQ(boot_round(r, &s), 0);
  CHECK(s == Status::NoData);
  StateStore store(r, buf, sizeof buf);
  for (uint32_t round = 1; round <= 5; ++round) {
    State st = make_state(round * 10);
    st.f.head = st.head;
    CHECK(store.save(st.f) == Status::Ok);
    CHECK(store.newest_slot() == (round - 1) % 2);
    CHECK_EQ(store.newest_sequence(), round);
    CHECK_EQ(boot_round(r), round * 10);
  }
  // One erase and one write of one record per save.
  CHECK_EQ(store.stats().saves, 5);
  CHECK_EQ(store.stats().erases, 5);
  CHECK_EQ(store.stats().writes, 5);
  CHECK_EQ(store.stats().bytes_written, 5 * state_record_size(kRows, kCols));
  // A store started on a region with records continues their sequence in the other slot.
  CHECK(save(r, 60) == Status::Ok);
  StateStore again(r, buf, sizeof buf);
  StateView v{};
  CHECK(again.load(kHashA, &v) == Status::Ok);
  CHECK_EQ(v.sequence, 6);
  CHECK_EQ(again.newest_slot(), 1);
  CHECK_EQ(v.round_id, 60);
}

TINYFL_TEST(power_cut_during_first_save) {
  static FlashRegion empty;
  empty = FlashRegion();
  power_cut_everywhere(empty, 0, 11, false);
}

TINYFL_TEST(power_cut_during_save_over_an_older_record) {
  // both slots hold records (rounds 20 and 21): the save of 22 overwrites the slot of 20
  static FlashRegion before;
  before = FlashRegion();
  CHECK(save(before, 20) == Status::Ok);
  CHECK(save(before, 21) == Status::Ok);
  before.ops = 0;
  power_cut_everywhere(before, 21, 22, false);
}

TINYFL_TEST(power_cut_during_erase_leaving_noise) {
  static FlashRegion before;
  before = FlashRegion();
  CHECK(save(before, 30) == Status::Ok);
  CHECK(save(before, 31) == Status::Ok);
  before.ops = 0;
  power_cut_everywhere(before, 31, 32, true);
}

TINYFL_TEST(corrupt_slots_are_skipped) {
  static FlashRegion base, r;
  base = FlashRegion();
  CHECK(save(base, 40) == Status::Ok);  // slot 0
  CHECK(save(base, 41) == Status::Ok);  // slot 1
  const size_t len = state_record_size(kRows, kCols);
  for (size_t i = 0; i < len; ++i) {  // any byte of the newest record damaged: the older one
    r = base;
    r.mem[kSlot + i] ^= 0x01;
    CHECK_EQ(boot_round(r), 40);
    r.mem[i] ^= 0x80;  // both damaged: nothing
    Status s = Status::Ok;
    CHECK_EQ(boot_round(r, &s), 0);
    CHECK(s == Status::NoData);
  }
  // the older slot damaged: the newest still loads; and a save then replaces the damaged one
  r = base;
  r.mem[100] ^= 0xFF;
  CHECK_EQ(boot_round(r), 41);
  CHECK(save(r, 42) == Status::Ok);
  CHECK_EQ(boot_round(r), 42);
  CHECK(r.mem[kSlot + 24] == 41);  // slot 1 (round 41) untouched
}

TINYFL_TEST(state_of_another_model_is_ignored) {
  static FlashRegion r;
  r = FlashRegion();
  CHECK(save(r, 50, kHashB) == Status::Ok);
  Status s = Status::Ok;
  CHECK_EQ(boot_round(r, &s), 0);
  CHECK(s == Status::WrongModel);
  CHECK(save(r, 51) == Status::Ok);  // model A's first save takes the other slot
  CHECK_EQ(boot_round(r), 51);
  CHECK(r.mem[24] == 50);  // model B's record is still in slot 0, older
  CHECK(save(r, 52, kHashB) == Status::Ok);  // newest is B again: A loads nothing, not round 51
  CHECK_EQ(boot_round(r, &s), 0);
  CHECK(s == Status::WrongModel);
}

TINYFL_TEST(sequence_wraps) {
  static FlashRegion r;
  r = FlashRegion();
  State st = make_state(70);
  st.f.head = st.head;
  size_t len = 0;
  CHECK(encode_state(st.f, 0xFFFFFFFFu, buf, sizeof buf, &len) == Status::Ok);
  CHECK(r.write(0, 0, buf, len));
  StateStore store(r, buf, sizeof buf);
  State next = make_state(71);
  next.f.head = next.head;
  CHECK(store.save(next.f) == Status::Ok);
  CHECK_EQ(store.newest_sequence(), 0);
  CHECK_EQ(store.newest_slot(), 1);
  CHECK_EQ(boot_round(r), 71);  // sequence 0 is newer than 0xFFFFFFFF
  CHECK(save(r, 72) == Status::Ok);
  StateStore third(r, buf, sizeof buf);
  StateView v{};
  CHECK(third.load(kHashA, &v) == Status::Ok);
  CHECK_EQ(v.round_id, 72);
  CHECK_EQ(v.sequence, 1);
  CHECK_EQ(third.newest_slot(), 0);
  CHECK(state_newer(0, 0xFFFFFFFFu) && !state_newer(0xFFFFFFFFu, 0) && !state_newer(5, 5));
}

TINYFL_TEST(failing_storage_is_reported_and_loses_nothing) {
  static FlashRegion r;
  r = FlashRegion();
  CHECK(save(r, 80) == Status::Ok);
  r.fail_write = true;
  StateStore store(r, buf, sizeof buf);
  State st = make_state(81);
  st.f.head = st.head;
  CHECK(store.save(st.f) == Status::PipeError);
  CHECK_EQ(store.stats().failures, 1);
  r.fail_write = false;
  CHECK_EQ(boot_round(r), 80);
  r.drop_byte = true;  // the write "succeeds" but a byte is missing: the read-back catches it
  CHECK(store.save(st.f) == Status::PipeError);
  r.drop_byte = false;
  CHECK_EQ(boot_round(r), 80);
  CHECK(store.save(st.f) == Status::Ok);  // and the store recovers
  CHECK_EQ(boot_round(r), 81);
  r.fail_read = true;
  Status s = Status::Ok;
  CHECK_EQ(boot_round(r, &s), 0);
  CHECK(s == Status::PipeError);
  CHECK(store.save(st.f) == Status::PipeError);  // written, but it cannot be read back
  r.fail_read = false;
  CHECK_EQ(boot_round(r), 81);
  // a buffer smaller than a record is refused before anything is touched
  StateStore small(r, buf, kStateRecordMax - 4);
  StateView v{};
  CHECK(small.load(kHashA, &v) == Status::TooLarge);
  CHECK(small.save(st.f) == Status::TooLarge);
}

int main() { return tinyfl_test::run_all(); }
