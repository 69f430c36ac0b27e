/*
 * usermode: ring 3 entered by IRET (TSS ESP0/SS0 give the ring-0 stack), system calls
 * through DPL-3 trap and interrupt gates, IOPL and I/O permission bitmap checks, POPF at
 * CPL 3, page-level user/supervisor protection, INT n through a DPL-0 gate, a call gate,
 * LAR/LSL/VERR/VERW at CPL 3, and UMIP when CPUID advertises it (SDM Vol. 3A, chapters 5,
 * 6 and 7). Code that runs at CPL 3 only records what it sees; ring 0 checks and prints it
 * afterwards.
 */
#include "kernel.h"
#include "paging.h"

enum { GDT_CALL_GATE = GDT_FIRST_FREE };
#define SEL_CALL_GATE ((GDT_CALL_GATE << 3) | 3)
#define SYS_ECHO 1

static u8 super_page[4096] __attribute__((aligned(4096)));   /* U/S = 0 */
static u8 readonly_page[4096] __attribute__((aligned(4096))); /* U/S = 1, R/W = 0 */
static u8 absent_page[4096] __attribute__((aligned(4096)));   /* P = 0 */
static u8 user_page[4096] __attribute__((aligned(4096)));     /* mapped at PDE_TEST_VA too */
#define PDE_TEST_VA 0x80000000u /* its page table is reached through a supervisor-only PDE */

/* What ring-3 code observed. */
volatile u32 u_cs, u_ss, u_ds, u_eflags, u_ret, u_esp_before, u_esp_after, u_expect_eip;
volatile u32 u_flags_before, u_flags_after, u_value;
/* What the system call handlers observed. */
volatile u32 k_cs, k_ss, k_esp, k_eflags, k_frame_cs, k_frame_ss, k_frame_esp, k_frame_eip;

static u16 cs_now(void) { return read_cs(); }

/* ---- entering ring 3 ---- */

static void u_identify(void) {
  u_cs = cs_now();
  u_ss = read_ss();
  u_ds = read_ds();
  u_eflags = read_eflags();
}

static void test_enter(void) {
  run_user(u_identify, EFLAGS_FIXED);
  check("iret_to_ring3", u_cs == SEL_UCODE && u_ss == SEL_UDATA && u_ds == SEL_UDATA,
        "CS=0x%x SS=0x%x DS=0x%x", u_cs, u_ss, u_ds);
  check("ring3_eflags", (u_eflags & (EFLAGS_IOPL3 | EFLAGS_IF)) == 0, "EFLAGS=0x%08x", u_eflags);
  check("back_in_ring0", (read_cs() & 3) == 0 && read_cs() == SEL_KCODE, "CS=0x%x", read_cs());
}

/* ---- system calls ---- */

static u32 echo_syscall(struct trapframe *f) {
  k_cs = read_cs();
  k_ss = read_ss();
  __asm__ volatile("movl %%esp, %0" : "=r"(k_esp));
  k_eflags = read_eflags();
  k_frame_cs = f->cs;
  k_frame_ss = f->user_ss;
  k_frame_esp = f->user_esp;
  k_frame_eip = f->eip;
  return f->ebx + 1;
}

static int int82_handler(struct trapframe *f) {
  f->eax = echo_syscall(f);
  return 1;
}

static void u_syscall(u32 vector_is_82) {
  u32 ret;
  if (vector_is_82)
    __asm__ volatile("movl $1f, u_expect_eip\n\t"
                     "movl %%esp, u_esp_before\n\t"
                     "int $0x82\n"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"(SYS_ECHO), "b"(41)
                     : "memory");
  else
    __asm__ volatile("movl $1f, u_expect_eip\n\t"
                     "movl %%esp, u_esp_before\n\t"
                     "int $0x80\n"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"(SYS_ECHO), "b"(41)
                     : "memory");
  u_ret = ret;
}
static void u_syscall_trap_gate(void) { u_syscall(0); }
static void u_syscall_interrupt_gate(void) { u_syscall(1); }

static void check_syscall(const char *name, int want_if) {
  u32 stack_lo = (u32)kernel_intr_stack, stack_hi = (u32)kernel_intr_stack_top;
  check(name,
        u_ret == 42 && k_cs == SEL_KCODE && k_ss == SEL_KDATA && k_esp >= stack_lo &&
            k_esp < stack_hi && k_frame_cs == SEL_UCODE && k_frame_ss == SEL_UDATA &&
            k_frame_esp == u_esp_before && k_frame_eip == u_expect_eip,
        "ret %u; handler CS=0x%x SS=0x%x ESP=0x%x; saved CS=0x%x SS=0x%x ESP=0x%x EIP=0x%x",
        u_ret, k_cs, k_ss, k_esp, k_frame_cs, k_frame_ss, k_frame_esp, k_frame_eip);
  /* A trap gate leaves IF alone; an interrupt gate clears it (SDM Vol. 3A, 6.12.1.3). */
  int got_if = (k_eflags & EFLAGS_IF) != 0;
  check(want_if ? "trap_gate_keeps_if" : "interrupt_gate_clears_if", got_if == want_if,
        "handler EFLAGS=0x%08x", k_eflags);
}

static void test_syscalls(void) {
  syscall_hook = echo_syscall;
  idt_set(0x82, isr_stub(0x82), SEL_KCODE, GATE_INT | DESC_DPL3);
  trap_set_handler(0x82, int82_handler);
  run_user(u_syscall_trap_gate, EFLAGS_FIXED | EFLAGS_IF);
  check_syscall("syscall_int80_trap_gate", 1);
  run_user(u_syscall_interrupt_gate, EFLAGS_FIXED | EFLAGS_IF);
  check_syscall("syscall_int82_interrupt_gate", 0);
}

/* ---- IOPL, the I/O permission bitmap and POPF (SDM Vol. 1, 19.5 and 19.8) ---- */

#define USER_FAULT_FN(fn, insn, ...)                                                  \
  static void fn(void) { __asm__ volatile(TRY_BEGIN insn TRY_END __VA_ARGS__); }

USER_FAULT_FN(u_cli, "cli", ::: "memory")
USER_FAULT_FN(u_sti, "sti", ::: "memory")
USER_FAULT_FN(u_hlt, "hlt", ::: "memory")
USER_FAULT_FN(u_in_lsr, "inb %%dx, %%al", ::"d"(0x3FD) : "eax", "memory")
USER_FAULT_FN(u_in_msr, "inb %%dx, %%al", ::"d"(0x3FE) : "eax", "memory")
USER_FAULT_FN(u_inw_lsr, "inw %%dx, %%ax", ::"d"(0x3FD) : "eax", "memory")
USER_FAULT_FN(u_out_80, "outb %%al, $0x80", ::"a"(0) : "memory")
USER_FAULT_FN(u_in_beyond_bitmap, "inb %%dx, %%al", ::"d"(0x500) : "eax", "memory")

/* CPL 3 with IOPL 0: POPF may not change IF or IOPL, and does not fault. */
static void u_popf(void) {
  u_flags_before = read_eflags();
  write_eflags((u_flags_before & ~EFLAGS_IF) | EFLAGS_IOPL3);
  u_flags_after = read_eflags();
}

static void expect_gp(const char *name, void (*fn)(void), u32 eflags) {
  trap_clear();
  run_user(fn, eflags);
  check_trap(name, VEC_GP, 0, trap_fault_eip);
}

static void expect_no_fault(const char *name, void (*fn)(void), u32 eflags) {
  trap_clear();
  run_user(fn, eflags);
  check(name, last_trap.count == 0, "%u exceptions, vector %u error 0x%x", last_trap.count,
        last_trap.vector, last_trap.error);
}

static void test_io(void) {
  const u32 iopl0 = EFLAGS_FIXED | EFLAGS_IF, iopl3 = EFLAGS_FIXED | EFLAGS_IF | EFLAGS_IOPL3;
  expect_gp("cli_cpl3_iopl0", u_cli, iopl0);
  expect_gp("sti_cpl3_iopl0", u_sti, iopl0);
  expect_gp("hlt_cpl3_iopl0", u_hlt, iopl0);
  expect_gp("in_cpl3_iopl0_bitmap_denies", u_in_lsr, iopl0);

  run_user(u_popf, iopl0);
  check("popf_cpl3_keeps_if_and_iopl",
        (u_flags_before & EFLAGS_IF) && (u_flags_after & EFLAGS_IF) &&
            (u_flags_after & EFLAGS_IOPL3) == 0,
        "EFLAGS before 0x%08x after 0x%08x", u_flags_before, u_flags_after);

  expect_no_fault("cli_cpl3_iopl3", u_cli, iopl3);
  expect_no_fault("sti_cpl3_iopl3", u_sti, iopl3);
  expect_no_fault("in_cpl3_iopl3", u_in_lsr, iopl3);
  expect_gp("hlt_cpl3_iopl3", u_hlt, iopl3); /* HLT needs CPL 0 whatever IOPL is */

  io_permit(0x3FD, 1);
  io_permit(0x80, 1);
  expect_no_fault("io_bitmap_permits_in", u_in_lsr, iopl0);
  expect_no_fault("io_bitmap_permits_out", u_out_80, iopl0);
  expect_gp("io_bitmap_denies_port", u_in_msr, iopl0);
  expect_gp("io_bitmap_word_needs_both_bits", u_inw_lsr, iopl0);
  expect_gp("io_bitmap_port_beyond_tss_limit", u_in_beyond_bitmap, iopl0);
  io_permit(0x3FD, 0);
  io_permit(0x80, 0);
  expect_gp("io_bitmap_denied_again", u_in_lsr, iopl0);
}

/* ---- user/supervisor paging protection (SDM Vol. 3A, 4.6) ---- */

USER_FAULT_FN(u_read_super, "movl (%0), %%eax", ::"r"(super_page + 0x10) : "eax", "memory")
USER_FAULT_FN(u_write_super, "movl %%eax, (%0)", ::"r"(super_page + 0x20) : "memory")
USER_FAULT_FN(u_write_readonly, "movl %%eax, (%0)", ::"r"(readonly_page + 0x30) : "memory")
USER_FAULT_FN(u_read_absent, "movl (%0), %%eax", ::"r"(absent_page + 0x40) : "eax", "memory")
USER_FAULT_FN(u_read_super_pde, "movl (%0), %%eax", ::"r"(PDE_TEST_VA + 0x50) : "eax", "memory")

static void u_read_readonly(void) { u_value = *(volatile u32 *)(readonly_page + 0x30); }

static void expect_pf(const char *name, void (*fn)(void), u32 error, u32 cr2) {
  trap_clear();
  run_user(fn, EFLAGS_FIXED);
  if (check_trap(name, VEC_PF, error, trap_fault_eip) && last_trap.cr2 != cr2)
    check(name, 0, "CR2=0x%08x, expected 0x%08x", last_trap.cr2, cr2);
}

static void test_paging_protection(void) {
  u32 page;
  page = (u32)super_page;
  *pte_get(page) = (pte_t)page | PTE_P | PTE_W;
  invlpg(page);
  page = (u32)readonly_page;
  *pte_get(page) = (pte_t)page | PTE_P | PTE_U;
  invlpg(page);
  page = (u32)absent_page;
  *pte_get(page) = (pte_t)page | PTE_W | PTE_U;
  invlpg(page);
  /* U/S = 0 in the PDE makes every page below it supervisor-only, whatever the PTEs say. */
  map_page(PDE_TEST_VA, (u32)user_page, PTE_P | PTE_W | PTE_U);
  *pde_get(PDE_TEST_VA) &= ~(pte_t)PTE_U;
  invlpg(PDE_TEST_VA);

  expect_pf("pf_user_read_supervisor_page", u_read_super, PFEC_P | PFEC_U, (u32)super_page + 0x10);
  expect_pf("pf_user_write_supervisor_page", u_write_super, PFEC_P | PFEC_W | PFEC_U,
            (u32)super_page + 0x20);
  expect_pf("pf_user_write_read_only_page", u_write_readonly, PFEC_P | PFEC_W | PFEC_U,
            (u32)readonly_page + 0x30);
  expect_pf("pf_user_read_not_present", u_read_absent, PFEC_U, (u32)absent_page + 0x40);
  expect_pf("pf_user_read_supervisor_pde", u_read_super_pde, PFEC_P | PFEC_U, PDE_TEST_VA + 0x50);
  *(volatile u32 *)(readonly_page + 0x30) = 0xFEED;
  expect_no_fault("user_read_read_only_page", u_read_readonly, EFLAGS_FIXED);
  check("user_read_value", u_value == 0xFEED, "read 0x%x", u_value);

  /* Supervisor writes to the user read-only page succeed while CR0.WP = 0. */
  *(volatile u32 *)(readonly_page + 0x34) = 0xBEEF;
  check("supervisor_write_read_only_wp0", *(volatile u32 *)(readonly_page + 0x34) == 0xBEEF, NULL);
}

/* ---- INT n from ring 3: gate DPL checks (SDM Vol. 3A, 6.12.1.1) ---- */

USER_FAULT_FN(u_int81, "int $0x81", ::: "memory")
USER_FAULT_FN(u_int3, "int3", ::: "memory")
USER_FAULT_FN(u_into, "movl $0x7FFFFFFF, %%eax\n\taddl $1, %%eax\n\tinto", ::: "eax", "cc", "memory")

static void test_gate_dpl(void) {
  trap_clear();
  run_user(u_int81, EFLAGS_FIXED);
  check_trap("int_dpl0_gate_from_ring3", VEC_GP, 0x81 * 8 + 2, trap_fault_eip);

  trap_clear();
  run_user(u_int3, EFLAGS_FIXED);
  check_trap("int3_dpl3_gate_from_ring3", VEC_BP, 0, trap_next_eip);
  check("int3_saved_cs_ss", last_trap.cs == SEL_UCODE && last_trap.ss == SEL_UDATA,
        "CS=0x%x SS=0x%x", last_trap.cs, last_trap.ss);

  trap_clear();
  run_user(u_into, EFLAGS_FIXED);
  check_trap("into_dpl3_gate_from_ring3", VEC_OF, 0, trap_next_eip);
}

/* ---- a call gate from ring 3 to ring 0 with two parameters (SDM Vol. 3A, 5.8.5) ---- */

volatile u32 cg_frame[6], cg_cs, cg_ss, cg_esp, cg_user_cs;
void callgate_target(void);

/* Ring 0: the stack holds EIP, CS, the two copied parameters, then the caller's ESP and SS. */
__asm__(".text\n"
        "callgate_target:\n\t"
        "movl %esp, cg_esp\n\t"
        "movw %cs, cg_cs\n\t"
        "movw %ss, cg_ss\n\t"
        "movl 0(%esp), %eax\n\tmovl %eax, cg_frame\n\t"
        "movl 4(%esp), %eax\n\tmovl %eax, cg_frame+4\n\t"
        "movl 8(%esp), %eax\n\tmovl %eax, cg_frame+8\n\t"
        "movl 12(%esp), %eax\n\tmovl %eax, cg_frame+12\n\t"
        "movl 16(%esp), %eax\n\tmovl %eax, cg_frame+16\n\t"
        "movl 20(%esp), %eax\n\tmovl %eax, cg_frame+20\n\t"
        "movl 8(%esp), %eax\n\t"
        "subl 12(%esp), %eax\n\t" /* second pushed minus first pushed */
        "lret $8\n");

static void u_call_gate(void) {
  __asm__ volatile("movl %%esp, u_esp_before\n\t"
                   "movl $1f, u_expect_eip\n\t"
                   "pushl $0x1111\n\t"
                   "pushl $0x3333\n\t"
                   "lcall %1, $0\n"
                   "1:\n\t"
                   "movl %%eax, u_ret\n\t"
                   "movl %%esp, u_esp_after\n\t"
                   "movw %%cs, cg_user_cs\n\t"
                   :
                   : "i"(0), "i"(SEL_CALL_GATE)
                   : "eax", "memory");
}

static void test_call_gate(void) {
  gdt_set_gate(GDT_CALL_GATE, SEL_KCODE, (u32)callgate_target, DESC_CALL_GATE | DESC_DPL3, 2);
  cg_cs = cg_ss = cg_user_cs = 0;
  trap_clear();
  run_user(u_call_gate, EFLAGS_FIXED);
  check("call_gate_to_ring0", last_trap.count == 0 && cg_cs == SEL_KCODE && cg_ss == SEL_KDATA &&
                                  cg_esp >= (u32)kernel_intr_stack && cg_esp < (u32)kernel_intr_stack_top,
        "%u exceptions; target CS=0x%x SS=0x%x ESP=0x%x", last_trap.count, cg_cs, cg_ss, cg_esp);
  check("call_gate_frame",
        cg_frame[0] == u_expect_eip && (cg_frame[1] & 0xFFFF) == SEL_UCODE && cg_frame[2] == 0x3333 &&
            cg_frame[3] == 0x1111 && cg_frame[4] == u_esp_before - 8 && (cg_frame[5] & 0xFFFF) == SEL_UDATA,
        "EIP=0x%x CS=0x%x params 0x%x 0x%x ESP=0x%x SS=0x%x", cg_frame[0], cg_frame[1] & 0xFFFF,
        cg_frame[2], cg_frame[3], cg_frame[4], cg_frame[5] & 0xFFFF);
  check("call_gate_return", u_ret == 0x2222 && u_esp_after == u_esp_before && cg_user_cs == SEL_UCODE,
        "EAX=0x%x ESP 0x%x -> 0x%x CS=0x%x", u_ret, u_esp_before, u_esp_after, cg_user_cs);
}

/* ---- LAR, LSL, VERR, VERW at CPL 3 (SDM Vol. 2) ---- */

volatile u32 seg_results[10];

static void u_segment_instructions(void) {
  u32 v, zf;
#define LAR(i, sel)                                                                        \
  __asm__ volatile("xorl %0, %0\n\tlarl %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "=&r"(v), "=&q"(zf) \
                   : "r"((u32)(sel)) : "cc");                                                 \
  seg_results[i] = zf ? v : 0xDEAD;
#define LSL(i, sel)                                                                        \
  __asm__ volatile("xorl %0, %0\n\tlsll %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "=&r"(v), "=&q"(zf) \
                   : "r"((u32)(sel)) : "cc");                                                 \
  seg_results[i] = zf ? v : 0xDEAD;
#define VER(i, insn, sel)                                                                  \
  __asm__ volatile(insn " %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=&q"(zf) : "r"(sel) : "cc"); \
  seg_results[i] = zf;
  LAR(0, SEL_UCODE)
  LAR(1, SEL_KCODE) /* DPL 0 < CPL 3: not visible */
  LSL(2, SEL_UDATA)
  LSL(3, SEL_KDATA)
  LAR(4, SEL_TSS)
  VER(5, "verr", SEL_UCODE) /* readable code */
  VER(6, "verw", SEL_UCODE) /* code is never writable */
  VER(7, "verw", SEL_UDATA)
  VER(8, "verr", SEL_KDATA) /* DPL 0 */
  (void)v;
}

static void test_segment_instructions(void) {
  run_user(u_segment_instructions, EFLAGS_FIXED);
  /* LAR returns the descriptor's second dword masked with 00FxFF00H (bits 19:16 undefined). */
  check("lar_user_code", (seg_results[0] & 0x00F0FE00) == 0x00C0FA00, "0x%08x", seg_results[0]);
  /* Loading a selector sets the descriptor's accessed bit (SDM Vol. 3A, 3.4.5.1). */
  u32 code_type = (u32)(gdt_get(SEL_UCODE >> 3) >> 40) & 0xF, data_type = (u32)(gdt_get(SEL_UDATA >> 3) >> 40) & 0xF;
  check("descriptor_accessed_bits", (code_type & 1) && (data_type & 1), "user code type 0x%x, data type 0x%x",
        code_type, data_type);
  check("lar_kernel_code_from_ring3", seg_results[1] == 0xDEAD, "0x%08x", seg_results[1]);
  check("lsl_user_data", seg_results[2] == 0xFFFFFFFF, "0x%08x", seg_results[2]);
  check("lsl_kernel_data_from_ring3", seg_results[3] == 0xDEAD, "0x%08x", seg_results[3]);
  check("lar_tss_from_ring3", seg_results[4] == 0xDEAD, "0x%08x", seg_results[4]);
  check("verr_user_code", seg_results[5] == 1, NULL);
  check("verw_user_code", seg_results[6] == 0, NULL);
  check("verw_user_data", seg_results[7] == 1, NULL);
  check("verr_kernel_data_from_ring3", seg_results[8] == 0, NULL);
}

/* ---- UMIP (SDM Vol. 3A, 2.5): SGDT, SIDT, SLDT, SMSW and STR at CPL > 0 ---- */

static u8 table_buf[8];
USER_FAULT_FN(u_sgdt, "sgdt %0", : "=m"(table_buf) : : "memory")
USER_FAULT_FN(u_smsw, "smsw %%ax", ::: "eax", "memory")
USER_FAULT_FN(u_str, "str %%ax", ::: "eax", "memory")

static void test_umip(void) {
  /* Without CR4.UMIP these are allowed at CPL 3. */
  expect_no_fault("sgdt_cpl3_without_umip", u_sgdt, EFLAGS_FIXED);
  u32 a, b, c, d;
  cpuid(0, &a, &b, &c, &d);
  c = 0;
  if (a >= 7) cpuid(7, &a, &b, &c, &d);
  if (!(c & (1u << 2))) {
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
  write_cr4(read_cr4() & ~CR4_UMIP);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  printf("usermode: rings, gates, IOPL and the I/O bitmap\n");
  paging_init();
  paging_enable();
  test_enter();
  test_syscalls();
  test_io();
  test_paging_protection();
  test_gate_dpl();
  test_call_gate();
  test_segment_instructions();
  test_umip();
  paging_disable();
  check("finish_in_ring0", (read_cs() & 3) == 0 && (read_cr0() & CR0_PG) == 0, "CS=0x%x", read_cs());
  return test_finish();
}
