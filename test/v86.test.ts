/**
 * Virtual-8086 mode on the soft CPU (SDM Vol. 3A, chapter 20): entry by IRET from CPL 0,
 * real-mode style addressing, IOPL-sensitive instructions, and interrupts out of V86 mode
 * through a ring-0 gate with the stack switch that also saves GS, FS, DS and ES.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { IOPL_SHIFT, VM } from "../src/cpu/flags.js";
import { CODE, makeCpu } from "./helpers/cpu.js";

const GDT = 0x0;
const IDT = 0x800;
const TSS = 0x1800;
const HANDLER = 0x3000; // every vector: HLT
const STACK0 = 0x9000; // ring-0 stack (TSS ESP0)
const V86_CS = 0x0500; // V86 code at 0x5000
const V86_SS = 0x0700; // V86 stack at 0x7000

function setup(v86Code: number[], iopl: number): Cpu {
  const { cpu, mem } = makeCpu();
  const view = new DataView(mem.ram.buffer);
  const w32 = (a: number, v: number): void => view.setUint32(a, v, true);
  w32(GDT + 8, 0x0000ffff); // 0x08 flat ring-0 code
  w32(GDT + 12, 0x00cf9a00);
  w32(GDT + 16, 0x0000ffff); // 0x10 flat ring-0 data
  w32(GDT + 20, 0x00cf9200);
  w32(GDT + 24, (TSS << 16) | 0x67); // 0x18 32-bit TSS, available
  w32(GDT + 28, 0x00008900);
  for (let v = 0; v < 64; v++) {
    w32(IDT + v * 8, (0x08 << 16) | HANDLER);
    w32(IDT + v * 8 + 4, 0xee00); // 32-bit interrupt gate, DPL 3 (INT n from V86 may use it)
  }
  w32(TSS + 4, STACK0); // ESP0
  w32(TSS + 8, 0x10); // SS0
  view.setUint16(TSS + 0x66, 0x68, true); // I/O map base: right after the TSS (all ports denied)
  mem.ram[HANDLER] = 0xf4;
  mem.ram.set(v86Code, V86_CS * 16);
  // Ring-0 code: IRET to V86 mode with the frame pushed below.
  mem.ram.set([0xcf], CODE); // iret
  const frame = [
    0,
    V86_CS,
    VM | 2 | (iopl << IOPL_SHIFT),
    0x100,
    V86_SS,
    0x1111,
    0x2222,
    0x3333,
    0x4444,
  ];
  // EIP, CS, EFLAGS, ESP, SS, ES, DS, FS, GS (SDM Vol. 2, IRET to virtual-8086 mode)
  const top = 0x6000 - frame.length * 4;
  frame.forEach((v, k) => w32(top + k * 4, v));
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = 31;
  cpu.idtrBase = IDT;
  cpu.idtrLimit = 64 * 8 - 1;
  cpu.regs[4] = top;
  cpu.tr.set(0x18, TSS, 0x67, 0x8b);
  return cpu;
}

test("IRET enters V86 mode with real-mode segments; INT n with IOPL 3 exits through the IDT", () => {
  // mov ax, 0x1234 ; int 0x21
  const cpu = setup([0xb8, 0x34, 0x12, 0xcd, 0x21], 3);
  assert.equal(cpu.run(100).kind, "halt");
  assert.equal(cpu.eip, HANDLER + 1, "the ring-0 handler ran");
  assert.equal(cpu.regs[0] & 0xffff, 0x1234, "the V86 code ran");
  assert.equal(cpu.cpl, 0);
  assert.equal(cpu.flags.get() & VM, 0);
  // The handler's stack: EIP, CS, EFLAGS, ESP, SS, ES, DS, FS, GS (SDM Vol. 3A, 20.3.1.1).
  const at = cpu.regs[4] >>> 0;
  const frame = Array.from({ length: 9 }, (_, k) => cpu.rd(at + 4 * k, 4) >>> 0);
  assert.deepEqual(frame.slice(0, 2), [5, V86_CS], "return address after INT 21h");
  assert.notEqual(frame[2] & VM, 0, "the saved EFLAGS has VM");
  assert.deepEqual(frame.slice(3), [0x100, V86_SS, 0x1111, 0x2222, 0x3333, 0x4444]);
  assert.equal(at, STACK0 - 9 * 4, "the stack came from TSS.ESP0");
  for (const s of [0, 3, 4, 5]) assert.equal(cpu.segs[s].selector, 0, "data segments nulled");
});

test("with IOPL < 3, CLI and INT n raise #GP(0) to the monitor", () => {
  for (const code of [[0xfa], [0xcd, 0x21]]) {
    const cpu = setup(code, 0);
    assert.equal(cpu.run(100).kind, "halt");
    const at = cpu.regs[4] >>> 0;
    // #GP pushes an error code first: [error, EIP, CS, EFLAGS, ...].
    assert.equal(cpu.rd(at, 4), 0, "#GP(0)");
    assert.equal(cpu.rd(at + 4, 4) >>> 0, 0, "the faulting instruction's IP");
    assert.equal(cpu.rd(at + 8, 4) >>> 0, V86_CS);
  }
});

test("V86 addresses are selector * 16 + offset", () => {
  // mov ax, [0x10] with DS = 0x2222 reads linear 0x22230; then int 0x21 to stop.
  const cpu = setup([0xa1, 0x10, 0x00, 0xcd, 0x21], 3);
  cpu.mem.ram[0x22230] = 0x78;
  cpu.mem.ram[0x22231] = 0x56;
  assert.equal(cpu.run(100).kind, "halt");
  assert.equal(cpu.regs[0] & 0xffff, 0x5678);
});
