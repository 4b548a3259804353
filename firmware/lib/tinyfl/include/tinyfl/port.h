// The only thing a target implements: a clock, a byte pipe to the MQTT broker, entropy, a way to
// sleep, and a log line sink. The core never includes a platform header; each target passes its
// Port to the node (see firmware/lib/port_*).
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace tinyfl {

class Port {
 public:
  // Milliseconds since boot; wraps after ~49 days (the core compares with unsigned differences).
  virtual uint32_t millis() = 0;
  // (Re)opens the byte pipe to the broker. False when it cannot be opened now (the node backs off).
  virtual bool pipe_open() = 0;
  // Closes the pipe (after a protocol error or timeout) so the next pipe_open starts afresh.
  virtual void pipe_close() = 0;
  // Non-blocking. Bytes read (0 when none are waiting), or -1 when the pipe is closed or broken.
  virtual int32_t pipe_read(uint8_t* buf, size_t cap) = 0;
  // Bytes accepted (may be fewer than len), or -1 when the pipe is closed or broken.
  virtual int32_t pipe_write(const uint8_t* buf, size_t len) = 0;
  // Sleeps until bytes may be readable or `max_ms` passed, whichever is first (WFI on bare metal,
  // poll(2) on Linux): an idle node uses no CPU.
  virtual void wait(uint32_t max_ms) = 0;
  // 32 bits of entropy for MQTT client ids and jitter; not used for anything secret.
  virtual uint32_t entropy() = 0;
  // One complete log line without a trailing newline.
  virtual void log(const char* line) = 0;
  // Bytes of RAM left for the application, as reported in HELLO (0 when the target cannot tell).
  virtual uint32_t free_ram() { return 0; }

 protected:
  ~Port() = default;
};

}  // namespace tinyfl
