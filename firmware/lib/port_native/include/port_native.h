// TinyFL port for a Linux process: the byte pipe is a TCP socket to the broker, idle waits block in
// poll(2), logs go to stderr with a millisecond timestamp.
#pragma once
#include <stdint.h>

#include "tinyfl/port.h"

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

}  // namespace port_native
