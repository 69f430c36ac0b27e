/**
 * A differential test case and where it lives in the oracle's VM. Cases run in batches
 * (batch.ts): each has a slot, which gives it a data window (its memory operands, stack
 * and strings) and a result record in the oracle's data region.
 */
import { ORACLE_LAYOUT, type SnippetMode } from "../engine/kvm/oracle.js";
import type { MaskFacts } from "./masks.js";

export type Width = 8 | 16 | 32 | 64;

/** Cases per batch: the number of slots. */
export const SLOTS = 1024;
/** Bytes of data window per slot. */
export const WINDOW = 256;
/** A result record: 16 registers and RFLAGS, 8 bytes each. */
export const RECORD = 17 * 8;
/** Offset of RFLAGS in a result record; nonzero once the case has completed. */
export const RECORD_FLAGS = 16 * 8;

export const windowAddress = (slot: number): number => ORACLE_LAYOUT.data + slot * WINDOW;
export const recordAddress = (slot: number): number =>
  ORACLE_LAYOUT.data + SLOTS * WINDOW + slot * RECORD;

if (recordAddress(SLOTS) > ORACLE_LAYOUT.data + ORACLE_LAYOUT.dataSize) {
  throw new Error("differential test layout: the slots do not fit the data region");
}

/** Where an instruction's destination is, for results the SDM leaves undefined. */
export type Destination =
  | { kind: "reg"; reg: number; bits: number; high8: boolean }
  | { kind: "mem"; addr: number; size: number };

export interface DiffCase {
  /** The run's seed and the case's number in it: all it takes to regenerate the case. */
  seed: number;
  index: number;
  mode: SnippetMode;
  /** Instruction class, for the tallies (alu, shift, div, string...). */
  cls: string;
  /** The opcode-table row, as `mnemonic operands` in SDM notation. */
  form: string;
  /** The mnemonic, which keys the mask table. */
  m: string;
  /** Operand width in bits. */
  bits: Width;
  /** Machine code: the instruction (and, for branches, the instruction it may skip). */
  code: number[];
  /**
   * A RIP-relative disp32 at `code[at]`, relative to the end of the instruction at
   * `code[end]`, that must reach the absolute address `target`.
   */
  ripRel?: { at: number; end: number; target: number };
  /** Initial general registers, RAX..R15 (64-bit mode) or EAX..EDI (low halves). */
  regs: bigint[];
  /** Initial RFLAGS. */
  rflags: number;
  slot: number;
  /** Initial contents of the slot's data window. */
  window: Uint8Array;
  /** What the mask rules need to know (width, shift count, zero source). */
  facts: MaskFacts;
  destination?: Destination;
  /** The memory operand, if the instruction has one. */
  memory?: { addr: number; size: number };
}

/** Register names by number and width, for reports. */
export function regName(r: number, bits = 64): string {
  const base = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
  if (r >= 8) return `r${r}`;
  return bits === 64 ? `r${base[r]}` : `e${base[r]}`;
}
