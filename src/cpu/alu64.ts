/**
 * 64-bit ALU routines on int32 halves (design.md, decision 3: no BigInt on the hot path;
 * division, which is rare, is the one exception). Each takes the operands as (lo, hi)
 * pairs, returns the low half of the result and leaves the high half in `out.hi`.
 *
 * The status flags go through the same lazy scheme as the narrower widths: a 64-bit
 * result is recorded as a 32-bit stand-in whose ZF, SF and PF are those of the 64-bit
 * value, with a carry-out vector whose bits 31, 30 and 3 are the carries out of bits 63,
 * 62 and 3 (flags.ts).
 */
import { CF, OF, type Flags } from "./flags.js";

/** Where the high half of a result goes (the Cpu's second return register). */
export interface Out {
  hi: number;
}

/** Records the flags of a 64-bit result with the carry vectors of its two halves. */
export function setFlags64(f: Flags, lo: number, hi: number, covLo: number, covHi: number): void {
  const stand = (hi & 0x80000000) | (lo & 0xff) | ((lo | hi) !== 0 ? 0x100 : 0);
  f.set(stand, (covHi & 0xc0000000) | (covLo & 8), 32);
}

/** Flags of a result whose CF and OF are given (shifts, multiplies). */
function setFlags64CO(f: Flags, lo: number, hi: number, cf: number, of: number): void {
  setFlags64(f, lo, hi, 0, (cf << 31) | ((cf ^ of) << 30));
}

function addc(
  f: Flags,
  out: Out,
  al: number,
  ah: number,
  bl: number,
  bh: number,
  cin: number,
): number {
  const l = (al >>> 0) + (bl >>> 0) + cin;
  const lo = l | 0;
  const hi = (ah + bh + (l > 0xffffffff ? 1 : 0)) | 0;
  setFlags64(f, lo, hi, (al & bl) | ((al | bl) & ~lo), (ah & bh) | ((ah | bh) & ~hi));
  out.hi = hi;
  return lo;
}

function subb(
  f: Flags,
  out: Out,
  al: number,
  ah: number,
  bl: number,
  bh: number,
  bin: number,
): number {
  const l = (al >>> 0) - (bl >>> 0) - bin;
  const lo = l | 0;
  const hi = (ah - bh - (l < 0 ? 1 : 0)) | 0;
  setFlags64(f, lo, hi, (~al & bl) | ((~al ^ bl) & lo), (~ah & bh) | ((~ah ^ bh) & hi));
  out.hi = hi;
  return lo;
}

export type Alu64 = (f: Flags, out: Out, al: number, ah: number, bl: number, bh: number) => number;

export const add64: Alu64 = (f, out, al, ah, bl, bh) => addc(f, out, al, ah, bl, bh, 0);
export const adc64: Alu64 = (f, out, al, ah, bl, bh) =>
  addc(f, out, al, ah, bl, bh, f.cf() ? 1 : 0);
export const sub64: Alu64 = (f, out, al, ah, bl, bh) => subb(f, out, al, ah, bl, bh, 0);
export const sbb64: Alu64 = (f, out, al, ah, bl, bh) =>
  subb(f, out, al, ah, bl, bh, f.cf() ? 1 : 0);

function logic(f: Flags, out: Out, lo: number, hi: number): number {
  setFlags64(f, lo, hi, 0, 0);
  out.hi = hi;
  return lo;
}
export const and64: Alu64 = (f, out, al, ah, bl, bh) => logic(f, out, al & bl, ah & bh);
export const or64: Alu64 = (f, out, al, ah, bl, bh) => logic(f, out, al | bl, ah | bh);
export const xor64: Alu64 = (f, out, al, ah, bl, bh) => logic(f, out, al ^ bl, ah ^ bh);

/** The eight ALU operations in /r order, as ALU_OPS in alu.ts (CMP is SUB, not written). */
export const ALU_OPS64: readonly Alu64[] = [add64, or64, adc64, sbb64, and64, sub64, xor64, sub64];

/** INC/DEC: CF is preserved (SDM Vol. 2, INC). */
export function incdec64(f: Flags, out: Out, al: number, ah: number, dec: boolean): number {
  const cf = f.cf();
  const lo = dec ? sub64(f, out, al, ah, 1, 0) : add64(f, out, al, ah, 1, 0);
  const keep = f.cov & ~(1 << 31) & ~(1 << 30);
  const of = f.of() ? 1 : 0;
  f.cov = keep | ((cf ? 1 : 0) << 31) | (((cf ? 1 : 0) ^ of) << 30);
  return lo;
}

export function neg64(f: Flags, out: Out, al: number, ah: number): number {
  return sub64(f, out, 0, 0, al, ah);
}

// ---- shifts and rotates: `n` is already masked to 6 bits ----

/** (hi:lo) << n for 0 <= n < 64, into out.hi; returns lo. */
function shiftLeft(out: Out, lo: number, hi: number, n: number): number {
  if (n === 0) {
    out.hi = hi;
    return lo;
  }
  if (n >= 32) {
    out.hi = lo << (n - 32);
    return 0;
  }
  out.hi = (hi << n) | (lo >>> (32 - n));
  return lo << n;
}

/** (hi:lo) >> n, logical or arithmetic, for 0 <= n < 64. */
function shiftRight(out: Out, lo: number, hi: number, n: number, arith: boolean): number {
  if (n === 0) {
    out.hi = hi;
    return lo;
  }
  if (n >= 32) {
    out.hi = arith ? hi >> 31 : 0;
    return arith ? hi >> (n - 32) : hi >>> (n - 32);
  }
  out.hi = arith ? hi >> n : hi >>> n;
  return (lo >>> n) | (hi << (32 - n));
}

/** Bit `b` (0-63) of hi:lo. */
function bit(lo: number, hi: number, b: number): number {
  return b >= 32 ? (hi >>> (b - 32)) & 1 : (lo >>> b) & 1;
}

export type Shift64 = (f: Flags, out: Out, lo: number, hi: number, n: number) => number;

export const shl64: Shift64 = (f, out, lo, hi, n) => {
  if (n === 0) return ((out.hi = hi), lo);
  const cf = bit(lo, hi, 64 - n);
  const r = shiftLeft(out, lo, hi, n);
  setFlags64CO(f, r, out.hi, cf, (out.hi >>> 31) ^ cf);
  return r;
};

export const shr64: Shift64 = (f, out, lo, hi, n) => {
  if (n === 0) return ((out.hi = hi), lo);
  const cf = bit(lo, hi, n - 1);
  const r = shiftRight(out, lo, hi, n, false);
  setFlags64CO(f, r, out.hi, cf, hi >>> 31);
  return r;
};

export const sar64: Shift64 = (f, out, lo, hi, n) => {
  if (n === 0) return ((out.hi = hi), lo);
  const cf = bit(lo, hi, n - 1);
  const r = shiftRight(out, lo, hi, n, true);
  setFlags64CO(f, r, out.hi, cf, 0);
  return r;
};

/** Rotates change only CF and OF (SDM Vol. 2, RCL/RCR/ROL/ROR). */
function rotateFlags(f: Flags, cf: number, of: number): void {
  const w = f.get() & ~(CF | OF);
  f.load(w | (cf ? CF : 0) | (of ? OF : 0));
}

function rotl(out: Out, lo: number, hi: number, n: number): number {
  const a = shiftLeft(out, lo, hi, n);
  const ahi = out.hi;
  const b = shiftRight(out, lo, hi, (64 - n) & 63, false);
  out.hi = n === 0 ? hi : ahi | out.hi;
  return n === 0 ? lo : a | b;
}

export const rol64: Shift64 = (f, out, lo, hi, n) => {
  if (n === 0) return ((out.hi = hi), lo);
  const r = rotl(out, lo, hi, n);
  const cf = r & 1;
  rotateFlags(f, cf, (out.hi >>> 31) ^ cf);
  return r;
};

export const ror64: Shift64 = (f, out, lo, hi, n) => {
  if (n === 0) return ((out.hi = hi), lo);
  const r = rotl(out, lo, hi, 64 - n);
  const top = out.hi >>> 31;
  rotateFlags(f, top, top ^ ((out.hi >>> 30) & 1));
  return r;
};

/** RCL/RCR rotate 65 bits through CF, one bit at a time (counts are at most 63). */
export const rcl64: Shift64 = (f, out, lo, hi, n) => {
  if (n === 0) return ((out.hi = hi), lo);
  let cf = f.cf() ? 1 : 0;
  for (let k = 0; k < n; k++) {
    const o = hi >>> 31;
    hi = (hi << 1) | (lo >>> 31);
    lo = (lo << 1) | cf;
    cf = o;
  }
  rotateFlags(f, cf, (hi >>> 31) ^ cf);
  out.hi = hi;
  return lo;
};

export const rcr64: Shift64 = (f, out, lo, hi, n) => {
  if (n === 0) return ((out.hi = hi), lo);
  let cf = f.cf() ? 1 : 0;
  const of = (hi >>> 31) ^ cf;
  for (let k = 0; k < n; k++) {
    const o = lo & 1;
    lo = (lo >>> 1) | (hi << 31);
    hi = (hi >>> 1) | (cf << 31);
    cf = o;
  }
  rotateFlags(f, cf, of);
  out.hi = hi;
  return lo;
};

/** Group 2 in /r order (SDM Table A-6); /6 is SAL = SHL. */
export const SHIFT_OPS64: readonly Shift64[] = [
  rol64,
  ror64,
  rcl64,
  rcr64,
  shl64,
  shr64,
  shl64,
  sar64,
];

/** SHLD/SHRD r/m64, r64, count (count masked to 6 bits). */
export function shiftDouble64(
  f: Flags,
  out: Out,
  al: number,
  ah: number,
  bl: number,
  bh: number,
  n: number,
  right: boolean,
): number {
  if (n === 0) return ((out.hi = ah), al);
  let lo: number;
  let hi: number;
  let cf: number;
  if (right) {
    cf = bit(al, ah, n - 1);
    const a = shiftRight(out, al, ah, n, false);
    const aHi = out.hi;
    const b = shiftLeft(out, bl, bh, 64 - n);
    lo = a | b;
    hi = aHi | out.hi;
  } else {
    cf = bit(al, ah, 64 - n);
    const a = shiftLeft(out, al, ah, n);
    const aHi = out.hi;
    const b = shiftRight(out, bl, bh, 64 - n, false);
    lo = a | b;
    hi = aHi | out.hi;
  }
  setFlags64CO(f, lo, hi, cf, ((hi ^ ah) >>> 31) & 1);
  out.hi = hi;
  return lo;
}

// ---- multiply and divide ----

/** The unsigned 128-bit product of two 64-bit values as four uint32 words, low first. */
export function mulu64(al: number, ah: number, bl: number, bh: number): number[] {
  const T = 0x100000000;
  const [p00l, p00h] = mul32(al >>> 0, bl >>> 0);
  const [p01l, p01h] = mul32(al >>> 0, bh >>> 0);
  const [p10l, p10h] = mul32(ah >>> 0, bl >>> 0);
  const [p11l, p11h] = mul32(ah >>> 0, bh >>> 0);
  // Column sums stay below 2^53, so every step is exact in a double.
  const t1 = p00h + p01l + p10l;
  const t2 = p01h + p10h + p11l + Math.floor(t1 / T);
  return [p00l, t1 % T, t2 % T, (p11h + Math.floor(t2 / T)) % T];
}

function mul32(a: number, b: number): [number, number] {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const mid = ah * bl + al * bh;
  const low = al * bl + (mid % 0x10000) * 0x10000;
  return [low % 0x100000000, ah * bh + Math.floor(mid / 0x10000) + Math.floor(low / 0x100000000)];
}

/** The signed 128-bit product, as four uint32 words in two's complement, low first. */
export function muls64(al: number, ah: number, bl: number, bh: number): number[] {
  const w = mulu64(al, ah, bl, bh);
  // Correct the unsigned product for negative operands: subtract b<<64 and/or a<<64.
  const sub = (x0: number, x1: number): void => {
    const l = w[2] - (x0 >>> 0);
    w[2] = (l + 0x100000000) % 0x100000000;
    w[3] = (w[3] - (x1 >>> 0) - (l < 0 ? 1 : 0) + 0x200000000) % 0x100000000;
  };
  if (ah < 0) sub(bl, bh);
  if (bh < 0) sub(al, ah);
  return w;
}

function big(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * Unsigned 128/64 division (DIV r/m64): [quotient lo, hi, remainder lo, hi], or undefined
 * when the quotient does not fit 64 bits (#DE). Rare enough for BigInt.
 */
export function divu128(n: number[], dl: number, dh: number): number[] | undefined {
  const num = (big(n[2], n[3]) << 64n) | big(n[0], n[1]);
  const d = big(dl, dh);
  const q = num / d;
  if (q >> 64n !== 0n) return undefined;
  const r = num % d;
  return [
    Number(q & 0xffffffffn) | 0,
    Number(q >> 32n) | 0,
    Number(r & 0xffffffffn) | 0,
    Number(r >> 32n) | 0,
  ];
}

/** Signed 128/64 division (IDIV r/m64), truncating toward zero; undefined on overflow. */
export function divs128(n: number[], dl: number, dh: number): number[] | undefined {
  let num = (big(n[2], n[3]) << 64n) | big(n[0], n[1]);
  if (num >> 127n) num -= 1n << 128n;
  let d = big(dl, dh);
  if (d >> 63n) d -= 1n << 64n;
  const q = num / d;
  if (q < -(1n << 63n) || q >= 1n << 63n) return undefined;
  const r = num % d;
  const u = (x: bigint): bigint => BigInt.asUintN(64, x);
  return [
    Number(u(q) & 0xffffffffn) | 0,
    Number(u(q) >> 32n) | 0,
    Number(u(r) & 0xffffffffn) | 0,
    Number(u(r) >> 32n) | 0,
  ];
}
