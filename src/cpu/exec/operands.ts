/**
 * Operand access shared by the instruction handlers: registers by width, the ModRM
 * memory operand through segmentation (or, in 64-bit mode, canonical 64-bit addressing),
 * and the stack.
 *
 * 64-bit values travel as two int32 halves: functions return the low half and leave the
 * high half in `cpu.hi`; writers take the high half as an extra argument.
 */
import { ESP, FS, GP, SS, SS_VEC } from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { fault } from "../fault.js";
import { segAddr } from "../segment.js";

export type Size = 1 | 2 | 4;

/** 2^32 and 2^48, for folding canonical addresses (see mmu.ts, linearPage). */
const TWO32 = 0x100000000;

/**
 * Reads register `r` at width `bits` (for 64, the high half goes to cpu.hi). Byte
 * registers 16-19 are AH, CH, DH, BH: the decoder maps byte operands 4-7 there when no
 * REX prefix makes them SPL, BPL, SIL, DIL.
 */
export function getReg(c: Cpu, r: number, bits: number): number {
  if (bits === 32) return c.regs[r];
  if (bits === 64) {
    c.hi = c.regsHi[r];
    return c.regs[r];
  }
  if (bits === 16) return c.regs[r] & 0xffff;
  return r < 16 ? c.regs[r] & 0xff : (c.regs[r - 16] >> 8) & 0xff;
}

/**
 * Writes register `r`. A 32-bit write zero-extends into the high half, as 64-bit mode
 * requires (SDM Vol. 1, 3.4.1.1); outside 64-bit mode the high half is undefined anyway.
 */
export function setReg(c: Cpu, r: number, bits: number, v: number, hi = 0): void {
  if (bits === 32) {
    c.regs[r] = v;
    c.regsHi[r] = 0;
  } else if (bits === 64) {
    c.regs[r] = v;
    c.regsHi[r] = hi;
  } else if (bits === 16) c.regs[r] = (c.regs[r] & ~0xffff) | (v & 0xffff);
  else if (r < 16) c.regs[r] = (c.regs[r] & ~0xff) | (v & 0xff);
  else c.regs[r - 16] = (c.regs[r - 16] & ~0xff00) | ((v & 0xff) << 8);
}

/** Offset (effective address) of the ModRM memory operand outside 64-bit addressing. */
export function ea(c: Cpu, i: Instr): number {
  let a = i.disp;
  if (i.base >= 0) a += c.regs[i.base];
  if (i.index >= 0) a += c.regs[i.index] << i.scale;
  if (i.ripRel) a += c.nextEip;
  if (i.asize === 32) return i.mode64 ? a >>> 0 : a | 0;
  return a & 0xffff;
}

/**
 * The 64-bit effective address (base + index * scale + disp, or RIP + disp), exact modulo
 * 2^64: returns the low half, the high half in cpu.hi. LEA uses it as is; memory operands
 * go through ea64's canonical check.
 */
export function effectiveAddress64(c: Cpu, i: Instr): number {
  let lo = i.disp >>> 0;
  let hi = i.disp >> 31;
  if (i.base >= 0) {
    lo += c.regs[i.base] >>> 0;
    hi += c.regsHi[i.base];
  }
  if (i.index >= 0) {
    const s = i.scale;
    const xl = c.regs[i.index] >>> 0;
    lo += (xl << s) >>> 0;
    hi += (c.regsHi[i.index] << s) | (s ? xl >>> (32 - s) : 0);
  }
  if (i.ripRel) {
    lo += c.nextEip % TWO32;
    hi += (Math.floor(c.nextEip / TWO32) << 16) >> 16; // RIP folded: sign-extend bit 47
  }
  c.hi = (hi + Math.floor(lo / TWO32)) | 0;
  return lo | 0;
}

/**
 * The 64-bit effective address plus `extraLo/extraHi` (an FS or GS base); #GP(0), or
 * #SS(0) for a stack reference, unless canonical (SDM Vol. 1, 3.3.7.1). Returns the
 * address folded to 48 bits (mmu.ts, linearPage).
 */
function ea64(c: Cpu, i: Instr, extraLo: number, extraHi: number): number {
  const lo = (effectiveAddress64(c, i) >>> 0) + (extraLo >>> 0);
  const hi = c.hi + extraHi + Math.floor(lo / TWO32);
  return canonical(lo, hi | 0, i.seg === SS ? SS_VEC : GP);
}

/**
 * Folds a 64-bit address to its 48 significant bits after checking that bits 63:47 are
 * all equal; otherwise raises `vec` with error code 0.
 */
export function canonical(lo: number, hi: number, vec: number): number {
  if ((hi << 16) >> 16 !== hi) fault(vec, 0);
  return (hi & 0xffff) * TWO32 + (lo >>> 0);
}

/** Linear address of the memory operand, after the segment checks for this access. */
export function memAddr(c: Cpu, i: Instr, size: number, write: boolean): number {
  if (!i.mode64) return segAddr(c, i.seg, ea(c, i), size, write);
  // 64-bit mode: no limits, and only FS and GS keep a base (SDM Vol. 3A, 3.2.4).
  const s = i.seg >= FS ? c.segs[i.seg] : null;
  if (i.asize === 32) {
    const a = ea(c, i);
    if (s === null) return a;
    const lo = a + (s.base >>> 0);
    return canonical(lo, s.baseHi + Math.floor(lo / TWO32), GP);
  }
  return s ? ea64(c, i, s.base, s.baseHi) : ea64(c, i, 0, 0);
}

/** Reads `bits` at linear address `lin` (64: high half in cpu.hi). */
export function readMem(c: Cpu, lin: number, bits: number): number {
  if (bits !== 64) return c.rd(lin, (bits >> 3) as Size);
  const lo = c.rd(lin, 4);
  c.hi = c.rd(lin + 4, 4);
  return lo;
}

/** Writes `bits` at `lin`; a 64-bit write is checked in full before either half is written. */
export function writeMem(c: Cpu, lin: number, bits: number, v: number, hi = 0): void {
  if (bits !== 64) return c.wr(lin, (bits >> 3) as Size, v);
  if ((lin & 0xfff) > 4088) c.probeWrite(lin, 8);
  c.wr(lin, 4, v);
  c.wr(lin + 4, 4, hi);
}

/** Reads the r/m operand (register or memory). */
export function readE(c: Cpu, i: Instr, bits: number): number {
  if (i.mod === 3) return getReg(c, i.rm, bits);
  return readMem(c, memAddr(c, i, bits >> 3, false), bits);
}

export function writeE(c: Cpu, i: Instr, bits: number, v: number, hi = 0): void {
  if (i.mod === 3) return setReg(c, i.rm, bits, v, hi);
  writeMem(c, memAddr(c, i, bits >> 3, true), bits, v, hi);
}

/**
 * Read-modify-write of the r/m operand: `op` maps the old value to the new one (for 64
 * bits: the old high half in cpu.hi, the new one left in cpu.hi). The memory operand is
 * checked for writing before it is read, so a read-only page faults as a write, as a
 * locked RMW does on hardware.
 */
export function rmwE(c: Cpu, i: Instr, bits: number, op: (old: number) => number): void {
  if (i.mod === 3) {
    const v = op(getReg(c, i.rm, bits));
    setReg(c, i.rm, bits, v, c.hi);
    return;
  }
  const lin = memAddr(c, i, bits >> 3, true);
  if (bits === 64) {
    if ((lin & 0xfff) > 4088) c.probeWrite(lin, 8);
    c.hi = c.rdw(lin + 4, 4);
    const hiOld = c.hi;
    const v = op(c.rdw(lin, 4));
    const hiNew = c.hi;
    c.hi = hiOld;
    writeMem(c, lin, 64, v, hiNew);
    return;
  }
  const size = (bits >> 3) as Size;
  c.wr(lin, size, op(c.rdw(lin, size)));
}

export const readG = (c: Cpu, i: Instr, bits: number): number => getReg(c, i.reg, bits);
export const writeG = (c: Cpu, i: Instr, bits: number, v: number, hi = 0): void =>
  setReg(c, i.reg, bits, v, hi);

// ---- the stack (SDM Vol. 1, 6.2): RSP in 64-bit mode, else SS.B selects ESP or SP ----

/** Linear address of SS:(rSP + delta), checked for an access of `size` bytes. */
export function stackAddr(c: Cpu, delta: number, size: number, write: boolean): number {
  if (c.mode64) {
    const lo = (c.regs[ESP] >>> 0) + delta;
    return canonical(lo, c.regsHi[ESP] + Math.floor(lo / TWO32), SS_VEC);
  }
  const sp = c.segs[SS].big ? (c.regs[ESP] + delta) | 0 : (c.regs[ESP] + delta) & 0xffff;
  return segAddr(c, SS, sp, size, write);
}

/** Sets the stack pointer: RSP in 64-bit mode, else ESP or SP by SS.B. */
export function setSp(c: Cpu, v: number, hi = 0): void {
  if (c.mode64) {
    c.regs[ESP] = v;
    c.regsHi[ESP] = hi;
  } else if (c.segs[SS].big) c.regs[ESP] = v;
  else c.regs[ESP] = (c.regs[ESP] & ~0xffff) | (v & 0xffff);
}

/** Moves the stack pointer by `delta` bytes, at the stack's width. */
export function adjustSp(c: Cpu, delta: number): void {
  if (c.mode64) {
    const lo = (c.regs[ESP] >>> 0) + delta;
    c.regsHi[ESP] = (c.regsHi[ESP] + Math.floor(lo / TWO32)) | 0;
    c.regs[ESP] = lo | 0;
  } else setSp(c, c.regs[ESP] + delta);
}

export function push(c: Cpu, bits: number, v: number, hi = 0): void {
  const size = bits >> 3;
  writeMem(c, stackAddr(c, -size, size, true), bits, v, hi);
  adjustSp(c, -size);
}

export function pop(c: Cpu, bits: number): number {
  const size = bits >> 3;
  const v = readMem(c, stackAddr(c, 0, size, false), bits);
  adjustSp(c, size);
  return v;
}

/** Reads the stack at rSP+offset without moving it (for multi-part pops). */
export function peek(c: Cpu, offset: number, bits: number): number {
  return readMem(c, stackAddr(c, offset, bits >> 3, false), bits);
}
