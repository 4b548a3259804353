// Semihosting file I/O (Arm "Semihosting for AArch32 and AArch64", v2): operation in r0, a block
// of word arguments in r1, BKPT 0xAB; QEMU runs the operation on the host file and returns r0.
#include <string.h>

#include "port_qemu.h"

namespace port_qemu {

namespace {

constexpr uint32_t kSysOpen = 0x01;
constexpr uint32_t kSysWrite = 0x05;
constexpr uint32_t kSysRead = 0x06;
constexpr uint32_t kSysSeek = 0x0A;
constexpr uint32_t kSysGetCmdline = 0x15;
constexpr uint32_t kModeReadWrite = 3;   // fopen "r+b": keeps what the file holds
constexpr uint32_t kModeCreate = 7;      // "w+b": only when it does not exist yet

int32_t semihost(uint32_t op, const void* args) {
  register uint32_t r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = args;
  __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return static_cast<int32_t>(r0);
}

// The word after "--state" in a space-separated command line (the path has no spaces: the host
// refuses such paths), NUL-terminated in place; null when absent.
const char* state_path(char* cmdline) {
  char* p = strstr(cmdline, "--state ");
  if (p == nullptr) return nullptr;
  p += 8;
  char* end = strchr(p, ' ');
  if (end != nullptr) *end = 0;
  return *p != 0 ? p : nullptr;
}

}  // namespace

bool SemihostingStateFile::requested() {
  return *reinterpret_cast<volatile const uint32_t*>(kStateMarkerAddress) == kStateMarker;
}

bool SemihostingStateFile::open() {
  if (!requested()) return false;  // without semihosting the BKPT below would fault
  uint32_t cmd[2] = {reinterpret_cast<uint32_t>(cmdline_), sizeof cmdline_ - 1};
  if (semihost(kSysGetCmdline, cmd) != 0) return false;
  cmdline_[cmd[1] < sizeof cmdline_ ? cmd[1] : sizeof cmdline_ - 1] = 0;
  path_ = state_path(cmdline_);
  if (path_ == nullptr) return false;
  uint32_t args[3] = {reinterpret_cast<uint32_t>(path_), kModeReadWrite, static_cast<uint32_t>(strlen(path_))};
  handle_ = semihost(kSysOpen, args);
  if (handle_ < 0) {
    args[1] = kModeCreate;
    handle_ = semihost(kSysOpen, args);
  }
  return handle_ >= 0;
}

bool SemihostingStateFile::seek(size_t at) {
  const uint32_t args[2] = {static_cast<uint32_t>(handle_), static_cast<uint32_t>(at)};
  return semihost(kSysSeek, args) == 0;
}

bool SemihostingStateFile::read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) {
  if (!in_slot(slot, offset, len) || !seek(slot * kSlotBytes + offset)) return false;
  const uint32_t args[3] = {static_cast<uint32_t>(handle_), reinterpret_cast<uint32_t>(dst), len};
  const int32_t missing = semihost(kSysRead, args);  // bytes not read: past the end of the file
  if (missing < 0 || static_cast<size_t>(missing) > len) return false;
  memset(dst + (len - static_cast<size_t>(missing)), 0xFF, static_cast<size_t>(missing));  // never written
  return true;
}

bool SemihostingStateFile::erase(uint8_t slot) {
  uint8_t ones[128];
  memset(ones, 0xFF, sizeof ones);
  for (size_t at = 0; at < kSlotBytes; at += sizeof ones)
    if (!write(slot, at, ones, sizeof ones)) return false;
  return true;
}

bool SemihostingStateFile::write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) {
  if (!in_slot(slot, offset, len) || offset % 4 != 0 || len % 4 != 0 || !seek(slot * kSlotBytes + offset))
    return false;
  const uint32_t args[3] = {static_cast<uint32_t>(handle_), reinterpret_cast<uint32_t>(src), len};
  return semihost(kSysWrite, args) == 0;  // 0: every byte written
}

}  // namespace port_qemu
