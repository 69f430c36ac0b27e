/**
 * The KVM user-space ABI on x86-64, in one place: struct layouts (byte offsets and sizes),
 * ioctl request numbers and the constants SHV uses. Names are those of the Linux UAPI
 * headers (include/uapi/linux/kvm.h, arch/x86/include/uapi/asm/kvm.h) and of the KVM API
 * documentation (Documentation/virt/kvm/api.rst), so each line can be checked against them;
 * test/kvm-abi.test.ts compares every offset, size and number with the installed headers.
 */

/** A C struct: its size and the byte offset of each field, named as in C ("io.port"). */
export interface StructLayout<F extends string = string> {
  readonly name: string;
  readonly size: number;
  readonly fields: Readonly<Record<F, number>>;
}

function struct<F extends string>(
  name: string,
  size: number,
  fields: Record<F, number>,
): StructLayout<F> {
  return { name, size, fields };
}

/** The exit union of kvm_run starts here; it is padded to 256 bytes. */
const RUN_UNION = 32;

/** The shared page(s) of a vCPU (mmap of the vCPU fd): exit information. */
export const kvm_run = struct("kvm_run", 2352, {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  "hw.hardware_exit_reason": RUN_UNION,
  "fail_entry.hardware_entry_failure_reason": RUN_UNION,
  "fail_entry.cpu": RUN_UNION + 8,
  "ex.exception": RUN_UNION,
  "ex.error_code": RUN_UNION + 4,
  "io.direction": RUN_UNION,
  "io.size": RUN_UNION + 1,
  "io.port": RUN_UNION + 2,
  "io.count": RUN_UNION + 4,
  "io.data_offset": RUN_UNION + 8,
  "debug.arch.exception": RUN_UNION,
  "debug.arch.pc": RUN_UNION + 8,
  "debug.arch.dr6": RUN_UNION + 16,
  "debug.arch.dr7": RUN_UNION + 24,
  "mmio.phys_addr": RUN_UNION,
  "mmio.data": RUN_UNION + 8,
  "mmio.len": RUN_UNION + 16,
  "mmio.is_write": RUN_UNION + 20,
  "internal.suberror": RUN_UNION,
  "internal.ndata": RUN_UNION + 4,
  "internal.data": RUN_UNION + 8,
  "emulation_failure.flags": RUN_UNION + 8,
  "emulation_failure.insn_size": RUN_UNION + 16,
  "emulation_failure.insn_bytes": RUN_UNION + 17,
  "system_event.type": RUN_UNION,
  "system_event.ndata": RUN_UNION + 4,
  "system_event.data": RUN_UNION + 8,
  "msr.error": RUN_UNION,
  "msr.reason": RUN_UNION + 8,
  "msr.index": RUN_UNION + 12,
  "msr.data": RUN_UNION + 16,
  kvm_valid_regs: RUN_UNION + 256,
  kvm_dirty_regs: RUN_UNION + 264,
  s: RUN_UNION + 272,
});

/** General-purpose registers, RIP and RFLAGS, all 64-bit (KVM_GET_REGS/KVM_SET_REGS). */
export const kvm_regs = struct("kvm_regs", 144, {
  rax: 0,
  rbx: 8,
  rcx: 16,
  rdx: 24,
  rsi: 32,
  rdi: 40,
  rsp: 48,
  rbp: 56,
  r8: 64,
  r9: 72,
  r10: 80,
  r11: 88,
  r12: 96,
  r13: 104,
  r14: 112,
  r15: 120,
  rip: 128,
  rflags: 136,
});

/** A segment register with its descriptor cache, field by field. */
export const kvm_segment = struct("kvm_segment", 24, {
  base: 0,
  limit: 8,
  selector: 12,
  type: 14,
  present: 15,
  dpl: 16,
  db: 17,
  s: 18,
  l: 19,
  g: 20,
  avl: 21,
  unusable: 22,
});

/** GDTR or IDTR. */
export const kvm_dtable = struct("kvm_dtable", 16, { base: 0, limit: 8 });

/** Segment, descriptor-table and control registers (KVM_GET_SREGS/KVM_SET_SREGS). */
export const kvm_sregs = struct("kvm_sregs", 312, {
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  tr: 144,
  ldt: 168,
  gdt: 192,
  idt: 208,
  cr0: 224,
  cr2: 232,
  cr3: 240,
  cr4: 248,
  cr8: 256,
  efer: 264,
  apic_base: 272,
  interrupt_bitmap: 280,
});

/** kvm_sregs with the PAE PDPTEs (KVM_GET_SREGS2/KVM_SET_SREGS2, KVM_CAP_SREGS2). */
export const kvm_sregs2 = struct("kvm_sregs2", 320, {
  cs: 0,
  cr0: 224,
  efer: 264,
  apic_base: 272,
  flags: 280,
  pdptrs: 288,
});

/** The segment registers in kvm_sregs order, for loops. */
export const SREGS_SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

export const kvm_msr_entry = struct("kvm_msr_entry", 16, { index: 0, reserved: 4, data: 8 });
/** Header of an MSR list; kvm_msr_entry records follow at `entries`. */
export const kvm_msrs = struct("kvm_msrs", 8, { nmsrs: 0, pad: 4, entries: 8 });

export const kvm_cpuid_entry2 = struct("kvm_cpuid_entry2", 40, {
  function: 0,
  index: 4,
  flags: 8,
  eax: 12,
  ebx: 16,
  ecx: 20,
  edx: 24,
});
/** Header of a CPUID table; kvm_cpuid_entry2 records follow at `entries`. */
export const kvm_cpuid2 = struct("kvm_cpuid2", 8, { nent: 0, padding: 4, entries: 8 });

/** The local APIC register page as KVM_GET_LAPIC returns it (in-kernel LAPIC only). */
export const kvm_lapic_state = struct("kvm_lapic_state", 0x400, { regs: 0 });

/** Pending and injected events, interrupt shadow and NMI masking (KVM_GET/SET_VCPU_EVENTS). */
export const kvm_vcpu_events = struct("kvm_vcpu_events", 64, {
  "exception.injected": 0,
  "exception.nr": 1,
  "exception.has_error_code": 2,
  "exception.pending": 3,
  "exception.error_code": 4,
  "interrupt.injected": 8,
  "interrupt.nr": 9,
  "interrupt.soft": 10,
  "interrupt.shadow": 11,
  "nmi.injected": 12,
  "nmi.pending": 13,
  "nmi.masked": 14,
  sipi_vector: 16,
  flags: 20,
  "smi.smm": 24,
  "triple_fault.pending": 28,
  exception_has_payload: 55,
  exception_payload: 56,
});

export const kvm_debugregs = struct("kvm_debugregs", 128, { db: 0, dr6: 32, dr7: 40, flags: 48 });

/** x87 and SSE state in FXSAVE layout (KVM_GET_FPU/KVM_SET_FPU). */
export const kvm_fpu = struct("kvm_fpu", 416, {
  fpr: 0,
  fcw: 128,
  fsw: 130,
  ftwx: 132,
  last_opcode: 134,
  last_ip: 136,
  last_dp: 144,
  xmm: 152,
  mxcsr: 408,
});

export const kvm_xcrs = struct("kvm_xcrs", 392, { nr_xcrs: 0, flags: 4, xcrs: 8 });

export const kvm_userspace_memory_region = struct("kvm_userspace_memory_region", 32, {
  slot: 0,
  flags: 4,
  guest_phys_addr: 8,
  memory_size: 16,
  userspace_addr: 24,
});

/** A linear-to-physical translation through the guest's page tables (KVM_TRANSLATE). */
export const kvm_translation = struct("kvm_translation", 24, {
  linear_address: 0,
  physical_address: 8,
  valid: 16,
  writeable: 17,
  usermode: 18,
});

export const kvm_interrupt = struct("kvm_interrupt", 4, { irq: 0 });

/** The signal mask in effect during KVM_RUN; `len` bytes of kernel sigset follow. */
export const kvm_signal_mask = struct("kvm_signal_mask", 4, { len: 0, sigset: 4 });

export const kvm_guest_debug = struct("kvm_guest_debug", 72, {
  control: 0,
  pad: 4,
  "arch.debugreg": 8,
});

export const kvm_enable_cap = struct("kvm_enable_cap", 104, { cap: 0, flags: 4, args: 8 });

export const kvm_msr_filter_range = struct("kvm_msr_filter_range", 24, {
  flags: 0,
  nmsrs: 4,
  base: 8,
  bitmap: 16,
});
export const kvm_msr_filter = struct("kvm_msr_filter", 392, { flags: 0, ranges: 8 });

/** Every layout above, for the tests that compare them with the C headers. */
export const ALL_STRUCTS: readonly StructLayout[] = [
  kvm_run,
  kvm_regs,
  kvm_segment,
  kvm_dtable,
  kvm_sregs,
  kvm_sregs2,
  kvm_msr_entry,
  kvm_msrs,
  kvm_cpuid_entry2,
  kvm_cpuid2,
  kvm_lapic_state,
  kvm_vcpu_events,
  kvm_debugregs,
  kvm_fpu,
  kvm_xcrs,
  kvm_userspace_memory_region,
  kvm_translation,
  kvm_interrupt,
  kvm_signal_mask,
  kvm_guest_debug,
  kvm_enable_cap,
  kvm_msr_filter_range,
  kvm_msr_filter,
];

// ---------------------------------------------------------------- ioctl numbers

/** asm-generic/ioctl.h: direction bits (none, write = user to kernel, read). */
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
/** The ioctl "type" byte of every KVM request. */
const KVMIO = 0xae;

function ioc(dir: number, nr: number, size: number): number {
  // _IOC(dir, type, nr, size): dir in bits 31:30, size in 29:16, type 15:8, nr 7:0.
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
const io = (nr: number) => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, s: StructLayout | number) =>
  ioc(IOC_READ, nr, typeof s === "number" ? s : s.size);
const iow = (nr: number, s: StructLayout | number) =>
  ioc(IOC_WRITE, nr, typeof s === "number" ? s : s.size);
const iowr = (nr: number, s: StructLayout) => ioc(IOC_READ | IOC_WRITE, nr, s.size);

/** The ioctl requests SHV issues, named as the kvm.h macros. */
export const KVM = {
  // on /dev/kvm
  GET_API_VERSION: io(0x00),
  CREATE_VM: io(0x01),
  CHECK_EXTENSION: io(0x03),
  GET_VCPU_MMAP_SIZE: io(0x04),
  GET_SUPPORTED_CPUID: iowr(0x05, kvm_cpuid2),
  // on a VM
  CREATE_VCPU: io(0x41),
  SET_USER_MEMORY_REGION: iow(0x46, kvm_userspace_memory_region),
  SET_TSS_ADDR: io(0x47),
  SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  ENABLE_CAP: iow(0xa3, kvm_enable_cap),
  X86_SET_MSR_FILTER: iow(0xc6, kvm_msr_filter),
  // on a vCPU
  RUN: io(0x80),
  GET_REGS: ior(0x81, kvm_regs),
  SET_REGS: iow(0x82, kvm_regs),
  GET_SREGS: ior(0x83, kvm_sregs),
  SET_SREGS: iow(0x84, kvm_sregs),
  TRANSLATE: iowr(0x85, kvm_translation),
  INTERRUPT: iow(0x86, kvm_interrupt),
  GET_MSRS: iowr(0x88, kvm_msrs),
  SET_MSRS: iow(0x89, kvm_msrs),
  SET_SIGNAL_MASK: iow(0x8b, kvm_signal_mask),
  GET_FPU: ior(0x8c, kvm_fpu),
  SET_FPU: iow(0x8d, kvm_fpu),
  GET_LAPIC: ior(0x8e, kvm_lapic_state),
  SET_LAPIC: iow(0x8f, kvm_lapic_state),
  SET_CPUID2: iow(0x90, kvm_cpuid2),
  NMI: io(0x9a),
  SET_GUEST_DEBUG: iow(0x9b, kvm_guest_debug),
  GET_VCPU_EVENTS: ior(0x9f, kvm_vcpu_events),
  SET_VCPU_EVENTS: iow(0xa0, kvm_vcpu_events),
  GET_DEBUGREGS: ior(0xa1, kvm_debugregs),
  SET_DEBUGREGS: iow(0xa2, kvm_debugregs),
  GET_TSC_KHZ: io(0xa3),
  GET_XCRS: ior(0xa6, kvm_xcrs),
  SET_XCRS: iow(0xa7, kvm_xcrs),
  GET_SREGS2: ior(0xcc, kvm_sregs2),
  SET_SREGS2: iow(0xcd, kvm_sregs2),
} as const;

// ---------------------------------------------------------------- constants

/** KVM_GET_API_VERSION has returned 12 since Linux 2.6.22; anything else is refused. */
export const KVM_API_VERSION = 12;

/** Capabilities (KVM_CHECK_EXTENSION). */
export const KVM_CAP = {
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  SET_GUEST_DEBUG: 23,
  INTERNAL_ERROR_DATA: 40,
  VCPU_EVENTS: 41,
  DEBUGREGS: 50,
  XCRS: 56,
  MAX_VCPUS: 66,
  IMMEDIATE_EXIT: 136,
  NESTED_STATE: 157,
  X86_USER_SPACE_MSR: 188,
  X86_MSR_FILTER: 189,
} as const;

/** kvm_run.exit_reason values. */
export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
  X86_BUS_LOCK: 33,
  NOTIFY: 37,
} as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** kvm_run.internal.suberror values. */
export const KVM_INTERNAL_ERROR = {
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
} as const;
export const KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1;

/** kvm_run.system_event.type values. */
export const KVM_SYSTEM_EVENT = { SHUTDOWN: 1, RESET: 2, CRASH: 3 } as const;

/** KVM_CAP_X86_USER_SPACE_MSR: which failed MSR accesses exit to user space. */
export const KVM_MSR_EXIT_REASON_INVAL = 1 << 0;
export const KVM_MSR_EXIT_REASON_UNKNOWN = 1 << 1;
export const KVM_MSR_EXIT_REASON_FILTER = 1 << 2;
/** kvm_msr_filter flags and kvm_msr_filter_range flags. */
export const KVM_MSR_FILTER_DEFAULT_ALLOW = 0;
export const KVM_MSR_FILTER_READ = 1 << 0;
export const KVM_MSR_FILTER_WRITE = 1 << 1;

/** kvm_vcpu_events.flags: which optional fields KVM_SET_VCPU_EVENTS applies. */
export const KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1;
export const KVM_VCPUEVENT_VALID_SHADOW = 0x4;

/** kvm_guest_debug.control bits. */
export const KVM_GUESTDBG_ENABLE = 0x1;
export const KVM_GUESTDBG_SINGLESTEP = 0x2;
export const KVM_GUESTDBG_USE_SW_BP = 0x10000;

/** kvm_run.kvm_valid_regs / kvm_dirty_regs bits (KVM_CAP_SYNC_REGS). */
export const KVM_SYNC_X86_REGS = 1;
export const KVM_SYNC_X86_SREGS = 2;
export const KVM_SYNC_X86_EVENTS = 4;

/** kvm_cpuid_entry2.flags: the entry depends on ECX (the subleaf). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;
