/**
 * The ALU routines (src/cpu/alu.ts), the lazy flags (src/cpu/flags.ts) and the multiply,
 * divide, bit-scan and bit-test handlers (src/cpu/exec/arith.ts) against the host CPU as
 * the oracle: a small C program (test/helpers/host-alu.c, built with the system gcc at
 * test time) runs each instruction on the host with EFLAGS preloaded and prints result and
 * EFLAGS. Flags the SDM leaves undefined for an instruction are masked out, since the host
 * may be an AMD processor whose undefined results differ from Intel's (SDM Vol. 2, each
 * instruction's "Flags Affected"; Vol. 1, Appendix A): the table in src/diff/masks.ts, which
 * the differential tests share.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import * as alu from "../src/cpu/alu.js";
import { ALU_OPS, SHIFT_OPS } from "../src/cpu/alu.js";
import { DE, EAX, EBX, ECX, EDX } from "../src/cpu/arch.js";
import { Fault } from "../src/cpu/fault.js";
import { AF, ARITH, CF, Flags, OF, PF, SF, ZF } from "../src/cpu/flags.js";
import { definedFlags, resultDefined } from "../src/diff/masks.js";
import { decodeAt, makeCpu } from "./helpers/cpu.js";

// ---------------------------------------------------------------- inputs

/** Deterministic PRNG (mulberry32), so every run checks the same cases. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
const random = rng(0x5eed1234);
/** A random value of random bit length, so small and large values are both common. */
const randomValue = (bits: number): number => (random() >>> (random() % bits)) & mask(bits);

const mask = (bits: number): number => (bits === 32 ? 0xffffffff : (1 << bits) - 1);

const EDGES = [
  0, 1, 2, 0x0f, 0x10, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x100, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff,
  0x10000, 0x55555555, 0xaaaaaaaa, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff,
];

/** Edge values truncated to the width, then `extra` random values. */
function values(bits: number, extra: number): number[] {
  const set = new Set(EDGES.map((v) => v & mask(bits)).map((v) => v >>> 0));
  for (let k = 0; k < extra; k++) set.add(randomValue(bits) >>> 0);
  return [...set];
}

/** Shift counts, before the CPU masks them to 5 bits (SDM Vol. 2, SAL/SAR/SHL/SHR). */
const COUNTS = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 255, 40, 100, 200, 250];
/** EFLAGS in: all status flags clear, or all set (so CF in is both 0 and 1, and flags an
 * instruction must leave alone are seen to stay). */
const FLAGS_IN = [0x002, 0x002 | ARITH];

interface Input {
  a: number;
  b: number;
  c: number;
  fin: number;
}

const input = (a: number, b: number, c: number, fin = 0x2): Input => ({ a, b, c, fin });

const product = <T, U>(xs: T[], ys: U[]): [T, U][] =>
  xs.flatMap((x) => ys.map((y): [T, U] => [x, y]));

// ---------------------------------------------------------------- running our side

type Outcome = { r: number; r2: number; flags: number } | "DE";

/** Runs an ALU routine on a fresh Flags loaded with `fin`. */
function viaFlags(fin: number, fn: (f: Flags) => number): Outcome {
  const f = new Flags();
  f.load(fin);
  const r = fn(f);
  return { r: r >>> 0, r2: 0, flags: f.get() & ARITH };
}

/** Operands as the routines take them: 8/16-bit non-negative, 32-bit as int32. */
const arg = (v: number, bits: number): number => (bits === 32 ? v | 0 : v);

const { cpu } = makeCpu();
const JUNK = 0xa5c3e1f7 | 0;

/**
 * Executes one register-form instruction (0x66-prefixed for 16-bit) through the decoder
 * and its handler with `regs` loaded over junk; checks that 8/16-bit forms leave every
 * register's bits 31:16 alone, and returns the registers named in `out`.
 */
function viaHandler(
  bits: number,
  bytes: number[],
  regs: Record<number, number>,
  fin: number,
  out: number[],
): Outcome {
  cpu.regs.fill(JUNK);
  // 8-bit forms get their operands in a 16-bit register (AX = AH:AL for DIV).
  const low = mask(bits === 8 ? 16 : bits);
  for (const [r, v] of Object.entries(regs)) cpu.regs[+r] = bits === 32 ? v : (JUNK & ~low) | v;
  cpu.flags.load(fin);
  const before = Int32Array.from(cpu.regs);
  try {
    const i = decodeAt(cpu, bits === 16 ? [0x66, ...bytes] : bytes);
    i.exec(cpu, i);
  } catch (e) {
    if (e instanceof Fault && e.vector === DE) return "DE";
    throw e;
  }
  if (bits < 32) {
    for (let r = 0; r < 8; r++) {
      assert.equal(
        cpu.regs[r] >>> 16,
        before[r] >>> 16,
        `a ${bits}-bit form changed bits 31:16 of r${r}`,
      );
    }
  }
  const read = (r: number): number => cpu.regs[r] & low;
  return {
    r: read(out[0]) >>> 0,
    r2: out.length > 1 ? read(out[1]) >>> 0 : 0,
    flags: cpu.flags.get() & ARITH,
  };
}

/** 8-bit multiply and divide use AX: split it like the host program does. */
function splitAx(o: Outcome, bits: number): Outcome {
  if (o === "DE" || bits !== 8) return o;
  return { ...o, r: o.r & 0xff, r2: o.r >>> 8 };
}

const imm = (v: number, n: number): number[] =>
  Array.from({ length: n }, (_, k) => (v >>> (8 * k)) & 0xff);

// ---------------------------------------------------------------- the operations

/** The host program's operations, in the order of its enum (host-alu.c). */
const HOST_OPS = (
  "add adc sub sbb and or xor cmp inc dec neg shl shr sar rol ror rcl rcr shld shrd mul imul1 " +
  "imul2 div idiv bsf bsr bt bts btr btc"
).split(" ");

interface OpTest {
  name: string;
  /** The host program's operation (HOST_OPS). */
  host: string;
  widths: number[];
  inputs: (bits: number) => Input[];
  /** Our result for one input. */
  run: (bits: number, x: Input) => Outcome;
  /** The flags the SDM defines for this input (the others are not compared). */
  defined: (bits: number, x: Input) => number;
  /** Whether the result (and result2) is architecturally defined for this input. */
  resultDefined?: (bits: number, x: Input) => boolean;
  /** The host runs with these operands (default: the same). */
  hostInput?: (bits: number, x: Input) => Input;
}

const ALL_WIDTHS = [8, 16, 32];
const WIDE = [16, 32];

function binaryInputs(bits: number): Input[] {
  const v = values(bits, 8);
  const pairs = product(v, v).map(([a, b]) => ({ a, b }));
  for (let k = 0; k < 300; k++) pairs.push({ a: randomValue(bits), b: randomValue(bits) });
  return pairs.flatMap(({ a, b }) => FLAGS_IN.map((fin) => ({ a, b, c: 0, fin })));
}

function unaryInputs(bits: number): Input[] {
  const v = values(bits, 150);
  return product(v, FLAGS_IN).map(([a, fin]) => ({ a, b: 0, c: 0, fin }));
}

function shiftInputs(bits: number): Input[] {
  const v = values(bits, 8);
  return product(product(v, COUNTS), FLAGS_IN).map(([[a, c], fin]) => ({ a, b: 0, c, fin }));
}

// The eight ALU operations (SDM Vol. 2, ADD/ADC/SUB/SBB/CMP: all six status flags;
// AND/OR/XOR: OF = CF = 0, AF undefined). ALU_OPS is indexed by the /r of group 1.
const ALU_NAMES = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
const aluTests: OpTest[] = ALU_NAMES.map((name, k) => ({
  name,
  host: name,
  widths: ALL_WIDTHS,
  inputs: binaryInputs,
  run: (bits, x) =>
    viaFlags(x.fin, (f) => {
      const r = ALU_OPS[k](f, arg(x.a, bits), arg(x.b, bits), bits);
      return name === "cmp" ? x.a : r; // CMP does not write its destination
    }),
  defined: (bits) => definedFlags(name, { bits }),
}));

// INC/DEC leave CF alone (SDM Vol. 2, INC); NEG sets CF unless the operand is 0 (NEG).
const unaryTests: OpTest[] = (
  [
    ["inc", alu.inc],
    ["dec", alu.dec],
    ["neg", alu.neg],
  ] as const
).map(([name, fn]) => ({
  name,
  host: name,
  widths: ALL_WIDTHS,
  inputs: unaryInputs,
  run: (bits, x) => viaFlags(x.fin, (f) => fn(f, arg(x.a, bits), bits)),
  defined: (bits) => definedFlags(name, { bits }),
}));

// Shifts (SDM Vol. 2, SAL/SAR/SHL/SHR): a masked count of 0 changes no flag; otherwise
// CF is the last bit out (undefined for SHL/SHR when count >= the width), OF is defined
// only for 1-bit shifts, AF is undefined. Rotates (RCL/RCR/ROL/ROR) change only CF and
// OF, OF again only for 1-bit rotates. SHIFT_OPS is indexed by the /r of group 2.
const SHIFT_NAMES = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"];
const shiftTests: OpTest[] = SHIFT_NAMES.map((name, reg) => ({
  name,
  host: name === "sal" ? "shl" : name,
  widths: ALL_WIDTHS,
  inputs: shiftInputs,
  run: (bits, x) => viaFlags(x.fin, (f) => SHIFT_OPS[reg](f, arg(x.a, bits), x.c & 31, bits)),
  defined: (bits, x) => definedFlags(name, { bits, count: x.c }),
}));

// SHLD/SHRD (SDM Vol. 2): count 0 changes nothing; a count above the width leaves result
// and flags undefined; otherwise CF is the last bit out, OF defined for 1-bit shifts only,
// SF/ZF/PF from the result, AF undefined.
const doubleTests: OpTest[] = (
  [
    ["shld", alu.shld],
    ["shrd", alu.shrd],
  ] as const
).map(([name, fn]) => ({
  name,
  host: name,
  widths: WIDE,
  inputs: (bits) => {
    const sources = [0, mask(bits), randomValue(bits), randomValue(bits)];
    const cases = product(product(values(bits, 6), sources), COUNTS);
    return cases.map(([[a, b], c], k) => input(a, b, c, FLAGS_IN[k & 1]));
  },
  run: (bits, x) => viaFlags(x.fin, (f) => fn(f, arg(x.a, bits), arg(x.b, bits), x.c & 31, bits)),
  defined: (bits, x) => definedFlags(name, { bits, count: x.c }),
  resultDefined: (bits, x) => resultDefined(name, { bits, count: x.c }),
}));

function mulInputs(bits: number): Input[] {
  const v = values(bits, 10);
  return product(v, v).map(([a, b], k) => input(a, b, 0, FLAGS_IN[k & 1]));
}

/** F6/F7 /reg with EBX (BL, BX) as the r/m operand. */
const group3 = (bits: number, reg: number): number[] => [
  bits === 8 ? 0xf6 : 0xf7,
  0xc3 | (reg << 3),
];

// MUL/IMUL: CF = OF = "the upper half is significant"; SF, ZF, AF, PF undefined.
const mulTests: OpTest[] = (
  [
    ["mul", "mul", 4, "mul"],
    ["imul (one operand)", "imul1", 5, "imul"],
  ] as const
).map(([name, host, reg, m]) => ({
  name,
  host,
  widths: ALL_WIDTHS,
  inputs: mulInputs,
  run: (bits, x) =>
    splitAx(
      viaHandler(bits, group3(bits, reg), { [EAX]: x.a, [EBX]: x.b }, x.fin, [EAX, EDX]),
      bits,
    ),
  defined: (bits) => definedFlags(m, { bits }),
}));

// IMUL r, r/m (0F AF) and IMUL r, r/m, imm (69 Iz, 6B Ib sign-extended): the truncated
// product; CF = OF = "the product did not fit". The host runs the two-operand form with
// the immediate in a register: the SDM defines all three forms by the same computation.
const sext8 = (v: number, bits: number): number => ((v << 24) >> 24) & mask(bits);
const imulTests: OpTest[] = [
  {
    name: "imul r, r/m",
    host: "imul2",
    widths: WIDE,
    inputs: mulInputs,
    run: (bits, x) =>
      viaHandler(bits, [0x0f, 0xaf, 0xc3], { [EAX]: x.a, [EBX]: x.b }, x.fin, [EAX]),
    defined: (bits) => definedFlags("imul", { bits }),
  },
  {
    name: "imul r, r/m, imm",
    host: "imul2",
    widths: WIDE,
    inputs: mulInputs,
    run: (bits, x) =>
      viaHandler(bits, [0x69, 0xc3, ...imm(x.b, bits / 8)], { [EBX]: x.a }, x.fin, [EAX]),
    defined: (bits) => definedFlags("imul", { bits }),
  },
  {
    name: "imul r, r/m, imm8",
    host: "imul2",
    widths: WIDE,
    inputs: (bits) => mulInputs(bits).map((x) => ({ ...x, b: x.b & 0xff })),
    run: (bits, x) => viaHandler(bits, [0x6b, 0xc3, x.b], { [EBX]: x.a }, x.fin, [EAX]),
    defined: (bits) => definedFlags("imul", { bits }),
    hostInput: (bits, x) => ({ ...x, b: sext8(x.b, bits) }),
  },
];

// DIV/IDIV (SDM Vol. 2): all flags undefined; #DE for a zero divisor or a quotient too
// large for the destination (the host reports #DE as SIGFPE).
const divTests: OpTest[] = (
  [
    ["div", "div", 6],
    ["idiv", "idiv", 7],
  ] as const
).map(([name, host, reg]) => ({
  name,
  host,
  widths: ALL_WIDTHS,
  inputs: (bits) => {
    const m = mask(bits);
    const highs = [0, 1, 2, m >>> 1, (m >>> 1) + 1, m, m - 1, randomValue(bits), randomValue(bits)];
    const lows = values(bits, 2).filter((_, k) => k % 3 === 0);
    return product(product(lows, highs), values(bits, 6)).map(([[a, c], b]) => input(a, b, c));
  },
  run: (bits, x) => {
    const op = group3(bits, reg);
    // AX = AH:AL is the 8-bit dividend; DX:AX or EDX:EAX otherwise.
    if (bits === 8)
      return splitAx(viaHandler(8, op, { [EAX]: (x.c << 8) | x.a, [EBX]: x.b }, x.fin, [EAX]), 8);
    return viaHandler(bits, op, { [EAX]: x.a, [EDX]: x.c, [EBX]: x.b }, x.fin, [EAX, EDX]);
  },
  defined: (bits) => definedFlags(name, { bits }),
}));

// BSF/BSR (SDM Vol. 2): ZF = (source == 0); the destination is undefined for a zero
// source; CF, OF, SF, AF, PF undefined.
const scanTests: OpTest[] = (
  [
    ["bsf", 0xbc],
    ["bsr", 0xbd],
  ] as const
).map(([name, op]) => ({
  name,
  host: name,
  widths: WIDE,
  inputs: (bits) => {
    const v = values(bits, 60);
    for (let k = 0; k < bits; k++) v.push((1 << k) >>> 0, (-1 << k) & mask(bits));
    return v.map((b, k) => input(0, b, k & 1 ? 0x1234 : randomValue(bits), FLAGS_IN[k & 1]));
  },
  run: (bits, x) => viaHandler(bits, [0x0f, op, 0xc3], { [EAX]: x.c, [EBX]: x.b }, x.fin, [EAX]),
  defined: (bits) => definedFlags(name, { bits }),
  resultDefined: (bits, x) => resultDefined(name, { bits, sourceZero: x.b === 0 }),
}));

// BT/BTS/BTR/BTC with a register bit base (SDM Vol. 2, BT): the offset is taken modulo
// the width; CF = the bit; ZF unaffected; OF, SF, AF, PF undefined. 0F BA /4-/7 take the
// offset from an imm8, the host from a register: the same computation.
const BIT_OFFSETS = [0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 0xffff, 0xffffffff, 0x80000000];
const IMM_OFFSETS = [0, 1, 5, 15, 16, 31, 32, 47, 200, 255];
const bitTests: OpTest[] = (
  [
    ["bt", 0xa3, 4],
    ["bts", 0xab, 5],
    ["btr", 0xb3, 6],
    ["btc", 0xbb, 7],
  ] as const
).flatMap(([name, op, reg]): OpTest[] => [
  {
    name: `${name} r/m, r`,
    host: name,
    widths: WIDE,
    inputs: (bits) =>
      product(values(bits, 4), BIT_OFFSETS).map(([a, b], k) =>
        input(a, b & mask(bits), 0, FLAGS_IN[k & 1]),
      ),
    run: (bits, x) => viaHandler(bits, [0x0f, op, 0xcb], { [EBX]: x.a, [ECX]: x.b }, x.fin, [EBX]),
    defined: (bits) => definedFlags(name, { bits }),
  },
  {
    name: `${name} r/m, imm8`,
    host: name,
    widths: WIDE,
    inputs: (bits) =>
      product(values(bits, 4), IMM_OFFSETS).map(([a, b], k) => input(a, b, 0, FLAGS_IN[k & 1])),
    run: (bits, x) =>
      viaHandler(bits, [0x0f, 0xba, 0xc3 | (reg << 3), x.b], { [EBX]: x.a }, x.fin, [EBX]),
    defined: (bits) => definedFlags(name, { bits }),
  },
]);

const TESTS: OpTest[] = [
  ...aluTests,
  ...unaryTests,
  ...shiftTests,
  ...doubleTests,
  ...mulTests,
  ...imulTests,
  ...divTests,
  ...scanTests,
  ...bitTests,
];

// ---------------------------------------------------------------- the host oracle

const HELPER = fileURLToPath(new URL("./helpers/host-alu.c", import.meta.url));

/** Why the host oracle cannot run here, or undefined when it can. */
function oracleMissing(): string | undefined {
  if (process.arch !== "x64") return `the host is ${process.arch}, not x86-64`;
  if (spawnSync("gcc", ["--version"]).status !== 0) return "gcc not found";
  return undefined;
}

/** Compiles the host program into a temporary directory and runs it over every case. */
function runHost(cases: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), "shv-alu-"));
  try {
    const exe = join(dir, "host-alu");
    const cc = spawnSync("gcc", ["-O1", "-mno-red-zone", "-o", exe, HELPER], { encoding: "utf8" });
    assert.equal(cc.status, 0, `gcc failed:\n${cc.stderr}`);
    const run = spawnSync(exe, [], { input: cases, encoding: "utf8", maxBuffer: 1 << 28 });
    assert.equal(run.status, 0, `host program failed: ${run.stderr}`);
    return run.stdout.trimEnd().split("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const FLAG_NAMES = Object.entries({ CF, PF, AF, ZF, SF, OF });
const flagNames = (f: number): string =>
  FLAG_NAMES.flatMap(([n, b]) => (f & b ? [n] : [])).join("|") || "-";
const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

describe("ALU against the host CPU", () => {
  const missing = oracleMissing();
  /** Per test and width: the inputs and the host's answer for each. */
  const groups = new Map<string, { inputs: Input[]; host: string[] }>();
  let total = 0;

  before(() => {
    if (missing) return;
    const lines: string[] = [];
    for (const t of TESTS) {
      for (const bits of t.widths) {
        const inputs = t.inputs(bits);
        groups.set(`${t.name}/${bits}`, { inputs, host: [] });
        for (const x of inputs) {
          const h = t.hostInput?.(bits, x) ?? x;
          const args = [h.a, h.b, h.c, h.fin].map((v) => (v >>> 0).toString(16));
          lines.push(`${HOST_OPS.indexOf(t.host)} ${bits} ${args.join(" ")}`);
        }
      }
    }
    const answers = runHost(`${lines.join("\n")}\n`);
    assert.equal(answers.length, lines.length, "one answer per case");
    let k = 0;
    for (const g of groups.values()) g.host = answers.slice(k, (k += g.inputs.length));
    total = lines.length;
  });

  after(() => {
    if (!missing) console.log(`ALU: ${total} cases checked against the host CPU`);
  });

  for (const t of TESTS) {
    for (const bits of t.widths) {
      it(`${t.name} (${bits}-bit)`, (ctx) => {
        if (missing) {
          ctx.skip(`${missing}: the host-CPU ALU oracle cannot run`);
          return;
        }
        const g = groups.get(`${t.name}/${bits}`)!;
        const bad: string[] = [];
        g.inputs.forEach((x, k) => {
          const ours = t.run(bits, x);
          const line = g.host[k];
          const what = `a=${hex(x.a)} b=${hex(x.b)} c=${hex(x.c)} flags in ${flagNames(x.fin)}`;
          if (line === "DE" || ours === "DE") {
            if (line !== "DE" || ours !== "DE")
              bad.push(`${what}: host ${line}, ours ${JSON.stringify(ours)}`);
            return;
          }
          const [r, r2, fl] = line.split(" ").map((s) => parseInt(s, 16));
          const defined = t.defined(bits, x);
          const diff = (fl ^ ours.flags) & defined;
          const resultOk =
            !(t.resultDefined?.(bits, x) ?? true) || (r === ours.r && r2 === ours.r2);
          if (diff || !resultOk) {
            bad.push(
              `${what}: host ${hex(r)}/${hex(r2)} ${flagNames(fl & defined)}, ` +
                `ours ${hex(ours.r)}/${hex(ours.r2)} ${flagNames(ours.flags & defined)}` +
                (diff ? ` (differ in ${flagNames(diff)})` : ""),
            );
          }
        });
        assert.equal(
          bad.length,
          0,
          `${bad.length} of ${g.inputs.length} cases differ:\n${bad.slice(0, 12).join("\n")}`,
        );
      });
    }
  }
});

// ---------------------------------------------------------------- direct unit tests

const U64 = (hi: number, lo: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
const split = (v: bigint): [number, number] => [
  Number(v & 0xffffffffn),
  Number((v >> 32n) & 0xffffffffn),
];

describe("64-bit multiply and divide helpers", () => {
  const edges = [
    0, 1, 2, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff,
  ];
  const pairs = product(edges, edges);
  for (let k = 0; k < 3000; k++) pairs.push([random(), random()]);

  it("mulu32 is the exact unsigned 64-bit product", () => {
    for (const [a, b] of pairs) {
      assert.deepEqual(alu.mulu32(a, b), split(BigInt(a) * BigInt(b)), `${hex(a)} * ${hex(b)}`);
    }
    assert.deepEqual(alu.mulu32(0xffffffff, 0xffffffff), [1, 0xfffffffe]);
  });

  it("muls32 is the exact signed 64-bit product, two's complement", () => {
    for (const [a, b] of pairs) {
      const want = split(BigInt.asUintN(64, BigInt(a | 0) * BigInt(b | 0)));
      assert.deepEqual(alu.muls32(a | 0, b | 0), want, `${a | 0} * ${b | 0}`);
    }
    assert.deepEqual(alu.muls32(-0x80000000, -0x80000000), [0, 0x40000000]);
    assert.deepEqual(alu.muls32(-1, 1), [0xffffffff, 0xffffffff]);
  });

  it("divu64by32 gives quotient and remainder whenever the quotient fits 32 bits", () => {
    const cases: [number, number, number][] = [
      [0, 0, 1],
      [0, 0xffffffff, 1],
      [0, 0xffffffff, 0xffffffff],
      [0xfffffffe, 0xffffffff, 0xffffffff], // the largest dividend with a 32-bit quotient
      [0x7fffffff, 0xffffffff, 0x80000000],
      [1, 0, 2],
      [0xffff, 0xffffffff, 0x10000],
    ];
    for (let k = 0; k < 3000; k++) {
      const d = random() >>> (random() % 32) || 1;
      cases.push([random() % d, random(), d]);
    }
    for (const [hi, lo, d] of cases) {
      const n = U64(hi, lo);
      const want = [Number(n / BigInt(d)), Number(n % BigInt(d))];
      assert.deepEqual(alu.divu64by32(hi, lo, d), want, `${hex(hi)}:${hex(lo)} / ${hex(d)}`);
    }
  });
});

describe("Flags.cond: the 16 condition codes (SDM Vol. 1, Appendix B)", () => {
  const names = "o no b ae e ne be a s ns p np l ge le g".split(" ");
  /** Each even code's condition from the flags; odd codes are the negation. */
  const expected = (w: number, cc: number): boolean => {
    const [cf, pf, zf, sf, of] = [CF, PF, ZF, SF, OF].map((b) => (w & b) !== 0);
    const r = [of, cf, zf, cf || zf, sf, pf, sf !== of, zf || sf !== of][cc >> 1];
    return cc & 1 ? !r : r;
  };

  it("evaluates every code for every combination of CF, PF, ZF, SF and OF", () => {
    for (let bitsSet = 0; bitsSet < 64; bitsSet++) {
      const w = [CF, PF, AF, ZF, SF, OF].reduce(
        (acc, b, k) => (bitsSet & (1 << k) ? acc | b : acc),
        2,
      );
      const f = new Flags();
      f.load(w);
      for (let cc = 0; cc < 16; cc++) {
        assert.equal(f.cond(cc), expected(w, cc), `j${names[cc]} with ${flagNames(w)}`);
      }
    }
  });

  it("after CMP a, b: the unsigned and signed comparisons, lazily and materialized", () => {
    for (const bits of ALL_WIDTHS) {
      const v = values(bits, 20);
      for (const [a, b] of product(v, v)) {
        const f = new Flags();
        alu.sub(f, arg(a, bits), arg(b, bits), bits);
        const sa = alu.sext(a, bits);
        const sb = alu.sext(b, bits);
        const diff = (a - b) & mask(bits);
        const parity = [...(diff & 0xff).toString(2)].filter((c) => c === "1").length % 2 === 0;
        const want = [
          sa - sb !== alu.sext(diff, bits), // O: the signed difference overflowed
          a < b, // B
          a === b, // E
          a <= b, // BE
          alu.sext(diff, bits) < 0, // S
          parity, // P: even parity of the result's low byte
          sa < sb, // L
          sa <= sb, // LE
        ];
        const materialized = new Flags();
        materialized.load(f.get());
        for (let cc = 0; cc < 16; cc++) {
          const w = cc & 1 ? !want[cc >> 1] : want[cc >> 1];
          const what = `cmp ${hex(a)}, ${hex(b)} (${bits}-bit): j${names[cc]}`;
          assert.equal(f.cond(cc), w, what);
          assert.equal(materialized.cond(cc), w, `${what}, after get()/load()`);
        }
      }
    }
  });
});

describe("lazy flags: every consumer sees what a materialized EFLAGS would give", () => {
  // Instructions that read flags (ADC, SBB, RCL, RCR, Jcc...) or keep some of them (INC,
  // DEC, rotates) must behave the same whether the previous operation's flags are still
  // lazy (result + carry vector of another width) or were written out with get()/load().
  type Producer = (f: Flags, a: number, b: number, bits: number) => number;
  const producers: [string, Producer][] = [
    ...ALU_NAMES.map((n, k): [string, Producer] => [
      n,
      (f, a, b, bits) => ALU_OPS[k](f, a, b, bits),
    ]),
    ["inc", (f, a, _b, bits) => alu.inc(f, a, bits)],
    ["dec", (f, a, _b, bits) => alu.dec(f, a, bits)],
    ["neg", (f, a, _b, bits) => alu.neg(f, a, bits)],
    ...SHIFT_NAMES.map((n, reg): [string, Producer] => [
      n,
      (f, a, b, w) => SHIFT_OPS[reg](f, a, b & 31, w),
    ]),
    ["shld", (f, a, b, bits) => (bits === 8 ? a : alu.shld(f, a, b, b & 15, bits))],
  ];
  const consumers: [string, Producer][] = [
    ["adc", (f, a, b, bits) => alu.adc(f, a, b, bits)],
    ["sbb", (f, a, b, bits) => alu.sbb(f, a, b, bits)],
    ["inc", (f, a, _b, bits) => alu.inc(f, a, bits)],
    ["dec", (f, a, _b, bits) => alu.dec(f, a, bits)],
    ...SHIFT_NAMES.map((n, reg): [string, Producer] => [
      n,
      (f, a, b, w) => SHIFT_OPS[reg](f, a, b % 3, w),
    ]),
  ];

  it("for every producer, consumer and pair of widths", () => {
    let checked = 0;
    for (const [pn, produce] of producers) {
      for (const [cn, consume] of consumers) {
        for (const [pb, cb] of product(ALL_WIDTHS, ALL_WIDTHS)) {
          for (let k = 0; k < 12; k++) {
            const [a, b, x, y] = [pb, pb, cb, cb].map((w) => arg(randomValue(w), w));
            const lazy = new Flags();
            produce(lazy, a, k < 6 ? b : 1, pb);
            const eager = new Flags();
            eager.load(lazy.get());
            for (let cc = 0; cc < 16; cc++)
              assert.equal(lazy.cond(cc), eager.cond(cc), `${pn}: cc ${cc}`);
            const r1 = consume(lazy, x, y, cb);
            const r2 = consume(eager, x, y, cb);
            const what = `${pn} (${pb}-bit) then ${cn} ${hex(x)}, ${hex(y)} (${cb}-bit)`;
            assert.equal(r1, r2, `${what}: result`);
            assert.equal(flagNames(lazy.get()), flagNames(eager.get()), `${what}: flags`);
            checked++;
          }
        }
      }
    }
    assert.ok(checked > 10000);
  });
});
