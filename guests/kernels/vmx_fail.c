/*
 * vmx_fail: the failures of VMX instructions and VM entries (SDM Vol. 3C, 31.2 and 31.4,
 * and chapter 27's checks).
 *
 *   - VMfailInvalid without a current VMCS (VMREAD, VMXON in VMX root operation);
 *   - VMfailValid with the VM-instruction error numbers of Table 31-1: VMCLEAR of an
 *     unaligned address (2) and of the VMXON region (3), VMLAUNCH of a launched VMCS (4),
 *     VMRESUME of a clear one (5), invalid controls (7) and host state (8), VMPTRLD of the
 *     VMXON region (10) and of a region with a wrong revision (11), VMREAD of an unsupported
 *     field (12), VMWRITE to a read-only field (13), VMXON in VMX root operation (15),
 *     INVEPT/INVVPID with an invalid type or operand (28);
 *   - a VM entry that fails on the guest state: an exit with reason 33 and bit 31 set, and
 *     the launch state left clear (the next VMLAUNCH works once the state is fixed). The
 *     bad field is the guest CS access rights (a data segment type); `shv run --trace vmx`
 *     names the check that failed (test/guests.test.ts looks for it).
 */
#include "vmx.h"
#include "paging.h"

static u8 guest_stack[4096] __attribute__((aligned(16)));
static u8 bad_revision_region[4096] __attribute__((aligned(4096)));

extern char g_fail_done[];
void guest_fail(void);
__asm__(".text\n"
        "guest_fail:\n"
        "g_fail_done: vmcall\n"
        "  jmp g_fail_done\n");

/* The outcome of an instruction and, for VMfailValid, the error number. */
static int expect_error(const char *name, int outcome, u32 error) {
  u32 got = outcome == VM_FAIL_VALID ? (u32)vmread(VMCS_INSTRUCTION_ERROR) : 0;
  return check(name, outcome == VM_FAIL_VALID && got == error,
               "outcome %d (want VMfailValid), VM-instruction error %u (want %u)", outcome, got,
               error);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  if (!check("cpuid_vmx", vmx_available(), "CPUID.1:ECX[5]")) return test_finish();
  paging_init();
  paging_enable();
  if (!check("vmxon", vmx_enable() == VM_SUCCEED, NULL)) return test_finish();

  /* No current VMCS yet: failures are VMfailInvalid (no VMCS to hold an error number). */
  int outcome;
  vmread_r(VMCS_GUEST_RIP, &outcome);
  check("vmread_without_current_vmcs_fail_invalid", outcome == VM_FAIL_INVALID, "%d", outcome);
  check("vmxon_in_root_without_vmcs_fail_invalid", vmxon((uptr)vmxon_region) == VM_FAIL_INVALID,
        NULL);
  check("vmptrst_invalid_pointer", vmptrst() == ~0ull, "0x%llx", vmptrst());

  int r = vmx_setup(guest_fail, guest_stack + sizeof guest_stack, 0, 0, 0, 0, 0);
  if (!check("vmcs_setup", r == VM_SUCCEED, "%d", r)) return test_finish();

  expect_error("vmclear_unaligned", vmclear((uptr)vmcs_region + 8),
               VMERR_VMCLEAR_INVALID_ADDRESS);
  expect_error("vmclear_vmxon_pointer", vmclear((uptr)vmxon_region), VMERR_VMCLEAR_VMXON_POINTER);
  expect_error("vmptrld_vmxon_pointer", vmptrld((uptr)vmxon_region), VMERR_VMPTRLD_VMXON_POINTER);
  *(u32 *)bad_revision_region = 0x7FFFFFFF & ~(u32)rdmsr(MSR_VMX_BASIC);
  expect_error("vmptrld_bad_revision", vmptrld((uptr)bad_revision_region),
               VMERR_VMPTRLD_BAD_REVISION);
  check("vmptrst_after_failed_vmptrld", vmptrst() == (uptr)vmcs_region, "0x%llx", vmptrst());
  expect_error("vmxon_in_root", vmxon((uptr)vmxon_region), VMERR_VMXON_IN_ROOT);
  vmread_r(0x7FFE, &outcome);
  expect_error("vmread_unsupported_field", outcome, VMERR_UNSUPPORTED_FIELD);
  expect_error("vmwrite_unsupported_field", vmwrite(0x7FFE, 0), VMERR_UNSUPPORTED_FIELD);
  if (rdmsr(MSR_VMX_MISC) & (1ull << 29)) {
    skip_check("vmwrite_read_only_field", "IA32_VMX_MISC[29]: VMWRITE to any field");
  } else {
    expect_error("vmwrite_read_only_field", vmwrite(VMCS_EXIT_REASON, 0), VMERR_VMWRITE_READ_ONLY);
  }
  u64 cap = rdmsr(MSR_VMX_EPT_VPID_CAP);
  if (cap & EPT_CAP_INVEPT) expect_error("invept_bad_type", invept(0, 0), VMERR_INVALID_OPERAND);
  if (cap & EPT_CAP_INVVPID) {
    expect_error("invvpid_bad_type", invvpid(7, 1, 0), VMERR_INVALID_OPERAND);
    expect_error("invvpid_vpid_zero", invvpid(INVVPID_SINGLE, 0, 0), VMERR_INVALID_OPERAND);
  }

  /* VMRESUME of a VMCS that was never launched. */
  expect_error("vmresume_not_launched", vmx_enter(&vmx_guest.regs, 1),
               VMERR_VMRESUME_NOT_LAUNCHED);

  /* Invalid controls: a pin-based control the capability MSR does not allow to be 1. */
  u32 pin = (u32)vmread(VMCS_PIN_CONTROLS);
  u32 not_allowed = ~vmx_ctl_allowed1(vmx_pin_msr());
  if (not_allowed) {
    vmwrite(VMCS_PIN_CONTROLS, pin | (not_allowed & -not_allowed));
    expect_error("vmlaunch_invalid_controls", vmx_enter(&vmx_guest.regs, 0),
                 VMERR_ENTRY_INVALID_CONTROLS);
    vmwrite(VMCS_PIN_CONTROLS, pin);
  }
  /* Invalid host state: CR4.VMXE clear in the host CR4 (a fixed-1 bit, SDM 27.2.2). */
  uptr host_cr4 = vmread(VMCS_HOST_CR4);
  vmwrite(VMCS_HOST_CR4, host_cr4 & ~(uptr)CR4_VMXE);
  expect_error("vmlaunch_invalid_host_state", vmx_enter(&vmx_guest.regs, 0),
               VMERR_ENTRY_INVALID_HOST);
  vmwrite(VMCS_HOST_CR4, host_cr4);

  /* A bad guest segment: CS with a data-segment type (SDM 27.3.1.2: CS must be code). */
  u32 cs_ar = (u32)vmread(VMCS_GUEST_CS_AR);
  vmwrite(VMCS_GUEST_CS_AR, (cs_ar & ~0xFu) | 0x3); /* read/write data, accessed */
  r = vmx_run();
  check("entry_failure_bad_guest_cs",
        r == VM_SUCCEED &&
            vmx_guest.exit_reason == (EXIT_REASON_ENTRY_FAILURE | EXIT_ENTRY_FAIL_GUEST),
        "outcome %d, exit reason 0x%x", r, vmx_guest.exit_reason);
  check("entry_failure_qualification", vmx_guest.qualification == 0, "0x%llx",
        (u64)vmx_guest.qualification);
  /* A failed VM entry leaves the launch state clear (SDM 27.8): VMRESUME is refused. */
  expect_error("entry_failure_launch_state_clear", vmx_enter(&vmx_guest.regs, 1),
               VMERR_VMRESUME_NOT_LAUNCHED);

  /* Fixed, VMLAUNCH works (the launch state stayed clear), and a second one fails. */
  vmwrite(VMCS_GUEST_CS_AR, cs_ar);
  r = vmx_run();
  check("vmlaunch_after_fix", r == VM_SUCCEED && vmx_guest.exit_reason == EXIT_VMCALL &&
                                  vmread(VMCS_GUEST_RIP) == (uptr)g_fail_done,
        "outcome %d, exit %u (%s)", r, vmx_guest.exit_reason, vmx_exit_name(vmx_guest.exit_reason));
  expect_error("vmlaunch_twice", vmx_enter(&vmx_guest.regs, 0), VMERR_VMLAUNCH_NOT_CLEAR);
  vmx_skip_instruction();
  r = vmx_run();
  check("vmresume_after_failures", r == VM_SUCCEED && vmx_guest.exit_reason == EXIT_VMCALL,
        "outcome %d, exit %u", r, vmx_guest.exit_reason);
  check("vmclear_then_vmptrst", vmclear((uptr)vmcs_region) == VM_SUCCEED && vmptrst() == ~0ull,
        "0x%llx", vmptrst());
  check("vmxoff", vmxoff() == VM_SUCCEED, NULL);
  return test_finish();
}
