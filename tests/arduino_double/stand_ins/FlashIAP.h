// Stand-in declarations of mbed's FlashIAP (mbed OS 6 API), as the Nano 33 BLE's state region
// calls it: for compile checks only (tests/unit/test_arduino_sketches.py). Nothing here runs.
#pragma once
#include <stdint.h>

namespace mbed {

class FlashIAP {
 public:
  int init();
  int deinit();
  int read(void* buffer, uint32_t addr, uint32_t size);
  int program(const void* buffer, uint32_t addr, uint32_t size);
  int erase(uint32_t addr, uint32_t size);
  uint32_t get_sector_size(uint32_t addr) const;
  uint32_t get_flash_start() const;
  uint32_t get_flash_size() const;
  uint32_t get_page_size() const;
};

}  // namespace mbed
