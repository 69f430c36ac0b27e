/**
 * Segmentation: linear-address formation with the limit and type checks (SDM Vol. 3A,
 * 5.3 and 5.4), descriptor-table reads, and loading data and stack segment registers
 * (SDM Vol. 2, MOV, POP, LDS/LES/LFS/LGS/LSS).
 */
import {
  AR_DPL_SHIFT,
  AR_P,
  AR_S,
  AR_TYPE_ACCESSED,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  AR_TYPE_RW,
  AR_UNUSABLE,
  GP,
  NP,
  SS,
  SS_VEC,
} from "./arch.js";
import { fault } from "./fault.js";
import { descriptorAr, descriptorBase, descriptorLimit, type SegReg } from "./segreg.js";
import type { Cpu } from "./cpu.js";

/** Linear address of seg:off for an access of `size` bytes, after the segment checks. */
export function segAddr(c: Cpu, seg: number, off: number, size: number, write: boolean): number {
  const s = c.segs[seg];
  if (s.flat) return off | 0;
  return checkedAddr(c, s, seg, off, size, write);
}

function checkedAddr(
  c: Cpu,
  s: SegReg,
  seg: number,
  off: number,
  size: number,
  write: boolean,
): number {
  const vec = seg === SS ? SS_VEC : GP;
  const ar = s.ar;
  if (c.protectedMode && !c.v86) {
    if (ar & AR_UNUSABLE) fault(vec, 0);
    if (write && (ar & AR_TYPE_CODE || !(ar & AR_TYPE_RW))) fault(vec, 0);
    if (!write && ar & AR_TYPE_CODE && !(ar & AR_TYPE_RW)) fault(vec, 0);
  }
  const o = off >>> 0;
  const last = o + size - 1;
  if ((ar & (AR_TYPE_CODE | AR_TYPE_EC)) === AR_TYPE_EC) {
    // Expand-down: valid offsets are limit+1 up to 64 KiB or 4 GiB (SDM Vol. 3A, 5.3).
    if (o <= s.limit || last > (s.big ? 0xffffffff : 0xffff)) fault(vec, 0);
  } else if (last > s.limit) {
    fault(vec, 0);
  }
  return (s.base + o) | 0;
}

/**
 * Reads the descriptor for `sel` from the GDT or LDT as [low dword, high dword]; raises
 * exception `vec` with the selector as error code when it lies beyond the table limit.
 */
export function readDescriptor(c: Cpu, sel: number, vec = GP): [number, number] {
  // (In IA-32e mode system descriptors take 16 bytes: see readSystemDescriptorHigh.)
  const ldt = (sel & 4) !== 0;
  const base = ldt ? (c.longMode ? c.ldtr.base64() : c.ldtr.base) : c.gdtrBase;
  const limit = ldt ? c.ldtr.limit : c.gdtrLimit;
  if ((ldt && !c.ldtr.usable) || (sel | 7) > limit) fault(vec, sel & 0xfffc);
  const addr = c.linear(base, sel & 0xfff8);
  return [c.rdSys(addr, 4), c.rdSys(c.linear(addr, 4), 4)];
}

/**
 * The upper half of a 16-byte system descriptor in IA-32e mode (SDM Vol. 3A, 8.2.3):
 * base bits 63:32; the type field of its second dword must be zero (#GP(selector)).
 */
export function readSystemDescriptorHigh(c: Cpu, sel: number): number {
  if ((sel | 15) > c.gdtrLimit) fault(GP, sel & 0xfffc);
  const addr = c.linear(c.gdtrBase, (sel & 0xfff8) + 8);
  if (c.rdSys(c.linear(addr, 4), 4) & 0x1f00) fault(GP, sel & 0xfffc);
  return c.rdSys(addr, 4);
}

/** Sets the accessed bit of a descriptor in memory, as the processor does on a load. */
export function markAccessed(c: Cpu, sel: number, hi: number): void {
  if (hi & (AR_TYPE_ACCESSED << 8)) return;
  const base = sel & 4 ? (c.longMode ? c.ldtr.base64() : c.ldtr.base) : c.gdtrBase;
  c.wrSys(c.linear(base, (sel & 0xfff8) + 4), 4, hi | (AR_TYPE_ACCESSED << 8));
}

/** Loads a segment register from a descriptor's two dwords (after the caller's checks). */
export function loadFromDescriptor(s: SegReg, sel: number, lo: number, hi: number): void {
  s.set(sel, descriptorBase(lo, hi), descriptorLimit(lo, hi), descriptorAr(hi) | AR_TYPE_ACCESSED);
}

/** Commits a checked descriptor to segment register `s`: accessed bit, then the cache. */
export function commitSegment(c: Cpu, s: SegReg, sel: number, lo: number, hi: number): void {
  markAccessed(c, sel, hi);
  loadFromDescriptor(s, sel, lo, hi);
}

/**
 * Checks a new SS for a change to privilege level `pl` (a stack switch from the TSS, a task
 * switch, or a return to an outer level): RPL = DPL = `pl`, a writable data segment, present.
 * Failures raise `vec` (#TS for stacks from a TSS, #GP for returns) with the selector and
 * `ext`, or #SS when not present. Returns the descriptor for commitSegment.
 */
export function checkStackSegment(
  c: Cpu,
  sel: number,
  pl: number,
  vec: number,
  ext = 0,
): [number, number] {
  if ((sel & 0xfffc) === 0) fault(vec, ext);
  const [lo, hi] = readDescriptor(c, sel, vec);
  const ar = descriptorAr(hi);
  if (
    (sel & 3) !== pl ||
    ((ar >> AR_DPL_SHIFT) & 3) !== pl ||
    (ar & (AR_S | AR_TYPE_CODE | AR_TYPE_RW)) !== (AR_S | AR_TYPE_RW)
  ) {
    fault(vec, (sel & 0xfffc) | ext);
  }
  if (!(ar & AR_P)) fault(SS_VEC, (sel & 0xfffc) | ext);
  return [lo, hi];
}

/**
 * Loads DS, ES, FS, GS or SS by MOV, POP or a far-pointer load, with the protected-mode
 * checks of SDM Vol. 2, MOV ("IF SS is loaded" / "IF DS, ES, FS, or GS is loaded").
 */
export function loadDataSeg(c: Cpu, seg: number, sel: number): void {
  sel &= 0xffff;
  const s = c.segs[seg];
  if (!c.protectedMode || c.v86) {
    if (c.v86)
      s.set(
        sel,
        sel << 4,
        0xffff,
        AR_P | AR_S | AR_TYPE_RW | AR_TYPE_ACCESSED | (3 << AR_DPL_SHIFT),
      );
    else s.setReal(sel);
    return;
  }
  const rpl = sel & 3;
  if ((sel & 0xfffc) === 0) {
    // A null SS is allowed only in 64-bit mode below CPL 3, with RPL = CPL (SDM Vol. 2, MOV).
    if (seg === SS && (!c.mode64 || c.cpl === 3 || rpl !== c.cpl)) fault(GP, 0);
    // A null selector loads an unusable segment; using it later raises #GP(0).
    s.set(sel, 0, 0, AR_UNUSABLE);
    return;
  }
  const [lo, hi] = readDescriptor(c, sel);
  const ar = descriptorAr(hi);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  const code = (ar & AR_TYPE_CODE) !== 0;
  if (seg === SS) {
    if (rpl !== c.cpl || !(ar & AR_S) || code || !(ar & AR_TYPE_RW) || dpl !== c.cpl) {
      fault(GP, sel & 0xfffc);
    }
    if (!(ar & AR_P)) fault(SS_VEC, sel & 0xfffc);
  } else {
    if (!(ar & AR_S) || (code && !(ar & AR_TYPE_RW))) fault(GP, sel & 0xfffc);
    // Data and non-conforming code need DPL >= max(CPL, RPL).
    const conforming = code && (ar & AR_TYPE_EC) !== 0;
    if (!conforming && (dpl < c.cpl || dpl < rpl)) fault(GP, sel & 0xfffc);
    if (!(ar & AR_P)) fault(NP, sel & 0xfffc);
  }
  commitSegment(c, s, sel, lo, hi);
}
