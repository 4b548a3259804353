// The node's persisted state (tinyfl/node_state.h) on the Arduino boards: two slots in ESP32 NVS
// (the `Preferences` library) or two 4 KB pages at the end of the Nano 33 BLE's flash (mbed's
// FlashIAP). Written against those APIs; no toolchain for them runs offline, so they are
// syntax-checked only (docs/PORTING.md).
#pragma once
#include <Arduino.h>

#include "tinyfl/state_store.h"

#if defined(ARDUINO_ARCH_ESP32)
#include <Preferences.h>
#elif defined(ARDUINO_ARCH_MBED)
#include <FlashIAP.h>
#endif

namespace port_arduino {

#if defined(ARDUINO_ARCH_ESP32)
// NVS keeps each slot as one blob ("s0", "s1" in namespace "tinyfl"). NVS writes a blob whole and
// checks it itself; the two slots still keep the previous state while a blob is replaced, and the
// record's CRC still catches a blob NVS kept but the flash damaged. Blobs are written whole, so
// write() accepts offset 0 only (the store never asks for more); reads of a part go through a
// copy of the blob.
class NvsStateRegion final : public tinyfl::StateRegion {
 public:
  // Opens the namespace; false when NVS is not available (the node runs without a state).
  bool begin() { return prefs_.begin("tinyfl", false); }
  size_t slot_size() const override { return tinyfl::kStateRecordMax; }
  bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) override;
  bool erase(uint8_t slot) override;
  bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) override;

 private:
  static const char* key(uint8_t slot) { return slot == 0 ? "s0" : "s1"; }
  Preferences prefs_;
  uint8_t copy_[tinyfl::kStateRecordMax];
};
#elif defined(ARDUINO_ARCH_MBED)
// The last two erase units (4 KB pages on the nRF52840) of the internal flash, one per slot. The
// sketch must leave them free: the Nano 33 BLE's 1 MB is far from full with a TinyFL image.
class FlashStateRegion final : public tinyfl::StateRegion {
 public:
  // Initialises FlashIAP and finds the pages; false when the flash cannot be used.
  bool begin();
  size_t slot_size() const override { return page_; }
  bool read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) override;
  bool erase(uint8_t slot) override;
  bool write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) override;

 private:
  bool in_slot(uint8_t slot, size_t offset, size_t len) const {
    return page_ != 0 && slot < tinyfl::kStateSlots && offset <= page_ && len <= page_ - offset;
  }
  mbed::FlashIAP flash_;
  uint32_t base_ = 0;  // address of slot 0; slot 1 follows
  uint32_t page_ = 0;
};
#endif

}  // namespace port_arduino
