/*
 * usermode (amd64): ring 3 in 64-bit and compatibility mode, entered by IRETQ; interrupts
 * from ring 3 (TSS RSP0 or an IST stack, a null SS, the 64-bit frame); SYSCALL and SYSRET
 * with IA32_STAR, IA32_LSTAR, IA32_FMASK and EFER.SCE, SWAPGS with IA32_KERNEL_GS_BASE,
 * SYSRET to compatibility mode; FS and GS bases through the MSRs (and WRFSBASE and friends
 * when CPUID advertises them); INT n and gate DPLs; a 64-bit call gate; IOPL and the I/O
 * permission bitmap; page-level user/supervisor faults; UMIP when advertised (SDM Vol. 3A,
 * 5.8.8, 6.14 and 7.7; Vol. 2, SYSCALL, SYSRET, SWAPGS, IRET). Ring-3 code only records
 * what it sees; ring 0 checks and prints it afterwards.
 */
#include "kernel.h"
#include "paging64.h"

enum { GDT_CALL_GATE = GDT_FIRST_FREE }; /* 16 bytes: entries 9 and 10 */
#define SEL_CALL_GATE ((GDT_CALL_GATE << 3) | 3)
#define SYS_ECHO 1
#define SYS_TO_COMPAT 2

static u8 super_page[4096] __attribute__((aligned(4096)));   /* U/S = 0 */
static u8 readonly_page[4096] __attribute__((aligned(4096))); /* U/S = 1, R/W = 0 */
static u8 absent_page[4096] __attribute__((aligned(4096)));   /* P = 0 */
static volatile u64 fs_area[2] = {0xF5F5F5F5F5F5F5F5ull, 0}, gs_area[2] = {0x6565656565656565ull, 0};

/* What ring-3 code observed (written at CPL 3: the identity map is user-accessible). */
volatile u64 u_cs, u_ss, u_rflags, u_ret, u_rsp_before, u_rsp_after, u_expect_rip, u_rcx, u_r11;
volatile u64 u_value, u_value2, u_compat_cs;
/* What the system call handlers observed. */
volatile u64 k_cs, k_ss, k_rsp, k_rflags, k_frame_cs, k_frame_ss, k_frame_rsp, k_frame_rip;
volatile u64 k_gs_base, k_kernel_gs_base, k_frame_r11;

static u64 rsp_now(void) {
  u64 v;
  __asm__ volatile("movq %%rsp, %0" : "=r"(v));
  return v;
}

static int in_stack(u64 v, const u8 *lo, u64 size) { return v >= (u64)lo && v < (u64)lo + size; }

enum { EAX, EBX, ECX, EDX };
static u32 cpuid_reg(u32 leaf, int reg) {
  u32 r[4];
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
  return r[reg];
}
static int has_leaf7_feature(int reg, int bit) {
  return cpuid_reg(0, EAX) >= 7 && ((cpuid_reg(7, reg) >> bit) & 1);
}

/* ---- entering ring 3 by IRETQ ---- */

static void u_identify(void) {
  u_cs = read_cs();
  u_ss = read_ss();
  u_rflags = read_eflags();
}

static void test_enter(void) {
  run_user(u_identify, EFLAGS_FIXED);
  check("iretq_to_ring3", u_cs == SEL_UCODE && u_ss == SEL_UDATA, "CS=0x%llx SS=0x%llx", u_cs, u_ss);
  check("ring3_rflags", (u_rflags & (EFLAGS_IOPL3 | EFLAGS_IF)) == 0, "RFLAGS=0x%llx", u_rflags);
  check("back_in_ring0", read_cs() == SEL_KCODE, "CS=0x%x", read_cs());
}

/* ---- INT n from ring 3: RSP0 or IST, a null SS, the saved SS:RSP (SDM Vol. 3A, 6.14.4) ---- */

static u64 echo_syscall(struct trapframe *f) {
  k_cs = read_cs();
  k_ss = read_ss();
  k_rsp = rsp_now();
  k_rflags = read_eflags();
  k_frame_cs = f->cs;
  k_frame_ss = f->ss;
  k_frame_rsp = f->rsp;
  k_frame_rip = f->rip;
  return f->rbx + 1;
}

static int echo_handler(struct trapframe *f) {
  f->rax = echo_syscall(f);
  return 1;
}

void u_int80(void), u_int82(void), u_int83(void);
/* Ring 3: record RSP and the return address, make the system call, record the result. */
#define USER_INT(name, vector)                     \
  __asm__(".text\n" #name ":\n\t"                  \
          "movq %rsp, u_rsp_before\n\t"            \
          "movq $1f, u_expect_rip\n\t"             \
          "movl $1, %eax\n\t" /* SYS_ECHO */       \
          "movl $41, %ebx\n\t"                     \
          "movq $1f, trap_resume\n\t"              \
          "int $" #vector "\n"                     \
          "1:\n\t"                                 \
          "movq $0, trap_resume\n\t"               \
          "movq %rax, u_ret\n\t"                   \
          "ret\n");
USER_INT(u_int80, 0x80)
USER_INT(u_int82, 0x82)
USER_INT(u_int83, 0x83)

static void check_int_from_ring3(const char *name, int want_if, const u8 *stack, u64 size) {
  check(name,
        u_ret == 42 && k_cs == SEL_KCODE && in_stack(k_rsp, stack, size) && k_frame_cs == SEL_UCODE &&
            k_frame_ss == SEL_UDATA && k_frame_rsp == u_rsp_before && k_frame_rip == u_expect_rip,
        "ret %llu; handler CS=0x%llx RSP=0x%llx; saved CS=0x%llx SS=0x%llx RSP=0x%llx RIP=0x%llx", u_ret, k_cs,
        k_rsp, k_frame_cs, k_frame_ss, k_frame_rsp, k_frame_rip);
  /* A trap gate leaves IF alone; an interrupt gate clears it (SDM Vol. 3A, 6.12.1.3). */
  check(want_if ? "trap_gate_keeps_if" : "interrupt_gate_clears_if", ((k_rflags & EFLAGS_IF) != 0) == want_if,
        "handler RFLAGS=0x%llx", k_rflags);
}

static void test_interrupts(void) {
  syscall_hook = echo_syscall;
  run_user(u_int80, EFLAGS_FIXED | EFLAGS_IF);
  check_int_from_ring3("int80_trap_gate_rsp0", 1, kernel_intr_stack, kernel_intr_stack_top - kernel_intr_stack);
  /* The privilege change loads SS with a null selector (RPL = new CPL): 0 here. */
  check("int_from_ring3_null_ss", k_ss == 0, "handler SS=0x%llx", k_ss);

  idt_set(0x82, isr_stub(0x82), SEL_KCODE, GATE_INT | DESC_DPL3, 0);
  trap_set_handler(0x82, echo_handler);
  run_user(u_int82, EFLAGS_FIXED | EFLAGS_IF);
  check_int_from_ring3("int82_interrupt_gate_rsp0", 0, kernel_intr_stack,
                       kernel_intr_stack_top - kernel_intr_stack);

  /* With IST = 3 the gate's IST stack replaces RSP0. */
  idt_set(0x83, isr_stub(0x83), SEL_KCODE, GATE_INT | DESC_DPL3, 3);
  trap_set_handler(0x83, echo_handler);
  run_user(u_int83, EFLAGS_FIXED);
  check("int83_ist_from_ring3", u_ret == 42 && in_stack(k_rsp, ist_stacks[2], IST_STACK_SIZE) &&
                                    k_frame_rsp == u_rsp_before && k_frame_ss == SEL_UDATA,
        "ret %llu handler RSP=0x%llx (IST3 top 0x%llx) saved SS:RSP 0x%llx:0x%llx", u_ret, k_rsp, IST_TOP(3),
        k_frame_ss, k_frame_rsp);
}

/* ---- gate DPLs, INT3, and compatibility mode at CPL 3 ---- */

#define USER_FAULT_FN(fn, insn, ...) \
  static void fn(void) { __asm__ volatile(TRY_BEGIN insn TRY_END __VA_ARGS__); }

USER_FAULT_FN(u_int81, "int $0x81", ::: "memory")
USER_FAULT_FN(u_int3, "int3", ::: "memory")

static volatile u64 compat_trap_cs, compat_trap_ss, compat_trap_rip, compat_into_next;
static int compat_of_handler(struct trapframe *f) {
  compat_trap_cs = f->cs;
  compat_trap_ss = f->ss;
  compat_trap_rip = f->rip;
  return 1; /* a trap: IRETQ resumes the 32-bit code after INTO */
}

/* 32-bit code at CPL 3: INTO is valid in compatibility mode; then SYS_EXIT by INT 0x80. */
void u_compat_into(void);
__asm__(".text\n"
        ".code32\n"
        "u_compat_into:\n\t"
        "movw %cs, u_compat_cs\n\t"
        "movl $0x7FFFFFFF, %eax\n\t"
        "addl $1, %eax\n\t" /* OF = 1 */
        "movl $1f, compat_into_next\n\t"
        "into\n"
        "1:\n\t"
        "xorl %eax, %eax\n\t" /* SYS_EXIT */
        "int $0x80\n\t"
        "ud2\n"
        ".code64\n");

static void test_gates(void) {
  trap_clear();
  run_user(u_int81, EFLAGS_FIXED);
  check_trap("int_dpl0_gate_from_ring3", VEC_GP, 0x81 * 8 + 2, trap_fault_rip);

  trap_clear();
  run_user(u_int3, EFLAGS_FIXED);
  check_trap("int3_dpl3_gate_from_ring3", VEC_BP, 0, trap_next_rip);
  check("int3_saved_cs_ss", last_trap.cs == SEL_UCODE && last_trap.ss == SEL_UDATA, "CS=0x%llx SS=0x%llx",
        last_trap.cs, last_trap.ss);

  trap_set_handler(VEC_OF, compat_of_handler);
  trap_clear();
  run_user_compat((u64)u_compat_into, EFLAGS_FIXED);
  trap_set_handler(VEC_OF, NULL);
  check("compat_mode_ring3", u_compat_cs == SEL_UCODE32, "CS=0x%llx", u_compat_cs);
  check("compat_into_from_ring3",
        last_trap.count == 1 && last_trap.vector == VEC_OF && compat_trap_cs == SEL_UCODE32 &&
            compat_trap_ss == SEL_UDATA && compat_trap_rip == compat_into_next,
        "%u exceptions, vector %u, saved CS 0x%llx SS 0x%llx RIP 0x%llx (expected 0x%llx)", last_trap.count,
        last_trap.vector, compat_trap_cs, compat_trap_ss, compat_trap_rip, compat_into_next);
}

/* ---- SYSCALL and SYSRET, SWAPGS ---- */

void u_syscall(void), u_syscall_to_compat(void), u_syscall_no_sce(void), u_sysret_cpl3(void);
void u_swapgs_cpl3(void);
/*
 * u_syscall: with DF = 1 and AC = 1 (so IA32_FMASK has something to clear and SYSRET
 * something to restore), SYSCALL SYS_ECHO(41); then record RAX, RCX, R11, RFLAGS, RSP, CS,
 * SS and the qword at GS:0 (GS.base must be the user's again after the handler's SWAPGS).
 */
__asm__(".text\n"
        "u_syscall:\n\t"
        "movq %rsp, u_rsp_before\n\t"
        "movq $1f, u_expect_rip\n\t"
        "std\n\t"
        "pushfq\n\t"
        "orq $0x40000, (%rsp)\n\t" /* AC */
        "popfq\n\t"
        "movl $1, %eax\n\t" /* SYS_ECHO */
        "movl $41, %edi\n\t"
        "movq $1f, trap_resume\n\t" /* a fault is recorded and resumes at 1 */
        "syscall\n"
        "1:\n\t"
        "movq $0, trap_resume\n\t"
        "pushfq\n\t"
        "popq u_rflags\n\t"
        "cld\n\t"
        "pushfq\n\t"
        "andq $~0x40000, (%rsp)\n\t"
        "popfq\n\t"
        "movq %rax, u_ret\n\t"
        "movq %rcx, u_rcx\n\t"
        "movq %r11, u_r11\n\t"
        "movq %rsp, u_rsp_after\n\t"
        "movw %cs, u_cs\n\t"
        "movw %ss, u_ss\n\t"
        "movq %gs:0, %rax\n\t"
        "movq %rax, u_value\n\t"
        "ret\n"
        /* SYS_TO_COMPAT: the handler returns with SYSRETL to u_compat_landing. */
        "u_syscall_to_compat:\n\t"
        "movl $2, %eax\n\t"
        "movq $1f, trap_resume\n\t"
        "syscall\n"
        "1:\n\t" /* only after a fault: SYSRETL goes to u_compat_landing */
        "movq $0, trap_resume\n\t"
        "ret\n"
        ".code32\n"
        "u_compat_landing:\n\t"
        "movw %cs, u_compat_cs\n\t"
        "xorl %eax, %eax\n\t" /* SYS_EXIT */
        "int $0x80\n\t"
        "ud2\n"
        ".code64\n"
        "u_syscall_no_sce:\n\t"
        "movq $2f, trap_resume\n\t"
        "movq $1f, trap_fault_rip\n"
        "1:\n\t"
        "syscall\n"
        "2:\n\t"
        "ret\n"
        "u_sysret_cpl3:\n\t"
        "movq $2f, trap_resume\n\t"
        "movq $1f, trap_fault_rip\n\t"
        "movq $2f, %rcx\n"
        "1:\n\t"
        "sysretq\n"
        "2:\n\t"
        "ret\n"
        "u_swapgs_cpl3:\n\t"
        "movq $2f, trap_resume\n\t"
        "movq $1f, trap_fault_rip\n"
        "1:\n\t"
        "swapgs\n"
        "2:\n\t"
        "ret\n");
void u_compat_landing(void);

static void syscall_echo(struct syscall_frame *f) {
  k_cs = read_cs();
  k_ss = read_ss();
  k_rsp = rsp_now();
  k_rflags = read_eflags();
  k_frame_rip = f->rip;
  k_frame_r11 = f->rflags;
  k_frame_rsp = f->rsp;
  k_gs_base = rdmsr(MSR_GS_BASE);
  k_kernel_gs_base = rdmsr(MSR_KERNEL_GS_BASE);
  if (f->rax == SYS_TO_COMPAT) {
    f->rip = (u64)u_compat_landing;
    syscall_return_compat = 1;
    return;
  }
  f->rax = f->rdi + 1;
}

#define FMASK (EFLAGS_TF | EFLAGS_IF | EFLAGS_DF | EFLAGS_AC | EFLAGS_NT)

static void test_syscall(void) {
  /* EFER.SCE = 0: SYSCALL is #UD (SDM Vol. 2, SYSCALL). */
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(u64)EFER_SCE);
  trap_clear();
  run_user(u_syscall_no_sce, EFLAGS_FIXED);
  check_trap("syscall_without_sce_ud", VEC_UD, 0, trap_fault_rip);

  syscall_setup(FMASK);
  syscall_hook64 = syscall_echo;
  wrmsr(MSR_GS_BASE, (u64)gs_area); /* the user's GS.base; SWAPGS swaps in &percpu */
  trap_clear();
  run_user(u_syscall, EFLAGS_FIXED | EFLAGS_IF);
  u64 user_flags = EFLAGS_IF | EFLAGS_DF | EFLAGS_AC;
  check("syscall_round_trip", last_trap.count == 0 && u_ret == 42, "%u exceptions, RAX=%llu", last_trap.count,
        u_ret);
  check("syscall_star_selectors", k_cs == SEL_KCODE && k_ss == SEL_KDATA, "handler CS=0x%llx SS=0x%llx", k_cs,
        k_ss);
  check("syscall_rcx_r11", k_frame_rip == u_expect_rip && (k_frame_r11 & user_flags) == user_flags,
        "RCX=0x%llx (expected 0x%llx), R11=0x%llx", k_frame_rip, u_expect_rip, k_frame_r11);
  check("syscall_fmask", (k_rflags & FMASK) == 0, "handler RFLAGS=0x%llx", k_rflags);
  check("syscall_no_stack_switch", k_frame_rsp == u_rsp_before && in_stack(k_rsp, syscall_stack, 8192),
        "RSP at SYSCALL 0x%llx (user 0x%llx), handler RSP 0x%llx", k_frame_rsp, u_rsp_before, k_rsp);
  check("swapgs_kernel_gs_base", k_gs_base == (u64)&percpu && k_kernel_gs_base == (u64)gs_area,
        "GS.base 0x%llx (percpu 0x%llx), KERNEL_GS_BASE 0x%llx", k_gs_base, (u64)&percpu, k_kernel_gs_base);
  check("sysretq_selectors", u_cs == SEL_UCODE && u_ss == SEL_UDATA, "CS=0x%llx SS=0x%llx", u_cs, u_ss);
  check("sysretq_rflags_from_r11", (u_rflags & user_flags) == user_flags && u_r11 == k_frame_r11 &&
                                       u_rcx == u_expect_rip && u_rsp_after == u_rsp_before,
        "RFLAGS=0x%llx R11=0x%llx RCX=0x%llx RSP=0x%llx", u_rflags, u_r11, u_rcx, u_rsp_after);
  check("swapgs_restores_user_gs", u_value == gs_area[0] && rdmsr(MSR_GS_BASE) == (u64)gs_area &&
                                       rdmsr(MSR_KERNEL_GS_BASE) == (u64)&percpu,
        "GS:0 = 0x%llx, GS.base 0x%llx, KERNEL_GS_BASE 0x%llx", u_value, rdmsr(MSR_GS_BASE),
        rdmsr(MSR_KERNEL_GS_BASE));

  /* SYSRET with operand size 32 returns to compatibility mode: CS = STAR[63:48] | 3. */
  u_compat_cs = 0;
  trap_clear();
  run_user(u_syscall_to_compat, EFLAGS_FIXED);
  trap_resume = 0; /* set before the SYSCALL; SYSRETL did not come back to clear it */
  check("sysretl_to_compat_mode", last_trap.count == 0 && u_compat_cs == SEL_UCODE32, "%u exceptions, CS=0x%llx",
        last_trap.count, u_compat_cs);

  trap_clear();
  run_user(u_sysret_cpl3, EFLAGS_FIXED);
  check_trap("sysret_cpl3_gp", VEC_GP, 0, trap_fault_rip);
  trap_clear();
  run_user(u_swapgs_cpl3, EFLAGS_FIXED);
  check_trap("swapgs_cpl3_gp", VEC_GP, 0, trap_fault_rip);

  /* SWAPGS at CPL 0 exchanges GS.base and IA32_KERNEL_GS_BASE. */
  wrmsr(MSR_GS_BASE, 0x1111000);
  wrmsr(MSR_KERNEL_GS_BASE, 0x2222000);
  __asm__ volatile("swapgs" ::: "memory");
  u64 gs = rdmsr(MSR_GS_BASE), kgs = rdmsr(MSR_KERNEL_GS_BASE);
  __asm__ volatile("swapgs" ::: "memory");
  check("swapgs_exchanges", gs == 0x2222000 && kgs == 0x1111000, "GS.base 0x%llx KERNEL_GS_BASE 0x%llx", gs, kgs);
  wrmsr(MSR_GS_BASE, 0);
  wrmsr(MSR_KERNEL_GS_BASE, 0);
}

/* ---- FS and GS bases at CPL 3: the MSRs, and WRFSBASE/RDFSBASE if CPUID says so ---- */

static void u_read_fs_gs(void) {
  u64 a, b;
  __asm__ volatile("movq %%fs:0, %0\n\tmovq %%gs:0, %1" : "=r"(a), "=r"(b) : : "memory");
  u_value = a;
  u_value2 = b;
}

static void u_fsgsbase(void) {
  u64 got_fs, got_gs, through;
  __asm__ volatile("wrfsbase %3\n\t"
                   "wrgsbase %4\n\t"
                   "rdfsbase %0\n\t"
                   "rdgsbase %1\n\t"
                   "movq %%fs:0, %2\n\t"
                   : "=&r"(got_fs), "=&r"(got_gs), "=&r"(through)
                   : "r"(&gs_area[0]), "r"(&fs_area[0])
                   : "memory");
  u_value = through;
  u_value2 = got_fs == (u64)&gs_area[0] && got_gs == (u64)&fs_area[0];
}
USER_FAULT_FN(u_rdfsbase, "rdfsbase %%rax", ::: "rax", "memory")

static void test_fs_gs_base(void) {
  wrmsr(MSR_FS_BASE, (u64)fs_area);
  wrmsr(MSR_GS_BASE, (u64)gs_area);
  run_user(u_read_fs_gs, EFLAGS_FIXED);
  check("fs_gs_base_msrs_ring3", u_value == fs_area[0] && u_value2 == gs_area[0], "FS:0 0x%llx GS:0 0x%llx", u_value,
        u_value2);

  if (has_leaf7_feature(EBX, 0)) {
    trap_clear();
    run_user(u_rdfsbase, EFLAGS_FIXED); /* CR4.FSGSBASE = 0 */
    check_trap("rdfsbase_without_cr4_ud", VEC_UD, 0, trap_fault_rip);
    write_cr4(read_cr4() | CR4_FSGSBASE);
    run_user(u_fsgsbase, EFLAGS_FIXED);
    check("wrfsbase_rdfsbase_ring3",
          u_value == gs_area[0] && u_value2 == 1 && rdmsr(MSR_FS_BASE) == (u64)gs_area &&
              rdmsr(MSR_GS_BASE) == (u64)fs_area,
          "FS:0 0x%llx, read back %llu, FS.base MSR 0x%llx", u_value, u_value2, rdmsr(MSR_FS_BASE));
    write_cr4(read_cr4() & ~(u64)CR4_FSGSBASE);
  } else {
    skip_check("wrfsbase_rdfsbase_ring3", "CPUID.(EAX=7,ECX=0):EBX[0] = 0: no FSGSBASE");
  }
  wrmsr(MSR_FS_BASE, 0);
  wrmsr(MSR_GS_BASE, 0);
}

/* ---- a 64-bit call gate from ring 3 to ring 0 (SDM Vol. 3A, 5.8.3.1 and 5.8.5) ---- */

volatile u64 cg_frame[4], cg_cs, cg_ss, cg_rsp, cg_user_cs;
void callgate_target(void), u_call_gate(void);

/* Ring 0: the new stack (RSP0, SS null) holds RIP, CS, then the caller's RSP and SS, each 8
   bytes; no parameters are copied in IA-32e mode. LRETQ goes back to CPL 3. */
__asm__(".text\n"
        "callgate_target:\n\t"
        "movq %rsp, cg_rsp\n\t"
        "movw %cs, cg_cs\n\t"
        "movw %ss, cg_ss\n\t"
        "movq 0(%rsp), %rax\n\tmovq %rax, cg_frame\n\t"
        "movq 8(%rsp), %rax\n\tmovq %rax, cg_frame+8\n\t"
        "movq 16(%rsp), %rax\n\tmovq %rax, cg_frame+16\n\t"
        "movq 24(%rsp), %rax\n\tmovq %rax, cg_frame+24\n\t"
        "movl $0x2222, %eax\n\t"
        "lretq\n"
        "u_call_gate:\n\t"
        "movq %rsp, u_rsp_before\n\t"
        "movq $1f, u_expect_rip\n\t"
        "movq $1f, trap_resume\n\t" /* a fault is recorded and resumes at 1 */
        "lcall *callgate_ptr\n"
        "1:\n\t"
        "movq $0, trap_resume\n\t"
        "movq %rax, u_ret\n\t"
        "movq %rsp, u_rsp_after\n\t"
        "movw %cs, cg_user_cs\n\t"
        "ret\n"
        ".data\n"
        "callgate_ptr:\n\t"
        ".long 0\n\t"  /* the offset is ignored for a call gate */
        ".word 0x4B\n" /* SEL_CALL_GATE */
        ".text\n");

static void test_call_gate(void) {
  _Static_assert(SEL_CALL_GATE == 0x4B, "callgate_ptr holds this selector");
  gdt_set_call_gate(GDT_CALL_GATE, SEL_KCODE, (u64)callgate_target, DESC_CALL_GATE | DESC_DPL3);
  trap_clear();
  run_user(u_call_gate, EFLAGS_FIXED);
  check("call_gate_to_ring0", last_trap.count == 0 && cg_cs == SEL_KCODE && cg_ss == 0 &&
                                  in_stack(cg_rsp, kernel_intr_stack, kernel_intr_stack_top - kernel_intr_stack),
        "%u exceptions; target CS=0x%llx SS=0x%llx RSP=0x%llx", last_trap.count, cg_cs, cg_ss, cg_rsp);
  check("call_gate_frame",
        cg_frame[0] == u_expect_rip && (cg_frame[1] & 0xFFFF) == SEL_UCODE && cg_frame[2] == u_rsp_before &&
            (cg_frame[3] & 0xFFFF) == SEL_UDATA,
        "RIP=0x%llx CS=0x%llx RSP=0x%llx SS=0x%llx", cg_frame[0], cg_frame[1] & 0xFFFF, cg_frame[2],
        cg_frame[3] & 0xFFFF);
  check("call_gate_lretq_to_ring3", u_ret == 0x2222 && u_rsp_after == u_rsp_before && cg_user_cs == SEL_UCODE,
        "RAX=0x%llx RSP 0x%llx -> 0x%llx CS=0x%llx", u_ret, u_rsp_before, u_rsp_after, cg_user_cs);
}

/* ---- IOPL and the I/O permission bitmap in the 64-bit TSS (SDM Vol. 1, 19.5) ---- */

USER_FAULT_FN(u_cli, "cli", ::: "memory")
USER_FAULT_FN(u_hlt, "hlt", ::: "memory")
USER_FAULT_FN(u_in_lsr, "inb %%dx, %%al", ::"d"(0x3FD) : "rax", "memory")
USER_FAULT_FN(u_in_msr, "inb %%dx, %%al", ::"d"(0x3FE) : "rax", "memory")

static void expect_gp(const char *name, void (*fn)(void), u64 rflags) {
  trap_clear();
  run_user(fn, rflags);
  check_trap(name, VEC_GP, 0, trap_fault_rip);
}

static void expect_no_fault(const char *name, void (*fn)(void), u64 rflags) {
  trap_clear();
  run_user(fn, rflags);
  check(name, last_trap.count == 0, "%u exceptions, vector %u error 0x%x", last_trap.count, last_trap.vector,
        last_trap.error);
}

static void test_io(void) {
  const u64 iopl0 = EFLAGS_FIXED, iopl3 = EFLAGS_FIXED | EFLAGS_IOPL3;
  expect_gp("cli_cpl3_iopl0", u_cli, iopl0);
  expect_gp("hlt_cpl3", u_hlt, iopl3);
  expect_gp("in_cpl3_iopl0_bitmap_denies", u_in_lsr, iopl0);
  expect_no_fault("in_cpl3_iopl3", u_in_lsr, iopl3);
  io_permit(0x3FD, 1);
  expect_no_fault("io_bitmap_permits_in", u_in_lsr, iopl0);
  expect_gp("io_bitmap_denies_port", u_in_msr, iopl0);
  io_permit(0x3FD, 0);
}

/* ---- page-level user/supervisor protection (SDM Vol. 3A, 4.6) ---- */

USER_FAULT_FN(u_read_super, "movq (%0), %%rax", ::"r"(super_page + 0x10) : "rax", "memory")
USER_FAULT_FN(u_write_readonly, "movq %%rax, (%0)", ::"r"(readonly_page + 0x30) : "memory")
USER_FAULT_FN(u_read_absent, "movq (%0), %%rax", ::"r"(absent_page + 0x40) : "rax", "memory")

static void expect_pf(const char *name, void (*fn)(void), u32 error, u64 cr2) {
  trap_clear();
  run_user(fn, EFLAGS_FIXED);
  if (check_trap(name, VEC_PF, error, trap_fault_rip) && last_trap.cr2 != cr2)
    check(name, 0, "CR2=0x%llx, expected 0x%llx", last_trap.cr2, cr2);
}

static void test_paging_protection(void) {
  paging_init();
  paging_enable();
  *pte_get((u64)super_page) = (u64)super_page | PTE_P | PTE_W;
  *pte_get((u64)readonly_page) = (u64)readonly_page | PTE_P | PTE_U;
  *pte_get((u64)absent_page) = (u64)absent_page | PTE_W | PTE_U;
  write_cr3(read_cr3());
  expect_pf("pf_user_read_supervisor_page", u_read_super, PFEC_P | PFEC_U, (u64)super_page + 0x10);
  expect_pf("pf_user_write_read_only_page", u_write_readonly, PFEC_P | PFEC_W | PFEC_U, (u64)readonly_page + 0x30);
  expect_pf("pf_user_read_not_present", u_read_absent, PFEC_U, (u64)absent_page + 0x40);
  paging_disable();
}

/* ---- UMIP (SDM Vol. 3A, 2.5): SGDT, SIDT, SLDT, SMSW and STR at CPL > 0 ---- */

static u8 table_buf[16];
USER_FAULT_FN(u_sgdt, "sgdt %0", : "=m"(table_buf) : : "memory")
USER_FAULT_FN(u_smsw, "smsw %%ax", ::: "rax", "memory")
USER_FAULT_FN(u_str, "str %%ax", ::: "rax", "memory")

static void test_umip(void) {
  /* Without CR4.UMIP these are allowed at CPL 3. */
  expect_no_fault("sgdt_cpl3_without_umip", u_sgdt, EFLAGS_FIXED);
  if (!has_leaf7_feature(ECX, 2)) {
    skip_check("umip_sgdt_cpl3_gp", "CPUID.(EAX=7,ECX=0):ECX[2] = 0: no UMIP");
    return;
  }
  write_cr4(read_cr4() | CR4_UMIP);
  expect_gp("umip_sgdt_cpl3_gp", u_sgdt, EFLAGS_FIXED);
  expect_gp("umip_smsw_cpl3_gp", u_smsw, EFLAGS_FIXED);
  expect_gp("umip_str_cpl3_gp", u_str, EFLAGS_FIXED);
  trap_clear();
  __asm__ volatile("sgdt %0" : "=m"(table_buf) : : "memory");
  check("umip_sgdt_cpl0_allowed", last_trap.count == 0, "%u exceptions", last_trap.count);
  write_cr4(read_cr4() & ~(u64)CR4_UMIP);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  printf("usermode: 64-bit rings, SYSCALL/SYSRET, SWAPGS, gates, IOPL and the I/O bitmap\n");
  test_enter();
  test_interrupts();
  test_gates();
  test_syscall();
  test_fs_gs_base();
  test_call_gate();
  test_io();
  test_paging_protection();
  test_umip();
  check("finish_in_ring0", read_cs() == SEL_KCODE, "CS=0x%x", read_cs());
  return test_finish();
}
