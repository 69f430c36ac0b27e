/**
 * FXSAVE/FXRSTOR, XGETBV/XSETBV and XSAVE/XRSTOR on the soft CPU (src/cpu/exec/xsave.ts)
 * and what CPUID says about them: the legacy-region layout byte by byte (SDM Vol. 1,
 * Table 10-2) in the 32-bit and REX.W formats, the XSAVE header rules (SDM Vol. 1, 13.7
 * and 13.8), round trips, and every #GP/#UD/#NM rule of the instruction pages.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AR_DB,
  AR_L,
  CR0_EM,
  CR0_PG,
  CR0_TS,
  CR4_OSXSAVE,
  CR4_PAE,
  CS,
  EFER_LMA,
  EFER_LME,
  GP,
  NM,
  UD,
} from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { cpuid } from "../src/cpu/cpuid.js";
import { OPCODES } from "../src/cpu/opcodes.js";
import { ExitReason } from "../src/cpu/vmx/exit-reasons.js";
import { CODE, makeCpu } from "./helpers/cpu.js";
import { at, dv, exec, hexAt, vectorOf } from "./helpers/x87.js";

const DATA = 0x2000;
const AREA = 0x4000; // 64-byte aligned
const AREA2 = 0x5000;
const FNINIT = [0xdb, 0xe3];
const FLD1 = [0xd9, 0xe8];
const fldQ = (a: number): number[] => [0xdd, 0x05, ...at(a)];
const fxsave = (a: number): number[] => [0x0f, 0xae, 0x05, ...at(a)];
const fxrstor = (a: number): number[] => [0x0f, 0xae, 0x0d, ...at(a)];
const xsave = (a: number): number[] => [0x0f, 0xae, 0x25, ...at(a)];
const xrstor = (a: number): number[] => [0x0f, 0xae, 0x2d, ...at(a)];
const XGETBV = [0x0f, 0x01, 0xd0];
const XSETBV = [0x0f, 0x01, 0xd1];
const movEax = (v: number): number[] => [0xb8, ...at(v >>> 0)];
const movEcx = (v: number): number[] => [0xb9, ...at(v >>> 0)];
const movEdx = (v: number): number[] => [0xba, ...at(v >>> 0)];
/** EDX:EAX = all ones: request every component XCR0 enables. */
const ALL = [...movEax(-1), ...movEdx(-1)];

/** XMM0-15 as bytes 0x10, 0x11, ...: a pattern no instruction of this CPU could load. */
function fillXmm(cpu: Cpu): void {
  cpu.fpu.xmm.forEach((_, k) => (cpu.fpu.xmm[k] = (0x10 + k) & 0xff));
}

function setup(): Cpu {
  const { cpu } = makeCpu();
  dv(cpu).setFloat64(DATA, 1.5, true);
  cpu.mem.ram.fill(0xaa, AREA, AREA + 1024);
  return cpu;
}

/** Everything FXSAVE and XSAVE cover, for round-trip comparisons. */
function snapshot(cpu: Cpu): string {
  const f = cpu.fpu;
  return JSON.stringify({
    fcw: f.fcw,
    fsw: f.statusWord,
    tags: f.tagWord,
    regs: [...f.sigLo, ...f.sigHi, ...f.se],
    ptrs: [f.fip, f.fipHi, f.fcs, f.fop, f.fdp, f.fdpHi, f.fds],
    mxcsr: f.mxcsr,
    xmm: [...f.xmm.subarray(0, cpu.mode64 ? 256 : 128)],
  });
}

/** IA-32e mode with a 64-bit code segment, the first 2 MiB identity-mapped by one page. */
function longMode(cpu: Cpu): void {
  const v = dv(cpu);
  v.setUint32(0x10000, 0x11000 | 7, true); // PML4E
  v.setUint32(0x11000, 0x12000 | 7, true); // PDPTE
  v.setUint32(0x12000, 0x87, true); // PDE: a 2 MiB page at 0
  cpu.cr4 |= CR4_PAE;
  cpu.cr3 = 0x10000;
  cpu.msr.efer |= EFER_LME | EFER_LMA;
  cpu.cr0 |= CR0_PG;
  const cs = cpu.segs[CS];
  cs.set(0x08, 0, 0xffffffff, (cs.ar & ~AR_DB) | AR_L);
  cpu.modeChanged();
  cpu.flushTlb(true);
  assert.ok(cpu.mode64);
}

describe("CPUID and CR4 for x87, FXSR and XSAVE", () => {
  it("advertises FPU, FXSR and XSAVE, not SSE; OSXSAVE follows CR4", () => {
    const { cpu } = makeCpu();
    const [, , ecx, edx] = cpuid(cpu, 1, 0);
    assert.equal(edx & 1, 1, "FPU");
    assert.equal((edx >>> 24) & 1, 1, "FXSR");
    assert.equal((edx >>> 25) & 3, 0, "no SSE, no SSE2");
    assert.equal((ecx >>> 26) & 1, 1, "XSAVE");
    assert.equal((ecx >>> 27) & 1, 0, "OSXSAVE clear with CR4.OSXSAVE clear");
    assert.equal(exec(cpu, [...movEax(CR4_OSXSAVE | 0x600), 0x0f, 0x22, 0xe0]), undefined);
    assert.equal(
      cpu.cr4 & (CR4_OSXSAVE | 0x600),
      CR4_OSXSAVE | 0x600,
      "OSXSAVE, OSFXSR, OSXMMEXCPT",
    );
    assert.equal((cpuid(cpu, 1, 0)[2] >>> 27) & 1, 1);
  });

  it("leaf 0DH: x87 and SSE supported, 576-byte areas, only XGETBV's ECX = 1 form", () => {
    const { cpu } = makeCpu();
    assert.ok(cpuid(cpu, 0, 0)[0] >= 0xd);
    assert.deepEqual(cpuid(cpu, 0xd, 0), [3, 576, 576, 0]);
    assert.deepEqual(cpuid(cpu, 0xd, 1), [4, 0, 0, 0]);
    assert.deepEqual(cpuid(cpu, 0xd, 2), [0, 0, 0, 0], "no AVX state");
  });

  it("XSETBV's row carries the VM exit it causes", () => {
    const row = OPCODES.find((d) => d.m === "xsetbv");
    assert.equal(row?.exit, ExitReason.Xsetbv);
  });
});

describe("FXSAVE and FXRSTOR", () => {
  it("stores the legacy 32-bit format byte by byte (SDM Vol. 1, Table 10-2)", () => {
    const cpu = setup();
    cpu.fpu.mxcsr = 0x1fa0;
    fillXmm(cpu);
    // fninit; fld1 (CODE+2); fld qword [DATA] (CODE+4); fxsave [AREA]
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...fldQ(DATA), ...fxsave(AREA)]), undefined);
    assert.equal(
      hexAt(cpu, AREA, 32),
      "7f 03 00 30 c0 00 05 05 04 10 00 00 08 00 00 00 00 20 00 00 10 00 00 00 a0 1f 00 00 ff ff 00 00",
      "FCW FSW FTW(abridged) 0 FOP FIP FCS 0 FDP FDS 0 MXCSR MXCSR_MASK",
    );
    const z6 = "00 00 00 00 00 00";
    assert.equal(hexAt(cpu, AREA + 32, 16), `00 00 00 00 00 00 00 c0 ff 3f ${z6}`, "ST(0) 1.5");
    assert.equal(hexAt(cpu, AREA + 48, 16), `00 00 00 00 00 00 00 80 ff 3f ${z6}`, "ST(1) 1.0");
    assert.ok(
      cpu.mem.ram.subarray(AREA + 64, AREA + 160).every((b) => b === 0),
      "ST(2)-ST(7)",
    );
    const xmm = Array.from(cpu.mem.ram.subarray(AREA + 160, AREA + 288));
    assert.deepEqual(xmm, [...cpu.fpu.xmm.subarray(0, 128)], "XMM0-7");
    assert.ok(
      cpu.mem.ram.subarray(AREA + 288, AREA + 512).every((b) => b === 0xaa),
      "XMM8-15 are not saved outside 64-bit mode; bytes 416-511 are never written",
    );
  });

  it("round-trips through FXRSTOR", () => {
    const cpu = setup();
    fillXmm(cpu);
    cpu.fpu.mxcsr = 0x9fc0;
    assert.equal(
      exec(cpu, [...FNINIT, ...FLD1, ...fldQ(DATA), 0xd8, 0xc1, ...fxsave(AREA)]),
      undefined,
    );
    const before = snapshot(cpu);
    cpu.fpu.xmm.fill(0);
    cpu.fpu.mxcsr = 0x1f80;
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...FLD1, ...fxrstor(AREA)]), undefined);
    assert.equal(snapshot(cpu), before);
  });

  it("#GP(0) when misaligned; FXRSTOR #GP(0) for reserved MXCSR bits, changing nothing", () => {
    const cpu = setup();
    const f = exec(cpu, fxsave(AREA + 8));
    assert.deepEqual([f?.vector, f?.errorCode], [GP, 0]);
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...fxsave(AREA)]), undefined);
    dv(cpu).setUint32(AREA + 24, 0x10000 | 0x1f80, true);
    const before = snapshot(cpu);
    assert.equal(exec(cpu, FNINIT), undefined);
    const mid = snapshot(cpu);
    const g = exec(cpu, fxrstor(AREA));
    assert.deepEqual([g?.vector, g?.errorCode], [GP, 0]);
    assert.equal(snapshot(cpu), mid);
    assert.notEqual(mid, before);
  });

  it("CR0.EM raises #UD (before TS), CR0.TS #NM", () => {
    const cases: [number, number][] = [
      [CR0_EM, UD],
      [CR0_EM | CR0_TS, UD],
      [CR0_TS, NM],
    ];
    for (const [bits, vector] of cases) {
      const cpu = setup();
      cpu.cr0 |= bits;
      assert.equal(vectorOf(cpu, fxsave(AREA)), vector);
      assert.equal(vectorOf(cpu, fxrstor(AREA)), vector);
    }
  });

  it("in 64-bit mode: REX.W stores 64-bit FIP/FDP, and XMM8-15 are saved", () => {
    const cpu = setup();
    longMode(cpu);
    fillXmm(cpu);
    // fninit; fld qword [abs DATA] (SIB form: no RIP-relative); fxsave64 [abs AREA]
    const fld = [0xdd, 0x04, 0x25, ...at(DATA)];
    const fx = (w: boolean, a: number): number[] => [
      ...(w ? [0x48] : []),
      0x0f,
      0xae,
      0x04,
      0x25,
      ...at(a),
    ];
    assert.equal(exec(cpu, [...FNINIT, ...fld, ...fx(true, AREA), ...fx(false, AREA2)]), undefined);
    assert.equal(hexAt(cpu, AREA + 8, 16), "02 10 00 00 00 00 00 00 00 20 00 00 00 00 00 00");
    assert.equal(hexAt(cpu, AREA2 + 8, 16), "02 10 00 00 08 00 00 00 00 20 00 00 10 00 00 00");
    const xmm = Array.from(cpu.mem.ram.subarray(AREA + 160, AREA + 416));
    assert.deepEqual(xmm, [...cpu.fpu.xmm], "XMM0-15");
    // The REX.W image has no FCS and FDS: FXRSTOR64 leaves them 0.
    const want = JSON.parse(snapshot(cpu)) as { ptrs: number[] };
    want.ptrs[2] = want.ptrs[6] = 0;
    cpu.fpu.xmm.fill(0);
    const rstor64 = [0x48, 0x0f, 0xae, 0x0c, 0x25, ...at(AREA)];
    assert.equal(exec(cpu, [...FNINIT, ...rstor64]), undefined);
    assert.deepEqual(JSON.parse(snapshot(cpu)), want);
  });
});

describe("XGETBV and XSETBV (SDM Vol. 2)", () => {
  const enabled = (): Cpu => {
    const cpu = setup();
    cpu.cr4 |= CR4_OSXSAVE;
    return cpu;
  };

  it("#UD without CR4.OSXSAVE", () => {
    const cpu = setup();
    assert.equal(vectorOf(cpu, [...movEcx(0), ...XGETBV]), UD);
    assert.equal(vectorOf(cpu, [...movEcx(0), ...movEax(3), ...movEdx(0), ...XSETBV]), UD);
  });

  it("XCR0 starts as 1; XSETBV 3 enables SSE state; XGETBV ECX = 1 gives XCR0 AND XINUSE", () => {
    const cpu = enabled();
    assert.equal(exec(cpu, [...movEcx(0), ...XGETBV]), undefined);
    assert.deepEqual([cpu.regs[0], cpu.regs[2]], [1, 0]);
    assert.equal(exec(cpu, [...movEcx(0), ...movEax(3), ...movEdx(0), ...XSETBV]), undefined);
    assert.equal(cpu.fpu.xcr0, 3);
    assert.equal(exec(cpu, [...FNINIT, ...movEcx(1), ...XGETBV]), undefined);
    assert.equal(cpu.regs[0], 0, "FNINIT state with zero registers and XMM: nothing in use");
    cpu.fpu.xmm[5] = 1;
    assert.equal(exec(cpu, [...FLD1, ...movEcx(1), ...XGETBV]), undefined);
    assert.equal(cpu.regs[0], 3);
  });

  it("XSETBV: #GP(0) for bit 0 clear, AVX, unknown bits, EDX, ECX != 0, CPL > 0", () => {
    const cases: [string, number[], number][] = [
      ["bit 0 clear", [...movEcx(0), ...movEax(2), ...movEdx(0)], 0],
      ["AVX without SSE", [...movEcx(0), ...movEax(5), ...movEdx(0)], 0],
      ["AVX (not supported)", [...movEcx(0), ...movEax(7), ...movEdx(0)], 0],
      ["a high bit", [...movEcx(0), ...movEax(1), ...movEdx(1)], 0],
      ["ECX = 1", [...movEcx(1), ...movEax(1), ...movEdx(0)], 0],
      ["CPL 3", [...movEcx(0), ...movEax(1), ...movEdx(0)], 3],
    ];
    for (const [name, setRegs, cpl] of cases) {
      const cpu = enabled();
      assert.equal(exec(cpu, setRegs), undefined);
      cpu.cpl = cpl;
      const f = exec(cpu, XSETBV);
      assert.deepEqual([f?.vector, f?.errorCode], [GP, 0], name);
      assert.equal(cpu.fpu.xcr0, 1, name);
    }
    const cpu = enabled();
    assert.equal(vectorOf(cpu, [...movEcx(2), ...XGETBV]), GP, "XGETBV ECX = 2");
    cpu.cpl = 3;
    assert.equal(vectorOf(cpu, [...movEcx(0), ...XGETBV]), -1, "XGETBV runs at CPL 3");
  });
});

describe("XSAVE and XRSTOR, standard format (SDM Vol. 1, 13.7 and 13.8.1)", () => {
  /** OSXSAVE on and XCR0 = x87 | SSE. */
  const ready = (xcr0 = 3): Cpu => {
    const cpu = setup();
    cpu.cr4 |= CR4_OSXSAVE;
    cpu.fpu.xcr0 = xcr0;
    return cpu;
  };
  const header = (cpu: Cpu, a = AREA): string => hexAt(cpu, a + 512, 24);

  it("saves the requested components into the legacy region and updates XSTATE_BV only", () => {
    const cpu = ready();
    fillXmm(cpu);
    cpu.mem.ram[AREA + 512] = 0x04; // a bit outside RFBM: kept
    assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...ALL, ...xsave(AREA)]), undefined);
    assert.equal(hexAt(cpu, AREA, 8), "7f 03 00 38 80 00 e8 01", "as FXSAVE");
    assert.equal(hexAt(cpu, AREA + 24, 8), "80 1f 00 00 ff ff 00 00", "MXCSR, MXCSR_MASK");
    assert.deepEqual(Array.from(cpu.mem.ram.subarray(AREA + 160, AREA + 288)), [
      ...cpu.fpu.xmm.subarray(0, 128),
    ]);
    assert.equal(
      header(cpu),
      `07 ${"aa ".repeat(23).trim()}`,
      "XSTATE_BV = 4 | 3; the rest untouched",
    );
  });

  it("with RFBM = x87 only, leaves MXCSR, XMM and XSTATE_BV[1] alone", () => {
    const cpu = ready();
    fillXmm(cpu);
    cpu.mem.ram.fill(0, AREA + 512, AREA + 520);
    cpu.mem.ram[AREA + 512] = 0x02;
    assert.equal(
      exec(cpu, [...FNINIT, ...FLD1, ...movEax(1), ...movEdx(0), ...xsave(AREA)]),
      undefined,
    );
    assert.equal(hexAt(cpu, AREA + 24, 8), "aa aa aa aa aa aa aa aa");
    assert.ok(cpu.mem.ram.subarray(AREA + 160, AREA + 512).every((b) => b === 0xaa));
    assert.equal(cpu.mem.ram[AREA + 512], 0x03);
  });

  it("XSTATE_BV[i] is XINUSE[i]: 0 for a component in its initial configuration", () => {
    const cpu = ready();
    cpu.mem.ram.fill(0, AREA + 512, AREA + 576);
    assert.equal(exec(cpu, [...FNINIT, ...ALL, ...xsave(AREA)]), undefined);
    assert.equal(cpu.mem.ram[AREA + 512], 0x00);
    assert.equal(hexAt(cpu, AREA, 4), "7f 03 00 00", "the x87 region is still written");
  });

  it("round-trips through XRSTOR", () => {
    const cpu = ready();
    fillXmm(cpu);
    cpu.fpu.mxcsr = 0x7f80;
    cpu.mem.ram.fill(0, AREA + 512, AREA + 576);
    const code = [...FNINIT, ...FLD1, ...fldQ(DATA), 0xd8, 0xc9, ...ALL, ...xsave(AREA)];
    assert.equal(exec(cpu, code), undefined);
    const before = snapshot(cpu);
    cpu.fpu.xmm.fill(7);
    cpu.fpu.mxcsr = 0x1f80;
    assert.equal(exec(cpu, [...FNINIT, ...ALL, ...xrstor(AREA)]), undefined);
    assert.equal(snapshot(cpu), before);
  });

  it("XSTATE_BV[i] = 0 puts a component in its initial configuration; MXCSR still loads", () => {
    const cpu = ready();
    cpu.mem.ram.fill(0x55, AREA, AREA + 512);
    cpu.mem.ram.fill(0, AREA + 512, AREA + 576);
    dv(cpu).setUint32(AREA + 24, 0x1f00, true);
    fillXmm(cpu);
    assert.equal(exec(cpu, [...FLD1, ...ALL, ...xrstor(AREA)]), undefined);
    const f = cpu.fpu;
    assert.deepEqual([f.fcw, f.statusWord, f.empty, f.fop, f.fip], [0x037f, 0, 0xff, 0, 0]);
    assert.ok(f.sigHi.every((v) => v === 0) && f.se.every((v) => v === 0), "registers 0");
    assert.ok(
      f.xmm.subarray(0, 128).every((b) => b === 0),
      "XMM0-7 0",
    );
    assert.equal(f.mxcsr, 0x1f00, "MXCSR comes from memory whenever SSE is requested");
  });

  it("XRSTOR #GP(0): misaligned, XSTATE_BV beyond XCR0, XCOMP_BV, header bytes 16-23, MXCSR", () => {
    const cases: [string, (cpu: Cpu) => void, number][] = [
      ["misaligned", () => undefined, AREA + 32],
      [
        "XSTATE_BV[1] with XCR0 = 1",
        (c) => {
          c.fpu.xcr0 = 1;
          c.mem.ram[AREA + 512] |= 2;
        },
        AREA,
      ],
      ["XSTATE_BV bit 40", (c) => (c.mem.ram[AREA + 517] = 1), AREA],
      ["XCOMP_BV[63]: compacted", (c) => (c.mem.ram[AREA + 527] = 0x80), AREA],
      ["header byte 16", (c) => (c.mem.ram[AREA + 528] = 1), AREA],
      ["reserved MXCSR bit", (c) => dv(c).setUint32(AREA + 24, 0x21f80, true), AREA],
    ];
    for (const [name, spoil, where] of cases) {
      const cpu = ready();
      cpu.mem.ram.fill(0, AREA + 512, AREA + 576);
      assert.equal(exec(cpu, [...FNINIT, ...FLD1, ...ALL, ...xsave(AREA)]), undefined);
      spoil(cpu);
      const before = snapshot(cpu);
      const f = exec(cpu, [...ALL, ...xrstor(where)]);
      assert.deepEqual([f?.vector, f?.errorCode], [GP, 0], name);
      assert.equal(snapshot(cpu), before, `${name}: nothing changed`);
    }
    // MXCSR is not loaded (or checked) when SSE is not requested.
    const cpu = ready();
    cpu.mem.ram.fill(0, AREA + 512, AREA + 576);
    assert.equal(exec(cpu, [...ALL, ...xsave(AREA)]), undefined);
    dv(cpu).setUint32(AREA + 24, 0x21f80, true);
    assert.equal(exec(cpu, [...movEax(1), ...movEdx(0), ...xrstor(AREA)]), undefined);
  });

  it("#UD without CR4.OSXSAVE, #NM with CR0.TS; CR0.EM does not matter", () => {
    const cpu = ready();
    cpu.cr4 &= ~CR4_OSXSAVE;
    assert.equal(vectorOf(cpu, [...ALL, ...xsave(AREA)]), UD);
    assert.equal(vectorOf(cpu, [...ALL, ...xrstor(AREA)]), UD);
    cpu.cr4 |= CR4_OSXSAVE;
    cpu.cr0 |= CR0_TS;
    assert.equal(vectorOf(cpu, [...ALL, ...xsave(AREA)]), NM);
    assert.equal(vectorOf(cpu, [...ALL, ...xrstor(AREA)]), NM);
    assert.equal(vectorOf(cpu, [...movEcx(0), ...XGETBV]), -1, "XGETBV ignores TS");
    cpu.cr0 = (cpu.cr0 & ~CR0_TS) | CR0_EM;
    cpu.mem.ram.fill(0, AREA + 512, AREA + 576);
    assert.equal(vectorOf(cpu, [...ALL, ...xsave(AREA), ...xrstor(AREA)]), -1);
    assert.equal(cpu.eip, CODE + 10 + 14);
  });
});
