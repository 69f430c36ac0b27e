/**
 * String instructions MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with REP/REPE/REPNE
 * (SDM Vol. 2). A repeated instruction runs a bounded batch of iterations and then
 * restarts itself, so long copies do not hold up the run loop; ECX, ESI and EDI are
 * updated per iteration, so a fault mid-way is restartable as on hardware.
 */
import { ALU_OPS, ALU_CMP } from "../alu.js";
import { EAX, ECX, EDI, EDX, ES, ESI } from "../arch.js";
import { DF } from "../flags.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import type { Handler } from "../opcodes.js";
import { segAddr } from "../segment.js";
import { getReg, setReg, type Size } from "./operands.js";
import { checkIoPermission } from "./io.js";

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

function idx(c: Cpu, i: Instr, r: number): number {
  return i.asize === 32 ? c.regs[r] : c.regs[r] & 0xffff;
}

function advance(c: Cpu, i: Instr, r: number, step: number): void {
  setReg(c, r, i.asize, c.regs[r] + step);
}

export const stringOp =
  (kind: Str, byte: boolean): Handler =>
  (c, i) => {
    const bits = byte ? 8 : i.osize;
    const size = (bits >> 3) as Size;
    const step = c.flags.word & DF ? -size : size;
    if (kind === Str.Ins || kind === Str.Outs) checkIoPermission(c, c.regs[EDX] & 0xffff, size);
    const rep = i.rep !== 0;
    let n = rep ? BATCH : 1;
    if (rep && idx(c, i, ECX) === 0) return;
    for (;;) {
      let done = false;
      switch (kind) {
        case Str.Movs: {
          const v = c.rd(segAddr(c, i.seg, idx(c, i, ESI), size, false), size);
          c.wr(segAddr(c, ES, idx(c, i, EDI), size, true), size, v);
          advance(c, i, ESI, step);
          advance(c, i, EDI, step);
          break;
        }
        case Str.Cmps: {
          const a = c.rd(segAddr(c, i.seg, idx(c, i, ESI), size, false), size);
          const b = c.rd(segAddr(c, ES, idx(c, i, EDI), size, false), size);
          ALU_OPS[ALU_CMP](c.flags, a, b, bits);
          advance(c, i, ESI, step);
          advance(c, i, EDI, step);
          done = rep && c.flags.zf() !== (i.rep === 0xf3);
          break;
        }
        case Str.Stos:
          c.wr(segAddr(c, ES, idx(c, i, EDI), size, true), size, getReg(c, EAX, bits));
          advance(c, i, EDI, step);
          break;
        case Str.Lods:
          setReg(c, EAX, bits, c.rd(segAddr(c, i.seg, idx(c, i, ESI), size, false), size));
          advance(c, i, ESI, step);
          break;
        case Str.Scas: {
          const b = c.rd(segAddr(c, ES, idx(c, i, EDI), size, false), size);
          ALU_OPS[ALU_CMP](c.flags, getReg(c, EAX, bits), b, bits);
          advance(c, i, EDI, step);
          done = rep && c.flags.zf() !== (i.rep === 0xf3);
          break;
        }
        case Str.Ins: {
          // The destination is checked before the port is read (SDM Vol. 2, INS).
          const lin = segAddr(c, ES, idx(c, i, EDI), size, true);
          c.probeWrite(lin, size);
          c.wr(lin, size, c.portIn(c.regs[EDX], size));
          advance(c, i, EDI, step);
          break;
        }
        case Str.Outs:
          c.portOut(c.regs[EDX], size, c.rd(segAddr(c, i.seg, idx(c, i, ESI), size, false), size));
          advance(c, i, ESI, step);
          break;
      }
      if (!rep) return;
      const left = (idx(c, i, ECX) - 1) & (i.asize === 32 ? -1 : 0xffff);
      setReg(c, ECX, i.asize, left);
      if (left === 0 || done) return;
      if (--n === 0) {
        c.nextEip = c.eip; // not finished: run the instruction again
        return;
      }
    }
  };
