/*
 * The host CPU as an oracle for the ALU tests (test/alu.test.ts). Reads one case per line,
 *     op bits a b c flags
 * (op: the HOST_* number below; bits: 8, 16 or 32; a, b, c, flags in hex), runs the
 * instruction at that operand size on the host with EFLAGS preloaded, and prints
 *     result result2 eflags
 * in hex, or "DE" when the instruction raised a divide error. Operands by op:
 *   binary ops, SHLD/SHRD:  a = destination, b = source, c = count (in CL)
 *   shifts and rotates:     a = destination, c = count (in CL)
 *   MUL, IMUL (1 operand):  a = AL/AX/EAX, b = the r/m operand; result2 = AH/DX/EDX
 *   DIV, IDIV:              c:a = AH:AL / DX:AX / EDX:EAX dividend, b = divisor;
 *                           result = quotient, result2 = remainder
 *   IMUL (2 operand):       a = destination, b = source
 *   BSF, BSR:               b = source, c = the destination's old value
 *   BT, BTS, BTR, BTC:      a = bit base (a register), b = bit offset
 * Build: gcc -O1 -mno-red-zone (the asm pushes EFLAGS below the stack pointer).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

enum {
  HOST_ADD, HOST_ADC, HOST_SUB, HOST_SBB, HOST_AND, HOST_OR, HOST_XOR, HOST_CMP,
  HOST_INC, HOST_DEC, HOST_NEG, HOST_SHL, HOST_SHR, HOST_SAR, HOST_ROL, HOST_ROR,
  HOST_RCL, HOST_RCR, HOST_SHLD, HOST_SHRD, HOST_MUL, HOST_IMUL1, HOST_IMUL2, HOST_DIV,
  HOST_IDIV, HOST_BSF, HOST_BSR, HOST_BT, HOST_BTS, HOST_BTR, HOST_BTC,
};

#define FIN "pushq %[f]\n\tpopfq\n\t"
#define FOUT "\n\tpushfq\n\tpopq %[f]"

/* One asm statement per operand size; x is the destination, y the source. */
#define BIN(insn)                                                                      \
  switch (bits) {                                                                      \
  case 8: {                                                                            \
    uint8_t x = a, y = b;                                                              \
    __asm__ volatile(FIN insn "b %[y], %[x]" FOUT : [x] "+q"(x), [f] "+r"(f) : [y] "q"(y) : "cc"); \
    r = x;                                                                             \
    break;                                                                             \
  }                                                                                    \
  case 16: {                                                                           \
    uint16_t x = a, y = b;                                                             \
    __asm__ volatile(FIN insn "w %[y], %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : [y] "r"(y) : "cc"); \
    r = x;                                                                             \
    break;                                                                             \
  }                                                                                    \
  default: {                                                                           \
    uint32_t x = a, y = b;                                                             \
    __asm__ volatile(FIN insn "l %[y], %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : [y] "r"(y) : "cc"); \
    r = x;                                                                             \
  }                                                                                    \
  }

#define UNARY(insn)                                                                    \
  switch (bits) {                                                                      \
  case 8: {                                                                            \
    uint8_t x = a;                                                                     \
    __asm__ volatile(FIN insn "b %[x]" FOUT : [x] "+q"(x), [f] "+r"(f) : : "cc");      \
    r = x;                                                                             \
    break;                                                                             \
  }                                                                                    \
  case 16: {                                                                           \
    uint16_t x = a;                                                                    \
    __asm__ volatile(FIN insn "w %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : : "cc");      \
    r = x;                                                                             \
    break;                                                                             \
  }                                                                                    \
  default: {                                                                           \
    uint32_t x = a;                                                                    \
    __asm__ volatile(FIN insn "l %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : : "cc");      \
    r = x;                                                                             \
  }                                                                                    \
  }

#define SHIFT(insn)                                                                    \
  switch (bits) {                                                                      \
  case 8: {                                                                            \
    uint8_t x = a, n = c;                                                              \
    __asm__ volatile(FIN insn "b %%cl, %[x]" FOUT : [x] "+q"(x), [f] "+r"(f) : "c"(n) : "cc"); \
    r = x;                                                                             \
    break;                                                                             \
  }                                                                                    \
  case 16: {                                                                           \
    uint16_t x = a;                                                                    \
    uint8_t n = c;                                                                     \
    __asm__ volatile(FIN insn "w %%cl, %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : "c"(n) : "cc"); \
    r = x;                                                                             \
    break;                                                                             \
  }                                                                                    \
  default: {                                                                           \
    uint32_t x = a;                                                                    \
    uint8_t n = c;                                                                     \
    __asm__ volatile(FIN insn "l %%cl, %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : "c"(n) : "cc"); \
    r = x;                                                                             \
  }                                                                                    \
  }

#define DSHIFT(insn)                                                                   \
  if (bits == 16) {                                                                    \
    uint16_t x = a, y = b;                                                             \
    uint8_t n = c;                                                                     \
    __asm__ volatile(FIN insn "w %%cl, %[y], %[x]" FOUT                                \
                     : [x] "+r"(x), [f] "+r"(f) : [y] "r"(y), "c"(n) : "cc");          \
    r = x;                                                                             \
  } else {                                                                             \
    uint32_t x = a, y = b;                                                             \
    uint8_t n = c;                                                                     \
    __asm__ volatile(FIN insn "l %%cl, %[y], %[x]" FOUT                                \
                     : [x] "+r"(x), [f] "+r"(f) : [y] "r"(y), "c"(n) : "cc");          \
    r = x;                                                                             \
  }

/* MUL/IMUL/DIV/IDIV with the accumulator pair: AX (8-bit), DX:AX, EDX:EAX. */
#define ACC(insn)                                                                      \
  switch (bits) {                                                                      \
  case 8: {                                                                            \
    uint16_t ax = ((c & 0xff) << 8) | (a & 0xff);                                      \
    uint8_t y = b;                                                                     \
    __asm__ volatile(FIN insn "b %[y]" FOUT : "+a"(ax), [f] "+r"(f) : [y] "b"(y) : "cc"); \
    r = ax & 0xff;                                                                     \
    r2 = ax >> 8;                                                                      \
    break;                                                                             \
  }                                                                                    \
  case 16: {                                                                           \
    uint16_t ax = a, dx = c, y = b;                                                    \
    __asm__ volatile(FIN insn "w %[y]" FOUT : "+a"(ax), "+d"(dx), [f] "+r"(f) : [y] "b"(y) : "cc"); \
    r = ax;                                                                            \
    r2 = dx;                                                                           \
    break;                                                                             \
  }                                                                                    \
  default: {                                                                           \
    uint32_t ax = a, dx = c, y = b;                                                    \
    __asm__ volatile(FIN insn "l %[y]" FOUT : "+a"(ax), "+d"(dx), [f] "+r"(f) : [y] "b"(y) : "cc"); \
    r = ax;                                                                            \
    r2 = dx;                                                                           \
  }                                                                                    \
  }

/* Two-operand forms that exist only at 16 and 32 bits (IMUL r, r/m; BSF; BT). */
#define BIN1632(insn, init)                                                            \
  if (bits == 16) {                                                                    \
    uint16_t x = init, y = b;                                                          \
    __asm__ volatile(FIN insn "w %[y], %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : [y] "r"(y) : "cc"); \
    r = x;                                                                             \
  } else {                                                                             \
    uint32_t x = init, y = b;                                                          \
    __asm__ volatile(FIN insn "l %[y], %[x]" FOUT : [x] "+r"(x), [f] "+r"(f) : [y] "r"(y) : "cc"); \
    r = x;                                                                             \
  }

static sigjmp_buf on_divide_error;

static void sigfpe(int sig) {
  (void)sig;
  siglongjmp(on_divide_error, 1);
}

/* Runs one case; returns 0, or 1 when it raised #DE (delivered as SIGFPE). */
static int run(int op, int bits, uint32_t a, uint32_t b, uint32_t c, uint64_t f, uint32_t *out) {
  uint32_t r = 0, r2 = 0;
  if (sigsetjmp(on_divide_error, 1)) return 1;
  switch (op) {
  case HOST_ADD: BIN("add") break;
  case HOST_ADC: BIN("adc") break;
  case HOST_SUB: BIN("sub") break;
  case HOST_SBB: BIN("sbb") break;
  case HOST_AND: BIN("and") break;
  case HOST_OR: BIN("or") break;
  case HOST_XOR: BIN("xor") break;
  case HOST_CMP: BIN("cmp") break;
  case HOST_INC: UNARY("inc") break;
  case HOST_DEC: UNARY("dec") break;
  case HOST_NEG: UNARY("neg") break;
  case HOST_SHL: SHIFT("shl") break;
  case HOST_SHR: SHIFT("shr") break;
  case HOST_SAR: SHIFT("sar") break;
  case HOST_ROL: SHIFT("rol") break;
  case HOST_ROR: SHIFT("ror") break;
  case HOST_RCL: SHIFT("rcl") break;
  case HOST_RCR: SHIFT("rcr") break;
  case HOST_SHLD: DSHIFT("shld") break;
  case HOST_SHRD: DSHIFT("shrd") break;
  case HOST_MUL: ACC("mul") break;
  case HOST_IMUL1: ACC("imul") break;
  case HOST_DIV: ACC("div") break;
  case HOST_IDIV: ACC("idiv") break;
  case HOST_IMUL2: BIN1632("imul", a) break;
  case HOST_BSF: BIN1632("bsf", c) break;
  case HOST_BSR: BIN1632("bsr", c) break;
  /* BT r/m, r with a register bit base: the offset is taken modulo the operand size. */
  case HOST_BT: BIN1632("bt", a) break;
  case HOST_BTS: BIN1632("bts", a) break;
  case HOST_BTR: BIN1632("btr", a) break;
  case HOST_BTC: BIN1632("btc", a) break;
  default: return 2;
  }
  out[0] = r;
  out[1] = r2;
  out[2] = (uint32_t)f;
  return 0;
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = sigfpe;
  sigaction(SIGFPE, &sa, NULL);
  int op, bits;
  unsigned a, b, c, fl;
  uint32_t out[3];
  while (scanf("%d %d %x %x %x %x", &op, &bits, &a, &b, &c, &fl) == 6) {
    int rc = run(op, bits, a, b, c, fl, out);
    if (rc == 1) puts("DE");
    else if (rc == 2) puts("?");
    else printf("%x %x %x\n", out[0], out[1], out[2]);
  }
  return 0;
}
