/**
 * The decoder in 64-bit mode (SDM Vol. 2, 2.2.1 REX prefixes, 2.2.1.6 RIP-relative
 * addressing, Appendix A.2.5 i64/o64/d64/f64), checked against iced-x86's 64-bit decoder:
 * every table row valid in 64-bit mode, with REX, 0x66 and 0x67 prefixes and every 64-bit
 * ModRM/SIB layout, must have iced-x86's length. Execution in 64-bit mode is not there yet;
 * these tests fix the decoding it will build on.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code, Decoder, DecoderOptions } from "iced-x86";
import { OPCODES } from "../src/cpu/opcodes.js";
import { SLOTS64 } from "../src/cpu/decode.js";
import { CODE, decodeAt, makeCpu } from "./helpers/cpu.js";

function icedLength(bytes: Uint8Array): { len: number; invalid: boolean } {
  const decoder = new Decoder(64, bytes, DecoderOptions.ForceReservedNop);
  decoder.ip = BigInt(CODE);
  const instr = decoder.decode();
  try {
    return { len: instr.length, invalid: instr.code === Code.INVALID };
  } finally {
    instr.free();
    decoder.free();
  }
}

function cpu64() {
  const { cpu } = makeCpu();
  cpu.mode64 = true; // set directly: the decoder is tested before IA-32e mode exists
  return cpu;
}

const D32 = [0x78, 0x56, 0x34, 0x12];
/** 64-bit ModRM layouts: mod, rm and the bytes after ModRM. */
const SHAPES = [
  { name: "reg", mod: 3, rm: 3, tail: [] as number[] },
  { name: "[rbx]", mod: 0, rm: 3, tail: [] },
  { name: "[rip+disp32]", mod: 0, rm: 5, tail: D32 },
  { name: "[rbx+rsi*4]", mod: 0, rm: 4, tail: [0xb3] },
  { name: "[rsi*4+disp32]", mod: 0, rm: 4, tail: [0xb5, ...D32] },
  { name: "[rsp]", mod: 0, rm: 4, tail: [0x24] },
  { name: "[rsi+disp8]", mod: 1, rm: 6, tail: [0x80] },
  { name: "[rax+disp32]", mod: 2, rm: 0, tail: D32 },
];
const PREFIXES = [[], [0x48], [0x4d], [0x41], [0x66], [0x67], [0x66, 0x48], [0xf3, 0x48]];
const FILLER = [0x11, 0x22, 0x33, 0x44, 0x55, 0x12, 0x13, 0x14, 0x90, 0x90, 0x90, 0x90];

function opcodeBytes(op: number): number[] {
  if (op >= 0x0f3800) return [0x0f, 0x38, op & 0xff];
  return op >= 0x0f00 ? [0x0f, op & 0xff] : [op];
}

describe("64-bit decoding against iced-x86", () => {
  test("every row valid in 64-bit mode has iced-x86's length with every prefix and layout", () => {
    const cpu = cpu64();
    let cases = 0;
    const wrong: string[] = [];
    for (const d of OPCODES) {
      if (d.mode64 === "i64") continue;
      const forms = d.reg !== undefined || d.mod3 !== undefined || /\b[EGMRCDS]/.test(d.o);
      const shapes = forms ? SHAPES : [SHAPES[0]];
      for (const shape of shapes) {
        if (d.mod3 === true && shape.mod !== 3) continue;
        if (d.mod3 === false && shape.mod === 3) continue;
        const reg = d.reg ?? 2;
        const rm = d.rm ?? shape.rm;
        if (d.rm !== undefined && shape.mod !== 3) continue;
        const modrm = forms ? [(shape.mod << 6) | (reg << 3) | rm, ...shape.tail] : [];
        for (const prefix of PREFIXES) {
          const bytes = Uint8Array.from([...prefix, ...opcodeBytes(d.op), ...modrm, ...FILLER]);
          const want = icedLength(bytes);
          if (want.invalid) continue; // e.g. a prefix combination iced-x86 rejects
          cases++;
          const got = decodeAt(cpu, bytes.subarray(0, 15));
          if (got.len !== want.len) {
            wrong.push(`${d.m} ${shape.name} [${prefix.join(",")}]: ${got.len} vs ${want.len}`);
          }
        }
      }
    }
    assert.ok(cases > 3000, `only ${cases} cases`);
    assert.deepEqual(wrong.slice(0, 20), []);
  });

  test("rows marked i64 are not decodable in 64-bit mode; they raise #UD there", () => {
    const cpu = cpu64();
    const i64 = OPCODES.filter((r) => r.mode64 === "i64");
    assert.ok(i64.length >= 20);
    for (const slot of SLOTS64) {
      for (const e of [slot.entry, ...(slot.forms ?? [])]) assert.notEqual(e?.mode64, "i64");
    }
    // e.g. PUSH ES, PUSHA, AAM, LES: the byte decodes to the undefined entry.
    for (const op of [0x06, 0x60, 0xd4, 0xc4]) {
      assert.equal(decodeAt(cpu, [op, 0xc0, 0x0a]).entry.m, "(bad)", op.toString(16));
    }
  });
});

describe("64-bit decoding details", () => {
  test("REX.W selects 64-bit operands; 0x66 16-bit; REX.R/X/B extend the registers", () => {
    const cpu = cpu64();
    let i = decodeAt(cpu, [0x4f, 0x8b, 0x44, 0x8c, 0x10]); // mov r8, [r12+r9*4+0x10]
    assert.deepEqual([i.osize, i.reg, i.base, i.index, i.scale, i.disp], [64, 8, 12, 9, 2, 0x10]);
    i = decodeAt(cpu, [0x89, 0xc8]); // mov eax, ecx
    assert.equal(i.osize, 32);
    i = decodeAt(cpu, [0x66, 0x89, 0xc8]); // mov ax, cx
    assert.equal(i.osize, 16);
    i = decodeAt(cpu, [0x41, 0x89, 0xc8]); // mov r8d, ecx
    assert.deepEqual([i.osize, i.rm, i.reg], [32, 8, 1]);
  });

  test("a REX prefix followed by a legacy prefix is ignored (SDM Vol. 2, 2.2.1)", () => {
    const cpu = cpu64();
    const i = decodeAt(cpu, [0x48, 0x66, 0x89, 0xc8]); // REX.W ignored: mov ax, cx
    assert.deepEqual([i.len, i.osize, i.rex], [4, 16, 0]);
  });

  test("mod 00 rm 101 is RIP-relative; with a SIB it is a plain disp32", () => {
    const cpu = cpu64();
    let i = decodeAt(cpu, [0x8b, 0x05, ...D32]); // mov eax, [rip+0x12345678]
    assert.deepEqual([i.ripRel, i.base, i.disp, i.len], [true, -1, 0x12345678, 6]);
    i = decodeAt(cpu, [0x8b, 0x04, 0x25, ...D32]); // mov eax, [0x12345678]
    assert.deepEqual([i.ripRel, i.base, i.index, i.len], [false, -1, -1, 7]);
    i = decodeAt(cpu, [0x41, 0x8b, 0x45, 0x00]); // mov eax, [r13+0]: r13 needs a disp8
    assert.deepEqual([i.ripRel, i.base, i.len], [false, 13, 4]);
  });

  test("MOV r64, imm64 and the 64-bit moffs forms carry 8-byte operands", () => {
    const cpu = cpu64();
    let i = decodeAt(cpu, [0x49, 0xbb, 1, 2, 3, 4, 5, 6, 7, 8]); // mov r11, 0x0807060504030201
    assert.deepEqual([i.len, i.rm, i.imm, i.immHi], [10, 11, 0x04030201, 0x08070605]);
    i = decodeAt(cpu, [0x48, 0xa1, 1, 2, 3, 4, 5, 6, 7, 8]); // mov rax, [moffs64]
    assert.deepEqual([i.len, i.disp, i.dispHi], [10, 0x04030201, 0x08070605]);
    i = decodeAt(cpu, [0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff]); // mov rax, -1 (imm32 sign-extended)
    assert.deepEqual([i.len, i.imm, i.immHi], [7, -1, -1]);
  });

  test("stack operations default to 64 bits (d64) and near branches are forced to 64 (f64)", () => {
    const cpu = cpu64();
    assert.equal(decodeAt(cpu, [0x50]).osize, 64); // push rax
    assert.equal(decodeAt(cpu, [0x66, 0x50]).osize, 16); // push ax
    assert.equal(decodeAt(cpu, [0x41, 0x57]).rm, 15); // push r15
    assert.equal(decodeAt(cpu, [0xff, 0x30]).osize, 64); // push qword [rax]
    assert.equal(decodeAt(cpu, [0xe8, ...D32]).osize, 64); // call rel32
    const j = decodeAt(cpu, [0x66, 0xe9, ...D32]); // jmp rel32: 0x66 has no effect
    assert.deepEqual([j.osize, j.len], [64, 6]);
    assert.equal(decodeAt(cpu, [0x0f, 0x20, 0xd8]).osize, 64); // mov rax, cr3
  });
});
