/**
 * The instruction decoder. It knows no instruction by itself: everything it needs (ModRM
 * presence, immediates, groups) is derived from the opcode table in opcodes.ts, the same
 * table the disassembler and the tests read (SDM Vol. 2, chapter 2 and Appendix A).
 */
import { CS, DS, EBP, ESP, GP, SS } from "./arch.js";
import { fault } from "./fault.js";
import type { Cpu } from "./cpu.js";
import { OPCODES, type Handler, type OpDef } from "./opcodes.js";

/** How many immediate bytes follow the ModRM/SIB/displacement. */
const enum Imm {
  None,
  Byte, // Ib, Jb
  ByteSigned, // Ibs: sign-extended to the operand size
  Word, // Iw
  Z, // Iz, Jz: 2 or 4 bytes by operand size (4, sign-extended, for 64-bit operands)
  V, // Iv: 2, 4 or 8 bytes by operand size (8 only for MOV r64, imm64)
  FarPtr, // Ap: offset (2 or 4 bytes) then a 16-bit selector
  Moffs, // Ob, Ov: an offset of the address size (8 bytes in 64-bit mode)
  WordByte, // ENTER Iw, Ib
}

// 16-bit ModRM memory forms (SDM Vol. 2, Table 2-1): base BX BX BP BP SI DI BP BX, and
// index SI DI SI DI for rm 0-3.
const BASE16 = [3, 3, 5, 5, 6, 7, 5, 3];
const INDEX16 = [6, 7, 6, 7, -1, -1, -1, -1];

/** A table row with what the decoder derives from its operands. */
export interface Entry extends OpDef {
  modrm: boolean;
  imm: Imm;
  /**
   * MOV to and from control and debug registers: ModRM always names a register and the
   * mod bits are ignored (SDM Vol. 2, MOV—Move to/from Control Registers).
   */
  regOnly: boolean;
  /** Byte-register operands in ModRM.reg (Gb) and ModRM.rm or the opcode (Eb, Zb). */
  byteG: boolean;
  byteE: boolean;
}

/** One opcode's entries: either one entry, or one per (mod==3, reg, rm) ModRM form. */
interface Slot {
  modrm: boolean;
  entry: Entry | undefined;
  /** Indexed by (mod == 3 ? 64 : 0) | reg << 3 | rm. */
  forms: (Entry | undefined)[] | undefined;
}

export class Instr {
  entry!: Entry;
  /** The handler (entry.exec), kept here so the run loop reaches it in one load. */
  exec!: Handler;
  /** Opcode: 0x00-0xFF, or 0x100 | byte for the 0F map. */
  opcode = 0;
  /** Operand and address size in bits. */
  osize = 32;
  asize = 32;
  /** Segment of the memory operand (override or default). */
  seg = DS;
  /** Segment override prefix, or -1. */
  segOverride = -1;
  /** 0xF3 (REP/REPE), 0xF2 (REPNE) or 0. */
  rep = 0;
  lock = false;
  mod = 0;
  reg = 0;
  rm = 0;
  /** Memory operand: base and index registers (-1 for none), scale shift, displacement. */
  base = -1;
  index = -1;
  scale = 0;
  disp = 0;
  imm = 0;
  imm2 = 0;
  /** High dwords of a 64-bit immediate (MOV r64, imm64) and of a 64-bit moffs. */
  immHi = 0;
  dispHi = 0;
  /** The REX prefix (0x40-0x4F) in 64-bit mode, or 0. Any REX makes byte registers 4-7 SPL-DIL. */
  rex = 0;
  /** The memory operand is RIP-relative: disp is added to the next instruction's RIP. */
  ripRel = false;
  /** Decoded in 64-bit mode. */
  mode64 = false;
  /** Length in bytes (while decoding: bytes fetched so far). */
  len = 0;
  /** The code-segment size (CS.D) it was decoded for. */
  big = true;
  /** Offset of the first byte in CS, and the CS limit, while decoding. */
  start = 0;
  csLimit: number = 0;

  /** True when the ModRM byte names memory rather than a register. */
  get isMem(): boolean {
    return this.mod !== 3;
  }
}

const UNDEFINED: Entry = {
  op: -1,
  m: "(bad)",
  o: "",
  exec: (): void => fault(6),
  modrm: false,
  imm: Imm.None,
  regOnly: false,
  byteG: false,
  byteE: false,
};

function immKind(operands: string): Imm {
  if (/\bIw,Ib\b/.test(operands)) return Imm.WordByte;
  if (/\b(Ibs)\b/.test(operands)) return Imm.ByteSigned;
  if (/\b(Ib|Jb)\b/.test(operands)) return Imm.Byte;
  if (/\bIw\b/.test(operands)) return Imm.Word;
  if (/\bIv\b/.test(operands)) return Imm.V;
  if (/\b(Iz|Jz)\b/.test(operands)) return Imm.Z;
  if (/\bAp\b/.test(operands)) return Imm.FarPtr;
  if (/\bO[bv]\b/.test(operands)) return Imm.Moffs;
  return Imm.None;
}

function needsModrm(d: OpDef): boolean {
  return d.reg !== undefined || d.mod3 !== undefined || /\b([EGMSRCD][a-z]*)\b/.test(d.o);
}

/**
 * The 512 slots (0x00-0xFF one-byte opcodes, 0x100-0x1FF the 0F map) for legacy and
 * compatibility mode, and for 64-bit mode: rows marked i64 are invalid in 64-bit mode, rows
 * marked o64 exist only there (SDM Vol. 2, Appendix A.2.5).
 */
const LEGACY_ROWS = OPCODES.filter((d) => d.mode64 !== "o64");
const LONG_ROWS = OPCODES.filter((d) => d.mode64 !== "i64");
export const SLOTS: Slot[] = buildSlots(LEGACY_ROWS.filter((d) => !d.mandatory));
export const SLOTS64: Slot[] = buildSlots(LONG_ROWS.filter((d) => !d.mandatory));
/**
 * Opcodes that mean something else behind a mandatory F3 or 66 prefix (PAUSE is F3 90,
 * RDFSBASE F3 0F AE /0, INVPCID 66 0F 38 82): their own slots, tried first.
 */
const PREFIXED = {
  f3: [
    buildSlots(LEGACY_ROWS.filter((d) => d.mandatory === 0xf3)),
    buildSlots(LONG_ROWS.filter((d) => d.mandatory === 0xf3)),
  ],
  p66: [
    buildSlots(LEGACY_ROWS.filter((d) => d.mandatory === 0x66)),
    buildSlots(LONG_ROWS.filter((d) => d.mandatory === 0x66)),
  ],
};

/** The slot for `opcode` given the prefixes: a mandatory-prefix form when one exists. */
function slotFor(opcode: number, long: boolean, rep: number, opsizePrefix: boolean): Slot {
  const m = long ? 1 : 0;
  const f3 = rep === 0xf3 ? PREFIXED.f3[m][opcode] : undefined;
  if (f3 && (f3.entry || f3.forms)) return f3;
  const p66 = opsizePrefix ? PREFIXED.p66[m][opcode] : undefined;
  if (p66 && (p66.entry || p66.forms)) return p66;
  return (long ? SLOTS64 : SLOTS)[opcode];
}

/** Slot of a table opcode: 00-FF, 0F xx at 0x100-0x1FF, 0F 38 xx at 0x200-0x2FF. */
export function slotIndex(op: number): number {
  if (op >= 0x0f3800) return 0x200 | (op & 0xff);
  return op >= 0x0f00 ? 0x100 | (op & 0xff) : op;
}

function buildSlots(defs: readonly OpDef[]): Slot[] {
  const slots: Slot[] = Array.from({ length: 768 }, () => ({
    modrm: false,
    entry: undefined,
    forms: undefined,
  }));
  for (const d of defs) {
    const idx = slotIndex(d.op);
    const e: Entry = {
      ...d,
      modrm: needsModrm(d),
      imm: immKind(d.o),
      regOnly: /\bR[a-z]*\b/.test(d.o),
      byteG: /\bGb\b/.test(d.o),
      byteE: /\b[EZ]b\b/.test(d.o),
    };
    const slot = slots[idx];
    if (!e.modrm) {
      if (slot.entry || slot.forms) throw new Error(`opcode table: duplicate ${d.op.toString(16)}`);
      slot.entry = e;
      continue;
    }
    slot.modrm = true;
    slot.forms ??= new Array<Entry | undefined>(128).fill(undefined);
    for (let f = 0; f < 128; f++) {
      const mod3 = f >= 64;
      const reg = (f >> 3) & 7;
      const rm = f & 7;
      if (d.reg !== undefined && d.reg !== reg) continue;
      if (d.mod3 !== undefined && d.mod3 !== mod3) continue;
      if (d.rm !== undefined && d.rm !== rm) continue;
      if (slot.forms[f]) {
        throw new Error(
          `opcode table: ${d.m} overlaps ${slot.forms[f]!.m} at ${d.op.toString(16)}`,
        );
      }
      slot.forms[f] = e;
    }
  }
  return slots;
}

/**
 * Decodes the instruction at CS:EIP into `i` and sets cpu.nextEip. Raises #GP(0) past the
 * CS limit or beyond 15 bytes (SDM Vol. 2, 2.3.11), #PF on an unmapped fetch.
 */
export function decode(cpu: Cpu, i: Instr): void {
  const start = cpu.eip;
  const long = cpu.mode64;
  const big = long || cpu.segs[CS].big;
  i.start = start;
  i.big = cpu.segs[CS].big; // the cache key, with mode64
  i.mode64 = long;
  i.len = 0;
  i.csLimit = long ? Infinity : cpu.segs[CS].limit; // no limit checks in 64-bit mode
  const next = nextByte;

  // Legacy prefixes (SDM Vol. 2, 2.1.1), in any order, then in 64-bit mode a REX prefix,
  // which counts only when it comes last (2.2.1).
  let opsizePrefix = false;
  let adsizePrefix = false;
  let segOverride = -1;
  let rep = 0;
  let lock = false;
  let rex = 0;
  let b: number;
  for (;;) {
    b = next(cpu, i);
    if (long && (b & 0xf0) === 0x40) {
      rex = b;
      continue;
    }
    if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e) {
      segOverride = (b >> 3) & 3; // ES, CS, SS, DS
    } else if (b === 0x64 || b === 0x65) {
      segOverride = b - 0x60; // FS, GS
    } else if (b === 0x66) opsizePrefix = true;
    else if (b === 0x67) adsizePrefix = true;
    else if (b === 0xf0) lock = true;
    else if (b === 0xf2 || b === 0xf3) rep = b;
    else break;
    rex = 0;
  }
  let opcode = b;
  if (b === 0x0f) {
    opcode = 0x100 | next(cpu, i);
    if (opcode === 0x138) opcode = 0x200 | next(cpu, i); // the 0F 38 three-byte map
  }
  const slot = slotFor(opcode, long, rep, opsizePrefix);
  const rexR = (rex & 4) << 1;
  const rexX = (rex & 2) << 2;
  const rexB = (rex & 1) << 3;

  let osize: number;
  let asize: number;
  if (long) asize = adsizePrefix ? 32 : 64;
  else asize = big !== adsizePrefix ? 32 : 16;

  i.opcode = opcode;
  i.asize = asize;
  i.segOverride = segOverride;
  i.rep = rep;
  i.lock = lock;
  i.rex = rex;
  i.ripRel = false;

  let entry: Entry | undefined;
  if (slot.modrm) {
    const modrm = next(cpu, i);
    const mod = modrm >> 6;
    const rm = modrm & 7;
    const form = (mod === 3 ? 64 : 0) | (modrm & 0x38) | rm;
    entry = slot.forms![form];
    // A mandatory-prefix slot holds only its own forms (66 0F C7 /6 is VMCLEAR): the other
    // ModRM forms are the unprefixed opcode's (66 0F C7 /1 is still CMPXCHG8B).
    if (entry === undefined) entry = (long ? SLOTS64 : SLOTS)[opcode].forms?.[form];
    i.mod = mod;
    i.reg = ((modrm >> 3) & 7) | rexR;
    i.rm = rm | rexB;
    if (entry?.regOnly) i.mod = 3;
    else if (mod !== 3) decodeMemory(cpu, i, mod, rm, rexX, rexB, segOverride);
  } else {
    entry = slot.entry;
    i.mod = 3;
    i.rm = (opcode & 7) | rexB; // the register in the opcode's low bits (50+r, B8+r, ...)
    i.seg = segOverride >= 0 ? segOverride : DS;
  }
  if (entry === undefined || (entry.noPrefix && (opsizePrefix || rep !== 0))) entry = UNDEFINED;
  // A mandatory prefix is part of the opcode, not a REP or an operand-size override.
  if (entry.mandatory === 0xf3) rep = i.rep = 0;
  if (entry.mandatory === 0x66) opsizePrefix = false;
  // LOCK is allowed only on the read-modify-write forms that list it, with a memory
  // destination (SDM Vol. 2, LOCK).
  if (lock && (!entry.lock || i.mod === 3)) fault(6);
  i.entry = entry;
  i.exec = entry.exec;
  // Byte registers 4-7 are AH, CH, DH, BH unless a REX prefix is present, which makes them
  // SPL, BPL, SIL, DIL (SDM Vol. 2, 2.2.1.2); the operand code renumbers AH-BH as 16-19.
  if (rex === 0) {
    if (entry.byteG && i.reg >= 4) i.reg += 12;
    if (entry.byteE && i.mod === 3 && i.rm >= 4) i.rm += 12;
  }
  if (long) osize = rex & 8 ? 64 : opsizePrefix ? 16 : 32;
  else osize = big !== opsizePrefix ? 32 : 16;
  // 64-bit mode: near branches always use 64-bit operands (f64); stack operations default
  // to them (d64) but take 16 with 0x66 unless REX.W (SDM Vol. 2, Appendix A.2.5).
  if (long && entry.size64 !== undefined) {
    osize = entry.size64 === "f64" || rex & 8 || !opsizePrefix ? 64 : 16;
  }
  i.osize = osize;

  switch (entry.imm) {
    case Imm.None:
      break;
    case Imm.Byte:
      i.imm = next(cpu, i);
      break;
    case Imm.ByteSigned:
      i.imm = (next(cpu, i) << 24) >> 24;
      break;
    case Imm.Word:
      i.imm = word(cpu, i);
      break;
    case Imm.Z:
      i.imm = osize === 16 ? word(cpu, i) : dword(cpu, i);
      i.immHi = i.imm >> 31; // Iz is sign-extended to 64 bits
      break;
    case Imm.V:
      i.imm = osize === 16 ? word(cpu, i) : dword(cpu, i);
      i.immHi = osize === 64 ? dword(cpu, i) : 0;
      break;
    case Imm.FarPtr:
      i.imm = osize === 16 ? word(cpu, i) : dword(cpu, i);
      i.imm2 = word(cpu, i);
      break;
    case Imm.Moffs:
      i.disp = asize === 16 ? word(cpu, i) : dword(cpu, i);
      i.dispHi = asize === 64 ? dword(cpu, i) : 0;
      i.base = i.index = -1;
      i.scale = 0;
      break;
    case Imm.WordByte:
      i.imm = word(cpu, i);
      i.imm2 = next(cpu, i);
      break;
  }
  cpu.nextEip = long ? start + i.len : osizeWrap(cpu, start + i.len);
}

function word(cpu: Cpu, i: Instr): number {
  return nextByte(cpu, i) | (nextByte(cpu, i) << 8);
}

function dword(cpu: Cpu, i: Instr): number {
  return word(cpu, i) | (word(cpu, i) << 16);
}

/**
 * The memory form of a ModRM byte: SIB, displacement, and the default segment (SS for
 * rBP/rSP bases), with the 16-bit forms of Table 2-1 and the REX extensions and
 * RIP-relative form of 64-bit mode (SDM Vol. 2, 2.1.5 and 2.2.1).
 */
function decodeMemory(
  cpu: Cpu,
  i: Instr,
  mod: number,
  rm: number,
  rexX: number,
  rexB: number,
  segOverride: number,
): void {
  let seg = DS;
  let base = -1;
  let index = -1;
  let scale = 0;
  let disp = 0;
  if (i.asize !== 16) {
    base = rm | rexB;
    if (rm === 4) {
      const sib = nextByte(cpu, i);
      scale = sib >> 6;
      index = ((sib >> 3) & 7) | rexX;
      if (index === ESP) index = -1; // no index (R12 with REX.X is an index)
      base = (sib & 7) | rexB;
      if ((sib & 7) === EBP && mod === 0) {
        base = -1;
        disp = dword(cpu, i);
      }
    } else if (rm === 5 && mod === 0) {
      base = -1;
      disp = dword(cpu, i);
      i.ripRel = i.mode64;
    }
    if (mod === 1) disp = (nextByte(cpu, i) << 24) >> 24;
    else if (mod === 2) disp = dword(cpu, i);
    if (base === ESP || base === EBP) seg = SS;
  } else {
    // 16-bit forms (SDM Vol. 2, Table 2-1).
    base = BASE16[rm];
    index = INDEX16[rm];
    if (mod === 0 && rm === 6) {
      base = -1;
      disp = word(cpu, i);
    } else if (mod === 1) disp = (nextByte(cpu, i) << 24) >> 24;
    else if (mod === 2) disp = (word(cpu, i) << 16) >> 16;
    if (base === EBP) seg = SS;
  }
  i.base = base;
  i.index = index;
  i.scale = scale;
  i.disp = disp;
  i.seg = segOverride >= 0 ? segOverride : seg;
}

/** Fetches the next instruction byte, enforcing the CS limit and the 15-byte limit. */
function nextByte(cpu: Cpu, i: Instr): number {
  const off = i.mode64 ? i.start + i.len : (i.start + i.len) >>> 0;
  if (i.len >= 15 || off > i.csLimit) fault(GP, 0);
  i.len++;
  return cpu.fetchByte(off);
}

/** Outside 32-bit code segments, EIP wraps at 64 KiB. */
function osizeWrap(cpu: Cpu, pos: number): number {
  return cpu.segs[CS].big ? pos >>> 0 : pos & 0xffff;
}

export type { Handler };
