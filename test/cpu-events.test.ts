/**
 * How the software CPU takes events from its interrupt inputs (engine.ts: InterruptLines,
 * nmi, init, sipi), driven through a fake set of lines: the priority of NMI over INTR (SDM
 * Vol. 3A, 6.9), EFLAGS.IF, the one-instruction shadows of STI and MOV SS (6.8.3), NMI
 * blocking until IRET (6.7.1), HLT ending on an event, and INIT and startup IPIs starting
 * an AP in real mode at vector << 12 (9.4, 11.6.1).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CS, EAX, ESP } from "../src/cpu/arch.js";
import { Cpu } from "../src/cpu/cpu.js";
import { IF } from "../src/cpu/flags.js";
import { ActivityState, type InterruptLines } from "../src/engine/engine.js";
import { Bus } from "../src/machine/bus.js";
import { PhysicalMemory } from "../src/machine/memory.js";

const CODE = 0x1000;
const GDT = 0x1800;
const IDT = 0x2000;
/** Handlers append their vector here, at LOG_INDEX's count, and store their return EIP. */
const LOG = 0x3000;
const LOG_INDEX = 0x3100;
const RETURN_EIP = 0x3200;
const HANDLERS = 0x4000;
const STACK = 0x8000;
const TRAMPOLINE = 0x9000;

/** An INTR source: a queue of vectors the acknowledge hands out in order. */
class FakeLines implements InterruptLines {
  readonly pending: number[] = [];
  acknowledged = 0;
  hasInterrupt(): boolean {
    return this.pending.length > 0;
  }
  acknowledge(): number {
    this.acknowledged++;
    return this.pending.shift()!;
  }
}

const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

/** A handler for `vector`: appends it to the log, records its return EIP, IRETs. */
function handler(vector: number): number[] {
  return [
    ...[0xa1, ...le32(LOG_INDEX)], // mov eax, [LOG_INDEX]
    ...[0xc6, 0x80, ...le32(LOG), vector], // mov byte [eax+LOG], vector
    ...[0xff, 0x05, ...le32(LOG_INDEX)], // inc dword [LOG_INDEX]
    ...[0x8b, 0x0c, 0x24], // mov ecx, [esp]
    ...[0x89, 0x0d, ...le32(RETURN_EIP)], // mov [RETURN_EIP], ecx
    0xcf, // iret
  ];
}
const HANDLER_INSTRUCTIONS = 6;
const VECTORS = [2, 0x20, 0x21];

/**
 * A CPU (id `id`) in flat 32-bit protected mode with a GDT, interrupt gates for VECTORS and
 * `code` at CODE, the fake lines attached.
 */
function setUp(code: number[], id = 0) {
  const mem = new PhysicalMemory(1 << 20);
  const cpu = new Cpu({ mem, io: new Bus("io") }, id);
  const lines = new FakeLines();
  cpu.attachInterrupts(lines);
  const put = (addr: number, bytes: number[]) => mem.load(addr, Uint8Array.from(bytes));
  // Null, flat code (0x08) and flat data (0x10) descriptors.
  put(
    GDT,
    [
      0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0xcf, 0, 0xff, 0xff, 0, 0, 0, 0x92, 0xcf,
      0,
    ],
  );
  VECTORS.forEach((v, i) => {
    const h = HANDLERS + 0x40 * i;
    put(h, handler(v));
    // 32-bit interrupt gate, DPL 0, selector 0x08.
    put(IDT + 8 * v, [h & 0xff, (h >>> 8) & 0xff, 0x08, 0, 0, 0x8e, (h >>> 16) & 0xff, h >>> 24]);
  });
  put(CODE, code);
  if (id === 0) {
    cpu.setMultibootEntry({ eip: CODE, eax: 0, ebx: 0, esp: 0x8000 });
    cpu.gdtrBase = GDT;
    cpu.gdtrLimit = 23;
    cpu.idtrBase = IDT;
    cpu.idtrLimit = 8 * 256 - 1;
    cpu.regs[ESP] = STACK;
  }
  const log = () => Array.from(mem.ram.subarray(LOG, LOG + mem.read(LOG_INDEX, 4)));
  const returnEip = () => mem.read(RETURN_EIP, 4);
  return { cpu, mem, lines, log, returnEip, put };
}

const NOP = 0x90;
const nops = (n: number) => new Array<number>(n).fill(NOP);

describe("CPU event acceptance", () => {
  it("takes a pending NMI before a pending maskable interrupt", () => {
    const { cpu, lines, log } = setUp([0xfb, ...nops(40)]); // sti; nops
    cpu.run(1); // STI
    lines.pending.push(0x20);
    cpu.nmi();
    cpu.kick();
    cpu.run(1 + 2 * HANDLER_INSTRUCTIONS + 4);
    assert.deepEqual(log(), [2, 0x20]);
    assert.equal(lines.acknowledged, 1);
  });

  it("leaves INTR pending while EFLAGS.IF is clear", () => {
    const { cpu, lines, log } = setUp(nops(20)); // the multiboot entry state has IF = 0
    lines.pending.push(0x20);
    cpu.kick();
    assert.deepEqual(cpu.run(10), { kind: "budget" });
    assert.equal(cpu.flags.get() & IF, 0);
    assert.deepEqual(log(), []);
    assert.equal(lines.acknowledged, 0, "no acknowledge cycle while masked");
    assert.equal(cpu.eip, CODE + 10);
  });

  it("takes INTR only after the instruction that follows STI", () => {
    const { cpu, lines, log, returnEip } = setUp([0xfb, NOP, NOP, NOP]); // sti; nop; nop
    lines.pending.push(0x21);
    cpu.kick();
    cpu.run(2 + HANDLER_INSTRUCTIONS);
    assert.deepEqual(log(), [0x21]);
    assert.equal(returnEip(), CODE + 2, "STI's shadow covers exactly one instruction");
  });

  it("holds an NMI back for the instruction after MOV SS", () => {
    // mov eax, 0x10; mov ss, ax; nop; nop
    const { cpu, log, returnEip } = setUp([0xb8, 0x10, 0, 0, 0, 0x8e, 0xd0, NOP, NOP]);
    cpu.run(2);
    cpu.nmi(); // pending at the boundary right after MOV SS
    cpu.run(1 + HANDLER_INSTRUCTIONS);
    assert.deepEqual(log(), [2]);
    assert.equal(returnEip(), CODE + 8, "delivered after the NOP that follows MOV SS");
  });

  it("blocks further NMIs until the NMI handler's IRET", () => {
    const { cpu, log } = setUp(nops(40));
    cpu.nmi();
    cpu.run(2); // into the handler
    cpu.nmi(); // arrives while the first is in service
    cpu.run(HANDLER_INSTRUCTIONS - 2);
    assert.deepEqual(log(), [2], "the second NMI waits");
    cpu.run(HANDLER_INSTRUCTIONS + 1); // the first IRET, then the second NMI
    assert.deepEqual(log(), [2, 2]);
  });

  it("wakes from HLT for a maskable interrupt when IF is set, and resumes after HLT", () => {
    const { cpu, lines, log, returnEip } = setUp([0xfb, 0xf4, ...nops(10)]); // sti; hlt
    assert.deepEqual(cpu.run(100), { kind: "halt", interruptsEnabled: true });
    assert.equal(cpu.activity, ActivityState.Hlt);
    assert.deepEqual(cpu.run(100), { kind: "halt", interruptsEnabled: true }, "still asleep");
    lines.pending.push(0x20);
    cpu.kick();
    cpu.run(HANDLER_INSTRUCTIONS + 1);
    assert.equal(cpu.activity, ActivityState.Active);
    assert.deepEqual(log(), [0x20]);
    assert.equal(returnEip(), CODE + 2);
  });

  it("stays in HLT with IF clear until an NMI", () => {
    const { cpu, lines, log, returnEip } = setUp([0xfa, 0xf4, ...nops(10)]); // cli; hlt
    assert.deepEqual(cpu.run(100), { kind: "halt", interruptsEnabled: false });
    lines.pending.push(0x20);
    cpu.kick();
    assert.deepEqual(cpu.run(100), { kind: "halt", interruptsEnabled: false });
    cpu.nmi();
    cpu.run(HANDLER_INSTRUCTIONS);
    assert.deepEqual(log(), [2]);
    assert.equal(returnEip(), CODE + 2);
  });

  it("parks an AP until a startup IPI, which starts it in real mode at vector << 12", () => {
    // At 0x9000: mov ax, 0x1234; mov bx, cs; hlt (16-bit code).
    const { cpu, put, lines } = setUp([], 1);
    put(TRAMPOLINE, [0xb8, 0x34, 0x12, 0x8c, 0xcb, 0xf4]);
    assert.equal(cpu.activity, ActivityState.WaitForSipi);
    assert.equal(cpu.run(100).kind, "halt");
    assert.equal(cpu.instructionsRetired, 0);
    lines.pending.push(0x20); // an interrupt does not start an AP waiting for SIPI
    cpu.kick();
    assert.equal(cpu.run(100).kind, "halt");
    assert.equal(cpu.instructionsRetired, 0);

    cpu.sipi(TRAMPOLINE >>> 12);
    assert.deepEqual(cpu.run(100), { kind: "halt", interruptsEnabled: false });
    assert.equal(cpu.instructionsRetired, 3);
    assert.equal(cpu.regs[EAX] & 0xffff, 0x1234);
    assert.equal(cpu.segs[CS].selector, 0x0900);
    assert.equal(cpu.segs[CS].base, 0x9000);
    assert.equal(cpu.cr0 & 1, 0, "real mode");
    assert.equal(cpu.regs[3] & 0xffff, 0x0900, "BX = CS");
    assert.equal(cpu.eip, 6);
  });

  it("ignores a second startup IPI once the AP runs, and INIT sends it back to wait", () => {
    const { cpu, put } = setUp([], 1);
    put(TRAMPOLINE, [0xeb, 0xfe]); // jmp $
    cpu.sipi(TRAMPOLINE >>> 12);
    cpu.run(10);
    cpu.sipi(0x0a);
    cpu.run(10);
    assert.equal(cpu.segs[CS].base, 0x9000, "the second SIPI is ignored");
    cpu.init();
    assert.equal(cpu.run(10).kind, "halt");
    assert.equal(cpu.activity, ActivityState.WaitForSipi);
    put(0xa000, [0xf4]); // hlt
    cpu.sipi(0x0a);
    cpu.run(10);
    assert.equal(cpu.segs[CS].base, 0xa000);
    assert.equal(cpu.activity, ActivityState.Hlt);
  });
});
