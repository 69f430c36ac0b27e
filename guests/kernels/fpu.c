/*
 * fpu: the x87 FPU, FXSAVE and XSAVE as a kernel meets them (SDM Vol. 3A, 9.2 and 2.5; Vol. 1,
 * chapters 8, 10.5 and 13): CPUID, CR0 (EM, MP, NE, TS) and CR4 (OSFXSR, OSXSAVE) set-up, the
 * FNINIT probe, a little arithmetic, the masked stack-fault response, #MF and #NM, FXSAVE and
 * XSAVE of a known state and back, XCR0 through XGETBV/XSETBV. The runtime is compiled with
 * -mgeneral-regs-only, so every x87 and state instruction is inline asm on integer bit
 * patterns; the same source runs on i386 and amd64 (and checks only what the SDM promises,
 * so it passes on hardware too).
 */
#include "kernel.h"

#define CR0_NE 0x00000020u        /* numeric errors raise #MF */
#define CR4_OSFXSR 0x00000200u    /* FXSAVE/FXRSTOR save and restore the SSE state */
#define CR4_OSXMMEXCPT 0x00000400u /* SIMD exceptions raise #XM */
#define CR4_OSXSAVE 0x00040000u   /* XSAVE and XCR0 */
#define CPUID1_EDX_FPU (1u << 0)
#define CPUID1_EDX_FXSR (1u << 24)
#define CPUID1_ECX_XSAVE (1u << 26)
#define CPUID1_ECX_OSXSAVE (1u << 27)

#ifdef __x86_64__
#define FAULT_IP trap_fault_rip
#else
#define FAULT_IP trap_fault_eip
#endif

/* Bit patterns of the m64fp values used (IEEE 754 binary64). */
#define F64_1_5 0x3FF8000000000000ull
#define F64_2_25 0x4002000000000000ull
#define F64_3_375 0x400B000000000000ull
#define F64_1 0x3FF0000000000000ull
#define F64_INDEFINITE 0xFFF8000000000000ull /* the QNaN floating-point indefinite */
#define F64_3 0x4008000000000000ull
#define F64_10 0x4024000000000000ull
#define F64_1_25 0x3FF4000000000000ull
#define F64_12 0x4028000000000000ull

static u8 area[4096 + 64] __attribute__((aligned(64)));
static volatile u64 m64[4];

static u16 fnstsw(void) {
  u16 sw;
  __asm__ volatile("fnstsw %0" : "=m"(sw));
  return sw;
}

static u16 fnstcw(void) {
  u16 cw;
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  return cw;
}

static void fldcw(u16 cw) { __asm__ volatile("fldcw %0" ::"m"(cw)); }

static u16 rd16(const u8 *p) { return (u16)(p[0] | p[1] << 8); }
static u64 rd64(const u8 *p) {
  u64 v = 0;
  for (int k = 7; k >= 0; k--) v = v << 8 | p[k];
  return v;
}

/* FNINIT: the state of SDM Vol. 1, 8.1.5-8.1.7 (FCW 037FH, FSW 0, all tags empty). */
static void test_init(void) {
  u16 env[14];
  __asm__ volatile("fninit\n\tfnstenv %0" : "=m"(env));
  u16 sw = fnstsw(), cw = fnstcw();
  check("fninit_status", sw == 0, "FSW 0x%04x", sw);
  check("fninit_control", cw == 0x037F, "FCW 0x%04x", cw);
  check("fninit_tags", env[4] == 0xFFFF, "tag word 0x%04x", env[4]);
}

/* A few exact operations through memory, and the stack's TOP. */
static void test_arith(void) {
  m64[0] = F64_1_5;
  m64[1] = F64_2_25;
  __asm__ volatile("fninit\n\tfldl %0\n\tfldl %1" ::"m"(m64[0]), "m"(m64[1]) : "memory");
  u16 sw = fnstsw();
  check("push_top", ((sw >> 11) & 7) == 6, "TOP %u after two loads", (sw >> 11) & 7);
  __asm__ volatile("fmulp\n\tfstpl %0" : "=m"(m64[2])::"memory");
  check("fmulp", m64[2] == F64_3_375, "1.5 * 2.25 = 0x%llx", (unsigned long long)m64[2]);
  __asm__ volatile("fldl %1\n\tfsqrt\n\tfstpl %0" : "=m"(m64[3]) : "m"(m64[1]) : "memory");
  check("fsqrt", m64[3] == F64_1_5, "sqrt(2.25) = 0x%llx", (unsigned long long)m64[3]);
  u16 cmp;
  __asm__ volatile("fldl %1\n\tfldl %2\n\tfcompp\n\tfnstsw %0" : "=m"(cmp) : "m"(m64[1]), "m"(m64[0]));
  check("fcompp", (cmp & 0x4500) == 0x0100, "1.5 < 2.25: C0 (FSW 0x%04x)", cmp);
  sw = fnstsw();
  check("pop_top", ((sw >> 11) & 7) == 0, "TOP %u after FCOMPP", (sw >> 11) & 7);
}

/* Exact results: FPREM's remainder and quotient bits, FXTRACT, FSCALE (SDM Vol. 2). */
static void test_exact(void) {
  m64[0] = F64_10;
  m64[1] = F64_3;
  u16 sw;
  __asm__ volatile("fninit\n\tfldl %3\n\tfldl %2\n\tfprem\n\tfnstsw %0\n\tfstpl %1\n\tfstp %%st(0)"
                   : "=m"(sw), "=m"(m64[2])
                   : "m"(m64[0]), "m"(m64[1]));
  check("fprem", m64[2] == F64_1 && (sw & 0x4700) == 0x4200, "10 rem 3 = 0x%llx, FSW 0x%04x (q = 3)",
        (unsigned long long)m64[2], sw);
  __asm__ volatile("fldl %2\n\tfxtract\n\tfstpl %0\n\tfstpl %1" : "=m"(m64[2]), "=m"(m64[3]) : "m"(m64[0]));
  check("fxtract", m64[2] == F64_1_25 && m64[3] == F64_3, "10 = 0x%llx * 2^(0x%llx)",
        (unsigned long long)m64[2], (unsigned long long)m64[3]);
  m64[0] = F64_1_5;
  __asm__ volatile("fldl %2\n\tfldl %1\n\tfscale\n\tfstpl %0\n\tfstp %%st(0)"
                   : "=m"(m64[2])
                   : "m"(m64[0]), "m"(m64[1]));
  check("fscale", m64[2] == F64_12, "1.5 * 2^3 = 0x%llx", (unsigned long long)m64[2]);
}

/* Stack underflow with IE masked: IE and SF, C1 = 0, the indefinite stored (SDM 8.5.1.1). */
static void test_underflow(void) {
  m64[0] = 0;
  __asm__ volatile("fninit\n\tfstpl %0" : "=m"(m64[0])::"memory");
  u16 sw = fnstsw();
  check("underflow_flags", (sw & 0x02FF) == 0x0041, "FSW 0x%04x: SF, IE, no C1, no ES", sw);
  check("underflow_indefinite", m64[0] == F64_INDEFINITE, "stored 0x%llx", (unsigned long long)m64[0]);
  __asm__ volatile("fnclex");
}

/* An unmasked exception is reported by the next waiting instruction: #MF with CR0.NE. */
static void test_mf(void) {
  write_cr0(read_cr0() | CR0_NE);
  __asm__ volatile("fninit\n\tfld1");
  fldcw(0x037E); /* IE unmasked */
  __asm__ volatile("fadd %st(2), %st"); /* ST(2) is empty: stack underflow, now pending */
  u16 sw = fnstsw();
  check("mf_pending", (sw & 0x8080) == 0x8080 && (sw & 0x41) == 0x41, "FSW 0x%04x: B, ES, SF, IE", sw);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fwait" TRY_END ::: "memory");
  check_trap("mf_at_fwait", VEC_MF, 0, FAULT_IP);
  __asm__ volatile("fnclex\n\tfwait");
  sw = fnstsw();
  check("fnclex", (sw & 0x80FF) == 0, "FSW 0x%04x", sw);
  __asm__ volatile("fninit");
}

/* CR0.TS and CR0.EM make x87 instructions raise #NM (SDM Vol. 3A, 2.5, Table 2-2). */
static void test_nm(void) {
  uptr cr0 = read_cr0();
  write_cr0(cr0 | CR0_TS);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fld1" TRY_END ::: "memory");
  check_trap("nm_ts", VEC_NM, 0, FAULT_IP);
  clts();
  write_cr0((cr0 | CR0_EM) & ~CR0_TS);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fninit" TRY_END ::: "memory");
  check_trap("nm_em", VEC_NM, 0, FAULT_IP);
  write_cr0(cr0);
}

/* The legacy region's x87 part after FNINIT; FLD1; FLD 1.5 (SDM Vol. 1, Table 10-2). */
static void check_legacy(const char *what, const u8 *a) {
  int ok = rd16(a + 0) == 0x037F && rd16(a + 2) == (6 << 11) && a[4] == 0xC0 &&
           rd64(a + 32) == 0xC000000000000000ull && rd16(a + 40) == 0x3FFF &&
           rd64(a + 48) == 0x8000000000000000ull && rd16(a + 56) == 0x3FFF;
  check(what, ok, "FCW 0x%04x FSW 0x%04x FTW 0x%02x ST0 exp 0x%04x ST1 exp 0x%04x", rd16(a),
        rd16(a + 2), a[4], rd16(a + 40), rd16(a + 56));
}

static void load_known_state(void) {
  m64[0] = F64_1_5;
  __asm__ volatile("fninit\n\tfld1\n\tfldl %0" ::"m"(m64[0]) : "memory");
}

/* Pops the two values back out and checks them and TOP. */
static void check_restored(const char *what) {
  u16 sw = fnstsw();
  __asm__ volatile("fstpl %0\n\tfstpl %1" : "=m"(m64[2]), "=m"(m64[3])::"memory");
  check(what, ((sw >> 11) & 7) == 6 && m64[2] == F64_1_5 && m64[3] == F64_1,
        "TOP %u, ST0 0x%llx, ST1 0x%llx", (sw >> 11) & 7, (unsigned long long)m64[2],
        (unsigned long long)m64[3]);
}

static void test_fxsave(void) {
  load_known_state();
  memset(area, 0, 512);
  __asm__ volatile("fxsave (%0)" ::"r"(area) : "memory");
  check_legacy("fxsave_layout", area);
  __asm__ volatile("fninit\n\tfxrstor (%0)" ::"r"(area) : "memory");
  check_restored("fxrstor_round_trip");
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fxsave (%0)" TRY_END ::"r"(area + 8) : "memory");
  check_trap("fxsave_misaligned", VEC_GP, 0, FAULT_IP);
}

static void xsetbv(u32 index, u64 v) {
  __asm__ volatile("xsetbv" ::"c"(index), "a"((u32)v), "d"((u32)(v >> 32)));
}

static u64 xgetbv(u32 index) {
  u32 lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
  return (u64)hi << 32 | lo;
}

static void test_xsave(void) {
  u32 a, b, c, d;
  write_cr4(read_cr4() | CR4_OSXSAVE);
  cpuid(1, &a, &b, &c, &d);
  check("cpuid_osxsave", (c & CPUID1_ECX_OSXSAVE) != 0, "CPUID.1:ECX 0x%08x", c);
  u64 xcr0 = xgetbv(0);
  check("xcr0_x87", (xcr0 & 1) != 0, "XCR0 0x%llx", (unsigned long long)xcr0);
  cpuid(0xD, &a, &b, &c, &d);
  check("xsave_sizes", (a & 1) && b >= 576 && c >= b, "supported 0x%x, size %u, max %u", a, b, c);
  u64 want = 1 | (a & 2); /* x87, and SSE state where supported */
  xsetbv(0, want);
  xcr0 = xgetbv(0);
  check("xsetbv", xcr0 == want, "XCR0 0x%llx", (unsigned long long)xcr0);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "xsetbv" TRY_END ::"c"(0), "a"(2), "d"(0) : "memory");
  check_trap("xsetbv_no_x87", VEC_GP, 0, FAULT_IP);

  load_known_state();
  memset(area, 0, 576);
  __asm__ volatile("xsave (%0)" ::"r"(area), "a"(0xFFFFFFFFu), "d"(0xFFFFFFFFu) : "memory");
  check_legacy("xsave_layout", area);
  check("xstate_bv", (area[512] & 1) == 1, "XSTATE_BV 0x%02x: x87 in use", area[512]);
  __asm__ volatile("fninit\n\txrstor (%0)" ::"r"(area), "a"(0xFFFFFFFFu), "d"(0xFFFFFFFFu) : "memory");
  check_restored("xrstor_round_trip");

  /* XSTATE_BV[0] = 0: XRSTOR puts the x87 state in its initial configuration. */
  load_known_state();
  fldcw(0x027F);
  area[512] &= ~1;
  __asm__ volatile("xrstor (%0)" ::"r"(area), "a"(1), "d"(0) : "memory");
  u16 env[14];
  __asm__ volatile("fnstenv %0" : "=m"(env));
  check("xrstor_init", env[0] == 0x037F && env[2] == 0 && env[4] == 0xFFFF,
        "FCW 0x%04x FSW 0x%04x tags 0x%04x", env[0], env[2], env[4]);

  /* Header bytes 8-23 must be 0 in the standard format (SDM Vol. 1, 13.8.1). */
  area[528] = 1;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "xrstor (%0)" TRY_END ::"r"(area), "a"(1), "d"(0) : "memory");
  check_trap("xrstor_reserved_header", VEC_GP, 0, FAULT_IP);
  area[528] = 0;
  __asm__ volatile("fninit");
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  u32 a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  check("cpuid_fpu", (d & CPUID1_EDX_FPU) != 0, "CPUID.1:EDX 0x%08x", d);
  check("cpuid_fxsr", (d & CPUID1_EDX_FXSR) != 0, "CPUID.1:EDX 0x%08x", d);
  int has_xsave = (c & CPUID1_ECX_XSAVE) != 0;

  /* The set-up SDM Vol. 3A, 9.2.1 asks of a kernel with an x87 FPU: EM clear, MP set. */
  write_cr0((read_cr0() & ~(CR0_EM | CR0_TS)) | CR0_MP);
  write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
  test_init();
  test_arith();
  test_exact();
  test_underflow();
  test_mf();
  test_nm();
  test_fxsave();
  if (has_xsave) test_xsave();
  else skip_check("xsave", "CPUID.1:ECX.XSAVE = 0");
  return test_finish();
}
