#include "port_qemu.h"

#include <string.h>

namespace {

// CMSDK APB UART (QEMU hw/char/cmsdk-apb-uart.c).
struct CmsdkUart {
  volatile uint32_t data;
  volatile uint32_t state;      // bit0 TX full, bit1 RX full
  volatile uint32_t ctrl;       // bit0 TX enable, bit1 RX enable, bit3 RX interrupt enable
  volatile uint32_t intstatus;  // write 1s to clear: bit0 TX, bit1 RX
  volatile uint32_t bauddiv;
};
CmsdkUart* const uart0 = reinterpret_cast<CmsdkUart*>(0x40004000);  // byte pipe to the broker
CmsdkUart* const uart1 = reinterpret_cast<CmsdkUart*>(0x40005000);  // log

constexpr uint32_t kStateTxFull = 1u << 0;
constexpr uint32_t kStateRxFull = 1u << 1;
constexpr uint32_t kCtrlTxEnable = 1u << 0;
constexpr uint32_t kCtrlRxEnable = 1u << 1;
constexpr uint32_t kCtrlRxIrqEnable = 1u << 3;

// SysTick and NVIC (ARMv7-M system control space).
volatile uint32_t* const syst_csr = reinterpret_cast<volatile uint32_t*>(0xE000E010);
volatile uint32_t* const syst_rvr = reinterpret_cast<volatile uint32_t*>(0xE000E014);
volatile uint32_t* const syst_cvr = reinterpret_cast<volatile uint32_t*>(0xE000E018);
volatile uint32_t* const nvic_iser0 = reinterpret_cast<volatile uint32_t*>(0xE000E100);

constexpr uint32_t kCpuHz = 25000000;  // mps2-an386 processor clock
constexpr uint32_t kTickMs = 10;       // 100 Hz: coarse enough that an idle node barely wakes
constexpr uint32_t kPipeSettleMs = 300;

volatile uint32_t g_millis = 0;

// Receive ring, filled by the UART0 interrupt, drained by pipe_read. Power of two for cheap masks.
constexpr uint32_t kRxRing = 4096;
uint8_t g_rx[kRxRing];
volatile uint32_t g_rx_head = 0;  // written by the ISR only
volatile uint32_t g_rx_tail = 0;  // written by thread mode only
volatile uint32_t g_rx_dropped = 0;

}  // namespace

extern "C" void SysTick_Handler() { g_millis = g_millis + kTickMs; }

extern "C" void Uart0Rx_Handler() {
  // Acknowledge first, then drain: a byte that lands after the last STATE check raises the
  // interrupt again. (Clearing after draining would lose it: it would sit in the one-byte RX
  // register with no interrupt pending, and QEMU delivers nothing more until it is read.)
  uart0->intstatus = 2;
  while (uart0->state & kStateRxFull) {
    const uint8_t byte = static_cast<uint8_t>(uart0->data);
    const uint32_t head = g_rx_head;
    if (head - g_rx_tail < kRxRing) {
      g_rx[head % kRxRing] = byte;
      g_rx_head = head + 1;
    } else {
      g_rx_dropped = g_rx_dropped + 1;  // QEMU back-pressures the socket, so this stays 0 in practice
    }
  }
}

namespace port_qemu {

void QemuPort::begin() {
  uart0->bauddiv = 16;  // QEMU refuses to run a CMSDK UART with a divider below 16
  uart1->bauddiv = 16;
  uart0->ctrl = kCtrlTxEnable | kCtrlRxEnable | kCtrlRxIrqEnable;
  uart1->ctrl = kCtrlTxEnable;
  *nvic_iser0 = 1u << 0;  // IRQ 0: UART0 RX
  *syst_rvr = kCpuHz / 1000 * kTickMs - 1;
  *syst_cvr = 0;
  *syst_csr = 0x7;  // enable, interrupt, processor clock
}

uint32_t QemuPort::millis() { return g_millis; }

// The UART is wired to the broker by QEMU (`-serial tcp:HOST:PORT,reconnect=1`), which connects
// the socket asynchronously while the guest already runs, and silently drops bytes written before
// it is connected. So the pipe counts as open only after a short settling time at boot; later a
// dead connection shows as a missing CONNACK or PINGRESP and the node starts over.
bool QemuPort::pipe_open() { return g_millis >= kPipeSettleMs; }

void QemuPort::pipe_close() {
  // Bytes of the dead session must not be parsed as the start of the next one.
  __asm volatile("cpsid i");
  g_rx_tail = g_rx_head;
  __asm volatile("cpsie i");
}

int32_t QemuPort::pipe_read(uint8_t* buf, size_t cap) {
  uint32_t n = 0;
  const uint32_t head = g_rx_head;
  uint32_t tail = g_rx_tail;
  while (tail != head && n < cap) buf[n++] = g_rx[tail++ % kRxRing];
  g_rx_tail = tail;
  return static_cast<int32_t>(n);
}

int32_t QemuPort::pipe_write(const uint8_t* buf, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    while (uart0->state & kStateTxFull) {
    }
    uart0->data = buf[i];
  }
  return static_cast<int32_t>(len);
}

void QemuPort::wait(uint32_t max_ms) {
  const uint32_t start = g_millis;
  // Interrupts off between the check and WFI so a byte arriving in between still wakes us.
  for (;;) {
    __asm volatile("cpsid i");
    if (g_rx_head != g_rx_tail || g_millis - start >= max_ms) {
      __asm volatile("cpsie i");
      return;
    }
    __asm volatile("wfi");
    __asm volatile("cpsie i");
  }
}

uint32_t QemuPort::entropy() {
  // No TRNG on this board: SysTick phase and uptime differ from boot to boot only through the
  // host's timing, which is enough for client-id suffixes and backoff jitter.
  return (*syst_cvr << 16) ^ g_millis ^ 0x9E3779B9u;
}

void QemuPort::log(const char* line) {
  char stamp[16];
  uint32_t ms = g_millis, i = sizeof stamp;
  stamp[--i] = 0;
  stamp[--i] = ' ';
  do {
    stamp[--i] = static_cast<char>('0' + ms % 10);
    ms /= 10;
  } while (ms && i > 0);
  const char* parts[] = {stamp + i, line, "\n"};
  for (const char* p : parts) {
    for (; *p; ++p) {
      while (uart1->state & kStateTxFull) {
      }
      uart1->data = static_cast<uint8_t>(*p);
    }
  }
}

}  // namespace port_qemu
