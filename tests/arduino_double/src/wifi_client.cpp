#include <WiFi.h>
#include <WiFiClient.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

bool WiFiClass::reconnect() {
  printf("double: wifi reconnect\n");
  fflush(stdout);
  return joined_;
}

int WiFiClient::connect(const char* host, uint16_t port) {
  stop();
  if (arduino_double::wifi_down()) return 0;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char service[8];
  snprintf(service, sizeof service, "%u", port);
  addrinfo* found = nullptr;
  if (getaddrinfo(host, service, &hints, &found) != 0) return 0;
  for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      fd_ = fd;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (fd_ < 0) return 0;
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  closed_ = false;
  rx_head_ = rx_len_ = 0;
  return 1;
}

void WiFiClient::stop() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  closed_ = true;
  rx_head_ = rx_len_ = 0;
}

void WiFiClient::fill() {
  if (fd_ < 0 || closed_) return;
  if (arduino_double::wifi_down()) {  // the link is gone: the connection breaks
    stop();
    return;
  }
  if (rx_head_ == rx_len_) rx_head_ = rx_len_ = 0;
  if (rx_len_ == sizeof rx_) return;
  const ssize_t n = recv(fd_, rx_ + rx_len_, sizeof rx_ - rx_len_, 0);
  if (n > 0) {
    rx_len_ += static_cast<size_t>(n);
  } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    closed_ = true;  // the peer closed or the connection broke
  }
}

uint8_t WiFiClient::connected() {
  fill();
  return !closed_ || rx_head_ < rx_len_;
}

size_t WiFiClient::write(const uint8_t* buf, size_t len) {
  if (fd_ >= 0 && arduino_double::wifi_down()) stop();
  if (fd_ < 0 || closed_) return 0;
  const ssize_t n = send(fd_, buf, len, MSG_NOSIGNAL);
  if (n >= 0) return static_cast<size_t>(n);
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) closed_ = true;
  return 0;
}

int WiFiClient::available() {
  fill();
  return static_cast<int>(rx_len_ - rx_head_);
}

int WiFiClient::read() {
  fill();
  return rx_head_ < rx_len_ ? rx_[rx_head_++] : -1;
}

int WiFiClient::peek() {
  fill();
  return rx_head_ < rx_len_ ? rx_[rx_head_] : -1;
}
