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

}  // namespace port_native
