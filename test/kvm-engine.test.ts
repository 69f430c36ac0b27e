/**
 * The kvm engine on /dev/kvm: vCPUs running small hand-assembled guests against a device
 * model (interrupt injection, HLT and wake-up, NMI, INIT-SIPI, the APIC's MSRs, stops and
 * slices, shutdown), and the hardware oracle running snippets at CPL 3. Every test skips
 * visibly, with the reason, when /dev/kvm cannot be used.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it, type TestContext } from "node:test";
import { ActivityState, type InterruptLines, type LocalApicPort } from "../src/engine/engine.js";
import { KvmOracle, ORACLE_LAYOUT } from "../src/engine/kvm/oracle.js";
import { KVM } from "../src/engine/kvm/abi.js";
import { hasVmx } from "../src/engine/kvm/cpuid.js";
import { KvmSystem, openError } from "../src/engine/kvm/system.js";
import { SETUP, T, kvmUnusable, le32, runUntilExit, testMachine } from "./helpers/kvm-host.js";
import { elfImage } from "./helpers/kernel-images.js";

/** Why /dev/kvm cannot be used here, or null when it can. */
let unusable: string | null = null;
before(() => {
  unusable = kvmUnusable();
});

function needKvm(t: TestContext): boolean {
  if (unusable === null) return true;
  t.skip(`kvm engine not usable on this host: ${unusable}`);
  return false;
}

const STI = [0xfb];
const CLI = [0xfa];
const HLT = [0xf4];
const SPIN = [0xeb, 0xfe];

/** One interrupt line with a queue of vectors, as an APIC would present them. */
class Lines implements InterruptLines {
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

describe("kvm engine: vCPUs", () => {
  const machines: { close(): void }[] = [];
  after(() => machines.forEach((m) => m.close()));
  const machine = (...args: Parameters<typeof testMachine>) => {
    const m = testMachine(...args);
    machines.push(m);
    return m;
  };

  it("injects an interrupt from the interrupt lines when the guest sets IF", async (t) => {
    if (!needKvm(t)) return;
    const { ports, cpus } = machine([...SETUP, ...STI, ...SPIN]);
    const lines = new Lines();
    lines.pending.push(0x41);
    cpus[0].attachInterrupts(lines);
    const exit = await runUntilExit(cpus[0]);
    assert.deepEqual(exit, { kind: "halt", interruptsEnabled: false });
    assert.deepEqual(ports.bytes, [0x41]);
    assert.equal(lines.acknowledged, 1);
    assert.equal(cpus[0].activity, ActivityState.Hlt);
  });

  it("sleeps in HLT until kicked with an interrupt, and takes an NMI with IF clear", async (t) => {
    if (!needKvm(t)) return;
    const { ports, cpus } = machine([...SETUP, ...STI, ...HLT, ...CLI, ...SPIN]);
    const lines = new Lines();
    cpus[0].attachInterrupts(lines);
    assert.deepEqual(await runUntilExit(cpus[0]), { kind: "halt", interruptsEnabled: true });
    // Still halted: nothing arrived.
    assert.deepEqual(await cpus[0].run(200_000), { kind: "halt", interruptsEnabled: true });
    lines.pending.push(0x50);
    cpus[0].kick();
    assert.deepEqual(await runUntilExit(cpus[0]), { kind: "halt", interruptsEnabled: false });
    assert.deepEqual(ports.bytes, [0x50]);
    // Halted with IF clear: an NMI still gets through (vector 2).
    cpus[0].nmi();
    assert.deepEqual(await runUntilExit(cpus[0]), { kind: "halt", interruptsEnabled: false });
    assert.deepEqual(ports.bytes, [0x50, 0x02]);
  });

  it("starts an application processor with INIT and SIPI", async (t) => {
    if (!needKvm(t)) return;
    const { mem, ports, cpus } = machine([...CLI, ...HLT], 2);
    // The AP's real-mode start-up code at 0x8000 (vector 8): mov al,0x55; out 0xe9,al; hlt.
    mem.ram.set([0xb0, 0x55, 0xe6, 0xe9, 0xf4], 0x8000);
    assert.equal(cpus[1].activity, ActivityState.WaitForSipi);
    assert.equal((await runUntilExit(cpus[1])).kind, "halt");
    assert.deepEqual(ports.bytes, []);
    cpus[1].init();
    cpus[1].sipi(0x08);
    assert.deepEqual(await runUntilExit(cpus[1]), { kind: "halt", interruptsEnabled: false });
    assert.deepEqual(ports.bytes, [0x55]);
    assert.match(cpus[1].describeState(), /CS=0800 base=00008000/);
  });

  it("routes the x2APIC and TSC-deadline MSRs and APIC base writes to the APIC", async (t) => {
    if (!needKvm(t)) return;
    const calls: string[] = [];
    const apic: LocalApicPort = {
      setApicBase: (lo, hi) => calls.push(`base ${hi}:${lo.toString(16)}`),
      readMsr: (i) => (i === 0x802 ? [0x37, 0] : undefined),
      writeMsr: (i, lo, hi) => (calls.push(`wrmsr ${i.toString(16)} ${hi}:${lo}`), true),
    };
    const code = [
      ...[0xb9, ...le32(0x1b), 0x0f, 0x32], // mov ecx, IA32_APIC_BASE; rdmsr
      ...[0x0d, ...le32(0xc00)], // or eax, EN | EXTD (x2APIC mode)
      ...[0x0f, 0x30], // wrmsr
      ...[0xb9, ...le32(0x802), 0x0f, 0x32], // mov ecx, x2APIC ID; rdmsr
      ...[0xe6, 0xe9], // out 0xe9, al
      ...[0xb9, ...le32(0x6e0), 0xb8, ...le32(1234), 0x31, 0xd2, 0x0f, 0x30], // TSC deadline
      ...CLI,
      ...HLT,
    ];
    const { ports, cpus } = machine(code, 1, apic);
    assert.deepEqual(await runUntilExit(cpus[0]), { kind: "halt", interruptsEnabled: false });
    assert.deepEqual(ports.bytes, [0x37]);
    assert.deepEqual(calls, ["base 0:fee00d00", "wrmsr 6e0 0:1234"]);
  });

  it("moves a TSC deadline between the guest's TSC and the machine's clock", async (t) => {
    if (!needKvm(t)) return;
    // The machine's clock: nanoseconds of wall time, from an origin far from the guest's.
    const clock = () => Math.round(performance.now() * 1e6) + 5_000_000;
    let deadline = -1;
    let ahead = -1;
    const apic: LocalApicPort = {
      setApicBase: () => {},
      readMsr: (i) => (i === 0x6e0 ? [deadline >>> 0, Math.floor(deadline / 2 ** 32)] : undefined),
      writeMsr: (i, lo, hi) => {
        deadline = hi * 2 ** 32 + lo;
        ahead = deadline - clock();
        return true;
      },
    };
    const khz = KvmSystem.open().libc.ioctlInt(
      machine([...CLI, ...HLT]).cpus[0].fd,
      KVM.GET_TSC_KHZ,
      0,
    );
    // The guest asks for "its TSC + 10 ms" and reads the deadline back.
    const code = [
      ...[0x0f, 0x31, 0x05, ...le32(khz * 10), 0x83, 0xd2, 0x00], // rdtsc; add eax, n; adc edx, 0
      ...[0xb9, ...le32(0x6e0), 0x0f, 0x30], // wrmsr IA32_TSC_DEADLINE
      ...[0x89, 0xc3, 0x89, 0xd6, 0x0f, 0x32], // mov ebx, eax; mov esi, edx; rdmsr
      ...[0x29, 0xd8, 0x19, 0xf2], // sub eax, ebx; sbb edx, esi: read back - written
      ...[0xa3, ...le32(0x7000), 0x89, 0x15, ...le32(0x7004)], // store the difference
      ...CLI,
      ...HLT,
    ];
    const { mem, cpus } = machine(code, 1, apic, clock);
    assert.deepEqual(await runUntilExit(cpus[0]), { kind: "halt", interruptsEnabled: false });
    // 10 ms ahead on the machine's clock, less the time the exit took (a millisecond or two
    // where KVM emulates ring 0).
    assert.ok(ahead > 7_000_000 && ahead <= 10_000_000, `deadline ${ahead} ns ahead`);
    // Read back: the deadline the guest wrote, within the conversions' rounding.
    const diff = new DataView(mem.ram.buffer).getBigInt64(0x7000, true);
    assert.ok(diff > -BigInt(khz) / 10n && diff < BigInt(khz) / 10n, `read back ${diff} ticks off`);
  });

  it("ends a slice on time, and stops at once when a device asks", async (t) => {
    if (!needKvm(t)) return;
    const { ports, cpus } = machine([...SPIN]);
    await cpus[0].run(1); // the first slice waits for the vCPU thread to start
    const t0 = performance.now();
    assert.deepEqual(await cpus[0].run(200_000), { kind: "budget" });
    assert.ok(performance.now() - t0 < 1000, "a slice of a spinning guest returns");
    assert.ok(cpus[0].instructionsRetired > 0);
    const stop = machine([0xe6, 0xf4, ...SPIN]); // out 0xf4, al
    assert.deepEqual(await runUntilExit(stop.cpus[0]), { kind: "stopped" });
    assert.deepEqual(ports.bytes, []);
  });

  it("reports a triple fault as a shutdown and can be reset", async (t) => {
    if (!needKvm(t)) return;
    // An IDT with limit 0: #UD cannot be delivered, nor the #GP, nor the #DF.
    const code = [0x0f, 0x01, 0x1d, ...le32(T.idtr + 8), 0x0f, 0x0b]; // lidt [empty]; ud2
    const { mem, cpus } = machine(code);
    new DataView(mem.ram.buffer).setUint16(T.idtr + 8, 0, true);
    const exit = await runUntilExit(cpus[0]);
    assert.deepEqual(exit, { kind: "triple-fault", chain: "shutdown (KVM_EXIT_SHUTDOWN)" });
    assert.match(cpus[0].describeState(), /^EAX=2badb002 /);
    assert.match(cpus[0].describeState(), /code: 0f 0b/);
    cpus[0].setMultibootEntry({ eip: T.code + 7, eax: 0, ebx: 0, esp: 0x8000 }); // straight to the ud2
    assert.equal(cpus[0].activity, ActivityState.Active);
    assert.equal((await runUntilExit(cpus[0])).kind, "triple-fault");
  });
});

describe("kvm engine: errors a user can act on", () => {
  it("names a missing or forbidden /dev/kvm", () => {
    assert.match(openError(2), /\/dev\/kvm does not exist.*use --engine soft/);
    assert.match(openError(13), /no permission to open \/dev\/kvm.*kvm/);
  });

  it("-enable-kvm: a kernel that uses VMX gets a hint when the host has no nested VMX", (t) => {
    if (!needKvm(t)) return;
    // mov al, 0; out 0xf4, al (exit status 1); then a VMXON [eax] that never runs.
    const code = new Uint8Array([0xb0, 0x00, 0xe6, 0xf4, 0xf3, 0x0f, 0xc7, 0x30]);
    const dir = mkdtempSync(join(tmpdir(), "shv-kvm-"));
    try {
      const kernel = join(dir, "vmx.elf");
      writeFileSync(
        kernel,
        elfImage({ bits: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: code }] }),
      );
      const r = spawnSync(
        process.execPath,
        ["bin/shv.js", "run", "-kernel", kernel, "-enable-kvm"],
        {
          cwd: fileURLToPath(new URL("..", import.meta.url)),
          encoding: "utf8",
          timeout: 30_000,
        },
      );
      assert.equal(r.status, 1, r.stderr);
      const nested = hasVmx(KvmSystem.open().supportedCpuid);
      const hint =
        /^shv: note: the kernel uses VMX \(VMXON at 0x100004\) but this host's KVM offers no nested VMX, so the guest has none; use --engine soft/;
      if (nested) assert.doesNotMatch(r.stderr, hint);
      else assert.match(r.stderr, hint);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("kvm oracle: snippets at CPL 3", () => {
  let oracle: KvmOracle | null = null;
  before(async () => {
    if (unusable === null) oracle = await KvmOracle.create();
  });
  after(() => oracle?.close());

  for (const mode of ["long64", "compat32", "prot32"] as const) {
    it(`${mode}: registers and flags after an ADD that carries out`, (t) => {
      if (!needKvm(t) || oracle === null) return;
      // mov eax, 5; add eax, ebx
      const r = oracle.run({
        mode,
        code: new Uint8Array([0xb8, 5, 0, 0, 0, 0x01, 0xd8]),
        regs: { rbx: 0xfffffffbn, rcx: 77n },
      });
      assert.equal(r.outcome, "completed");
      assert.equal(r.regs.rax, 0n);
      assert.equal(r.regs.rcx, 77n);
      // CF, PF, AF, ZF set; IF as given (SDM Vol. 1, 3.4.3).
      assert.equal(r.regs.rflags, 0x257n);
      assert.equal(r.regs.rip, BigInt(ORACLE_LAYOUT.code + 7));
      assert.equal(r.cs & 3, 3);
    });

    it(`${mode}: faults report the vector, error code and faulting RIP`, (t) => {
      if (!needKvm(t) || oracle === null) return;
      const ud = oracle.run({ mode, code: new Uint8Array([0x90, 0x0f, 0x0b]) });
      assert.deepEqual([ud.outcome, ud.vector, ud.errorCode], ["exception", 6, undefined]);
      assert.equal(ud.regs.rip, BigInt(ORACLE_LAYOUT.code + 1));
      const de = oracle.run({ mode, code: new Uint8Array([0x31, 0xc9, 0xf7, 0xf1]) }); // div ecx
      assert.deepEqual([de.vector, de.regs.rip], [0, BigInt(ORACLE_LAYOUT.code + 2)]);
      // CLI at CPL 3 with IOPL 0: #GP(0).
      const gp = oracle.run({ mode, code: new Uint8Array([0xfa]) });
      assert.deepEqual([gp.vector, gp.errorCode, gp.regs.rip], [13, 0, BigInt(ORACLE_LAYOUT.code)]);
    });

    it(`${mode}: the data region goes in and comes back`, (t) => {
      if (!needKvm(t) || oracle === null) return;
      // mov eax, [data]; not eax; mov [data+4], eax
      const d = ORACLE_LAYOUT.data;
      const code =
        mode === "long64"
          ? [0x8b, 0x04, 0x25, ...le32(d), 0xf7, 0xd0, 0x89, 0x04, 0x25, ...le32(d + 4)]
          : [0xa1, ...le32(d), 0xf7, 0xd0, 0xa3, ...le32(d + 4)];
      const r = oracle.run({
        mode,
        code: new Uint8Array(code),
        data: new Uint8Array([1, 2, 3, 4]),
      });
      assert.equal(r.outcome, "completed");
      assert.deepEqual([...r.data.subarray(0, 8)], [1, 2, 3, 4, 0xfe, 0xfd, 0xfc, 0xfb]);
    });

    it(`${mode}: a snippet that never ends times out`, (t) => {
      if (!needKvm(t) || oracle === null) return;
      const r = oracle.run({ mode, code: new Uint8Array(SPIN), timeoutMs: 100 });
      assert.equal(r.outcome, "timeout");
    });
  }

  it("long64: 64-bit registers, and #PF with CR2 on a supervisor page", (t) => {
    if (!needKvm(t) || oracle === null) return;
    // mov rax, rbx; shl rax, 4 (REX.W)
    const r = oracle.run({
      mode: "long64",
      code: new Uint8Array([0x48, 0x89, 0xd8, 0x48, 0xc1, 0xe0, 0x04]),
      regs: { rbx: 0x1234567890abcdefn },
    });
    assert.equal(r.regs.rax, 0x234567890abcdef0n);
    // mov [0x1000], eax: a user write to a supervisor page: #PF(P|W|U).
    const pf = oracle.run({
      mode: "long64",
      code: new Uint8Array([0x89, 0x04, 0x25, ...le32(0x1000)]),
    });
    assert.deepEqual([pf.vector, pf.errorCode, pf.cr2], [14, 7, 0x1000n]);
  });
});

/**
 * A two-CPU kernel: the BSP starts the AP with INIT and SIPI through its local APIC's ICR
 * (xAPIC page), the AP prints "A" on the 0xE9 console from real mode, then the BSP sends it
 * an NMI IPI, whose real-mode handler prints "N"; the BSP then exits with status 1.
 */
function smpKernel(): Uint8Array {
  const mmio = (addr: number, value: number) => [0xc7, 0x05, ...le32(addr), ...le32(value)];
  const ICR_LO = 0xfee00300;
  const ICR_HI = 0xfee00310;
  const waitFlag = (addr: number) => [0x80, 0x3d, ...le32(addr), 0x01, 0x75, 0xf7]; // cmp; jne
  const ap = new Uint8Array(0x10a);
  // At 0x8000 (SIPI vector 8), real mode: mov al,'A'; out 0xe9,al; mov byte [0x7000],1; hlt
  ap.set([0xb0, 0x41, 0xe6, 0xe9, 0xc6, 0x06, 0x00, 0x70, 0x01, 0xf4, 0xeb, 0xfd], 0);
  // At 0x8100, the NMI handler (IVT entry 2): mov al,'N'; out 0xe9,al; mov byte [0x7001],1
  ap.set([0xb0, 0x4e, 0xe6, 0xe9, 0xc6, 0x06, 0x01, 0x70, 0x01, 0xf4], 0x100);
  const bsp = (apAt: number) => [
    ...[0xbe, ...le32(apAt), 0xbf, ...le32(0x8000), 0xb9, ...le32(ap.length), 0xfc, 0xf3, 0xa4],
    ...mmio(0x8, 0x00008100), // IVT[2] = 0000:8100
    ...mmio(0xfee000f0, 0x1ff), // SVR: APIC software-enabled
    ...mmio(ICR_HI, 0x01000000), // destination: APIC ID 1
    ...mmio(ICR_LO, 0x4500), // INIT, assert
    // The MP specification's pause between INIT and SIPI (B.4.1): a loop of 20,000.
    ...[0xb9, ...le32(20_000), 0x49, 0x75, 0xfd],
    ...mmio(ICR_HI, 0x01000000),
    ...mmio(ICR_LO, 0x4608), // startup, vector 8
    ...waitFlag(0x7000),
    ...mmio(ICR_HI, 0x01000000),
    ...mmio(ICR_LO, 0x4400), // NMI
    ...waitFlag(0x7001),
    ...[0x31, 0xc0, 0xe7, 0xf4, 0xf4, 0xeb, 0xfd], // out 0xf4, eax (0): exit status 1
  ];
  const length = bsp(0).length;
  const code = new Uint8Array([...bsp(0x100000 + length), ...ap]);
  return elfImage({ bits: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: code }] });
}

describe("SMP through the platform's local APICs", () => {
  for (const engine of ["soft", "kvm"] as const) {
    it(`${engine}: INIT-SIPI starts the AP, an NMI IPI reaches it`, (t) => {
      if (engine === "kvm" && !needKvm(t)) return;
      const dir = mkdtempSync(join(tmpdir(), "shv-smp-"));
      try {
        const kernel = join(dir, "smp.elf");
        writeFileSync(kernel, smpKernel());
        const args = ["bin/shv.js", "run", "--kernel", kernel, "--engine", engine, "--smp", "2"];
        args.push("--debugcon", "stdio", "--serial", "none", "--timeout", "30");
        const r = spawnSync(process.execPath, args, {
          cwd: fileURLToPath(new URL("..", import.meta.url)),
          encoding: "utf8",
          timeout: 60_000,
        });
        assert.equal(r.stdout, "AN", r.stderr);
        assert.equal(r.status, 1, r.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

/**
 * A kernel that counts its boots at 0x7000 (memory the loader never writes) and triple
 * faults (UD2 with an empty IDT) until the third boot, which exits with status 1.
 */
function tripleKernel(): Uint8Array {
  const idtr = 0x100040; // six zero bytes in the image: limit 0, base 0
  const code = [
    ...[0xfe, 0x05, ...le32(0x7000)], // inc byte [0x7000]
    ...[0x80, 0x3d, ...le32(0x7000), 0x03], // cmp byte [0x7000], 3
    ...[0x74, 0x09], // je exit
    ...[0x0f, 0x01, 0x1d, ...le32(idtr)], // lidt [idtr]
    ...[0x0f, 0x0b], // ud2
    ...[0x31, 0xc0, 0xe7, 0xf4, 0xf4, 0xeb, 0xfd], // exit: out 0xf4, eax (0)
  ];
  const data = new Uint8Array(0x48);
  data.set(code);
  return elfImage({ bits: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data }] });
}

describe("exit statuses through the shv command", () => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "shv-exits-"));
    writeFileSync(join(dir, "triple.elf"), tripleKernel());
    writeFileSync(
      join(dir, "spin.elf"),
      elfImage({
        bits: 32,
        entry: 0x100000,
        segments: [{ paddr: 0x100000, data: new Uint8Array([0xfa, 0xeb, 0xfe]) }],
      }),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const shv = (...args: string[]) =>
    spawnSync(process.execPath, ["bin/shv.js", "run", "--serial", "none", ...args], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
    });

  for (const engine of ["soft", "kvm"] as const) {
    it(`${engine}: timeout 124, triple fault 3 with --no-reboot, else a reset`, (t) => {
      if (engine === "kvm" && !needKvm(t)) return;
      const spin = shv("--kernel", join(dir, "spin.elf"), "--engine", engine, "--timeout", "1");
      assert.equal(spin.status, 124, spin.stderr);
      assert.equal(spin.stderr, "shv: timeout after 1 s\n");

      const triple = join(dir, "triple.elf");
      const down = shv("--kernel", triple, "--engine", engine, "--no-reboot");
      assert.equal(down.status, 3, down.stderr);
      assert.match(down.stderr, /^shv: triple fault, guest shut down \(--no-reboot\): /);
      assert.match(down.stderr, /\nEIP=00100016 /);
      // Without --no-reboot the machine resets and reloads the kernel; the third boot exits.
      const reset = shv("--kernel", triple, "--engine", engine, "--timeout", "30");
      assert.equal(reset.status, 1, reset.stderr);
    });
  }
});
