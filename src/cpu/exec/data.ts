/**
 * Data movement handlers: MOV forms, MOVZX/MOVSX, LEA, XCHG, the stack instructions,
 * LAHF/SAHF, PUSHF/POPF, XLAT and segment-register loads (SDM Vol. 2).
 */
import { sext } from "../alu.js";
import { BLOCKING_MOV_SS, CS, EAX, EBP, EBX, ESP, GP, SS, SS_VEC, UD } from "../arch.js";
import type { Cpu } from "../cpu.js";
import { fault } from "../fault.js";
import { AC, ARITH, ID, IF, IOPL, IOPL_SHIFT, NT, RF, VIF, VIP, VM, WRITABLE } from "../flags.js";
import type { Handler } from "../opcodes.js";
import { loadDataSeg, segAddr } from "../segment.js";
import {
  adjustSp,
  canonical,
  ea,
  effectiveAddress64,
  getReg,
  memAddr,
  readMem,
  writeMem,
  peek,
  pop,
  push,
  readE,
  setReg,
  setSp,
  stackAddr,
  writeE,
  type Size,
} from "./operands.js";

const w = (byte: boolean, osize: number): number => (byte ? 8 : osize);
/** AH in the byte-register numbering of exec/operands.ts. */
const AH = 16;

// Arguments are evaluated left to right: a 64-bit read sets cpu.hi before it is passed on.
export const movEG =
  (byte: boolean): Handler =>
  (c, i) =>
    writeE(c, i, w(byte, i.osize), getReg(c, i.reg, w(byte, i.osize)), c.hi);

export const movGE =
  (byte: boolean): Handler =>
  (c, i) =>
    setReg(c, i.reg, w(byte, i.osize), readE(c, i, w(byte, i.osize)), c.hi);

/** MOV E, imm: a 64-bit destination gets the imm32 sign-extended. */
export const movEI =
  (byte: boolean): Handler =>
  (c, i) =>
    writeE(c, i, w(byte, i.osize), i.imm, i.immHi);

/** MOV r8, imm8 (B0-B7) and MOV r, imm (B8-BF). */
export const movRI =
  (byte: boolean): Handler =>
  (c, i) =>
    setReg(c, i.rm, w(byte, i.osize), i.imm, i.immHi);

/** MOV AL/eAX, moffs (A0/A1) and MOV moffs, AL/eAX (A2/A3). */
export const movMoffs =
  (byte: boolean, store: boolean): Handler =>
  (c, i) => {
    const bits = w(byte, i.osize);
    const size = (bits >> 3) as Size;
    let lin: number;
    if (i.mode64) {
      // A 64-bit moffs, plus the FS/GS base if overridden (SDM Vol. 2, MOV).
      const s = i.seg >= 4 ? c.segs[i.seg] : null;
      const lo = (i.disp >>> 0) + (s ? s.base >>> 0 : 0);
      // A non-canonical address is #SS(0) with an SS override, else #GP(0) (SDM Vol. 2, MOV).
      const hi = i.dispHi + (s ? s.baseHi : 0) + Math.floor(lo / 0x100000000);
      lin = canonical(lo, hi, i.seg === SS ? SS_VEC : GP);
    } else lin = segAddr(c, i.seg, i.disp, size, store);
    if (store) writeMem(c, lin, bits, getReg(c, EAX, bits), c.hi);
    else setReg(c, EAX, bits, readMem(c, lin, bits), c.hi);
  };

/** MOVZX/MOVSX G, Eb/Ew (0F B6/B7/BE/BF). */
export const movExtend =
  (srcBits: number, signed: boolean): Handler =>
  (c, i) => {
    const v = readE(c, i, srcBits);
    const x = signed ? sext(v, srcBits) : v;
    setReg(c, i.reg, i.osize, x, x >> 31);
  };

/** LEA G, M: the offset only, truncated to the operand size; no canonical check. */
export const lea: Handler = (c, i) => {
  if (i.mode64 && i.asize === 64) return setReg(c, i.reg, i.osize, effectiveAddress64(c, i), c.hi);
  setReg(c, i.reg, i.osize, ea(c, i));
};

/** MOVSXD r64, r/m32 (63 in 64-bit mode): sign-extends a dword. */
export const movsxd: Handler = (c, i) => {
  const v = readE(c, i, 32);
  setReg(c, i.reg, i.osize, v, i.osize === 64 ? v >> 31 : 0);
};

/** XCHG E, G (86/87): with memory it is always locked; the write is checked first. */
export const xchgEG =
  (byte: boolean): Handler =>
  (c, i) => {
    const bits = w(byte, i.osize);
    const g = getReg(c, i.reg, bits);
    const gh = c.hi;
    if (i.mod === 3) {
      setReg(c, i.reg, bits, getReg(c, i.rm, bits), c.hi);
      setReg(c, i.rm, bits, g, gh);
      return;
    }
    const lin = memAddr(c, i, bits >> 3, true);
    if (bits === 64) c.probeWrite(lin, 8);
    const old = bits === 64 ? readMem(c, lin, 64) : c.rdw(lin, (bits >> 3) as Size);
    const oh = c.hi;
    writeMem(c, lin, bits, g, gh);
    setReg(c, i.reg, bits, old, oh);
  };

/** XCHG eAX, r (91-97); 90 is NOP (and PAUSE with F3). */
export const xchgAR: Handler = (c, i) => {
  const r = i.rm;
  const t = getReg(c, r, i.osize);
  const th = c.hi;
  setReg(c, r, i.osize, getReg(c, EAX, i.osize), c.hi);
  setReg(c, EAX, i.osize, t, th);
};

export const nop: Handler = () => {};

export const pushR: Handler = (c, i) => push(c, i.osize, getReg(c, i.rm, i.osize), c.hi);
export const popR: Handler = (c, i) => setReg(c, i.rm, i.osize, pop(c, i.osize), c.hi);
/** PUSH imm: sign-extended to the stack width (SDM Vol. 2, PUSH). */
export const pushI: Handler = (c, i) => push(c, i.osize, i.imm, i.imm >> 31);
export const pushE: Handler = (c, i) => push(c, i.osize, readE(c, i, i.osize), c.hi);

/**
 * POP E (8F /0): ESP is incremented before the destination address is computed, so
 * POP [ESP+n] addresses with the new ESP (SDM Vol. 2, POP).
 */
export const popE: Handler = (c, i) => {
  const v = peek(c, 0, i.osize);
  const vh = c.hi;
  const oldSp = c.regs[ESP];
  const oldSpHi = c.regsHi[ESP];
  adjustSp(c, i.osize >> 3);
  try {
    writeE(c, i, i.osize, v, vh);
  } catch (e) {
    c.regs[ESP] = oldSp;
    c.regsHi[ESP] = oldSpHi;
    throw e;
  }
};

/** PUSH sreg: with a 32-bit operand size the selector is written as a 16-bit value. */
export const pushSeg =
  (seg: number): Handler =>
  (c, i) => {
    const size = i.osize >> 3;
    c.wr(stackAddr(c, -size, 2, true), 2, c.segs[seg].selector);
    adjustSp(c, -size);
  };

export const popSeg =
  (seg: number): Handler =>
  (c, i) => {
    loadDataSeg(c, seg, peek(c, 0, 16));
    adjustSp(c, i.osize >> 3);
    if (seg === SS) c.blocking |= BLOCKING_MOV_SS;
  };

/** MOV E, Sreg (8C). A register destination with a 32-bit operand gets the zero-extended selector. */
export const movESreg: Handler = (c, i) => {
  if (i.reg > 5) fault(UD);
  const sel = c.segs[i.reg].selector;
  if (i.mod === 3) setReg(c, i.rm, i.osize, sel);
  else writeE(c, i, 16, sel);
};

/** MOV Sreg, E (8E). Loading CS this way is #UD. */
export const movSregE: Handler = (c, i) => {
  if (i.reg > 5 || i.reg === CS) fault(UD);
  loadDataSeg(c, i.reg, readE(c, i, 16));
  if (i.reg === SS) c.blocking |= BLOCKING_MOV_SS;
};

/** LDS/LES/LFS/LGS/LSS G, Mp: offset then selector. */
export const loadFarPointer =
  (seg: number): Handler =>
  (c, i) => {
    if (i.mod === 3) fault(UD);
    const size = i.osize >> 3;
    const lin = memAddr(c, i, size + 2, false);
    const offset = readMem(c, lin, i.osize); // m16:16, m16:32 or, with REX.W, m16:64
    const offHi = c.hi;
    const sel = c.rd(lin + size, 2);
    loadDataSeg(c, seg, sel);
    setReg(c, i.reg, i.osize, offset, offHi);
  };

/** PUSHA/PUSHAD (60): pushes EAX..EDI with the ESP value from before the first push. */
export const pusha: Handler = (c, i) => {
  const size = i.osize >> 3;
  const sp = c.regs[ESP];
  // Probe the whole frame first so a fault leaves ESP unchanged.
  stackAddr(c, -8 * size, 8 * size, true);
  for (let r = 0; r < 8; r++) push(c, i.osize, r === ESP ? sp : c.regs[r]);
};

/** POPA/POPAD (61): the saved ESP is skipped. */
export const popa: Handler = (c, i) => {
  const size = i.osize >> 3;
  stackAddr(c, 0, 8 * size, false);
  const vals = Array.from({ length: 8 }, (_, k) => peek(c, k * size, i.osize));
  for (let r = 0; r < 8; r++) if (7 - r !== ESP) setReg(c, 7 - r, i.osize, vals[r]);
  setSp(c, c.regs[ESP] + 8 * size);
};

/** ENTER Iw, Ib (C8) with nesting levels (SDM Vol. 2, ENTER). */
export const enter: Handler = (c, i) => {
  if (c.mode64) return enter64(c, i.imm, i.imm2 & 31, i.osize);
  const bits = i.osize;
  const size = bits >> 3;
  const level = i.imm2 & 31;
  const big = c.segs[SS].big;
  push(c, bits, getReg(c, EBP, bits));
  const frame = getReg(c, ESP, big ? 32 : 16);
  let bp = getReg(c, EBP, big ? 32 : 16);
  for (let k = 1; k < level; k++) {
    bp = big ? (bp - size) | 0 : (bp - size) & 0xffff;
    push(c, bits, c.rd(segAddr(c, SS, bp, size, false), size as Size));
  }
  if (level > 0) push(c, bits, frame);
  setReg(c, EBP, bits, frame);
  const sp = c.regs[ESP] - i.imm;
  stackAddr(c, -i.imm, 1, true); // the new stack top must be inside the segment
  setSp(c, sp);
};

/**
 * ENTER in 64-bit mode: RSP and RBP stay 64-bit, the frame pointers pushed are of the
 * operand size, 64 bits or 16 with 0x66 (SDM Vol. 2, ENTER, Operation).
 */
function enter64(c: Cpu, frameSize: number, level: number, bits: number): void {
  const oldSp = [c.regs[ESP], c.regsHi[ESP]];
  try {
    push(c, bits, c.regs[EBP], c.regsHi[EBP]);
    const frame = [c.regs[ESP], c.regsHi[ESP]];
    const bp = [c.regs[EBP], c.regsHi[EBP]];
    for (let k = 1; k < level; k++) {
      const lo = (bp[0] >>> 0) - (bits >> 3);
      bp[1] = (bp[1] + Math.floor(lo / 0x100000000)) | 0;
      bp[0] = lo | 0;
      const v = readMem(c, canonical(bp[0], bp[1], SS_VEC), bits);
      push(c, bits, v, c.hi);
    }
    if (level > 0) push(c, bits, frame[0], frame[1]);
    stackAddr(c, -frameSize, 1, true);
    setReg(c, EBP, 64, frame[0], frame[1]);
    adjustSp(c, -frameSize);
  } catch (e) {
    setSp(c, oldSp[0], oldSp[1]);
    throw e;
  }
}

/** LEAVE (C9): rSP = rBP, then POP rBP. */
export const leave: Handler = (c, i) => {
  if (c.mode64) {
    const oldSp = [c.regs[ESP], c.regsHi[ESP]];
    setSp(c, c.regs[EBP], c.regsHi[EBP]);
    try {
      setReg(c, EBP, i.osize, pop(c, i.osize), c.hi);
    } catch (e) {
      setSp(c, oldSp[0], oldSp[1]);
      throw e;
    }
    return;
  }
  const big = c.segs[SS].big;
  const oldEsp = c.regs[ESP];
  setSp(c, getReg(c, EBP, big ? 32 : 16));
  try {
    setReg(c, EBP, i.osize, pop(c, i.osize));
  } catch (e) {
    c.regs[ESP] = oldEsp;
    throw e;
  }
};

/** LAHF (9F): AH = SF:ZF:0:AF:0:PF:1:CF. */
export const lahf: Handler = (c) => setReg(c, AH, 8, c.flags.get() & 0xff);

/** SAHF (9E): loads SF, ZF, AF, PF, CF from AH. */
export const sahf: Handler = (c) => {
  const ah = getReg(c, AH, 8);
  c.flags.load((c.flags.get() & ~(ARITH & 0xff)) | (ah & ARITH & 0xff));
};

/** PUSHF (9C): VM and RF are cleared in the image; IOPL < 3 in V86 mode is #GP(0). */
export const pushf: Handler = (c, i) => {
  if (c.v86 && (c.flags.word & IOPL) >> IOPL_SHIFT < 3) fault(GP, 0);
  push(c, i.osize, c.flags.get() & ~(VM | RF));
};

/**
 * POPF (9D): which bits change depends on CPL and IOPL (SDM Vol. 2, POPF): IOPL only at
 * CPL 0, IF only when CPL <= IOPL; VM, VIF and VIP never; RF is cleared.
 */
export const popf: Handler = (c, i) => {
  const iopl = (c.flags.word & IOPL) >> IOPL_SHIFT;
  if (c.v86 && iopl < 3) fault(GP, 0);
  const v = pop(c, i.osize);
  let mask = WRITABLE & ~(VM | VIF | VIP | RF);
  if (c.cpl > 0) mask &= ~IOPL;
  if (c.protectedMode && c.cpl > iopl) mask &= ~IF;
  if (i.osize === 16) mask &= 0xffff;
  const old = c.flags.get();
  c.flags.load((old & ~mask) | (v & mask));
  if ((old ^ c.flags.word) & (AC | ID | NT)) c.modeChanged();
};

/** XLAT (D7): AL = [seg:EBX + AL]. */
export const xlat: Handler = (c, i) => {
  if (i.mode64) {
    const lo = (c.regs[EBX] >>> 0) + getReg(c, EAX, 8);
    const hi = i.asize === 64 ? c.regsHi[EBX] + Math.floor(lo / 0x100000000) : 0;
    const s = i.seg >= 4 ? c.segs[i.seg] : null; // FS and GS keep their bases
    const lin = canonical(lo + (s ? s.base >>> 0 : 0), hi + (s ? s.baseHi : 0), GP);
    return setReg(c, EAX, 8, c.rd(lin, 1));
  }
  const base = i.asize === 32 ? c.regs[EBX] : c.regs[EBX] & 0xffff;
  const off = i.asize === 32 ? (base + getReg(c, EAX, 8)) | 0 : (base + getReg(c, EAX, 8)) & 0xffff;
  setReg(c, EAX, 8, c.rd(segAddr(c, i.seg, off, 1, false), 1));
};
