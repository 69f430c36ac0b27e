/**
 * Integer ALU routines, one per operation, parameterized by operand width in bits (8, 16
 * or 32). Operands arrive already truncated to the width; results come back truncated
 * (8/16-bit ones non-negative, 32-bit ones as int32). Every routine records its status
 * flags through the one lazy scheme in flags.ts (SDM Vol. 2, each instruction's "Flags
 * Affected").
 */
import { CF, OF, type Flags } from "./flags.js";

/** MASK[bits]: all ones of the operand width. */
export const MASK: Record<number, number> = { 8: 0xff, 16: 0xffff, 32: -1 };

export function add(f: Flags, a: number, b: number, bits: number): number {
  const res = (a + b) & MASK[bits];
  f.set(res, (a & b) | ((a | b) & ~res), bits);
  return res;
}

export function adc(f: Flags, a: number, b: number, bits: number): number {
  const res = (a + b + (f.cf() ? 1 : 0)) & MASK[bits];
  f.set(res, (a & b) | ((a | b) & ~res), bits);
  return res;
}

export function sub(f: Flags, a: number, b: number, bits: number): number {
  const res = (a - b) & MASK[bits];
  f.set(res, (~a & b) | ((~a ^ b) & res), bits);
  return res;
}

export function sbb(f: Flags, a: number, b: number, bits: number): number {
  const res = (a - b - (f.cf() ? 1 : 0)) & MASK[bits];
  f.set(res, (~a & b) | ((~a ^ b) & res), bits);
  return res;
}

export function and(f: Flags, a: number, b: number, bits: number): number {
  const res = a & b;
  f.set(res, 0, bits);
  return res;
}

export function or(f: Flags, a: number, b: number, bits: number): number {
  const res = a | b;
  f.set(res, 0, bits);
  return res;
}

export function xor(f: Flags, a: number, b: number, bits: number): number {
  const res = a ^ b;
  f.set(res, 0, bits);
  return res;
}

/** The eight ALU operations of opcodes 00-3F and group 1, in /r order (SDM Table A-6). */
export const ALU_OPS = [add, or, adc, sbb, and, sub, xor, sub] as const;
/** Index of CMP in ALU_OPS: like SUB but the result is not written back. */
export const ALU_CMP = 7;

/** INC/DEC: like ADD/SUB of 1, but CF is preserved (SDM Vol. 2, INC). */
function incdec(f: Flags, a: number, bits: number, dec: boolean): number {
  const oldCf = f.cf() ? 1 : 0;
  const res = dec ? sub(f, a, 1, bits) : add(f, a, 1, bits);
  const of = f.of() ? 1 : 0;
  f.setCO(res, oldCf, of, bits);
  // setCO dropped the AF carry; put the real carry out of bit 3 back.
  f.cov |= (dec ? (~a & 1) | ((~a ^ 1) & res) : (a & 1) | ((a | 1) & ~res)) & 8;
  return res;
}
export const inc = (f: Flags, a: number, bits: number): number => incdec(f, a, bits, false);
export const dec = (f: Flags, a: number, bits: number): number => incdec(f, a, bits, true);

export function neg(f: Flags, a: number, bits: number): number {
  return sub(f, 0, a, bits);
}

/** Sign-extends the low `bits` of v to a 32-bit integer. */
export function sext(v: number, bits: number): number {
  return bits === 32 ? v | 0 : (v << (32 - bits)) >> (32 - bits);
}

// ---- shifts and rotates (group 2). `count` is already masked to 5 bits. ----

export function shl(f: Flags, a: number, count: number, bits: number): number {
  if (count === 0) return a;
  const res = count < 32 ? (a << count) & MASK[bits] : 0;
  const cf = count <= bits ? (a >>> (bits - count)) & 1 : 0;
  f.setCO(res, cf, ((res >>> (bits - 1)) & 1) ^ cf, bits);
  return res;
}

export function shr(f: Flags, a: number, count: number, bits: number): number {
  if (count === 0) return a;
  const u = a & MASK[bits];
  const res = count < 32 ? (u >>> count) & MASK[bits] : 0;
  const cf = count <= bits ? (u >>> (count - 1)) & 1 : 0;
  // OF is the original top bit for a 1-bit shift (SDM Vol. 2, SAL/SAR/SHL/SHR).
  f.setCO(res, cf, (u >>> (bits - 1)) & 1, bits);
  return res;
}

export function sar(f: Flags, a: number, count: number, bits: number): number {
  if (count === 0) return a;
  const s = sext(a, bits);
  const res = (s >> Math.min(count, 31)) & MASK[bits];
  const cf = (s >> Math.min(count - 1, 31)) & 1;
  f.setCO(res, cf, 0, bits);
  return res;
}

/** Rotates change only CF and OF (SDM Vol. 2, RCL/RCR/ROL/ROR). */
function setRotateFlags(f: Flags, cf: number, of: number): void {
  const w = f.get() & ~(CF | OF);
  f.load(w | (cf ? CF : 0) | (of ? OF : 0));
}

export function rol(f: Flags, a: number, count: number, bits: number): number {
  if (count === 0) return a;
  const n = count % bits;
  const u = a & MASK[bits];
  const res = n === 0 ? u : ((u << n) | (u >>> (bits - n))) & MASK[bits];
  const cf = res & 1;
  setRotateFlags(f, cf, ((res >>> (bits - 1)) & 1) ^ cf);
  return res;
}

export function ror(f: Flags, a: number, count: number, bits: number): number {
  if (count === 0) return a;
  const n = count % bits;
  const u = a & MASK[bits];
  const res = n === 0 ? u : ((u >>> n) | (u << (bits - n))) & MASK[bits];
  const top = (res >>> (bits - 1)) & 1;
  setRotateFlags(f, top, top ^ ((res >>> (bits - 2)) & 1));
  return res;
}

/** RCL rotates through CF: a (bits+1)-bit rotation. */
export function rcl(f: Flags, a: number, count: number, bits: number): number {
  const n = count % (bits + 1);
  if (count === 0) return a;
  let u = a & MASK[bits];
  let cf = f.cf() ? 1 : 0;
  for (let i = 0; i < n; i++) {
    const out = (u >>> (bits - 1)) & 1;
    u = ((u << 1) | cf) & MASK[bits];
    cf = out;
  }
  setRotateFlags(f, cf, ((u >>> (bits - 1)) & 1) ^ cf);
  return u;
}

export function rcr(f: Flags, a: number, count: number, bits: number): number {
  const n = count % (bits + 1);
  if (count === 0) return a;
  let u = a & MASK[bits];
  let cf = f.cf() ? 1 : 0;
  // OF is the top bit XOR CF before the rotation (defined for 1-bit rotates).
  const of = ((u >>> (bits - 1)) & 1) ^ cf;
  for (let i = 0; i < n; i++) {
    const out = u & 1;
    u = ((u >>> 1) | (cf << (bits - 1))) & MASK[bits];
    cf = out;
  }
  setRotateFlags(f, cf, of);
  return u;
}

/** The group 2 shift/rotate operations in /r order (SDM Table A-6); /6 is SAL = SHL. */
export const SHIFT_OPS = [rol, ror, rcl, rcr, shl, shr, shl, sar] as const;

/** SHLD/SHRD (SDM Vol. 2): shift `a` filling from `b`; count masked to 5 bits already. */
export function shld(f: Flags, a: number, b: number, count: number, bits: number): number {
  if (count === 0) return a;
  if (count > bits) return a; // undefined result: leave the destination unchanged
  const ua = a & MASK[bits];
  const ub = b & MASK[bits];
  const res = count === bits ? ub : ((ua << count) | (ub >>> (bits - count))) & MASK[bits];
  const cf = (ua >>> (bits - count)) & 1;
  f.setCO(res, cf, ((res ^ ua) >>> (bits - 1)) & 1, bits);
  return res;
}

export function shrd(f: Flags, a: number, b: number, count: number, bits: number): number {
  if (count === 0) return a;
  if (count > bits) return a;
  const ua = a & MASK[bits];
  const ub = b & MASK[bits];
  const res = count === bits ? ub : ((ua >>> count) | (ub << (bits - count))) & MASK[bits];
  const cf = (ua >>> (count - 1)) & 1;
  f.setCO(res, cf, ((res ^ ua) >>> (bits - 1)) & 1, bits);
  return res;
}

// ---- multiply and divide ----

/** Unsigned 32x32 -> 64 multiply: [low, high] as uint32 numbers. */
export function mulu32(a: number, b: number): [number, number] {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const mid = ah * bl + al * bh; // < 2^33, exact in a double
  const lo = (ll + (mid % 0x10000) * 0x10000) % 0x100000000;
  const carry = Math.floor((ll + (mid % 0x10000) * 0x10000) / 0x100000000);
  const hi = (ah * bh + Math.floor(mid / 0x10000) + carry) >>> 0;
  return [lo >>> 0, hi];
}

/** Signed 32x32 -> 64 multiply: [low, high] as uint32 numbers (two's complement). */
export function muls32(a: number, b: number): [number, number] {
  let [lo, hi] = mulu32(a >>> 0, b >>> 0);
  // Correct the unsigned product for negative operands: subtract b<<32 and/or a<<32.
  if (a < 0) hi = (hi - (b >>> 0)) >>> 0;
  if (b < 0) hi = (hi - (a >>> 0)) >>> 0;
  lo >>>= 0;
  return [lo, hi];
}

/**
 * Unsigned division of the 64-bit hi:lo by d (uint32 numbers, d > 0, hi < d so the
 * quotient fits 32 bits). Done in 16-bit steps so every intermediate is exact in a double.
 */
export function divu64by32(hi: number, lo: number, d: number): [number, number] {
  if (hi === 0) return [Math.floor(lo / d), lo % d];
  let t = hi * 0x10000 + (lo >>> 16);
  const q1 = Math.floor(t / d);
  t = (t % d) * 0x10000 + (lo & 0xffff);
  const q0 = Math.floor(t / d);
  return [(q1 * 0x10000 + q0) >>> 0, t % d];
}
