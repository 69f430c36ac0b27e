/**
 * Debug facilities of the soft CPU (SDM Vol. 3B, 18.2-18.3): instruction breakpoints
 * (faults, suppressed by EFLAGS.RF), data breakpoints by R/W and length (traps), I/O
 * breakpoints with CR4.DE, DR6 contents, and RF in the EFLAGS image of faults.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CR4_DE } from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { RF } from "../src/cpu/flags.js";
import { CODE, makeCpu } from "./helpers/cpu.js";

const GDT = 0x0;
const IDT = 0x800;
const HANDLER = 0x3000; // every vector: HLT
const STACK = 0x8000;

/** A flat 32-bit machine whose IDT sends every vector to a HLT, running `code` at CODE. */
function machine(code: number[]): Cpu {
  const { cpu, mem } = makeCpu();
  const w32 = (a: number, v: number): void => new DataView(mem.ram.buffer).setUint32(a, v, true);
  // GDT: null, flat code 0x08, flat data 0x10 (SDM Vol. 3A, 3.4.5).
  w32(GDT + 8, 0x0000ffff);
  w32(GDT + 12, 0x00cf9a00);
  w32(GDT + 16, 0x0000ffff);
  w32(GDT + 20, 0x00cf9200);
  for (let v = 0; v < 32; v++) {
    w32(IDT + v * 8, (0x08 << 16) | HANDLER);
    w32(IDT + v * 8 + 4, 0x8e00); // present 32-bit interrupt gate, DPL 0
  }
  mem.ram[HANDLER] = 0xf4;
  mem.ram.set(code, CODE);
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = 23;
  cpu.idtrBase = IDT;
  cpu.idtrLimit = 32 * 8 - 1;
  cpu.regs[4] = STACK;
  return cpu;
}

/** Runs until the handler's HLT; returns the exception frame (EIP, CS, EFLAGS). */
function runToHandler(cpu: Cpu): { eip: number; eflags: number } {
  const exit = cpu.run(1000);
  assert.equal(exit.kind, "halt", `expected the handler's HLT, got ${exit.kind}`);
  assert.equal(cpu.eip, HANDLER + 1);
  const at = cpu.regs[4] >>> 0;
  return { eip: cpu.rd(at, 4) >>> 0, eflags: cpu.rd(at + 8, 4) >>> 0 };
}

function arm(cpu: Cpu, n: number, addr: number, rw: number, len: number): void {
  cpu.dr[n] = addr;
  cpu.dr[7] |= (1 << (2 * n)) | (rw << (16 + 4 * n)) | (len << (18 + 4 * n));
  cpu.debug.update(cpu);
}

const NOP = 0x90;
const MOV_EAX_1 = [0xb8, 1, 0, 0, 0];

describe("instruction breakpoints", () => {
  test("fault before the instruction: saved EIP is the instruction, DR6.B0, RF clear", () => {
    const cpu = machine([NOP, NOP, NOP, ...MOV_EAX_1, 0xf4]);
    arm(cpu, 0, CODE + 3, 0, 0);
    const frame = runToHandler(cpu);
    assert.equal(frame.eip, CODE + 3);
    assert.equal(cpu.regs[0], 0, "the instruction did not run");
    assert.equal(cpu.dr[6] & 0xf, 1);
    assert.equal(frame.eflags & RF, 0, "no RF in the image of an instruction-breakpoint #DB");
  });

  test("EFLAGS.RF suppresses the breakpoint once and is then cleared", () => {
    const cpu = machine([...MOV_EAX_1, 0xf4]);
    arm(cpu, 0, CODE, 0, 0);
    cpu.flags.load(cpu.flags.get() | RF);
    const exit = cpu.run(10);
    assert.equal(exit.kind, "halt");
    assert.equal(cpu.regs[0], 1, "the instruction ran");
    assert.equal(cpu.eip, CODE + 6, "stopped at the kernel's own HLT, not the handler");
    assert.equal(cpu.flags.get() & RF, 0);
  });
});

describe("data and I/O breakpoints", () => {
  test("a write breakpoint traps after a write that overlaps its aligned range", () => {
    // mov [0x2002], eax ; hlt — DR1 covers 0x2000-0x2003 (LEN 11 = 4 bytes).
    const cpu = machine([0xa3, 0x02, 0x20, 0, 0, 0xf4]);
    arm(cpu, 1, 0x2001, 1, 3);
    const frame = runToHandler(cpu);
    assert.equal(frame.eip, CODE + 5, "a trap: the saved EIP is the next instruction");
    assert.equal(cpu.dr[6] & 0xf, 2);
  });

  test("a write-only breakpoint ignores reads; a read/write breakpoint catches them", () => {
    const read = [0xa1, 0x00, 0x20, 0, 0, 0xf4]; // mov eax, [0x2000] ; hlt
    const cpu = machine(read);
    arm(cpu, 2, 0x2000, 1, 0);
    assert.equal(cpu.run(10).kind, "halt");
    assert.equal(cpu.eip, CODE + 6, "no #DB for a read");
    const rw = machine(read);
    arm(rw, 2, 0x2000, 3, 0);
    assert.equal(runToHandler(rw).eip, CODE + 5);
    assert.equal(rw.dr[6] & 0xf, 4);
  });

  test("I/O breakpoints need CR4.DE and trap after IN/OUT to the port", () => {
    const code = [0xe6, 0x80, 0xf4]; // out 0x80, al ; hlt
    const off = machine(code);
    arm(off, 3, 0x80, 2, 0);
    assert.equal(off.run(10).kind, "halt");
    assert.equal(off.eip, CODE + 3, "without CR4.DE, R/W 10 breaks nothing");
    const on = machine(code);
    on.cr4 |= CR4_DE;
    arm(on, 3, 0x80, 2, 0);
    assert.equal(runToHandler(on).eip, CODE + 2);
    assert.equal(on.dr[6] & 0xf, 8);
  });
});

test("fault-class exceptions push EFLAGS with RF set (SDM Vol. 3B, 18.3.1.1)", () => {
  const cpu = machine([0x0f, 0x0b]); // ud2
  const frame = runToHandler(cpu);
  assert.equal(frame.eip, CODE);
  assert.notEqual(frame.eflags & RF, 0);
  assert.equal(cpu.flags.get() & RF, 0, "the handler runs with RF clear");
});
