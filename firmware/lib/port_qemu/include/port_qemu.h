// TinyFL port for QEMU mps2-an386: SysTick millisecond clock, UART0 (interrupt-driven receive into a
// ring buffer) as the byte pipe to the broker, UART1 as the log, WFI while idle.
#pragma once
#include <stdint.h>

#include "tinyfl/port.h"

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
constexpr uintptr_t kReplayRateAddress = 0x21F01000;

}  // namespace port_qemu
