/*
 * vmx_basic: VMX operation and a first guest (SDM Vol. 3C, chapters 24 to 28 and 31).
 *
 * The host checks the capability MSRs, that VMXON needs CR4.VMXE, enters VMX operation,
 * sets up a VMCS (vmx.c) and runs a guest written in assembly below. Each guest step is
 * one instruction that must cause a VM exit, in order: CPUID, VMCALL, HLT (HLT exiting),
 * OUT to a port in I/O bitmap A and to one in bitmap B (an IN from a port in neither must
 * not exit), RDMSR and WRMSR of MSRs in the MSR bitmap (an RDMSR of one not in it must not
 * exit) and an RDMSR of an MSR outside the bitmap's ranges. The host checks each exit's
 * reason, guest RIP, instruction length and qualification, emulates the instruction where
 * the guest needs a result (CPUID, RDMSR), and resumes after it.
 */
#include "vmx.h"
#ifndef __x86_64__
#include "paging.h"
#endif

static u8 guest_stack[8192] __attribute__((aligned(16)));
static u8 io_bitmap_a[4096] __attribute__((aligned(4096)));
static u8 io_bitmap_b[4096] __attribute__((aligned(4096)));
static u8 msr_bitmap[4096] __attribute__((aligned(4096)));

/* What the guest saw, stored by the guest code. */
volatile u32 guest_cpuid[4], guest_in81, guest_msr_lo, guest_msr_hi, guest_tsc_lo;

/*
 * The guest: 32-bit operations and absolute addresses only, so the same code runs in
 * 32-bit protected mode and in 64-bit mode (the kernels are linked below 2 GiB). Labels
 * mark the instructions that must exit.
 */
extern char g_cpuid[], g_vmcall[], g_hlt[], g_out80[], g_in81[], g_out9000[], g_rdmsr_fs[],
    g_rdmsr_tsc[], g_wrmsr[], g_rdmsr_hv[], g_done[];
__asm__(".text\n"
        "guest_basic:\n"
        "  xorl %eax, %eax\n"
        "  xorl %ecx, %ecx\n"
        "g_cpuid: cpuid\n"
        "  movl %eax, guest_cpuid\n"
        "  movl %ebx, guest_cpuid + 4\n"
        "  movl %ecx, guest_cpuid + 8\n"
        "  movl %edx, guest_cpuid + 12\n"
        "g_vmcall: vmcall\n"
        "g_hlt: hlt\n"
        "  movb $0x5a, %al\n"
        "g_out80: outb %al, $0x80\n"
        "  movl $0xffffffff, %eax\n"
        "g_in81: inb $0x81, %al\n" /* an unassigned port: reads all ones, no exit */
        "  movl %eax, guest_in81\n"
        "  movw $0x9000, %dx\n"
        "  movl $0x12345678, %eax\n"
        "g_out9000: outl %eax, %dx\n"
        "  movl $0xc0000100, %ecx\n" /* IA32_FS_BASE: read bitmap for high MSRs */
        "g_rdmsr_fs: rdmsr\n"
        "  movl %eax, guest_msr_lo\n"
        "  movl %edx, guest_msr_hi\n"
        "  movl $0x10, %ecx\n" /* IA32_TIME_STAMP_COUNTER: not in the bitmap */
        "g_rdmsr_tsc: rdmsr\n"
        "  movl %eax, guest_tsc_lo\n"
        "  movl $0x174, %ecx\n" /* IA32_SYSENTER_CS: write bitmap for low MSRs */
        "  movl $0xabcd, %eax\n"
        "  movl $0x0, %edx\n"
        "g_wrmsr: wrmsr\n"
        "  movl $0x40000000, %ecx\n" /* outside both MSR ranges: always exits */
        "g_rdmsr_hv: rdmsr\n"
        "g_done: vmcall\n"
        "  jmp g_done\n");
void guest_basic(void);

/* One expected exit: its reason, where the guest is, the instruction length, the
   qualification (when `qual_checked`). */
struct expect {
  const char *name;
  u32 reason;
  const char *rip;
  u32 len;
  int qual_checked;
  uptr qual;
};

/* I/O qualification (SDM Vol. 3C, Table 28-5): size - 1, IN, string, REP, immediate, port. */
#define IO_QUAL(port, size, in, imm) \
  ((uptr)(port) << 16 | ((size) - 1) | ((in) ? 8 : 0) | ((imm) ? 0x40 : 0))

static const struct expect expected[] = {
    {"exit_cpuid", EXIT_CPUID, g_cpuid, 2, 1, 0},
    {"exit_vmcall", EXIT_VMCALL, g_vmcall, 3, 1, 0},
    {"exit_hlt", EXIT_HLT, g_hlt, 1, 1, 0},
    {"exit_out_bitmap_a", EXIT_IO, g_out80, 2, 1, IO_QUAL(0x80, 1, 0, 1)},
    {"exit_out_bitmap_b", EXIT_IO, g_out9000, 1, 1, IO_QUAL(0x9000, 4, 0, 0)},
    {"exit_rdmsr_bitmap", EXIT_RDMSR, g_rdmsr_fs, 2, 1, 0},
    {"exit_wrmsr_bitmap", EXIT_WRMSR, g_wrmsr, 2, 1, 0},
    {"exit_rdmsr_outside_ranges", EXIT_RDMSR, g_rdmsr_hv, 2, 1, 0},
    {"exit_final_vmcall", EXIT_VMCALL, g_done, 3, 1, 0},
};

/* The MSR bitmap (SDM Vol. 3C, 25.6.9): read low, read high, write low, write high. */
static void msr_intercept(u32 msr, int write) {
  u32 offset = (write ? 2048 : 0) + (msr >= 0xC0000000u ? 1024 : 0);
  u32 bit = msr & 0x1FFF;
  msr_bitmap[offset + bit / 8] |= (u8)(1u << (bit % 8));
}

static void check_capabilities(void) {
  u64 basic = rdmsr(MSR_VMX_BASIC);
  u32 size = (u32)(basic >> 32) & 0x1FFF;
  u32 type = (u32)(basic >> 50) & 0xF;
  check("vmx_basic_revision", (basic & 0x7FFFFFFF) != 0 && !(basic & 0x80000000u),
        "revision 0x%x", (u32)basic & 0x7FFFFFFF);
  check("vmx_basic_region_size", size > 0 && size <= 4096, "%u bytes", size);
  check("vmx_basic_memory_type_wb", type == 6, "type %u", type);
  /* Every control's "must be 1" bits are allowed to be 1 (A.3). */
  static const u32 msrs[] = {MSR_VMX_PINBASED_CTLS, MSR_VMX_PROCBASED_CTLS, MSR_VMX_EXIT_CTLS,
                             MSR_VMX_ENTRY_CTLS, MSR_VMX_PROCBASED_CTLS2};
  int coherent = 1;
  for (unsigned k = 0; k < sizeof msrs / sizeof msrs[0]; k++) {
    if (vmx_ctl_allowed0(msrs[k]) & ~vmx_ctl_allowed1(msrs[k])) coherent = 0;
  }
  check("vmx_control_msrs_coherent", coherent, NULL);
  u32 hlt_io = PROC_HLT_EXITING | PROC_USE_IO_BITMAPS | PROC_USE_MSR_BITMAPS;
  check("vmx_controls_offered", (vmx_ctl_allowed1(vmx_proc_msr()) & hlt_io) == hlt_io,
        "procbased allowed-1 0x%08x", vmx_ctl_allowed1(vmx_proc_msr()));
  u64 fixed0 = rdmsr(MSR_VMX_CR0_FIXED0), fixed1 = rdmsr(MSR_VMX_CR0_FIXED1);
  check("vmx_cr0_fixed", (fixed0 & 0x80000021u) == 0x80000021u && (fixed1 & fixed0) == fixed0,
        "FIXED0 0x%llx FIXED1 0x%llx", fixed0, fixed1);
  u64 cr4_fixed0 = rdmsr(MSR_VMX_CR4_FIXED0);
  check("vmx_cr4_fixed_vmxe", (cr4_fixed0 & CR4_VMXE) != 0, "CR4 FIXED0 0x%llx", cr4_fixed0);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  if (!check("cpuid_vmx", vmx_available(), "CPUID.1:ECX[5]")) return test_finish();
#ifndef __x86_64__
  /* VMX operation needs CR0.PG (IA32_VMX_CR0_FIXED0): the 32-bit kernels page first. */
  paging_init();
  paging_enable();
#endif
  check_capabilities();

  /* VMXON with CR4.VMXE = 0 is #UD (SDM Vol. 3C, 31.3, VMXON). */
  write_cr4(read_cr4() & ~(uptr)CR4_VMXE);
  u64 pa = (uptr)vmxon_region;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "vmxon %0\n\t" TRY_END : : "m"(pa) : "cc", "memory");
  check_trap("vmxon_without_cr4_vmxe_ud", VEC_UD, 0, TRAP_FAULT_IP);

  if (!check("vmxon", vmx_enable() == VM_SUCCEED, NULL)) return test_finish();

  u32 proc = PROC_HLT_EXITING | PROC_USE_IO_BITMAPS | PROC_USE_MSR_BITMAPS;
  int r = vmx_setup(guest_basic, guest_stack + sizeof guest_stack, 0, proc, 0, 0, 0);
  if (!check("vmcs_setup", r == VM_SUCCEED, "%d", r)) return test_finish();
  check("vmptrst", vmptrst() == (uptr)vmcs_region, "0x%llx", vmptrst());
  check("vmread_guest_rip", vmread(VMCS_GUEST_RIP) == (uptr)guest_basic, NULL);

  /* I/O bitmaps (SDM Vol. 3C, 25.6.4): A covers ports 0-7FFFH, B 8000H-FFFFH. */
  io_bitmap_a[0x80 / 8] |= 1u << (0x80 % 8);
  io_bitmap_b[(0x9000 - 0x8000) / 8] |= 1u << (0x9000 % 8);
  vmwrite64(VMCS_IO_BITMAP_A, (uptr)io_bitmap_a);
  vmwrite64(VMCS_IO_BITMAP_B, (uptr)io_bitmap_b);
  msr_intercept(MSR_FS_BASE, 0);
  msr_intercept(0x174, 1);
  vmwrite64(VMCS_MSR_BITMAP, (uptr)msr_bitmap);

  for (unsigned k = 0; k < sizeof expected / sizeof expected[0]; k++) {
    const struct expect *e = &expected[k];
    r = vmx_run();
    if (r != VM_SUCCEED) {
      check(e->name, 0, "VM entry failed: %d, VM-instruction error %u", r,
            (u32)vmread(VMCS_INSTRUCTION_ERROR));
      return test_finish();
    }
    uptr rip = vmread(VMCS_GUEST_RIP);
    int ok = vmx_guest.exit_reason == e->reason && rip == (uptr)e->rip &&
             vmx_guest.instr_len == e->len && (!e->qual_checked || vmx_guest.qualification == e->qual);
    check(e->name, ok, "reason %u (%s) rip 0x%llx (want 0x%llx) length %u qualification 0x%llx",
          vmx_guest.exit_reason, vmx_exit_name(vmx_guest.exit_reason), (u64)rip, (u64)(uptr)e->rip,
          vmx_guest.instr_len, (u64)vmx_guest.qualification);
    if (!ok && vmx_guest.exit_reason != e->reason) return test_finish();
    struct vmx_regs *g = &vmx_guest.regs;
    switch (vmx_guest.exit_reason) {
    case EXIT_CPUID:
      g->ax = 0x600DC0DE;
      g->bx = 0x11111111;
      g->cx = 0x22222222;
      g->dx = 0x33333333;
      break;
    case EXIT_RDMSR:
      if (g->cx == 0xC0000100u) {
        g->ax = 0x89ABCDEF;
        g->dx = 0x01234567;
      } else {
        check("rdmsr_exit_ecx", (u32)g->cx == 0x40000000u, "ECX 0x%x", (u32)g->cx);
      }
      break;
    case EXIT_WRMSR:
      check("wrmsr_exit_registers", (u32)g->cx == 0x174 && (u32)g->ax == 0xabcd && (u32)g->dx == 0,
            "ECX 0x%x EDX:EAX 0x%x:0x%x", (u32)g->cx, (u32)g->dx, (u32)g->ax);
      break;
    case EXIT_IO:
      if ((vmx_guest.qualification >> 16) == 0x9000) {
        check("out_exit_value", (u32)g->ax == 0x12345678, "EAX 0x%x", (u32)g->ax);
      }
      break;
    }
    vmx_skip_instruction();
  }
  check("guest_cpuid_emulated",
        guest_cpuid[0] == 0x600DC0DE && guest_cpuid[1] == 0x11111111 &&
            guest_cpuid[2] == 0x22222222 && guest_cpuid[3] == 0x33333333,
        "%x %x %x %x", guest_cpuid[0], guest_cpuid[1], guest_cpuid[2], guest_cpuid[3]);
  check("guest_in_not_in_bitmap", (guest_in81 & 0xFF) == 0xFF, "0x%x", guest_in81);
  check("guest_rdmsr_emulated", guest_msr_lo == 0x89ABCDEF && guest_msr_hi == 0x01234567,
        "0x%x:0x%x", guest_msr_hi, guest_msr_lo);
  check("vmxoff", vmxoff() == VM_SUCCEED, NULL);
  write_cr4(read_cr4() & ~(uptr)CR4_VMXE);
  check("cr4_vmxe_cleared_after_vmxoff", !(read_cr4() & CR4_VMXE), NULL);
  return test_finish();
}
