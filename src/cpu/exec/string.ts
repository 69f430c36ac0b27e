/**
 * String instructions MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with REP/REPE/REPNE
 * (SDM Vol. 2). A repeated instruction runs a bounded batch of iterations and then
 * restarts itself, so long copies do not hold up the run loop; the count, source and
 * destination registers are updated per iteration, so a fault mid-way is restartable as
 * on hardware.
 */
import { ALU_CMP, ALU_OPS } from "../alu.js";
import { sub64 } from "../alu64.js";
import { EAX, EDI, EDX, ES, ESI, FS, GP, SS, SS_VEC } from "../arch.js";
import { DF } from "../flags.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import type { Handler } from "../opcodes.js";
import { segAddr } from "../segment.js";
import { canonical, getReg, readMem, setReg, writeMem, type Size } from "./operands.js";
import { checkIoPermission } from "./io.js";
import { countIsZero, decrementCount } from "./control.js";

export const enum Str {
  Movs,
  Cmps,
  Stos,
  Lods,
  Scas,
  Ins,
  Outs,
}

/** Iterations of a repeated string instruction before it yields and restarts. */
const BATCH = 4096;

/**
 * Linear address of seg:rSI or ES:rDI at the address size. In 64-bit mode only FS and GS
 * add a base, and the address must be canonical: else #GP(0), or #SS(0) for a source in SS
 * (SDM Vol. 3A, 6.15, Interrupt 12).
 */
function strAddr(c: Cpu, i: Instr, seg: number, r: number, size: number, write: boolean): number {
  if (!i.mode64) {
    const off = i.asize === 32 ? c.regs[r] : c.regs[r] & 0xffff;
    return segAddr(c, seg, off, size, write);
  }
  const s = seg >= FS ? c.segs[seg] : null;
  const lo = (c.regs[r] >>> 0) + (s ? s.base >>> 0 : 0);
  const hi = (i.asize === 64 ? c.regsHi[r] : 0) + (s ? s.baseHi : 0);
  return canonical(lo, hi + Math.floor(lo / 0x100000000), seg === SS ? SS_VEC : GP);
}

/** rSI or rDI += step, at the address size. */
function advance(c: Cpu, i: Instr, r: number, step: number): void {
  if (i.asize === 64) {
    const lo = (c.regs[r] >>> 0) + step;
    setReg(c, r, 64, lo | 0, (c.regsHi[r] + Math.floor(lo / 0x100000000)) | 0);
  } else setReg(c, r, i.asize, c.regs[r] + step);
}

/** Compares two operands of `bits` for CMPS/SCAS (flags only). */
function compare(c: Cpu, a: number, ah: number, b: number, bh: number, bits: number): void {
  if (bits === 64) sub64(c.flags, c, a, ah, b, bh);
  else ALU_OPS[ALU_CMP](c.flags, a, b, bits);
}

export const stringOp =
  (kind: Str, byte: boolean): Handler =>
  (c, i) => {
    const bits = byte ? 8 : kind === Str.Ins || kind === Str.Outs ? Math.min(i.osize, 32) : i.osize;
    const size = bits >> 3;
    const step = c.flags.word & DF ? -size : size;
    if (kind === Str.Ins || kind === Str.Outs) checkIoPermission(c, c.regs[EDX] & 0xffff, size);
    const rep = i.rep !== 0;
    let n = rep ? BATCH : 1;
    if (rep && countIsZero(c, i)) return;
    for (;;) {
      let done = false;
      switch (kind) {
        case Str.Movs: {
          const v = readMem(c, strAddr(c, i, i.seg, ESI, size, false), bits);
          writeMem(c, strAddr(c, i, ES, EDI, size, true), bits, v, c.hi);
          advance(c, i, ESI, step);
          advance(c, i, EDI, step);
          break;
        }
        case Str.Cmps: {
          const a = readMem(c, strAddr(c, i, i.seg, ESI, size, false), bits);
          const ah = c.hi;
          const b = readMem(c, strAddr(c, i, ES, EDI, size, false), bits);
          compare(c, a, ah, b, c.hi, bits);
          advance(c, i, ESI, step);
          advance(c, i, EDI, step);
          done = rep && c.flags.zf() !== (i.rep === 0xf3);
          break;
        }
        case Str.Stos:
          writeMem(c, strAddr(c, i, ES, EDI, size, true), bits, getReg(c, EAX, bits), c.hi);
          advance(c, i, EDI, step);
          break;
        case Str.Lods:
          setReg(c, EAX, bits, readMem(c, strAddr(c, i, i.seg, ESI, size, false), bits), c.hi);
          advance(c, i, ESI, step);
          break;
        case Str.Scas: {
          const b = readMem(c, strAddr(c, i, ES, EDI, size, false), bits);
          const bh = c.hi;
          compare(c, getReg(c, EAX, bits), c.hi, b, bh, bits);
          advance(c, i, EDI, step);
          done = rep && c.flags.zf() !== (i.rep === 0xf3);
          break;
        }
        case Str.Ins: {
          // The destination is checked before the port is read (SDM Vol. 2, INS).
          const lin = strAddr(c, i, ES, EDI, size, true);
          c.probeWrite(lin, size);
          c.wr(lin, size as Size, c.portIn(c.regs[EDX], size as Size));
          advance(c, i, EDI, step);
          break;
        }
        case Str.Outs:
          c.portOut(
            c.regs[EDX],
            size as Size,
            c.rd(strAddr(c, i, i.seg, ESI, size, false), size as Size),
          );
          advance(c, i, ESI, step);
          break;
      }
      if (!rep) return;
      if (decrementCount(c, i) || done) return;
      if (--n === 0) {
        c.nextEip = c.eip; // not finished: run the instruction again
        return;
      }
    }
  };
