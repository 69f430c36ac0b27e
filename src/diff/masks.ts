/**
 * What the SDM leaves undefined, per instruction: the status flags (SDM Vol. 2, each
 * instruction's "Flags Affected"; Vol. 1, Appendix A) and the destinations with no defined
 * value. Differential tests compare everything else, since the host may be an AMD processor
 * whose undefined results differ from Intel's. One row per instruction; rows are data.
 */
import { AF, ARITH, CF, OF, PF, SF, ZF } from "../cpu/flags.js";

/** Facts about one execution that the rules depend on. */
export interface MaskFacts {
  /** Operand width in bits (8, 16, 32 or 64). */
  bits: number;
  /** Shift or rotate count as encoded (imm8 or CL), before the CPU masks it. */
  count?: number;
  /** The source operand is zero (BSF, BSR). */
  sourceZero?: boolean;
  /** 64-bit mode, a memory operand based on RSP or RBP, with a DS, ES or CS override. */
  stackBaseOverride?: boolean;
  /** 64-bit mode, an SS override on a memory operand not based on RSP or RBP. */
  stackOverrideOtherBase?: boolean;
  /** CMPXCHG16B with a non-canonical operand that is not 16-byte aligned. */
  misalignedNonCanonical?: boolean;
}

export interface MaskRow {
  /** Mnemonic, as in the opcode table. */
  m: string;
  /** Flags undefined whenever the instruction executes. */
  flags?: number;
  /**
   * Flags undefined by the count after masking to 5 bits (6 for 64-bit operands): when
   * it is not 0, above 1, at least the operand width, or above the operand width.
   */
  count?: { nonzero?: number; above1?: number; atLeastWidth?: number; aboveWidth?: number };
  /** When the destination operand is undefined. */
  result?: "countAboveWidth" | "sourceZero" | "width16";
  sdm: string;
}

const SHIFT_SDM = "Vol. 2B, SAL/SAR/SHL/SHR, Flags Affected";
const ROTATE_SDM = "Vol. 2B, RCL/RCR/ROL/ROR, Flags Affected";
const BT_SDM = "Vol. 2A, BT/BTC/BTR/BTS, Flags Affected";
const SHIFTS = { nonzero: AF, above1: OF } as const;

export const UNDEFINED: readonly MaskRow[] = [
  { m: "and", flags: AF, sdm: "Vol. 2A, AND: the state of AF is undefined" },
  { m: "or", flags: AF, sdm: "Vol. 2B, OR: the state of AF is undefined" },
  { m: "xor", flags: AF, sdm: "Vol. 2C, XOR: the state of AF is undefined" },
  { m: "test", flags: AF, sdm: "Vol. 2C, TEST: the state of AF is undefined" },
  { m: "mul", flags: SF | ZF | AF | PF, sdm: "Vol. 2B, MUL: SF, ZF, AF and PF undefined" },
  { m: "imul", flags: SF | ZF | AF | PF, sdm: "Vol. 2A, IMUL: SF, ZF, AF and PF undefined" },
  { m: "div", flags: ARITH, sdm: "Vol. 2A, DIV: CF, OF, SF, ZF, AF and PF undefined" },
  { m: "idiv", flags: ARITH, sdm: "Vol. 2A, IDIV: CF, OF, SF, ZF, AF and PF undefined" },
  // A masked count of 0 changes no flag; otherwise AF is undefined, OF is defined for
  // 1-bit shifts only, and CF is undefined for SHL/SHR when the count is at least the width.
  { m: "shl", count: { ...SHIFTS, atLeastWidth: CF }, sdm: SHIFT_SDM },
  { m: "sal", count: { ...SHIFTS, atLeastWidth: CF }, sdm: `${SHIFT_SDM} (the /6 alias)` },
  { m: "shr", count: { ...SHIFTS, atLeastWidth: CF }, sdm: SHIFT_SDM },
  { m: "sar", count: SHIFTS, sdm: SHIFT_SDM },
  // Rotates change only CF and OF; OF is defined for 1-bit rotates only.
  { m: "rol", count: { above1: OF }, sdm: ROTATE_SDM },
  { m: "ror", count: { above1: OF }, sdm: ROTATE_SDM },
  { m: "rcl", count: { above1: OF }, sdm: ROTATE_SDM },
  { m: "rcr", count: { above1: OF }, sdm: ROTATE_SDM },
  // A count above the operand size (16-bit operands only) leaves result and flags undefined.
  {
    m: "shld",
    count: { ...SHIFTS, aboveWidth: ARITH },
    result: "countAboveWidth",
    sdm: "Vol. 2B, SHLD: Flags Affected; Operation",
  },
  {
    m: "shrd",
    count: { ...SHIFTS, aboveWidth: ARITH },
    result: "countAboveWidth",
    sdm: "Vol. 2B, SHRD: Flags Affected; Operation",
  },
  { m: "bt", flags: OF | SF | AF | PF, sdm: BT_SDM },
  { m: "bts", flags: OF | SF | AF | PF, sdm: BT_SDM },
  { m: "btr", flags: OF | SF | AF | PF, sdm: BT_SDM },
  { m: "btc", flags: OF | SF | AF | PF, sdm: BT_SDM },
  {
    m: "bsf",
    flags: CF | OF | SF | AF | PF,
    result: "sourceZero",
    sdm: "Vol. 2A, BSF: destination undefined for a zero source; CF, OF, SF, AF, PF undefined",
  },
  {
    m: "bsr",
    flags: CF | OF | SF | AF | PF,
    result: "sourceZero",
    sdm: "Vol. 2A, BSR: destination undefined for a zero source; CF, OF, SF, AF, PF undefined",
  },
  {
    m: "bswap",
    result: "width16",
    sdm: "Vol. 2A, BSWAP: a 16-bit register gives an undefined result",
  },
  { m: "daa", flags: OF, sdm: "Vol. 2A, DAA: OF undefined" },
  { m: "das", flags: OF, sdm: "Vol. 2A, DAS: OF undefined" },
  { m: "aaa", flags: OF | SF | ZF | PF, sdm: "Vol. 2A, AAA: OF, SF, ZF and PF undefined" },
  { m: "aas", flags: OF | SF | ZF | PF, sdm: "Vol. 2A, AAS: OF, SF, ZF and PF undefined" },
  { m: "aam", flags: OF | AF | CF, sdm: "Vol. 2A, AAM: OF, AF and CF undefined" },
  { m: "aad", flags: OF | AF | CF, sdm: "Vol. 2A, AAD: OF, AF and CF undefined" },
];

const BY_MNEMONIC = new Map(UNDEFINED.map((r) => [r.m, r]));

/** The row for a mnemonic, if the SDM leaves anything of it undefined. */
export function maskRow(m: string): MaskRow | undefined {
  return BY_MNEMONIC.get(m);
}

function maskedCount(f: MaskFacts): number {
  return (f.count ?? 0) & (f.bits === 64 ? 63 : 31);
}

/** The status flags the SDM leaves undefined for this execution. */
export function undefinedFlags(m: string, f: MaskFacts): number {
  const row = BY_MNEMONIC.get(m);
  if (row === undefined) return 0;
  let u = row.flags ?? 0;
  const c = row.count;
  if (c !== undefined) {
    const n = maskedCount(f);
    if (n !== 0) u |= c.nonzero ?? 0;
    if (n > 1) u |= c.above1 ?? 0;
    if (n >= f.bits) u |= c.atLeastWidth ?? 0;
    if (n > f.bits) u |= c.aboveWidth ?? 0;
  }
  return u;
}

/** The status flags (of CF, PF, AF, ZF, SF, OF) the SDM defines for this execution. */
export function definedFlags(m: string, f: MaskFacts): number {
  return ARITH & ~undefinedFlags(m, f);
}

/** Whether the SDM defines the destination's value for this execution. */
export function resultDefined(m: string, f: MaskFacts): boolean {
  switch (BY_MNEMONIC.get(m)?.result) {
    case "countAboveWidth":
      return maskedCount(f) <= f.bits;
    case "sourceZero":
      return !f.sourceZero;
    case "width16":
      return f.bits !== 16;
    default:
      return true;
  }
}

/**
 * Exceptions where processors differ from the SDM in a known way: either vector of a row is
 * accepted from the host when the case has the row's fact.
 */
export const EXCEPTION_VARIANTS: readonly {
  fact: keyof MaskFacts;
  vectors: readonly [number, number];
  sdm: string;
}[] = [
  {
    fact: "stackBaseOverride",
    vectors: [13, 12],
    sdm:
      "Vol. 1, 3.3.7.1: a non-canonical reference based on RSP/RBP with a non-SS segment " +
      "override raises #GP(0); AMD processors raise #SS(0), ignoring the DS/ES/CS override",
  },
  {
    fact: "stackOverrideOtherBase",
    vectors: [12, 13],
    sdm:
      "Vol. 1, 3.3.7.1: a non-canonical reference through SS (here an SS override on another " +
      "base, or none) raises #SS(0); AMD processors raise #GP(0), going by the base register",
  },
  {
    fact: "misalignedNonCanonical",
    vectors: [12, 13],
    sdm:
      "Vol. 2A, CMPXCHG8B/CMPXCHG16B: a misaligned m128 raises #GP(0), a non-canonical stack " +
      "reference #SS(0); Vol. 3A, 6.9 puts both in one priority class and orders neither " +
      "first (AMD processors check the alignment first)",
  },
];

/** Whether two exception outcomes are the same, allowing for EXCEPTION_VARIANTS. */
export function sameException(
  a: { vector?: number; errorCode?: number },
  b: { vector?: number; errorCode?: number },
  f: MaskFacts,
): boolean {
  if (a.vector === b.vector) return a.errorCode === b.errorCode;
  if (a.errorCode !== 0 || b.errorCode !== 0) return false;
  return EXCEPTION_VARIANTS.some(
    (v) => f[v.fact] && v.vectors.includes(a.vector!) && v.vectors.includes(b.vector!),
  );
}
