// Semihosting file I/O (Arm "Semihosting for AArch32 and AArch64", v2): operation in r0, a block
// of word arguments in r1, BKPT 0xAB; QEMU runs the operation on the host file and returns r0.
#include <stdlib.h>
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

// Splits the command line at spaces in place and takes "--state PATH" and "--state-word-us N"
// from it (paths have no spaces: the host refuses such paths).
void parse_cmdline(char* cmdline, const char** path, uint32_t* word_us) {
  const char* prev = "";
  for (char* tok = cmdline; *tok != 0;) {
    char* end = strchr(tok, ' ');
    if (end != nullptr) *end = 0;
    if (strcmp(prev, "--state") == 0) *path = tok;
    if (strcmp(prev, "--state-word-us") == 0) *word_us = static_cast<uint32_t>(strtoul(tok, nullptr, 10));
    prev = tok;
    if (end == nullptr) break;
    tok = end + 1;
  }
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
  parse_cmdline(cmdline_, &path_, &word_us_);
  if (path_ == nullptr || *path_ == 0) return false;
  uint32_t args[3] = {reinterpret_cast<uint32_t>(path_), kModeReadWrite, static_cast<uint32_t>(strlen(path_))};
  handle_ = semihost(kSysOpen, args);
  if (handle_ < 0) {
    args[1] = kModeCreate;
    handle_ = semihost(kSysOpen, args);
  }
  return handle_ >= 0;
}

// A slow flash for power-cut tests: after each chunk of `bytes`, wait as long as programming its
// words would take (SysTick has 10 ms steps, so the wait is rounded up to them).
void SemihostingStateFile::pace(size_t bytes) {
  if (word_us_ == 0) return;
  const uint32_t ms = static_cast<uint32_t>((bytes / 4 * word_us_ + 999) / 1000);
  const uint32_t start = clock_.millis();
  for (;;) {
    const uint32_t elapsed = clock_.millis() - start;
    if (elapsed >= ms) return;
    clock_.wait(ms - elapsed);
  }
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

bool SemihostingStateFile::put(size_t at, const uint8_t* src, size_t len) {
  if (!seek(at)) return false;
  const uint32_t args[3] = {static_cast<uint32_t>(handle_), reinterpret_cast<uint32_t>(src), len};
  return semihost(kSysWrite, args) == 0;  // 0: every byte written
}

bool SemihostingStateFile::erase(uint8_t slot) {
  if (!in_slot(slot, 0, kSlotBytes)) return false;
  uint8_t ones[128];
  memset(ones, 0xFF, sizeof ones);
  for (size_t at = 0; at < kSlotBytes; at += sizeof ones)
    if (!put(slot * kSlotBytes + at, ones, sizeof ones)) return false;
  return true;
}

bool SemihostingStateFile::write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) {
  if (!in_slot(slot, offset, len) || offset % 4 != 0 || len % 4 != 0) return false;
  for (size_t at = 0; at < len; at += kChunk) {  // in chunks, so that pacing can stop mid-record
    const size_t n = len - at < kChunk ? len - at : kChunk;
    if (!put(slot * kSlotBytes + offset + at, src + at, n)) return false;
    pace(n);
  }
  return true;
}

}  // namespace port_qemu
