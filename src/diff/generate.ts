/**
 * The case generator. Instruction forms come from the opcode table (opcodes.ts): every row
 * of the integer instructions below, valid in the mode, at every operand width it has. A
 * row's SDM operand notation decides the encoding (ModRM register or memory, immediates,
 * implied registers); a small hook per instruction class then shapes the inputs where
 * random values would miss the interesting cases (shift counts 0 to width+1, dividends
 * with and without #DE, short string counts, stacks and strings inside the data window).
 * Case `index` of seed `seed` is always the same case.
 */
import type { SnippetMode } from "../engine/kvm/oracle.js";
import { OPCODES, type OpDef } from "../cpu/opcodes.js";
import { Builder, type EOperand } from "./builder.js";
import { SLOTS, type DiffCase, type Width } from "./cases.js";
import { Rng } from "./rng.js";

const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test"];
const SHIFTS = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"];
const STRINGS = ["movs", "cmps", "stos", "lods", "scas"];

/** Instruction classes: the tallies' unit, and which rows the generator takes. */
const CLASSES: [string, (r: OpDef) => boolean][] = [
  ["alu", (r) => ALU.includes(r.m)],
  ["incdec", (r) => r.m === "inc" || r.m === "dec"],
  ["negnot", (r) => r.m === "neg" || r.m === "not"],
  ["shift", (r) => SHIFTS.includes(r.m)],
  ["shiftd", (r) => r.m === "shld" || r.m === "shrd"],
  ["mul", (r) => r.m === "mul" || r.m === "imul"],
  ["div", (r) => r.m === "div" || r.m === "idiv"],
  ["bittest", (r) => ["bt", "bts", "btr", "btc"].includes(r.m)],
  ["bitscan", (r) => r.m === "bsf" || r.m === "bsr"],
  ["bswap", (r) => r.m === "bswap"],
  ["extend", (r) => ["movzx", "movsx", "movsxd"].includes(r.m)],
  ["mov", (r) => r.m === "mov" && !/S|C|D/.test(r.o.replace(/DX/, ""))],
  ["cmov", (r) => r.m.startsWith("cmov")],
  ["setcc", (r) => r.m.startsWith("set")],
  ["exchange", (r) => ["xchg", "xadd", "cmpxchg", "cmpxchg8b"].includes(r.m)],
  ["convert", (r) => r.m === "cbw" || r.m === "cwd"],
  ["lea", (r) => r.m === "lea"],
  [
    "stack",
    (r) =>
      (["push", "pop"].includes(r.m) && !/^[CDEFGS]S$/.test(r.o)) ||
      ["pushf", "popf", "enter", "leave"].includes(r.m),
  ],
  ["flags", (r) => ["lahf", "sahf", "cmc", "clc", "stc", "cld", "std"].includes(r.m)],
  ["string", (r) => STRINGS.some((s) => r.m === `${s}b` || r.m === `${s}v`)],
  ["bcd", (r) => ["daa", "das", "aaa", "aas", "aam", "aad"].includes(r.m)],
  [
    "branch",
    (r) =>
      (/^j/.test(r.m) && /^J[bz]$/.test(r.o)) ||
      (r.m === "call" && r.o === "Jz") ||
      r.m.startsWith("loop") ||
      r.m === "jecxz",
  ],
  ["xlat", (r) => r.m === "xlat"],
];

export interface Form {
  row: OpDef;
  cls: string;
  /** `mnemonic operands`, for reports. */
  name: string;
  ops: string[];
  widths: Width[];
}

/** The operand widths a row has in a mode (SDM Vol. 2, Appendix A.2.5 for d64/f64). */
function widthsOf(row: OpDef, long: boolean): Width[] {
  const sized =
    /\b([EGZXYO]v|eAX|Iz|Iv|Zd|Ed|M)\b/.test(row.o) ||
    row.size64 === "d64" || // PUSH imm8, PUSHF, POPF, ENTER, LEAVE
    ["cbw", "cwd"].includes(row.m);
  if (row.m === "cmpxchg8b") return long ? [32, 64] : [32]; // REX.W: CMPXCHG16B
  // No 0x66 on near branches: Intel ignores it in 64-bit mode, AMD truncates RIP to 16 bits.
  if (/^J[bz]$/.test(row.o)) return [long ? 64 : 32];
  if (!sized) return [/\b[EGZ]b\b|AL|Ob|Ib/.test(row.o) || /b$/.test(row.m) ? 8 : 32];
  if (row.size64 === "d64") return long ? [16, 64] : [16, 32];
  return long ? [16, 32, 64] : [16, 32];
}

function formsFor(mode: SnippetMode): Form[] {
  const long = mode === "long64";
  const forms: Form[] = [];
  for (const row of OPCODES) {
    if (row.mode64 === (long ? "i64" : "o64")) continue;
    const cls = CLASSES.find(([, take]) => take(row))?.[0];
    if (cls === undefined) continue;
    if (row.m === "xchg" && row.op === 0x90) continue; // NOP
    const ops = row.o === "" ? [] : row.o.split(",");
    forms.push({ row, cls, name: `${row.m} ${row.o}`.trim(), ops, widths: widthsOf(row, long) });
  }
  return forms;
}

export const MODES: readonly SnippetMode[] = ["long64", "compat32", "prot32"];
const FORMS = new Map(MODES.map((m) => [m, formsFor(m)]));
/** Class weights: ALU forms and shifts have the most flag behaviour to cover. */
const WEIGHT: Record<string, number> = { alu: 3, shift: 2, mul: 2, div: 2 };
/** Per mode, the classes with their weights and forms. */
const DRAW = new Map(
  MODES.map((mode) => {
    const byClass = new Map<string, Form[]>();
    for (const f of FORMS.get(mode)!) byClass.set(f.cls, [...(byClass.get(f.cls) ?? []), f]);
    return [mode, [...byClass].map(([cls, fs]) => ({ weight: WEIGHT[cls] ?? 1, forms: fs }))];
  }),
);

/** A form: a class by weight (so classes with few rows get cases too), then a row. */
function drawForm(rng: Rng, mode: SnippetMode): Form {
  const classes = DRAW.get(mode)!;
  let pick = rng.int(classes.reduce((a, c) => a + c.weight, 0));
  for (const c of classes) {
    pick -= c.weight;
    if (pick < 0) return rng.pick(c.forms);
  }
  throw new Error("unreachable");
}

/** Registers an instruction uses implicitly: no memory operand may be addressed through them. */
function implicitRegs(f: Form): number[] {
  const m = f.row.m;
  if (f.cls === "mul" && f.ops.length === 1) return [0, 2];
  if (f.cls === "div" || f.cls === "convert") return [0, 2];
  if (f.cls === "string") return [0, 1, 6, 7];
  if (f.cls === "stack" || m === "call") return [4, 5];
  if (m === "cmpxchg8b") return [0, 1, 2, 3];
  if (m === "cmpxchg" || f.cls === "bcd" || f.cls === "flags") return [0];
  if (m === "xlat") return [0, 3];
  if (f.ops.includes("CL") || m.startsWith("loop") || m === "jecxz") return [1];
  return [];
}

/** What a hook needs: the builder, the form, the E operand, the G register. */
interface Ctx {
  b: Builder;
  f: Form;
  bits: Width;
  e?: EOperand;
  eBits: number;
  g: number;
  c: DiffCase;
}

/** Encodes the row's operands generically (SDM Vol. 2, A.2.1 and A.2.2 notation). */
function encodeOperands(b: Builder, f: Form, bits: Width): Omit<Ctx, "c"> {
  const rng = b.rng;
  const row = f.row;
  const avoid = new Set(implicitRegs(f));
  const width = (t: string): number =>
    ({ b: 8, w: 16, d: 32, q: 64, v: bits, z: Math.min(bits, 32) })[t] ?? bits;
  let e: EOperand | undefined;
  let eBits = bits as number;
  let g = -1;
  let zReg = -1;
  for (const spec of f.ops) {
    const k = spec[0];
    const t = spec.slice(1);
    if (spec === "eAX" || /^(AL|CL|1)$/.test(spec) || /^[XY]/.test(spec)) continue;
    if (k === "E" || k === "M") {
      eBits = k === "M" ? (row.m === "cmpxchg8b" ? bits * 2 : bits) : width(t);
      const memOnly = k === "M" || row.mod3 === false;
      if (memOnly || (row.mod3 !== true && rng.chance(0.5))) {
        const size = Math.max(eBits / 8, 1);
        // LEA computes any address; elsewhere a few non-canonical ones (#GP, or #SS for
        // a stack reference: SDM Vol. 3A, 6.15).
        const far = row.m === "lea" ? rng.chance(0.5) : b.long && rng.chance(0.03) ? "nc" : false;
        // CMPXCHG16B needs a 16-byte aligned operand (else #GP): mostly aligned.
        const aligned = size === 16 && rng.chance(0.7) ? b.windowTarget(16) & ~15 : -1;
        const at =
          far === "nc"
            ? nonCanonical(rng)
            : far
              ? rng.bits(b.regBits)
              : aligned >= 0
                ? BigInt(aligned)
                : undefined;
        const addr = b.memory(size, avoid, at, row.m === "lea" || at === undefined);
        if (far === "nc") b.nonCanonical = at;
        e = { kind: "mem", addr, size };
        if (!far) b.writeMem(addr, size, rng.value(size * 8));
        b.maybeSegmentOverride(0.1);
      } else {
        const r = b.anyReg();
        b.setERegister(r);
        e = { kind: "reg", reg: r, high8: false };
      }
    } else if (k === "G") {
      g = b.anyReg(f.cls === "bittest" && e?.kind === "mem" ? usedByAddress(b) : new Set());
      b.setG(g);
    } else if (k === "Z") {
      zReg = (row.op & 7) | (b.long && rng.chance(0.5) ? 8 : 0);
      b.setZ(zReg);
    } else if (k === "I") {
      const n =
        t === "b" || t === "bs" ? 1 : t === "w" ? 2 : t === "z" ? Math.min(bits, 32) / 8 : bits / 8;
      b.immediate(rng.value(n * 8), n);
    } else if (k === "O") {
      // moffs: an absolute address of the address size (8 bytes in 64-bit mode).
      const size = width(t) / 8;
      const a32 = b.long && rng.chance(0.2);
      const nc = b.long && !a32 && rng.chance(0.05);
      const addr = nc ? nonCanonical(rng) : BigInt(b.windowTarget(size));
      if (!nc) b.writeMem(Number(addr), size, rng.value(size * 8));
      e = { kind: "mem", addr: Number(addr), size };
      if (a32) b.prefixes.push(0x67);
      b.immediate(addr, b.long && !a32 ? 8 : 4);
      b.maybeSegmentOverride(0.2);
    } else if (k === "J") {
      b.tail = [0x8d, 0x5b, 0x01]; // lea ebx, [rbx+1]: skipped when the branch is taken
      b.immediate(BigInt(b.tail.length), t === "b" ? 1 : 4);
    }
  }
  if (zReg >= 0) g = zReg;
  b.finishRex();
  // Byte registers 4-7 are AH-BH without a REX prefix (SDM Vol. 2, 2.2.1.2).
  if (e?.kind === "reg" && eBits === 8) e.high8 = b.high8(e.reg);
  return { b, f, bits, e, eBits, g };
}

/** A non-canonical address: bits 63:47 not all equal (SDM Vol. 1, 3.3.7.1). */
function nonCanonical(rng: Rng): bigint {
  const low = rng.bits(47);
  return rng.chance(0.5) ? (1n << 47n) | low : (0xfffen << 48n) | low | (rng.bits(1) << 47n);
}

/** The registers the memory operand's address was built from (none for other forms). */
function usedByAddress(b: Builder): Set<number> {
  const used = new Set<number>();
  if (b.mod === 3 || b.mod < 0) return used;
  const rexB = b.rex & 1 ? 8 : 0;
  const rexX = b.rex & 2 ? 8 : 0;
  if (b.rm === 4 && b.sib >= 0) {
    const index = ((b.sib >> 3) & 7) | rexX;
    if (index !== 4) used.add(index);
    if ((b.sib & 7) !== 5 || b.mod !== 0) used.add((b.sib & 7) | rexB);
  } else if (!(b.rm === 5 && b.mod === 0)) used.add(b.rm | rexB);
  return used;
}

// ---------------------------------------------------------------- per-class hooks

/** A shift or rotate count: 0 to width+1 mostly, any byte sometimes. */
function shiftCount(x: Ctx): void {
  const { b, bits, f } = x;
  const count = b.rng.chance(0.75) ? b.rng.int(bits + 2) : b.rng.int(256);
  if (f.ops.includes("CL")) b.setReg(1, BigInt(count), 8);
  else if (f.ops.includes("Ib")) b.imm = [count];
  x.c.facts.count = f.ops.includes("1") ? 1 : count;
  if (f.cls === "shiftd") x.c.destination = b.destination(x.e!, bits);
}

function divide(x: Ctx): void {
  const { b, bits, e } = x;
  // A divisor in rAX or rDX (or AH) is part of the dividend too: leave those random.
  if (e === undefined || (e.kind === "reg" && [0, 2].includes(e.high8 ? e.reg - 4 : e.reg))) return;
  if (b.rng.chance(0.3)) return; // random dividends: mostly #DE
  const divisor = b.readE(e, bits);
  // The high half of the dividend: AH for 8-bit operands, else rDX.
  const setHigh = (v: bigint): void =>
    bits === 8 ? b.setReg(0, (v << 8n) | b.getReg(0, 8), 16) : b.setReg(2, v, bits);
  const low = b.getReg(0, bits);
  if (x.f.row.m === "div") {
    if (divisor !== 0n) setHigh(b.rng.bits(bits) % divisor);
  } else {
    const neg = (low >> BigInt(bits - 1)) & 1n;
    setHigh(neg ? (1n << BigInt(bits)) - 1n : 0n);
  }
}

function bitScan(x: Ctx): void {
  const { b, bits, e } = x;
  if (b.rng.chance(0.15)) b.writeE(e!, bits, 0n);
  x.c.facts.sourceZero = b.readE(e!, bits) === 0n;
  x.c.destination = { kind: "reg", reg: x.g, bits, high8: false };
}

/** A register bit offset into a memory bit string stays within the window (+-48 bytes). */
function bitTest(x: Ctx): void {
  const { b, bits } = x;
  if (x.e?.kind === "mem" && x.g >= 0) {
    b.setReg(x.g, BigInt.asUintN(bits, BigInt(b.rng.int(768) - 384)), bits);
  }
}

function exchange(x: Ctx): void {
  const { b, bits, e, f } = x;
  if (f.row.m === "cmpxchg" && b.rng.chance(0.5)) b.setReg(0, b.readE(e!, bits), bits);
  if (f.row.m === "cmpxchg8b" && e?.kind === "mem" && b.inWindow(e.addr, bits / 4)) {
    const half = bits; // 32 (CMPXCHG8B) or 64 (CMPXCHG16B)
    if (b.rng.chance(0.5)) {
      b.setReg(0, b.readMem(e.addr, half / 8), half);
      b.setReg(2, b.readMem(e.addr + half / 8, half / 8), half);
    }
  }
}

/** The stack pointer (and frame pointer) inside the window. */
function stack(x: Ctx): void {
  const { b, bits, f } = x;
  const rng = b.rng;
  const sp = b.windowBase + 96 + rng.int(128);
  b.setAddressReg(4, BigInt(sp), b.regBits);
  b.setAddressReg(5, BigInt(b.windowBase + 96 + rng.int(128)), b.regBits);
  if (f.row.m === "popf") {
    // Any flags but TF, whose single-step trap would end the case on the next instruction,
    // and AC (see Builder: the host may check alignment under its own CR0.AM).
    b.writeMem(sp, bits / 8, b.rng.bits(bits) & ~0x40100n);
  }
  if (f.row.m === "enter") b.imm = [rng.int(48), 0, rng.pick([0, 1, 2, 3, rng.int(4)])];
}

/** Short counts, both directions, rSI/rDI in the window, and equal runs for CMPS/SCAS. */
function string(x: Ctx): void {
  const { b, bits, f } = x;
  const rng = b.rng;
  const m = f.row.m.slice(0, 4);
  const rep = rng.pick([0, 0xf3, 0xf3, m === "cmps" || m === "scas" ? 0xf2 : 0xf3]);
  if (rep) b.prefixes.push(rep);
  const a32 = b.long && rng.chance(0.15);
  if (a32) b.prefixes.push(0x67);
  const abits = b.long && !a32 ? 64 : 32;
  const src = b.windowBase + 64 + rng.int(128);
  const dst = b.windowBase + 64 + rng.int(128);
  b.setAddressReg(6, BigInt(src), abits);
  b.setAddressReg(7, BigInt(dst), abits);
  if (rep) b.setAddressReg(1, BigInt(rng.pick([0, 1, 2, 3, 4, 5, 6])), abits);
  b.maybeSegmentOverride(0.1);
  if (rng.chance(0.5)) {
    // Equal elements, so that REPE keeps going (CMPS: source = destination; SCAS: = rAX).
    const size = bits / 8;
    for (let k = -48; k < 48; k += size) {
      const v = m === "scas" ? b.getReg(0, bits) : b.readMem(src + k, size);
      b.writeMem(dst + k, size, v);
    }
  }
}

function branch(x: Ctx): void {
  const { b, f } = x;
  const rng = b.rng;
  if (f.row.m === "call") b.setAddressReg(4, BigInt(b.windowBase + 96 + rng.int(128)), b.regBits);
  if (f.row.m.startsWith("loop") || f.row.m === "jecxz") {
    const a16 = rng.chance(0.2); // the counter is rCX by address size (CX, ECX, RCX)
    if (a16) b.prefixes.push(0x67);
    b.setReg(1, rng.pick([0n, 1n, 2n, rng.value(b.regBits)]), a16 ? (b.long ? 32 : 16) : b.regBits);
  }
}

function xlat(x: Ctx): void {
  const { b } = x;
  const a32 = b.long && b.rng.chance(0.2);
  if (a32) b.prefixes.push(0x67);
  b.setAddressReg(3, BigInt(b.windowBase), a32 || !b.long ? 32 : 64);
  b.maybeSegmentOverride(0.1);
}

const HOOKS: Record<string, (x: Ctx) => void> = {
  shift: shiftCount,
  shiftd: shiftCount,
  div: divide,
  bitscan: bitScan,
  bittest: bitTest,
  exchange,
  stack,
  string,
  branch,
  xlat,
  bswap: (x) => {
    x.c.destination = { kind: "reg", reg: x.g, bits: x.bits, high8: false };
  },
};

/** Opcode bytes of a table opcode (00-FF, 0F xx, 0F 38 xx). */
function opcodeBytes(op: number): number[] {
  if (op >= 0x0f3800) return [0x0f, 0x38, op & 0xff];
  return op >= 0x0f00 ? [0x0f, op & 0xff] : [op];
}

export interface GenerateOptions {
  modes?: readonly SnippetMode[];
}

/** Case `index` of the run seeded `seed`. */
export function generateCase(seed: number, index: number, opts: GenerateOptions = {}): DiffCase {
  const rng = Rng.forCase(seed, index);
  const mode = rng.pick(opts.modes ?? MODES);
  const f = drawForm(rng, mode);
  const bits = rng.pick(f.widths);
  return buildCase(rng, seed, index, mode, f, bits);
}

/** One case of form `f` at width `bits`. */
export function buildCase(
  rng: Rng,
  seed: number,
  index: number,
  mode: SnippetMode,
  f: Form,
  bits: Width,
): DiffCase {
  const b = new Builder(rng, mode, index % SLOTS, bits);
  const row = f.row;
  b.opcode = opcodeBytes(row.op);
  if (row.reg !== undefined) b.regField = row.reg;
  // Operand size: 0x66 for 16 bits, REX.W for 64 (not needed where 64 is the default).
  if (bits === 16) b.prefixes.push(0x66);
  if (bits === 64 && row.size64 === undefined) b.setW();
  // LOCK on the forms that allow it (with a register operand: #UD), and rarely elsewhere.
  if (rng.chance(row.lock ? 0.15 : 0.01)) b.prefixes.push(0xf0);
  const x = encodeOperands(b, f, bits);
  const c: DiffCase = {
    seed,
    index,
    mode,
    cls: f.cls,
    form: f.name,
    m: row.m.replace(/^(movs|cmps|stos|lods|scas)[bv]$/, "$1"),
    bits,
    code: [],
    regs: b.regs,
    rflags: b.rflags,
    slot: b.slot,
    window: b.window,
    facts: { bits },
  };
  if (x.e?.kind === "mem") c.memory = { addr: x.e.addr, size: x.e.size };
  c.facts.stackBaseOverride =
    b.long &&
    (b.memBase === 4 || b.memBase === 5) &&
    b.prefixes.some((p) => [0x26, 0x2e, 0x3e].includes(p));
  c.facts.stackOverrideOtherBase =
    b.long && b.memBase !== 4 && b.memBase !== 5 && b.prefixes.includes(0x36);
  c.facts.misalignedNonCanonical =
    row.m === "cmpxchg8b" && bits === 64 && (b.nonCanonical ?? 0n) % 16n !== 0n;
  HOOKS[f.cls]?.({ ...x, c });
  const { code, ripRel } = b.bytes();
  c.code = code;
  c.ripRel = ripRel;
  c.rflags = b.rflags;
  return c;
}
