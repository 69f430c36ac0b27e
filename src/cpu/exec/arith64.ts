/**
 * The 64-bit operand paths of the arithmetic handlers in arith.ts (REX.W in 64-bit mode):
 * the same instructions on int32 halves, through alu64.ts. A 64-bit value read from an
 * operand arrives as (low, cpu.hi); results leave their high half in cpu.hi.
 */
import * as A from "../alu64.js";
import { ALU_CMP } from "../alu.js";
import { DE, EAX, EDX } from "../arch.js";
import { fault } from "../fault.js";
import { CF, ZF } from "../flags.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { getReg, memAddr, readE, rmwE, setReg } from "./operands.js";

/** E = E op (srcLo, srcHi), or only the flags for CMP. */
export function aluE64(c: Cpu, i: Instr, op: number, srcLo: number, srcHi: number): void {
  const fn = A.ALU_OPS64[op];
  if (op === ALU_CMP) {
    const lo = readE(c, i, 64);
    fn(c.flags, c, lo, c.hi, srcLo, srcHi);
    return;
  }
  rmwE(c, i, 64, (lo) => fn(c.flags, c, lo, c.hi, srcLo, srcHi));
}

/** G = G op E (opcodes 03, 0B, ...). */
export function aluG64(c: Cpu, i: Instr, op: number): void {
  const bl = readE(c, i, 64);
  const bh = c.hi;
  const al = getReg(c, i.reg, 64);
  const r = A.ALU_OPS64[op](c.flags, c, al, c.hi, bl, bh);
  if (op !== ALU_CMP) setReg(c, i.reg, 64, r, c.hi);
}

/** RAX = RAX op imm32 sign-extended (opcodes 05, 0D, ... with REX.W). */
export function aluA64(c: Cpu, i: Instr, op: number): void {
  const al = getReg(c, EAX, 64);
  const r = A.ALU_OPS64[op](c.flags, c, al, c.hi, i.imm, i.immHi);
  if (op !== ALU_CMP) setReg(c, EAX, 64, r, c.hi);
}

export function test64(c: Cpu, al: number, ah: number, bl: number, bh: number): void {
  A.and64(c.flags, c, al, ah, bl, bh);
}

export function incDec64(c: Cpu, i: Instr, dec: boolean): void {
  rmwE(c, i, 64, (lo) => A.incdec64(c.flags, c, lo, c.hi, dec));
}

export function not64(c: Cpu, i: Instr): void {
  rmwE(c, i, 64, (lo) => {
    c.hi = ~c.hi;
    return ~lo;
  });
}

export function neg64(c: Cpu, i: Instr): void {
  rmwE(c, i, 64, (lo) => A.neg64(c.flags, c, lo, c.hi));
}

/** MUL/IMUL r/m64: RDX:RAX = RAX * E; CF = OF = the high half is significant. */
export function mul64(c: Cpu, i: Instr, signed: boolean): void {
  const bl = readE(c, i, 64);
  const bh = c.hi;
  const al = getReg(c, EAX, 64);
  const w = (signed ? A.muls64 : A.mulu64)(al, c.hi, bl, bh);
  setReg(c, EAX, 64, w[0] | 0, w[1] | 0);
  setReg(c, EDX, 64, w[2] | 0, w[3] | 0);
  const ext = signed && w[1] & 0x80000000 ? 0xffffffff : 0;
  const over = w[2] !== ext || w[3] !== ext ? 1 : 0;
  A.setFlags64(c.flags, w[0] | 0, w[1] | 0, 0, (over << 31) | 0);
}

/** IMUL r64, r/m64 [, imm]: the truncated signed product; CF = OF = it overflowed. */
export function imul64(c: Cpu, i: Instr, useImm: boolean): void {
  const al = readE(c, i, 64);
  const ah = c.hi;
  const bl = useImm ? i.imm : getReg(c, i.reg, 64);
  const bh = useImm ? i.imm >> 31 : c.hi;
  const w = A.muls64(al, ah, bl, bh);
  const ext = w[1] & 0x80000000 ? 0xffffffff : 0;
  const over = w[2] !== ext || w[3] !== ext ? 1 : 0;
  setReg(c, i.reg, 64, w[0] | 0, w[1] | 0);
  A.setFlags64(c.flags, w[0] | 0, w[1] | 0, 0, (over << 31) | 0);
}

/** DIV/IDIV r/m64: RDX:RAX / E; #DE for zero or an oversized quotient. */
export function div64(c: Cpu, i: Instr, signed: boolean): void {
  const dl = readE(c, i, 64);
  const dh = c.hi;
  if ((dl | dh) === 0) fault(DE);
  const n = [c.regs[EAX], c.regsHi[EAX], c.regs[EDX], c.regsHi[EDX]];
  const r = (signed ? A.divs128 : A.divu128)(n, dl, dh);
  if (r === undefined) fault(DE);
  setReg(c, EAX, 64, r[0], r[1]);
  setReg(c, EDX, 64, r[2], r[3]);
}

export function shift64(c: Cpu, i: Instr, n: number): void {
  const fn = A.SHIFT_OPS64[i.reg & 7];
  rmwE(c, i, 64, (lo) => fn(c.flags, c, lo, c.hi, n & 0x3f));
}

export function shiftDouble64(c: Cpu, i: Instr, n: number, right: boolean): void {
  const sl = getReg(c, i.reg, 64);
  const sh = c.hi;
  rmwE(c, i, 64, (lo) => A.shiftDouble64(c.flags, c, lo, c.hi, sl, sh, n & 0x3f, right));
}

/** BSF/BSR r64, r/m64: ZF=1 and the destination unchanged for a zero source. */
export function bitScan64(c: Cpu, i: Instr, reverse: boolean): void {
  const lo = readE(c, i, 64);
  const hi = c.hi;
  if ((lo | hi) === 0) {
    c.flags.set(0, 0, 32);
    return;
  }
  let idx: number;
  if (reverse) idx = hi !== 0 ? 63 - Math.clz32(hi) : 31 - Math.clz32(lo);
  else idx = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 63 - Math.clz32(hi & -hi);
  setReg(c, i.reg, 64, idx, 0);
  c.flags.set(1, 0, 32);
}

/** BSWAP r64. */
export function bswap64(c: Cpu, r: number): void {
  const sw = (v: number): number =>
    (v >>> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
  setReg(c, r, 64, sw(c.regsHi[r]), sw(c.regs[r]));
}

/** CMOVcc r64, r/m64 (the source is read either way). */
export function cmov64(c: Cpu, i: Instr, take: boolean): void {
  const lo = readE(c, i, 64);
  if (take) setReg(c, i.reg, 64, lo, c.hi);
}

/** XADD r/m64, r64. */
export function xadd64(c: Cpu, i: Instr): void {
  const sl = getReg(c, i.reg, 64);
  const sh = c.hi;
  rmwE(c, i, 64, (lo) => {
    const oh = c.hi;
    const sum = A.add64(c.flags, c, lo, oh, sl, sh);
    const sumHi = c.hi;
    setReg(c, i.reg, 64, lo, oh);
    c.hi = sumHi;
    return sum;
  });
}

/** CMPXCHG r/m64, r64: the destination is always written. */
export function cmpxchg64(c: Cpu, i: Instr): void {
  const sl = getReg(c, i.reg, 64);
  const sh = c.hi;
  rmwE(c, i, 64, (lo) => {
    const oh = c.hi;
    A.sub64(c.flags, c, c.regs[EAX], c.regsHi[EAX], lo, oh);
    if (c.flags.zf()) {
      c.hi = sh;
      return sl;
    }
    setReg(c, EAX, 64, lo, oh);
    c.hi = oh;
    return lo;
  });
}

/** CMPXCHG16B m128 (0F C7 /1 with REX.W): #GP(0) unless 16-byte aligned. */
export function cmpxchg16b(c: Cpu, i: Instr): void {
  const lin = memAddr(c, i, 16, true);
  if (lin % 16 !== 0) fault(13, 0);
  c.probeWrite(lin, 16);
  const v = [c.rd(lin, 4), c.rd(lin + 4, 4), c.rd(lin + 8, 4), c.rd(lin + 12, 4)];
  const regs = c.regs;
  const hi = c.regsHi;
  const equal = v[0] === regs[EAX] && v[1] === hi[EAX] && v[2] === regs[EDX] && v[3] === hi[EDX];
  const w = equal ? [regs[3], hi[3], regs[1], hi[1]] : v; // RCX:RBX, or the old value back
  for (let k = 0; k < 4; k++) c.wr(lin + 4 * k, 4, w[k]);
  if (!equal) {
    setReg(c, EAX, 64, v[0], v[1]);
    setReg(c, EDX, 64, v[2], v[3]);
  }
  c.flags.setBit(ZF, equal);
}

/** BT/BTS/BTR/BTC on a 64-bit register (bit offset taken modulo 64). */
export function bitReg64(c: Cpu, r: number, bit: number, op: number): void {
  const lo = getReg(c, r, 64);
  let hi = c.hi;
  const b = bit & 63;
  const m = 1 << (b & 31);
  const word = b >= 32 ? hi : lo;
  c.flags.setBit(CF, (word & m) !== 0);
  if (op === 0) return;
  const nw = op === 1 ? word | m : op === 2 ? word & ~m : word ^ m;
  if (b >= 32) hi = nw;
  setReg(c, r, 64, b >= 32 ? lo : nw, hi);
}
