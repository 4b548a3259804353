#include "port_native.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace port_native {

namespace {

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

const uint64_t boot_ms = monotonic_ms();

}  // namespace

NativePort::~NativePort() { pipe_close(); }

uint32_t NativePort::millis() { return static_cast<uint32_t>(monotonic_ms() - boot_ms); }

bool NativePort::pipe_open() {
  pipe_close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char service[8];
  snprintf(service, sizeof service, "%u", port_);
  addrinfo* found = nullptr;
  if (getaddrinfo(host_, service, &hints, &found) != 0 || found == nullptr) return false;
  for (addrinfo* ai = found; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small MQTT packets, no batching
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      fd_ = fd;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(found);
  return fd_ >= 0;
}

void NativePort::pipe_close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int32_t NativePort::pipe_read(uint8_t* buf, size_t cap) {
  if (fd_ < 0) return -1;
  ssize_t n = recv(fd_, buf, cap, 0);
  if (n > 0) return static_cast<int32_t>(n);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  return -1;  // 0 = orderly shutdown by the broker, or a socket error
}

int32_t NativePort::pipe_write(const uint8_t* buf, size_t len) {
  if (fd_ < 0) return -1;
  ssize_t n = send(fd_, buf, len, MSG_NOSIGNAL);
  if (n >= 0) return static_cast<int32_t>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
  return -1;
}

void NativePort::wait(uint32_t max_ms) {
  if (fd_ < 0) {
    usleep(max_ms * 1000u);
    return;
  }
  pollfd p{fd_, POLLIN, 0};
  poll(&p, 1, static_cast<int>(max_ms));
}

uint32_t NativePort::entropy() {
  uint32_t v = 0;
  FILE* f = fopen("/dev/urandom", "rb");
  if (f != nullptr) {
    if (fread(&v, sizeof v, 1, f) != 1) v = 0;
    fclose(f);
  }
  return v ^ static_cast<uint32_t>(monotonic_ms()) ^ static_cast<uint32_t>(getpid());
}

void NativePort::log(const char* line) {
  fprintf(stderr, "%lu %s\n", static_cast<unsigned long>(millis()), line);
}

StateFile::~StateFile() {
  if (fd_ >= 0) close(fd_);
}

bool StateFile::open() {
  fd_ = ::open(path_, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return false;
  const off_t size = lseek(fd_, 0, SEEK_END);
  foreign_ = size < 0 || size > static_cast<off_t>(tinyfl::kStateSlots * kSlotBytes);
  for (uint8_t slot = 0; slot < tinyfl::kStateSlots && !foreign_; ++slot) {
    uint8_t word[4];
    foreign_ = !read(slot, 0, word, sizeof word);
    const bool erased = word[0] == 0xFF && word[1] == 0xFF && word[2] == 0xFF && word[3] == 0xFF;
    foreign_ = foreign_ || !(erased || memcmp(word, "TFST", 4) == 0);
  }
  if (foreign_) {
    close(fd_);
    fd_ = -1;
  }
  return !foreign_;
}

bool StateFile::read(uint8_t slot, size_t offset, uint8_t* dst, size_t len) {
  if (!in_slot(slot, offset, len)) return false;
  size_t done = 0;
  while (done < len) {
    const ssize_t n = pread(fd_, dst + done, len - done, static_cast<off_t>(slot * kSlotBytes + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;  // past the end of the file: never written, reads as erased
    done += static_cast<size_t>(n);
  }
  memset(dst + done, 0xFF, len - done);
  return true;
}

bool StateFile::put(size_t at, const uint8_t* src, size_t len) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = pwrite(fd_, src + done, len - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  if (delay_us_ > 0) usleep(delay_us_);
  return true;
}

bool StateFile::erase(uint8_t slot) {
  if (!in_slot(slot, 0, kSlotBytes)) return false;
  uint8_t ones[256];
  memset(ones, 0xFF, sizeof ones);
  for (size_t at = 0; at < kSlotBytes; at += sizeof ones)
    if (!put(slot * kSlotBytes + at, ones, sizeof ones)) return false;
  return fdatasync(fd_) == 0;  // erased on disk before the first byte of the record is
}

bool StateFile::write(uint8_t slot, size_t offset, const uint8_t* src, size_t len) {
  if (!in_slot(slot, offset, len) || offset % 4 != 0 || len % 4 != 0) return false;
  for (size_t at = 0; at < len; at += 4)
    if (!put(slot * kSlotBytes + offset + at, src + at, 4)) return false;
  return fdatasync(fd_) == 0;
}

}  // namespace port_native

