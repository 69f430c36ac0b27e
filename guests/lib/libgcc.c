/*
 * The libgcc helpers gcc calls for i386 code: 64-bit division and remainder (there is no
 * 64-bit DIV in 32-bit mode) and population count (no POPCNT with the default -march).
 * Written so that none of them calls back into itself: 64/32 steps use the DIV instruction
 * (SDM Vol. 2, DIV: EDX:EAX / r/m32, no overflow while EDX < divisor).
 */
#include "types.h"

u64 __udivmoddi4(u64 n, u64 d, u64 *rem);

static inline int clz32(u32 x) { return __builtin_clz(x); } /* BSR; x != 0 */

static inline int clz64(u64 x) {
  u32 hi = (u32)(x >> 32);
  return hi ? clz32(hi) : 32 + clz32((u32)x);
}

u64 __udivmoddi4(u64 n, u64 d, u64 *rem) {
  u64 q;
  if ((d >> 32) == 0) {
    u32 dl = (u32)d, nh = (u32)(n >> 32), nl = (u32)n, qh, ql, r;
    /* Dividing by zero: let the DIV instruction raise #DE, as hardware code would. */
    __asm__ volatile("divl %4" : "=a"(qh), "=d"(r) : "a"(nh), "d"(0), "rm"(dl));
    __asm__ volatile("divl %4" : "=a"(ql), "=d"(r) : "a"(nl), "d"(r), "rm"(dl));
    q = ((u64)qh << 32) | ql;
    n = r;
  } else if (n < d) {
    q = 0;
  } else {
    /* The divisor has bits above 31, so the quotient fits in 32 bits: shift-subtract. */
    int shift = clz64(d) - clz64(n);
    d <<= shift;
    q = 0;
    for (int i = 0; i <= shift; i++) {
      q <<= 1;
      if (n >= d) {
        n -= d;
        q |= 1;
      }
      d >>= 1;
    }
  }
  if (rem) *rem = n;
  return q;
}

u64 __udivdi3(u64 n, u64 d) { return __udivmoddi4(n, d, NULL); }

u64 __umoddi3(u64 n, u64 d) {
  u64 r;
  __udivmoddi4(n, d, &r);
  return r;
}

static inline u64 magnitude(s64 v) { return v < 0 ? -(u64)v : (u64)v; }

/* C semantics: the quotient truncates toward zero, the remainder has the dividend's sign. */
s64 __divmoddi4(s64 a, s64 b, s64 *rem) {
  u64 r;
  u64 q = __udivmoddi4(magnitude(a), magnitude(b), &r);
  if (rem) *rem = a < 0 ? (s64)-r : (s64)r;
  return (a < 0) != (b < 0) ? (s64)-q : (s64)q;
}

s64 __divdi3(s64 a, s64 b) { return __divmoddi4(a, b, NULL); }

s64 __moddi3(s64 a, s64 b) {
  s64 r;
  __divmoddi4(a, b, &r);
  return r;
}

int __popcountsi2(u32 x) {
  x = x - ((x >> 1) & 0x55555555u);
  x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
  x = (x + (x >> 4)) & 0x0F0F0F0Fu;
  return (int)((x * 0x01010101u) >> 24);
}

int __popcountdi2(u64 x) { return __popcountsi2((u32)x) + __popcountsi2((u32)(x >> 32)); }

/* Bit scans on 64-bit values (gcc may call these instead of inlining BSF/BSR pairs). */
int __ctzdi2(u64 x) {
  u32 lo = (u32)x;
  return lo ? __builtin_ctz(lo) : 32 + __builtin_ctz((u32)(x >> 32));
}

int __clzdi2(u64 x) { return clz64(x); }
