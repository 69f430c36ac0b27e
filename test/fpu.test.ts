/**
 * The x87 FPU of the soft CPU (src/cpu/fpu.ts, exec/x87*.ts) with hand-assembled snippets:
 * the reset and FNINIT states, the status and control words, the register stack and its
 * tags, stack faults and their masked responses, #MF and #NM, the FNSTENV/FNSAVE layouts
 * (SDM Vol. 1, 8.1.10), loads, stores, arithmetic, comparisons and rounding.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CR0_EM, CR0_MP, CR0_NE, CR0_PE, CR0_TS, CS, MF, NM } from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { CF, PF, ZF } from "../src/cpu/flags.js";
import { CODE, makeCpu } from "./helpers/cpu.js";
import { at, dv, exec, hexAt, vectorOf } from "./helpers/x87.js";

const DATA = 0x2000;
const OUT = 0x3000;
const FNINIT = [0xdb, 0xe3];
const FLD1 = [0xd9, 0xe8];
const FLDZ = [0xd9, 0xee];
const fldQ = (a: number): number[] => [0xdd, 0x05, ...at(a)]; // fld qword [a]
const fstpQ = (a: number): number[] => [0xdd, 0x1d, ...at(a)]; // fstp qword [a]
const fldcw = (a: number): number[] => [0xd9, 0x2d, ...at(a)];
const FNSTSW_AX = [0xdf, 0xe0];
const fnstenv = (a: number): number[] => [0xd9, 0x35, ...at(a)];

function cpuWith(values: Record<number, number> = {}): Cpu {
  const { cpu } = makeCpu();
  for (const [a, v] of Object.entries(values)) dv(cpu).setFloat64(Number(a), v, true);
  return cpu;
}

/** Runs `bytes`, which must not fault, and returns AX after a trailing FNSTSW AX. */
function statusAfter(cpu: Cpu, bytes: number[]): number {
  assert.equal(exec(cpu, [...bytes, ...FNSTSW_AX]), undefined);
  return cpu.regs[0] & 0xffff;
}

const word = (cpu: Cpu, a: number): number => dv(cpu).getUint16(a, true);
const f64 = (cpu: Cpu, a: number): number => dv(cpu).getFloat64(a, true);

describe("x87 state: reset, FNINIT, status and control words", () => {
  it("powers up as SDM Vol. 3A Table 10-1 says: FCW 0040H, FSW 0, tag word 5555H", () => {
    const cpu = cpuWith();
    assert.equal(exec(cpu, fnstenv(OUT)), undefined);
    assert.equal(word(cpu, OUT), 0x0040);
    assert.equal(word(cpu, OUT + 4), 0);
    assert.equal(word(cpu, OUT + 8), 0x5555, "every register valid, holding +0.0");
    assert.equal(cpu.fpu.mxcsr, 0x1f80);
    assert.equal(cpu.fpu.xcr0, 1);
  });

  it("FNINIT: FCW 037FH, FSW 0, all tags empty; FNSTCW and FNSTSW m16 store them", () => {
    const cpu = cpuWith();
    const code = [
      ...FNINIT,
      0xd9,
      0x3d,
      ...at(OUT),
      0xdd,
      0x3d,
      ...at(OUT + 2),
      ...fnstenv(OUT + 16),
    ];
    assert.equal(exec(cpu, code), undefined);
    assert.equal(word(cpu, OUT), 0x037f);
    assert.equal(word(cpu, OUT + 2), 0);
    assert.equal(word(cpu, OUT + 16 + 8), 0xffff);
  });

  it("FLDCW keeps the defined bits and bit 6; INIT leaves the x87 state alone", () => {
    const cpu = cpuWith();
    dv(cpu).setUint16(DATA, 0xf2b2, true);
    assert.equal(exec(cpu, [...FNINIT, ...fldcw(DATA), ...FLD1]), undefined);
    assert.equal(cpu.fpu.fcw, 0x1272, "bits 15:13 and 7 are reserved, bit 6 reads as 1");
    cpu.init();
    cpu.run(1); // INIT resets the processor, which then runs from the reset vector
    assert.equal(cpu.cr0 & CR0_PE, 0, "INIT happened");
    assert.equal(cpu.fpu.fcw, 0x1272);
    assert.equal(cpu.fpu.top, 7, "the stack survives INIT");
  });

  it("FNSTSW AX reports TOP, the condition codes and the flags", () => {
    const cpu = cpuWith();
    assert.equal(statusAfter(cpu, [...FNINIT, ...FLD1, ...FLDZ]), 6 << 11);
  });
});

describe("x87 register stack", () => {
  it("pushes and pops with tags: valid, zero, empty (SDM Vol. 1, 8.1.7)", () => {
    const cpu = cpuWith();
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...FLDZ, ...fnstenv(OUT)]), undefined);
    // R7 holds 1.0 (valid, 00), R6 holds 0.0 (zero, 01), the rest are empty.
    assert.equal(word(cpu, OUT + 8), 0x1fff);
    assert.equal(word(cpu, OUT + 4) >> 11, 6);
    assert.equal(exec(cpu, [0xdd, 0xd8, ...fnstenv(OUT)]), undefined); // fstp st(0)
    assert.equal(word(cpu, OUT + 8), 0x3fff);
    assert.equal(cpu.fpu.top, 7);
  });

  it("FXCH, FINCSTP, FDECSTP and FFREE", () => {
    const cpu = cpuWith();
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...FLDZ, 0xd9, 0xc9]), undefined);
    assert.equal(cpu.fpu.toNumber(0), 1);
    assert.equal(cpu.fpu.toNumber(1), 0);
    assert.equal(exec(cpu, [0xd9, 0xf7]), undefined); // fincstp
    assert.equal(cpu.fpu.top, 7);
    assert.equal(cpu.fpu.isEmpty(7), false, "FINCSTP leaves the tags");
    assert.equal(exec(cpu, [0xd9, 0xf6, 0xdd, 0xc0]), undefined); // fdecstp; ffree st(0)
    assert.equal(cpu.fpu.top, 6);
    assert.equal(cpu.fpu.isEmpty(0), true);
  });

  it("underflow, masked: IE and SF with C1 = 0, the QNaN indefinite as the result", () => {
    const cpu = cpuWith();
    const sw = statusAfter(cpu, [...FNINIT, 0xd8, 0xc1]); // fadd st, st(1) on an empty stack
    assert.equal(sw & 0x3ff, 0x41, "SF and IE, C1 clear, no ES (masked)");
    const p = cpu.fpu.phys(0);
    assert.deepEqual(
      [cpu.fpu.se[p], cpu.fpu.sigHi[p] >>> 0, cpu.fpu.sigLo[p]],
      [0xffff, 0xc0000000, 0],
    );
    // Storing an empty ST(0) stores the indefinite of the memory format.
    assert.equal(exec(cpu, [...FNINIT, ...fstpQ(OUT)]), undefined);
    assert.equal(hexAt(cpu, OUT, 8), "00 00 00 00 00 00 f8 ff");
    assert.equal(exec(cpu, [...FNINIT, 0xdb, 0x1d, ...at(OUT)]), undefined); // fistp dword
    assert.equal(dv(cpu).getUint32(OUT, true), 0x80000000, "the integer indefinite");
  });

  it("overflow, masked: IE, SF and C1 = 1; the push happens with the indefinite", () => {
    const cpu = cpuWith();
    const code = [...FNINIT, ...Array.from({ length: 9 }, () => FLD1).flat()];
    const sw = statusAfter(cpu, code);
    assert.equal(sw & 0x3ff, 0x241);
    assert.equal(cpu.fpu.top, 7);
    assert.equal(cpu.fpu.classify(0), 0x0100, "ST(0) is a NaN");
  });

  it("unmasked: nothing changes, ES and B are set, the next waiting instruction raises #MF", () => {
    const cpu = cpuWith();
    cpu.cr0 |= CR0_NE;
    dv(cpu).setUint16(DATA, 0x037e, true); // IM clear
    assert.equal(exec(cpu, [...FNINIT, ...fldcw(DATA), ...FLD1, 0xd8, 0xc1]), undefined);
    assert.equal(cpu.fpu.top, 7, "no result written, nothing popped");
    assert.equal(cpu.fpu.toNumber(0), 1);
    assert.equal(statusAfter(cpu, []), 0x80c1 | (7 << 11), "B, ES, SF, IE");
    const f = exec(cpu, [...FLD1]);
    assert.equal(f?.vector, MF);
    assert.equal(cpu.eip, CODE, "#MF is reported by the next waiting instruction, before it runs");
    assert.equal(vectorOf(cpu, [0x9b]), MF, "WAIT reports it too");
    assert.equal(vectorOf(cpu, [0xd9, 0x3d, ...at(OUT)]), -1, "FNSTCW does not wait");
    assert.equal(vectorOf(cpu, [0xdb, 0xe2, 0x9b, ...FLD1]), -1, "FNCLEX clears it");
  });

  it("FLDCW that unmasks a raised flag makes it pending; with CR0.NE = 0 nothing faults", () => {
    const cpu = cpuWith();
    cpu.cr0 |= CR0_NE;
    dv(cpu).setUint16(DATA, 0x037e, true);
    assert.equal(exec(cpu, [...FNINIT, 0xd8, 0xc1, ...fldcw(DATA)]), undefined);
    assert.equal(vectorOf(cpu, FLD1), MF);
    cpu.cr0 &= ~CR0_NE;
    // FERR#/IRQ 13 is not wired: the instruction runs as with IGNNE# (x87-common.ts).
    assert.equal(vectorOf(cpu, FLD1), -1);
    assert.ok(cpu.fpu.pending);
  });
});

describe("CR0.EM, TS and MP (SDM Vol. 3A, 2.5, Table 2-2)", () => {
  const cases: [string, number, number[], number][] = [
    ["EM: x87 instructions raise #NM", CR0_EM, FLD1, NM],
    ["EM: even the no-wait ones", CR0_EM, FNINIT, NM],
    ["TS: x87 instructions raise #NM", CR0_TS, FLD1, NM],
    ["TS without MP: WAIT runs", CR0_TS, [0x9b], -1],
    ["TS with MP: WAIT raises #NM", CR0_TS | CR0_MP, [0x9b], NM],
    ["EM without TS: WAIT runs", CR0_EM | CR0_MP, [0x9b], -1],
  ];
  for (const [name, bits, code, vector] of cases) {
    it(name, () => {
      const cpu = cpuWith();
      cpu.cr0 |= bits;
      assert.equal(vectorOf(cpu, code), vector);
    });
  }
});

describe("x87 data transfer, arithmetic and comparison", () => {
  it("FLD/FMULP/FDIVP/FSUBR/FSTP through memory", () => {
    const cpu = cpuWith({ [DATA]: 1.5, [DATA + 8]: 2.25 });
    const load2 = [...FNINIT, ...fldQ(DATA), ...fldQ(DATA + 8)];
    assert.equal(statusAfter(cpu, [...load2, 0xde, 0xc9, ...fstpQ(OUT)]) & 0x3fff, 0);
    assert.equal(f64(cpu, OUT), 3.375);
    assert.equal(exec(cpu, [...load2, 0xde, 0xf9, ...fstpQ(OUT)]), undefined); // fdivp
    assert.equal(f64(cpu, OUT), 1.5 / 2.25);
    assert.equal(exec(cpu, [...load2, 0xd8, 0xe9, ...fstpQ(OUT)]), undefined); // fsubr st,st(1)
    assert.equal(f64(cpu, OUT), 1.5 - 2.25);
    assert.equal(exec(cpu, [...load2, 0xdc, 0xe9, 0xdd, 0xd8, ...fstpQ(OUT)]), undefined);
    assert.equal(f64(cpu, OUT), 1.5 - 2.25, "fsub st(1), st: ST(1) - ST(0)");
    assert.equal(
      exec(cpu, [...FNINIT, ...fldQ(DATA), 0xdc, 0x05, ...at(DATA + 8), ...fstpQ(OUT)]),
      undefined,
    );
    assert.equal(f64(cpu, OUT), 3.75, "fadd qword [m]");
  });

  it("division by zero (ZE: infinity), 0/0 and sqrt(-1) (IE: the indefinite)", () => {
    const cpu = cpuWith();
    assert.equal(statusAfter(cpu, [...FNINIT, ...FLDZ, ...FLD1, 0xd8, 0xf1]) & 0x3f, 0x04);
    assert.equal(cpu.fpu.toNumber(0), Infinity);
    assert.equal(statusAfter(cpu, [...FNINIT, ...FLDZ, ...FLDZ, 0xd8, 0xf1]) & 0x3f, 0x01);
    assert.equal(cpu.fpu.se[cpu.fpu.phys(0)], 0xffff);
    assert.equal(statusAfter(cpu, [...FNINIT, ...FLD1, 0xd9, 0xe0, 0xd9, 0xfa]) & 0x3f, 0x01);
    assert.equal(cpu.fpu.sigHi[cpu.fpu.phys(0)] >>> 0, 0xc0000000);
    dv(cpu).setFloat64(DATA, 2.25, true);
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xd9, 0xfa]), undefined);
    assert.equal(cpu.fpu.toNumber(0), 1.5);
  });

  it("FCOM, FCOMPP, FCOMI, FUCOMIP, FTST: condition codes and EFLAGS", () => {
    const cpu = cpuWith({ [DATA]: 1.5, [DATA + 8]: 2.25 });
    const load = [...FNINIT, ...fldQ(DATA + 8), ...fldQ(DATA)]; // ST(0) 1.5, ST(1) 2.25
    assert.equal(statusAfter(cpu, [...load, 0xd8, 0xd1]) & 0x4700, 0x0100, "less: C0");
    assert.equal(statusAfter(cpu, [...load, 0xde, 0xd9]) & 0x7f00, 0x0100 | (0 << 11));
    assert.equal(cpu.fpu.top, 0, "FCOMPP popped twice");
    assert.equal(exec(cpu, [...load, 0xdb, 0xf1]), undefined); // fcomi st, st(1)
    assert.equal(cpu.flags.get() & (CF | ZF | PF), CF);
    assert.equal(exec(cpu, [...load, 0xd9, 0xc9, 0xdb, 0xf1]), undefined); // swapped
    assert.equal(cpu.flags.get() & (CF | ZF | PF), 0);
    assert.equal(exec(cpu, [...load, 0xd9, 0xc0, 0xdf, 0xe9]), undefined); // fld st(0); fucomip
    assert.equal(cpu.flags.get() & (CF | ZF | PF), ZF);
    assert.equal(cpu.fpu.top, 6, "FUCOMIP popped");
    // A QNaN: FUCOMI says unordered quietly, FCOMI raises IE.
    const nan = [...FLDZ, ...FLDZ, 0xd8, 0xf1]; // 0/0: the indefinite (a QNaN)
    assert.equal(statusAfter(cpu, [...FNINIT, ...nan, 0xdb, 0xe9]) & 1, 1, "IE from 0/0");
    assert.equal(cpu.flags.get() & (CF | ZF | PF), CF | ZF | PF);
    assert.equal(statusAfter(cpu, [...FNINIT, ...nan, 0xdb, 0xe2, 0xdb, 0xe9]) & 1, 0);
    assert.equal(statusAfter(cpu, [...FNINIT, ...nan, 0xdb, 0xe2, 0xdb, 0xf1]) & 1, 1);
    assert.equal(statusAfter(cpu, [...FNINIT, ...FLD1, 0xd9, 0xe0, 0xd9, 0xe4]) & 0x4700, 0x0100);
  });

  it("FXAM classes and sign", () => {
    const cpu = cpuWith();
    const cc = (code: number[]): number =>
      statusAfter(cpu, [...FNINIT, ...code, 0xd9, 0xe5]) & 0x4700;
    assert.equal(cc([]), 0x4100, "empty");
    assert.equal(cc(FLDZ), 0x4000, "zero");
    assert.equal(cc(FLD1), 0x0400, "normal");
    assert.equal(cc([...FLD1, 0xd9, 0xe0]), 0x0600, "negative normal");
    assert.equal(cc([...FLDZ, ...FLD1, 0xd8, 0xf1]), 0x0500, "infinity");
    assert.equal(cc([...FLDZ, ...FLDZ, 0xd8, 0xf1]), 0x0300, "negative NaN (the indefinite)");
  });

  it("FIST/FISTP honour FCW.RC; out of range is IE with the integer indefinite", () => {
    const cpu = cpuWith({ [DATA]: 2.5, [DATA + 8]: -2.5, [DATA + 16]: 1e10 });
    const fist = (value: number, rc: number): number => {
      dv(cpu).setUint16(DATA + 32, 0x037f | (rc << 10), true);
      const code = [...FNINIT, ...fldcw(DATA + 32), ...fldQ(value), 0xdb, 0x1d, ...at(OUT)];
      assert.equal(exec(cpu, code), undefined);
      return dv(cpu).getInt32(OUT, true);
    };
    assert.deepEqual(
      [0, 1, 2, 3].map((rc) => fist(DATA, rc)),
      [2, 2, 3, 2],
    );
    assert.deepEqual(
      [0, 1, 2, 3].map((rc) => fist(DATA + 8, rc)),
      [-2, -3, -2, -2],
    );
    assert.equal(fist(DATA + 16, 0), -0x80000000);
    assert.equal(cpu.fpu.statusWord & 1, 1);
  });

  it("FILD and FISTP m64 are exact over the whole int64 range", () => {
    const cpu = cpuWith();
    for (const v of [0x7fffffffffffffffn, -0x8000000000000000n, -1n, 0x123456789abcdefn]) {
      dv(cpu).setBigInt64(DATA, v, true);
      const code = [...FNINIT, 0xdf, 0x2d, ...at(DATA), 0xdf, 0x3d, ...at(OUT)];
      assert.equal(exec(cpu, code), undefined);
      assert.equal(dv(cpu).getBigInt64(OUT, true), v);
      assert.equal(cpu.fpu.statusWord & 0x3f, 0, `${v}: no exception`);
    }
  });

  it("FRNDINT rounds by RC, exactly, keeping the sign of zero", () => {
    const cpu = cpuWith({ [DATA]: 2.5, [DATA + 8]: 3.5, [DATA + 16]: -0.3, [DATA + 24]: 2.1 });
    const rnd = (a: number, rc = 0): number => {
      dv(cpu).setUint16(DATA + 32, 0x037f | (rc << 10), true);
      assert.equal(exec(cpu, [...FNINIT, ...fldcw(DATA + 32), ...fldQ(a), 0xd9, 0xfc]), undefined);
      return cpu.fpu.toNumber(0);
    };
    assert.equal(rnd(DATA), 2);
    assert.equal(rnd(DATA + 8), 4);
    assert.ok(Object.is(rnd(DATA + 16), -0));
    assert.equal(rnd(DATA + 24, 2), 3);
    assert.equal(cpu.fpu.statusWord & 0x20, 0x20, "PE: the result is inexact");
  });

  it("FLD/FSTP m80 copy any bit pattern exactly (SNaN, unnormal, denormal)", () => {
    const cpu = cpuWith();
    for (const pattern of [
      "ef be ad de 78 56 34 92 ff 7f",
      "01 00 00 00 78 56 34 12 00 40",
      "05 00 00 00 00 00 00 00 00 80",
      "35 c2 68 21 a2 da 0f c9 00 40",
    ]) {
      cpu.mem.ram.set(
        pattern.split(" ").map((h) => parseInt(h, 16)),
        DATA,
      );
      const sw = statusAfter(cpu, [...FNINIT, 0xdb, 0x2d, ...at(DATA), 0xdb, 0x3d, ...at(OUT)]);
      assert.equal(hexAt(cpu, OUT, 10), pattern);
      assert.equal(sw & 0x3f, 0, "no exception for m80 loads and stores");
    }
  });

  it("FLD m32 of an SNaN raises IE and loads it quieted; FST m32 keeps the payload", () => {
    const cpu = cpuWith();
    dv(cpu).setUint32(DATA, 0x7f800001, true);
    const sw = statusAfter(cpu, [...FNINIT, 0xd9, 0x05, ...at(DATA), 0xd9, 0x1d, ...at(OUT)]);
    assert.equal(sw & 1, 1);
    assert.equal(dv(cpu).getUint32(OUT, true), 0x7fc00001);
  });

  it("the constants are the 80-bit values rounded by RC (SDM Vol. 1, 8.3.8)", () => {
    const cpu = cpuWith();
    const bits = (code: number[], rc = 0): string => {
      dv(cpu).setUint16(DATA, 0x037f | (rc << 10), true);
      assert.equal(
        exec(cpu, [...FNINIT, ...fldcw(DATA), ...code, 0xdb, 0x3d, ...at(OUT)]),
        undefined,
      );
      return hexAt(cpu, OUT, 10);
    };
    assert.equal(bits([0xd9, 0xeb]), "35 c2 68 21 a2 da 0f c9 00 40", "pi");
    assert.equal(bits([0xd9, 0xeb], 1), "34 c2 68 21 a2 da 0f c9 00 40", "pi rounded down");
    assert.equal(bits([0xd9, 0xed]), "ac 79 cf d1 f7 17 72 b1 fe 3f", "ln 2");
    assert.equal(bits([0xd9, 0xe9], 2), "ff 8a 1b cd 4b 78 9a d4 00 40", "log2(10) rounded up");
    assert.equal(bits(FLD1), "00 00 00 00 00 00 00 80 ff 3f");
  });
});

describe("x87 integer operands and conditional moves", () => {
  it("FIADD/FIMUL/FISUBR/FIDIV with m16 and m32 integers, FICOM", () => {
    const cpu = cpuWith({ [DATA]: 10 });
    dv(cpu).setInt16(DATA + 8, -3, true);
    dv(cpu).setInt32(DATA + 12, 4, true);
    const run = (op: number[]): number => {
      assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), ...op, ...fstpQ(OUT)]), undefined);
      return f64(cpu, OUT);
    };
    assert.equal(run([0xde, 0x05, ...at(DATA + 8)]), 7, "fiadd word: 10 + -3");
    assert.equal(run([0xda, 0x0d, ...at(DATA + 12)]), 40, "fimul dword: 10 * 4");
    assert.equal(run([0xde, 0x2d, ...at(DATA + 8)]), -13, "fisubr word: -3 - 10");
    assert.equal(run([0xda, 0x35, ...at(DATA + 12)]), 2.5, "fidiv dword: 10 / 4");
    const sw = statusAfter(cpu, [...FNINIT, ...fldQ(DATA), 0xde, 0x15, ...at(DATA + 8)]);
    assert.equal(sw & 0x4500, 0, "ficom: 10 > -3");
  });

  it("FIST m16: the range is -32768..32767, else IE and the indefinite 8000H", () => {
    const cpu = cpuWith({ [DATA]: 32767.4, [DATA + 8]: -32768, [DATA + 16]: 32767.5 });
    const fist16 = (a: number): number => {
      assert.equal(exec(cpu, [...FNINIT, ...fldQ(a), 0xdf, 0x15, ...at(OUT)]), undefined);
      return dv(cpu).getInt16(OUT, true);
    };
    assert.equal(fist16(DATA), 32767);
    assert.equal(fist16(DATA + 8), -32768);
    assert.equal(cpu.fpu.statusWord & 1, 0);
    assert.equal(fist16(DATA + 16), -32768, "32767.5 rounds to 32768: out of range");
    assert.equal(cpu.fpu.statusWord & 1, 1);
  });

  it("FCMOVcc copies ST(i) to ST(0) by the EFLAGS condition", () => {
    const cpu = cpuWith();
    // stc / clc, then fldz; fld1 (ST0 1, ST1 0), then fcmovb st, st(1) (DA C1)
    assert.equal(exec(cpu, [0xf9, ...FNINIT, ...FLDZ, ...FLD1, 0xda, 0xc1]), undefined);
    assert.equal(cpu.fpu.toNumber(0), 0, "CF = 1: moved");
    assert.equal(exec(cpu, [0xf8, ...FNINIT, ...FLDZ, ...FLD1, 0xda, 0xc1]), undefined);
    assert.equal(cpu.fpu.toNumber(0), 1, "CF = 0: kept");
    assert.equal(exec(cpu, [0xf8, ...FNINIT, ...FLDZ, ...FLD1, 0xdb, 0xc1]), undefined);
    assert.equal(cpu.fpu.toNumber(0), 0, "fcmovnb with CF = 0: moved");
  });

  it("FLDENV of a status word with an unmasked flag makes it pending (#MF next)", () => {
    const cpu = cpuWith();
    cpu.cr0 |= CR0_NE;
    assert.equal(exec(cpu, [...FNINIT, ...fnstenv(OUT)]), undefined);
    dv(cpu).setUint16(OUT, 0x037b, true); // ZM clear
    dv(cpu).setUint16(OUT + 4, 0x0004, true); // ZE set
    assert.equal(exec(cpu, [0xd9, 0x25, ...at(OUT)]), undefined);
    assert.ok(cpu.fpu.pending);
    assert.equal(vectorOf(cpu, FLD1), MF);
  });
});

describe("FXTRACT, FSCALE, FPREM and FPREM1 (exact on the 80-bit patterns)", () => {
  const FPREM = [0xd9, 0xf8];
  const FPREM1 = [0xd9, 0xf5];

  it("FXTRACT splits 10 into 1.25 and 3; zero gives -infinity with ZE", () => {
    const cpu = cpuWith({ [DATA]: 10 });
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xd9, 0xf4]), undefined);
    assert.deepEqual([cpu.fpu.toNumber(0), cpu.fpu.toNumber(1), cpu.fpu.top], [1.25, 3, 6]);
    assert.equal(statusAfter(cpu, [...FNINIT, ...FLDZ, 0xd9, 0xf4]) & 0x3f, 0x04);
    assert.equal(cpu.fpu.toNumber(1), -Infinity);
  });

  it("FSCALE multiplies by 2^trunc(ST(1)), into the denormal range exactly", () => {
    const cpu = cpuWith({ [DATA]: 1.5, [DATA + 8]: 3.7, [DATA + 16]: -2.5, [DATA + 24]: -16400 });
    const scaled = (by: number): number => {
      assert.equal(exec(cpu, [...FNINIT, ...fldQ(by), ...fldQ(DATA), 0xd9, 0xfd]), undefined);
      return cpu.fpu.toNumber(0);
    };
    assert.equal(scaled(DATA + 8), 12);
    assert.equal(scaled(DATA + 16), 0.375);
    const code = [...FNINIT, ...fldQ(DATA + 24), ...FLD1, 0xd9, 0xfd, 0xdb, 0x3d, ...at(OUT)];
    assert.equal(exec(cpu, code), undefined);
    assert.equal(hexAt(cpu, OUT, 10), "00 00 00 00 00 20 00 00 00 00", "2^-16400: a denormal");
  });

  it("FPREM and FPREM1: remainders and quotient bits in C0, C3, C1", () => {
    const cpu = cpuWith({ [DATA]: 10, [DATA + 8]: 3, [DATA + 16]: 11, [DATA + 24]: -7 });
    dv(cpu).setFloat64(DATA + 32, 2, true);
    const rem = (x: number, y: number, op: number[]): [number, number] => {
      const sw = statusAfter(cpu, [...FNINIT, ...fldQ(y), ...fldQ(x), ...op]);
      return [cpu.fpu.toNumber(0), sw & 0x4700];
    };
    // 10 / 3: q = 3 (C3 = bit 0, C1 = bit 1), remainder 1.
    assert.deepEqual(rem(DATA, DATA + 8, FPREM), [1, 0x4200]);
    assert.deepEqual(rem(DATA, DATA + 8, FPREM1), [1, 0x4200]);
    // 11 / 3: FPREM truncates (q 3, r 2); FPREM1 rounds (q 4 in C0, r -1).
    assert.deepEqual(rem(DATA + 16, DATA + 8, FPREM), [2, 0x4200]);
    assert.deepEqual(rem(DATA + 16, DATA + 8, FPREM1), [-1, 0x0100]);
    // -7 / 2 = -3.5: FPREM gives -1 (q 3); FPREM1 rounds to even (q 4), r +1.
    assert.deepEqual(rem(DATA + 24, DATA + 32, FPREM), [-1, 0x4200]);
    assert.deepEqual(rem(DATA + 24, DATA + 32, FPREM1), [1, 0x0100]);
  });

  it("agree with fmod and the IEEE remainder on random doubles, partial steps included", () => {
    const cpu = cpuWith();
    let seed = 7;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    let partial = 0;
    for (let n = 0; n < 400; n++) {
      const x = (rand() - 0.5) * 2 ** Math.floor(rand() * 240 - 100);
      const y = (rand() - 0.5) * 2 ** Math.floor(rand() * 120 - 60);
      if (x === 0 || y === 0) continue;
      dv(cpu).setFloat64(DATA, x, true);
      dv(cpu).setFloat64(DATA + 8, y, true);
      for (const ieee of [false, true]) {
        assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA + 8), ...fldQ(DATA)]), undefined);
        for (let k = 0; k < 100; k++) {
          const sw = statusAfter(cpu, ieee ? FPREM1 : FPREM);
          if (!(sw & 0x400)) break;
          partial++;
        }
        let want = x % y; // exact
        if (ieee && Math.abs(want) > Math.abs(y) / 2) want -= Math.sign(want) * Math.abs(y);
        assert.equal(cpu.fpu.toNumber(0), want, `${x} ${ieee ? "rem" : "mod"} ${y}`);
      }
    }
    assert.ok(partial > 50, `only ${partial} partial steps`);
  });
});

describe("x87 transcendental instructions (through float64)", () => {
  const cpu = cpuWith({ [DATA]: 0.5, [DATA + 8]: 8, [DATA + 16]: 3, [DATA + 24]: 2 ** 64 });
  const st = (k: number): number => cpu.fpu.toNumber(k);

  it("FSIN, FCOS, FSINCOS, FPTAN; |x| >= 2^63 sets C2 and leaves ST(0)", () => {
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xd9, 0xfe]), undefined);
    assert.equal(st(0), Math.sin(0.5));
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xd9, 0xff]), undefined);
    assert.equal(st(0), Math.cos(0.5));
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xd9, 0xfb]), undefined);
    assert.deepEqual([st(0), st(1), cpu.fpu.top], [Math.cos(0.5), Math.sin(0.5), 6]);
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xd9, 0xf2]), undefined);
    assert.deepEqual([st(0), st(1)], [1, Math.tan(0.5)]);
    const sw = statusAfter(cpu, [...FNINIT, ...fldQ(DATA + 24), 0xd9, 0xfe]);
    assert.equal(sw & 0x0400, 0x0400, "C2: out of range");
    assert.equal(st(0), 2 ** 64);
    const inf = [...FLDZ, ...FLD1, 0xd8, 0xf1]; // 1/0
    assert.equal(statusAfter(cpu, [...FNINIT, ...inf, 0xdb, 0xe2, 0xd9, 0xff]) & 1, 1);
    assert.equal(cpu.fpu.classify(0), 0x0100, "cos(infinity): the indefinite");
  });

  it("FPATAN, FYL2X, FYL2XP1 and F2XM1", () => {
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...FLD1, 0xd9, 0xe0, 0xd9, 0xf3]), undefined);
    assert.deepEqual([st(0), cpu.fpu.top], [Math.atan2(1, -1), 7], "atan2(1, -1), popped");
    assert.equal(
      exec(cpu, [...FNINIT, ...fldQ(DATA + 16), ...fldQ(DATA + 8), 0xd9, 0xf1]),
      undefined,
    );
    assert.equal(st(0), 9, "3 * log2(8)");
    const sw = statusAfter(cpu, [...FNINIT, ...FLD1, ...FLDZ, 0xd9, 0xf1]);
    assert.deepEqual([sw & 0x3f, st(0)], [0x04, -Infinity], "log2(0): #Z");
    const neg = statusAfter(cpu, [...FNINIT, ...FLD1, ...FLD1, 0xd9, 0xe0, 0xd9, 0xf1]);
    assert.equal(neg & 1, 1, "log2(-1): #IA");
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...fldQ(DATA), 0xd9, 0xf9]), undefined);
    assert.equal(st(0), Math.log1p(0.5) / Math.LN2);
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xd9, 0xf0]), undefined);
    assert.ok(Math.abs(st(0) - (Math.SQRT2 - 1)) < 1e-15, "2^0.5 - 1");
  });
});

describe("FBLD and FBSTP (packed BCD)", () => {
  const bcd = (s: string): number[] => s.split(" ").map((h) => parseInt(h, 16));

  it("round-trip 18 digits with the sign; FBSTP rounds by RC", () => {
    const cpu = cpuWith({ [DATA + 16]: -2.5 });
    const digits = "89 67 45 23 01 89 67 45 23 80"; // -234567890123456789, low digits first
    cpu.mem.ram.set(bcd(digits), DATA);
    const code = [...FNINIT, 0xdf, 0x25, ...at(DATA), 0xdf, 0x35, ...at(OUT)];
    assert.equal(exec(cpu, code), undefined);
    assert.equal(hexAt(cpu, OUT, 10), digits);
    assert.equal(cpu.fpu.top, 0, "FBSTP popped");
    // FBLD is exact: FISTP m64 gives the same integer back.
    assert.equal(
      exec(cpu, [...FNINIT, 0xdf, 0x25, ...at(DATA), 0xdf, 0x3d, ...at(OUT)]),
      undefined,
    );
    assert.equal(dv(cpu).getBigInt64(OUT, true), -234567890123456789n);
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA + 16), 0xdf, 0x35, ...at(OUT)]), undefined);
    assert.equal(hexAt(cpu, OUT, 10), "02 00 00 00 00 00 00 00 00 80", "-2.5 to nearest even: -2");
    assert.equal(cpu.fpu.statusWord & 0x20, 0x20, "PE");
  });

  it("FBSTP of 10^18 or infinity: IE and the BCD indefinite", () => {
    const cpu = cpuWith({ [DATA]: 1e18 });
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0xdf, 0x35, ...at(OUT)]), undefined);
    assert.equal(hexAt(cpu, OUT, 10), "00 00 00 00 00 00 00 c0 ff ff");
    assert.equal(cpu.fpu.statusWord & 1, 1);
  });
});

describe("FNSTENV, FNSAVE, FLDENV and FRSTOR layouts (SDM Vol. 1, Figures 8-9 to 8-12)", () => {
  it("32-bit protected mode: FNSTENV stores 28 bytes, then masks every exception", () => {
    const cpu = cpuWith({ [DATA]: 1.5 });
    dv(cpu).setUint16(DATA + 8, 0x0372, true);
    // fninit; fldcw [DATA+8]; fld qword [DATA] (at CODE+8); fnstenv [OUT]
    assert.equal(
      exec(cpu, [...FNINIT, ...fldcw(DATA + 8), ...fldQ(DATA), ...fnstenv(OUT)]),
      undefined,
    );
    assert.equal(
      hexAt(cpu, OUT, 28),
      [
        "72 03 ff ff", // FCW
        "00 38 ff ff", // FSW: TOP 7
        "ff 3f ff ff", // tag word: R7 valid
        "08 10 00 00", // FIP: the FLD at CODE + 8
        "08 00 05 05", // FCS, FOP (DD 05: 101 0000 0101)
        "00 20 00 00", // FDP
        "10 00 ff ff", // FDS
      ].join(" "),
    );
    assert.equal(cpu.fpu.fcw, 0x037f, "exceptions masked after FNSTENV");
  });

  it("16-bit protected mode: 14 bytes", () => {
    const cpu = cpuWith({ [DATA]: 1.5 });
    assert.equal(exec(cpu, [...FNINIT, ...fldQ(DATA), 0x66, ...fnstenv(OUT)]), undefined);
    assert.equal(hexAt(cpu, OUT, 14), "7f 03 00 38 ff 3f 02 10 08 00 00 20 10 00");
  });

  it("16-bit real mode FNSAVE: 20-bit pointers split around FOP, 94 bytes, then FNINIT", () => {
    const cpu = cpuWith();
    cpu.cr0 &= ~CR0_PE;
    cpu.segs[CS].set(0x1234, 0, 0xffffffff, cpu.segs[CS].ar); // base kept: code stays at CODE
    // fninit; fld1 (at CODE+2: FIP = 0x12340 + 0x1002 = 0x13342); fnsave [OUT] (16-bit)
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, 0x66, 0xdd, 0x35, ...at(OUT)]), undefined);
    assert.equal(hexAt(cpu, OUT, 14), "7f 03 00 38 ff 3f 42 33 e8 11 00 00 00 00");
    assert.equal(hexAt(cpu, OUT + 14, 10), "00 00 00 00 00 00 00 80 ff 3f", "ST(0) = 1.0");
    assert.equal(cpu.fpu.fcw, 0x037f);
    assert.equal(cpu.fpu.empty, 0xff, "FNSAVE ends with FNINIT");
  });

  it("32-bit real mode FNSTENV: IP and DP bits 31:16 in bits 27:12", () => {
    const cpu = cpuWith();
    cpu.cr0 &= ~CR0_PE;
    cpu.segs[CS].set(0x1234, 0, 0xffffffff, cpu.segs[CS].ar);
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...fnstenv(OUT)]), undefined);
    assert.equal(
      hexAt(cpu, OUT + 12, 16),
      "42 33 ff ff e8 11 00 00 00 00 ff ff 00 00 00 00",
      "IP[15:0], FOP | IP[31:16] << 12, DP[15:0], DP[31:16] << 12",
    );
  });

  it("FNSAVE then FRSTOR restores the registers, TOP, tags and words; so does FLDENV", () => {
    const cpu = cpuWith({ [DATA]: 1.5, [DATA + 8]: -2.25 });
    const code = [...FNINIT, ...fldQ(DATA), ...fldQ(DATA + 8), 0xdd, 0x35, ...at(OUT)];
    assert.equal(exec(cpu, code), undefined);
    assert.equal(cpu.fpu.top, 0);
    assert.equal(exec(cpu, [...FLD1, 0xdd, 0x25, ...at(OUT)]), undefined); // frstor
    assert.equal(cpu.fpu.top, 6);
    assert.equal(cpu.fpu.toNumber(0), -2.25);
    assert.equal(cpu.fpu.toNumber(1), 1.5);
    assert.equal(cpu.fpu.tagWord, 0x0fff);
    assert.equal(cpu.fpu.fip, CODE + 8);
    assert.equal(
      exec(cpu, [...fnstenv(OUT + 200), ...FNINIT, 0xd9, 0x25, ...at(OUT + 200)]),
      undefined,
    );
    assert.equal(cpu.fpu.top, 6);
    assert.equal(cpu.fpu.tagWord, 0x0fff, "FLDENV takes the tags");
  });
});
