/* The tour on a Cortex-M4F (QEMU mps2-an386), bare metal: vector table, start-up, output
 * and exit by semihosting. No C library. */
#include <stdint.h>

#include "../demo.h"

/* Semihosting call `op` (ARM's semihosting specification): bkpt 0xAB with r0, r1. */
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

enum { SYS_OPEN = 0x01, SYS_WRITE = 0x05, SYS_EXIT = 0x18 };
enum { APPLICATION_EXIT = 0x20026, RUNTIME_ERROR = 0x20023 };

/* Bytes to the host's stdout: ":tt" opened for writing ("w", mode 4) is stdout. */
static void write_out(const char *bytes, uintptr_t len) {
    static int out = -1;
    if (out < 0) {
        const uintptr_t open[3] = {(uintptr_t) ":tt", 4, 3};
        out = semihost(SYS_OPEN, open);
    }
    const uintptr_t write[3] = {(uintptr_t)out, (uintptr_t)bytes, len};
    semihost(SYS_WRITE, write);
}

void demo_print(const char *text) {
    uintptr_t len = 0;
    while (text[len]) len++;
    write_out(text, len);
    write_out("\n", 1);
}

static void stop(int ok) {
    semihost(SYS_EXIT, (const void *)(uintptr_t)(ok ? APPLICATION_EXIT : RUNTIME_ERROR));
    for (;;) {
    }
}

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;

void reset(void) {
    for (uint32_t *from = &_sidata, *to = &_sdata; to < &_edata;) *to++ = *from++;
    for (uint32_t *to = &_sbss; to < &_ebss;) *to++ = 0;
    /* The FPU (CP10, CP11) on before any float instruction: the library is built hard-float. */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    stop(charmlp_demo() == 0);
}

static void fault(void) {
    demo_print("fault");
    stop(0);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&_stack_top, reset, fault, fault, fault, fault, fault,
};
