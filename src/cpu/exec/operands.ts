/**
 * Operand access shared by the instruction handlers: registers by width, the ModRM
 * memory operand through segmentation, and the stack.
 */
import { ESP, SS } from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { segAddr } from "../segment.js";

export type Size = 1 | 2 | 4;

/** Reads register `r` at width `bits`; 8-bit r 4-7 are AH, CH, DH, BH. */
export function getReg(c: Cpu, r: number, bits: number): number {
  if (bits === 32) return c.regs[r];
  if (bits === 16) return c.regs[r] & 0xffff;
  return r < 4 ? c.regs[r] & 0xff : (c.regs[r - 4] >> 8) & 0xff;
}

export function setReg(c: Cpu, r: number, bits: number, v: number): void {
  if (bits === 32) c.regs[r] = v;
  else if (bits === 16) c.regs[r] = (c.regs[r] & ~0xffff) | (v & 0xffff);
  else if (r < 4) c.regs[r] = (c.regs[r] & ~0xff) | (v & 0xff);
  else c.regs[r - 4] = (c.regs[r - 4] & ~0xff00) | ((v & 0xff) << 8);
}

/** Offset (effective address) of the ModRM memory operand. */
export function ea(c: Cpu, i: Instr): number {
  let a = i.disp;
  if (i.base >= 0) a += c.regs[i.base];
  if (i.index >= 0) a += c.regs[i.index] << i.scale;
  return i.asize === 32 ? a | 0 : a & 0xffff;
}

/** Linear address of the memory operand, after the segment checks for this access. */
export function memAddr(c: Cpu, i: Instr, size: number, write: boolean): number {
  return segAddr(c, i.seg, ea(c, i), size, write);
}

/** Reads the r/m operand (register or memory). */
export function readE(c: Cpu, i: Instr, bits: number): number {
  if (i.mod === 3) return getReg(c, i.rm, bits);
  const size = (bits >> 3) as Size;
  return c.rd(memAddr(c, i, size, false), size);
}

export function writeE(c: Cpu, i: Instr, bits: number, v: number): void {
  if (i.mod === 3) return setReg(c, i.rm, bits, v);
  const size = (bits >> 3) as Size;
  c.wr(memAddr(c, i, size, true), size, v);
}

/**
 * Read-modify-write of the r/m operand: `op` maps the old value to the new one. The
 * memory operand is checked for writing before it is read, so a read-only page faults as
 * a write, as a locked RMW does on hardware.
 */
export function rmwE(c: Cpu, i: Instr, bits: number, op: (old: number) => number): void {
  if (i.mod === 3) {
    setReg(c, i.rm, bits, op(getReg(c, i.rm, bits)));
    return;
  }
  const size = (bits >> 3) as Size;
  const lin = memAddr(c, i, size, true);
  c.wr(lin, size, op(c.rdw(lin, size)));
}

export const readG = (c: Cpu, i: Instr, bits: number): number => getReg(c, i.reg, bits);
export const writeG = (c: Cpu, i: Instr, bits: number, v: number): void =>
  setReg(c, i.reg, bits, v);

// ---- the stack (SDM Vol. 1, 6.2): SS.B selects ESP or SP ----

function stackBig(c: Cpu): boolean {
  return c.segs[SS].big;
}

/** Linear address of SS:(ESP + delta), checked for an access of `size` bytes. */
export function stackAddr(c: Cpu, delta: number, size: number, write: boolean): number {
  const sp = stackBig(c) ? (c.regs[ESP] + delta) | 0 : (c.regs[ESP] + delta) & 0xffff;
  return segAddr(c, SS, sp, size, write);
}

export function setSp(c: Cpu, v: number): void {
  if (stackBig(c)) c.regs[ESP] = v;
  else c.regs[ESP] = (c.regs[ESP] & ~0xffff) | (v & 0xffff);
}

export function push(c: Cpu, bits: number, v: number): void {
  const size = (bits >> 3) as Size;
  c.wr(stackAddr(c, -size, size, true), size, v);
  setSp(c, c.regs[ESP] - size);
}

export function pop(c: Cpu, bits: number): number {
  const size = (bits >> 3) as Size;
  const v = c.rd(stackAddr(c, 0, size, false), size);
  setSp(c, c.regs[ESP] + size);
  return v;
}

/** Reads the stack at ESP+offset without moving ESP (for multi-part pops). */
export function peek(c: Cpu, offset: number, bits: number): number {
  const size = (bits >> 3) as Size;
  return c.rd(stackAddr(c, offset, size, false), size);
}
