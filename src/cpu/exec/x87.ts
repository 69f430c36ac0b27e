/**
 * x87 data transfer, arithmetic and comparison instructions (SDM Vol. 1, 8.3; Vol. 2 for
 * each instruction). Values travel as 80-bit bit patterns; arithmetic goes through float64
 * (fpu.ts says what that costs in precision).
 */
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { ARITH, CF, PF, ZF } from "../flags.js";
import {
  bitsToNumber,
  conv,
  doubleToBits,
  FSW_C0,
  FSW_C1,
  FSW_C2,
  FSW_C3,
  FSW_CC,
  FSW_DE,
  FSW_IE,
  FSW_OE,
  FSW_PE,
  FSW_ZE,
  INDEFINITE,
  integerToBits,
  nanToDouble,
  nanToSingle,
  numberToBits,
  roundToInteger,
  singleToBits,
  type FpuState,
} from "../fpu.js";
import type { Handler } from "../opcodes.js";
import {
  begin,
  Kind,
  operand,
  push,
  read80,
  setIndefinite,
  underflow,
  write80,
} from "./x87-common.js";

/** A memory operand's format (SDM Vol. 1, 4.2 and 8.2). */
export const enum Fmt {
  F32,
  F64,
  F80,
  I16,
  I32,
  I64,
}
const SIZE = [4, 8, 10, 2, 4, 8];

/** An operand as 80 bits (filled by readValue). */
export interface Bits {
  lo: number;
  hi: number;
  se: number;
}

const EXP = 0x7fff;
const J = 0x80000000 | 0;
export const isNaNBits = (b: Bits): boolean => (b.se & EXP) === EXP && ((b.hi & ~J) | b.lo) !== 0;
/** SNaNs and the encodings the x87 no longer supports (unnormals, pseudo-NaNs) raise #IA. */
export const isSignalling = (b: Bits): boolean =>
  ((b.se & EXP) !== 0 && (b.hi & J) === 0) || (isNaNBits(b) && (b.hi & 0x40000000) === 0);
export const isDenormal = (b: Bits): boolean => (b.se & EXP) === 0 && (b.hi | b.lo) !== 0;
export const isZero = (b: Bits): boolean => (b.se & EXP) === 0 && (b.hi | b.lo) === 0;

/** Reads a memory operand of format `fmt` as 80 bits (exact for every format). */
function readValue(c: Cpu, i: Instr, fmt: Fmt): Bits {
  const lin = operand(c, i, SIZE[fmt], false);
  switch (fmt) {
    case Fmt.F80:
      return read80(c, lin);
    case Fmt.F32:
      singleToBits(c.rd(lin, 4));
      break;
    case Fmt.F64:
      doubleToBits(c.rd(lin, 4), c.rd(lin + 4, 4));
      break;
    case Fmt.I16: {
      const v = (c.rd(lin, 2) << 16) >> 16;
      integerToBits(Math.abs(v), 0, v < 0);
      break;
    }
    case Fmt.I32: {
      const v = c.rd(lin, 4);
      integerToBits(Math.abs(v) >>> 0, 0, v < 0);
      break;
    }
    case Fmt.I64: {
      let lo = c.rd(lin, 4);
      let hi = c.rd(lin + 4, 4);
      const neg = hi < 0;
      if (neg) {
        // Two's complement of the 64-bit value, on halves.
        lo = ~lo + 1;
        hi = ~hi + (lo === 0 ? 1 : 0);
      }
      integerToBits(lo, hi, neg);
      break;
    }
  }
  return { lo: conv.lo, hi: conv.hi, se: conv.se };
}

export function stBits(f: FpuState, i: number): Bits {
  const p = f.phys(i);
  return { lo: f.sigLo[p], hi: f.sigHi[p], se: f.se[p] };
}

// ---- loads ----

/** FLD m32fp/m64fp/m80fp, FILD m16/m32/m64int (SDM Vol. 2, FLD and FILD). */
export const fldM =
  (fmt: Fmt): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    let v = readValue(c, i, fmt);
    if (fmt === Fmt.F32 || fmt === Fmt.F64) {
      // Single and double SNaNs raise #IA; an 80-bit load is a plain copy.
      let flags = isDenormal(v) ? FSW_DE : 0;
      if (isSignalling(v)) flags |= FSW_IE;
      if (flags && !f.raise(flags)) return;
      if (flags & FSW_IE) v = { ...v, hi: v.hi | 0x40000000 };
    }
    push(f, v.lo, v.hi, v.se);
  };

/** FLD ST(i): pushes a copy of ST(i). */
export const fldSt: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  const st = i.rm & 7;
  if (f.isEmpty(st)) {
    if (!underflow(f, st)) return;
    push(f, INDEFINITE.lo, INDEFINITE.hi, INDEFINITE.se);
    return;
  }
  const v = stBits(f, st);
  push(f, v.lo, v.hi, v.se);
};

/** The constants of FLD1, FLDL2T, ... (SDM Vol. 1, 8.3.4), as 80 bits rounded to nearest. */
const CONSTANTS: [number, number, number][] = [
  [0, J, 0x3fff], // FLD1: +1.0
  [0xcd1b8afe | 0, 0xd49a784b | 0, 0x4000], // FLDL2T: log2(10)
  [0x5c17f0bc, 0xb8aa3b29 | 0, 0x3fff], // FLDL2E: log2(e)
  [0x2168c235, 0xc90fdaa2 | 0, 0x4000], // FLDPI: pi
  [0xfbcff799 | 0, 0x9a209a84 | 0, 0x3ffd], // FLDLG2: log10(2)
  [0xd1cf79ac | 0, 0xb17217f7 | 0, 0x3ffe], // FLDLN2: ln(2)
  [0, 0, 0], // FLDZ: +0.0
];
/**
 * Where rounding down or toward zero gives the constant one unit lower in the last place:
 * the infinitely precise values of pi, log2(e), log10(2) and ln(2) lie just below their
 * round-to-nearest form, log2(10) just above (SDM Vol. 1, 8.3.8).
 */
const ROUNDED_UP = [false, false, true, true, true, true, false];
const ROUNDED_DOWN = [false, true, false, false, false, false, false];

export const fldConst =
  (k: number): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const [, hi, se] = CONSTANTS[k];
    let lo = CONSTANTS[k][0];
    const rc = f.roundingControl;
    if (ROUNDED_UP[k] && (rc === 1 || rc === 3)) lo = (lo - 1) | 0;
    if (ROUNDED_DOWN[k] && rc === 2) lo = (lo + 1) | 0;
    push(f, lo, hi, se);
  };

// ---- stores ----

/** Converts ST(0) for a store in `fmt` and writes it; false when an unmasked exception stops it. */
function storeValue(c: Cpu, f: FpuState, lin: number, fmt: Fmt): boolean {
  const v = stBits(f, 0);
  if (fmt === Fmt.F80) {
    write80(c, lin, f, f.phys(0));
    return true;
  }
  if (fmt >= Fmt.I16) return storeInteger(c, f, lin, fmt, v);
  if (isNaNBits(v) || isSignalling(v)) {
    if (isSignalling(v) && !f.raise(FSW_IE)) return false;
    if (fmt === Fmt.F32) c.wr(lin, 4, nanToSingle(v.hi, v.se));
    else {
      nanToDouble(v.lo, v.hi, v.se);
      c.wr(lin, 4, conv.lo);
      c.wr(lin + 4, 4, conv.hi);
    }
    return true;
  }
  const x = f.toNumber(0);
  const r = fmt === Fmt.F32 ? Math.fround(x) : x;
  if (!isFinite(r) && (v.se & EXP) !== EXP) {
    if (!f.raise(FSW_OE | FSW_PE)) return false; // an unmasked #O stores nothing to memory
  } else {
    numberToBits(r);
    // #P: the rounded value is stored whether or not the exception is masked.
    if (conv.lo !== v.lo || conv.hi !== v.hi || conv.se !== v.se) f.raise(FSW_PE);
  }
  if (fmt === Fmt.F32) {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, r, true);
    c.wr(lin, 4, dv.getInt32(0, true));
  } else {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setFloat64(0, r, true);
    c.wr(lin, 4, dv.getInt32(0, true));
    c.wr(lin + 4, 4, dv.getInt32(4, true));
  }
  return true;
}

/**
 * FIST/FISTP: rounds by FCW.RC; NaN, infinity or out of range is #IA, whose masked
 * response stores the integer indefinite (the most negative integer) (SDM Vol. 2, FIST).
 */
function storeInteger(c: Cpu, f: FpuState, lin: number, fmt: Fmt, v: Bits): boolean {
  let lo = 0;
  let hi = 0;
  let valid = (v.se & EXP) !== EXP && !isSignalling(v);
  let inexact = false;
  if (valid) {
    inexact = roundToInteger(v.lo, v.hi, v.se, f.roundingControl);
    const neg = (v.se & 0x8000) !== 0;
    const mLo = conv.lo >>> 0;
    const mHi = conv.hi >>> 0;
    const limitHi = fmt === Fmt.I64 ? 0x80000000 : 0;
    const limitLo = fmt === Fmt.I64 ? 0 : fmt === Fmt.I32 ? 0x80000000 : 0x8000;
    // |value| <= 2^(n-1) - 1, or = 2^(n-1) when negative.
    const cmp = mHi !== limitHi ? mHi - limitHi : mLo - limitLo;
    valid = conv.se === 0 && (cmp < 0 || (cmp === 0 && neg));
    lo = mLo;
    hi = mHi;
    if (neg) {
      lo = ~lo + 1;
      hi = ~hi + (lo === 0 ? 1 : 0);
    }
  }
  if (!valid) {
    if (!f.raise(FSW_IE)) return false;
    lo = fmt === Fmt.I64 ? 0 : fmt === Fmt.I32 ? 0x80000000 : 0x8000;
    hi = 0x80000000;
  } else if (inexact) f.raise(FSW_PE); // #P: the result is stored, masked or not
  if (fmt === Fmt.I16) c.wr(lin, 2, lo & 0xffff);
  else c.wr(lin, 4, lo | 0);
  if (fmt === Fmt.I64) c.wr(lin + 4, 4, hi | 0);
  return true;
}

/** The masked response to storing an empty ST(0): the indefinite of the format. */
function storeIndefinite(c: Cpu, lin: number, fmt: Fmt): void {
  const words: Record<Fmt, number[]> = {
    [Fmt.F32]: [0xffc00000],
    [Fmt.F64]: [0, 0xfff80000],
    [Fmt.F80]: [INDEFINITE.lo, INDEFINITE.hi],
    [Fmt.I16]: [],
    [Fmt.I32]: [0x80000000],
    [Fmt.I64]: [0, 0x80000000],
  };
  if (fmt === Fmt.I16) c.wr(lin, 2, 0x8000);
  words[fmt].forEach((w, k) => c.wr(lin + 4 * k, 4, w | 0));
  if (fmt === Fmt.F80) c.wr(lin + 8, 2, INDEFINITE.se);
}

/** FST/FSTP m32fp/m64fp/m80fp, FIST/FISTP m16/m32/m64int. */
export const fstM =
  (fmt: Fmt, pop: boolean): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const lin = operand(c, i, SIZE[fmt], true);
    f.fsw &= ~FSW_C1;
    if (f.isEmpty(0)) {
      if (!underflow(f, 0)) return;
      storeIndefinite(c, lin, fmt);
    } else if (!storeValue(c, f, lin, fmt)) return;
    if (pop) f.pop();
  };

/** FST/FSTP ST(i). */
export const fstSt =
  (pop: boolean): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const st = i.rm & 7;
    f.fsw &= ~FSW_C1;
    if (f.isEmpty(0)) {
      if (!underflow(f, 0)) return;
      setIndefinite(f, st);
    } else f.copy(st, 0);
    if (pop) f.pop();
  };

/** FXCH ST(i): an empty operand is an underflow whose masked response uses the indefinite. */
export const fxch: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  const st = i.rm & 7;
  f.fsw &= ~FSW_C1;
  if (f.isEmpty(0) || f.isEmpty(st)) {
    if (!underflow(f, 0, st)) return;
    if (f.isEmpty(0)) setIndefinite(f, 0);
    if (f.isEmpty(st)) setIndefinite(f, st);
  }
  const a = stBits(f, 0);
  f.copy(0, st);
  f.setBits(st, a.lo, a.hi, a.se);
};

/** FCMOVcc ST(0), ST(i) (SDM Vol. 2, FCMOVcc): EFLAGS condition `cc` as in Jcc. */
export const fcmov =
  (cc: number): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const st = i.rm & 7;
    f.fsw &= ~FSW_C1;
    if (f.isEmpty(0) || f.isEmpty(st)) {
      if (!underflow(f, 0, st)) return;
      setIndefinite(f, 0);
      return;
    }
    if (c.flags.cond(cc)) f.copy(0, st);
  };

// ---- arithmetic ----

/** The arithmetic operations by ModRM.reg of D8/DA/DC/DE memory forms and D8 register forms. */
export const enum Op {
  Add,
  Mul,
  Com,
  Comp,
  Sub,
  Subr,
  Div,
  Divr,
}

/** The NaN result of an operation with a NaN operand (SDM Vol. 1, Table 4-7), quieted. */
export function nanResult(a: Bits, b: Bits): Bits {
  let r: Bits;
  if (isNaNBits(a) && isNaNBits(b)) {
    const ga = a.hi >>> 0 > b.hi >>> 0 || (a.hi === b.hi && a.lo >>> 0 >= b.lo >>> 0);
    r = ga ? a : b;
  } else r = isNaNBits(a) ? a : b;
  return { lo: r.lo, hi: r.hi | 0x40000000, se: r.se };
}

/**
 * dst op src as 80 bits, or undefined when an unmasked exception leaves the destination
 * alone (SDM Vol. 1, 4.9.1 and 8.5).
 */
function compute(f: FpuState, op: Op, dst: Bits, src: Bits): Bits | undefined {
  if (isSignalling(dst) || isSignalling(src)) {
    if (!f.raise(FSW_IE)) return undefined;
    const unsupported = (x: Bits): boolean => (x.se & EXP) !== 0 && (x.hi & J) === 0;
    return unsupported(dst) || unsupported(src) ? { ...INDEFINITE } : nanResult(dst, src);
  }
  if (isNaNBits(dst) || isNaNBits(src)) return nanResult(dst, src);
  if ((isDenormal(dst) || isDenormal(src)) && !f.raise(FSW_DE)) return undefined;
  const a = numberOf(dst);
  const b = numberOf(src);
  let r: number;
  switch (op) {
    case Op.Add:
      r = a + b;
      break;
    case Op.Mul:
      r = a * b;
      break;
    case Op.Sub:
      r = a - b;
      break;
    case Op.Subr:
      r = b - a;
      break;
    case Op.Div:
    case Op.Divr: {
      const [n, d] = op === Op.Div ? [a, b] : [b, a];
      if (d === 0 && n !== 0 && isFinite(n)) {
        // Division of a finite nonzero number by zero: #Z, masked result a signed infinity.
        if (!f.raise(FSW_ZE)) return undefined;
      }
      r = n / d;
      break;
    }
    default:
      r = NaN;
  }
  if (Number.isNaN(r)) {
    // inf - inf, 0 * inf, 0/0, inf/inf: #IA, masked result the QNaN indefinite.
    return f.raise(FSW_IE) ? { ...INDEFINITE } : undefined;
  }
  if (!isFinite(r) && isFinite(a) && isFinite(b) && !(op >= Op.Div && (a === 0 || b === 0))) {
    // Beyond float64's range (fpu.ts: the x87's own range is wider).
    if (!f.raise(FSW_OE | FSW_PE)) return undefined;
  }
  numberToBits(r);
  return { lo: conv.lo, hi: conv.hi, se: conv.se };
}

const numberOf = (b: Bits): number => bitsToNumber(b.lo, b.hi, b.se);

/** D8/DC m32fp/m64fp and DA/DE m32int/m16int forms: ST(0) := ST(0) op m. */
export const arithM =
  (op: Op, fmt: Fmt): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const src = readValue(c, i, fmt);
    if (op === Op.Com || op === Op.Comp) return compareAndSet(f, 0, src, op === Op.Comp, false);
    f.fsw &= ~FSW_C1;
    if (f.isEmpty(0)) {
      if (underflow(f, 0)) setIndefinite(f, 0);
      return;
    }
    const r = compute(f, op, stBits(f, 0), src);
    if (r) f.setBits(0, r.lo, r.hi, r.se);
  };

/**
 * Register forms: ST(dst) := ST(dst) op ST(src), where one of them is ST(0); `pop` for the
 * P forms (FADDP, ...).
 */
export const arithSt =
  (op: Op, toSti: boolean, pop: boolean): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const st = i.rm & 7;
    const [dst, src] = toSti ? [st, 0] : [0, st];
    f.fsw &= ~FSW_C1;
    if (f.isEmpty(0) || f.isEmpty(st)) {
      if (!underflow(f, 0, st)) return;
      setIndefinite(f, dst);
    } else {
      const r = compute(f, op, stBits(f, dst), stBits(f, src));
      if (!r) return;
      f.setBits(dst, r.lo, r.hi, r.se);
    }
    if (pop) f.pop();
  };

// ---- comparisons ----

/** -1, 0, 1 for a <, =, > b, or 2 when unordered; exact on the 80-bit patterns. */
function compareBits(a: Bits, b: Bits): number {
  if (isNaNBits(a) || isNaNBits(b) || isSignalling(a) || isSignalling(b)) return 2;
  const za = isZero(a);
  const zb = isZero(b);
  if (za && zb) return 0; // +0 = -0
  const na = (a.se & 0x8000) !== 0;
  const nb = (b.se & 0x8000) !== 0;
  if (za) return nb ? 1 : -1;
  if (zb) return na ? -1 : 1;
  if (na !== nb) return na ? -1 : 1;
  // Same sign: the larger magnitude (exponent, then significand) is further from zero.
  let m = (a.se & EXP || 1) - (b.se & EXP || 1);
  if (m === 0) m = (a.hi >>> 0) - (b.hi >>> 0);
  if (m === 0) m = (a.lo >>> 0) - (b.lo >>> 0);
  if (m === 0) return 0;
  return m > 0 !== na ? 1 : -1;
}

/** The relation after the exceptions: FCOM raises #IA for any NaN, FUCOM only for SNaNs. */
function relation(f: FpuState, a: Bits, b: Bits, unordered: boolean): number | undefined {
  const r = compareBits(a, b);
  let flags = isDenormal(a) || isDenormal(b) ? FSW_DE : 0;
  if (r === 2 && (!unordered || isSignalling(a) || isSignalling(b))) flags |= FSW_IE;
  if (flags && !f.raise(flags)) return undefined;
  return r;
}

const CC_OF = [FSW_C0, FSW_C3, 0]; // less, equal, greater; unordered sets all three

/** FCOM/FCOMP/FUCOM/FUCOMP/FICOM/FTST: C3, C2, C0 (SDM Vol. 2, FCOM). */
function compareAndSet(f: FpuState, a: number, src: Bits | number, pop: boolean, uno: boolean) {
  f.fsw &= ~FSW_CC;
  const st = typeof src === "number" ? src : -1;
  if (f.isEmpty(a) || (st >= 0 && f.isEmpty(st))) {
    if (!underflow(f, a, ...(st >= 0 ? [st] : []))) return;
    f.fsw |= FSW_C3 | FSW_C2 | FSW_C0;
  } else {
    const r = relation(f, stBits(f, a), typeof src === "number" ? stBits(f, src) : src, uno);
    if (r === undefined) return;
    f.fsw |= r === 2 ? FSW_C3 | FSW_C2 | FSW_C0 : CC_OF[r + 1];
  }
  if (pop) f.pop();
}

/** FCOM ST(i) (D8 /2), FCOMP (D8 /3), FUCOM (DD /4), FUCOMP (DD /5). */
export const fcomSt =
  (pops: number, unordered: boolean): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    compareAndSet(f, 0, i.rm & 7, pops > 0, unordered);
  };

/** FCOMPP (DE D9) and FUCOMPP (DA E9): compare with ST(1) and pop twice. */
export const fcompp =
  (unordered: boolean): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const top = f.top;
    compareAndSet(f, 0, 1, true, unordered);
    if (f.top !== top) f.pop(); // the first pop happened: no unmasked exception stopped it
  };

/** FTST: compares ST(0) with +0.0. */
export const ftst: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  compareAndSet(f, 0, { lo: 0, hi: 0, se: 0 }, false, false);
};

/** FCOMI/FCOMIP/FUCOMI/FUCOMIP: ZF, PF, CF; OF, SF, AF cleared (SDM Vol. 2, FCOMI). */
export const fcomi =
  (pop: boolean, unordered: boolean): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    const st = i.rm & 7;
    f.fsw &= ~FSW_C1;
    let bits: number;
    if (f.isEmpty(0) || f.isEmpty(st)) {
      if (!underflow(f, 0, st)) return;
      bits = ZF | PF | CF;
    } else {
      const r = relation(f, stBits(f, 0), stBits(f, st), unordered);
      if (r === undefined) return;
      bits = r === 2 ? ZF | PF | CF : r < 0 ? CF : r === 0 ? ZF : 0;
    }
    c.flags.load((c.flags.get() & ~ARITH) | bits);
    if (pop) f.pop();
  };

/** FXAM: the class of ST(0) in C3, C2, C0 and its sign in C1 (also when empty). */
export const fxam: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  f.fsw = (f.fsw & ~FSW_CC) | f.classify(0) | (f.sign(0) ? FSW_C1 : 0);
};

// ---- one-operand instructions on ST(0) ----

/** Runs `op` on a non-empty ST(0); an empty one is an underflow (masked: the indefinite). */
function unary(c: Cpu, i: Instr, op: (f: FpuState, v: Bits) => Bits | undefined): void {
  const f = begin(c, i, Kind.Numeric);
  f.fsw &= ~FSW_C1;
  if (f.isEmpty(0)) {
    if (underflow(f, 0)) setIndefinite(f, 0);
    return;
  }
  const r = op(f, stBits(f, 0));
  if (r) f.setBits(0, r.lo, r.hi, r.se);
}

export const fchs: Handler = (c, i) => unary(c, i, (_f, v) => ({ ...v, se: v.se ^ 0x8000 }));
export const fabs: Handler = (c, i) => unary(c, i, (_f, v) => ({ ...v, se: v.se & EXP }));

/** FSQRT: #IA for a negative nonzero operand; -0 stays -0. */
export const fsqrt: Handler = (c, i) =>
  unary(c, i, (f, v) => {
    if (isSignalling(v)) return f.raise(FSW_IE) ? nanResult(v, v) : undefined;
    if (isNaNBits(v) || isZero(v)) return isNaNBits(v) ? nanResult(v, v) : v;
    if (v.se & 0x8000) return f.raise(FSW_IE) ? { ...INDEFINITE } : undefined;
    if (isDenormal(v) && !f.raise(FSW_DE)) return undefined;
    const x = numberOf(v);
    const r = Math.sqrt(x);
    if (r * r !== x) f.raise(FSW_PE); // stored whether #P is masked or not
    numberToBits(r);
    return { lo: conv.lo, hi: conv.hi, se: conv.se };
  });

/** FRNDINT: rounds ST(0) to an integer by FCW.RC, exactly on the 80 bits. */
export const frndint: Handler = (c, i) =>
  unary(c, i, (f, v) => {
    if (isSignalling(v)) return f.raise(FSW_IE) ? nanResult(v, v) : undefined;
    const e = v.se & EXP;
    if (e === EXP || e >= 0x3fff + 63) return v; // NaN, infinity, or no fraction bits
    if (isDenormal(v) && !f.raise(FSW_DE)) return undefined;
    const inexact = roundToInteger(v.lo, v.hi, v.se, f.roundingControl);
    const mLo = conv.lo;
    const mHi = conv.hi;
    if (inexact) f.raise(FSW_PE);
    integerToBits(mLo, mHi, (v.se & 0x8000) !== 0);
    return { lo: conv.lo, hi: conv.hi, se: conv.se };
  });
