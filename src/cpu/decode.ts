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
  Z, // Iz, Jz, Iv: 2 or 4 bytes by operand size
  FarPtr, // Ap: offset (2 or 4 bytes) then a 16-bit selector
  Moffs, // Ob, Ov: an offset of the address size
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
  /** Length in bytes (while decoding: bytes fetched so far). */
  len = 0;
  /** The code-segment size (CS.D) it was decoded for. */
  big = true;
  /** Offset of the first byte in CS, and the CS limit, while decoding. */
  start = 0;
  csLimit = 0;

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
};

function immKind(operands: string): Imm {
  if (/\bIw,Ib\b/.test(operands)) return Imm.WordByte;
  if (/\b(Ibs)\b/.test(operands)) return Imm.ByteSigned;
  if (/\b(Ib|Jb)\b/.test(operands)) return Imm.Byte;
  if (/\bIw\b/.test(operands)) return Imm.Word;
  if (/\b(Iz|Jz|Iv)\b/.test(operands)) return Imm.Z;
  if (/\bAp\b/.test(operands)) return Imm.FarPtr;
  if (/\bO[bv]\b/.test(operands)) return Imm.Moffs;
  return Imm.None;
}

function needsModrm(d: OpDef): boolean {
  return d.reg !== undefined || d.mod3 !== undefined || /\b([EGMSRCD][a-z]*)\b/.test(d.o);
}

/** The 512 slots: 0x00-0xFF one-byte opcodes, 0x100-0x1FF the 0F two-byte map. */
export const SLOTS: Slot[] = buildSlots(OPCODES);

function buildSlots(defs: readonly OpDef[]): Slot[] {
  const slots: Slot[] = Array.from({ length: 512 }, () => ({
    modrm: false,
    entry: undefined,
    forms: undefined,
  }));
  for (const d of defs) {
    const idx = d.op >= 0x0f00 ? 0x100 | (d.op & 0xff) : d.op;
    const e: Entry = {
      ...d,
      modrm: needsModrm(d),
      imm: immKind(d.o),
      regOnly: /\bR[a-z]*\b/.test(d.o),
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
  const big = cpu.segs[CS].big;
  i.start = start;
  i.big = big;
  i.len = 0;
  i.csLimit = cpu.segs[CS].limit;
  const next = nextByte;

  // Legacy prefixes (SDM Vol. 2, 2.1.1), in any order.
  let osize = big ? 32 : 16;
  let asize = osize;
  let segOverride = -1;
  let rep = 0;
  let lock = false;
  let b: number;
  for (;;) {
    b = next(cpu, i);
    switch (b) {
      case 0x26:
        segOverride = 0;
        continue; // ES
      case 0x2e:
        segOverride = 1;
        continue; // CS
      case 0x36:
        segOverride = 2;
        continue; // SS
      case 0x3e:
        segOverride = 3;
        continue; // DS
      case 0x64:
        segOverride = 4;
        continue; // FS
      case 0x65:
        segOverride = 5;
        continue; // GS
      case 0x66:
        osize = big ? 16 : 32;
        continue;
      case 0x67:
        asize = big ? 16 : 32;
        continue;
      case 0xf0:
        lock = true;
        continue;
      case 0xf2:
        rep = 0xf2;
        continue;
      case 0xf3:
        rep = 0xf3;
        continue;
    }
    break;
  }
  let opcode = b;
  if (b === 0x0f) opcode = 0x100 | next(cpu, i);
  const slot = SLOTS[opcode];

  i.opcode = opcode;
  i.osize = osize;
  i.asize = asize;
  i.segOverride = segOverride;
  i.rep = rep;
  i.lock = lock;

  let entry: Entry | undefined;
  if (slot.modrm) {
    const modrm = next(cpu, i);
    const mod = modrm >> 6;
    const reg = (modrm >> 3) & 7;
    const rm = modrm & 7;
    i.mod = mod;
    i.reg = reg;
    i.rm = rm;
    entry = slot.forms![(mod === 3 ? 64 : 0) | (reg << 3) | rm];
    if (entry?.regOnly) i.mod = 3;
    else if (mod !== 3) {
      let seg = DS;
      let base = -1;
      let index = -1;
      let scale = 0;
      let disp = 0;
      if (asize === 32) {
        base = rm;
        if (rm === 4) {
          const sib = next(cpu, i);
          scale = sib >> 6;
          index = (sib >> 3) & 7;
          if (index === ESP) index = -1;
          base = sib & 7;
          if (base === EBP && mod === 0) {
            base = -1;
            disp = next(cpu, i) | (next(cpu, i) << 8) | (next(cpu, i) << 16) | (next(cpu, i) << 24);
          }
        } else if (rm === 5 && mod === 0) {
          base = -1;
          disp = next(cpu, i) | (next(cpu, i) << 8) | (next(cpu, i) << 16) | (next(cpu, i) << 24);
        }
        if (mod === 1) disp = (next(cpu, i) << 24) >> 24;
        else if (mod === 2)
          disp = next(cpu, i) | (next(cpu, i) << 8) | (next(cpu, i) << 16) | (next(cpu, i) << 24);
        if (base === ESP || base === EBP) seg = SS;
      } else {
        // 16-bit forms (SDM Vol. 2, Table 2-1).
        base = BASE16[rm];
        index = INDEX16[rm];
        if (mod === 0 && rm === 6) {
          base = -1;
          disp = next(cpu, i) | (next(cpu, i) << 8);
        } else if (mod === 1) disp = (next(cpu, i) << 24) >> 24;
        else if (mod === 2) disp = ((next(cpu, i) | (next(cpu, i) << 8)) << 16) >> 16;
        if (base === EBP) seg = SS;
      }
      i.base = base;
      i.index = index;
      i.scale = scale;
      i.disp = disp;
      i.seg = segOverride >= 0 ? segOverride : seg;
    }
  } else {
    entry = slot.entry;
    i.mod = 3;
    i.seg = segOverride >= 0 ? segOverride : DS;
  }
  if (entry === undefined) entry = UNDEFINED;
  // LOCK is allowed only on the read-modify-write forms that list it, with a memory
  // destination (SDM Vol. 2, LOCK).
  if (lock && (!entry.lock || i.mod === 3)) fault(6);
  i.entry = entry;
  i.exec = entry.exec;

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
      i.imm = next(cpu, i) | (next(cpu, i) << 8);
      break;
    case Imm.Z:
      i.imm =
        osize === 16
          ? next(cpu, i) | (next(cpu, i) << 8)
          : next(cpu, i) | (next(cpu, i) << 8) | (next(cpu, i) << 16) | (next(cpu, i) << 24);
      break;
    case Imm.FarPtr:
      i.imm =
        osize === 16
          ? next(cpu, i) | (next(cpu, i) << 8)
          : next(cpu, i) | (next(cpu, i) << 8) | (next(cpu, i) << 16) | (next(cpu, i) << 24);
      i.imm2 = next(cpu, i) | (next(cpu, i) << 8);
      break;
    case Imm.Moffs:
      i.disp =
        asize === 16
          ? next(cpu, i) | (next(cpu, i) << 8)
          : next(cpu, i) | (next(cpu, i) << 8) | (next(cpu, i) << 16) | (next(cpu, i) << 24);
      i.base = i.index = -1;
      i.scale = 0;
      break;
    case Imm.WordByte:
      i.imm = next(cpu, i) | (next(cpu, i) << 8);
      i.imm2 = next(cpu, i);
      break;
  }
  cpu.nextEip = osizeWrap(cpu, start + i.len);
}

/** Fetches the next instruction byte, enforcing the CS limit and the 15-byte limit. */
function nextByte(cpu: Cpu, i: Instr): number {
  const off = (i.start + i.len) >>> 0;
  if (i.len >= 15 || off > i.csLimit) fault(GP, 0);
  i.len++;
  return cpu.fetchByte(off);
}

/** Outside 32-bit code segments, EIP wraps at 64 KiB. */
function osizeWrap(cpu: Cpu, pos: number): number {
  return cpu.segs[CS].big ? pos >>> 0 : pos & 0xffff;
}

export type { Handler };
