/**
 * System and privileged instructions (SDM Vol. 2 and Vol. 3A, 2.8): descriptor-table
 * registers, control and debug registers, MSRs, CPUID, the TSC, HLT, interrupt flag,
 * LAR/LSL/VERR/VERW, SYSENTER/SYSEXIT and the x87 availability checks.
 */
import {
  AR_DPL_SHIFT,
  AR_P,
  AR_S,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  AR_TYPE_RW,
  CR0_CD,
  CR0_EM,
  CR0_ET,
  CR0_MP,
  CR0_NW,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR0_VALID,
  CR0_WP,
  CR4_DE,
  CR4_PAE,
  CR4_PGE,
  CR4_PSE,
  CR4_TSD,
  CR4_VALID,
  CS,
  DB,
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
  NM,
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
  BLOCKING_STI,
} from "../arch.js";
import { cpuid } from "../cpuid.js";
import { fault } from "../fault.js";
import { CF, DF, IF, IOPL, IOPL_SHIFT, RF, VM, ZF } from "../flags.js";
import { loadPdptes } from "../mmu.js";
import { IA32_SYSENTER_CS, IA32_SYSENTER_EIP, IA32_SYSENTER_ESP, IA32_TSC_AUX } from "../msr.js";
import { descriptorAr, descriptorBase, descriptorLimit } from "../segreg.js";
import { readDescriptor } from "../segment.js";
import type { Cpu } from "../cpu.js";
import { ActivityState } from "../../engine/engine.js";
import type { Handler } from "../opcodes.js";
import { ea, getReg, readE, setReg, writeE } from "./operands.js";
import { segAddr } from "../segment.js";

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
    const lin = segAddr(c, i.seg, ea(c, i), 6, false);
    const limit = c.rd(lin, 2);
    let base = c.rd((lin + 2) | 0, 4);
    if (i.osize === 16) base &= 0xffffff;
    if (idt) {
      c.idtrLimit = limit;
      c.idtrBase = base;
    } else {
      c.gdtrLimit = limit;
      c.gdtrBase = base;
    }
  };

export const sgdtSidt =
  (idt: boolean): Handler =>
  (c, i) => {
    const lin = segAddr(c, i.seg, ea(c, i), 6, true);
    c.probeWrite(lin, 6);
    c.wr(lin, 2, idt ? c.idtrLimit : c.gdtrLimit);
    let base = idt ? c.idtrBase : c.gdtrBase;
    if (i.osize === 16) base &= 0xffffff;
    c.wr((lin + 2) | 0, 4, base);
  };

export const sldt: Handler = (c, i) => {
  requireProtected(c);
  writeSelector(c, i, c.ldtr.selector);
};

export const str: Handler = (c, i) => {
  requireProtected(c);
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
  c.ldtr.set(sel, descriptorBase(lo, hi), descriptorLimit(lo, hi), descriptorAr(hi));
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
  if (type !== SYS_TSS32_AVAIL && type !== SYS_TSS16_AVAIL) fault(GP, sel & 0xfffc);
  if (!(hi & (AR_P << 8))) fault(NP, sel & 0xfffc);
  const busy = hi | (2 << 8);
  c.wrSys((c.gdtrBase + (sel & 0xfff8) + 4) | 0, 4, busy);
  c.tr.set(sel, descriptorBase(lo, hi), descriptorLimit(lo, hi), descriptorAr(busy));
};

export const smsw: Handler = (c, i) => {
  if (i.mod === 3) setReg(c, i.rm, i.osize, c.cr0);
  else writeE(c, i, 16, c.cr0);
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
  const changed = c.cr0 ^ v;
  if (v & CR0_PG && changed & CR0_PG && c.cr4 & CR4_PAE) loadPdptes(c);
  c.cr0 = v | 0;
  if (changed & (CR0_PG | CR0_WP | CR0_PE)) c.flushTlb(true);
  c.modeChanged();
}

function writeCr4(c: Cpu, v: number): void {
  if (v & ~CR4_VALID) fault(GP, 0);
  const changed = c.cr4 ^ v;
  if (c.cr0 & CR0_PG && changed & CR4_PAE && v & CR4_PAE) {
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
  if (changed & (CR4_PSE | CR4_PAE | CR4_PGE)) c.flushTlb(true);
}

function writeCr3(c: Cpu, v: number): void {
  if (c.cr0 & CR0_PG && c.cr4 & CR4_PAE) {
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
    if (i.reg === 1 || i.reg > 4) fault(UD);
    requireCpl0(c);
    if (!toCr) {
      const v = [c.cr0, 0, c.cr2, c.cr3, c.cr4][i.reg];
      c.regs[i.rm] = v;
      return;
    }
    const v = c.regs[i.rm];
    if (i.reg === 0) writeCr0(c, v);
    else if (i.reg === 2) c.cr2 = v;
    else if (i.reg === 3) writeCr3(c, v);
    else writeCr4(c, v);
  };

/** MOV r32, DRn (0F 21) and MOV DRn, r32 (0F 23) (SDM Vol. 3B, 18.2). */
export const movDr =
  (toDr: boolean): Handler =>
  (c, i) => {
    if (c.v86) fault(GP, 0);
    let n = i.reg;
    if (n === 4 || n === 5) {
      if (c.cr4 & CR4_DE) fault(UD);
      n += 2; // DR4/DR5 alias DR6/DR7
    }
    requireCpl0(c);
    if (c.dr[7] & DR7_GD) {
      // General detect: the access itself raises #DB, with BD set and GD cleared.
      c.dr[6] |= DR6_BD;
      c.dr[7] &= ~DR7_GD;
      fault(DB);
    }
    if (!toDr) {
      c.regs[i.rm] = c.dr[n];
      return;
    }
    const v = c.regs[i.rm];
    if (n === 6) c.dr[6] = v | DR6_FIXED1;
    else if (n === 7) c.dr[7] = (v | DR7_FIXED1) & ~(0xc000 | 0x800);
    else c.dr[n] = v;
  };

export const clts: Handler = (c) => {
  requireCpl0(c);
  c.cr0 &= ~CR0_TS;
};

export const invlpg: Handler = (c, i) => {
  requireCpl0(c);
  c.flushTlbPage((c.segs[i.seg].base + ea(c, i)) | 0);
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

/** SYSENTER (SDM Vol. 2): flat ring-0 CS and SS from IA32_SYSENTER_CS. */
export const sysenter: Handler = (c) => {
  const cs = c.msr.read(IA32_SYSENTER_CS)[0] & 0xffff;
  if (!c.protectedMode || (cs & 0xfffc) === 0) fault(GP, 0);
  const flat = AR_P | AR_S | AR_DB | AR_G | AR_TYPE_ACCESSED;
  c.flags.load(c.flags.get() & ~(VM | IF | RF));
  c.segs[CS].set(cs & 0xfffc, 0, 0xffffffff, flat | AR_TYPE_CODE | AR_TYPE_RW);
  c.segs[SS].set((cs + 8) & 0xfffc, 0, 0xffffffff, flat | AR_TYPE_RW);
  c.regs[ESP] = c.msr.read(IA32_SYSENTER_ESP)[0];
  c.nextEip = c.msr.read(IA32_SYSENTER_EIP)[0];
  c.cpl = 0;
  c.modeChanged();
};

/** SYSEXIT: back to flat ring 3 at EDX with ESP = ECX. */
export const sysexit: Handler = (c) => {
  const cs = c.msr.read(IA32_SYSENTER_CS)[0] & 0xffff;
  if (!c.protectedMode || c.v86 || c.cpl !== 0 || (cs & 0xfffc) === 0) fault(GP, 0);
  const flat = AR_P | AR_S | AR_DB | AR_G | AR_TYPE_ACCESSED | (3 << AR_DPL_SHIFT);
  c.segs[CS].set(((cs + 16) & 0xfffc) | 3, 0, 0xffffffff, flat | AR_TYPE_CODE | AR_TYPE_RW);
  c.segs[SS].set(((cs + 24) & 0xfffc) | 3, 0, 0xffffffff, flat | AR_TYPE_RW);
  c.regs[ESP] = c.regs[ECX];
  c.nextEip = c.regs[EDX] >>> 0;
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

// ---- x87 availability (SDM Vol. 3A, 2.5, Table 2-2) ----

/** WAIT/FWAIT (9B): #NM when CR0.MP and CR0.TS are both set. */
export const fwait: Handler = (c) => {
  if ((c.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) fault(NM);
};

/**
 * x87 escape opcodes D8-DF: #NM when CR0.EM or CR0.TS is set, so kernels can manage lazy
 * FPU state. This CPU has no x87 unit (CPUID.1:EDX.FPU = 0), so otherwise they are #UD.
 */
export const x87: Handler = (c) => {
  if (c.cr0 & (CR0_EM | CR0_TS)) fault(NM);
  fault(UD);
};
