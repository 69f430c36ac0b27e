/**
 * System and privileged instructions (SDM Vol. 2 and Vol. 3A, 2.8): descriptor-table
 * registers, control and debug registers, MSRs, CPUID, the TSC, HLT, interrupt flag,
 * LAR/LSL/VERR/VERW and SYSENTER/SYSEXIT.
 */
import {
  AR_DPL_SHIFT,
  AR_P,
  AR_S,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  AR_TYPE_RW,
  CR0_CD,
  CR0_ET,
  CR0_NW,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR0_VALID,
  CR0_WP,
  CR4_DE,
  CR4_PAE,
  CR4_PCIDE,
  CR4_PGE,
  CR4_PSE,
  CR4_SMAP,
  CR4_SMEP,
  CR4_TSD,
  CR4_UMIP,
  CR4_VALID,
  CS,
  DR6_BD,
  DR6_FIXED1,
  DR7_FIXED1,
  DR7_GD,
  EAX,
  EBX,
  ECX,
  EDX,
  ESP,
  GP,
  NP,
  SS,
  SYS_CALL_GATE16,
  SYS_CALL_GATE32,
  SYS_LDT,
  SYS_TASK_GATE,
  SYS_TSS16_AVAIL,
  SYS_TSS16_BUSY,
  SYS_TSS32_AVAIL,
  SYS_TSS32_BUSY,
  UD,
  AR_DB,
  AR_G,
  AR_TYPE_ACCESSED,
  AR_L,
  BLOCKING_STI,
  EFER_LMA,
  EFER_LME,
} from "../arch.js";
import { cpuid } from "../cpuid.js";
import { DebugException, fault } from "../fault.js";
import { AC, CF, DF, IF, IOPL, IOPL_SHIFT, RF, VM, ZF } from "../flags.js";
import { loadPdptes, MAXPHYADDR } from "../mmu.js";
import { IA32_SYSENTER_CS, IA32_SYSENTER_EIP, IA32_SYSENTER_ESP, IA32_TSC_AUX } from "../msr.js";
import { cr0AllowedInVmx, cr4AllowedInVmx } from "../vmx/capabilities.js";
import { descriptorAr, descriptorBase, descriptorLimit } from "../segreg.js";
import { readDescriptor, readSystemDescriptorHigh } from "../segment.js";
import type { Cpu } from "../cpu.js";
import { ActivityState } from "../../engine/engine.js";
import type { Handler } from "../opcodes.js";
import { guestVisibleCr0 } from "../vmx/nonroot.js";
import { canonical, ea, getReg, memAddr, readE, setReg, writeE } from "./operands.js";

/** #GP(0) unless at CPL 0 (and not in V86 mode, where CPL is 3). */
function requireCpl0(c: Cpu): void {
  if (c.cpl !== 0) fault(GP, 0);
}

/** #UD outside protected mode (real and V86 mode), for LLDT, LTR, LAR, ... */
function requireProtected(c: Cpu): void {
  if (!c.protectedMode || c.v86) fault(UD);
}

export const hlt: Handler = (c) => {
  requireCpl0(c);
  c.activity = ActivityState.Hlt;
};

function iopl(c: Cpu): number {
  return (c.flags.word & IOPL) >> IOPL_SHIFT;
}

/**
 * CLI/STI: IF changes only when CPL <= IOPL in protected mode (no VME/PVI). STI that sets
 * IF blocks interrupts until the next instruction has run (SDM Vol. 2, STI).
 */
export const cliSti =
  (set: boolean): Handler =>
  (c) => {
    if (c.protectedMode && c.cpl > iopl(c)) fault(GP, 0);
    if (set && !(c.flags.word & IF)) c.blocking |= BLOCKING_STI;
    c.flags.setBit(IF, set);
  };

export const clc: Handler = (c) => c.flags.setBit(CF, false);
export const stc: Handler = (c) => c.flags.setBit(CF, true);
export const cmc: Handler = (c) => c.flags.setBit(CF, !c.flags.cf());
export const cld: Handler = (c) => c.flags.setBit(DF, false);
export const std: Handler = (c) => c.flags.setBit(DF, true);

// ---- descriptor-table registers ----

/** LGDT/LIDT m16&32: with a 16-bit operand only 24 bits of base are loaded. */
export const lgdtLidt =
  (idt: boolean): Handler =>
  (c, i) => {
    requireCpl0(c);
    // m16&32, or in 64-bit mode m16&64 with a canonical base (SDM Vol. 2, LGDT/LIDT).
    const lin = memAddr(c, i, c.mode64 ? 10 : 6, false);
    const limit = c.rd(lin, 2);
    let base = c.rd(lin + 2, 4);
    if (c.mode64) base = canonical(base, c.rd(lin + 6, 4), GP);
    else if (i.osize === 16) base &= 0xffffff;
    if (idt) {
      c.idtrLimit = limit;
      c.idtrBase = base;
    } else {
      c.gdtrLimit = limit;
      c.gdtrBase = base;
    }
  };

/** STAC/CLAC (0F 01 CB/CA): set or clear EFLAGS.AC for SMAP; #UD at CPL > 0. */
export const stacClac =
  (set: boolean): Handler =>
  (c) => {
    if (c.cpl > 0) fault(UD);
    c.flags.setBit(AC, set);
    c.modeChanged();
  };

/** UMIP: SGDT, SIDT, SLDT, SMSW and STR at CPL > 0 raise #GP(0) (SDM Vol. 3A, 2.5). */
function checkUmip(c: Cpu): void {
  if (c.cr4 & CR4_UMIP && c.cpl > 0) fault(GP, 0);
}

export const sgdtSidt =
  (idt: boolean): Handler =>
  (c, i) => {
    checkUmip(c);
    const size = c.mode64 ? 10 : 6;
    const lin = memAddr(c, i, size, true);
    c.probeWrite(lin, size);
    c.wr(lin, 2, idt ? c.idtrLimit : c.gdtrLimit);
    let base = idt ? c.idtrBase : c.gdtrBase;
    if (c.mode64) {
      c.wr(lin + 2, 4, base % 0x100000000);
      c.wr(lin + 6, 4, (Math.floor(base / 0x100000000) << 16) >> 16);
      return;
    }
    if (i.osize === 16) base &= 0xffffff;
    c.wr(lin + 2, 4, base);
  };

export const sldt: Handler = (c, i) => {
  requireProtected(c);
  checkUmip(c);
  writeSelector(c, i, c.ldtr.selector);
};

export const str: Handler = (c, i) => {
  requireProtected(c);
  checkUmip(c);
  writeSelector(c, i, c.tr.selector);
};

/** Stores a selector: 16 bits to memory, zero-extended to the operand size in a register. */
function writeSelector(c: Cpu, i: Parameters<Handler>[1], sel: number): void {
  if (i.mod === 3) setReg(c, i.rm, i.osize, sel);
  else writeE(c, i, 16, sel);
}

/** LLDT r/m16 (SDM Vol. 2): a null selector makes LDTR unusable. */
export const lldt: Handler = (c, i) => {
  requireProtected(c);
  requireCpl0(c);
  const sel = readE(c, i, 16);
  if ((sel & 0xfffc) === 0) {
    c.ldtr.set(sel, 0, 0, 0x10000);
    return;
  }
  if (sel & 4) fault(GP, sel & 0xfffc);
  const [lo, hi] = readDescriptor(c, sel);
  if (((hi >> 8) & 0x1f) !== SYS_LDT) fault(GP, sel & 0xfffc);
  if (!(hi & (AR_P << 8))) fault(NP, sel & 0xfffc);
  const baseHi = c.longMode ? readSystemDescriptorHigh(c, sel) : 0;
  c.ldtr.set(sel, descriptorBase(lo, hi), descriptorLimit(lo, hi), descriptorAr(hi));
  c.ldtr.baseHi = baseHi;
};

/** LTR r/m16: loads an available TSS and marks its descriptor busy. */
export const ltr: Handler = (c, i) => {
  requireProtected(c);
  requireCpl0(c);
  const sel = readE(c, i, 16);
  if ((sel & 0xfffc) === 0) fault(GP, 0);
  if (sel & 4) fault(GP, sel & 0xfffc);
  const [lo, hi] = readDescriptor(c, sel);
  const type = (hi >> 8) & 0x1f;
  // IA-32e mode has only the 64-bit TSS, with the 32-bit TSS's type (SDM Vol. 3A, 8.7).
  const okTypes = c.longMode ? [SYS_TSS32_AVAIL] : [SYS_TSS32_AVAIL, SYS_TSS16_AVAIL];
  if (!okTypes.includes(type)) fault(GP, sel & 0xfffc);
  if (!(hi & (AR_P << 8))) fault(NP, sel & 0xfffc);
  const baseHi = c.longMode ? readSystemDescriptorHigh(c, sel) : 0;
  const busy = hi | (2 << 8);
  c.wrSys(c.linear(c.gdtrBase, (sel & 0xfff8) + 4), 4, busy);
  c.tr.set(sel, descriptorBase(lo, hi), descriptorLimit(lo, hi), descriptorAr(busy));
  c.tr.baseHi = baseHi;
};

export const smsw: Handler = (c, i) => {
  checkUmip(c);
  // In VMX non-root operation host-owned bits read from the CR0 read shadow (SDM 26.3).
  const cr0 = c.vmx.nonRoot ? guestVisibleCr0(c) : c.cr0;
  if (i.mod === 3) setReg(c, i.rm, i.osize, cr0);
  else writeE(c, i, 16, cr0);
};

/** LMSW: loads PE, MP, EM and TS; it can set PE but never clear it. */
export const lmsw: Handler = (c, i) => {
  requireCpl0(c);
  const v = readE(c, i, 16) & 0xf;
  const keepPe = c.cr0 & CR0_PE;
  writeCr0(c, (c.cr0 & ~0xe) | v | keepPe);
};

// ---- control registers (SDM Vol. 3A, 2.5) ----

export function writeCr0(c: Cpu, v: number): void {
  v |= CR0_ET;
  if (v & ~CR0_VALID) fault(GP, 0);
  if (v & CR0_PG && !(v & CR0_PE)) fault(GP, 0);
  if (v & CR0_NW && !(v & CR0_CD)) fault(GP, 0);
  // In VMX operation the IA32_VMX_CR0_FIXED0/1 bits hold (SDM Vol. 3C, 24.8).
  if (c.vmx.on && !cr0AllowedInVmx(c, v)) fault(GP, 0);
  const changed = c.cr0 ^ v;
  if (changed & CR0_PG) {
    if (v & CR0_PG && c.msr.efer & EFER_LME) {
      // Enabling paging with EFER.LME activates IA-32e mode; it needs PAE and a code
      // segment that is not 64-bit (SDM Vol. 3A, 10.8.5).
      if (!(c.cr4 & CR4_PAE) || c.segs[CS].ar & AR_L) fault(GP, 0);
      c.msr.efer |= EFER_LMA;
    } else if (v & CR0_PG) {
      if (c.cr4 & CR4_PAE) loadPdptes(c);
    } else if (c.msr.efer & EFER_LMA) {
      // Leaving IA-32e mode is allowed only from compatibility mode.
      if (c.mode64) fault(GP, 0);
      c.msr.efer &= ~EFER_LMA;
    }
  }
  c.cr0 = v | 0;
  if (changed & (CR0_PG | CR0_WP | CR0_PE)) c.flushTlb(true);
  c.modeChanged();
}

export function writeCr4(c: Cpu, v: number): void {
  if (v & ~CR4_VALID) fault(GP, 0);
  // In VMX operation CR4.VMXE cannot be cleared, nor other fixed bits changed (24.8).
  if (c.vmx.on && !cr4AllowedInVmx(v)) fault(GP, 0);
  const changed = c.cr4 ^ v;
  if (c.longMode && !(v & CR4_PAE)) fault(GP, 0); // IA-32e mode needs PAE
  // PCIDs exist only in IA-32e mode, and are turned on only with PCID 0 current (4.10.1).
  if (changed & v & CR4_PCIDE && (!c.longMode || c.cr3 & 0xfff)) fault(GP, 0);
  if (!c.longMode && c.cr0 & CR0_PG && changed & CR4_PAE && v & CR4_PAE) {
    const old = c.cr4;
    c.cr4 = v;
    try {
      loadPdptes(c);
    } catch (e) {
      c.cr4 = old;
      throw e;
    }
  }
  c.cr4 = v;
  if (changed & (CR4_PSE | CR4_PAE | CR4_PGE | CR4_PCIDE | CR4_SMEP | CR4_SMAP)) c.flushTlb(true);
  if (changed & CR4_DE) c.debug.update(c); // I/O breakpoints exist only with CR4.DE
}

function writeCr3(c: Cpu, v: number, hi = 0): void {
  // With CR4.PCIDE, bit 63 asks to keep the TLB entries of the new PCID; keeping none is
  // allowed (SDM Vol. 3A, 4.10.4.1), so the bit is only cleared here.
  if (c.cr4 & CR4_PCIDE) hi &= 0x7fffffff;
  // In IA-32e mode CR3 is 64 bits; bits above MAXPHYADDR are reserved (SDM Vol. 3A, 4.5).
  if (hi & ~((1 << (MAXPHYADDR - 32)) - 1)) fault(GP, 0);
  c.cr3Hi = c.longMode ? hi : 0;
  if (!c.longMode && c.cr0 & CR0_PG && c.cr4 & CR4_PAE) {
    const old = c.cr3;
    c.cr3 = v;
    try {
      loadPdptes(c);
    } catch (e) {
      c.cr3 = old;
      throw e;
    }
  }
  c.cr3 = v;
  c.flushTlb(false);
}

/** MOV r32, CRn (0F 20) and MOV CRn, r32 (0F 22): the ModRM form is always a register. */
export const movCr =
  (toCr: boolean): Handler =>
  (c, i) => {
    if (c.v86) fault(GP, 0);
    const n = i.reg; // REX.R reaches CR8 in 64-bit mode
    if (!(n === 0 || n === 2 || n === 3 || n === 4 || (n === 8 && c.mode64))) fault(UD);
    requireCpl0(c);
    if (!toCr) {
      // In 64-bit mode the register operand is 64 bits (SDM Vol. 2, MOV—Control Registers).
      let lo = [c.cr0, 0, c.cr2, c.cr3, c.cr4, 0, 0, 0, c.cr8][n];
      let hi = 0;
      if (n === 2 && c.mode64) {
        hi = (Math.floor(c.cr2 / 0x100000000) << 16) >> 16;
        lo = c.cr2 % 0x100000000;
      } else if (n === 3) hi = c.cr3Hi;
      setReg(c, i.rm, c.mode64 ? 64 : 32, lo | 0, hi);
      return;
    }
    const v = c.regs[i.rm];
    const hi = c.mode64 ? c.regsHi[i.rm] : 0;
    if (n === 0) {
      if (hi) fault(GP, 0);
      writeCr0(c, v);
    } else if (n === 2) c.cr2 = c.mode64 ? canonicalOrFold(v, hi) : v;
    else if (n === 3) writeCr3(c, v, hi);
    else if (n === 4) {
      if (hi) fault(GP, 0);
      writeCr4(c, v);
    } else {
      // CR8 is the task-priority class, bits 3:0 (SDM Vol. 3A, 10.8.6.1).
      if (hi || v & ~0xf) fault(GP, 0);
      c.cr8 = v;
    }
  };

/** CR2 takes any 64-bit value; we keep linear addresses folded to 48 bits. */
function canonicalOrFold(lo: number, hi: number): number {
  return (hi & 0xffff) * 0x100000000 + (lo >>> 0);
}

/** MOV r, DRn (0F 21) and MOV DRn, r (0F 23) (SDM Vol. 3B, 18.2). */
export const movDr =
  (toDr: boolean): Handler =>
  (c, i) => {
    if (c.v86) fault(GP, 0);
    let n = i.reg;
    if (n > 7) fault(UD);
    if (n === 4 || n === 5) {
      if (c.cr4 & CR4_DE) fault(UD);
      n += 2; // DR4/DR5 alias DR6/DR7
    }
    requireCpl0(c);
    if (c.dr[7] & DR7_GD) {
      // General detect: the access itself raises #DB, which sets BD and clears GD.
      throw new DebugException(DR6_BD, true);
    }
    const width = c.mode64 ? 64 : 32;
    if (!toDr) {
      setReg(c, i.rm, width, c.dr[n], n < 4 ? c.drHi[n] : 0);
      return;
    }
    const v = c.regs[i.rm];
    const hi = c.mode64 ? c.regsHi[i.rm] : 0;
    if (n >= 6 && hi) fault(GP, 0); // DR6 and DR7 bits 63:32 are reserved
    if (n === 6) c.dr[6] = v | DR6_FIXED1;
    else if (n === 7) c.dr[7] = (v | DR7_FIXED1) & ~(0xc000 | 0x800);
    else {
      c.dr[n] = v;
      c.drHi[n] = hi;
    }
    c.debug.update(c);
  };

export const clts: Handler = (c) => {
  requireCpl0(c);
  c.cr0 &= ~CR0_TS;
};

export const invlpg: Handler = (c, i) => {
  requireCpl0(c);
  if (!c.mode64) return c.flushTlbPage((c.segs[i.seg].base + ea(c, i)) | 0);
  // In 64-bit mode a non-canonical address makes INVLPG a no-op (SDM Vol. 2, INVLPG).
  let lin: number;
  try {
    lin = memAddr(c, i, 1, false);
  } catch {
    return;
  }
  c.flushTlbPage(lin);
};

/**
 * INVPCID (66 0F 38 82): the descriptor holds a PCID and a linear address. We keep no
 * PCID tags, so each type flushes at least what it must: one page, or every non-global
 * translation, or everything (SDM Vol. 2, INVPCID).
 */
export const invpcid: Handler = (c, i) => {
  if (!c.protectedMode || c.v86) fault(UD);
  requireCpl0(c);
  const type = getReg(c, i.reg, 32) >>> 0;
  const typeHi = c.mode64 ? c.regsHi[i.reg] : 0;
  const lin = memAddr(c, i, 16, false);
  const pcid = c.rd(lin, 4);
  const rsvd = (pcid & ~0xfff) | c.rd(lin + 4, 4);
  if (typeHi !== 0 || type > 3 || rsvd !== 0) fault(GP, 0);
  if (type <= 1 && !(c.cr4 & CR4_PCIDE) && pcid !== 0) fault(GP, 0);
  if (type === 0) c.flushTlbPage(canonical(c.rd(lin + 8, 4), c.rd(lin + 12, 4), GP));
  else c.flushTlb(type === 2);
};

/** WBINVD/INVD: caches are not modelled, so only the privilege check remains. */
export const wbinvd: Handler = (c) => requireCpl0(c);

export const ud: Handler = () => fault(UD);

// ---- CPUID, MSRs, TSC ----

export const cpuidOp: Handler = (c) => {
  const [a, b, cx, d] = cpuid(c, c.regs[EAX], c.regs[ECX]);
  c.regs[EAX] = a;
  c.regs[EBX] = b;
  c.regs[ECX] = cx;
  c.regs[EDX] = d;
};

export const rdmsr: Handler = (c) => {
  requireCpl0(c);
  const [lo, hi] = c.msr.read(c.regs[ECX]);
  c.regs[EAX] = lo;
  c.regs[EDX] = hi;
};

export const wrmsr: Handler = (c) => {
  requireCpl0(c);
  c.msr.write(c.regs[ECX], c.regs[EAX] >>> 0, c.regs[EDX] >>> 0);
};

export const rdtsc: Handler = (c) => {
  if (c.cr4 & CR4_TSD && c.cpl !== 0) fault(GP, 0);
  const [lo, hi] = c.msr.readTsc();
  c.regs[EAX] = lo;
  c.regs[EDX] = hi;
};

export const rdtscp: Handler = (c, i) => {
  rdtsc(c, i);
  c.regs[ECX] = c.msr.read(IA32_TSC_AUX)[0];
};

/** RDPMC: no performance counters are implemented (CPUID leaf 0AH is zero). */
export const rdpmc: Handler = () => fault(GP, 0);

/**
 * SYSENTER (SDM Vol. 2): flat ring-0 CS and SS from IA32_SYSENTER_CS; in IA-32e mode the
 * code segment is 64-bit and RSP/RIP take the full 64-bit MSR values.
 */
export const sysenter: Handler = (c) => {
  const cs = c.msr.read(IA32_SYSENTER_CS)[0] & 0xffff;
  if (!c.protectedMode || (cs & 0xfffc) === 0) fault(GP, 0);
  const long = c.longMode;
  const flat = AR_P | AR_S | AR_G | AR_TYPE_ACCESSED;
  const code = flat | AR_TYPE_CODE | AR_TYPE_RW | (long ? AR_L : AR_DB);
  c.flags.load(c.flags.get() & ~(VM | IF | RF));
  c.segs[CS].set(cs & 0xfffc, 0, 0xffffffff, code);
  c.segs[SS].set((cs + 8) & 0xfffc, 0, 0xffffffff, flat | AR_DB | AR_TYPE_RW);
  const [sl, sh] = c.msr.read(IA32_SYSENTER_ESP);
  const [il, ih] = c.msr.read(IA32_SYSENTER_EIP);
  setReg(c, ESP, long ? 64 : 32, sl, sh);
  c.nextEip = long ? canonical(il, ih, GP) : il >>> 0;
  c.cpl = 0;
  c.modeChanged();
};

/**
 * SYSEXIT: to flat ring 3 at rDX with rSP = rCX; with REX.W to 64-bit code (selectors
 * SYSENTER_CS + 32/40), else to 32-bit code (+16/+24).
 */
export const sysexit: Handler = (c, i) => {
  const cs = c.msr.read(IA32_SYSENTER_CS)[0] & 0xffff;
  if (!c.protectedMode || c.v86 || c.cpl !== 0 || (cs & 0xfffc) === 0) fault(GP, 0);
  const to64 = i.osize === 64;
  const flat = AR_P | AR_S | AR_G | AR_TYPE_ACCESSED | (3 << AR_DPL_SHIFT);
  const code = flat | AR_TYPE_CODE | AR_TYPE_RW | (to64 ? AR_L : AR_DB);
  const target = to64 ? canonical(c.regs[EDX], c.regsHi[EDX], GP) : c.regs[EDX] >>> 0;
  c.segs[CS].set(((cs + (to64 ? 32 : 16)) & 0xfffc) | 3, 0, 0xffffffff, code);
  c.segs[SS].set(((cs + (to64 ? 40 : 24)) & 0xfffc) | 3, 0, 0xffffffff, flat | AR_DB | AR_TYPE_RW);
  setReg(c, ESP, to64 ? 64 : 32, c.regs[ECX], c.regsHi[ECX]);
  c.nextEip = target;
  c.cpl = 3;
  c.modeChanged();
};

// ---- LAR, LSL, VERR, VERW (SDM Vol. 2): ZF reports whether the selector passes ----

/** Reads a descriptor for LAR/LSL/VERR/VERW; undefined when the selector is unusable. */
function probeDescriptor(c: Cpu, sel: number): [number, number] | undefined {
  if ((sel & 0xfffc) === 0) return undefined;
  const ldt = (sel & 4) !== 0;
  const limit = ldt ? c.ldtr.limit : c.gdtrLimit;
  if ((ldt && !c.ldtr.usable) || (sel | 7) > limit) return undefined;
  return readDescriptor(c, sel);
}

/** Privilege test shared by the four: conforming code segments skip it. */
function visible(c: Cpu, sel: number, ar: number): boolean {
  const conforming =
    (ar & (AR_S | AR_TYPE_CODE | AR_TYPE_EC)) === (AR_S | AR_TYPE_CODE | AR_TYPE_EC);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  return conforming || (dpl >= c.cpl && dpl >= (sel & 3));
}

/** System descriptor types that LAR (all) and LSL (no gates) accept. */
function larType(ar: number, lsl: boolean): boolean {
  if (ar & AR_S) return true;
  const t = ar & 0xf;
  const tss = [SYS_TSS16_AVAIL, SYS_TSS16_BUSY, SYS_TSS32_AVAIL, SYS_TSS32_BUSY, SYS_LDT];
  const gates = [SYS_CALL_GATE16, SYS_CALL_GATE32, SYS_TASK_GATE];
  return tss.includes(t) || (!lsl && gates.includes(t));
}

export const larLsl =
  (lsl: boolean): Handler =>
  (c, i) => {
    requireProtected(c);
    const sel = readE(c, i, 16);
    const d = probeDescriptor(c, sel);
    const ar = d ? descriptorAr(d[1]) : 0;
    const ok = d !== undefined && larType(ar, lsl) && visible(c, sel, ar);
    c.flags.setBit(ZF, ok);
    if (!ok || !d) return;
    const v = lsl ? descriptorLimit(d[0], d[1]) : d[1] & 0x00f0ff00;
    setReg(c, i.reg, i.osize, v);
  };

export const verrVerw =
  (write: boolean): Handler =>
  (c, i) => {
    requireProtected(c);
    const sel = readE(c, i, 16);
    const d = probeDescriptor(c, sel);
    const ar = d ? descriptorAr(d[1]) : 0;
    let ok = d !== undefined && (ar & AR_S) !== 0 && visible(c, sel, ar);
    if (ok) {
      const code = (ar & AR_TYPE_CODE) !== 0;
      ok = write ? !code && (ar & AR_TYPE_RW) !== 0 : !code || (ar & AR_TYPE_RW) !== 0;
    }
    c.flags.setBit(ZF, ok);
  };

/** ARPL r/m16, r16 (63): raises the RPL of the destination selector to the source's. */
export const arpl: Handler = (c, i) => {
  requireProtected(c);
  const dst = readE(c, i, 16);
  const src = getReg(c, i.reg, 16);
  if ((dst & 3) < (src & 3)) {
    writeE(c, i, 16, (dst & ~3) | (src & 3));
    c.flags.setBit(ZF, true);
  } else c.flags.setBit(ZF, false);
};
