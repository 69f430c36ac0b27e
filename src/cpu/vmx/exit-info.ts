/**
 * Encoders of the VM-exit information that instructions and events report (SDM Vol. 3C,
 * 28.2: "Recording VM-exit information"): exit qualifications (Tables 28-1 to 28-7), the
 * VM-exit instruction-information field (Tables 28-8 to 28-14) and the interruption-
 * information format shared by the VM-exit interruption-information, IDT-vectoring
 * information and VM-entry interruption-information fields (Tables 25-17 and 25-18).
 * Pure functions of their inputs, so each format is tested bit by bit.
 */
import type { Instr } from "../decode.js";

// ---- interruption information (SDM Vol. 3C, 25.8.3 and 25.9.2) ----
/** Bits 7:0: the vector. */
export const INTR_VECTOR_MASK = 0xff;
/** Bits 10:8: the interruption type (interrupt.ts, EventType), 7 = other event (MTF). */
export const INTR_TYPE_SHIFT = 8;
export const INTR_TYPE_MASK = 7 << INTR_TYPE_SHIFT;
/** Bit 11: an error code is delivered (entry) or was pushed (exit, IDT vectoring). */
export const INTR_ERROR_CODE_VALID = 1 << 11;
/** Bit 12 of the exit interruption information: NMI unblocking due to IRET (27.2.3). */
export const INTR_NMI_UNBLOCKED_BY_IRET = 1 << 12;
/** Bit 31: the field is valid. */
export const INTR_VALID = 1 << 31;
/** Interruption type 7 "other event": with vector 0, a pending MTF VM exit (26.5.2). */
export const INTR_TYPE_OTHER = 7;

/** An interruption-information value: valid, vector, type, error-code-valid. */
export function interruptionInfo(vector: number, type: number, hasErrorCode: boolean): number {
  return (
    INTR_VALID |
    (vector & INTR_VECTOR_MASK) |
    ((type & 7) << INTR_TYPE_SHIFT) |
    (hasErrorCode ? INTR_ERROR_CODE_VALID : 0)
  );
}

// ---- exit qualification for control-register accesses (Table 28-3) ----
export const enum CrAccessType {
  MovToCr = 0,
  MovFromCr = 1,
  Clts = 2,
  Lmsw = 3,
}

/**
 * Bits 3:0 the control register, 5:4 the access type, 6 the LMSW operand type (1 =
 * memory), 11:8 the general-purpose register of MOV CR, 31:16 the LMSW source data.
 */
export function crQualification(
  cr: number,
  type: CrAccessType,
  gpr = 0,
  lmswMemory = false,
  lmswData = 0,
): number {
  return (
    ((cr & 0xf) |
      (type << 4) |
      (lmswMemory ? 1 << 6 : 0) |
      ((gpr & 0xf) << 8) |
      ((lmswData & 0xffff) << 16)) >>>
    0
  );
}

// ---- exit qualification for MOV DR (Table 28-4) ----
/** Bits 2:0 the debug register, 4 the direction (1 = MOV from DR), 11:8 the register. */
export function drQualification(dr: number, fromDr: boolean, gpr: number): number {
  return (dr & 7) | (fromDr ? 1 << 4 : 0) | ((gpr & 0xf) << 8);
}

// ---- exit qualification for I/O instructions (Table 28-5) ----
/**
 * Bits 2:0 the size less one (0, 1 or 3), 3 the direction (1 = IN), 4 a string
 * instruction, 5 REP prefixed, 6 the operand encoding (1 = immediate port), 31:16 the port.
 */
export function ioQualification(
  port: number,
  size: 1 | 2 | 4,
  input: boolean,
  string: boolean,
  rep: boolean,
  immediate: boolean,
): number {
  return (
    ((size - 1) |
      (input ? 1 << 3 : 0) |
      (string ? 1 << 4 : 0) |
      (rep ? 1 << 5 : 0) |
      (immediate ? 1 << 6 : 0) |
      ((port & 0xffff) << 16)) >>>
    0
  );
}

// ---- exit qualification for task switches (Table 28-2) ----
/** Bits 15:0 the TSS selector, 31:30 the source (0 CALL, 1 IRET, 2 JMP, 3 IDT task gate). */
export function taskSwitchQualification(selector: number, source: number): number {
  return ((selector & 0xffff) | ((source & 3) << 30)) >>> 0;
}

// ---- VM-exit instruction information (Tables 28-8 to 28-14) ----
/** Bits 9:7: address size 0 (16-bit), 1 (32-bit), 2 (64-bit). */
function addressSizeBits(asize: number): number {
  return (asize === 16 ? 0 : asize === 32 ? 1 : 2) << 7;
}

/**
 * The memory-operand part common to the formats with a ModRM memory operand: bits 1:0
 * scaling, 9:7 address size, 17:15 segment register, 21:18 index register and 22 "index
 * invalid", 26:23 base register and 27 "base invalid". A RIP-relative operand has neither
 * base nor index.
 */
export function memoryOperandInfo(i: Instr): number {
  const index = i.ripRel ? -1 : i.index;
  const base = i.ripRel ? -1 : i.base;
  return (
    ((index >= 0 ? i.scale & 3 : 0) |
      addressSizeBits(i.asize) |
      ((i.seg & 7) << 15) |
      (index >= 0 ? (index & 0xf) << 18 : 1 << 22) |
      (base >= 0 ? (base & 0xf) << 23 : 1 << 27)) >>>
    0
  );
}

/** Bit 10 of the LLDT/LTR/SLDT/STR and VMREAD/VMWRITE formats: a register operand. */
const INFO_REGISTER_OPERAND = 1 << 10;

/**
 * INS and OUTS (Table 28-8): bits 9:7 the address size, 17:15 the segment register (for
 * OUTS; INS always uses ES, whose number 0 is reported).
 */
export function stringIoInfo(i: Instr, outs: boolean): number {
  return (addressSizeBits(i.asize) | ((outs ? i.seg & 7 : 0) << 15)) >>> 0;
}

/** Descriptor-table instruction identities: bits 29:28 of Tables 28-10 and 28-11. */
export const enum DescriptorTableIdentity {
  SgdtOrSldt = 0,
  SidtOrStr = 1,
  LgdtOrLldt = 2,
  LidtOrLtr = 3,
}

/**
 * LGDT, LIDT, SGDT, SIDT (Table 28-10): the memory operand, bit 11 the operand size (1 =
 * 32-bit; undefined in 64-bit mode, reported as 1 there) and bits 29:28 the identity.
 */
export function gdtrIdtrInfo(i: Instr, identity: DescriptorTableIdentity): number {
  return (memoryOperandInfo(i) | (i.osize === 16 ? 0 : 1 << 11) | (identity << 28)) >>> 0;
}

/**
 * LLDT, LTR, SLDT, STR (Table 28-11): a register operand in bits 6:3 with bit 10 set, or
 * the memory operand; bits 29:28 the identity.
 */
export function ldtrTrInfo(i: Instr, identity: DescriptorTableIdentity): number {
  const operand = i.mod === 3 ? INFO_REGISTER_OPERAND | ((i.rm & 0xf) << 3) : memoryOperandInfo(i);
  return (operand | (identity << 28)) >>> 0;
}

/**
 * INVEPT, INVPCID, INVVPID (Table 28-9 layout for these): the memory operand and bits
 * 31:28 the register operand (reg2, the ModRM.reg register).
 */
export function invalidationInfo(i: Instr): number {
  return (memoryOperandInfo(i) | ((i.reg & 0xf) << 28)) >>> 0;
}

/** VMCLEAR, VMPTRLD, VMPTRST, VMXON (Table 28-13): the memory operand only. */
export function vmcsPointerInfo(i: Instr): number {
  return memoryOperandInfo(i);
}

/**
 * VMREAD and VMWRITE (Table 28-14): reg1 (the ModRM.rm register, with bit 10 set) or the
 * memory operand, and bits 31:28 reg2 (ModRM.reg).
 */
export function vmreadVmwriteInfo(i: Instr): number {
  const operand = i.mod === 3 ? INFO_REGISTER_OPERAND | ((i.rm & 0xf) << 3) : memoryOperandInfo(i);
  return (operand | ((i.reg & 0xf) << 28)) >>> 0;
}

/**
 * The exit qualification of instructions with a memory operand (LGDT .. STR, INVEPT,
 * INVPCID, INVVPID, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMXON; SDM 28.2.1): the
 * displacement field sign-extended to 64 bits, 0 for a register operand, and for a
 * RIP-relative operand the displacement plus the RIP of the next instruction. Returned as
 * [low, high] 32-bit halves; `nextRip` is the folded 48-bit RIP (mmu.ts, linearPage).
 */
export function displacementQualification(i: Instr, nextRip: number): [number, number] {
  if (i.mod === 3) return [0, 0];
  const disp = i.asize === 16 ? (i.disp << 16) >> 16 : i.disp | 0;
  if (!i.ripRel) return [disp, disp < 0 ? -1 : 0];
  return foldedToHalves((nextRip + disp + 2 ** 48) % 2 ** 48);
}

/** A folded 48-bit canonical address (mmu.ts) as sign-extended 64-bit halves. */
export function foldedToHalves(addr: number): [number, number] {
  const hi = Math.floor(addr / 0x100000000);
  return [(addr % 0x100000000) | 0, (hi << 16) >> 16];
}
