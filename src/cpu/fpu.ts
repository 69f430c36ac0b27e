/**
 * The x87 FPU and SSE register state of one logical processor (SDM Vol. 1, chapter 8 and
 * 10.2, and chapter 13 for XCR0), with the 80-bit register format.
 *
 * The eight data registers are kept as 80-bit bit patterns (a 64-bit significand as two
 * 32-bit halves, and sign and exponent in 16 bits), so that loads and stores of m80fp,
 * FXCH, FLD ST(i), FCHS/FABS and every save/restore instruction round-trip bit for bit.
 * Arithmetic converts through float64 (`toNumber`/`fromNumber`): results have 53-bit
 * significands and float64's exponent range, and always round to nearest (the precision
 * and rounding controls of FCW are honoured by FRNDINT and the integer stores only).
 * Comparisons, FXAM, FXTRACT and the integer conversions work on the 80-bit patterns.
 */

// ---- FCW, the control word (SDM Vol. 1, 8.1.5, Figure 8-6) ----
export const FCW_IM = 1 << 0; // invalid-operation mask
export const FCW_DM = 1 << 1; // denormal-operand mask
export const FCW_ZM = 1 << 2; // zero-divide mask
export const FCW_OM = 1 << 3; // overflow mask
export const FCW_UM = 1 << 4; // underflow mask
export const FCW_PM = 1 << 5; // precision mask
export const FCW_RC_SHIFT = 10; // rounding control, bits 11:10
/** FCW bits that exist: masks, PC (9:8), RC (11:10), X (12); bit 6 reads as 1 (reserved). */
export const FCW_WRITABLE = 0x1f3f;
export const FCW_FIXED1 = 1 << 6;
/** FNINIT's control word: all exceptions masked, 64-bit precision, round to nearest. */
export const FCW_INIT = 0x037f;

// ---- FSW, the status word (SDM Vol. 1, 8.1.3, Figure 8-4) ----
export const FSW_IE = 1 << 0; // invalid operation
export const FSW_DE = 1 << 1; // denormalized operand
export const FSW_ZE = 1 << 2; // zero divide
export const FSW_OE = 1 << 3; // overflow
export const FSW_UE = 1 << 4; // underflow
export const FSW_PE = 1 << 5; // precision
export const FSW_SF = 1 << 6; // stack fault (with IE; C1 tells overflow from underflow)
export const FSW_ES = 1 << 7; // exception summary: an unmasked exception is pending
export const FSW_C0 = 1 << 8;
export const FSW_C1 = 1 << 9;
export const FSW_C2 = 1 << 10;
export const FSW_TOP_SHIFT = 11; // TOP, bits 13:11
export const FSW_C3 = 1 << 14;
export const FSW_B = 1 << 15; // busy: mirrors ES for 8087 compatibility
/** The six exception flags (and their masks in FCW). */
export const FSW_EXCEPTIONS = 0x3f;
export const FSW_CC = FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3;

// ---- MXCSR (SDM Vol. 1, 10.2.3, Figure 10-3) ----
/** MXCSR after RESET and XRSTOR's SSE init: all SIMD exceptions masked, round to nearest. */
export const MXCSR_INIT = 0x1f80;
/**
 * MXCSR_MASK as FXSAVE reports it: bits 15:0 exist (DAZ included), so MXCSR holds any
 * value a guest may write there; bits 31:16 are reserved and make FXRSTOR/XRSTOR raise
 * #GP (SDM Vol. 1, 11.6.6).
 */
export const MXCSR_MASK = 0x0000ffff;

// ---- XCR0, the XSAVE feature mask (SDM Vol. 1, 13.3) ----
export const XCR0_X87 = 1 << 0; // state component 0: x87 state (must always be 1)
export const XCR0_SSE = 1 << 1; // state component 1: XMM registers and MXCSR
export const XCR0_AVX = 1 << 2; // state component 2: YMM upper halves (not supported)
/**
 * The state components XSAVE manages here: x87 and SSE. Both live in the legacy region of
 * the XSAVE area, so the area is 512 + 64 (header) bytes.
 */
export const XCR0_SUPPORTED = XCR0_X87 | XCR0_SSE;
export const XSAVE_AREA_SIZE = 576;

// ---- the 80-bit format (SDM Vol. 1, 4.2.2, Table 4-3) ----
const EXP_MAX = 0x7fff;
const BIAS = 16383;
/** The integer bit (J) of the 64-bit significand, in the high half. */
const J = 0x80000000;
/** The quiet bit of a NaN, in the high half. */
const QUIET = 0x40000000;

/** Tags as FNSTENV/FNSAVE store them (SDM Vol. 1, 8.1.7, Figure 8-7). */
export const enum Tag {
  Valid = 0,
  Zero = 1,
  Special = 2,
  Empty = 3,
}

/** Classes of a register value, in FXAM's C3/C2/C0 coding (SDM Vol. 2, FXAM). */
export const enum Class {
  Unsupported = 0,
  NaN = FSW_C0,
  Normal = FSW_C2,
  Infinity = FSW_C2 | FSW_C0,
  Zero = FSW_C3,
  Empty = FSW_C3 | FSW_C0,
  Denormal = FSW_C3 | FSW_C2,
}

const f64 = new Float64Array(1);
const f64Bits = new Int32Array(f64.buffer); // [low, high] on little-endian hosts

export class FpuState {
  /** Control word (FCW). */
  fcw = 0;
  /** Status word without TOP, which is kept in `top`. */
  fsw = 0;
  /** The physical register that is ST(0). */
  top = 0;
  /**
   * Bit p set: physical register p is empty. The other tag values are derived from the
   * register contents whenever they are stored, as the processor does (SDM Vol. 1, 8.1.7).
   */
  empty = 0;
  /** The 80-bit registers R0-R7: significand halves and sign/exponent. */
  readonly sigLo = new Int32Array(8);
  readonly sigHi = new Int32Array(8);
  readonly se = new Uint16Array(8);
  /**
   * Last x87 non-control instruction: its offset (64 bits as two halves in 64-bit mode)
   * and CS selector, its opcode (11 bits), and its memory operand's offset and segment
   * selector (SDM Vol. 1, 8.1.8 and 8.1.9).
   */
  fip = 0;
  fipHi = 0;
  fcs = 0;
  fop = 0;
  fdp = 0;
  fdpHi = 0;
  fds = 0;
  /** SSE state: MXCSR and XMM0-15 as 16 bytes each (SDM Vol. 1, 10.2). */
  mxcsr = MXCSR_INIT;
  readonly xmm = new Uint8Array(256);
  /** XCR0, the XSAVE feature-enabled mask (SDM Vol. 1, 13.3). */
  xcr0 = XCR0_X87;

  /**
   * Power-up and RESET state (SDM Vol. 3A, 10.1.1, Table 10-1): FCW 0040H, FSW 0, tag word
   * 5555H (every register valid, holding +0.0), MXCSR 1F80H, XMM registers 0, XCR0 1.
   * INIT leaves all of it unchanged (Cpu.takeEvents keeps it).
   */
  reset(): void {
    this.fninit();
    this.fcw = FCW_FIXED1;
    this.empty = 0;
    this.mxcsr = MXCSR_INIT;
    this.xmm.fill(0);
    this.xcr0 = XCR0_X87;
  }

  /** FNINIT (SDM Vol. 2, FINIT/FNINIT); the registers keep their contents. */
  fninit(): void {
    this.fcw = FCW_INIT;
    this.fsw = 0;
    this.top = 0;
    this.empty = 0xff;
    this.fip = this.fipHi = this.fcs = this.fop = 0;
    this.fdp = this.fdpHi = this.fds = 0;
  }

  /** XRSTOR's initial configuration of the x87 state: FNINIT, with the registers 0. */
  initX87(): void {
    this.fninit();
    this.sigLo.fill(0);
    this.sigHi.fill(0);
    this.se.fill(0);
  }

  copyFrom(o: FpuState): void {
    this.fcw = o.fcw;
    this.fsw = o.fsw;
    this.top = o.top;
    this.empty = o.empty;
    this.sigLo.set(o.sigLo);
    this.sigHi.set(o.sigHi);
    this.se.set(o.se);
    this.fip = o.fip;
    this.fipHi = o.fipHi;
    this.fcs = o.fcs;
    this.fop = o.fop;
    this.fdp = o.fdp;
    this.fdpHi = o.fdpHi;
    this.fds = o.fds;
    this.mxcsr = o.mxcsr;
    this.xmm.set(o.xmm);
    this.xcr0 = o.xcr0;
  }

  // ---- status and control words ----

  /** FSW as FNSTSW stores it: TOP in bits 13:11. */
  get statusWord(): number {
    return (this.fsw & ~(7 << FSW_TOP_SHIFT)) | (this.top << FSW_TOP_SHIFT);
  }

  /** Loads FSW (FLDENV, FRSTOR, FXRSTOR, XRSTOR); ES and B follow the flags and masks. */
  set statusWord(v: number) {
    this.top = (v >> FSW_TOP_SHIFT) & 7;
    this.fsw = v & ~(7 << FSW_TOP_SHIFT) & 0xffff;
    this.updateSummary();
  }

  /** Loads FCW (FLDCW and the restores): unmasking a raised flag makes it pending. */
  setControlWord(v: number): void {
    this.fcw = (v & FCW_WRITABLE) | FCW_FIXED1;
    this.updateSummary();
  }

  /** ES (and B) summarise the exception flags not masked in FCW (SDM Vol. 1, 8.1.3.1). */
  updateSummary(): void {
    if (this.fsw & ~this.fcw & FSW_EXCEPTIONS) this.fsw |= FSW_ES | FSW_B;
    else this.fsw &= ~(FSW_ES | FSW_B);
  }

  /** Raises exception flags: true when all of them are masked (the masked response applies). */
  raise(flags: number): boolean {
    this.fsw |= flags;
    this.updateSummary();
    return (flags & FSW_EXCEPTIONS & ~this.fcw) === 0;
  }

  /** An unmasked exception is pending: the next waiting instruction reports it. */
  get pending(): boolean {
    return (this.fsw & FSW_ES) !== 0;
  }

  get roundingControl(): number {
    return (this.fcw >> FCW_RC_SHIFT) & 3;
  }

  // ---- the register stack ----

  /** Physical register number of ST(i). */
  phys(i: number): number {
    return (this.top + i) & 7;
  }

  isEmpty(i: number): boolean {
    return (this.empty & (1 << this.phys(i))) !== 0;
  }

  /** The full two-bit tag of physical register p, from its contents. */
  tagOf(p: number): Tag {
    if (this.empty & (1 << p)) return Tag.Empty;
    const e = this.se[p] & EXP_MAX;
    const hi = this.sigHi[p];
    if (e === 0) return hi === 0 && this.sigLo[p] === 0 ? Tag.Zero : Tag.Special;
    if (e === EXP_MAX || (hi & J) === 0) return Tag.Special; // NaN, infinity, unnormal
    return Tag.Valid;
  }

  /** The 16-bit tag word, R7's tag in bits 15:14 (FNSTENV, FNSAVE). */
  get tagWord(): number {
    let w = 0;
    for (let p = 0; p < 8; p++) w |= this.tagOf(p) << (2 * p);
    return w;
  }

  /** Loads a tag word: only "empty" (11B) is taken from it (SDM Vol. 1, 8.1.7). */
  set tagWord(w: number) {
    let empty = 0;
    for (let p = 0; p < 8; p++) if (((w >> (2 * p)) & 3) === Tag.Empty) empty |= 1 << p;
    this.empty = empty;
  }

  /** FXSAVE's abridged tag byte: bit p set when physical register p is not empty. */
  get abridgedTag(): number {
    return ~this.empty & 0xff;
  }

  set abridgedTag(b: number) {
    this.empty = ~b & 0xff;
  }

  /** Copies ST(src)'s bits into ST(dst) (both by stack index) and marks it full. */
  copy(dst: number, src: number): void {
    const d = this.phys(dst);
    const s = this.phys(src);
    this.sigLo[d] = this.sigLo[s];
    this.sigHi[d] = this.sigHi[s];
    this.se[d] = this.se[s];
    this.empty &= ~(1 << d);
  }

  /** Writes bits into ST(i) and marks it full. */
  setBits(i: number, lo: number, hi: number, se: number): void {
    const p = this.phys(i);
    this.sigLo[p] = lo;
    this.sigHi[p] = hi;
    this.se[p] = se;
    this.empty &= ~(1 << p);
  }

  /** Decrements TOP (a push; the caller fills ST(0)). */
  decTop(): void {
    this.top = (this.top - 1) & 7;
  }

  /** Marks ST(0) empty and increments TOP. */
  pop(): void {
    this.empty |= 1 << this.top;
    this.top = (this.top + 1) & 7;
  }

  // ---- values ----

  /** ST(i) as a float64 (rounded to nearest; out-of-range values become 0 or infinity). */
  toNumber(i: number): number {
    const p = this.phys(i);
    return bitsToNumber(this.sigLo[p], this.sigHi[p], this.se[p]);
  }

  /** Writes a float64 into ST(i), exactly (every float64 is an 80-bit value). */
  fromNumber(i: number, v: number): void {
    numberToBits(v);
    this.setBits(i, conv.lo, conv.hi, conv.se);
  }

  /** ST(i) is a NaN (quiet or signalling). */
  isNaN(i: number): boolean {
    const p = this.phys(i);
    return (this.se[p] & EXP_MAX) === EXP_MAX && ((this.sigHi[p] & ~J) | this.sigLo[p]) !== 0;
  }

  /** ST(i) is a signalling NaN, or an encoding the x87 does not support (both raise #IA). */
  isSignalling(i: number): boolean {
    const p = this.phys(i);
    const e = this.se[p] & EXP_MAX;
    if (e !== 0 && (this.sigHi[p] & J) === 0) return true; // pseudo-NaN/-infinity, unnormal
    return this.isNaN(i) && (this.sigHi[p] & QUIET) === 0;
  }

  /** FXAM's class of ST(i) (C1 is the sign, set separately). */
  classify(i: number): Class {
    if (this.isEmpty(i)) return Class.Empty;
    const p = this.phys(i);
    const e = this.se[p] & EXP_MAX;
    const hi = this.sigHi[p];
    const lo = this.sigLo[p];
    if (e === 0) return hi === 0 && lo === 0 ? Class.Zero : Class.Denormal;
    if ((hi & J) === 0) return Class.Unsupported;
    if (e === EXP_MAX) return (hi & ~J) === 0 && lo === 0 ? Class.Infinity : Class.NaN;
    return Class.Normal;
  }

  sign(i: number): boolean {
    return (this.se[this.phys(i)] & 0x8000) !== 0;
  }
}

/** The result registers of the bit conversions (explicit, no allocation per call). */
export const conv = { lo: 0, hi: 0, se: 0 };

/** The QNaN floating-point indefinite: the masked response to an invalid operation. */
export const INDEFINITE = { lo: 0, hi: J | QUIET, se: 0xffff };

/** Converts 80-bit bits to the nearest float64 (one rounding: the 64-bit integer to 53 bits). */
export function bitsToNumber(lo: number, hi: number, se: number): number {
  const e = se & EXP_MAX;
  const neg = (se & 0x8000) !== 0;
  let v: number;
  if (e === EXP_MAX) {
    v = ((hi & ~J) | lo) === 0 ? Infinity : NaN;
  } else {
    const sig = (hi >>> 0) * 0x100000000 + (lo >>> 0);
    // value = sig * 2^(e - BIAS - 63); a pseudo-denormal (e = 0) has exponent 1 - BIAS.
    v = scale(sig, (e === 0 ? 1 : e) - BIAS - 63);
  }
  return neg ? -v : v;
}

/** x * 2^n, in steps that cannot overflow or underflow an intermediate. */
function scale(x: number, n: number): number {
  while (n > 1000) {
    x *= 2 ** 1000;
    n -= 1000;
  }
  while (n < -1000) {
    x *= 2 ** -1000;
    n += 1000;
  }
  return x * 2 ** n;
}

/** Converts a float64 to its exact 80-bit form, into `conv`. */
export function numberToBits(v: number): void {
  f64[0] = v;
  doubleToBits(f64Bits[0], f64Bits[1]);
}

/** An m64fp bit pattern (halves) to its exact 80-bit form, into `conv`; NaN payloads kept. */
export function doubleToBits(lo: number, hi: number): void {
  const sign = hi < 0 ? 0x8000 : 0;
  const e11 = (hi >>> 20) & 0x7ff;
  let mHi = hi & 0xfffff;
  let mLo = lo;
  if (e11 === 0x7ff) {
    conv.se = sign | EXP_MAX;
    conv.hi = J | (mHi << 11) | (mLo >>> 21);
    conv.lo = mLo << 11;
    return;
  }
  if (e11 === 0) {
    if ((mHi | mLo) === 0) {
      conv.se = sign;
      conv.hi = conv.lo = 0;
      return;
    }
    // A float64 denormal is a normal 80-bit number: shift its fraction up to bit 63.
    let e = 1 - 1023 + BIAS;
    while ((mHi & 0x100000) === 0) {
      mHi = (mHi << 1) | (mLo >>> 31);
      mLo <<= 1;
      e--;
    }
    conv.se = sign | e;
    conv.hi = J | ((mHi & 0xfffff) << 11) | (mLo >>> 21);
    conv.lo = mLo << 11;
    return;
  }
  conv.se = sign | (e11 - 1023 + BIAS);
  conv.hi = J | (mHi << 11) | (mLo >>> 21);
  conv.lo = mLo << 11;
}

/** An m32fp bit pattern to its exact 80-bit form, into `conv`. */
export function singleToBits(v: number): void {
  const sign = v < 0 ? 0x8000 : 0;
  const e8 = (v >>> 23) & 0xff;
  let m = v & 0x7fffff;
  conv.lo = 0;
  if (e8 === 0xff) {
    conv.se = sign | EXP_MAX;
    conv.hi = J | (m << 8);
  } else if (e8 === 0) {
    if (m === 0) {
      conv.se = sign;
      conv.hi = 0;
      return;
    }
    const z = Math.clz32(m) - 8; // shifts that bring the leading 1 to bit 23
    m <<= z;
    conv.se = sign | (1 - 127 + BIAS - z);
    conv.hi = J | ((m & 0x7fffff) << 8);
  } else {
    conv.se = sign | (e8 - 127 + BIAS);
    conv.hi = J | (m << 8);
  }
}

/** An 80-bit NaN as an m64fp NaN (quieted, payload truncated), halves into conv.lo/hi. */
export function nanToDouble(lo: number, hi: number, se: number): void {
  conv.hi = (se & 0x8000 ? 0x80000000 : 0) | 0x7ff80000 | ((hi >>> 11) & 0xfffff);
  conv.lo = (hi << 21) | (lo >>> 11);
}

/** An 80-bit NaN as an m32fp NaN (quieted, payload truncated). */
export function nanToSingle(hi: number, se: number): number {
  return (se & 0x8000 ? 0x80000000 : 0) | 0x7fc00000 | ((hi >>> 8) & 0x7fffff);
}

/** Rounding-control values (FCW.RC, SDM Vol. 1, Table 4-8). */
export const enum Rc {
  Nearest = 0,
  Down = 1,
  Up = 2,
  Zero = 3,
}

/**
 * Rounds an 80-bit finite value to an integer under `rc`, exactly: the magnitude as two
 * 32-bit halves in `conv.lo`/`conv.hi` (`conv.se` = 0, or 1 when the magnitude needs more
 * than 64 bits). Returns whether the result differs from the value (inexact).
 */
export function roundToInteger(lo: number, hi: number, se: number, rc: Rc): boolean {
  const e = (se & EXP_MAX) - BIAS; // unbiased exponent: the integer part has e + 1 bits
  const neg = (se & 0x8000) !== 0;
  if (e >= 64) {
    conv.lo = conv.hi = 0;
    conv.se = 1;
    return false;
  }
  let mLo = lo >>> 0;
  let mHi = hi >>> 0;
  // Shift right by (63 - e): what falls off decides the rounding.
  const shift = e < -1 ? 65 : 63 - e;
  let half = false; // the first bit shifted out
  let sticky = false; // any later bit shifted out
  for (let s = shift; s > 0;) {
    // Up to 31 bits at a time; bits of earlier steps are below those of later ones.
    const n = Math.min(s, 31);
    const out = mLo & ((1 << n) - 1);
    sticky = sticky || half || (out & ((1 << (n - 1)) - 1)) !== 0;
    half = ((out >>> (n - 1)) & 1) === 1;
    mLo = ((mLo >>> n) | (mHi << (32 - n))) >>> 0;
    mHi >>>= n;
    s -= n;
  }
  const inexact = half || sticky;
  let up = false;
  if (inexact) {
    if (rc === Rc.Nearest) up = half && (sticky || (mLo & 1) === 1);
    else if (rc === Rc.Up) up = !neg;
    else if (rc === Rc.Down) up = neg;
  }
  if (up) {
    mLo = (mLo + 1) >>> 0;
    if (mLo === 0) mHi = (mHi + 1) >>> 0;
  }
  conv.lo = mLo | 0;
  conv.hi = mHi | 0;
  conv.se = up && mLo === 0 && mHi === 0 ? 1 : 0;
  return inexact;
}

/**
 * An unsigned 64-bit magnitude (halves) with a sign as an exact 80-bit value, into `conv`
 * (FILD, FRNDINT).
 */
export function integerToBits(lo: number, hi: number, neg: boolean): void {
  let mLo = lo >>> 0;
  let mHi = hi >>> 0;
  const sign = neg ? 0x8000 : 0;
  if ((mLo | mHi) === 0) {
    conv.lo = conv.hi = 0;
    conv.se = sign;
    return;
  }
  let e = BIAS + 63;
  if (mHi === 0) {
    mHi = mLo;
    mLo = 0;
    e -= 32;
  }
  const z = Math.clz32(mHi);
  if (z > 0) {
    mHi = ((mHi << z) | (mLo >>> (32 - z))) >>> 0;
    mLo = (mLo << z) >>> 0;
    e -= z;
  }
  conv.lo = mLo | 0;
  conv.hi = mHi | 0;
  conv.se = sign | e;
}
