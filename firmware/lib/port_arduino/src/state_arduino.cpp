#include "state_arduino.h"

#include <string.h>

namespace port_arduino {

#if defined(ARDUINO_ARCH_ESP32)

bool NvsStateRegion::read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) {
  if (slot >= tinyfl::kStateSlots || offset > sizeof copy_ || len > sizeof copy_ - offset) return false;
  // A missing blob reads as erased; a blob larger than a slot was not written by this store.
  const size_t stored = prefs_.isKey(key(slot)) ? prefs_.getBytesLength(key(slot)) : 0;
  if (stored > sizeof copy_) return false;
  memset(copy_, 0xFF, sizeof copy_);
  if (stored > 0 && prefs_.getBytes(key(slot), copy_, stored) != stored) return false;
  memcpy(dst, copy_ + offset, len);
  return true;
}

bool NvsStateRegion::erase(uint8_t slot) {
  if (slot >= tinyfl::kStateSlots) return false;
  return !prefs_.isKey(key(slot)) || prefs_.remove(key(slot));
}

bool NvsStateRegion::write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) {
  if (slot >= tinyfl::kStateSlots || offset != 0 || len > sizeof copy_) return false;
  return prefs_.putBytes(key(slot), src, len) == len;
}

#elif defined(ARDUINO_ARCH_MBED)

bool FlashStateRegion::begin() {
  if (flash_.init() != 0) return false;
  const uint32_t end = flash_.get_flash_start() + flash_.get_flash_size();
  const uint32_t page = flash_.get_sector_size(end - 1);
  // Both slots in pages of the same size, each big enough for the largest record.
  if (page < tinyfl::kStateRecordMax || flash_.get_sector_size(end - 1 - page) != page) return false;
  page_ = page;
  base_ = end - 2 * page;
  return true;
}

bool FlashStateRegion::read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) {
  return in_slot(slot, offset, len) && flash_.read(dst, base_ + slot * page_ + offset, len) == 0;
}

bool FlashStateRegion::erase(uint8_t slot) {
  return in_slot(slot, 0, page_) && flash_.erase(base_ + slot * page_, page_) == 0;
}

bool FlashStateRegion::write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) {
  // program() wants whole program units (4 bytes on the nRF52840): records are whole words.
  const uint32_t unit = flash_.get_page_size();
  if (!in_slot(slot, offset, len) || unit == 0 || offset % unit != 0 || len % unit != 0) return false;
  return flash_.program(src, base_ + slot * page_ + offset, len) == 0;
}

#endif

}  // namespace port_arduino
