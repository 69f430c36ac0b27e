/*
 * vmx_events: events in VMX non-root operation (SDM Vol. 3C, 26.2 to 26.7 and 27.6).
 *
 *   - event injection on VM entry: an external interrupt (vector 0x40) and an NMI reach
 *     the guest's IDT (the runtime's, shared with the host) before its first instruction;
 *   - interrupt-window exiting: after STI, the exit comes once blocking by STI ends, one
 *     instruction later;
 *   - NMI-window exiting (with NMI exiting and virtual NMIs): an exit right at VM entry
 *     when there is no virtual-NMI blocking;
 *   - the VMX-preemption timer: a guest spinning forever exits (reason 52);
 *   - external-interrupt exiting with "acknowledge interrupt on exit": a self-IPI left
 *     pending in the host (IF = 0) makes the VM entry exit at once with the vector in the
 *     VM-exit interruption information, and the local APIC has it in service.
 */
#include "vmx.h"
#include "paging.h"

static u8 guest_stack[8192] __attribute__((aligned(16)));
volatile u32 g_count_40, g_count_nmi, g_spin_count;
volatile uptr g_rip_40, g_rip_nmi;

#define LAPIC 0xFEE00000u
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ISR 0x100
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
static volatile u32 *lapic(u32 reg) { return (volatile u32 *)(uptr)(LAPIC + reg); }

#ifdef __x86_64__
#define TRAP_IP(f) ((f)->rip)
#else
#define TRAP_IP(f) ((f)->eip)
#endif
static int on_vector_40(struct trapframe *f) {
  g_count_40++;
  g_rip_40 = TRAP_IP(f);
  return 1;
}
static int on_nmi(struct trapframe *f) {
  g_count_nmi++;
  g_rip_nmi = TRAP_IP(f);
  return 1;
}

extern char g_vmcall0[], g_after0[], g_vmcall1[], g_vmcall2[], g_iw[], g_vmcall3[], g_nw[],
    g_vmcall4[], g_spin[], g_spin_jmp[], g_vmcall5[], g_done[];
void guest_events(void);
__asm__(".text\n"
        "guest_events:\n"
        "g_vmcall0: vmcall\n"
        "g_after0: cli\n"
        "g_vmcall1: vmcall\n"
        "g_vmcall2: vmcall\n"
        "  sti\n"
        "  nop\n"
        "g_iw: cli\n"
        "g_vmcall3: vmcall\n"
        "g_nw: nop\n"
        "g_vmcall4: vmcall\n"
        "g_spin: incl g_spin_count\n"
        "g_spin_jmp: jmp g_spin\n"
        "g_vmcall5: vmcall\n"
        "g_done: vmcall\n"
        "  jmp g_done\n");

static int run_expect(const char *name, u32 reason, const void *rip) {
  int r = vmx_run();
  if (r != VM_SUCCEED) {
    check(name, 0, "VM entry failed: %d, VM-instruction error %u", r,
          (u32)vmread(VMCS_INSTRUCTION_ERROR));
    return 0;
  }
  uptr at = vmread(VMCS_GUEST_RIP);
  return check(name, vmx_guest.exit_reason == reason && at == (uptr)rip,
               "exit %u (%s) at 0x%llx, want %u at 0x%llx", vmx_guest.exit_reason,
               vmx_exit_name(vmx_guest.exit_reason), (u64)at, reason, (u64)(uptr)rip);
}

static u32 pin_ctl, proc_ctl;
static void set_controls(u32 pin, u32 proc) {
  pin_ctl = vmx_adjust(vmx_pin_msr(), pin);
  proc_ctl = vmx_adjust(vmx_proc_msr(), proc);
  vmwrite(VMCS_PIN_CONTROLS, pin_ctl);
  vmwrite(VMCS_PROC_CONTROLS, proc_ctl);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  if (!check("cpuid_vmx", vmx_available(), "CPUID.1:ECX[5]")) return test_finish();
  paging_init();
#ifndef __x86_64__
  map_page(LAPIC, LAPIC, PTE_P | PTE_W); /* the amd64 runtime maps all of 0-4 GiB */
#endif
  paging_enable();
  trap_set_handler(0x40, on_vector_40);
  trap_set_handler(VEC_NMI, on_nmi);
  u32 pin_allowed = vmx_ctl_allowed1(vmx_pin_msr());
  u32 proc_allowed = vmx_ctl_allowed1(vmx_proc_msr());
  u32 want_pin = PIN_EXTERNAL_INTERRUPT_EXITING | PIN_NMI_EXITING | PIN_VIRTUAL_NMIS |
                 PIN_PREEMPTION_TIMER;
  u32 want_proc = PROC_INTERRUPT_WINDOW_EXITING | PROC_NMI_WINDOW_EXITING;
  check("event_controls_offered",
        (pin_allowed & want_pin) == want_pin && (proc_allowed & want_proc) == want_proc,
        "pin allowed-1 0x%x, proc allowed-1 0x%x", pin_allowed, proc_allowed);

  if (!check("vmxon", vmx_enable() == VM_SUCCEED, NULL)) return test_finish();
  int r = vmx_setup(guest_events, guest_stack + sizeof guest_stack, 0, 0, 0, 0, 0);
  if (!check("vmcs_setup", r == VM_SUCCEED, "%d", r)) return test_finish();

  /* 1. An external interrupt injected on VM entry (RFLAGS.IF must be 1: SDM 27.2.1.3). */
  if (run_expect("vmcall0", EXIT_VMCALL, g_vmcall0)) vmx_skip_instruction();
  vmwrite(VMCS_GUEST_RFLAGS, vmread(VMCS_GUEST_RFLAGS) | EFLAGS_IF);
  vmwrite(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | INTR_TYPE_EXTERNAL | 0x40);
  if (run_expect("vmcall1_after_injected_interrupt", EXIT_VMCALL, g_vmcall1)) vmx_skip_instruction();
  check("injected_interrupt_delivered", g_count_40 == 1 && g_rip_40 == (uptr)g_after0,
        "%u deliveries, at 0x%llx (want 0x%llx)", g_count_40, (u64)g_rip_40, (u64)(uptr)g_after0);
  check("entry_interruption_info_cleared", !(vmread(VMCS_ENTRY_INTR_INFO) & INTR_INFO_VALID),
        "0x%x", (u32)vmread(VMCS_ENTRY_INTR_INFO));

  /* 2. An NMI injected on VM entry. */
  vmwrite(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | INTR_TYPE_NMI | VEC_NMI);
  if (run_expect("vmcall2_after_injected_nmi", EXIT_VMCALL, g_vmcall2)) vmx_skip_instruction();
  check("injected_nmi_delivered", g_count_nmi == 1 && g_rip_nmi == (uptr)g_vmcall2,
        "%u deliveries, at 0x%llx (want 0x%llx)", g_count_nmi, (u64)g_rip_nmi,
        (u64)(uptr)g_vmcall2);

  /* 3. Interrupt-window exiting: the guest runs STI; NOP; the window opens after the NOP. */
  set_controls(0, PROC_INTERRUPT_WINDOW_EXITING);
  run_expect("interrupt_window_exit_after_sti_blocking", EXIT_INTERRUPT_WINDOW, g_iw);
  set_controls(0, 0);
  if (run_expect("vmcall3", EXIT_VMCALL, g_vmcall3)) vmx_skip_instruction();

  /* 4. NMI-window exiting: no virtual-NMI blocking, so the exit comes at once. */
  set_controls(PIN_NMI_EXITING | PIN_VIRTUAL_NMIS, PROC_NMI_WINDOW_EXITING);
  run_expect("nmi_window_exit", EXIT_NMI_WINDOW, g_nw);
  set_controls(0, 0);
  if (run_expect("vmcall4", EXIT_VMCALL, g_vmcall4)) vmx_skip_instruction();

  /* 5. The VMX-preemption timer stops a guest that spins forever. */
  set_controls(PIN_PREEMPTION_TIMER, 0);
  vmwrite(VMCS_PREEMPTION_TIMER, 200);
  r = vmx_run();
  uptr rip = vmread(VMCS_GUEST_RIP);
  check("preemption_timer_exit",
        r == VM_SUCCEED && vmx_guest.exit_reason == EXIT_PREEMPTION_TIMER && g_spin_count > 0 &&
            (rip == (uptr)g_spin || rip == (uptr)g_spin_jmp),
        "exit %u (%s) at 0x%llx after %u iterations", vmx_guest.exit_reason,
        vmx_exit_name(vmx_guest.exit_reason), (u64)rip, g_spin_count);
  set_controls(0, 0);
  vmwrite(VMCS_GUEST_RIP, (uptr)g_vmcall5);

  /* 6. External-interrupt exiting, acknowledge on exit: a self-IPI pending in the host. */
  *lapic(LAPIC_SVR) = 0x1FF;
  *lapic(LAPIC_ICR_HI) = 0;
  *lapic(LAPIC_ICR_LO) = 0x40000 | 0x41; /* fixed, to self, vector 0x41 */
  set_controls(PIN_EXTERNAL_INTERRUPT_EXITING, 0);
  vmwrite(VMCS_EXIT_CONTROLS, vmx_adjust(vmx_exit_msr(), (u32)vmread(VMCS_EXIT_CONTROLS) |
                                                             EXIT_ACK_INTERRUPT_ON_EXIT));
  r = vmx_run();
  u32 intr = (u32)vmread(VMCS_EXIT_INTR_INFO);
  check("external_interrupt_exit_acknowledged",
        r == VM_SUCCEED && vmx_guest.exit_reason == EXIT_EXTERNAL_INTERRUPT &&
            intr == (INTR_INFO_VALID | INTR_TYPE_EXTERNAL | 0x41) &&
            vmread(VMCS_GUEST_RIP) == (uptr)g_vmcall5,
        "exit %u (%s), interruption information 0x%x", vmx_guest.exit_reason,
        vmx_exit_name(vmx_guest.exit_reason), intr);
  u32 isr = *lapic(LAPIC_ISR + 0x20); /* ISR bits 95:64 hold vector 0x41 */
  check("acknowledged_vector_in_service", (isr & (1u << (0x41 - 0x40))) != 0, "ISR[95:64] 0x%x",
        isr);
  *lapic(LAPIC_EOI) = 0;
  set_controls(0, 0);
  if (run_expect("vmcall5", EXIT_VMCALL, g_vmcall5)) vmx_skip_instruction();
  if (run_expect("final_vmcall", EXIT_VMCALL, g_done)) vmx_skip_instruction();
  check("no_stray_deliveries", g_count_40 == 1 && g_count_nmi == 1, "%u, %u", g_count_40,
        g_count_nmi);
  check("vmxoff", vmxoff() == VM_SUCCEED, NULL);
  return test_finish();
}
