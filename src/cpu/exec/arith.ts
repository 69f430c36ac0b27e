/**
 * Integer arithmetic and logic instruction handlers (SDM Vol. 2). Each handler works for
 * every operand width: `bits` comes from the opcode (byte forms) or the operand size.
 */
import * as alu from "../alu.js";
import { ALU_CMP, ALU_OPS, MASK, SHIFT_OPS, sext } from "../alu.js";
import { DE, EAX, ECX, EDX } from "../arch.js";
import { fault } from "../fault.js";
import { AF, CF, OF, PF, SF, ZF } from "../flags.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import type { Handler } from "../opcodes.js";
import { ea, getReg, memAddr, readE, rmwE, setReg, writeE, type Size } from "./operands.js";
import { segAddr } from "../segment.js";
import * as W from "./arith64.js";

/** Operand width of a handler: 8 for the byte forms, else the operand size. */
const width = (byte: boolean, i: Instr): number => (byte ? 8 : i.osize);

/**
 * The ALU block 00-3F and group 1 (80-83). Each handler is made for one operation, so the
 * ALU routine it calls is a constant V8 can inline. CMP does not write its result.
 */
export const aluEG =
  (op: number, byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    const src = getReg(c, i.reg, bits);
    if (bits === 64) return W.aluE64(c, i, op, src, c.hi);
    aluE(c, i, op, bits, src);
  };

/** E = E op src, or only the flags for CMP; a memory E is checked for writing first. */
function aluE(c: Cpu, i: Instr, op: number, bits: number, src: number): void {
  const fn = ALU_OPS[op];
  if (i.mod === 3) {
    const r = fn(c.flags, getReg(c, i.rm, bits), src, bits);
    if (op !== ALU_CMP) setReg(c, i.rm, bits, r);
    return;
  }
  const size = (bits >> 3) as Size;
  if (op === ALU_CMP) {
    fn(c.flags, c.rd(memAddr(c, i, size, false), size), src, bits);
    return;
  }
  const lin = memAddr(c, i, size, true);
  c.wr(lin, size, fn(c.flags, c.rdw(lin, size), src, bits));
}

/** op G, E (opcodes 02, 03, ...). */
export const aluGE =
  (op: number, byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.aluG64(c, i, op);
    const r = ALU_OPS[op](c.flags, getReg(c, i.reg, bits), readE(c, i, bits), bits);
    if (op !== ALU_CMP) setReg(c, i.reg, bits, r);
  };

/** op AL/eAX, imm (opcodes 04, 05, ...). */
export const aluAI =
  (op: number, byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.aluA64(c, i, op);
    const r = ALU_OPS[op](c.flags, getReg(c, EAX, bits), i.imm & MASK[bits], bits);
    if (op !== ALU_CMP) setReg(c, EAX, bits, r);
  };

/** Group 1 (80-83): op E, imm with the operation in ModRM.reg. */
export const aluEI =
  (op: number, byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.aluE64(c, i, op, i.imm, i.imm >> 31);
    aluE(c, i, op, bits, i.imm & MASK[bits]);
  };

export const testEG =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    const a = readE(c, i, bits);
    const ah = c.hi;
    const b = getReg(c, i.reg, bits);
    if (bits === 64) return W.test64(c, a, ah, b, c.hi);
    alu.and(c.flags, a, b, bits);
  };

export const testAI =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    const a = getReg(c, EAX, bits);
    if (bits === 64) return W.test64(c, a, c.hi, i.imm, i.imm >> 31);
    alu.and(c.flags, a, i.imm & MASK[bits], bits);
  };

export const testEI =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    const a = readE(c, i, bits);
    if (bits === 64) return W.test64(c, a, c.hi, i.imm, i.imm >> 31);
    alu.and(c.flags, a, i.imm & MASK[bits], bits);
  };

/** INC/DEC r (40-4F): register in the low 3 opcode bits. */
export const incDecReg: Handler = (c, i) => {
  const r = i.rm;
  const fn = i.opcode & 8 ? alu.dec : alu.inc;
  setReg(c, r, i.osize, fn(c.flags, getReg(c, r, i.osize), i.osize));
};

/** INC/DEC E (FE/FF /0 and /1). */
export const incDecE =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.incDec64(c, i, (i.reg & 7) === 1);
    const fn = (i.reg & 7) === 1 ? alu.dec : alu.inc;
    rmwE(c, i, bits, (a) => fn(c.flags, a, bits));
  };

export const notE =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.not64(c, i);
    rmwE(c, i, bits, (a) => ~a & MASK[bits]);
  };

export const negE =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.neg64(c, i);
    rmwE(c, i, bits, (a) => alu.neg(c.flags, a, bits));
  };

/** MUL E: unsigned AX = AL*E, DX:AX = AX*E or EDX:EAX = EAX*E (SDM Vol. 2, MUL). */
export const mulE =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.mul64(c, i, false);
    const a = getReg(c, EAX, bits) >>> 0;
    const b = readE(c, i, bits) >>> 0;
    let lo: number;
    let hi: number;
    if (bits === 32) [lo, hi] = alu.mulu32(a, b);
    else {
      const p = a * b;
      lo = p & MASK[bits];
      hi = p >>> bits;
    }
    storeWide(c, bits, lo, hi);
    const over = hi !== 0 ? 1 : 0;
    c.flags.setCO(lo, over, over, bits);
  };

/** IMUL E (one operand): signed, CF=OF when the high half is not the sign extension. */
export const imulE =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.mul64(c, i, true);
    const a = sext(getReg(c, EAX, bits), bits);
    const b = sext(readE(c, i, bits), bits);
    let lo: number;
    let hi: number;
    if (bits === 32) [lo, hi] = alu.muls32(a, b);
    else {
      const p = a * b;
      lo = p & MASK[bits];
      hi = (p >> bits) & MASK[bits];
    }
    storeWide(c, bits, lo, hi);
    const over = (hi | 0) !== (sext(lo, bits) < 0 ? MASK[bits] | 0 : 0) ? 1 : 0;
    c.flags.setCO(lo & MASK[bits], over, over, bits);
  };

/** Writes a double-width product: AX for bytes, DX:AX or EDX:EAX otherwise. */
function storeWide(c: Cpu, bits: number, lo: number, hi: number): void {
  if (bits === 8) setReg(c, EAX, 16, (hi << 8) | lo);
  else {
    setReg(c, EAX, bits, lo);
    setReg(c, EDX, bits, hi);
  }
}

/** IMUL G, E, imm (69, 6B) and IMUL G, E (0F AF): truncated signed product. */
export const imulGEI =
  (useImm: boolean): Handler =>
  (c, i) => {
    const bits = i.osize;
    if (bits === 64) return W.imul64(c, i, useImm);
    const a = sext(readE(c, i, bits), bits);
    const b = useImm ? sext(i.imm, bits) : sext(getReg(c, i.reg, bits), bits);
    let lo: number;
    let over: number;
    if (bits === 32) {
      const [l, h] = alu.muls32(a, b);
      lo = l | 0;
      over = (h | 0) !== (lo < 0 ? -1 : 0) ? 1 : 0;
    } else {
      const p = a * b;
      lo = p & 0xffff;
      over = p !== sext(lo, 16) ? 1 : 0;
    }
    setReg(c, i.reg, bits, lo);
    c.flags.setCO(lo & MASK[bits], over, over, bits);
  };

/** DIV E: unsigned; #DE for a zero divisor or a quotient that does not fit. */
export const divE =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.div64(c, i, false);
    const d = readE(c, i, bits) >>> 0;
    if (d === 0) fault(DE);
    if (bits === 32) {
      const hi = c.regs[EDX] >>> 0;
      if (hi >= d) fault(DE);
      const [q, r] = alu.divu64by32(hi, c.regs[EAX] >>> 0, d);
      // 32-bit results zero-extend into RAX and RDX (SDM Vol. 1, 3.4.1.1).
      setReg(c, EAX, 32, q);
      setReg(c, EDX, 32, r);
      return;
    }
    const n = bits === 8 ? getReg(c, EAX, 16) : (getReg(c, EDX, 16) << 16) + getReg(c, EAX, 16);
    const q = Math.floor((n >>> 0) / d);
    if (q > MASK[bits]) fault(DE);
    storeQuotient(c, bits, q, (n >>> 0) % d);
  };

/** IDIV E: signed, truncating toward zero; #DE when the quotient overflows. */
export const idivE =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.div64(c, i, true);
    const d = sext(readE(c, i, bits), bits);
    if (d === 0) fault(DE);
    if (bits === 32) {
      const hi = c.regs[EDX];
      const lo = c.regs[EAX] >>> 0;
      const neg = hi < 0;
      // |dividend| as hi:lo unsigned.
      let ahi = hi >>> 0;
      let alo = lo;
      if (neg) {
        alo = (~lo + 1) >>> 0;
        ahi = (~hi + (alo === 0 ? 1 : 0)) >>> 0;
      }
      const ad = Math.abs(d);
      if (ahi >= ad) fault(DE);
      const [q, r] = alu.divu64by32(ahi, alo, ad);
      const quotient = neg !== d < 0 ? -q : q;
      if (quotient > 0x7fffffff || quotient < -0x80000000) fault(DE);
      setReg(c, EAX, 32, quotient | 0);
      setReg(c, EDX, 32, (neg ? -r : r) | 0);
      return;
    }
    const n =
      bits === 8 ? sext(getReg(c, EAX, 16), 16) : (getReg(c, EDX, 16) << 16) | getReg(c, EAX, 16);
    const q = Math.trunc(n / d);
    const lim = 1 << (bits - 1);
    if (q >= lim || q < -lim) fault(DE);
    storeQuotient(c, bits, q & MASK[bits], (n - q * d) & MASK[bits]);
  };

function storeQuotient(c: Cpu, bits: number, q: number, r: number): void {
  if (bits === 8) setReg(c, EAX, 16, ((r & 0xff) << 8) | (q & 0xff));
  else {
    setReg(c, EAX, bits, q);
    setReg(c, EDX, bits, r);
  }
}

/** Shift-count sources of group 2: 1 (D0/D1), CL (D2/D3), imm8 (C0/C1). */
export const enum Count {
  One,
  Cl,
  Imm,
}

export const shiftE =
  (byte: boolean, count: Count): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    const raw = count === Count.One ? 1 : count === Count.Cl ? c.regs[ECX] : i.imm;
    if (bits === 64) return W.shift64(c, i, raw);
    const n = raw & 0x1f;
    const fn = SHIFT_OPS[i.reg & 7];
    rmwE(c, i, bits, (a) => fn(c.flags, a, n, bits));
  };

/** SHLD/SHRD E, G, imm8/CL (0F A4/A5/AC/AD). */
export const shiftDouble =
  (right: boolean, count: Count): Handler =>
  (c, i) => {
    const bits = i.osize;
    const raw = count === Count.Cl ? c.regs[ECX] : i.imm;
    if (bits === 64) return W.shiftDouble64(c, i, raw, right);
    const n = raw & 0x1f;
    const src = getReg(c, i.reg, bits);
    const fn = right ? alu.shrd : alu.shld;
    rmwE(c, i, bits, (a) => fn(c.flags, a, src, n, bits));
  };

/** Bit-test operations: BT, BTS, BTR, BTC in the order of group 8's /4-/7. */
export const enum BitOp {
  Test,
  Set,
  Reset,
  Complement,
}

function applyBit(c: Cpu, v: number, bit: number, op: BitOp): number {
  const m = 1 << bit;
  c.flags.setBit(CF, (v & m) !== 0);
  if (op === BitOp.Set) return v | m;
  if (op === BitOp.Reset) return v & ~m;
  if (op === BitOp.Complement) return v ^ m;
  return v;
}

/**
 * BT/BTS/BTR/BTC E, G: with a memory operand the register is a signed bit offset that
 * can reach outside the addressed word (SDM Vol. 2, BT).
 */
export const bitEG =
  (op: BitOp): Handler =>
  (c, i) => {
    const bits = i.osize;
    if (i.mode64) return bitTest64(c, i, op);
    const off = sext(getReg(c, i.reg, bits), bits);
    if (i.mod === 3) {
      const v = getReg(c, i.rm, bits);
      const r = applyBit(c, v, off & (bits - 1), op);
      if (op !== BitOp.Test) setReg(c, i.rm, bits, r);
      return;
    }
    const size = (bits >> 3) as Size;
    const addr = (ea(c, i) + Math.floor(off / bits) * size) | 0;
    const lin = segAddr(c, i.seg, i.asize === 16 ? addr & 0xffff : addr, size, op !== BitOp.Test);
    if (op === BitOp.Test) applyBit(c, c.rd(lin, size), off & (bits - 1), op);
    else c.wr(lin, size, applyBit(c, c.rdw(lin, size), off & (bits - 1), op));
  };

/**
 * BT/BTS/BTR/BTC in 64-bit mode, E, G or E, imm8: a memory operand is reached a dword at
 * a time (the dword holding the bit; the SDM lets the access size vary, Vol. 2, BT).
 */
function bitTest64(c: Cpu, i: Instr, op: BitOp, imm = -1): void {
  const bits = i.osize;
  let off: number; // the bit offset: the imm8 modulo the width, or the signed register
  if (imm >= 0) off = imm & (bits - 1);
  else {
    off = getReg(c, i.reg, bits);
    // A register operand takes the offset modulo 64 (SDM Vol. 2A, BT): the low half's
    // bits, before the 64-bit offset (exact only up to 2^53) is formed for memory.
    if (bits === 64 && i.mod === 3) return W.bitReg64(c, i.rm, off & 63, op);
    if (bits === 64) off = c.hi * 0x100000000 + (off >>> 0);
    else if (bits === 16) off = sext(off, 16);
  }
  if (i.mod === 3) {
    if (bits === 64) return W.bitReg64(c, i.rm, off, op); // the imm8 form
    const r = applyBit(c, getReg(c, i.rm, bits), off & (bits - 1), op);
    if (op !== BitOp.Test) setReg(c, i.rm, bits, r);
    return;
  }
  const unit = bits === 16 ? 16 : 32;
  const size = (unit >> 3) as Size;
  const base = memAddr(c, i, size, op !== BitOp.Test);
  const lin = (base + Math.floor(off / unit) * size + 2 ** 48) % 2 ** 48;
  const bit = off & (unit - 1);
  if (op === BitOp.Test) applyBit(c, c.rd(lin, size), bit, op);
  else c.wr(lin, size, applyBit(c, c.rdw(lin, size), bit, op));
}

/** Group 8 (0F BA /4-/7): BT/BTS/BTR/BTC E, imm8. */
export const bitEI: Handler = (c, i) => {
  const bits = i.osize;
  const op = ((i.reg & 7) - 4) as BitOp;
  if (i.mode64) return bitTest64(c, i, op, i.imm & 0xff);
  const bit = i.imm & (bits - 1);
  if (op === BitOp.Test) applyBit(c, readE(c, i, bits), bit, op);
  else rmwE(c, i, bits, (a) => applyBit(c, a, bit, op));
};

/** BSF/BSR: ZF=1 and the destination unchanged for a zero source (SDM Vol. 2, BSF). */
export const bitScan =
  (reverse: boolean): Handler =>
  (c, i) => {
    const bits = i.osize;
    if (bits === 64) return W.bitScan64(c, i, reverse);
    const v = readE(c, i, bits) & MASK[bits];
    if (v === 0) {
      c.flags.set(0, 0, bits);
      return;
    }
    const idx = reverse ? 31 - Math.clz32(v) : 31 - Math.clz32(v & -v);
    setReg(c, i.reg, bits, idx);
    c.flags.set(1, 0, bits); // ZF=0; CF, OF, SF, AF, PF are undefined
  };

/** CBW/CWDE (98): sign-extend AL into AX or AX into EAX. */
export const cbw: Handler = (c, i) => {
  if (i.osize === 64) return setReg(c, EAX, 64, c.regs[EAX], c.regs[EAX] >> 31); // CDQE
  const half = i.osize >> 1;
  setReg(c, EAX, i.osize, sext(getReg(c, EAX, half), half));
};

/** CWD/CDQ (99): sign-extend AX into DX or EAX into EDX. */
export const cwd: Handler = (c, i) => {
  if (i.osize === 64) {
    const s = c.regsHi[EAX] >> 31; // CQO
    return setReg(c, EDX, 64, s, s);
  }
  setReg(c, EDX, i.osize, getReg(c, EAX, i.osize) & (1 << (i.osize - 1)) ? -1 : 0);
};

/** SETcc E (0F 90-9F). */
export const setcc: Handler = (c, i) => writeE(c, i, 8, c.flags.cond(i.opcode & 15) ? 1 : 0);

/** CMOVcc G, E (0F 40-4F): the source is read even when the condition is false. */
export const cmovcc: Handler = (c, i) => {
  const take = c.flags.cond(i.opcode & 15);
  if (i.osize === 64) return W.cmov64(c, i, take);
  const v = readE(c, i, i.osize);
  if (take) setReg(c, i.reg, i.osize, v);
  // In 64-bit mode a 32-bit CMOV zero-extends its destination even when it does not move.
  else if (i.osize === 32) c.regsHi[i.reg] = 0;
};

/** XADD E, G (0F C0/C1). */
export const xadd =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.xadd64(c, i);
    const src = getReg(c, i.reg, bits);
    rmwE(c, i, bits, (a) => {
      const sum = alu.add(c.flags, a, src, bits);
      setReg(c, i.reg, bits, a);
      return sum;
    });
  };

/** CMPXCHG E, G (0F B0/B1): the destination is always written (SDM Vol. 2, CMPXCHG). */
export const cmpxchg =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = width(byte, i);
    if (bits === 64) return W.cmpxchg64(c, i);
    const src = getReg(c, i.reg, bits);
    if (i.mod === 3) {
      // A register destination is written only when the comparison succeeds, the
      // accumulator only when it fails (SDM Vol. 2A, CMPXCHG, Operation): in 64-bit mode
      // the other keeps its upper half, as on Intel and AMD processors. Only a memory
      // destination is always written back.
      const a = getReg(c, i.rm, bits);
      alu.sub(c.flags, getReg(c, EAX, bits), a, bits);
      if (c.flags.zf()) setReg(c, i.rm, bits, src);
      else setReg(c, EAX, bits, a);
      return;
    }
    rmwE(c, i, bits, (a) => {
      alu.sub(c.flags, getReg(c, EAX, bits), a, bits);
      if (c.flags.zf()) return src;
      setReg(c, EAX, bits, a);
      return a;
    });
  };

/** CMPXCHG8B m64 (0F C7 /1); with REX.W, CMPXCHG16B m128. */
export const cmpxchg8b: Handler = (c, i) => {
  if (i.osize === 64) return W.cmpxchg16b(c, i);
  const lin = memAddr(c, i, 8, true);
  c.probeWrite(lin, 8);
  const lo = c.rdw(lin, 4);
  const hi = c.rdw(lin + 4, 4);
  if (lo === c.regs[EAX] && hi === c.regs[EDX]) {
    c.wr(lin, 4, c.regs[3]); // EBX
    c.wr(lin + 4, 4, c.regs[ECX]);
    c.flags.setBit(ZF, true);
  } else {
    c.wr(lin, 4, lo); // the destination is written back either way
    c.wr(lin + 4, 4, hi);
    setReg(c, EAX, 32, lo);
    setReg(c, EDX, 32, hi);
    c.flags.setBit(ZF, false);
  }
};

/** BSWAP r32 (0F C8-CF); with a 16-bit operand the result is undefined: we clear it. */
export const bswap: Handler = (c, i) => {
  const r = i.rm;
  const v = c.regs[r];
  if (i.osize === 64) W.bswap64(c, r);
  else if (i.osize === 16) setReg(c, r, 16, 0);
  else setReg(c, r, 32, (v >>> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24));
};

// ---- BCD adjustments (SDM Vol. 2, DAA/DAS/AAA/AAS/AAM/AAD) ----

function setSzp(c: Cpu, al: number, cf: boolean, af: boolean): void {
  const w = c.flags.get() & ~(CF | AF | ZF | SF | PF | OF);
  c.flags.set(al, 0, 8); // ZF, SF, PF from AL
  const szp = c.flags.get() & (ZF | SF | PF);
  c.flags.load(w | szp | (cf ? CF : 0) | (af ? AF : 0));
}

/** DAA (27) and DAS (2F): adjust AL after a packed-BCD addition or subtraction. */
export const decimalAdjust =
  (subtract: boolean): Handler =>
  (c) => {
    const old = getReg(c, EAX, 8);
    const sign = subtract ? -1 : 1;
    let al = old;
    const oldCf = c.flags.cf();
    let af = false;
    let cf = false;
    if ((al & 0xf) > 9 || c.flags.af()) {
      al = (al + sign * 6) & 0xff;
      cf = oldCf || (subtract ? old < 6 : old > 0xf9);
      af = true;
    }
    if (old > 0x99 || oldCf) {
      al = (al + sign * 0x60) & 0xff;
      cf = true;
    }
    setReg(c, EAX, 8, al);
    setSzp(c, al, cf, af);
  };

/** AAA (37) and AAS (3F). */
export const aaaAas =
  (subtract: boolean): Handler =>
  (c) => {
    let ax = getReg(c, EAX, 16);
    const adjust = (ax & 0xf) > 9 || c.flags.af();
    if (adjust) ax = subtract ? ax - 6 - 0x100 : ax + 0x106;
    setReg(c, EAX, 16, ax & 0xff0f);
    setSzp(c, ax & 0x0f, adjust, adjust);
  };

export const aam: Handler = (c, i) => {
  if ((i.imm & 0xff) === 0) fault(DE);
  const al = getReg(c, EAX, 8);
  const r = al % i.imm;
  setReg(c, EAX, 16, (Math.floor(al / i.imm) << 8) | r);
  setSzp(c, r, false, false);
};

export const aad: Handler = (c, i) => {
  const ax = getReg(c, EAX, 16);
  const al = ((ax & 0xff) + (ax >> 8) * i.imm) & 0xff;
  setReg(c, EAX, 16, al);
  setSzp(c, al, false, false);
};
