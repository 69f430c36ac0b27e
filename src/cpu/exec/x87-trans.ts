/**
 * The x87 transcendental instructions (SDM Vol. 2, FSIN, FCOS, FSINCOS, FPTAN, FPATAN,
 * F2XM1, FYL2X, FYL2XP1; Vol. 1, 8.3.10). They go through float64 and JavaScript's Math,
 * so results have 53-bit precision (the x87 itself is accurate to about one unit in the
 * last place of its 64-bit significand; fpu.ts says more). Operand checks are the x87's:
 * stack faults, SNaN and NaN operands, #IA for invalid arguments, #Z for log(0), and the
 * 2^63 range limit of the trigonometric instructions (C2 set, ST(0) unchanged).
 */
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import {
  conv,
  FSW_C1,
  FSW_C2,
  FSW_DE,
  FSW_IE,
  FSW_OE,
  FSW_PE,
  FSW_ZE,
  INDEFINITE,
  bitsToNumber,
  numberToBits,
  type FpuState,
} from "../fpu.js";
import type { Handler } from "../opcodes.js";
import { isDenormal, isNaNBits, isSignalling, nanResult, stBits, type Bits } from "./x87.js";
import { begin, Kind, setIndefinite, stackFault, underflow } from "./x87-common.js";

const EXP = 0x7fff;
const BIAS = 16383;
const J = 0x80000000;

const unsupported = (b: Bits): boolean => (b.se & EXP) !== 0 && (b.hi & J) === 0;

/**
 * What SNaN, NaN and denormal operands decide before any arithmetic: a result to store
 * (a NaN), `undefined` when an unmasked exception stops the instruction, or null to go on.
 */
function screen(f: FpuState, a: Bits, b: Bits): Bits | undefined | null {
  if (isSignalling(a) || isSignalling(b)) {
    if (!f.raise(FSW_IE)) return undefined;
    return unsupported(a) || unsupported(b) ? { ...INDEFINITE } : nanResult(a, b);
  }
  if (isNaNBits(a) || isNaNBits(b)) return nanResult(a, b);
  if ((isDenormal(a) || isDenormal(b)) && !f.raise(FSW_DE)) return undefined;
  return null;
}

/**
 * A float64 result as 80 bits: NaN from non-NaN operands is #IA (the indefinite); an
 * infinity from finite operands is #Z when `zeroDivide` (a logarithm of zero), else #O.
 */
function result(f: FpuState, r: number, finite: boolean, zeroDivide = false): Bits | undefined {
  if (Number.isNaN(r)) return f.raise(FSW_IE) ? { ...INDEFINITE } : undefined;
  if (!Number.isFinite(r) && finite && !f.raise(zeroDivide ? FSW_ZE : FSW_OE | FSW_PE)) {
    return undefined;
  }
  numberToBits(r);
  return { lo: conv.lo, hi: conv.hi, se: conv.se };
}

const num = (b: Bits): number => bitsToNumber(b.lo, b.hi, b.se);

/** The stack checks of an instruction that replaces ST(0) and pushes: masked, two indefinites. */
function pushChecks(f: FpuState): boolean {
  if (!f.isEmpty(0) && f.isEmpty(7)) return true;
  const masked = f.isEmpty(0) ? underflow(f, 0) : stackFault(f, true);
  if (masked) {
    setIndefinite(f, 0);
    f.decTop();
    setIndefinite(f, 0);
  }
  return false;
}

/**
 * FSIN, FCOS, FPTAN, FSINCOS: `fn` gives ST(0)'s new value and, for FPTAN and FSINCOS, the
 * value pushed above it. |ST(0)| >= 2^63 is out of range: C2 set, nothing else changes.
 */
function trig(c: Cpu, i: Instr, fn: (x: number) => [number, number?], pushes: boolean): void {
  const f = begin(c, i, Kind.Numeric);
  f.fsw &= ~(FSW_C1 | FSW_C2);
  if (pushes) {
    if (!pushChecks(f)) return;
  } else if (f.isEmpty(0)) {
    if (underflow(f, 0)) setIndefinite(f, 0);
    return;
  }
  const v = stBits(f, 0);
  let r0: Bits | undefined | null = screen(f, v, v);
  let r1: Bits | undefined = r0 ?? undefined;
  if (r0 === undefined) return;
  if (r0 === null) {
    const e = v.se & EXP;
    if (e === EXP) {
      // sin, cos, tan of infinity: #IA.
      if (!f.raise(FSW_IE)) return;
      r0 = r1 = { ...INDEFINITE };
    } else if (e >= BIAS + 63) {
      f.fsw |= FSW_C2;
      return;
    } else {
      const [a, b] = fn(num(v));
      r0 = result(f, a, true);
      if (!r0) return;
      if (b !== undefined) {
        r1 = result(f, b, true);
        if (!r1) return;
      }
      if (a !== 0) f.raise(FSW_PE); // an unmasked #P still stores the result
    }
  }
  f.setBits(0, r0.lo, r0.hi, r0.se);
  if (pushes && r1) {
    f.decTop();
    f.setBits(0, r1.lo, r1.hi, r1.se);
  }
}

export const fsin: Handler = (c, i) => trig(c, i, (x) => [Math.sin(x)], false);
export const fcos: Handler = (c, i) => trig(c, i, (x) => [Math.cos(x)], false);
/** FPTAN: ST(0) := tan(ST(0)), then pushes 1.0 (for compatibility with the 8087). */
export const fptan: Handler = (c, i) => trig(c, i, (x) => [Math.tan(x), 1], true);
/** FSINCOS: ST(0) := sin(ST(0)), then pushes cos, so ST(0) = cos and ST(1) = sin. */
export const fsincos: Handler = (c, i) => trig(c, i, (x) => [Math.sin(x), Math.cos(x)], true);

/** F2XM1: ST(0) := 2^ST(0) - 1 (defined for -1 <= ST(0) <= +1). */
export const f2xm1: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  f.fsw &= ~FSW_C1;
  if (f.isEmpty(0)) {
    if (underflow(f, 0)) setIndefinite(f, 0);
    return;
  }
  const v = stBits(f, 0);
  let r: Bits | undefined | null = screen(f, v, v);
  if (r === null) r = result(f, Math.expm1(num(v) * Math.LN2), false);
  if (r) f.setBits(0, r.lo, r.hi, r.se);
};

/**
 * FYL2X, FYL2XP1, FPATAN: ST(1) := fn(ST(0), ST(1)), then pop. `fn` returns the value and
 * whether an infinity from finite operands is a division by zero (log of 0).
 */
function binaryPop(c: Cpu, i: Instr, fn: (x: number, y: number) => [number, boolean]): void {
  const f = begin(c, i, Kind.Numeric);
  f.fsw &= ~FSW_C1;
  if (f.isEmpty(0) || f.isEmpty(1)) {
    if (!underflow(f, 0, 1)) return;
    setIndefinite(f, 1);
    f.pop();
    return;
  }
  const x = stBits(f, 0);
  const y = stBits(f, 1);
  let r: Bits | undefined | null = screen(f, x, y);
  if (r === null) {
    const a = num(x);
    const b = num(y);
    const [v, zeroDivide] = fn(a, b);
    r = result(f, v, Number.isFinite(a) && Number.isFinite(b), zeroDivide);
  }
  if (!r) return;
  f.setBits(1, r.lo, r.hi, r.se);
  f.pop();
}

/**
 * y * log2(x): x < 0 and 0 * infinity are #IA (NaN from Math); log2(0) is #Z unless y is 0.
 * Math.log2 of a negative zero is -infinity, as the x87's log of -0.
 */
function ylog2(x: number, y: number): [number, boolean] {
  if (x < 0) return [NaN, false];
  return [y * Math.log2(x), x === 0];
}

export const fyl2x: Handler = (c, i) => binaryPop(c, i, ylog2);
/** FYL2XP1: y * log2(x + 1), accurate for small x (defined for |x| < 1 - sqrt(2)/2). */
export const fyl2xp1: Handler = (c, i) =>
  binaryPop(c, i, (x, y) => (x < -1 ? [NaN, false] : [y * (Math.log1p(x) / Math.LN2), x === -1]));
/** FPATAN: arctan(ST(1) / ST(0)) in the quadrant of (ST(0), ST(1)), as atan2 does. */
export const fpatan: Handler = (c, i) => binaryPop(c, i, (x, y) => [Math.atan2(y, x), false]);
