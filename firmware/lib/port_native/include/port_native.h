// TinyFL port for a Linux process: the byte pipe is a TCP socket to the broker, idle waits block in
// poll(2), logs go to stderr with a millisecond timestamp.
#pragma once
#include <stdint.h>

#include "tinyfl/port.h"
#include "tinyfl/state_store.h"

namespace port_native {

class NativePort final : public tinyfl::Port {
 public:
  NativePort(const char* host, uint16_t port) : host_(host), port_(port) {}
  ~NativePort();
  uint32_t millis() override;
  bool pipe_open() override;
  void pipe_close() override;
  int32_t pipe_read(uint8_t* buf, size_t cap) override;
  int32_t pipe_write(const uint8_t* buf, size_t len) override;
  void wait(uint32_t max_ms) override;
  uint32_t entropy() override;
  void log(const char* line) override;

 private:
  const char* host_;
  uint16_t port_;
  int fd_ = -1;
};

// The node's persisted state in a file the port maps as two slots of kSlotBytes (an emulated
// flash: erase fills a slot with 0xFF, a write programs it word by word; a file shorter than two
// slots reads as erased). Every erase and write reaches the kernel before it returns (pwrite) and
// the disk before the save goes on (fdatasync), so neither a killed process nor a host that loses
// power reorders them. `word_delay_us` > 0 sleeps after each word (and each 256-byte erase step)
// like a slow flash, so that a test can cut the power in the middle of a write.
class StateFile final : public tinyfl::StateRegion {
 public:
  static constexpr size_t kSlotBytes = 4096;
  StateFile(const char* path, unsigned word_delay_us) : path_(path), delay_us_(word_delay_us) {}
  ~StateFile();
  // Opens (or creates, readable by its owner only) the file; false when it cannot, or when it
  // holds something else (foreign()): it is never written then.
  bool open();
  // After a failed open(): the file is larger than two slots, or a slot starts with neither an
  // erased word nor the record magic, so it is not a state file (a mistyped path must not be
  // overwritten). Every file this store writes passes: erases and records start at offset 0.
  bool foreign() const { return foreign_; }
  size_t slot_size() const override { return kSlotBytes; }
  bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) override;
  bool erase(uint8_t slot) override;
  bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) override;

 private:
  bool in_slot(uint8_t slot, size_t offset, size_t len) const {
    return fd_ >= 0 && slot < tinyfl::kStateSlots && offset <= kSlotBytes && len <= kSlotBytes - offset;
  }
  bool put(size_t at, const uint8_t* src, size_t len);
  const char* path_;
  unsigned delay_us_;
  int fd_ = -1;
  bool foreign_ = false;
};

}  // namespace port_native
