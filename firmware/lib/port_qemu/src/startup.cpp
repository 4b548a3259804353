// Reset and vector table for the Cortex-M4F on QEMU mps2-an386: copy .data, zero .bss, enable the
// FPU, run static constructors, call main(). Written for this board only; no vendor headers.
#include <stdint.h>

extern "C" {
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern void (*__init_array_start[])();
extern void (*__init_array_end[])();
int main();
void Reset_Handler();
void Default_Handler();
void SysTick_Handler();
void Uart0Rx_Handler();
}

void Default_Handler() {
  for (;;) {
    __asm volatile("bkpt #0");
  }
}

void Reset_Handler() {
  for (uint32_t *src = &__data_load, *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
  // CPACR: full access to CP10/CP11 so the FPU can be used (hard-float ABI).
  *reinterpret_cast<volatile uint32_t*>(0xE000ED88) |= (0xFu << 20);
  __asm volatile("dsb; isb");
  for (auto fn = __init_array_start; fn < __init_array_end; ++fn) (*fn)();
  main();
  for (;;) __asm volatile("wfi");
}

// 16 system exceptions, then external IRQ 0 (UART0 RX on mps2-an386).
__attribute__((section(".isr_vector"), used)) void (*const vector_table[])() = {
    reinterpret_cast<void (*)()>(&__stack_top),
    Reset_Handler,
    Default_Handler,  // NMI
    Default_Handler,  // HardFault
    Default_Handler,  // MemManage
    Default_Handler,  // BusFault
    Default_Handler,  // UsageFault
    nullptr, nullptr, nullptr, nullptr,
    Default_Handler,  // SVCall
    Default_Handler,  // DebugMon
    nullptr,
    Default_Handler,  // PendSV
    SysTick_Handler,
    Uart0Rx_Handler,  // IRQ 0: UART0 RX
};
