// TinyFL port for QEMU mps2-an386: SysTick millisecond clock, UART0 (interrupt-driven receive into a
// ring buffer) as the byte pipe to the broker, UART1 as the log, WFI while idle.
#pragma once
#include <stdint.h>

#include "tinyfl/port.h"
#include "tinyfl/state_store.h"

namespace port_qemu {

class QemuPort final : public tinyfl::Port {
 public:
  // Starts SysTick and both UARTs; call once from main().
  void begin();
  uint32_t millis() override;
  bool pipe_open() override;
  void pipe_close() override;
  int32_t pipe_read(uint8_t* buf, size_t cap) override;
  int32_t pipe_write(const uint8_t* buf, size_t len) override;
  void wait(uint32_t max_ms) override;
  uint32_t entropy() override;
  void log(const char* line) override;
};

// Where QEMU's generic loader puts the node's data blob and config record (docs/WIRE.md).
constexpr uintptr_t kDataBlobAddress = 0x21000000;
constexpr uintptr_t kDataBlobMaxBytes = 0x00F00000;
constexpr uintptr_t kNodeConfigAddress = 0x21F00000;
constexpr uintptr_t kNodeConfigMaxBytes = 0x1000;
// A u32 the loader may set (`-device loader,addr=...,data=N,data-len=4`): N readings per second
// to play the data blob as a live sensor; 0 (RAM starts zeroed) loads the blob at boot.
constexpr uintptr_t kReplayRateAddress = 0x21F01010;
// A u32 the loader may set to 1 with a replay: the readings' labels come from the node's label
// topic (the operator's LABEL frames, tinyfl/label.h) instead of the blob.
constexpr uintptr_t kLabelsFromTopicAddress = 0x21F01014;

// The persisted state (tinyfl/node_state.h) in a host file, as an emulated flash of two 4 KB
// slots, through semihosting file I/O. Semihosting is a BKPT that faults on a board without a
// debugger, so the image uses it only when the host says it is on: `tinyfl fleet` loads
// kStateMarker at kStateMarkerAddress (QEMU's generic loader) together with
//   -semihosting-config enable=on,target=native,arg=tinyfl-node,arg=--state,arg=PATH
// and the image takes PATH from the command line semihosting reports (SYS_GET_CMDLINE), which
// may also hold "--state-word-us N".
constexpr uintptr_t kStateMarkerAddress = 0x21F01000;
constexpr uint32_t kStateMarker = 0x54534654u;  // "TFST"

class SemihostingStateFile final : public tinyfl::StateRegion {
 public:
  static constexpr size_t kSlotBytes = 4096;
  // `clock` paces writes when the command line has "--state-word-us N" (a slow flash, N us per
  // word, for power-cut tests); otherwise it is not used.
  explicit SemihostingStateFile(tinyfl::Port& clock) : clock_(clock) {}
  // True when the host set the marker: semihosting is on and a state file is wanted.
  static bool requested();
  // True when the state file named on the command line is open (call only when requested()).
  bool open();
  size_t slot_size() const override { return kSlotBytes; }
  bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) override;
  bool erase(uint8_t slot) override;
  bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) override;
  const char* path() const { return path_; }

 private:
  bool in_slot(uint8_t slot, size_t offset, size_t len) const {
    return handle_ >= 0 && slot < tinyfl::kStateSlots && offset <= kSlotBytes && len <= kSlotBytes - offset;
  }
  static constexpr size_t kChunk = 64;
  bool seek(size_t at);
  bool put(size_t at, const uint8_t* src, size_t len);
  void pace(size_t bytes);
  tinyfl::Port& clock_;
  uint32_t word_us_ = 0;
  int32_t handle_ = -1;
  char cmdline_[256] = {};
  const char* path_ = nullptr;
};

}  // namespace port_qemu

