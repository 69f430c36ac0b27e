/*
 * vmx_unrestricted: "unrestricted guest" with EPT (SDM Vol. 3C, 26.6 and 27.3.1.1): the
 * guest runs in real mode (CR0.PE = 0) and in protected mode without paging (CR0.PG = 0),
 * every address a guest-physical one translated by EPT.
 *
 * The guest's code is copied to a page the EPT maps at guest-physical 8000H, its data page
 * is guest-physical 9000H; both are elsewhere in host-physical memory, so the results the
 * host finds there prove the translation. In real mode the guest also sets an IVT entry
 * and takes INT 30H through it. Without "unrestricted guest", the same CR0 fails the VM
 * entry (exit reason 33 with bit 31 set).
 */
#include "vmx.h"
#include "paging.h"

#define GUEST_CODE 0x8000u
#define GUEST_DATA 0x9000u
static u8 code_page[4096] __attribute__((aligned(4096)));
static volatile u8 data_page[4096] __attribute__((aligned(4096)));

extern char rm_guest[], rm_int30[], rm_vmcall[], pm_guest[], pm_vmcall[], rm_guest_end[];
__asm__(".section .rodata\n"
        "rm_guest:\n"
        ".code16\n"
        "  movw $0x1234, %ax\n"
        "  movw %ax, 0x9000\n"
        "  movw $(rm_int30 - rm_guest), 0xc0\n" /* IVT entry 30H: offset, then segment */
        "  movw $0x0800, 0xc2\n"
        "  xorw %bx, %bx\n"
        "  int $0x30\n"
        "  movw %bx, 0x9002\n"
        "  movl %cr0, %eax\n"
        "  movl %eax, 0x9010\n"
        "rm_vmcall: vmcall\n"
        "  hlt\n"
        "rm_int30: movw $0x5678, %bx\n"
        "  iret\n"
        "pm_guest:\n"
        ".code32\n"
        "  movl $0xfeedbeef, 0x9008\n"
        "  movl %cr0, %eax\n"
        "  movl %eax, 0x9014\n"
        "pm_vmcall: vmcall\n"
        "  hlt\n"
        "rm_guest_end:\n"
#ifdef __x86_64__
        ".code64\n"
#endif
        ".text\n");

/* Access rights (SDM Vol. 3C, 25.4.1): present, S, DPL 0, and the type. */
#define AR_CODE16 0x009Bu /* execute/read, accessed */
#define AR_DATA16 0x0093u /* read/write, accessed */
#define AR_CODE32 0xC09Bu /* with D/B and G */
#define AR_DATA32 0xC093u
#define CR0_ET 0x10u

static void set_segments(u16 cs_sel, uptr cs_base, u32 limit, u32 cs_ar, u32 data_ar) {
  static const u16 data[][4] = {
      {VMCS_GUEST_ES_SEL, VMCS_GUEST_ES_BASE, VMCS_GUEST_ES_LIMIT, VMCS_GUEST_ES_AR},
      {VMCS_GUEST_SS_SEL, VMCS_GUEST_SS_BASE, VMCS_GUEST_SS_LIMIT, VMCS_GUEST_SS_AR},
      {VMCS_GUEST_DS_SEL, VMCS_GUEST_DS_BASE, VMCS_GUEST_DS_LIMIT, VMCS_GUEST_DS_AR},
      {VMCS_GUEST_FS_SEL, VMCS_GUEST_FS_BASE, VMCS_GUEST_FS_LIMIT, VMCS_GUEST_FS_AR},
      {VMCS_GUEST_GS_SEL, VMCS_GUEST_GS_BASE, VMCS_GUEST_GS_LIMIT, VMCS_GUEST_GS_AR},
  };
  for (unsigned k = 0; k < sizeof data / sizeof data[0]; k++) {
    vmwrite(data[k][0], 0);
    vmwrite(data[k][1], 0);
    vmwrite(data[k][2], limit);
    vmwrite(data[k][3], data_ar);
  }
  vmwrite(VMCS_GUEST_CS_SEL, cs_sel);
  vmwrite(VMCS_GUEST_CS_BASE, cs_base);
  vmwrite(VMCS_GUEST_CS_LIMIT, limit);
  vmwrite(VMCS_GUEST_CS_AR, cs_ar);
}

static int run_expect(const char *name, u32 reason, uptr rip) {
  int r = vmx_run();
  uptr at = vmread(VMCS_GUEST_RIP);
  return check(name, r == VM_SUCCEED && vmx_guest.exit_reason == reason && at == rip,
               "outcome %d, exit 0x%x (%s) at 0x%llx (want %u at 0x%llx), VM-instruction error %u",
               r, vmx_guest.exit_reason, vmx_exit_name(vmx_guest.exit_reason), (u64)at, reason,
               (u64)rip, r == VM_FAIL_VALID ? (u32)vmread(VMCS_INSTRUCTION_ERROR) : 0);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  if (!check("cpuid_vmx", vmx_available(), "CPUID.1:ECX[5]")) return test_finish();
  paging_init();
  paging_enable();
  u32 want = PROC2_ENABLE_EPT | PROC2_UNRESTRICTED_GUEST;
  if (!check("unrestricted_guest_offered",
             (vmx_ctl_allowed1(MSR_VMX_PROCBASED_CTLS2) & want) == want, "allowed-1 0x%x",
             vmx_ctl_allowed1(MSR_VMX_PROCBASED_CTLS2))) {
    return test_finish();
  }
  memcpy(code_page, rm_guest, (uptr)(rm_guest_end - rm_guest));
  u64 eptp = ept_identity();
  *ept_pte(GUEST_CODE) = (uptr)code_page | EPT_RWX | EPT_WB;
  *ept_pte(GUEST_DATA) = (uptr)data_page | EPT_RWX | EPT_WB;

  if (!check("vmxon", vmx_enable() == VM_SUCCEED, NULL)) return test_finish();
  int r = vmx_setup((void (*)(void))0, 0, 0, 0, want, 0, 0);
  if (!check("vmcs_setup", r == VM_SUCCEED, "%d", r)) return test_finish();
  vmwrite64(VMCS_EPTP, eptp);
  /* A guest outside IA-32e mode (SDM 27.3.1.1: no PG, so no IA-32e mode either). */
  vmwrite(VMCS_ENTRY_CONTROLS, vmx_adjust(vmx_entry_msr(), 0));

  /* Real mode: CS = 0800H (base 8000H), IP = 0; the IVT at 0, stack at 7000H. */
  uptr cr0 = (vmread(VMCS_GUEST_CR0) & ~(uptr)(CR0_PG | CR0_PE | CR0_WP)) | CR0_NE | CR0_ET;
  vmwrite(VMCS_GUEST_CR0, cr0);
  set_segments(0x0800, GUEST_CODE, 0xFFFF, AR_CODE16, AR_DATA16);
  vmwrite(VMCS_GUEST_IDTR_BASE, 0);
  vmwrite(VMCS_GUEST_IDTR_LIMIT, 0x3FF);
  vmwrite(VMCS_GUEST_RIP, 0);
  vmwrite(VMCS_GUEST_RSP, 0x7000);
  vmwrite(VMCS_GUEST_RFLAGS, EFLAGS_FIXED);
  run_expect("real_mode_guest_vmcall", EXIT_VMCALL, (uptr)(rm_vmcall - rm_guest));
  check("real_mode_store_through_ept", *(volatile u16 *)data_page == 0x1234, "0x%x",
        *(volatile u16 *)data_page);
  check("real_mode_int_through_ivt", *(volatile u16 *)(data_page + 2) == 0x5678, "0x%x",
        *(volatile u16 *)(data_page + 2));
  u32 rm_cr0 = *(volatile u32 *)(data_page + 0x10);
  check("real_mode_cr0", !(rm_cr0 & (CR0_PE | CR0_PG)), "CR0 0x%x", rm_cr0);

  /* Protected mode without paging: flat 32-bit segments. */
  vmwrite(VMCS_GUEST_CR0, cr0 | CR0_PE);
  set_segments(0x08, 0, 0xFFFFFFFF, AR_CODE32, AR_DATA32);
  vmwrite(VMCS_GUEST_RIP, GUEST_CODE + (uptr)(pm_guest - rm_guest));
  run_expect("unpaged_protected_mode_vmcall", EXIT_VMCALL,
             GUEST_CODE + (uptr)(pm_vmcall - rm_guest));
  check("unpaged_store_through_ept", *(volatile u32 *)(data_page + 8) == 0xfeedbeef, "0x%x",
        *(volatile u32 *)(data_page + 8));
  u32 pm_cr0 = *(volatile u32 *)(data_page + 0x14);
  check("unpaged_cr0", (pm_cr0 & (CR0_PE | CR0_PG)) == CR0_PE, "CR0 0x%x", pm_cr0);

  /* Without "unrestricted guest", CR0.PG = 0 breaks the fixed bits: a VM-entry failure. */
  vmwrite(VMCS_PROC_CONTROLS2, vmx_adjust(MSR_VMX_PROCBASED_CTLS2, PROC2_ENABLE_EPT));
  vmwrite(VMCS_GUEST_RIP, GUEST_CODE + (uptr)(pm_guest - rm_guest));
  r = vmx_run();
  check("unpaged_without_unrestricted_guest_fails",
        r == VM_SUCCEED &&
            vmx_guest.exit_reason == (EXIT_REASON_ENTRY_FAILURE | EXIT_ENTRY_FAIL_GUEST),
        "outcome %d, exit reason 0x%x", r, vmx_guest.exit_reason);
  check("vmxoff", vmxoff() == VM_SUCCEED, NULL);
  return test_finish();
}
