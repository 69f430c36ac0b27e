/*
 * exceptions (amd64): raises and catches the exceptions of 64-bit mode, checking the vector,
 * the error code and the saved RIP: the faulting instruction for faults, the next one for
 * traps (SDM Vol. 3A, 6.5 and 6.15), CR2 for #PF. Also the 64-bit delivery itself (6.14):
 * 16-byte gates, the IST mechanism, the stack aligned to 16 bytes before the frame is pushed
 * and SS:RSP always saved; what no longer exists in 64-bit mode (BOUND, INTO, task gates,
 * task switches, PUSH ES and other one-byte opcodes are #UD or #GP); canonical addresses
 * (#GP, or #SS for stack references); and the control-register and MSR writes that long
 * mode forbids. Compatibility mode at CPL 0 is visited for INTO, which is valid there.
 */
#include "kernel.h"
#include "paging64.h"

/* GDT entries for the tests (selectors are index * 8, RPL 0). */
enum {
  GDT_NP_DATA = GDT_FIRST_FREE, /* writable data, not present */
  GDT_SMALL_DATA,               /* writable data, base `scratch`, limit 0xFFF */
  GDT_RO_DATA,                  /* read-only data */
  GDT_TSS2,                     /* a 16-byte TSS descriptor whose limit stops before IST3 */
  GDT_TSS2_HIGH,
  GDT_AVAIL_TSS, /* an available TSS, for CALL and the task gate */
  GDT_AVAIL_TSS_HIGH,
};
#define SEL(index) ((u16)((index) << 3))

static u8 scratch[8192] __attribute__((aligned(4096)));
static volatile u64 target_value = 0x0123456789ABCDEFull;

/* A far pointer in memory: m16:32 (offset first, SDM Vol. 2, JMP and CALL). */
struct __attribute__((packed)) far_ptr {
  u32 offset;
  u16 selector;
};

static int in_range(u64 v, const void *lo, u64 size) { return v >= (u64)lo && v < (u64)lo + size; }

/* A check that would wreck the run on a processor that gets it wrong is not run at all when
   skip= names it: this prints its skip line instead. */
static int not_run(const char *name) {
  if (!test_skipped(name)) return 0;
  check(name, 0, "not run");
  return 1;
}

/* ---- long mode itself ---- */

static void test_long_mode(void) {
  u64 efer = rdmsr(MSR_EFER);
  check("long_mode_active", (efer & (EFER_LME | EFER_LMA)) == (EFER_LME | EFER_LMA) &&
                                (read_cr4() & CR4_PAE) && (read_cr0() & CR0_PG),
        "EFER=0x%llx CR0=0x%llx CR4=0x%llx", efer, (u64)read_cr0(), (u64)read_cr4());
  /* LAR returns the descriptor's second dword masked with 00FxFF00H: L is bit 21, D bit 22. */
  u32 ar = 0;
  __asm__ volatile("larl %1, %0" : "=r"(ar) : "r"((u32)read_cs()) : "cc");
  check("cs_l_bit", (ar & 0x00600000) == 0x00200000, "CS=0x%x access rights 0x%08x", read_cs(), ar);
  /* SGDT and SIDT store a 2-byte limit and an 8-byte base in 64-bit mode. */
  struct __attribute__((packed)) {
    u16 limit;
    u64 base;
  } gdtr = {0, 0}, idtr = {0, 0};
  __asm__ volatile("sgdt %0\n\tsidt %1" : "=m"(gdtr), "=m"(idtr));
  struct idt_gate bp = idt_get(VEC_BP);
  const struct idt_gate *idt = (const struct idt_gate *)idtr.base;
  const u64 *gdt = (const u64 *)gdtr.base;
  int bases_ok = gdt[SEL_KCODE >> 3] == gdt_get(SEL_KCODE >> 3) && idt[VEC_BP].lo == bp.lo &&
                 idt[VEC_BP].hi == bp.hi;
  check("sgdt_sidt_64bit", gdtr.limit == GDT_ENTRIES * 8 - 1 && idtr.limit == 256 * 16 - 1 && bases_ok,
        "GDTR 0x%llx/0x%x IDTR 0x%llx/0x%x", gdtr.base, gdtr.limit, idtr.base, idtr.limit);
}

/* ---- #DE ---- */

static void test_de(void) {
  u64 a = 1, d = 0;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "divq %2" TRY_END : "+a"(a), "+d"(d) : "c"(0ull) : "memory", "cc");
  check_trap("de_div_by_zero", VEC_DE, 0, trap_fault_rip);

  a = 0x8000000000000000ull; /* RDX:RAX = -2^63: / -1 does not fit in 64 bits */
  d = ~0ull;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "idivq %2" TRY_END : "+a"(a), "+d"(d) : "c"(~0ull) : "memory", "cc");
  check_trap("de_idiv64_overflow", VEC_DE, 0, trap_fault_rip);
}

/* ---- #DB: single-step traps and INT1 (SDM Vol. 3A, 18.3.1.4 and 18.3.1.6) ---- */

static volatile u64 step_count, step_rip[4], step_dr6, step_expect[3];

static int single_step_handler(struct trapframe *f) {
  if (step_count < 4) step_rip[step_count] = f->rip;
  step_count++;
  step_dr6 = read_dr6();
  if (step_count >= 3) f->rflags &= ~(u64)EFLAGS_TF; /* stop after three steps */
  return 1;
}

static void test_db(void) {
  write_dr6(0xFFFF0FF0u);
  trap_set_handler(VEC_DB, single_step_handler);
  /* POPFQ sets TF: the first trap follows the instruction after POPFQ. */
  __asm__ volatile("movq $2f, step_expect\n\t"
                   "movq $3f, step_expect+8\n\t"
                   "movq $4f, step_expect+16\n\t"
                   "pushfq\n\t"
                   "orq $0x100, (%%rsp)\n\t"
                   "popfq\n"
                   "1: nop\n"
                   "2: nop\n"
                   "3: nop\n"
                   "4: nop\n"
                   :
                   :
                   : "memory", "cc");
  trap_set_handler(VEC_DB, NULL);
  check("db_single_step",
        step_count == 3 && step_rip[0] == step_expect[0] && step_rip[1] == step_expect[1] &&
            step_rip[2] == step_expect[2],
        "%llu traps, RIPs 0x%llx 0x%llx 0x%llx, expected 0x%llx 0x%llx 0x%llx", step_count,
        step_rip[0], step_rip[1], step_rip[2], step_expect[0], step_expect[1], step_expect[2]);
  check("db_single_step_dr6_bs", (step_dr6 & 0x4000) != 0, "DR6=0x%llx", step_dr6);

  trap_clear();
  __asm__ volatile(TRY_BEGIN ".byte 0xF1 /* INT1 (ICEBP) */" TRY_END ::: "memory");
  check_trap("db_int1", VEC_DB, 0, trap_next_rip);
}

/* ---- #BP; what 64-bit mode no longer has: INTO, BOUND and other opcodes are #UD ---- */

#define EXPECT_UD(name, bytes)                                                   \
  do {                                                                           \
    trap_clear();                                                                \
    __asm__ volatile(TRY_BEGIN ".byte " bytes TRY_END ::: "memory");             \
    check_trap(name, VEC_UD, 0, trap_fault_rip);                                 \
  } while (0)

static void test_bp_ud(void) {
  trap_clear();
  __asm__ volatile(TRY_BEGIN "int3" TRY_END ::: "memory");
  check_trap("bp_int3", VEC_BP, 0, trap_next_rip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "int $3" TRY_END ::: "memory");
  check_trap("bp_int_3", VEC_BP, 0, trap_next_rip);

  /* INTO (CEH) with OF = 1: invalid in 64-bit mode (SDM Vol. 2, INTn/INTO/INT3/INT1). */
  trap_clear();
  __asm__ volatile("movl $0x7FFFFFFF, %%eax\n\t"
                   "addl $1, %%eax\n\t" /* OF = 1 */
                   TRY_BEGIN ".byte 0xCE /* INTO */" TRY_END
                   :
                   :
                   : "eax", "memory", "cc");
  check_trap("ud_into_64bit", VEC_UD, 0, trap_fault_rip);

  /* BOUND (62H) is invalid in 64-bit mode, where 62H starts an EVEX prefix; these bytes are
     not a valid EVEX encoding either (P1 bit 2 must be 1), so #UD everywhere. */
  EXPECT_UD("ud_bound_64bit", "0x62, 0x03, 0x00, 0x00, 0x00, 0x00");

  /* One-byte opcodes that 64-bit mode dropped (SDM Vol. 2, Appendix A, "i64"). */
  EXPECT_UD("ud_push_es_64bit", "0x06");
  EXPECT_UD("ud_daa_64bit", "0x27");
  EXPECT_UD("ud_pusha_64bit", "0x60");
  EXPECT_UD("ud_far_call_imm_64bit", "0x9A, 0, 0, 0, 0, 0x08, 0");
  EXPECT_UD("ud_far_jmp_imm_64bit", "0xEA, 0, 0, 0, 0, 0x08, 0");

  trap_clear();
  __asm__ volatile(TRY_BEGIN "ud2" TRY_END ::: "memory");
  check_trap("ud_ud2", VEC_UD, 0, trap_fault_rip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN ".byte 0xF0\n\taddq %%rax, %%rax /* LOCK with a register destination */" TRY_END
                   :
                   :
                   : "rax", "memory", "cc");
  check_trap("ud_lock_register", VEC_UD, 0, trap_fault_rip);
}

/* ---- compatibility mode at CPL 0: INTO is valid there (SDM Vol. 3A, 5.2.1) ---- */

static volatile u64 compat_cs, compat_of_rip, compat_of_expect;

static int compat_of_handler(struct trapframe *f) {
  compat_cs = f->cs;
  compat_of_rip = f->rip;
  return 1; /* INTO is a trap: IRETQ resumes the 32-bit code after it */
}

static void test_compat_mode(void) {
  trap_set_handler(VEC_OF, compat_of_handler);
  trap_clear();
  u32 seen_cs = 0;
  /* A far return to the 32-bit ring-0 code segment enters compatibility mode; a far jump to
     the 64-bit one leaves it. The stack stays usable: its address is below 4 GiB. */
  __asm__ volatile("pushq %1\n\t"
                   "pushq $1f\n\t"
                   "lretq\n\t"
                   ".code32\n"
                   "1:\n\t"
                   "movl %%cs, %%edx\n\t"
                   "movl $0x7FFFFFFF, %%eax\n\t"
                   "addl $1, %%eax\n\t" /* OF = 1 */
                   "movl $2f, compat_of_expect\n\t"
                   "into\n"
                   "2:\n\t"
                   "ljmp %2, $3f\n\t"
                   ".code64\n"
                   "3:\n\t"
                   : "=&d"(seen_cs)
                   : "i"(SEL_KCODE32), "i"(SEL_KCODE)
                   : "rax", "memory", "cc");
  trap_set_handler(VEC_OF, NULL);
  check("compat_mode_cs", seen_cs == SEL_KCODE32, "CS=0x%x", seen_cs);
  check("compat_mode_into", last_trap.count == 1 && last_trap.vector == VEC_OF &&
                                compat_cs == SEL_KCODE32 && compat_of_rip == compat_of_expect,
        "%u exceptions, vector %u, saved CS:RIP 0x%llx:0x%llx, expected 0x%x:0x%llx", last_trap.count,
        last_trap.vector, compat_cs, compat_of_rip, SEL_KCODE32, compat_of_expect);
  check("back_in_64bit_mode", read_cs() == SEL_KCODE, "CS=0x%x", read_cs());
}

/* ---- #NM (SDM Vol. 3A, 2.5 CR0.TS/MP/EM and Table 2-2) ---- */

static void test_nm(void) {
  u64 cr0 = read_cr0();
  write_cr0((cr0 & ~(u64)(CR0_EM | CR0_MP)) | CR0_TS);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fninit" TRY_END ::: "memory");
  check_trap("nm_fninit_ts", VEC_NM, 0, trap_fault_rip);

  write_cr0((cr0 & ~(u64)CR0_EM) | CR0_TS | CR0_MP);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "fwait" TRY_END ::: "memory");
  check_trap("nm_fwait_ts_mp", VEC_NM, 0, trap_fault_rip);
  clts();
  write_cr0(cr0);
}

/* ---- the 64-bit interrupt frame and IST stacks (SDM Vol. 3A, 6.14.2 to 6.14.5) ---- */

static volatile u64 rsp_before;

static void test_frame_and_ist(void) {
  /* RSP is aligned down to 16 bytes before the 5-word frame is pushed; SS:RSP is pushed even
     without a privilege change, and IRETQ pops it back, misaligned as it was. */
  u64 rsp_after = 0;
  trap_clear();
  __asm__ volatile("movq %%rsp, %%rbx\n\t"
                   "andq $-16, %%rsp\n\t"
                   "subq $8, %%rsp\n\t"
                   "movq %%rsp, rsp_before\n\t" TRY_BEGIN "int3" TRY_END
                   "movq %%rsp, %0\n\t"
                   "movq %%rbx, %%rsp\n\t"
                   : "=r"(rsp_after)
                   :
                   : "rbx", "memory");
  check_trap("frame_int3", VEC_BP, 0, trap_next_rip);
  u64 expect_frame = (rsp_before & ~15ull) - 40;
  check("frame_aligned_16", last_trap.frame == expect_frame,
        "RSP before 0x%llx, frame at 0x%llx, expected 0x%llx", rsp_before, last_trap.frame, expect_frame);
  check("frame_ss_rsp_same_cpl", last_trap.rsp == rsp_before && last_trap.ss == SEL_KDATA &&
                                     rsp_after == rsp_before,
        "saved SS:RSP 0x%llx:0x%llx, RSP before 0x%llx, after IRETQ 0x%llx", last_trap.ss,
        last_trap.rsp, rsp_before, rsp_after);

  /* A gate with IST = 3 switches to IST3 even at the same privilege level. */
  idt_set(0x90, isr_stub(0x90), SEL_KCODE, GATE_INT, 3);
  trap_clear();
  __asm__ volatile("movq %%rsp, rsp_before\n\t" TRY_BEGIN "int $0x90" TRY_END ::: "memory");
  check_trap("ist_int_n", 0x90, 0, trap_next_rip);
  check("ist_stack_switch",
        last_trap.frame == IST_TOP(3) - 40 && last_trap.rsp == rsp_before,
        "frame at 0x%llx, IST3 top 0x%llx; saved RSP 0x%llx, RSP before 0x%llx", last_trap.frame,
        IST_TOP(3), last_trap.rsp, rsp_before);
  idt_set_default(0x90);
}

/* ---- #DF through IST1 (SDM Vol. 3A, Table 6-5: contributory then contributory) ---- */

static void test_df(void) {
  struct idt_gate np_gate = idt_get(VEC_NP), absent = np_gate;
  absent.lo &= ~(1ull << 47);
  idt_put(VEC_NP, absent);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %k0, %%ds" TRY_END ::"r"((u64)SEL(GDT_NP_DATA)) : "memory");
  idt_put(VEC_NP, np_gate);
  trap_resume = 0;
  check("df_np_gate_not_present", last_trap.count == 1 && last_trap.vector == VEC_DF && last_trap.error == 0,
        "%u exceptions, vector %u error 0x%x", last_trap.count, last_trap.vector, last_trap.error);
  check("df_on_ist1", in_range(last_trap.handler_rsp, ist_stacks[0], IST_STACK_SIZE),
        "handler RSP 0x%llx, IST1 0x%llx-0x%llx", last_trap.handler_rsp, (u64)ist_stacks[0], IST_TOP(1));
}

/* ---- #TS, #NP, #SS ---- */

static struct main_tss tss2, avail_tss;

static void test_ts(void) {
  /* An IST slot beyond the TSS limit: #TS(TSS selector) (SDM Vol. 2, INT n pseudo-code, "IF
     (TSSstackAddress + 7) > current TR.limit"). TSS2's limit covers IST1 and IST2 only. */
  memcpy(&tss2, &main_tss, sizeof tss2);
  gdt_set_system(GDT_TSS2, (u64)&tss2, 0x33, DESC_TSS);
  gdt_put(SEL_TSS >> 3, gdt_get(SEL_TSS >> 3) & ~(2ull << 40)); /* main TSS: busy -> available */
  __asm__ volatile("ltr %w0" ::"r"(SEL(GDT_TSS2)));
  idt_set(0x91, isr_stub(0x91), SEL_KCODE, GATE_INT, 3);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "int $0x91" TRY_END ::: "memory");
  idt_set_default(0x91);
  gdt_put(GDT_TSS2, gdt_get(GDT_TSS2) & ~(2ull << 40));
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
  check_trap("ts_ist_beyond_tss_limit", VEC_TS, SEL(GDT_TSS2), trap_fault_rip);
  check("ltr_back_to_main_tss", read_tr() == SEL_TSS && ((gdt_get(SEL_TSS >> 3) >> 40) & 0xF) == 0xB,
        "TR 0x%x", read_tr());
}

static void test_np(void) {
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %k0, %%ds" TRY_END ::"r"((u64)SEL(GDT_NP_DATA)) : "memory");
  check_trap("np_data_segment", VEC_NP, SEL(GDT_NP_DATA), trap_fault_rip);

  /* INT n through a not-present gate: error code = vector * 8 + 2 (IDT bit; SDM 6.13). */
  struct idt_gate gate = idt_get(0x41), absent = gate;
  absent.lo &= ~(1ull << 47);
  idt_put(0x41, absent);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "int $0x41" TRY_END ::: "memory");
  idt_put(0x41, gate);
  check_trap("np_idt_gate", VEC_NP, 0x41 * 8 + 2, trap_fault_rip);
}

static void test_ss(void) {
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %k0, %%ss" TRY_END ::"r"((u64)SEL(GDT_NP_DATA)) : "memory");
  check_trap("ss_not_present", VEC_SS, SEL(GDT_NP_DATA), trap_fault_rip);

  /* A stack reference (base RSP) to a non-canonical address: #SS(0), not #GP. */
  u64 v = 0;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movq (%%rsp,%1,1), %0" TRY_END
                   : "+r"(v)
                   : "r"(0x8000000000000000ull)
                   : "memory");
  check_trap("ss_non_canonical", VEC_SS, 0, trap_fault_rip);

  /* 64-bit mode allows a null SS at CPL 0 (SDM Vol. 2, MOV: "IF segment selector is NULL
     and (CPL = 3 or not 64-bit mode) THEN #GP(0)"); the stack keeps working. */
  u64 pushed = 0;
  u32 ss = 0xFFFF;
  trap_clear();
  __asm__ volatile("movl %k2, %%ss\n\t"
                   "pushq $0x5A\n\t"
                   "popq %0\n\t"
                   "movl %%ss, %1\n\t"
                   "movl %k3, %%ss\n\t"
                   : "=&r"(pushed), "=&r"(ss) /* early clobber: %3 is still needed */
                   : "r"(0ull), "r"((u64)SEL_KDATA)
                   : "memory");
  check("null_ss_cpl0_64bit", last_trap.count == 0 && ss == 0 && pushed == 0x5A,
        "%u exceptions, SS=0x%x", last_trap.count, ss);
}

/* ---- #GP ---- */

static void user_hlt(void) { __asm__ volatile(TRY_BEGIN "hlt" TRY_END ::: "memory"); }
static void user_mov_cr0(void) {
  u64 v = 0;
  __asm__ volatile(TRY_BEGIN "movq %%cr0, %0" TRY_END : "+r"(v) : : "memory");
}

static void try_read64(u64 addr) {
  u64 v = 0;
  /* The address goes in RSI: with RBP or RSP as base the reference would be to SS, and a
     non-canonical SS reference is #SS(0), not #GP(0) (SDM Vol. 2, MOV). */
  __asm__ volatile(TRY_BEGIN "movq (%1), %0" TRY_END : "+r"(v) : "S"(addr) : "memory");
}

static void test_gp(void) {
  /* Non-canonical addresses (bits 63:47 not all equal; SDM Vol. 1, 3.3.7.1): #GP(0). */
  trap_clear();
  try_read64(0x0000800000000000ull);
  check_trap("gp_non_canonical_low", VEC_GP, 0, trap_fault_rip);
  trap_clear();
  try_read64(0xFFFF7FFFFFFFFFF0ull);
  check_trap("gp_non_canonical_high", VEC_GP, 0, trap_fault_rip);

  /* A near jump to a non-canonical address faults on the JMP, RIP unchanged. */
  trap_clear();
  __asm__ volatile(TRY_BEGIN "jmp *%0" TRY_END ::"r"(0x0000800000000000ull) : "memory");
  check_trap("gp_jmp_non_canonical", VEC_GP, 0, trap_fault_rip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %k0, %%ds" TRY_END ::"r"((u64)GDT_ENTRIES * 8) : "memory");
  check_trap("gp_selector_beyond_gdt_limit", VEC_GP, GDT_ENTRIES * 8, trap_fault_rip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %k0, %%ds" TRY_END ::"r"((u64)SEL_TSS) : "memory");
  check_trap("gp_ds_system_descriptor", VEC_GP, SEL_TSS, trap_fault_rip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %k0, %%ss" TRY_END ::"r"((u64)SEL(GDT_RO_DATA)) : "memory");
  check_trap("gp_ss_read_only", VEC_GP, SEL(GDT_RO_DATA), trap_fault_rip);

  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %k0, %%ss" TRY_END ::"r"((u64)SEL_UDATA) : "memory");
  check_trap("gp_ss_rpl_dpl_mismatch", VEC_GP, SEL_UDATA & ~3, trap_fault_rip);

  static struct far_ptr to_data = {0, SEL_KDATA};
  trap_clear();
  __asm__ volatile(TRY_BEGIN "ljmpl *%0" TRY_END ::"m"(to_data) : "memory");
  check_trap("gp_far_jmp_to_data", VEC_GP, SEL_KDATA, trap_fault_rip);

  /* No task switches in IA-32e mode: a far CALL to a TSS, a task gate in the IDT and IRET
     with NT = 1 all raise #GP (SDM Vol. 3A, 7.7; Vol. 2, CALL, INT n and IRET). */
  memcpy(&avail_tss, &main_tss, sizeof avail_tss);
  gdt_set_system(GDT_AVAIL_TSS, (u64)&avail_tss, sizeof avail_tss - 1, DESC_TSS);
  static struct far_ptr to_tss = {0, SEL(GDT_AVAIL_TSS)};
  trap_clear();
  __asm__ volatile(TRY_BEGIN "lcalll *%0" TRY_END ::"m"(to_tss) : "memory");
  check_trap("gp_far_call_tss", VEC_GP, SEL(GDT_AVAIL_TSS), trap_fault_rip);

  idt_set(0x42, 0, SEL(GDT_AVAIL_TSS), GATE_TASK, 0);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "int $0x42" TRY_END ::: "memory");
  idt_set_default(0x42);
  check_trap("gp_task_gate_in_idt", VEC_GP, 0x42 * 8 + 2, trap_fault_rip);

  trap_clear();
  __asm__ volatile("pushfq\n\t"
                   "orq $0x4000, (%%rsp)\n\t" /* NT */
                   "popfq\n\t" TRY_BEGIN "iretq" TRY_END "pushfq\n\t"
                   "andq $~0x4000, (%%rsp)\n\t"
                   "popfq\n\t"
                   :
                   :
                   : "memory", "cc");
  check_trap("gp_iret_nt_long_mode", VEC_GP, 0, trap_fault_rip);

  /* Leaving long mode the wrong way (SDM Vol. 2, MOV CR and WRMSR; Vol. 3A, 10.8.5.4). If
     the processor did not fault it would really leave: skip= names keep these from running. */
  u64 cr0 = read_cr0(), cr4 = read_cr4();
  if (!not_run("gp_clear_cr0_pg_64bit")) {
    trap_clear();
    __asm__ volatile(TRY_BEGIN "movq %0, %%cr0" TRY_END ::"r"(cr0 & ~(u64)CR0_PG) : "memory");
    check_trap("gp_clear_cr0_pg_64bit", VEC_GP, 0, trap_fault_rip);
  }
  if (!not_run("gp_clear_cr4_pae_long_mode")) {
    trap_clear();
    __asm__ volatile(TRY_BEGIN "movq %0, %%cr4" TRY_END ::"r"(cr4 & ~(u64)CR4_PAE) : "memory");
    check_trap("gp_clear_cr4_pae_long_mode", VEC_GP, 0, trap_fault_rip);
  }
  u64 efer = rdmsr(MSR_EFER) & ~(u64)EFER_LME;
  if (!not_run("gp_efer_lme_change_paging_on")) {
    trap_clear();
    __asm__ volatile(TRY_BEGIN "wrmsr" TRY_END ::"c"(MSR_EFER), "a"((u32)efer), "d"((u32)(efer >> 32))
                     : "memory");
    check_trap("gp_efer_lme_change_paging_on", VEC_GP, 0, trap_fault_rip);
    if (!(rdmsr(MSR_EFER) & EFER_LME)) wrmsr(MSR_EFER, efer | EFER_LME); /* it was allowed */
  }
  trap_clear();
  __asm__ volatile(TRY_BEGIN "wrmsr" TRY_END ::"c"(MSR_FS_BASE), "a"(0), "d"(0x8000) : "memory");
  check_trap("gp_wrmsr_non_canonical_fs_base", VEC_GP, 0, trap_fault_rip);

  trap_clear();
  run_user(user_hlt, EFLAGS_FIXED);
  check_trap("gp_cpl3_hlt", VEC_GP, 0, trap_fault_rip);
  trap_clear();
  run_user(user_mov_cr0, EFLAGS_FIXED);
  check_trap("gp_cpl3_mov_from_cr0", VEC_GP, 0, trap_fault_rip);
}

/* ---- segments in 64-bit mode: DS/ES/SS bases and limits are ignored, FS/GS bases used ---- */

static void test_segments_64bit(void) {
  u64 v = 0;
  trap_clear();
  __asm__ volatile("movl %k2, %%ds\n\t"
                   "movq (%1), %0\n\t" /* far beyond the limit, and base not added */
                   "movl %k3, %%ds\n\t"
                   : "=&r"(v)
                   : "r"(&target_value), "r"((u64)SEL(GDT_SMALL_DATA)), "r"((u64)SEL_KDATA)
                   : "memory");
  check("ds_base_limit_ignored", last_trap.count == 0 && v == target_value, "%u exceptions, read 0x%llx",
        last_trap.count, v);

  wrmsr(MSR_FS_BASE, (u64)&target_value - 0x100);
  v = 0;
  __asm__ volatile("movq %%fs:0x100, %0" : "=r"(v) : : "memory");
  check("fs_base_from_msr", v == target_value, "read 0x%llx", v);
  wrmsr(MSR_GS_BASE, (u64)&target_value + 0x80);
  v = 0;
  __asm__ volatile("movq %%gs:-0x80, %0" : "=r"(v) : : "memory");
  check("gs_base_from_msr", v == target_value, "read 0x%llx", v);
  /* Loading a selector into FS loads the base from the descriptor (0 here). */
  __asm__ volatile("movl %k0, %%fs" ::"r"((u64)SEL_KDATA));
  check("fs_load_sets_base", rdmsr(MSR_FS_BASE) == 0, "FS base 0x%llx", rdmsr(MSR_FS_BASE));
  __asm__ volatile("movl %k0, %%fs\n\tmovl %k0, %%gs" ::"r"(0ull));
  wrmsr(MSR_FS_BASE, 0);
  wrmsr(MSR_GS_BASE, 0);
}

/* ---- #PF (SDM Vol. 3A, 4.7) with 64-bit linear addresses in CR2 ---- */

static u8 pf_page[4096] __attribute__((aligned(4096)));

static void user_read_supervisor(void) {
  u64 v;
  __asm__ volatile(TRY_BEGIN "movq (%1), %0" TRY_END : "=r"(v) : "r"(pf_page + 8) : "memory");
}
static void user_write_supervisor(void) {
  __asm__ volatile(TRY_BEGIN "movq %0, (%1)" TRY_END ::"r"(1ull), "r"(pf_page + 16) : "memory");
}

static int check_pf(const char *name, u32 error, u64 cr2) {
  int ok = check_trap(name, VEC_PF, error, trap_fault_rip);
  if (ok && last_trap.cr2 != cr2) return check(name, 0, "CR2=0x%llx, expected 0x%llx", last_trap.cr2, cr2);
  return ok;
}

static void test_pf(void) {
  paging_init();
  paging_enable();
  u64 page = (u64)pf_page;
  volatile pte_t *pte = pte_get(page);

  *pte &= ~PTE_P;
  invlpg(page);
  trap_clear();
  try_read64(page + 8);
  check_pf("pf_not_present_read", 0, page + 8);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movq %0, (%1)" TRY_END ::"r"(1ull), "r"(page + 0x10) : "memory");
  check_pf("pf_not_present_write", PFEC_W, page + 0x10);

  /* The top of the upper half (PML4 entry 511, not present) and the last canonical address of
     the lower half: #PF, not #GP, with the whole 64-bit address in CR2. */
  trap_clear();
  try_read64(0xFFFFFFFFFFFFF000ull);
  check_pf("pf_upper_half_cr2", 0, 0xFFFFFFFFFFFFF000ull);
  trap_clear();
  try_read64(0x00007FFFFFFFFFF8ull);
  check_pf("pf_lower_half_top_cr2", 0, 0x00007FFFFFFFFFF8ull);

  *pte = page | PTE_P | PTE_U; /* read-only */
  invlpg(page);
  write_cr0(read_cr0() | CR0_WP);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movq %0, (%1)" TRY_END ::"r"(1ull), "r"(page + 0x20) : "memory");
  check_pf("pf_supervisor_write_read_only_wp1", PFEC_P | PFEC_W, page + 0x20);
  write_cr0(read_cr0() & ~(u64)CR0_WP);

  *pte = page | PTE_P | PTE_W; /* supervisor only */
  invlpg(page);
  trap_clear();
  run_user(user_read_supervisor, EFLAGS_FIXED);
  check_pf("pf_user_read_supervisor", PFEC_P | PFEC_U, page + 8);
  trap_clear();
  run_user(user_write_supervisor, EFLAGS_FIXED);
  check_pf("pf_user_write_supervisor", PFEC_P | PFEC_W | PFEC_U, page + 16);

  *pte = page | PTE_P | PTE_W | PTE_U;
  invlpg(page);
  paging_disable();
}

/* ---- #AC (SDM Vol. 3A, 6.15 "Interrupt 17"): CPL 3, CR0.AM = 1, RFLAGS.AC = 1 ---- */

static void user_misaligned_load(void) {
  u64 v;
  __asm__ volatile(TRY_BEGIN "movq (%1), %0" TRY_END : "=r"(v) : "r"(scratch + 1) : "memory");
}

static void test_ac(void) {
  u64 cr0 = read_cr0();
  write_cr0(cr0 | CR0_AM);
  trap_clear();
  run_user(user_misaligned_load, EFLAGS_FIXED); /* AC = 0: no check */
  check("ac_flag_clear_no_fault", last_trap.count == 0, "%u exceptions, vector %u", last_trap.count,
        last_trap.vector);
  u64 v;
  trap_clear();
  write_eflags(read_eflags() | EFLAGS_AC); /* CPL 0: no check */
  __asm__ volatile(TRY_BEGIN "movq (%1), %0" TRY_END : "=r"(v) : "r"(scratch + 1) : "memory");
  write_eflags(read_eflags() & ~(u64)EFLAGS_AC);
  check("ac_cpl0_no_fault", last_trap.count == 0, "%u exceptions, vector %u", last_trap.count,
        last_trap.vector);
  trap_clear();
  run_user(user_misaligned_load, EFLAGS_FIXED | EFLAGS_AC);
  check_trap("ac_misaligned_cpl3", VEC_AC, 0, trap_fault_rip);
  write_cr0(cr0);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  printf("exceptions: 64-bit mode vectors, error codes and saved RIPs\n");
  gdt_set(GDT_NP_DATA, 0, 0xFFFFF, DESC_DATA & ~DESC_PRESENT, DESC_FLAGS_32_4K);
  gdt_set(GDT_SMALL_DATA, (u32)(u64)scratch, 0xFFF, DESC_DATA, DESC_FLAGS_32);
  gdt_set(GDT_RO_DATA, 0, 0xFFFFF, DESC_DATA_RO, DESC_FLAGS_32_4K);

  test_long_mode();
  test_de();
  test_db();
  test_bp_ud();
  test_compat_mode();
  test_nm();
  test_frame_and_ist();
  test_df();
  test_ts();
  test_np();
  test_ss();
  test_gp();
  test_segments_64bit();
  test_pf();
  test_ac();
  return test_finish();
}
