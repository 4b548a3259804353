// One status enum for the whole core: zero is success, every other value names a reason.
#pragma once
#include <stdint.h>

namespace tinyfl {

enum class Status : uint8_t {
  Ok = 0,
  Truncated,      // input ended before a field did
  TooLarge,       // a length exceeds the buffer or a compile-time maximum
  BadMagic,       // frame does not start with "TF"
  BadVersion,     // frame version this build does not speak
  BadType,        // unknown frame or packet type
  BadCrc,         // CRC32 mismatch
  BadLength,      // declared length disagrees with the bytes present
  BadValue,       // a field holds a value outside its documented range
  NonFinite,      // NaN or Inf where a finite number is required
  Unsupported,    // a valid feature this build does not implement (e.g. masked updates)
  WrongModel,     // model hash differs from the node's model
  WrongShape,     // tensor dimensions differ from the node's head
  NotSelected,    // round does not include this node
  StaleRound,     // round id not newer than the last one served
  NoData,         // nothing to train on
  BufferFull,     // output buffer too small
  NotConnected,   // MQTT session is not up
  Protocol,       // peer violated MQTT
  PipeError,      // byte pipe failed
  Timeout,        // a deadline passed
  BadTag,         // a frame's authentication tag does not verify under the expected key
  Unauthenticated,  // a frame without a tag where keys are provisioned
  NoKey,          // a tagged frame, and no key to check it
  RoundAhead,     // a GLOBAL's round id runs further ahead than the stated margin
};

// Short constant name for logs, e.g. "bad_crc". Never null.
const char* status_name(Status s);

// Makes a status impossible to ignore by accident at call sites that return one.
#define TINYFL_NODISCARD [[nodiscard]]

}  // namespace tinyfl
