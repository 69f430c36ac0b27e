/**
 * A disassembler derived from the opcode table (opcodes.ts) and the decoder: it decodes
 * with the very code the CPU runs, then prints the table's mnemonic and operand notation
 * in Intel syntax. Used for fault reports and traces.
 */
import { REG32_NAMES, SEG_NAMES } from "./arch.js";
import { Instr, decode } from "./decode.js";
import type { Cpu } from "./cpu.js";

const REG16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
const REG8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"];
/** Byte registers 16-19: AH-BH (exec/operands.ts numbering). */
const REG8_HIGH = ["ah", "ch", "dh", "bh"];

/** Register names of every width, R8-R15 included (SDM Vol. 1, 3.4.1.1). */
function regName(r: number, bits: number): string {
  if (r >= 16) return REG8_HIGH[r - 16];
  if (r >= 8) return `r${r}${{ 8: "b", 16: "w", 32: "d", 64: "" }[bits] ?? ""}`;
  if (bits === 64) return `r${REG32_NAMES[r].slice(1)}`;
  return bits === 32 ? REG32_NAMES[r] : bits === 16 ? REG16[r] : REG8[r];
}

function hex(v: number): string {
  return `0x${(v >>> 0).toString(16)}`;
}

function memOperand(i: Instr, bits: number): string {
  const reg = (r: number): string => (i.asize === 16 ? REG16[r] : regName(r, i.asize));
  const parts: string[] = [];
  if (i.ripRel) parts.push("rip");
  if (i.base >= 0) parts.push(reg(i.base));
  if (i.index >= 0) parts.push(i.scale ? `${reg(i.index)}*${1 << i.scale}` : reg(i.index));
  let s = parts.join("+");
  if (i.disp !== 0 || parts.length === 0) {
    const d = i.asize === 32 ? i.disp | 0 : i.disp;
    s += parts.length === 0 ? hex(d) : d < 0 ? `-${hex(-d)}` : `+${hex(d)}`;
  }
  const size = { 8: "byte", 16: "word", 32: "dword", 64: "qword", 80: "tbyte" }[bits] ?? "";
  const seg = i.segOverride >= 0 ? `${SEG_NAMES[i.segOverride]}:` : "";
  return `${size ? `${size} ptr ` : ""}${seg}[${s}]`;
}

/** Formats operand `n` (from 0), given in SDM notation. */
function operand(spec: string, i: Instr, next: number, n: number): string {
  const v = i.osize;
  const widthOf = (t: string): number => ({ b: 8, w: 16, d: 32, v, z: v, q: 64 })[t] ?? v;
  // Literal registers first: their first letters would read as operand kinds.
  if (spec === "eAX") return regName(0, v);
  if (/^(AL|CL|DX|AX|[CDEFGS]S|1)$/.test(spec)) return spec.toLowerCase();
  if (spec === "ST") return "st"; // x87 ST(0) and ST(i) (opcodes-fpu.ts)
  if (spec === "STi") return `st(${i.rm & 7})`;
  const k = spec[0];
  const t = spec.slice(1);
  switch (k) {
    case "E":
      return i.mod === 3 ? regName(i.rm, widthOf(t)) : memOperand(i, widthOf(t));
    case "M":
      return memOperand(i, ({ w: 16, d: 32, q: 64, t: 80 } as Record<string, number>)[t] ?? 0);
    case "G":
      return regName(i.reg, widthOf(t));
    case "R":
      return regName(i.rm, 32);
    case "Z":
      return regName(i.rm, widthOf(t));
    case "C":
      return `cr${i.reg}`;
    case "D":
      return `dr${i.reg}`;
    case "S":
      return SEG_NAMES[i.reg] ?? "?";
    case "I":
      if (n === 1 && i.entry.o === "Iw,Ib") return hex(i.imm2); // ENTER's nesting level
      return hex(t === "b" ? i.imm & 0xff : i.imm);
    case "J":
      return hex((next + (t === "b" ? (i.imm << 24) >> 24 : i.imm)) >>> 0);
    case "A":
      return `${hex(i.imm2)}:${hex(i.imm)}`;
    case "O":
      return memOperand(i, widthOf(t));
    case "X":
    case "Y":
      return "";
    default:
      return spec.toLowerCase();
  }
}

/** Resolves the operand-size variants of mnemonics (movsv -> movsd, cwd -> cdq, ...). */
function mnemonic(i: Instr): string {
  const m = i.entry.m;
  const big = i.osize === 32;
  const rename: Record<string, [string, string]> = {
    cbw: ["cbw", "cwde"],
    cwd: ["cwd", "cdq"],
    pusha: ["pusha", "pushad"],
    popa: ["popa", "popad"],
    pushf: ["pushf", "pushfd"],
    popf: ["popf", "popfd"],
    iret: ["iret", "iretd"],
  };
  if (rename[m]) return rename[m][big ? 1 : 0];
  if (/^(movs|cmps|stos|lods|scas|ins|outs)v$/.test(m)) return m.slice(0, -1) + (big ? "d" : "w");
  return m;
}

/** Formats a decoded instruction; `next` is the offset of the following instruction. */
export function formatInstr(i: Instr, next: number): string {
  const rep = i.rep === 0xf3 ? "rep " : i.rep === 0xf2 ? "repne " : "";
  const lock = i.lock ? "lock " : "";
  const ops = i.entry.o
    ? i.entry.o
        .split(",")
        .map((s, n) => operand(s, i, next, n))
        .filter((s) => s !== "")
        .join(", ")
    : "";
  return `${lock}${rep}${mnemonic(i)}${ops ? ` ${ops}` : ""}`;
}

/**
 * Disassembles the instruction at CS:`eip` of `cpu` without changing its state. Raises
 * the fetch's fault (e.g. #PF) if the bytes cannot be read.
 */
export function disassemble(cpu: Cpu, eip: number): string {
  const saved = [cpu.eip, cpu.nextEip];
  const i = new Instr();
  try {
    cpu.eip = eip;
    decode(cpu, i);
    return formatInstr(i, cpu.nextEip);
  } finally {
    [cpu.eip, cpu.nextEip] = saved;
  }
}
