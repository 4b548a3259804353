// Persisted node state: the trained head, the last served round id and the counters, kept in two
// flash slots so that a power cut at any point of a save leaves the old state or the new one.
//
// The store does no I/O of its own: a port implements StateRegion (read / erase / write of two
// slots of slot_size() bytes each) over what its board has (a file, semihosting, NVS, a flash
// page), and the caller owns the one record buffer (kStateRecordMax bytes). docs/ARCHITECTURE.md,
// "Persisted state", has the argument; in short:
//
//   * every record ends in a CRC-32 over all bytes before it, and is written into a freshly erased
//     slot, CRC last: until the write completes the slot fails its check and is ignored;
//   * save() never touches the slot holding the newest valid record: it writes the other one with
//     sequence + 1, so during a save the previous state stays intact;
//   * load() takes the valid record with the highest sequence (serial-number order, so the 32-bit
//     sequence may wrap); a torn, corrupt or foreign slot is skipped.
//
// Record v1, little-endian, every field 4-byte aligned (flash writes words):
//   0  u32 magic 'T' 'F' 'S' 'T'
//   4  u8 version (1), u8 flags (kStateTrainedHead), u16 reserved (0)
//   8  u32 sequence
//  12  u32 length of the whole record, CRC included
//  16  u8[8] model hash: a state of another model is not loaded
//  24  u32 last served round id
//  28  u16 rows k, u16 cols d + 1 of the head
//  32  u32 x 7 node counters (NodeCounters, in declaration order)
//  60  u32 samples the embedding cache held
//  64  f32 x rows * cols head values, row-major
//  ..  u32 CRC-32 (crc32.h) of bytes 0 .. length - 4
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/config.h"
#include "tinyfl/node.h"
#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint32_t kStateMagic = 0x54534654u;  // "TFST" as bytes
constexpr uint8_t kStateVersion = 1;
constexpr size_t kStateHeaderBytes = 64;
constexpr size_t kStateRecordMax = kStateHeaderBytes + 4u * kHeadValues + 4u;
constexpr uint8_t kStateSlots = 2;
// flags: set when the head is the node's trained head (global head + its clipped delta); clear
// when the round was masked (its delta is not kept in the clear) and the head is the global one.
constexpr uint8_t kStateTrainedHead = 1u << 0;

// Two slots of equal size on some storage. Each call reports whether it did all it was asked;
// the store checks every one and reads a written record back before trusting it.
// No virtual destructor, as SampleSource: nothing is deleted through this interface.
class StateRegion {
 public:
  // Bytes per slot; a slot smaller than the records the node writes makes save() fail (TooLarge).
  virtual size_t slot_size() const = 0;
  // Reads `len` bytes at `offset` of `slot`; false on an I/O error or a range outside the slot.
  virtual bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) = 0;
  // Erases a whole slot (to 0xFF on NOR flash; any content that fails the CRC would do).
  virtual bool erase(uint8_t slot) = 0;
  // Writes `len` bytes at `offset` of an erased slot. `offset` and `len` are multiples of 4.
  virtual bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) = 0;

 protected:
  StateRegion() = default;
  StateRegion(const StateRegion&) = default;
  StateRegion& operator=(const StateRegion&) = default;
  ~StateRegion() = default;
};

// What a record holds besides its head and sequence.
struct StateInfo {
  uint8_t model_hash[8];
  uint32_t round_id;
  uint8_t flags;
  uint16_t rows;
  uint16_t cols;
  NodeCounters counters;
  uint32_t cache_samples;

  size_t size() const { return static_cast<size_t>(rows) * cols; }
};

// A record to save.
struct StateFields : StateInfo {
  const float* head;  // rows * cols values
};

// A decoded record, with the head still in the record's bytes.
struct StateView : StateInfo {
  uint32_t sequence;
  const uint8_t* head_raw;  // rows * cols little-endian f32
  uint32_t head_crc;        // CRC-32 of the head's bytes, as logged on save and load

  float head(size_t i) const;
};

// Bytes of the record of a head of rows x cols.
constexpr size_t state_record_size(uint16_t rows, uint16_t cols) {
  return kStateHeaderBytes + 4u * static_cast<size_t>(rows) * cols + 4u;
}

// Encodes `f` with `sequence` into dst[0 .. *len). Errors: BadValue (rows 0 or above kMaxClasses,
// cols below 2 or above kMaxDim + 1, a null head), NonFinite (a head value), BufferFull.
[[nodiscard]] Status encode_state(const StateFields& f, uint32_t sequence, uint8_t* dst, size_t cap, size_t* len);

// Decodes the record at the start of `src` (a slot's bytes; anything after the record is ignored).
// Errors: Truncated, BadMagic, BadVersion, BadLength (length field disagrees with the shape or
// exceeds `len`), BadValue (shape, reserved bytes), BadCrc, NonFinite (a head value).
[[nodiscard]] Status decode_state(const uint8_t* src, size_t len, StateView* out);

// True when sequence `a` is newer than `b` in serial-number order (RFC 1982): a - b, taken as a
// signed 32-bit number, is positive. Two slots differ by one, so the order survives the wrap.
constexpr bool state_newer(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

// What the store did to its region, for the flash-wear numbers in bench/firmware.md.
struct StateStoreStats {
  uint32_t saves;          // completed saves
  uint32_t erases;         // slot erases
  uint32_t writes;         // write calls
  uint32_t bytes_written;  // bytes passed to write
  uint32_t failures;       // saves that failed (I/O error or read-back mismatch)
};

class StateStore {
 public:
  // `buf` (at least kStateRecordMax bytes) holds one record at a time; it must outlive the store.
  StateStore(StateRegion& region, uint8_t* buf, size_t cap) : region_(region), buf_(buf), cap_(cap) {}

  // The newest valid record into *out (its head points into the store's buffer until the next
  // call). NoData when no slot holds a valid record; WrongModel when the newest one is of another
  // model (it is not used: an older record of this model would resurrect a superseded state);
  // PipeError when the region cannot be read.
  [[nodiscard]] Status load(const uint8_t model_hash[8], StateView* out);

  // Writes `f` as the next record into the slot not holding the newest valid one: erase, write,
  // read back and compare. Errors: those of encode_state, TooLarge (record larger than a slot),
  // PipeError (the region failed, or the bytes read back differ).
  [[nodiscard]] Status save(const StateFields& f);

  // The slot and sequence of the newest valid record (valid once load or save succeeded).
  uint8_t newest_slot() const { return newest_slot_; }
  uint32_t newest_sequence() const { return newest_seq_; }
  const StateStoreStats& stats() const { return stats_; }

 private:
  // Reads both slots and finds the newest valid record; true when there is one (view in *out).
  bool scan(StateView* out, bool* io_error);
  bool read_slot(uint8_t slot, StateView* out, bool* io_error);
  bool verify(uint8_t slot, size_t len);

  StateRegion& region_;
  uint8_t* buf_;
  size_t cap_;
  bool scanned_ = false;  // newest_* describe the region (set by a scan, kept by each save)
  bool any_ = false;      // a valid record exists
  uint8_t newest_slot_ = 0;
  uint32_t newest_seq_ = 0;
  StateStoreStats stats_{};
};

}  // namespace tinyfl
