/**
 * What the host's KVM can do, for the kvm-engine tests: whether /dev/kvm is usable at all,
 * and probes of ring-0 features that a software implementation of KVM may lack (some run
 * the guest kernel through KVM's instruction emulator, which handles neither a protected-
 * mode IRET nor INT n, nor paging outside long mode). Each probe runs a few instructions
 * in a small VM and recognises only the specific failure it looks for; QEMU with
 * -enable-kvm fails the same guest kernels in the same way on such hosts.
 */
import { readFileSync } from "node:fs";
import { parseElf } from "../../src/boot/elf.js";
import type { LocalApicPort } from "../../src/engine/engine.js";
import { closeKvmMachine, kvmEngine } from "../../src/engine/kvm/index.js";
import { KvmOracle } from "../../src/engine/kvm/oracle.js";
import { KvmSystem } from "../../src/engine/kvm/system.js";
import type { KvmVcpu } from "../../src/engine/kvm/vcpu.js";
import { Bus, type AccessSize, type BusDevice } from "../../src/machine/bus.js";
import { PhysicalMemory } from "../../src/machine/memory.js";

/** Why the kvm engine cannot run here, or null when /dev/kvm is usable. */
export function kvmUnusable(): string | null {
  try {
    KvmSystem.open();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Port 0xE9 records bytes; port 0xF4 asks the vCPU to stop (as isa-debug-exit does). */
export class TestPorts implements BusDevice {
  readonly name = "test-ports";
  readonly bytes: number[] = [];
  stop: (() => void) | null = null;
  read(_offset: number, _size: AccessSize): number {
    return 0xff;
  }
  write(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) this.bytes.push(value & 0xff);
    else this.stop?.();
  }
}

/** Guest-physical layout of the test machines. */
export const T = {
  code: 0x10000,
  gdt: 0x1000,
  idtr: 0x2000,
  gdtr: 0x2010,
  idt: 0x3000,
  /** Vector v's handler writes v to port 0xE9, then halts with IF clear. */
  handlers: 0x4000,
  stackTop: 0x9000,
  pageTables: 0x20000,
} as const;

export function le32(x: number): number[] {
  return [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];
}

/** mov esp, stackTop; lgdt [gdtr]; lidt [idtr] */
export const SETUP = [
  ...[0xbc, ...le32(T.stackTop)],
  ...[0x0f, 0x01, 0x15, ...le32(T.gdtr)],
  ...[0x0f, 0x01, 0x1d, ...le32(T.idtr)],
];

/**
 * A 1 MiB kvm machine with the test ports and `vcpus` vCPUs, vCPU 0 at T.code in flat
 * 32-bit ring 0, with a GDT (code 0x08, data 0x10) and an IDT ready for SETUP to load.
 */
export function testMachine(code: number[], vcpus = 1, apic?: LocalApicPort, tsc?: () => number) {
  const mem = new PhysicalMemory(1 << 20, kvmEngine.allocateRam!(1 << 20));
  const io = new Bus("io");
  const ports = new TestPorts();
  io.register(0xe9, 1, ports);
  io.register(0xf4, 1, {
    name: "stop",
    read: () => 0xff,
    write: (_o, s, v) => ports.write(1, s, v),
  });
  const v = new DataView(mem.ram.buffer);
  v.setBigUint64(T.gdt + 8, 0x00cf9a000000ffffn, true);
  v.setBigUint64(T.gdt + 16, 0x00cf92000000ffffn, true);
  v.setUint16(T.gdtr, 23, true);
  v.setUint32(T.gdtr + 2, T.gdt, true);
  v.setUint16(T.idtr, 0x7ff, true);
  v.setUint32(T.idtr + 2, T.idt, true);
  for (let vec = 0; vec < 256; vec++) {
    const h = T.handlers + vec * 8;
    // Interrupt gates (type 14), DPL 0, to CS 0x08.
    v.setUint32(T.idt + vec * 8, (0x08 << 16) | (h & 0xffff), true);
    v.setUint32(T.idt + vec * 8 + 4, (h & 0xffff0000) | 0x8e00, true);
    mem.ram.set([0xb0, vec, 0xe6, 0xe9, 0xf4, 0xeb, 0xfd], h); // mov al,v; out 0xe9,al; hlt
  }
  mem.ram.set(code, T.code);
  const cpus = Array.from(
    { length: vcpus },
    (_, id) => kvmEngine.createVcpu({ mem, io, apic, tsc }, id) as KvmVcpu,
  );
  cpus[0].setMultibootEntry({ eip: T.code, eax: 0x2badb002, ebx: 0, esp: 0x8000 });
  ports.stop = () => cpus[0].requestStop();
  return { mem, ports, cpus, close: () => closeKvmMachine(mem) };
}

/**
 * Runs slices until the vCPU reports something other than "budget", or `seconds` pass
 * after the first slice (which also waits for the vCPU threads to start: slow under load).
 */
export async function runUntilExit(cpu: KvmVcpu, seconds = 30) {
  let end = Infinity;
  for (;;) {
    const exit = await cpu.run(200_000);
    if (end === Infinity) end = performance.now() + seconds * 1000;
    if (exit.kind !== "budget" || performance.now() > end) return exit;
  }
}

/** Ring-0 features the guest kernels need, each with the probe that checks it. */
export type Ring0Feature = "iret" | "int-n" | "paging-32bit" | "paging-pae";

const PROBES: Record<Ring0Feature, { what: string; code: number[] }> = {
  // pushfd; push cs; push offset next; iretd; next: mov al, 0xaa; out 0xe9, al; hlt
  iret: {
    what: "emulate a protected-mode IRET at CPL 0",
    code: [
      0x9c,
      0x0e,
      0x68,
      ...le32(T.code + SETUP.length + 8),
      0xcf,
      0xb0,
      0xaa,
      0xe6,
      0xe9,
      0xf4,
    ],
  },
  // int 0x41: its handler writes 0x41.
  "int-n": { what: "emulate INT n in protected mode at CPL 0", code: [0xcd, 0x41, 0xf4] },
  // cr3 = page directory with one 4 MiB page (PSE); cr4.PSE; cr0.PG; mov al, 0xaa; out
  "paging-32bit": {
    what: "enable 32-bit paging (MOV to CR0 with PG=1 raises #GP)",
    code: [
      ...[0xb8, ...le32(T.pageTables), 0x0f, 0x22, 0xd8], // mov eax, pd; mov cr3, eax
      ...[0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x10, 0x0f, 0x22, 0xe0], // cr4 |= PSE
      ...[0x0f, 0x20, 0xc0, 0x0d, ...le32(0x80000000), 0x0f, 0x22, 0xc0], // cr0 |= PG
      ...[0xb0, 0xaa, 0xe6, 0xe9, 0xf4],
    ],
  },
  // cr3 = PDPT whose first entry maps a PD with one 2 MiB page; cr4.PAE; cr0.PG
  "paging-pae": {
    what: "enable PAE paging (MOV to CR0 with PG=1 raises #GP)",
    code: [
      ...[0xb8, ...le32(T.pageTables + 0x1000), 0x0f, 0x22, 0xd8], // mov eax, pdpt; mov cr3
      ...[0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0], // cr4 |= PAE
      ...[0x0f, 0x20, 0xc0, 0x0d, ...le32(0x80000000), 0x0f, 0x22, 0xc0], // cr0 |= PG
      ...[0xb0, 0xaa, 0xe6, 0xe9, 0xf4],
    ],
  },
};

const probed = new Map<Ring0Feature, string | null>();

/**
 * Null when the host's KVM runs `feature` at ring 0, else why not. A probe that fails in
 * any other way than the one it looks for throws: that is a bug to see, not to skip.
 */
export async function ring0Limit(feature: Ring0Feature): Promise<string | null> {
  const known = probed.get(feature);
  if (known !== undefined) return known;
  const probe = PROBES[feature];
  const m = testMachine([...SETUP, ...probe.code]);
  const v = new DataView(m.mem.ram.buffer);
  v.setUint32(T.pageTables, 0x83 | 0x80, true); // PDE: P, RW, PS (4 MiB)
  v.setBigUint64(T.pageTables + 0x1000, BigInt(T.pageTables + 0x2000) | 1n, true); // PDPTE
  v.setBigUint64(T.pageTables + 0x2000, 0x83n, true); // PAE PDE: P, RW, PS (2 MiB)
  let limit: string | null;
  try {
    const exit = await runUntilExit(m.cpus[0]);
    const expected = feature === "int-n" ? 0x41 : 0xaa;
    if (m.ports.bytes[0] === expected) limit = null;
    else if (m.ports.bytes[0] === 13 && feature.startsWith("paging")) limit = probe.what;
    else throw new Error(`probe ${feature}: ${JSON.stringify(exit)}, port bytes ${m.ports.bytes}`);
  } catch (e) {
    if (!/could not emulate an instruction/.test((e as Error).message)) throw e;
    limit = probe.what;
  } finally {
    m.close();
  }
  probed.set(feature, limit);
  return limit;
}

/** What a `shv run` of a guest kernel printed and returned. */
export interface GuestRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

let userIntN: Promise<string | null> | null = null;

/** Whether INT n at CPL 3 (through a DPL-3 gate) raises #UD on this host: a KVM limitation. */
function userIntNLimit(): Promise<string | null> {
  userIntN ??= (async () => {
    const oracle = await KvmOracle.create();
    try {
      const r = oracle.run({ mode: "long64", code: new Uint8Array([0xcd, 0x80]) });
      if (r.outcome === "exception" && r.vector === 0x80) return null;
      return `run INT n at CPL 3: INT 0x80 through a DPL-3 gate raises #${r.vector === 6 ? "UD" : r.vector}`;
    } finally {
      oracle.close();
    }
  })();
  return userIntN;
}

/** Up to 4 bytes of a kernel's code at virtual address `addr` (its ELF program headers). */
function codeAt(kernelFile: string, addr: number): Uint8Array {
  const file = new Uint8Array(readFileSync(kernelFile));
  for (const s of parseElf(file).segments) {
    const off = addr - Number(s.vaddr);
    if (off >= 0 && off < s.fileSize)
      return file.slice(s.offset + off, s.offset + Math.min(off + 4, s.fileSize));
  }
  return new Uint8Array(0);
}

/**
 * Why a guest kernel that failed on the kvm engine failed because of the host's KVM, with
 * the evidence, or null when the failure must count. Recognised, each confirmed by a probe:
 * KVM's instruction emulator giving up on a ring-0 instruction; #GP on the MOV to CR0 that
 * enables paging; #UD on INT n at CPL 3. QEMU with -enable-kvm fails the same way there.
 */
export async function kvmHostLimitation(r: GuestRun, kernelFile: string): Promise<string | null> {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
  const emulation = /KVM could not emulate an instruction; instruction bytes ([0-9a-f ]+)/.exec(
    r.stderr,
  );
  if (emulation !== null) {
    const limit = await ring0Limit("int-n");
    if (limit === null) return null;
    const insn = emulation[1].split(" ").slice(0, 4).join(" ");
    return `the host's KVM runs ring-0 code in its instruction emulator (a probe: it cannot ${limit}), which gave up at ${insn}`;
  }
  const fault =
    /FAIL unexpected exception: vector=(\d+) error=0x[0-9a-f]+ [er]ip=0x([0-9a-f]+)/.exec(r.stdout);
  if (fault === null) return null;
  const vector = Number(fault[1]);
  const code = codeAt(kernelFile, parseInt(fault[2], 16));
  const movToCr0 = code[0] === 0x0f && code[1] === 0x22 && ((code[2] >> 3) & 7) === 0;
  if (vector === 13 && movToCr0) {
    const limit = await ring0Limit(
      /[/\\]pae[/\\]/.test(kernelFile) ? "paging-pae" : "paging-32bit",
    );
    return limit === null ? null : `the host's KVM cannot ${limit} (#GP at ${hex(code)})`;
  }
  if (vector === 6 && code[0] === 0xcd) {
    const limit = await userIntNLimit();
    return limit === null ? null : `the host's KVM cannot ${limit} (#UD at ${hex(code)})`;
  }
  return null;
}
