/**
 * Model-specific registers: one declarative table (SDM Vol. 4, chapter 2) naming every MSR
 * this CPU implements, its reset value and which bits software may write. RDMSR or WRMSR
 * of any other index, or a write that sets a reserved bit, raises #GP(0).
 */
import { EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, FS, GP, GS } from "./arch.js";
import { fault } from "./fault.js";
import type { Cpu } from "./cpu.js";
import { CAPABILITY_MSR_NAMES, CAPABILITY_MSRS } from "./vmx/capabilities.js";

/** A 64-bit MSR value as [low dword, high dword], both uint32. */
export type Msr64 = [number, number];

interface MsrDef {
  index: number;
  name: string;
  /** Value after RESET. */
  reset: Msr64;
  /** Bits WRMSR may set; a write that sets any other bit raises #GP(0). */
  writable: Msr64;
  /** Bits written in `writable` but kept from the old value (read-only status bits). */
  readOnly?: Msr64;
  /** The value is an address: writing a non-canonical one raises #GP(0). */
  canonical?: boolean;
  /** Computed registers (e.g. the TSC) read and write through the CPU. */
  read?: (c: Cpu) => Msr64;
  write?: (c: Cpu, v: Msr64) => void;
}

export const IA32_TIME_STAMP_COUNTER = 0x10;
export const IA32_APIC_BASE = 0x1b;
export const IA32_FEATURE_CONTROL = 0x3a;
export const IA32_SYSENTER_CS = 0x174;
export const IA32_SYSENTER_ESP = 0x175;
export const IA32_SYSENTER_EIP = 0x176;
export const IA32_EFER = 0xc0000080;
export const IA32_TSC_AUX = 0xc0000103;
export const IA32_STAR = 0xc0000081;
export const IA32_LSTAR = 0xc0000082;
export const IA32_FMASK = 0xc0000084;
export const IA32_FS_BASE = 0xc0000100;
export const IA32_GS_BASE = 0xc0000101;
export const IA32_KERNEL_GS_BASE = 0xc0000102;
/** IA32_APIC_BASE bit 8: this processor is the bootstrap processor. */
export const APIC_BASE_BSP = 1 << 8;
/** IA32_FEATURE_CONTROL bit 0: lock; the MSR cannot be written until RESET (SDM 24.7). */
export const FEATURE_CONTROL_LOCK = 1 << 0;
/** IA32_FEATURE_CONTROL bit 2: VMXON is allowed outside SMX operation (SDM 24.7). */
export const FEATURE_CONTROL_VMX_OUTSIDE_SMX = 1 << 2;

const ALL: Msr64 = [0xffffffff, 0xffffffff];
const NONE: Msr64 = [0, 0];
/** Bits of an MTRR physical base/mask or PAT entry that exist with MAXPHYADDR 36. */
const PHYS36_HI = 0xf;

const TABLE: MsrDef[] = [
  {
    index: IA32_TIME_STAMP_COUNTER,
    name: "IA32_TIME_STAMP_COUNTER",
    reset: NONE,
    writable: ALL,
    read: (c) => c.msr.readTsc(),
    // A WRMSR to the TSC moves IA32_TSC_ADJUST by the same amount (SDM Vol. 3B, 18.17.3).
    write: (c, v) => {
      c.msr.tscAdjust += v[1] * 0x100000000 + v[0] - c.msr.tsc();
      c.msr.writeTsc(v);
    },
  },
  // IA32_TSC_ADJUST: writing it moves the TSC by the change (SDM Vol. 3B, 18.17.3).
  {
    index: 0x3b,
    name: "IA32_TSC_ADJUST",
    reset: NONE,
    writable: ALL,
    read: (c) => signed64(c.msr.tscAdjust),
    write: (c, v) => {
      const adjust = (v[1] | 0) * 0x100000000 + v[0];
      const t = c.msr.tsc() + adjust - c.msr.tscAdjust;
      c.msr.tscAdjust = adjust;
      c.msr.writeTsc(signed64(t));
    },
  },
  { index: 0x17, name: "IA32_PLATFORM_ID", reset: NONE, writable: NONE },
  // The BSP flag (bit 8) and the global enable (bit 11), base 0xFEE00000 (SDM 11.4.4).
  {
    index: IA32_APIC_BASE,
    name: "IA32_APIC_BASE",
    reset: [0xfee00900, 0],
    writable: [0xfffff900, PHYS36_HI],
    readOnly: [0x100, 0],
  },
  // Bit 0 lock, bit 2 VMX outside SMX (no SMX, so bit 1 is reserved). SHV has no firmware
  // code; the MSR starts as a BIOS leaves it for a hypervisor: locked, VMX enabled.
  {
    index: IA32_FEATURE_CONTROL,
    name: "IA32_FEATURE_CONTROL",
    reset: [FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMX_OUTSIDE_SMX, 0],
    writable: [FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMX_OUTSIDE_SMX, 0],
  },
  { index: 0x8b, name: "IA32_BIOS_SIGN_ID", reset: NONE, writable: ALL },
  // Machine-check architecture with no error-reporting banks (SDM Vol. 3B, 17.3.1.1):
  // hypervisor tests probe the bank count before touching IA32_MCi_* MSRs.
  { index: 0x179, name: "IA32_MCG_CAP", reset: NONE, writable: NONE, write: () => fault(GP, 0) },
  { index: 0x17a, name: "IA32_MCG_STATUS", reset: NONE, writable: NONE },
  // MTRR capability: 8 variable ranges, fixed ranges, write-combining (SDM 12.11.1).
  { index: 0xfe, name: "IA32_MTRRCAP", reset: [0x508, 0], writable: NONE },
  { index: IA32_SYSENTER_CS, name: "IA32_SYSENTER_CS", reset: NONE, writable: [0xffff, 0] },
  {
    index: IA32_SYSENTER_ESP,
    name: "IA32_SYSENTER_ESP",
    reset: NONE,
    writable: ALL,
    canonical: true,
  },
  {
    index: IA32_SYSENTER_EIP,
    name: "IA32_SYSENTER_EIP",
    reset: NONE,
    writable: ALL,
    canonical: true,
  },
  // Fast strings (bit 0) and enhanced SpeedStep-like bits are fixed; keep what BIOSes set.
  { index: 0x1a0, name: "IA32_MISC_ENABLE", reset: [0x1, 0], writable: [0x1, 0] },
  ...Array.from({ length: 16 }, (_, k): MsrDef => ({
    index: 0x200 + k,
    name: `IA32_MTRR_PHYS${k & 1 ? "MASK" : "BASE"}${k >> 1}`,
    reset: NONE,
    writable: k & 1 ? [0xfffff800, PHYS36_HI] : [0xfffff0ff, PHYS36_HI],
  })),
  ...[0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f].map(
    (index): MsrDef => ({
      index,
      name: `IA32_MTRR_FIX_${index.toString(16)}`,
      reset: NONE,
      writable: ALL,
    }),
  ),
  // PAT: power-up value WB, WT, UC-, UC, WB, WT, UC-, UC (SDM 12.12.4).
  {
    index: 0x277,
    name: "IA32_PAT",
    reset: [0x00070406, 0x00070406],
    writable: [0x07070707, 0x07070707],
  },
  { index: 0x2ff, name: "IA32_MTRR_DEF_TYPE", reset: NONE, writable: [0xcff, 0] },
  // EFER: SCE, LME and NXE; LMA is read-only. LME cannot change while paging is on
  // (SDM Vol. 3A, 10.8.5: IA-32e mode is entered by setting CR0.PG).
  {
    index: IA32_EFER,
    name: "IA32_EFER",
    reset: NONE,
    writable: [EFER_SCE | EFER_LME | EFER_NXE, 0],
    readOnly: [EFER_LMA, 0],
    write: (c, v) => {
      if ((v[0] ^ c.msr.efer) & EFER_LME && c.paging) fault(GP, 0);
      c.msr.efer = v[0];
      c.flushTlb(true);
      c.modeChanged();
    },
    read: (c) => [c.msr.efer >>> 0, 0],
  },
  { index: IA32_TSC_AUX, name: "IA32_TSC_AUX", reset: NONE, writable: [0xffffffff, 0] },
  // SYSCALL/SYSRET (SDM Vol. 2, SYSCALL): selectors in STAR, targets in LSTAR/CSTAR, the
  // RFLAGS mask in FMASK.
  { index: 0xc0000081, name: "IA32_STAR", reset: NONE, writable: ALL },
  { index: IA32_LSTAR, name: "IA32_LSTAR", reset: NONE, writable: ALL, canonical: true },
  { index: 0xc0000083, name: "IA32_CSTAR", reset: NONE, writable: ALL, canonical: true },
  { index: IA32_FMASK, name: "IA32_FMASK", reset: NONE, writable: [0xffffffff, 0] },
  // The FS and GS bases are the segment registers' hidden bases (SDM Vol. 3A, 3.4.4).
  {
    index: IA32_FS_BASE,
    name: "IA32_FS_BASE",
    reset: NONE,
    writable: ALL,
    canonical: true,
    read: (c) => [c.segs[FS].base >>> 0, c.segs[FS].baseHi >>> 0],
    write: (c, v) => setBase(c, FS, v),
  },
  {
    index: IA32_GS_BASE,
    name: "IA32_GS_BASE",
    reset: NONE,
    writable: ALL,
    canonical: true,
    read: (c) => [c.segs[GS].base >>> 0, c.segs[GS].baseHi >>> 0],
    write: (c, v) => setBase(c, GS, v),
  },
  // The VMX capability MSRs (SDM Vol. 3D, Appendix A): read-only, values derived in
  // vmx/capabilities.ts from what is implemented.
  ...[...CAPABILITY_MSRS].map(([index, value]): MsrDef => ({
    index,
    name: CAPABILITY_MSR_NAMES[index],
    reset: value,
    writable: NONE,
    write: () => fault(GP, 0),
  })),
  {
    index: IA32_KERNEL_GS_BASE,
    name: "IA32_KERNEL_GS_BASE",
    reset: NONE,
    writable: ALL,
    canonical: true,
  },
];

/** A signed value (exact double) as the halves of its 64-bit two's complement. */
function signed64(v: number): Msr64 {
  return [
    (((v % 0x100000000) + 0x100000000) % 0x100000000) >>> 0,
    Math.floor(v / 0x100000000) >>> 0,
  ];
}

/** Sets a 64-bit FS or GS base, keeping the rest of the segment register. */
function setBase(c: Cpu, seg: number, v: Msr64): void {
  const s = c.segs[seg];
  s.base = v[0] | 0;
  s.baseHi = v[1] | 0;
  s.flat = false; // a nonzero base needs the checked address path
}

const BY_INDEX = new Map(TABLE.map((d) => [d.index >>> 0, d]));

/** x2APIC registers (SDM Vol. 3A, Table 11-6) and IA32_TSC_DEADLINE: the local APIC's. */
export const X2APIC_MSR_FIRST = 0x800;
export const X2APIC_MSR_LAST = 0x8ff;
export const IA32_TSC_DEADLINE = 0x6e0;
function isApicMsr(index: number): boolean {
  index >>>= 0;
  return (index >= X2APIC_MSR_FIRST && index <= X2APIC_MSR_LAST) || index === IA32_TSC_DEADLINE;
}

/** Name of MSR `index`, for traces. */
export function msrName(index: number): string {
  return BY_INDEX.get(index >>> 0)?.name ?? `MSR 0x${(index >>> 0).toString(16)}`;
}

/** The MSR state of one logical processor. */
export class MsrFile {
  private readonly values = new Map<number, Msr64>();
  efer = 0;
  /** TSC = retired instructions + offset (virtual time: deterministic). */
  private tscOffset = 0;
  /** IA32_TSC_ADJUST as a signed exact double. */
  tscAdjust = 0;

  constructor(private readonly cpu: Cpu) {}

  reset(): void {
    for (const d of TABLE) this.values.set(d.index >>> 0, [d.reset[0] >>> 0, d.reset[1] >>> 0]);
    // Only the bootstrap processor has IA32_APIC_BASE.BSP set (SDM Vol. 3A, 11.4.4).
    if (this.cpu.id !== 0) this.values.get(IA32_APIC_BASE)![0] &= ~APIC_BASE_BSP;
    this.efer = 0;
    this.tscOffset = -this.now();
    this.tscAdjust = 0;
  }

  /** Virtual time in TSC ticks: the machine's clock, or this vCPU's retired instructions. */
  private now(): number {
    const clock = this.cpu.host.tsc;
    return clock ? clock() : this.cpu.instructionsRetired;
  }

  /** The TSC as a double (exact below 2^53). */
  tsc(): number {
    return this.now() + this.tscOffset;
  }
  readTsc(): Msr64 {
    const t = this.tsc();
    return [(t % 0x100000000) >>> 0, Math.floor(t / 0x100000000) >>> 0];
  }
  writeTsc(v: Msr64): void {
    this.tscOffset = v[1] * 0x100000000 + v[0] - this.now();
  }

  /**
   * Sets an MSR as firmware or a test harness would leave it, without WRMSR's checks and
   * side effects (e.g. an unlocked IA32_FEATURE_CONTROL).
   */
  load(index: number, lo: number, hi: number): void {
    const d = BY_INDEX.get(index >>> 0);
    if (d === undefined) throw new Error(`no MSR 0x${(index >>> 0).toString(16)}`);
    this.values.set(d.index >>> 0, [lo >>> 0, hi >>> 0]);
  }

  /** RDMSR (SDM Vol. 2): #GP(0) for an index that does not exist. */
  read(index: number): Msr64 {
    if (isApicMsr(index) && this.cpu.host.apic) {
      return this.cpu.host.apic.readMsr(index >>> 0) ?? fault(GP, 0);
    }
    const d = BY_INDEX.get(index >>> 0);
    if (d === undefined) fault(GP, 0);
    return d.read ? d.read(this.cpu) : (this.values.get(d.index >>> 0) as Msr64);
  }

  /** WRMSR (SDM Vol. 2): #GP(0) for an unknown index or a reserved bit set. */
  write(index: number, lo: number, hi: number): void {
    if (isApicMsr(index) && this.cpu.host.apic) {
      if (!this.cpu.host.apic.writeMsr(index >>> 0, lo >>> 0, hi >>> 0)) fault(GP, 0);
      return;
    }
    const d = BY_INDEX.get(index >>> 0);
    if (d === undefined) fault(GP, 0);
    const old = this.read(index);
    const ro = d.readOnly ?? NONE;
    const wlo = (d.writable[0] | ro[0]) >>> 0;
    const whi = (d.writable[1] | ro[1]) >>> 0;
    if ((lo & ~wlo) !== 0 || (hi & ~whi) !== 0) fault(GP, 0);
    // Addresses must be canonical: bits 63:47 all equal (SDM Vol. 2, WRMSR).
    if (d.canonical && (hi << 16) >> 16 !== (hi | 0)) fault(GP, 0);
    if (index === IA32_FEATURE_CONTROL && old[0] & 1) fault(GP, 0); // locked until reset
    const v: Msr64 = [
      ((lo & ~ro[0]) | (old[0] & ro[0])) >>> 0,
      ((hi & ~ro[1]) | (old[1] & ro[1])) >>> 0,
    ];
    if (d.write) d.write(this.cpu, v);
    else this.values.set(d.index >>> 0, v);
    if (index === IA32_APIC_BASE) this.cpu.host.apic?.setApicBase(v[0], v[1]);
  }
}
