/**
 * x87 instructions that work on exponents and exact remainders (SDM Vol. 2, FXTRACT,
 * FSCALE, FPREM, FPREM1). All four are computed on the 80-bit patterns, so their results
 * are exact (FSCALE rounds only when the result is denormal).
 */
import type { Handler } from "../opcodes.js";
import {
  conv,
  FSW_C0,
  FSW_C1,
  FSW_C2,
  FSW_C3,
  FSW_CC,
  FSW_DE,
  FSW_IE,
  FSW_OE,
  FSW_PE,
  FSW_UE,
  FSW_ZE,
  INDEFINITE,
  numberToBits,
  Rc,
  roundToInteger,
  type FpuState,
} from "../fpu.js";
import {
  isDenormal,
  isNaNBits,
  isSignalling,
  isZero,
  nanResult,
  stBits,
  type Bits,
} from "./x87.js";
import { begin, Kind, setIndefinite, stackFault, underflow } from "./x87-common.js";

const EXP = 0x7fff;
const BIAS = 16383;
const J = 0x80000000;

/** A finite nonzero value with its significand shifted until the integer bit is set. */
interface Norm {
  neg: boolean;
  /** Unbiased exponent of the integer bit. */
  e: number;
  /** Significand halves as unsigned numbers. */
  hi: number;
  lo: number;
}

function normalise(b: Bits): Norm {
  let hi = b.hi >>> 0;
  let lo = b.lo >>> 0;
  let e = (b.se & EXP || 1) - BIAS; // a denormal's exponent field 0 means 1 - BIAS
  while (hi < J) {
    hi = ((hi << 1) | (lo >>> 31)) >>> 0;
    lo = (lo << 1) >>> 0;
    e--;
  }
  return { neg: (b.se & 0x8000) !== 0, e, hi, lo };
}

const isInfinity = (b: Bits): boolean => (b.se & EXP) === EXP && !isNaNBits(b);
const signed = (neg: boolean, lo: number, hi: number, e: number): Bits => ({
  lo: lo | 0,
  hi: hi | 0,
  se: (neg ? 0x8000 : 0) | e,
});
const unsupported = (b: Bits): boolean => (b.se & EXP) !== 0 && (b.hi & J) === 0;

/**
 * Packs sign, exponent and a significand whose integer bit is set; below the normal range
 * the significand is shifted right and rounded to nearest (a denormal, with UE and PE when
 * inexact). Overflow is the caller's business. Undefined when an unmasked UE stops it.
 */
function pack(f: FpuState, n: Norm, e: number): Bits | undefined {
  const biased = e + BIAS;
  if (biased >= 1) return signed(n.neg, n.lo, n.hi, biased);
  const shift = 1 - biased;
  // roundToInteger shifts the significand right by 63 - (exponent - BIAS).
  const inexact = roundToInteger(n.lo, n.hi, Math.max(0, BIAS + 63 - shift), Rc.Nearest);
  if (inexact && !f.raise(FSW_UE | FSW_PE)) return undefined;
  // Rounding up may reach the smallest normal number.
  return signed(n.neg, conv.lo, conv.hi, conv.hi < 0 ? 1 : 0);
}

/** FXTRACT (D9 F4): ST(0) becomes the significand, and the exponent is pushed beneath it. */
export const fxtract: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  f.fsw &= ~FSW_C1;
  if (f.isEmpty(0) || !f.isEmpty(7)) {
    const masked = f.isEmpty(0) ? underflow(f, 0) : stackFault(f, true);
    if (!masked) return;
    setIndefinite(f, 0);
    f.decTop();
    setIndefinite(f, 0);
    return;
  }
  const v = stBits(f, 0);
  let exp: Bits;
  let sig: Bits;
  if (isSignalling(v)) {
    if (!f.raise(FSW_IE)) return;
    exp = sig = unsupported(v) ? { ...INDEFINITE } : nanResult(v, v);
  } else if (isNaNBits(v)) exp = sig = nanResult(v, v);
  else if (isZero(v)) {
    // #Z: the exponent of zero is -infinity (SDM Vol. 2, FXTRACT).
    if (!f.raise(FSW_ZE)) return;
    exp = signed(true, 0, J, EXP);
    sig = v;
  } else if (isInfinity(v)) {
    exp = signed(false, 0, J, EXP);
    sig = v;
  } else {
    if (isDenormal(v) && !f.raise(FSW_DE)) return;
    const n = normalise(v);
    numberToBits(n.e);
    exp = { lo: conv.lo, hi: conv.hi, se: conv.se };
    sig = signed(n.neg, n.lo, n.hi, BIAS);
  }
  f.setBits(0, exp.lo, exp.hi, exp.se);
  f.decTop();
  f.setBits(0, sig.lo, sig.hi, sig.se);
};

/** ST(0) * 2^trunc(ST(1)) with the special cases of SDM Vol. 2, FSCALE, Table 3-46. */
function scale(f: FpuState, a: Bits, b: Bits): Bits | undefined {
  if (isSignalling(a) || isSignalling(b)) {
    if (!f.raise(FSW_IE)) return undefined;
    return unsupported(a) || unsupported(b) ? { ...INDEFINITE } : nanResult(a, b);
  }
  if (isNaNBits(a) || isNaNBits(b)) return nanResult(a, b);
  const aNeg = (a.se & 0x8000) !== 0;
  const bNeg = (b.se & 0x8000) !== 0;
  if (isInfinity(b)) {
    // 0 * 2^+inf and inf * 2^-inf are invalid; otherwise the limit.
    if ((isZero(a) && !bNeg) || (isInfinity(a) && bNeg)) {
      return f.raise(FSW_IE) ? { ...INDEFINITE } : undefined;
    }
    if (isZero(a) || isInfinity(a)) return a;
    return bNeg ? signed(aNeg, 0, 0, 0) : signed(aNeg, 0, J, EXP);
  }
  if (isZero(a) || isInfinity(a)) return a;
  if ((isDenormal(a) || isDenormal(b)) && !f.raise(FSW_DE)) return undefined;
  // The scale, truncated; beyond 2^17 every result over- or underflows anyway.
  let n = 0;
  if (!isZero(b)) {
    if ((b.se & EXP) - BIAS >= 17) n = 1 << 17;
    else {
      roundToInteger(b.lo, b.hi, b.se, Rc.Zero);
      n = conv.lo >>> 0;
    }
  }
  const m = normalise(a);
  const e = m.e + (bNeg ? -n : n);
  if (e + BIAS > 0x7ffe) {
    return f.raise(FSW_OE | FSW_PE) ? signed(aNeg, 0, J, EXP) : undefined;
  }
  return pack(f, m, e);
}

/** FSCALE (D9 FD). */
export const fscale: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  f.fsw &= ~FSW_C1;
  if (f.isEmpty(0) || f.isEmpty(1)) {
    if (underflow(f, 0, 1)) setIndefinite(f, 0);
    return;
  }
  const r = scale(f, stBits(f, 0), stBits(f, 1));
  if (r) f.setBits(0, r.lo, r.hi, r.se);
};

/** A 65-bit unsigned remainder: bit 64, then the halves. */
interface Wide {
  top: number;
  hi: number;
  lo: number;
}

const geq = (r: Wide, hi: number, lo: number): boolean =>
  r.top !== 0 || r.hi > hi || (r.hi === hi && r.lo >= lo);

function subtract(r: Wide, hi: number, lo: number): void {
  let l = r.lo - lo;
  let h = r.hi - hi;
  if (l < 0) {
    l += 0x100000000;
    h--;
  }
  if (h < 0) h += 0x100000000; // the borrow takes bit 64 (r < 2 * divisor)
  r.top = 0;
  r.hi = h;
  r.lo = l;
}

function shiftLeft(r: Wide): void {
  r.top = r.hi >>> 31;
  r.hi = ((r.hi << 1) | (r.lo >>> 31)) >>> 0;
  r.lo = (r.lo << 1) >>> 0;
}

/**
 * FPREM (D9 F8) and FPREM1 (D9 F5): the remainder of ST(0) / ST(1) with the quotient
 * truncated (FPREM) or rounded to nearest even (FPREM1), by exact long division on the
 * significands. With an exponent difference of 64 or more only a partial remainder is
 * computed (the exponent drops by 63) and C2 is set; otherwise C0, C3, C1 are the quotient's
 * bits 2, 0, 1 (SDM Vol. 2, FPREM).
 */
export const fprem =
  (ieee: boolean): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    f.fsw &= ~FSW_CC;
    if (f.isEmpty(0) || f.isEmpty(1)) {
      if (underflow(f, 0, 1)) setIndefinite(f, 0);
      return;
    }
    const a = stBits(f, 0);
    const b = stBits(f, 1);
    if (isSignalling(a) || isSignalling(b)) {
      if (!f.raise(FSW_IE)) return;
      const r = unsupported(a) || unsupported(b) ? INDEFINITE : nanResult(a, b);
      return f.setBits(0, r.lo, r.hi, r.se);
    }
    if (isNaNBits(a) || isNaNBits(b)) {
      const r = nanResult(a, b);
      return f.setBits(0, r.lo, r.hi, r.se);
    }
    if (isInfinity(a) || isZero(b)) {
      if (f.raise(FSW_IE)) setIndefinite(f, 0);
      return;
    }
    if (isZero(a) || isInfinity(b)) return; // ST(0) is its own remainder
    if ((isDenormal(a) || isDenormal(b)) && !f.raise(FSW_DE)) return;
    const x = normalise(a);
    const y = normalise(b);
    const d = x.e - y.e;
    const partial = d >= 64;
    const steps = partial ? 63 : d; // quotient bits - 1
    let unitExp = partial ? y.e + d - 63 : y.e; // exponent of the remainder's integer bit
    const r: Wide = { top: 0, hi: x.hi, lo: x.lo };
    let q = 0;
    let neg = x.neg;
    if (steps < 0) {
      // |ST(0)| < |ST(1)|: quotient 0, except that FPREM1 rounds 0.5 < q < 1 up to 1.
      if (ieee && d === -1 && (x.hi > y.hi || (x.hi === y.hi && x.lo > y.lo))) {
        // |R| = |Y| - |X| = (2 * Y - X) in units of 2^(y.e - 1 - 63).
        const twoY: Wide = { top: y.hi >>> 31, hi: 0, lo: 0 };
        twoY.hi = ((y.hi << 1) | (y.lo >>> 31)) >>> 0;
        twoY.lo = (y.lo << 1) >>> 0;
        subtract(twoY, x.hi, x.lo);
        Object.assign(r, twoY);
        unitExp = y.e - 1;
        q = 1;
        neg = !neg;
      } else return; // the remainder is ST(0) itself
    } else {
      for (let k = steps; k >= 0; k--) {
        const bit = geq(r, y.hi, y.lo);
        if (bit) subtract(r, y.hi, y.lo);
        q = ((q << 1) | (bit ? 1 : 0)) & 7;
        if (k > 0) shiftLeft(r);
      }
      if (ieee && !partial) {
        // Round the quotient to nearest even: compare 2r with the divisor.
        const twice: Wide = { ...r };
        shiftLeft(twice);
        const above = geq(twice, y.hi, y.lo);
        const tie = above && twice.top === 0 && twice.hi === y.hi && twice.lo === y.lo;
        if (above && (!tie || q & 1)) {
          const back: Wide = { top: 0, hi: y.hi, lo: y.lo };
          subtract(back, r.hi, r.lo);
          Object.assign(r, back);
          q = (q + 1) & 7;
          neg = !neg;
        }
      }
    }
    let result: Bits | undefined;
    if ((r.top | r.hi | r.lo) === 0)
      result = signed(x.neg, 0, 0, 0); // zero keeps ST(0)'s sign
    else {
      // Normalise the remainder (it has at most 65 bits, here at most 64).
      const n: Norm = { neg, e: unitExp, hi: r.hi, lo: r.lo };
      while (n.hi < J) {
        n.hi = ((n.hi << 1) | (n.lo >>> 31)) >>> 0;
        n.lo = (n.lo << 1) >>> 0;
        n.e--;
      }
      result = pack(f, n, n.e);
      if (!result) return;
    }
    f.setBits(0, result.lo, result.hi, result.se);
    if (partial) f.fsw |= FSW_C2;
    else f.fsw |= (q & 4 ? FSW_C0 : 0) | (q & 1 ? FSW_C3 : 0) | (q & 2 ? FSW_C1 : 0);
  };
