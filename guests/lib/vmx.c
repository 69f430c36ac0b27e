/*
 * The VMX library of the guest kernels (vmx.h): entering VMX operation and setting up a
 * VMCS whose guest is a function of this image, following SDM Vol. 3C, 24.7 ("Enabling and
 * Entering VMX Operation"), 25.11.5 ("VMXON Region") and chapter 27's checks on the host
 * and guest state.
 */
#include "vmx.h"

u8 vmxon_region[4096] __attribute__((aligned(4096)));
u8 vmcs_region[4096] __attribute__((aligned(4096)));
struct vmx_guest vmx_guest;

int vmx_available(void) {
  u32 a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  return (c & CPUID_1_ECX_VMX) != 0;
}

/* Bits 31:0 of a control MSR are the allowed 0-settings (a 1 there: must be 1), bits 63:32
   the allowed 1-settings (SDM Vol. 3C, A.3). */
u32 vmx_ctl_allowed0(u32 msr) { return (u32)rdmsr(msr); }
u32 vmx_ctl_allowed1(u32 msr) { return (u32)(rdmsr(msr) >> 32); }

static int true_ctls(void) { return (rdmsr(MSR_VMX_BASIC) & VMX_BASIC_TRUE_CTLS) != 0; }
u32 vmx_pin_msr(void) { return true_ctls() ? MSR_VMX_TRUE_PINBASED_CTLS : MSR_VMX_PINBASED_CTLS; }
u32 vmx_proc_msr(void) {
  return true_ctls() ? MSR_VMX_TRUE_PROCBASED_CTLS : MSR_VMX_PROCBASED_CTLS;
}
u32 vmx_exit_msr(void) { return true_ctls() ? MSR_VMX_TRUE_EXIT_CTLS : MSR_VMX_EXIT_CTLS; }
u32 vmx_entry_msr(void) { return true_ctls() ? MSR_VMX_TRUE_ENTRY_CTLS : MSR_VMX_ENTRY_CTLS; }

/* A control value: the wish, plus the bits that must be 1, less the bits that must be 0. */
u32 vmx_adjust(u32 msr, u32 want) { return (want | vmx_ctl_allowed0(msr)) & vmx_ctl_allowed1(msr); }

static u32 revision(void) { return (u32)rdmsr(MSR_VMX_BASIC) & 0x7FFFFFFFu; }

int vmx_enable(void) {
  u64 fc = rdmsr(MSR_FEATURE_CONTROL);
  if (!(fc & FEATURE_CONTROL_LOCK)) {
    wrmsr(MSR_FEATURE_CONTROL, fc | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMXON_OUTSIDE_SMX);
  } else if (!(fc & FEATURE_CONTROL_VMXON_OUTSIDE_SMX)) {
    printf("vmx: IA32_FEATURE_CONTROL is locked without VMXON outside SMX\n");
    return VM_FAIL_INVALID;
  }
  /* CR0 and CR4 must respect the fixed bits in VMX operation (SDM Vol. 3C, 24.8). */
  uptr cr0 = read_cr0();
  cr0 = (cr0 | (uptr)rdmsr(MSR_VMX_CR0_FIXED0)) & (uptr)rdmsr(MSR_VMX_CR0_FIXED1);
  write_cr0(cr0);
  uptr cr4 = read_cr4() | CR4_VMXE;
  cr4 = (cr4 | (uptr)rdmsr(MSR_VMX_CR4_FIXED0)) & (uptr)rdmsr(MSR_VMX_CR4_FIXED1);
  write_cr4(cr4);
  memset(vmxon_region, 0, sizeof vmxon_region);
  *(u32 *)vmxon_region = revision();
  int r = vmxon((uptr)vmxon_region);
  if (r != VM_SUCCEED) printf("vmx: VMXON failed (%d)\n", r);
  return r;
}

/* The base of a segment from the descriptor its selector names in the current GDT (the
   8-byte part; TSS bases above 4 GiB do not occur in these kernels). */
static uptr segment_base(u16 sel) {
  struct pseudo_descriptor gdtr;
  sgdt(&gdtr);
  const u8 *d = (const u8 *)gdtr.base + (sel & ~7u);
  return (uptr)(d[2] | d[3] << 8 | d[4] << 16 | (u32)d[7] << 24);
}

/* The VMCS access-rights format of a selector's descriptor (SDM Vol. 3C, 25.4.1): LAR's
   bits 23:8 moved down to 15:0 (type, S, DPL, P, AVL, L, D/B, G); a null selector is
   unusable (bit 16). */
static u32 access_rights(u16 sel) {
  if ((sel & ~3u) == 0) return 1u << 16;
  return (lar(sel) >> 8) & 0xF0FF;
}

static u32 segment_limit(u16 sel) {
  u32 limit = 0;
  if ((sel & ~3u) == 0) return 0;
  __asm__ volatile("lsl %1, %0" : "=r"(limit) : "rm"((u32)sel) : "cc");
  return limit;
}

#define W(field, value)                              \
  do {                                               \
    int r_ = vmwrite((field), (uptr)(value));        \
    if (r_ != VM_SUCCEED) return fail(#field, r_);   \
  } while (0)
#define W64(field, value)                            \
  do {                                               \
    int r_ = vmwrite64((field), (u64)(value));       \
    if (r_ != VM_SUCCEED) return fail(#field, r_);   \
  } while (0)

static int fail(const char *what, int r) {
  printf("vmx: VMWRITE %s failed (%d, error %u)\n", what, r, (u32)vmread(VMCS_INSTRUCTION_ERROR));
  return r;
}

int vmx_setup(void (*entry)(void), void *stack_top, u32 pin, u32 proc, u32 proc2, u32 exit_ctl,
              u32 entry_ctl) {
  memset(vmcs_region, 0, sizeof vmcs_region);
  *(u32 *)vmcs_region = revision();
  int r = vmclear((uptr)vmcs_region);
  if (r == VM_SUCCEED) r = vmptrld((uptr)vmcs_region);
  if (r != VM_SUCCEED) {
    printf("vmx: VMCLEAR/VMPTRLD failed (%d)\n", r);
    return r;
  }
  memset(&vmx_guest, 0, sizeof vmx_guest);

  /* Controls (SDM Vol. 3C, 25.6 to 25.8). */
  if (proc2) proc |= PROC_ACTIVATE_SECONDARY;
#ifdef __x86_64__
  exit_ctl |= EXIT_HOST_ADDRESS_SPACE_SIZE;
  entry_ctl |= ENTRY_IA32E_MODE_GUEST;
#endif
  W(VMCS_PIN_CONTROLS, vmx_adjust(vmx_pin_msr(), pin));
  W(VMCS_PROC_CONTROLS, vmx_adjust(vmx_proc_msr(), proc));
  if (proc & PROC_ACTIVATE_SECONDARY) W(VMCS_PROC_CONTROLS2, vmx_adjust(MSR_VMX_PROCBASED_CTLS2, proc2));
  W(VMCS_EXIT_CONTROLS, vmx_adjust(vmx_exit_msr(), exit_ctl));
  W(VMCS_ENTRY_CONTROLS, vmx_adjust(vmx_entry_msr(), entry_ctl));
  W(VMCS_EXCEPTION_BITMAP, 0);
  W(VMCS_CR3_TARGET_COUNT, 0);
  W(VMCS_ENTRY_INTR_INFO, 0);
  W(VMCS_EXIT_MSR_STORE_COUNT, 0);
  W(VMCS_EXIT_MSR_LOAD_COUNT, 0);
  W(VMCS_ENTRY_MSR_LOAD_COUNT, 0);
  W(VMCS_CR0_MASK, 0);
  W(VMCS_CR4_MASK, 0);
  W64(VMCS_LINK_POINTER, ~0ull);

  /* Host state (SDM Vol. 3C, 25.5 and 27.2.2): the processor as it is now. */
  struct pseudo_descriptor gdtr, idtr;
  sgdt(&gdtr);
  sidt(&idtr);
  u16 tr = read_tr();
  W(VMCS_HOST_CR0, read_cr0());
  W(VMCS_HOST_CR3, read_cr3());
  W(VMCS_HOST_CR4, read_cr4());
  W(VMCS_HOST_CS_SEL, read_cs());
  W(VMCS_HOST_SS_SEL, read_ss());
  W(VMCS_HOST_DS_SEL, read_ds());
  W(VMCS_HOST_ES_SEL, read_ds());
  W(VMCS_HOST_FS_SEL, 0);
  W(VMCS_HOST_GS_SEL, 0);
  W(VMCS_HOST_TR_SEL, tr);
  W(VMCS_HOST_FS_BASE, 0);
  W(VMCS_HOST_GS_BASE, 0);
  W(VMCS_HOST_TR_BASE, segment_base(tr));
  W(VMCS_HOST_GDTR_BASE, gdtr.base);
  W(VMCS_HOST_IDTR_BASE, idtr.base);
  W(VMCS_HOST_SYSENTER_CS, 0);
  W(VMCS_HOST_SYSENTER_ESP, 0);
  W(VMCS_HOST_SYSENTER_EIP, 0);
  W(VMCS_HOST_RIP, (uptr)vmx_exit_stub);
  /* HOST_RSP is written by vmx_enter, just before the VM entry. */

  /* Guest state (SDM Vol. 3C, 25.4 and 27.3.1): a copy of the host's, on its own stack. */
  W(VMCS_GUEST_CR0, read_cr0());
  W(VMCS_GUEST_CR3, read_cr3());
  W(VMCS_GUEST_CR4, read_cr4());
  W(VMCS_GUEST_DR7, 0x400);
  static const struct {
    u16 sel, base, limit, ar;
  } segs[] = {
      {VMCS_GUEST_ES_SEL, VMCS_GUEST_ES_BASE, VMCS_GUEST_ES_LIMIT, VMCS_GUEST_ES_AR},
      {VMCS_GUEST_CS_SEL, VMCS_GUEST_CS_BASE, VMCS_GUEST_CS_LIMIT, VMCS_GUEST_CS_AR},
      {VMCS_GUEST_SS_SEL, VMCS_GUEST_SS_BASE, VMCS_GUEST_SS_LIMIT, VMCS_GUEST_SS_AR},
      {VMCS_GUEST_DS_SEL, VMCS_GUEST_DS_BASE, VMCS_GUEST_DS_LIMIT, VMCS_GUEST_DS_AR},
      {VMCS_GUEST_FS_SEL, VMCS_GUEST_FS_BASE, VMCS_GUEST_FS_LIMIT, VMCS_GUEST_FS_AR},
      {VMCS_GUEST_GS_SEL, VMCS_GUEST_GS_BASE, VMCS_GUEST_GS_LIMIT, VMCS_GUEST_GS_AR},
  };
  u16 sels[6] = {read_ds(), read_cs(), read_ss(), read_ds(), 0, 0};
  for (int k = 0; k < 6; k++) {
    W(segs[k].sel, sels[k]);
    W(segs[k].base, 0);
    W(segs[k].limit, segment_limit(sels[k]));
    W(segs[k].ar, access_rights(sels[k]));
  }
  W(VMCS_GUEST_LDTR_SEL, 0);
  W(VMCS_GUEST_LDTR_BASE, 0);
  W(VMCS_GUEST_LDTR_LIMIT, 0);
  W(VMCS_GUEST_LDTR_AR, 1u << 16);
  W(VMCS_GUEST_TR_SEL, tr);
  W(VMCS_GUEST_TR_BASE, segment_base(tr));
  W(VMCS_GUEST_TR_LIMIT, segment_limit(tr));
  W(VMCS_GUEST_TR_AR, access_rights(tr));
  W(VMCS_GUEST_GDTR_BASE, gdtr.base);
  W(VMCS_GUEST_GDTR_LIMIT, gdtr.limit);
  W(VMCS_GUEST_IDTR_BASE, idtr.base);
  W(VMCS_GUEST_IDTR_LIMIT, idtr.limit);
  W64(VMCS_GUEST_DEBUGCTL, 0);
  W(VMCS_GUEST_SYSENTER_CS, 0);
  W(VMCS_GUEST_SYSENTER_ESP, 0);
  W(VMCS_GUEST_SYSENTER_EIP, 0);
  W(VMCS_GUEST_RSP, (uptr)stack_top);
  W(VMCS_GUEST_RIP, (uptr)entry);
  W(VMCS_GUEST_RFLAGS, EFLAGS_FIXED);
  W(VMCS_GUEST_ACTIVITY, 0);
  W(VMCS_GUEST_INTERRUPTIBILITY, 0);
  W(VMCS_GUEST_PENDING_DBG, 0);
#ifndef __x86_64__
  /* PAE paging: with EPT a VM entry takes the PDPTEs from the VMCS (SDM Vol. 3C, 27.3.2.4). */
  if (read_cr4() & CR4_PAE) {
    const u64 *pdpt = (const u64 *)(read_cr3() & ~31u);
    for (int k = 0; k < 4; k++) W64(VMCS_GUEST_PDPTE0 + 2 * k, pdpt[k]);
  }
#endif
  return VM_SUCCEED;
}

int vmx_run(void) {
  int r = vmx_enter(&vmx_guest.regs, vmx_guest.launched);
  if (r != VM_SUCCEED) return r;
  vmx_guest.exit_reason = (u32)vmread(VMCS_EXIT_REASON);
  /* A VM-entry failure leaves the launch state as it was (SDM Vol. 3C, 27.8). */
  if (!(vmx_guest.exit_reason & EXIT_REASON_ENTRY_FAILURE)) vmx_guest.launched = 1;
  vmx_guest.qualification = vmread(VMCS_EXIT_QUALIFICATION);
  vmx_guest.instr_len = (u32)vmread(VMCS_EXIT_INSTR_LEN);
  return VM_SUCCEED;
}

void vmx_skip_instruction(void) {
  vmwrite(VMCS_GUEST_RIP, vmread(VMCS_GUEST_RIP) + vmread(VMCS_EXIT_INSTR_LEN));
}

const char *vmx_exit_name(u32 reason) {
  switch (reason & 0xFFFF) {
  case EXIT_EXCEPTION_NMI: return "exception or NMI";
  case EXIT_EXTERNAL_INTERRUPT: return "external interrupt";
  case EXIT_TRIPLE_FAULT: return "triple fault";
  case EXIT_INTERRUPT_WINDOW: return "interrupt window";
  case EXIT_NMI_WINDOW: return "NMI window";
  case EXIT_CPUID: return "CPUID";
  case EXIT_HLT: return "HLT";
  case EXIT_INVLPG: return "INVLPG";
  case EXIT_RDTSC: return "RDTSC";
  case EXIT_VMCALL: return "VMCALL";
  case EXIT_CR_ACCESS: return "CR access";
  case EXIT_IO: return "I/O instruction";
  case EXIT_RDMSR: return "RDMSR";
  case EXIT_WRMSR: return "WRMSR";
  case EXIT_ENTRY_FAIL_GUEST: return "VM-entry failure (guest state)";
  case EXIT_EPT_VIOLATION: return "EPT violation";
  case EXIT_EPT_MISCONFIG: return "EPT misconfiguration";
  case EXIT_PREEMPTION_TIMER: return "preemption timer";
  default: return "other";
  }
}

/* EPT paging structures: one PML4 table, one PDPT, four page directories (0-4 GiB) and a
   pool of page tables for the 2 MiB pages ept_pte splits. */
#define EPT_PT_POOL 8
static u64 ept_pml4[512] __attribute__((aligned(4096)));
static u64 ept_pdpt[512] __attribute__((aligned(4096)));
static u64 ept_pd[4][512] __attribute__((aligned(4096)));
static u64 ept_pt[EPT_PT_POOL][512] __attribute__((aligned(4096)));
static int ept_pt_used;

u64 ept_identity(void) {
  memset(ept_pml4, 0, sizeof ept_pml4);
  memset(ept_pdpt, 0, sizeof ept_pdpt);
  ept_pml4[0] = (uptr)ept_pdpt | EPT_RWX;
  for (int k = 0; k < 4; k++) {
    ept_pdpt[k] = (uptr)ept_pd[k] | EPT_RWX;
    for (int j = 0; j < 512; j++) ept_pd[k][j] = ((u64)(k * 512 + j) << 21) | EPT_PS | EPT_WB | EPT_RWX;
  }
  ept_pt_used = 0;
  return (uptr)ept_pml4 | EPTP_WB_4LEVEL;
}

volatile u64 *ept_pdpte(u64 gpa) { return &ept_pdpt[(gpa >> 30) & 511]; }
volatile u64 *ept_pde(u64 gpa) { return &ept_pd[(gpa >> 30) & 3][(gpa >> 21) & 511]; }

volatile u64 *ept_pte(u64 gpa) {
  volatile u64 *pde = ept_pde(gpa);
  if (*pde & EPT_PS) {
    if (ept_pt_used == EPT_PT_POOL) {
      printf("FAIL EPT page-table pool exhausted\n");
      exit(EXIT_UNEXPECTED);
    }
    u64 *pt = ept_pt[ept_pt_used++];
    u64 base = *pde & ~0x1FFFFFull & 0xFFFFFFFFFull;
    u64 flags = *pde & (EPT_RWX | EPT_WB);
    for (int k = 0; k < 512; k++) pt[k] = (base + ((u64)k << 12)) | flags;
    *pde = (uptr)pt | EPT_RWX;
  }
  u64 *pt = (u64 *)(uptr)(*pde & 0xFFFFFF000ull);
  return &pt[(gpa >> 12) & 511];
}
