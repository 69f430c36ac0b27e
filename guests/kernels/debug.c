/*
 * debug: the debug registers (SDM Vol. 3B, 18.2 and 18.3), the same C in every variant.
 * Instruction breakpoints (a fault before the instruction, suppressed once by RF), data write
 * and read/write breakpoints (a trap after the access, also from CPL 3), an I/O breakpoint
 * (CR4.DE), disabled and non-matching breakpoints, DR6's B0-B3 and BD flags, general detect
 * (DR7.GD), and the checks on MOV DR itself: CPL 3, DR4/DR5 with and without CR4.DE, and on
 * amd64 the reserved upper half of DR7.
 */
#include "kernel.h"

#ifdef __x86_64__
#define FRAME_IP(f) ((f)->rip)
#define FRAME_FLAGS(f) ((f)->rflags)
#define FRAME_CS(f) ((f)->cs)
#define TRAP_FAULT_IP trap_fault_rip
#define MOVP "movq " /* stores a label's address */
#else
#define FRAME_IP(f) ((f)->eip)
#define FRAME_FLAGS(f) ((f)->eflags)
#define FRAME_CS(f) ((f)->cs)
#define TRAP_FAULT_IP trap_fault_eip
#define MOVP "movl "
#endif

/* DR6 status bits and DR7 fields (SDM Vol. 3B, Figures 18-1 and 18-2). */
#define DR6_B(n) (1u << (n))
#define DR6_BD (1u << 13)
#define DR7_L(n) ((uptr)1 << ((n) * 2))
#define DR7_G(n) ((uptr)2 << ((n) * 2))
#define DR7_GD ((uptr)1 << 13)
#define DR7_FIXED ((uptr)1 << 10)                         /* reads as 1 */
#define DR7_RW(n, rw) ((uptr)(rw) << (16 + (n) * 4))     /* 0 execute, 1 write, 2 I/O, 3 R/W */
#define DR7_LEN(n, len) ((uptr)(len) << (18 + (n) * 4))  /* 0: 1 byte, 1: 2, 3: 4, 2: 8 */
#define RW_EXEC 0
#define RW_WRITE 1
#define RW_IO 2
#define RW_ACCESS 3
#define LEN_4 3
#define DR6_CLEAR 0xFFFF0FF0u /* DR6 with no status bits (its reset value) */

static volatile u32 watched[4] __attribute__((aligned(16)));
static volatile u32 db_count, bp_target_runs;
static volatile uptr db_ip[4], db_dr6[4], db_cs[4];
static volatile uptr expect_ip;

/* Records each #DB. RF in the saved flags lets an instruction whose breakpoint faulted run
   when the handler returns (SDM Vol. 3B, 18.3.1.1); DR6 is cleared for the next one. */
static int db_handler(struct trapframe *f) {
  if (db_count < 4) {
    db_ip[db_count] = FRAME_IP(f);
    db_dr6[db_count] = read_dr6();
    db_cs[db_count] = FRAME_CS(f);
  }
  db_count++;
  write_dr6(DR6_CLEAR);
  FRAME_FLAGS(f) |= EFLAGS_RF;
  return 1;
}

static void arm(uptr dr7) {
  db_count = 0;
  for (int i = 0; i < 4; i++) db_ip[i] = db_dr6[i] = db_cs[i] = 0;
  write_dr6(DR6_CLEAR);
  trap_set_handler(VEC_DB, db_handler);
  write_dr7(dr7);
}

static void disarm(void) {
  write_dr7(0);
  write_dr6(DR6_CLEAR);
  trap_set_handler(VEC_DB, NULL);
}

static int got(u32 count, uptr ip, u32 bit) {
  return db_count == count && db_ip[0] == ip && (db_dr6[0] & bit) != 0;
}

static void dr_basics(void) {
  write_dr7(0);
  check("dr7_bit10_reads_1", read_dr7() == DR7_FIXED, "DR7=0x%llx", (u64)read_dr7());
  write_dr0(0x12345678u);
  write_dr3(0x9ABCDEF0u);
  check("dr0_dr3_hold_addresses", read_dr0() == 0x12345678u && read_dr3() == 0x9ABCDEF0u,
        "DR0=0x%llx DR3=0x%llx", (u64)read_dr0(), (u64)read_dr3());
  write_dr0(0);
  write_dr3(0);
}

/* ---- instruction breakpoints ---- */

void bp_target(void);
__asm__(".text\n"
        "bp_target:\n\t"
        "incl bp_target_runs\n\t"
        "ret\n");

static void test_instruction_breakpoint(void) {
  write_dr0((uptr)bp_target);
  bp_target_runs = 0;
  arm(DR7_L(0) | DR7_RW(0, RW_EXEC));
  bp_target();
  u32 first = db_count, runs = bp_target_runs;
  bp_target(); /* RF suppressed only the first re-execution: this call faults again */
  disarm();
  check("instruction_breakpoint_fault",
        first == 1 && db_ip[0] == (uptr)bp_target && (db_dr6[0] & DR6_B(0)),
        "%u #DB, IP 0x%llx (expected 0x%llx), DR6=0x%llx", first, (u64)db_ip[0], (u64)(uptr)bp_target,
        (u64)db_dr6[0]);
  check("instruction_breakpoint_rf_resumes", runs == 1 && bp_target_runs == 2 && db_count == 2,
        "target ran %u then %u times, %u #DB in all", runs, bp_target_runs, db_count);

  /* DR7.G enables it as well; with neither L nor G set nothing happens. */
  write_dr3((uptr)bp_target);
  arm(DR7_G(3) | DR7_RW(3, RW_EXEC));
  bp_target();
  disarm();
  check("instruction_breakpoint_global_enable", got(1, (uptr)bp_target, DR6_B(3)), "%u #DB, DR6=0x%llx",
        db_count, (u64)db_dr6[0]);
  arm(DR7_RW(3, RW_EXEC)); /* L3 = G3 = 0 */
  bp_target();
  disarm();
  check("breakpoint_disabled_no_db", db_count == 0, "%u #DB", db_count);
  write_dr3(0);
}

/* ---- data breakpoints: traps after the access (saved IP = the next instruction) ---- */

static void store_watched(int i, u32 v) {
  __asm__ volatile(MOVP "$1f, expect_ip\n\t"
                   "movl %1, %0\n"
                   "1:\n\t"
                   : "=m"(watched[i])
                   : "r"(v)
                   : "memory");
}

static u32 load_watched(int i) {
  u32 v;
  __asm__ volatile(MOVP "$1f, expect_ip\n\t"
                   "movl %1, %0\n"
                   "1:\n\t"
                   : "=r"(v)
                   : "m"(watched[i])
                   : "memory");
  return v;
}

static void user_store_watched(void) { store_watched(1, 0x3333); }

static void test_data_breakpoints(void) {
  write_dr1((uptr)&watched[1]);
  arm(DR7_L(1) | DR7_RW(1, RW_WRITE) | DR7_LEN(1, LEN_4));
  store_watched(1, 0x1111);
  int ok = got(1, expect_ip, DR6_B(1)) && watched[1] == 0x1111;
  check("data_write_breakpoint_trap", ok, "%u #DB, IP 0x%llx (expected 0x%llx), DR6=0x%llx", db_count,
        (u64)db_ip[0], (u64)expect_ip, (u64)db_dr6[0]);
  arm(DR7_L(1) | DR7_RW(1, RW_WRITE) | DR7_LEN(1, LEN_4));
  (void)load_watched(1);
  store_watched(2, 0x2222); /* outside the 4 bytes at DR1 */
  check("data_write_breakpoint_ignores_reads_and_others", db_count == 0, "%u #DB", db_count);

  arm(DR7_L(1) | DR7_RW(1, RW_ACCESS) | DR7_LEN(1, LEN_4));
  u32 v = load_watched(1);
  check("data_access_breakpoint_on_read", got(1, expect_ip, DR6_B(1)) && v == 0x1111,
        "%u #DB, IP 0x%llx (expected 0x%llx), DR6=0x%llx", db_count, (u64)db_ip[0], (u64)expect_ip,
        (u64)db_dr6[0]);

  /* A breakpoint enabled by L1 matches CPL 3 accesses too; #DB goes to ring 0. */
  arm(DR7_L(1) | DR7_RW(1, RW_WRITE) | DR7_LEN(1, LEN_4));
  run_user(user_store_watched, EFLAGS_FIXED);
  check("data_breakpoint_from_cpl3", got(1, expect_ip, DR6_B(1)) && (db_cs[0] & 3) == 3 && watched[1] == 0x3333,
        "%u #DB, IP 0x%llx (expected 0x%llx), CS 0x%llx, DR6=0x%llx", db_count, (u64)db_ip[0], (u64)expect_ip,
        (u64)db_cs[0], (u64)db_dr6[0]);
  disarm();
  write_dr1(0);
}

/* ---- an I/O breakpoint (R/W = 10B with CR4.DE = 1, SDM Vol. 3B, 18.2.4) ---- */

static void test_io_breakpoint(void) {
  u32 a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  if (!(d & (1u << 2))) {
    skip_check("io_breakpoint_trap", "CPUID.1:EDX[2] = 0: no debugging extensions");
    return;
  }
  write_cr4(read_cr4() | CR4_DE);
  write_dr2(0x80);
  arm(DR7_L(2) | DR7_RW(2, RW_IO));
  __asm__ volatile(MOVP "$1f, expect_ip\n\t"
                   "outb %%al, $0x80\n"
                   "1:\n\t" ::"a"(0)
                   : "memory");
  disarm();
  write_dr2(0);
  write_cr4(read_cr4() & ~(uptr)CR4_DE);
  check("io_breakpoint_trap", got(1, expect_ip, DR6_B(2)), "%u #DB, IP 0x%llx (expected 0x%llx), DR6=0x%llx",
        db_count, (u64)db_ip[0], (u64)expect_ip, (u64)db_dr6[0]);
}

/* ---- general detect and MOV DR checks (SDM Vol. 2, MOV—Move to/from Debug Registers) ---- */

static void user_read_dr7(void) {
  uptr v = 0;
  __asm__ volatile(TRY_BEGIN "mov %%dr7, %0" TRY_END : "+r"(v) : : "memory");
}

static void test_mov_dr(void) {
  /* DR7.GD: the next MOV DR faults with DR6.BD; the processor clears GD for the handler. */
  arm(DR7_GD);
  uptr v = 0;
  __asm__ volatile(MOVP "$1f, expect_ip\n"
                   "1:\n\t"
                   "mov %%dr7, %0\n\t"
                   : "=r"(v)
                   :
                   : "memory");
  u32 count = db_count;
  uptr dr6 = db_dr6[0], ip = db_ip[0];
  disarm();
  check("general_detect_bd", count == 1 && ip == expect_ip && (dr6 & DR6_BD) && !(v & DR7_GD),
        "%u #DB, IP 0x%llx (expected 0x%llx), DR6=0x%llx, DR7 read 0x%llx", count, (u64)ip, (u64)expect_ip, (u64)dr6,
        (u64)v);

  trap_clear();
  run_user(user_read_dr7, EFLAGS_FIXED);
  check_trap("mov_dr_cpl3_gp", VEC_GP, 0, TRAP_FAULT_IP);

  /* DR4 and DR5 alias DR6 and DR7 while CR4.DE = 0, and are #UD while it is 1. */
  write_dr6(DR6_CLEAR | DR6_B(2));
  uptr dr4 = 0;
  __asm__ volatile("mov %%dr4, %0" : "=r"(dr4));
  check("dr4_aliases_dr6_without_de", dr4 == read_dr6(), "DR4=0x%llx DR6=0x%llx", (u64)dr4, (u64)read_dr6());
  write_dr6(DR6_CLEAR);
  u32 a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  if (d & (1u << 2)) {
    write_cr4(read_cr4() | CR4_DE);
    trap_clear();
    __asm__ volatile(TRY_BEGIN "mov %%dr5, %0" TRY_END : "+r"(dr4) : : "memory");
    write_cr4(read_cr4() & ~(uptr)CR4_DE);
    check_trap("dr5_with_de_ud", VEC_UD, 0, TRAP_FAULT_IP);
  } else {
    skip_check("dr5_with_de_ud", "CPUID.1:EDX[2] = 0: no debugging extensions");
  }
#ifdef __x86_64__
  /* Bits 63:32 of DR6 and DR7 are reserved: writing a 1 there is #GP(0). */
  trap_clear();
  __asm__ volatile(TRY_BEGIN "mov %0, %%dr7" TRY_END ::"r"(1ull << 32) : "memory");
  check_trap("dr7_upper_half_gp", VEC_GP, 0, TRAP_FAULT_IP);
  write_dr7(0);
#endif
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  printf("debug: debug registers, breakpoints and DR6\n");
  dr_basics();
  test_instruction_breakpoint();
  test_data_breakpoints();
  test_io_breakpoint();
  test_mov_dr();
  return test_finish();
}
