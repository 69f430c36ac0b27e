/*
 * VMX for the guest kernels that test it (vmx_*.c): the VMX instructions, VMCS field
 * encodings (SDM Vol. 3C, Appendix B), capability MSRs (Appendix A), exit reasons
 * (Appendix C), and a small library (vmx.c) that enters VMX operation, sets up a VMCS
 * whose guest is a function of the same kernel image running on its own stack, and runs it
 * until the next VM exit.
 *
 * The guest shares everything with the host except its stack and RIP: the same GDT, IDT
 * (so trap_set_handler works in the guest too), TSS, page tables (CR3) and, on amd64,
 * IA32_EFER. Guest and host memory are the same identity-mapped physical memory unless a
 * test gives the guest an EPT that says otherwise. The guest cannot print (it would work,
 * but checks belong to the host): it leaves its results in memory and ends each step with
 * VMCALL.
 */
#ifndef SHV_VMX_H
#define SHV_VMX_H

#include "kernel.h"

/* ---- capability and control MSRs (SDM Vol. 4, Table 2-2; Vol. 3C, Appendix A) ---- */
#define MSR_FEATURE_CONTROL 0x3Au
#define FEATURE_CONTROL_LOCK (1u << 0)
#define FEATURE_CONTROL_VMXON_OUTSIDE_SMX (1u << 2)
#define MSR_VMX_BASIC 0x480u
#define MSR_VMX_PINBASED_CTLS 0x481u
#define MSR_VMX_PROCBASED_CTLS 0x482u
#define MSR_VMX_EXIT_CTLS 0x483u
#define MSR_VMX_ENTRY_CTLS 0x484u
#define MSR_VMX_MISC 0x485u
#define MSR_VMX_CR0_FIXED0 0x486u
#define MSR_VMX_CR0_FIXED1 0x487u
#define MSR_VMX_CR4_FIXED0 0x488u
#define MSR_VMX_CR4_FIXED1 0x489u
#define MSR_VMX_VMCS_ENUM 0x48Au
#define MSR_VMX_PROCBASED_CTLS2 0x48Bu
#define MSR_VMX_EPT_VPID_CAP 0x48Cu
#define MSR_VMX_TRUE_PINBASED_CTLS 0x48Du
#define MSR_VMX_TRUE_PROCBASED_CTLS 0x48Eu
#define MSR_VMX_TRUE_EXIT_CTLS 0x48Fu
#define MSR_VMX_TRUE_ENTRY_CTLS 0x490u
#define VMX_BASIC_TRUE_CTLS (1ull << 55) /* the TRUE_ control MSRs exist */
#define CPUID_1_ECX_VMX (1u << 5)
#define CR4_VMXE (1u << 13)
#define CR0_NE 0x20u

/* IA32_VMX_EPT_VPID_CAP bits (SDM Vol. 3C, A.10). */
#define EPT_CAP_EXECUTE_ONLY (1ull << 0)
#define EPT_CAP_PWL4 (1ull << 6)
#define EPT_CAP_WB (1ull << 14)
#define EPT_CAP_2MB (1ull << 16)
#define EPT_CAP_1GB (1ull << 17)
#define EPT_CAP_INVEPT (1ull << 20)
#define EPT_CAP_AD (1ull << 21)
#define EPT_CAP_INVEPT_SINGLE (1ull << 25)
#define EPT_CAP_INVEPT_ALL (1ull << 26)
#define EPT_CAP_INVVPID (1ull << 32)
#define EPT_CAP_INVVPID_ADDRESS (1ull << 40)
#define EPT_CAP_INVVPID_SINGLE (1ull << 41)

/* ---- VM-execution, VM-exit and VM-entry controls (SDM Vol. 3C, 25.6 to 25.8) ---- */
#define PIN_EXTERNAL_INTERRUPT_EXITING (1u << 0)
#define PIN_NMI_EXITING (1u << 3)
#define PIN_VIRTUAL_NMIS (1u << 5)
#define PIN_PREEMPTION_TIMER (1u << 6)
#define PROC_INTERRUPT_WINDOW_EXITING (1u << 2)
#define PROC_USE_TSC_OFFSETTING (1u << 3)
#define PROC_HLT_EXITING (1u << 7)
#define PROC_INVLPG_EXITING (1u << 9)
#define PROC_RDTSC_EXITING (1u << 12)
#define PROC_CR3_LOAD_EXITING (1u << 15)
#define PROC_CR3_STORE_EXITING (1u << 16)
#define PROC_NMI_WINDOW_EXITING (1u << 22)
#define PROC_UNCONDITIONAL_IO_EXITING (1u << 24)
#define PROC_USE_IO_BITMAPS (1u << 25)
#define PROC_USE_MSR_BITMAPS (1u << 28)
#define PROC_ACTIVATE_SECONDARY (1u << 31)
#define PROC2_ENABLE_EPT (1u << 1)
#define PROC2_ENABLE_VPID (1u << 5)
#define PROC2_UNRESTRICTED_GUEST (1u << 7)
#define EXIT_HOST_ADDRESS_SPACE_SIZE (1u << 9)
#define EXIT_ACK_INTERRUPT_ON_EXIT (1u << 15)
#define EXIT_SAVE_EFER (1u << 20)
#define EXIT_LOAD_EFER (1u << 21)
#define ENTRY_IA32E_MODE_GUEST (1u << 9)
#define ENTRY_LOAD_EFER (1u << 15)

/* ---- VMCS field encodings (SDM Vol. 3C, Appendix B) ---- */
enum vmcs_field {
  /* 16-bit */
  VMCS_VPID = 0x0000,
  VMCS_GUEST_ES_SEL = 0x0800, VMCS_GUEST_CS_SEL = 0x0802, VMCS_GUEST_SS_SEL = 0x0804,
  VMCS_GUEST_DS_SEL = 0x0806, VMCS_GUEST_FS_SEL = 0x0808, VMCS_GUEST_GS_SEL = 0x080A,
  VMCS_GUEST_LDTR_SEL = 0x080C, VMCS_GUEST_TR_SEL = 0x080E,
  VMCS_HOST_ES_SEL = 0x0C00, VMCS_HOST_CS_SEL = 0x0C02, VMCS_HOST_SS_SEL = 0x0C04,
  VMCS_HOST_DS_SEL = 0x0C06, VMCS_HOST_FS_SEL = 0x0C08, VMCS_HOST_GS_SEL = 0x0C0A,
  VMCS_HOST_TR_SEL = 0x0C0C,
  /* 64-bit */
  VMCS_IO_BITMAP_A = 0x2000, VMCS_IO_BITMAP_B = 0x2002, VMCS_MSR_BITMAP = 0x2004,
  VMCS_TSC_OFFSET = 0x2010, VMCS_EPTP = 0x201A, VMCS_GUEST_PHYSICAL_ADDRESS = 0x2400,
  VMCS_LINK_POINTER = 0x2800, VMCS_GUEST_DEBUGCTL = 0x2802, VMCS_GUEST_EFER = 0x2806,
  VMCS_GUEST_PDPTE0 = 0x280A, VMCS_HOST_EFER = 0x2C02,
  /* 32-bit */
  VMCS_PIN_CONTROLS = 0x4000, VMCS_PROC_CONTROLS = 0x4002, VMCS_EXCEPTION_BITMAP = 0x4004,
  VMCS_PF_ERROR_MASK = 0x4006, VMCS_PF_ERROR_MATCH = 0x4008, VMCS_CR3_TARGET_COUNT = 0x400A,
  VMCS_EXIT_CONTROLS = 0x400C, VMCS_EXIT_MSR_STORE_COUNT = 0x400E,
  VMCS_EXIT_MSR_LOAD_COUNT = 0x4010, VMCS_ENTRY_CONTROLS = 0x4012,
  VMCS_ENTRY_MSR_LOAD_COUNT = 0x4014, VMCS_ENTRY_INTR_INFO = 0x4016,
  VMCS_ENTRY_EXCEPTION_ERROR = 0x4018, VMCS_ENTRY_INSTR_LEN = 0x401A,
  VMCS_PROC_CONTROLS2 = 0x401E,
  VMCS_INSTRUCTION_ERROR = 0x4400, VMCS_EXIT_REASON = 0x4402, VMCS_EXIT_INTR_INFO = 0x4404,
  VMCS_EXIT_INTR_ERROR = 0x4406, VMCS_IDT_VECTORING_INFO = 0x4408,
  VMCS_EXIT_INSTR_LEN = 0x440C, VMCS_EXIT_INSTR_INFO = 0x440E,
  VMCS_GUEST_ES_LIMIT = 0x4800, VMCS_GUEST_CS_LIMIT = 0x4802, VMCS_GUEST_SS_LIMIT = 0x4804,
  VMCS_GUEST_DS_LIMIT = 0x4806, VMCS_GUEST_FS_LIMIT = 0x4808, VMCS_GUEST_GS_LIMIT = 0x480A,
  VMCS_GUEST_LDTR_LIMIT = 0x480C, VMCS_GUEST_TR_LIMIT = 0x480E,
  VMCS_GUEST_GDTR_LIMIT = 0x4810, VMCS_GUEST_IDTR_LIMIT = 0x4812,
  VMCS_GUEST_ES_AR = 0x4814, VMCS_GUEST_CS_AR = 0x4816, VMCS_GUEST_SS_AR = 0x4818,
  VMCS_GUEST_DS_AR = 0x481A, VMCS_GUEST_FS_AR = 0x481C, VMCS_GUEST_GS_AR = 0x481E,
  VMCS_GUEST_LDTR_AR = 0x4820, VMCS_GUEST_TR_AR = 0x4822,
  VMCS_GUEST_INTERRUPTIBILITY = 0x4824, VMCS_GUEST_ACTIVITY = 0x4826,
  VMCS_GUEST_SYSENTER_CS = 0x482A, VMCS_PREEMPTION_TIMER = 0x482E,
  VMCS_HOST_SYSENTER_CS = 0x4C00,
  /* natural width */
  VMCS_CR0_MASK = 0x6000, VMCS_CR4_MASK = 0x6002, VMCS_CR0_SHADOW = 0x6004,
  VMCS_CR4_SHADOW = 0x6006, VMCS_EXIT_QUALIFICATION = 0x6400,
  VMCS_GUEST_LINEAR_ADDRESS = 0x640A,
  VMCS_GUEST_CR0 = 0x6800, VMCS_GUEST_CR3 = 0x6802, VMCS_GUEST_CR4 = 0x6804,
  VMCS_GUEST_ES_BASE = 0x6806, VMCS_GUEST_CS_BASE = 0x6808, VMCS_GUEST_SS_BASE = 0x680A,
  VMCS_GUEST_DS_BASE = 0x680C, VMCS_GUEST_FS_BASE = 0x680E, VMCS_GUEST_GS_BASE = 0x6810,
  VMCS_GUEST_LDTR_BASE = 0x6812, VMCS_GUEST_TR_BASE = 0x6814,
  VMCS_GUEST_GDTR_BASE = 0x6816, VMCS_GUEST_IDTR_BASE = 0x6818, VMCS_GUEST_DR7 = 0x681A,
  VMCS_GUEST_RSP = 0x681C, VMCS_GUEST_RIP = 0x681E, VMCS_GUEST_RFLAGS = 0x6820,
  VMCS_GUEST_PENDING_DBG = 0x6822, VMCS_GUEST_SYSENTER_ESP = 0x6824,
  VMCS_GUEST_SYSENTER_EIP = 0x6826,
  VMCS_HOST_CR0 = 0x6C00, VMCS_HOST_CR3 = 0x6C02, VMCS_HOST_CR4 = 0x6C04,
  VMCS_HOST_FS_BASE = 0x6C06, VMCS_HOST_GS_BASE = 0x6C08, VMCS_HOST_TR_BASE = 0x6C0A,
  VMCS_HOST_GDTR_BASE = 0x6C0C, VMCS_HOST_IDTR_BASE = 0x6C0E,
  VMCS_HOST_SYSENTER_ESP = 0x6C10, VMCS_HOST_SYSENTER_EIP = 0x6C12,
  VMCS_HOST_RSP = 0x6C14, VMCS_HOST_RIP = 0x6C16,
};

/* ---- basic exit reasons (SDM Vol. 3C, Appendix C) ---- */
enum {
  EXIT_EXCEPTION_NMI = 0, EXIT_EXTERNAL_INTERRUPT = 1, EXIT_TRIPLE_FAULT = 2,
  EXIT_INTERRUPT_WINDOW = 7, EXIT_NMI_WINDOW = 8, EXIT_CPUID = 10, EXIT_HLT = 12,
  EXIT_INVLPG = 14, EXIT_RDTSC = 16, EXIT_VMCALL = 18, EXIT_VMLAUNCH = 20,
  EXIT_CR_ACCESS = 28, EXIT_IO = 30, EXIT_RDMSR = 31, EXIT_WRMSR = 32,
  EXIT_ENTRY_FAIL_GUEST = 33, EXIT_EPT_VIOLATION = 48, EXIT_EPT_MISCONFIG = 49,
  EXIT_PREEMPTION_TIMER = 52,
};
#define EXIT_REASON_ENTRY_FAILURE 0x80000000u

/* VM-instruction error numbers (SDM Vol. 3C, 31.4). */
enum {
  VMERR_VMCLEAR_INVALID_ADDRESS = 2, VMERR_VMCLEAR_VMXON_POINTER = 3,
  VMERR_VMLAUNCH_NOT_CLEAR = 4, VMERR_VMRESUME_NOT_LAUNCHED = 5,
  VMERR_ENTRY_INVALID_CONTROLS = 7, VMERR_ENTRY_INVALID_HOST = 8,
  VMERR_VMPTRLD_INVALID_ADDRESS = 9, VMERR_VMPTRLD_VMXON_POINTER = 10,
  VMERR_VMPTRLD_BAD_REVISION = 11, VMERR_UNSUPPORTED_FIELD = 12,
  VMERR_VMWRITE_READ_ONLY = 13, VMERR_VMXON_IN_ROOT = 15, VMERR_INVALID_OPERAND = 28,
};

/* Outcome of a VMX instruction (SDM Vol. 3C, 31.2): success, VMfailInvalid (CF = 1) or
   VMfailValid (ZF = 1, with the error number in the VMCS). */
#define VM_SUCCEED 0
#define VM_FAIL_INVALID 1
#define VM_FAIL_VALID 2

/* Interruption-information format (SDM Vol. 3C, 25.8.3): vector, type, error code, valid. */
#define INTR_INFO_VALID (1u << 31)
#define INTR_INFO_ERROR_CODE (1u << 11)
#define INTR_TYPE_EXTERNAL (0u << 8)
#define INTR_TYPE_NMI (2u << 8)
#define INTR_TYPE_HW_EXCEPTION (3u << 8)
#define INTR_TYPE_SW_INTERRUPT (4u << 8)

/* Guest interruptibility state (SDM Vol. 3C, 25.4.2). */
#define BLOCKING_STI (1u << 0)
#define BLOCKING_MOV_SS (1u << 1)
#define BLOCKING_NMI (1u << 3)

/* ---- the instructions (SDM Vol. 3C, chapter 31) ---- */
#define VMX_RESULT "setc %b0; setz %b1"
static inline int vmx_result(u8 cf, u8 zf) {
  return cf ? VM_FAIL_INVALID : zf ? VM_FAIL_VALID : VM_SUCCEED;
}
static inline int vmxon(u64 pa) {
  u8 cf, zf;
  __asm__ volatile("vmxon %2; " VMX_RESULT : "=q"(cf), "=q"(zf) : "m"(pa) : "cc", "memory");
  return vmx_result(cf, zf);
}
static inline int vmxoff(void) {
  u8 cf, zf;
  __asm__ volatile("vmxoff; " VMX_RESULT : "=q"(cf), "=q"(zf) : : "cc", "memory");
  return vmx_result(cf, zf);
}
static inline int vmclear(u64 pa) {
  u8 cf, zf;
  __asm__ volatile("vmclear %2; " VMX_RESULT : "=q"(cf), "=q"(zf) : "m"(pa) : "cc", "memory");
  return vmx_result(cf, zf);
}
static inline int vmptrld(u64 pa) {
  u8 cf, zf;
  __asm__ volatile("vmptrld %2; " VMX_RESULT : "=q"(cf), "=q"(zf) : "m"(pa) : "cc", "memory");
  return vmx_result(cf, zf);
}
static inline u64 vmptrst(void) {
  u64 pa = 0;
  __asm__ volatile("vmptrst %0" : "=m"(pa) : : "memory");
  return pa;
}
/* VMREAD of a natural-width value (64 bits on amd64, 32 in 32-bit code); *ok = outcome. */
static inline uptr vmread_r(uptr field, int *outcome) {
  uptr v = 0;
  u8 cf, zf;
  __asm__ volatile("vmread %3, %2; " VMX_RESULT : "=q"(cf), "=q"(zf), "+r"(v) : "r"(field) : "cc");
  *outcome = vmx_result(cf, zf);
  return v;
}
static inline uptr vmread(uptr field) {
  int outcome;
  return vmread_r(field, &outcome);
}
static inline int vmwrite(uptr field, uptr value) {
  u8 cf, zf;
  __asm__ volatile("vmwrite %3, %2; " VMX_RESULT : "=q"(cf), "=q"(zf) : "r"(field), "rm"(value)
                   : "cc");
  return vmx_result(cf, zf);
}
/* 64-bit fields: in 32-bit code, the high half is the field's "HIGH" encoding (bit 0). */
static inline int vmwrite64(uptr field, u64 value) {
#ifdef __x86_64__
  return vmwrite(field, value);
#else
  int r = vmwrite(field, (u32)value);
  return r ? r : vmwrite(field | 1, (u32)(value >> 32));
#endif
}
static inline u64 vmread64(uptr field) {
#ifdef __x86_64__
  return vmread(field);
#else
  return vmread(field) | ((u64)vmread(field | 1) << 32);
#endif
}
struct invept_desc {
  u64 eptp, reserved;
};
static inline int invept(uptr type, u64 eptp) {
  struct invept_desc d = {eptp, 0};
  u8 cf, zf;
  __asm__ volatile("invept %2, %3; " VMX_RESULT : "=q"(cf), "=q"(zf) : "m"(d), "r"(type)
                   : "cc", "memory");
  return vmx_result(cf, zf);
}
struct invvpid_desc {
  u64 vpid, linear;
};
static inline int invvpid(uptr type, u16 vpid, u64 linear) {
  struct invvpid_desc d = {vpid, linear};
  u8 cf, zf;
  __asm__ volatile("invvpid %2, %3; " VMX_RESULT : "=q"(cf), "=q"(zf) : "m"(d), "r"(type)
                   : "cc", "memory");
  return vmx_result(cf, zf);
}
#define INVEPT_SINGLE 1
#define INVEPT_ALL 2
#define INVVPID_ADDRESS 0
#define INVVPID_SINGLE 1
#define INVVPID_ALL 2

/* Where TRY_BEGIN recorded the faulting instruction (trap.c / trap64.c). */
#ifdef __x86_64__
#define TRAP_FAULT_IP trap_fault_rip
#else
#define TRAP_FAULT_IP trap_fault_eip
#endif

/* ---- the library (vmx.c) ---- */

/* The guest's general registers as the last VM exit left them (RSP and RIP are in the
   VMCS). The host may change them before the next vmx_run. Offsets are used by vmx_entry*.S. */
struct vmx_regs {
  uptr ax, bx, cx, dx, si, di, bp;
#ifdef __x86_64__
  uptr r8, r9, r10, r11, r12, r13, r14, r15;
#endif
};

struct vmx_guest {
  struct vmx_regs regs;
  int launched;    /* VMLAUNCH succeeded: vmx_run uses VMRESUME */
  u32 exit_reason; /* of the last exit (bit 31: VM-entry failure) */
  uptr qualification;
  u32 instr_len;
};
extern struct vmx_guest vmx_guest;

/* The VMXON region and one VMCS region (4 KiB aligned, identity-mapped). */
extern u8 vmxon_region[4096], vmcs_region[4096];

/* Capability MSR facts: CPUID says VMX exists, and the control bits allowed to be 1/0. */
int vmx_available(void);
u32 vmx_ctl_allowed1(u32 msr);
u32 vmx_ctl_allowed0(u32 msr);
/* A control value: `want`, plus the bits that must be 1, less those that must be 0. */
u32 vmx_adjust(u32 msr, u32 want);
/* The control MSR to consult for a control field: the TRUE_ form when IA32_VMX_BASIC[55]. */
u32 vmx_pin_msr(void);
u32 vmx_proc_msr(void);
u32 vmx_exit_msr(void);
u32 vmx_entry_msr(void);

/* Enters VMX operation: IA32_FEATURE_CONTROL (locked with VMXON outside SMX unless already
   locked), CR0 and CR4 adjusted to the fixed bits (CR4.VMXE), VMXON. Returns VM_SUCCEED or
   the failure (and prints why). */
int vmx_enable(void);

/* VMCLEAR and VMPTRLD of vmcs_region, then every field needed for a VM entry of `entry` on
   the stack ending at `stack_top`: controls adjusted to the capability MSRs (`pin`, `proc`,
   `proc2`, `exit`, `entry_ctl` are wishes; reserved bits come from the MSRs), the host state
   from the current processor, the guest state a copy of it. Returns VM_SUCCEED or the first
   failed VMX instruction. */
int vmx_setup(void (*entry)(void), void *stack_top, u32 pin, u32 proc, u32 proc2, u32 exit_ctl,
              u32 entry_ctl);

/* Runs the guest: VMLAUNCH the first time, VMRESUME after; returns when it exits, with
   vmx_guest's exit fields filled in and VM_SUCCEED, or VM_FAIL_* if the instruction failed. */
int vmx_run(void);
/* Advances the guest's RIP past the instruction that exited (the exit's instruction length). */
void vmx_skip_instruction(void);

/* The assembly part (vmx_entry*.S): saves the host's callee-saved registers, writes
   HOST_RSP, loads the guest registers and executes VMLAUNCH (resume = 0) or VMRESUME. A VM
   exit comes back through vmx_exit_stub (HOST_RIP), which stores the guest registers and
   returns VM_SUCCEED from here; a failed instruction returns VM_FAIL_*. */
int vmx_enter(struct vmx_regs *regs, int resume);
void vmx_exit_stub(void);

/* ---- EPT (SDM Vol. 3C, 29.3): an identity map of 0-4 GiB for the tests to change ---- */
#define EPT_R 0x1ull
#define EPT_W 0x2ull
#define EPT_X 0x4ull
#define EPT_RWX 0x7ull
#define EPT_WB (6ull << 3) /* leaf memory type */
#define EPT_PS 0x80ull     /* a PDE or PDPTE that maps a page */
#define EPT_A 0x100ull
#define EPT_D 0x200ull
#define EPTP_WB_4LEVEL 0x1Eull /* EPTP bits 5:0: WB, page-walk length 4 */
#define EPTP_AD 0x40ull

/* Builds EPT paging structures that map guest-physical 0-4 GiB to the same host-physical
   addresses with 2 MiB pages, read/write/execute, WB; returns the EPTP. */
u64 ept_identity(void);
/* The EPT entries for a guest-physical address: PDPTE, PDE, and the PTE (the 2 MiB page
   that maps it is split into 4 KiB pages with the same rights on first use). */
volatile u64 *ept_pdpte(u64 gpa);
volatile u64 *ept_pde(u64 gpa);
volatile u64 *ept_pte(u64 gpa);

/* The name of a basic exit reason, for messages. */
const char *vmx_exit_name(u32 reason);

#endif
