/* The tour on a Cortex-M4F (QEMU mps2-an386), bare metal: vector table, start-up, output
 * and exit by semihosting, the stack's high-water mark. No C library. The model file is in
 * flash, linked from model_file.o (objcopy of the file: _binary_model_safetensors_*). */
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
extern const uint8_t _binary_model_safetensors_start[], _binary_model_safetensors_end[];

enum { PAINT = 0xDEADBEEF };

/* The deepest the stack went: the first painted word left, from the bottom of the RAM the
 * stack may use. */
static uint32_t stack_used(void) {
    const volatile uint32_t *p = &_ebss;
    while (p < &_stack_top && *p == PAINT) p++;
    return (uint32_t)((uintptr_t)&_stack_top - (uintptr_t)p);
}

static void print_u32(const char *what, uint32_t x) {
    char text[64], digits[12];
    int n = 0, at = 0;
    while (what[at]) {
        text[at] = what[at];
        at++;
    }
    do {
        digits[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    while (n) text[at++] = digits[--n];
    text[at] = 0;
    demo_print(text);
}

void reset(void) {
    for (uint32_t *from = &_sidata, *to = &_sdata; to < &_edata;) *to++ = *from++;
    for (uint32_t *to = &_sbss; to < &_ebss;) *to++ = 0;
    /* Paint the stack's RAM below this frame (256 bytes of room for it). */
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = &_ebss; (uintptr_t)p < sp - 256; p++) *p = PAINT;
    /* The FPU (CP10, CP11) on before any float instruction: the library is built hard-float. */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    int ok = charmlp_demo(_binary_model_safetensors_start,
                          (size_t)(_binary_model_safetensors_end - _binary_model_safetensors_start)) == 0;
    print_u32("stack high-water mark: ", stack_used());
    stop(ok);
}

static void fault(void) {
    demo_print("fault");
    stop(0);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&_stack_top, reset, fault, fault, fault, fault, fault,
};
