/**
 * Runs many cases in one snippet. Each case becomes a block: load RFLAGS and every general
 * register from immediates, the instruction under test, then store every register and
 * RFLAGS into the case's result record (cases.ts). A case that raises an exception ends
 * the run: its result is the exception, and the next run starts at the following block.
 * The same blocks run on both engines, so their environments match byte for byte.
 */
import { ORACLE_LAYOUT, type SnippetMode } from "../engine/kvm/oracle.js";
import {
  RECORD_FLAGS,
  SLOTS,
  WINDOW,
  recordAddress,
  windowAddress,
  type DiffCase,
} from "./cases.js";
import { GPR_NAMES, type SnippetRunner } from "./soft-oracle.js";

export interface CaseResult {
  /** "no result": the run ended without a record or an exception for this case. */
  outcome: "completed" | "exception" | "timeout" | "exit" | "no result";
  vector?: number;
  errorCode?: number;
  /** What stopped a run that neither completed nor raised an exception. */
  exit?: string;
  /** General registers: 16 in 64-bit mode, else the 8 legacy ones' low halves. */
  regs: bigint[];
  rflags: bigint;
  /** Where an exception was raised, and CR2 for #PF. */
  rip?: bigint;
  cr2?: bigint;
  /** The case's data window at the end. */
  window: Uint8Array;
}

/** Little-endian bytes of `v` (4 or 8 of them). */
function le(v: bigint, bytes: number): number[] {
  const lo = Number(BigInt.asUintN(32, v));
  const out = [lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24];
  if (bytes === 4) return out;
  const hi = Number(BigInt.asUintN(32, v >> 32n));
  return [...out, hi & 0xff, (hi >>> 8) & 0xff, (hi >>> 16) & 0xff, hi >>> 24];
}

/** Loads RFLAGS and the registers (SDM Vol. 2, POPF and MOV r, imm). */
function prologue(c: DiffCase, long: boolean): number[] {
  const rec = BigInt(recordAddress(c.slot) + RECORD_FLAGS);
  // The stack for POPF is the record's last register slot, overwritten later.
  const out = long ? [0x48, 0xc7, 0xc4, ...le(rec, 4)] : [0xbc, ...le(rec, 4)];
  out.push(0x68, ...le(BigInt(c.rflags), 4), 0x9d); // push imm32; popf
  const n = long ? 16 : 8;
  for (let r = 0; r < n; r++) {
    if (r === 4) continue;
    if (long) out.push(0x48 | (r >> 3), 0xb8 + (r & 7), ...le(c.regs[r], 8));
    else out.push(0xb8 + r, ...le(c.regs[r], 4));
  }
  out.push(...(long ? [0x48, 0xbc, ...le(c.regs[4], 8)] : [0xbc, ...le(c.regs[4], 4)]));
  return out;
}

/** Stores the registers, then RFLAGS, into the record (SDM Vol. 2, MOV and PUSHF). */
function epilogue(c: DiffCase, long: boolean): number[] {
  const rec = recordAddress(c.slot);
  const out: number[] = [];
  for (let r = 0; r < (long ? 16 : 8); r++) {
    const at = le(BigInt(rec + 8 * r), 4);
    // mov [disp32], r: a SIB with no base and no index in 64-bit mode (else RIP-relative).
    if (long) out.push(0x48 | ((r >> 3) << 2), 0x89, 0x04 | ((r & 7) << 3), 0x25, ...at);
    else out.push(0x89, 0x05 | (r << 3), ...at);
  }
  const top = BigInt(rec + RECORD_FLAGS + (long ? 8 : 4));
  out.push(...(long ? [0x48, 0xc7, 0xc4, ...le(top, 4)] : [0xbc, ...le(top, 4)]), 0x9c);
  return out;
}

export interface Assembled {
  code: Uint8Array;
  /** Per case: offset of its block, and of its instruction, in `code`. */
  blocks: number[];
  instructions: number[];
  data: Uint8Array;
}

/** The snippet for `cases` (one mode, distinct slots) and its initial data region. */
export function assemble(mode: SnippetMode, cases: readonly DiffCase[]): Assembled {
  const long = mode === "long64";
  const code = new Uint8Array(ORACLE_LAYOUT.data - ORACLE_LAYOUT.code - 1);
  let at = 0;
  const put = (bytes: ArrayLike<number>) => {
    code.set(bytes, at);
    at += bytes.length;
  };
  const blocks: number[] = [];
  const instructions: number[] = [];
  const data = new Uint8Array(recordAddress(SLOTS) - ORACLE_LAYOUT.data);
  for (const c of cases) {
    if (c.mode !== mode) throw new Error(`case ${c.index} is not a ${mode} case`);
    blocks.push(at);
    put(prologue(c, long));
    instructions.push(at);
    put(c.code);
    if (c.ripRel) {
      const next = ORACLE_LAYOUT.code + at - c.code.length + c.ripRel.end;
      code.set(le(BigInt(c.ripRel.target - next), 4), at - c.code.length + c.ripRel.at);
    }
    put(epilogue(c, long));
    data.set(c.window, windowAddress(c.slot) - ORACLE_LAYOUT.data);
  }
  return { code: code.slice(0, at), blocks, instructions, data };
}

/** The code bytes of a case's instruction as placed in a one-case snippet. */
export function placedCode(c: DiffCase): number[] {
  const a = assemble(c.mode, [c]);
  return Array.from(a.code.subarray(a.instructions[0], a.instructions[0] + c.code.length));
}

function recordOf(data: Uint8Array, c: DiffCase, long: boolean): CaseResult | null {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const rec = recordAddress(c.slot) - ORACLE_LAYOUT.data;
  const flags = long
    ? v.getBigUint64(rec + RECORD_FLAGS, true)
    : BigInt(v.getUint32(rec + RECORD_FLAGS, true));
  if (flags === 0n) return null; // PUSHF never stores 0: bit 1 is always set
  const regs = Array.from({ length: long ? 16 : 8 }, (_, r) =>
    long ? v.getBigUint64(rec + 8 * r, true) : BigInt(v.getUint32(rec + 8 * r, true)),
  );
  return { outcome: "completed", regs, rflags: flags, window: windowOf(data, c) };
}

function windowOf(data: Uint8Array, c: DiffCase): Uint8Array {
  const off = windowAddress(c.slot) - ORACLE_LAYOUT.data;
  return data.slice(off, off + WINDOW);
}

/**
 * Runs `cases` (distinct slots, any modes) on `runner`: one snippet per mode, restarted
 * after each case that does not complete. Results are in the order of `cases`.
 */
export function runCases(runner: SnippetRunner, cases: readonly DiffCase[]): CaseResult[] {
  const results: CaseResult[] = new Array(cases.length);
  const modes = [...new Set(cases.map((c) => c.mode))];
  for (const mode of modes) {
    const idx = cases.flatMap((c, k) => (c.mode === mode ? [k] : []));
    const mine = idx.map((k) => cases[k]);
    runMode(runner, mode, mine).forEach((r, j) => (results[idx[j]] = r));
  }
  return results;
}

function runMode(runner: SnippetRunner, mode: SnippetMode, cases: DiffCase[]): CaseResult[] {
  const long = mode === "long64";
  const asm = assemble(mode, cases);
  const results: CaseResult[] = [];
  let start = 0;
  while (start < cases.length) {
    const r = runner.run({
      mode,
      code: asm.code,
      data: asm.data,
      regs: { rip: BigInt(ORACLE_LAYOUT.code + asm.blocks[start]) },
      timeoutMs: 5000,
    });
    let j = start;
    for (; j < cases.length; j++) {
      const done = recordOf(r.data, cases[j], long);
      if (done === null) break;
      results[j] = done;
    }
    if (j === cases.length) break;
    const c = cases[j];
    const regs = GPR_NAMES.slice(0, long ? 16 : 8).map((n) =>
      long ? r.regs[n] : r.regs[n] & 0xffffffffn,
    );
    results[j] = {
      outcome: r.outcome === "completed" ? "no result" : r.outcome,
      vector: r.vector,
      errorCode: r.errorCode,
      exit: r.exit,
      regs,
      rflags: r.regs.rflags,
      rip: r.regs.rip,
      cr2: r.vector === 14 ? r.cr2 : undefined,
      window: windowOf(r.data, c),
    };
    start = j + 1;
  }
  return results;
}
