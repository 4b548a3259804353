// libFuzzer target for the persisted-state record decoder and the two-slot store, which read
// whatever the flash holds: torn writes, another firmware's bytes, a damaged page.
//
// Input: [fix | split hi] [split lo] [bytes...]; the bytes before the split fill slot 0, the rest
// slot 1 (each padded with 0xFF, as erased flash). With the top bit of the first byte set, each
// slot's CRC is made to match the length its header claims, so that the fuzzer gets past the CRC
// to the head values and to choosing between two valid slots. Checks:
//   * decode_state on each slot either refuses or yields a record that re-encodes to the same
//     bytes, with a head inside the input and finite values;
//   * load() returns either nothing or one of the two slots' records (the newer one when both
//     decode), and never reads outside the region;
//   * a save after that load lands in the other slot and the next load returns exactly it.
//
// Build and run (60 s):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Ifirmware/lib/tinyfl/include \
//     firmware/fuzz/fuzz_state_store.cpp firmware/lib/tinyfl/src/state_store.cpp \
//     firmware/lib/tinyfl/src/crc32.cpp firmware/lib/tinyfl/src/status.cpp -o /tmp/fuzz_state_store
//   mkdir -p /tmp/fuzz_state_store_corpus && /tmp/fuzz_state_store -max_total_time=60 /tmp/fuzz_state_store_corpus
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/state_store.h"

using namespace tinyfl;

namespace {

void require(bool cond) {
  if (!cond) abort();
}

constexpr size_t kSlot = kStateRecordMax + 64;

class MemRegion final : public StateRegion {
 public:
  uint8_t mem[kStateSlots][kSlot];
  size_t slot_size() const override { return kSlot; }
  bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) override {
    require(slot < kStateSlots && offset <= kSlot && len <= kSlot - offset);
    memcpy(dst, mem[slot] + offset, len);
    return true;
  }
  bool erase(uint8_t slot) override {
    require(slot < kStateSlots);
    memset(mem[slot], 0xFF, kSlot);
    return true;
  }
  bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) override {
    require(slot < kStateSlots && offset <= kSlot && len <= kSlot - offset && offset % 4 == 0 && len % 4 == 0);
    memcpy(mem[slot] + offset, src, len);
    return true;
  }
};

float head_copy[kHeadValues];
uint8_t encoded[kStateRecordMax];

// A decoded record, encoded again from its fields: the same bytes as the slot's prefix.
void check_round_trip(const uint8_t* slot, size_t len, const StateView& v) {
  const size_t total = state_record_size(v.rows, v.cols);
  require(total <= len && v.head_raw == slot + kStateHeaderBytes);
  StateFields f{};
  static_cast<StateInfo&>(f) = v;
  for (size_t i = 0; i < v.size(); ++i) {
    head_copy[i] = v.head(i);
    require(isfinite(head_copy[i]));
  }
  f.head = head_copy;
  size_t n = 0;
  require(encode_state(f, v.sequence, encoded, sizeof encoded, &n) == Status::Ok);
  require(n == total && memcmp(encoded, slot, n) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static MemRegion region;
  const size_t body = size - 2;
  const bool fix_crc = (data[0] & 0x80) != 0;
  const size_t split = ((size_t(data[0] & 0x7F) << 8) | data[1]) % (body + 1);
  const size_t len0 = split < kSlot ? split : kSlot;
  const size_t len1 = body - split < kSlot ? body - split : kSlot;
  memset(region.mem, 0xFF, sizeof region.mem);
  memcpy(region.mem[0], data + 2, len0);
  memcpy(region.mem[1], data + 2 + split, len1);
  for (uint8_t s = 0; fix_crc && s < kStateSlots; ++s) {
    uint8_t* m = region.mem[s];
    const uint32_t total = uint32_t(m[12]) | uint32_t(m[13]) << 8 | uint32_t(m[14]) << 16 | uint32_t(m[15]) << 24;
    if (total < 20 || total > kSlot) continue;
    const uint32_t crc = crc32(m, total - 4);
    for (int i = 0; i < 4; ++i) m[total - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  }

  StateView views[kStateSlots];
  bool valid[kStateSlots];
  for (uint8_t s = 0; s < kStateSlots; ++s) {
    valid[s] = decode_state(region.mem[s], kSlot, &views[s]) == Status::Ok;
    if (valid[s]) check_round_trip(region.mem[s], kSlot, views[s]);
  }

  static uint8_t buf[kStateRecordMax];
  StateStore store(region, buf, sizeof buf);
  StateView got{};
  const uint8_t* hash = valid[0] ? views[0].model_hash : views[1].model_hash;
  const Status s = store.load(hash, &got);
  if (!valid[0] && !valid[1]) {
    require(s == Status::NoData);
  } else {
    const uint8_t want = valid[1] && (!valid[0] || state_newer(views[1].sequence, views[0].sequence)) ? 1 : 0;
    require(s == Status::Ok || s == Status::WrongModel);
    require(store.newest_slot() == want && got.sequence == views[want].sequence);
    require(memcmp(buf, region.mem[want], state_record_size(got.rows, got.cols)) == 0);
  }

  // Save a state of its own over whatever was there: it lands in the other slot and wins.
  StateFields f{};
  memcpy(f.model_hash, "fuzzhash", 8);
  f.round_id = 7;
  f.rows = 2;
  f.cols = 3;
  const float head[6] = {1, 2, 3, 4, 5, 6};
  f.head = head;
  const uint8_t before = store.newest_slot();
  const bool any = valid[0] || valid[1];
  require(store.save(f) == Status::Ok);
  require(store.newest_slot() == (any ? 1 - before : 0));
  StateStore fresh(region, buf, sizeof buf);
  require(fresh.load(f.model_hash, &got) == Status::Ok && got.round_id == 7 && got.head(5) == 6.0f);
  return 0;
}
