/*
 * compute: deterministic integer workloads with named checksums. Besides being a test of
 * the integer instruction set (gcc emits IMUL, MUL, DIV, IDIV, SHLD/SHRD for 64-bit shifts,
 * SETcc, CMOVcc, BT, BSF/BSR, BSWAP, MOVZX/MOVSX, jump tables, and the runtime's REP MOVS/
 * STOS/SCAS), it is a benchmark workload: iterations scale the work linearly.
 */
#include "compute.h"

static u32 rng_state;

/* xorshift32 (Marsaglia, 2003). */
static u32 rnd(void) {
  u32 x = rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return rng_state = x;
}

static int failed;

static void fail(const char *what) {
  if (!failed) printf("FAIL %s\n", what);
  failed = 1;
}

static inline u32 rotl32(u32 x, u32 n) { return (x << (n & 31)) | (x >> ((32 - n) & 31)); }
static inline u64 rotl64(u64 x, u32 n) { return (x << (n & 63)) | (x >> ((64 - n) & 63)); }
static inline u32 mix32(u32 h, u32 v) { return rotl32(h ^ v, 5) * 0x9E3779B1u; }

/*
 * Bit-string operations on memory. gcc does not emit BT/BTS/BTC for the C equivalents, so
 * on x86 these use the instructions (with a register bit offset, a memory operand is a bit
 * string: the offset may select any dword, SDM Vol. 2, BT); elsewhere plain C.
 */
#if defined(__i386__) || defined(__x86_64__)
static inline int bit_test(const u32 *bits, u32 n) {
  u8 c;
  __asm__("btl %2, (%1)\n\tsetc %0" : "=q"(c) : "r"(bits), "r"(n) : "cc", "memory");
  return c;
}
static inline void bit_set(u32 *bits, u32 n) {
  __asm__ volatile("btsl %1, (%0)" : : "r"(bits), "r"(n) : "cc", "memory");
}
static inline void bit_flip(u32 *bits, u32 n) {
  __asm__ volatile("btcl %1, (%0)" : : "r"(bits), "r"(n) : "cc", "memory");
}
#else
static inline int bit_test(const u32 *bits, u32 n) { return (bits[n >> 5] >> (n & 31)) & 1; }
static inline void bit_set(u32 *bits, u32 n) { bits[n >> 5] |= 1u << (n & 31); }
static inline void bit_flip(u32 *bits, u32 n) { bits[n >> 5] ^= 1u << (n & 31); }
#endif

/* ---- CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) ---- */

static u32 crc_table[256];

static void crc_init(void) {
  for (u32 i = 0; i < 256; i++) {
    u32 c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    crc_table[i] = c;
  }
}

static u32 crc32(const u8 *p, u32 n) {
  u32 c = 0xFFFFFFFFu;
  for (u32 i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

/* ---- MurmurHash3 x86_32 (Appleby), unaligned 4-byte reads through memcpy ---- */

static u32 murmur3(const u8 *data, u32 len, u32 seed) {
  u32 h = seed, nblocks = len / 4;
  for (u32 i = 0; i < nblocks; i++) {
    u32 k;
    memcpy(&k, data + 4 * i, 4);
    k *= 0xCC9E2D51u;
    k = rotl32(k, 15);
    k *= 0x1B873593u;
    h ^= k;
    h = rotl32(h, 13);
    h = h * 5 + 0xE6546B64u;
  }
  const u8 *tail = data + nblocks * 4;
  u32 k = 0;
  switch (len & 3) {
  case 3:
    k ^= (u32)tail[2] << 16;
    /* fall through */
  case 2:
    k ^= (u32)tail[1] << 8;
    /* fall through */
  case 1:
    k ^= tail[0];
    k *= 0xCC9E2D51u;
    k = rotl32(k, 15);
    k *= 0x1B873593u;
    h ^= k;
  }
  h ^= len;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

/* ---- sorting: quicksort of u32 and insertion sort of s16 (MOVSX compares) ---- */

#define SORT_N 512
static u32 sort_buf[SORT_N];
static s16 short_buf[128];

static void insertion_sort_u32(u32 *a, int n) {
  for (int i = 1; i < n; i++) {
    u32 v = a[i];
    int j = i - 1;
    while (j >= 0 && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
}

static void quicksort(u32 *a, int n) {
  while (n > 16) {
    u32 x = a[0], y = a[n / 2], z = a[n - 1];
    /* median of three, written to encourage CMOV */
    u32 lo = x < y ? x : y, hi = x < y ? y : x;
    u32 pivot = z < lo ? lo : (z > hi ? hi : z);
    int i = 0, j = n - 1;
    for (;;) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i >= j) break;
      u32 t = a[i];
      a[i] = a[j];
      a[j] = t;
      i++;
      j--;
    }
    /* recurse into the smaller part, loop on the larger */
    if (j + 1 < n - j - 1) {
      quicksort(a, j + 1);
      a += j + 1;
      n -= j + 1;
    } else {
      quicksort(a + j + 1, n - j - 1);
      n = j + 1;
    }
  }
  insertion_sort_u32(a, n);
}

static u32 work_sort(void) {
  for (int i = 0; i < SORT_N; i++) sort_buf[i] = rnd() >> (rnd() & 7);
  quicksort(sort_buf, SORT_N);
  u32 h = 0;
  for (int i = 0; i < SORT_N; i++) {
    if (i && sort_buf[i - 1] > sort_buf[i]) fail("sort: not sorted");
    h = mix32(h, sort_buf[i]);
  }
  for (int i = 0; i < 128; i++) short_buf[i] = (s16)(rnd() & 0xFFFF);
  for (int i = 1; i < 128; i++) {
    s16 v = short_buf[i];
    int j = i - 1;
    while (j >= 0 && short_buf[j] > v) {
      short_buf[j + 1] = short_buf[j];
      j--;
    }
    short_buf[j + 1] = v;
  }
  for (int i = 0; i < 128; i++) {
    if (i && short_buf[i - 1] > short_buf[i]) fail("sort: shorts not sorted");
    h = mix32(h, (u32)(s32)short_buf[i]);
  }
  return h;
}

/* ---- 64-bit multiply, divide and remainder, unsigned and signed ---- */

static u64 rnd64(void) {
  u64 hi = rnd();
  return (hi << 32) | rnd();
}

static u64 work_div64(void) {
  u64 acc = 0;
  for (int i = 0; i < 48; i++) {
    u64 a = rnd64();
    u64 d;
    switch (i & 3) {
    case 0: d = rnd() | 1; break;                       /* 32-bit divisor */
    case 1: d = rnd64() >> (rnd() & 31); break;         /* 33..64-bit divisor */
    case 2: d = (rnd() & 0xFFFF) + 1; break;            /* small divisor */
    default: d = a >> (1 + (rnd() & 7)); break;         /* quotient 2..255 */
    }
    if (d == 0) d = 7;
    u64 q = a / d, r = a % d;
    if (q * d + r != a || r >= d) fail("div64: unsigned identity");
    acc = acc * 31 + (q ^ rotl64(r, 17));

    s64 sa = (s64)a, sd = (s64)d;
    if (rnd() & 1) sd = -sd;
    if (sd == 0 || (sa == (s64)0x8000000000000000ull && sd == -1)) sd = 3;
    s64 sq = sa / sd, sr = sa % sd;
    if ((u64)sq * (u64)sd + (u64)sr != (u64)sa) fail("div64: signed identity");
    if (sr != 0 && (sr < 0) != (sa < 0)) fail("div64: remainder sign");
    acc = acc * 37 + ((u64)sq ^ (u64)sr);

    /* 32x32->64 widening multiply (MUL) and a 64x64 product (IMUL/MUL mix) */
    u32 x = rnd(), y = rnd();
    acc += (u64)x * y;
    acc ^= a * d;
    /* 32-bit signed division (IDIV) with negative operands */
    s32 n32 = (s32)rnd(), d32 = (s32)(rnd() | 1) >> (rnd() & 15);
    if (d32 == 0 || (n32 == (s32)0x80000000 && d32 == -1)) d32 = 5;
    acc += (u32)(n32 / d32) ^ ((u32)(n32 % d32) << 7);
  }
  return acc;
}

/* ---- shifts and rotates by variable counts ---- */

static u64 work_shift(void) {
  u64 acc = 0x0123456789ABCDEFull;
  for (int i = 0; i < 128; i++) {
    u64 a = rnd64();
    u32 n = rnd(), x = rnd();
    acc ^= a << (n & 63);                /* SHLD/SHL pair */
    acc += a >> ((n >> 6) & 63);         /* SHRD/SHR pair */
    acc ^= (u64)((s64)a >> ((n >> 12) & 63)); /* SHRD/SAR pair */
    acc = rotl64(acc, n >> 26);
    x = rotl32(x, n >> 8);               /* ROL */
    x ^= (u32)((s32)x >> (n & 31));      /* SAR */
    u16 w = (u16)x;
    w = (u16)((w << (n & 15)) | (w >> ((16 - n) & 15))); /* 16-bit rotate */
    u8 b = (u8)(x >> 8);
    b = (u8)((b >> (n & 7)) | (b << ((8 - n) & 7)));
    acc += x + ((u32)w << 8) + b;
  }
  return acc;
}

/* ---- bit scans, population count, byte swap, parity, bit tests ---- */

static u32 bitmap[32];

static u32 work_bits(void) {
  u32 h = 0;
  for (int i = 0; i < 32; i++) bitmap[i] = rnd();
  for (int i = 0; i < 128; i++) {
    u32 x = rnd() | (1u << (i & 31));
    u64 y = rnd64() | 1ull << (i & 63);
    h = mix32(h, (u32)__builtin_ctz(x));             /* BSF */
    h = mix32(h, (u32)__builtin_clz(x));             /* BSR */
    h = mix32(h, (u32)__builtin_popcount(x));
    h = mix32(h, (u32)__builtin_ctzll(y) + ((u32)__builtin_clzll(y) << 8));
    h = mix32(h, (u32)__builtin_popcountll(y));
    h = mix32(h, __builtin_bswap32(x));              /* BSWAP */
    h = mix32(h, (u32)__builtin_parity(x));          /* SETNP */
    u32 bit = rnd() & 1023;
    h += (u32)bit_test(bitmap, bit);                 /* BT */
    bit_flip(bitmap, bit);                           /* BTC */
    h += (u32)((s32)x < 0) + (u32)(x > 0x80000000u) + (u32)((u8)x == 0x5A); /* SETcc */
  }
  for (int i = 0; i < 32; i++) h = mix32(h, bitmap[i]);
  return h;
}

/* ---- string functions: lengths, comparisons, searches, copies, number formatting ---- */

static char strs[64][32];
static char text[512];

static int sign(int v) { return (v > 0) - (v < 0); }

static u32 parse_u32(const char *s) {
  u32 v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (u32)(*s++ - '0');
  return v;
}

static int format_u32(char *out, u32 v) {
  char tmp[12];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10); /* division by a constant: MUL by a reciprocal */
    v /= 10;
  } while (v);
  for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = 0;
  return n;
}

static u32 work_string(void) {
  u32 h = 0;
  for (int i = 0; i < 64; i++) {
    int len = 1 + (int)(rnd() % 31);
    for (int j = 0; j < len; j++) strs[i][j] = (char)('a' + (rnd() & 3));
    strs[i][len] = 0;
  }
  for (int i = 0; i < 64; i++) {
    h = mix32(h, (u32)strlen(strs[i]));
    h = mix32(h, (u32)sign(strcmp(strs[i], strs[(i * 7 + 3) & 63])));
    h = mix32(h, (u32)sign(memcmp(strs[i], strs[(i + 1) & 63], 4)));
    const char *c = strchr(strs[i], 'd');
    h = mix32(h, c ? (u32)(c - strs[i]) : 99u);
  }
  /* build a text of numbers, parse it back, shuffle it with overlapping moves */
  int pos = 0;
  while (pos < 400) {
    u32 v = rnd() >> (rnd() & 31);
    pos += format_u32(text + pos, v);
    text[pos++] = ' ';
  }
  text[pos] = 0;
  for (const char *p = text; *p;) {
    u32 v = parse_u32(p);
    h = mix32(h, v);
    while (*p && *p != ' ') p++;
    while (*p == ' ') p++;
  }
  memmove(text + 7, text, 300);  /* overlapping, destination above: copies backwards */
  memmove(text, text + 13, 300); /* overlapping, destination below */
  memset(text + 100, '#', 50);
  text[400] = 0;
  h = mix32(h, crc32((const u8 *)text, 400));
  for (int i = 0; i < 400; i++) { /* MOVZX/MOVSX on bytes */
    s8 sc = (s8)text[i];
    u8 uc = (u8)text[i];
    h += (u32)(s32)sc * 3 + uc;
  }
  return h;
}

/* ---- sieve of Eratosthenes on a bitmap ---- */

static u32 composite[(16384 + 31) / 32];

static u32 sieve(u32 limit, u32 *sum) {
  memset(composite, 0, sizeof composite);
  u32 count = 0, s = 0;
  for (u32 i = 2; i < limit; i++) {
    if (bit_test(composite, i)) continue; /* BT */
    count++;
    s += i;
    for (u32 j = i * i; j < limit; j += i) bit_set(composite, j); /* BTS */
  }
  *sum = s;
  return count;
}

/* ---- matrix multiply (IMUL) ---- */

#define MAT_N 12
static s32 mat_a[MAT_N][MAT_N], mat_b[MAT_N][MAT_N], mat_c[MAT_N][MAT_N];

static u32 work_matrix(void) {
  for (int i = 0; i < MAT_N; i++)
    for (int j = 0; j < MAT_N; j++) {
      mat_a[i][j] = (s32)(rnd() % 2001) - 1000;
      mat_b[i][j] = (s32)(rnd() % 2001) - 1000;
    }
  for (int i = 0; i < MAT_N; i++)
    for (int j = 0; j < MAT_N; j++) {
      s32 sum = 0;
      for (int k = 0; k < MAT_N; k++) sum += mat_a[i][k] * mat_b[k][j];
      mat_c[i][j] = sum;
    }
  u32 h = 0;
  s32 mn = mat_c[0][0], mx = mat_c[0][0];
  for (int i = 0; i < MAT_N; i++)
    for (int j = 0; j < MAT_N; j++) {
      h = mix32(h, (u32)mat_c[i][j]);
      mn = mat_c[i][j] < mn ? mat_c[i][j] : mn; /* CMOV */
      mx = mat_c[i][j] > mx ? mat_c[i][j] : mx;
    }
  return h ^ (u32)mn ^ rotl32((u32)mx, 16);
}

/* ---- bignum: factorials in 32-bit limbs, printed in base 10^9 ---- */

#define BIG_LIMBS 40
static u32 big[BIG_LIMBS];

static int big_factorial(u32 n) {
  int len = 1;
  big[0] = 1;
  for (u32 k = 2; k <= n; k++) {
    u32 carry = 0;
    for (int i = 0; i < len; i++) {
      u64 p = (u64)big[i] * k + carry; /* MUL: 32x32->64 */
      big[i] = (u32)p;
      carry = (u32)(p >> 32);
    }
    if (carry && len < BIG_LIMBS) big[len++] = carry;
  }
  return len;
}

/* Divides the number in place by d, returning the remainder (64/32 divisions). */
static u32 big_divmod(int len, u32 d) {
  u64 r = 0;
  for (int i = len - 1; i >= 0; i--) {
    u64 cur = (r << 32) | big[i];
    big[i] = (u32)(cur / d);
    r = cur % d;
  }
  return (u32)r;
}

static u32 work_bignum(u32 n) {
  int len = big_factorial(n);
  u32 h = 0;
  for (int i = 0; i < len; i++) h = mix32(h, big[i]);
  while (len > 0) { /* the decimal digits, nine at a time */
    h = mix32(h, big_divmod(len, 1000000000u));
    while (len > 0 && big[len - 1] == 0) len--;
  }
  return h;
}

/* ---- a tiny bytecode interpreter: a switch compiled to a jump table ---- */

enum { OP_PUSH, OP_ADD, OP_SUB, OP_MUL, OP_XOR, OP_DUP, OP_SWAP, OP_DROP, OP_SHL, OP_SHR,
       OP_DEC, OP_JNZ, OP_OVER, OP_ROT, OP_HALT };

/* stack: counter acc -> runs `acc = (acc * 33) ^ (acc >> 5) - counter` counter times */
static const u8 vm_program[] = {
  OP_SWAP,                          /* acc counter */
  OP_DUP, OP_ROT,                   /* counter counter acc  (loop start: pc 1) */
  OP_DUP, OP_PUSH, 33, OP_MUL,      /* counter counter acc acc*33 */
  OP_SWAP, OP_PUSH, 5, OP_SHR,      /* counter counter acc*33 acc>>5 */
  OP_XOR, OP_SWAP, OP_SUB,          /* counter acc' */
  OP_SWAP, OP_DEC,                  /* acc' counter-1 */
  OP_DUP, OP_JNZ, 1,                /* loop while counter != 0 */
  OP_DROP, OP_HALT,
};

static u32 vm_run(u32 counter, u32 acc) {
  u32 stack[16];
  int sp = 0;
  stack[sp++] = counter;
  stack[sp++] = acc;
  for (u32 pc = 0;;) {
    u8 op = vm_program[pc++];
    u32 t;
    switch (op) {
    case OP_PUSH: stack[sp++] = vm_program[pc++]; break;
    case OP_ADD: sp--; stack[sp - 1] += stack[sp]; break;
    case OP_SUB: sp--; stack[sp - 1] -= stack[sp]; break;
    case OP_MUL: sp--; stack[sp - 1] *= stack[sp]; break;
    case OP_XOR: sp--; stack[sp - 1] ^= stack[sp]; break;
    case OP_DUP: stack[sp] = stack[sp - 1]; sp++; break;
    case OP_SWAP: t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; break;
    case OP_DROP: sp--; break;
    case OP_SHL: sp--; stack[sp - 1] <<= stack[sp] & 31; break;
    case OP_SHR: sp--; stack[sp - 1] >>= stack[sp] & 31; break;
    case OP_DEC: stack[sp - 1]--; break;
    case OP_JNZ: sp--; if (stack[sp]) pc = vm_program[pc]; else pc++; break;
    case OP_OVER: stack[sp] = stack[sp - 2]; sp++; break;
    case OP_ROT: /* a b c -> b c a */
      t = stack[sp - 3];
      stack[sp - 3] = stack[sp - 2];
      stack[sp - 2] = stack[sp - 1];
      stack[sp - 1] = t;
      break;
    case OP_HALT: return stack[sp - 1];
    default: fail("vm: bad opcode"); return 0;
    }
  }
}

/* ---- structure copies (REP MOVS or memcpy) ---- */

struct record {
  u32 words[24];
  u16 tag;
  s8 delta;
};
static struct record records[16];

static u32 work_records(void) {
  for (int i = 0; i < 16; i++) {
    for (int j = 0; j < 24; j++) records[i].words[j] = rnd();
    records[i].tag = (u16)rnd();
    records[i].delta = (s8)rnd();
  }
  u32 h = 0;
  for (int round = 0; round < 8; round++) {
    struct record tmp = records[round];
    records[round] = records[15 - round];
    records[15 - round] = tmp;
    records[(round * 5) & 15].words[round] += (u32)(s32)records[round].delta;
  }
  for (int i = 0; i < 16; i++) h = mix32(h, crc32((const u8 *)records[i].words, sizeof records[i].words) ^ records[i].tag);
  return h;
}

/* ---- driver ---- */

static u8 data[4096];

static void self_tests(void) {
  static const char check[] = "123456789";
  if (crc32((const u8 *)check, 9) != 0xCBF43926u) fail("crc32 known answer");
  if (murmur3((const u8 *)check, 9, 0) != 0xB4FEF382u) fail("murmur3 known answer");
  u32 sum;
  if (sieve(8192, &sum) != 1028) fail("sieve: pi(8192) != 1028");
  int len = big_factorial(20);
  if (len != 2 || big[1] != 0x21C3677Cu || big[0] != 0x82B40000u) fail("bignum: 20!");
  if ((u64)-7 / 3 != 0x5555555555555553ull || (s64)-7 / 2 != -3 || (s64)-7 % 2 != -1)
    fail("div64 known answers");
}

int compute_run(u32 iters) {
  u32 h_crc = 0, h_hash = 0, h_sort = 0, h_bits = 0, h_str = 0, h_mat = 0, h_big = 0, h_vm = 0,
      h_rec = 0, primes = 0, prime_sum = 0;
  u64 h_div = 0, h_shift = 0;

  printf("compute: iters=%u\n", iters);
  crc_init();
  self_tests();
  rng_state = 0x12345678u;
  for (u32 it = 0; it < iters; it++) {
    for (u32 i = 0; i < sizeof data; i += 4) {
      u32 v = rnd();
      memcpy(data + i, &v, 4);
    }
    h_crc = mix32(h_crc, crc32(data, sizeof data - (it & 15)));
    h_hash = mix32(h_hash, murmur3(data + (it & 3), sizeof data - 4, it));
    h_sort = mix32(h_sort, work_sort());
    h_div = h_div * 3 + work_div64();
    h_shift ^= work_shift() + it;
    h_bits = mix32(h_bits, work_bits());
    h_str = mix32(h_str, work_string());
    u32 sum;
    primes += sieve(4096 + (it & 7) * 1024, &sum);
    prime_sum += sum;
    h_mat = mix32(h_mat, work_matrix());
    h_big = mix32(h_big, work_bignum(30 + it % 40));
    h_vm = mix32(h_vm, vm_run(100 + (it & 63), rnd()));
    h_rec = mix32(h_rec, work_records());
  }
  printf("crc32: %08x\n", h_crc);
  printf("murmur3: %08x\n", h_hash);
  printf("sort: %08x\n", h_sort);
  printf("div64: %016llx\n", h_div);
  printf("shift: %016llx\n", h_shift);
  printf("bits: %08x\n", h_bits);
  printf("string: %08x\n", h_str);
  printf("sieve: primes=%u sum=%u\n", primes, prime_sum);
  printf("matrix: %08x\n", h_mat);
  printf("bignum: %08x\n", h_big);
  printf("vm: %08x\n", h_vm);
  printf("records: %08x\n", h_rec);
  u32 all = h_crc ^ h_hash ^ h_sort ^ (u32)h_div ^ (u32)(h_div >> 32) ^ (u32)h_shift ^
            (u32)(h_shift >> 32) ^ h_bits ^ h_str ^ primes ^ prime_sum ^ h_mat ^ h_big ^ h_vm ^ h_rec;
  printf("checksum: %08x\n", all);
  if (!failed) printf("PASS\n");
  return failed;
}
