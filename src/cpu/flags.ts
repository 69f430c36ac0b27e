/**
 * EFLAGS (SDM Vol. 1, 3.4.3) and the one lazy-flags scheme every arithmetic instruction
 * uses. An ALU operation records its result and its carry-out vector (bit i = the carry,
 * or borrow, out of bit i, as Bochs does); CF, OF, AF, ZF, SF and PF are derived from those
 * two numbers only when an instruction asks. Instructions read flags only through the
 * named predicates below and `cond()`.
 */

export const CF = 1 << 0; // carry
export const FIXED1 = 1 << 1; // reserved, always 1
export const PF = 1 << 2; // parity of the low byte of the result
export const AF = 1 << 4; // carry out of bit 3 (BCD)
export const ZF = 1 << 6; // zero
export const SF = 1 << 7; // sign
export const TF = 1 << 8; // trap: single-step
export const IF = 1 << 9; // interrupt enable
export const DF = 1 << 10; // string direction
export const OF = 1 << 11; // signed overflow
export const IOPL_SHIFT = 12; // I/O privilege level, bits 12-13
export const IOPL = 3 << IOPL_SHIFT;
export const NT = 1 << 14; // nested task
export const RF = 1 << 16; // resume: suppresses instruction breakpoints once
export const VM = 1 << 17; // virtual-8086 mode
export const AC = 1 << 18; // alignment check (with CR0.AM at CPL 3)
export const VIF = 1 << 19; // virtual interrupt flag
export const VIP = 1 << 20; // virtual interrupt pending
export const ID = 1 << 21; // CPUID is available when this bit can be toggled

/** The six status flags that ALU operations produce. */
export const ARITH = CF | PF | AF | ZF | SF | OF;
/** Bits software can ever change with POPF/IRET at CPL 0 (the rest are reserved). */
export const WRITABLE = ARITH | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;

/** PARITY[b] is PF for low result byte b: set when the count of 1 bits is even. */
const PARITY = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  let n = 0;
  for (let x = b; x; x >>= 1) n += x & 1;
  PARITY[b] = n & 1 ? 0 : PF;
}

export class Flags {
  /** EFLAGS with the status flags valid only when `lazy` is false. */
  word = FIXED1;
  /** True when the status flags come from `res` and `cov`. */
  lazy = false;
  /** Result of the last flag-setting operation (low `bits` bits significant). */
  res = 0;
  /** Carry-out vector of the last operation: bit i is the carry (borrow) out of bit i. */
  cov = 0;
  /** Operand width of the last operation in bits: 8, 16 or 32. */
  bits = 32;

  /** Records an operation's result with its carry-out vector. */
  set(res: number, cov: number, bits: number): void {
    this.res = res;
    this.cov = cov;
    this.bits = bits;
    this.lazy = true;
  }

  /** Records a result whose CF and OF are given explicitly (shifts, multiplies). */
  setCO(res: number, cf: number, of: number, bits: number): void {
    // Carry out of the top bit is CF; carry out of the bit below it is CF ^ OF.
    this.set(res, (cf << (bits - 1)) | ((cf ^ of) << (bits - 2)), bits);
  }

  cf(): boolean {
    return this.lazy ? ((this.cov >>> (this.bits - 1)) & 1) !== 0 : (this.word & CF) !== 0;
  }
  of(): boolean {
    if (!this.lazy) return (this.word & OF) !== 0;
    return (((this.cov >>> (this.bits - 1)) ^ (this.cov >>> (this.bits - 2))) & 1) !== 0;
  }
  af(): boolean {
    return this.lazy ? (this.cov & 8) !== 0 : (this.word & AF) !== 0;
  }
  zf(): boolean {
    if (!this.lazy) return (this.word & ZF) !== 0;
    return this.bits === 32 ? this.res === 0 : (this.res & ((1 << this.bits) - 1)) === 0;
  }
  sf(): boolean {
    return this.lazy ? ((this.res >>> (this.bits - 1)) & 1) !== 0 : (this.word & SF) !== 0;
  }
  pf(): boolean {
    return this.lazy ? PARITY[this.res & 0xff] !== 0 : (this.word & PF) !== 0;
  }

  /** The whole EFLAGS value, status flags materialized. */
  get(): number {
    if (!this.lazy) return this.word;
    return (
      (this.word & ~ARITH) |
      (this.cf() ? CF : 0) |
      (this.pf() ? PF : 0) |
      (this.af() ? AF : 0) |
      (this.zf() ? ZF : 0) |
      (this.sf() ? SF : 0) |
      (this.of() ? OF : 0)
    );
  }

  /** Replaces EFLAGS; the caller has already applied privilege rules to `value`. */
  load(value: number): void {
    this.word = (value & WRITABLE) | FIXED1;
    this.lazy = false;
  }

  /** Sets or clears a single status flag, keeping the others. */
  setBit(flag: number, on: boolean): void {
    const w = this.get();
    this.word = on ? w | flag : w & ~flag;
    this.lazy = false;
  }

  /**
   * Evaluates condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc; SDM Vol. 1,
   * Appendix B): even codes test the condition, odd codes its negation.
   */
  cond(cc: number): boolean {
    let r: boolean;
    switch (cc >> 1) {
      case 0:
        r = this.of();
        break; // O
      case 1:
        r = this.cf();
        break; // B/C/NAE
      case 2:
        r = this.zf();
        break; // E/Z
      case 3:
        r = this.cf() || this.zf();
        break; // BE/NA
      case 4:
        r = this.sf();
        break; // S
      case 5:
        r = this.pf();
        break; // P/PE
      case 6:
        r = this.sf() !== this.of();
        break; // L/NGE
      default:
        r = this.zf() || this.sf() !== this.of();
        break; // LE/NG
    }
    return (cc & 1) === 0 ? r : !r;
  }
}
