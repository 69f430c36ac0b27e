import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { INFO_ADDR } from "../src/boot/multiboot.js";
import {
  ActivityState,
  type CpuHost,
  type Engine,
  type InterruptLines,
  type MultibootEntry,
  type Vcpu,
  type VcpuExit,
} from "../src/engine/engine.js";
import { UserError } from "../src/errors.js";
import { Machine, type MachineConfig, type OutputSink } from "../src/machine/machine.js";
import { aoutImage, pattern } from "./helpers/kernel-images.js";

/** One step of a scripted vCPU: does its I/O through the host, then exits. */
type Step = (host: CpuHost, vcpu: ScriptedVcpu) => VcpuExit;

/**
 * A vCPU that plays a script, one step per run() call, so the machine's run loop and exit
 * handling can be tested without a CPU.
 */
class ScriptedVcpu implements Vcpu {
  instructionsRetired = 0;
  readonly calls: string[] = [];
  stopRequested = false;
  private step = 0;

  constructor(
    readonly host: CpuHost,
    private readonly script: Step[],
    readonly id = 0,
  ) {}

  reset(): void {
    this.calls.push("reset");
    this.stopRequested = false;
  }
  setMultibootEntry(entry: MultibootEntry): void {
    this.calls.push(`entry eip=0x${entry.eip.toString(16)} ebx=0x${entry.ebx.toString(16)}`);
  }
  run(budget: number): VcpuExit {
    this.calls.push("run");
    const step = this.script[Math.min(this.step++, this.script.length - 1)];
    const exit = step(this.host, this);
    // A halted vCPU retires nothing; otherwise the step stands for the whole budget.
    if (exit.kind !== "halt") this.instructionsRetired += budget;
    return this.stopRequested ? { kind: "stopped" } : exit;
  }
  requestStop(): void {
    this.stopRequested = true;
  }
  // The interrupt inputs are recorded, not modelled: the script decides every exit.
  activity = ActivityState.Active;
  attachInterrupts(_lines: InterruptLines): void {
    this.calls.push("attach");
  }
  kick(): void {
    this.calls.push("kick");
  }
  nmi(): void {
    this.calls.push("nmi");
  }
  init(): void {
    this.calls.push("init");
  }
  sipi(vector: number): void {
    this.calls.push(`sipi ${vector}`);
  }
  describeState(): string {
    return "EAX=00000000 EBX=00000000\nEIP=00100000";
  }
}

type ScriptedEngine = Engine & { vcpu?: ScriptedVcpu; vcpus: ScriptedVcpu[] };

/** vCPU 0 plays `script`; the others (with SMP) play `apScript`, halted by default. */
function scriptedEngine(
  script: Step[],
  apScript: Step[] = [() => ({ kind: "halt", interruptsEnabled: false })],
): ScriptedEngine {
  const engine: ScriptedEngine = {
    name: "scripted",
    vcpus: [],
    createVcpu(host: CpuHost, id: number) {
      const vcpu = new ScriptedVcpu(host, id === 0 ? script : apScript, id);
      engine.vcpus.push(vcpu);
      if (id === 0) engine.vcpu = vcpu;
      return vcpu;
    },
  };
  return engine;
}

class Collect implements OutputSink {
  readonly bytes: number[] = [];
  flushes = 0;
  write(byte: number): void {
    this.bytes.push(byte);
  }
  flush(): void {
    this.flushes++;
  }
  text(): string {
    return String.fromCharCode(...this.bytes);
  }
}

const KERNEL = aoutImage(0x100000, pattern(64), 0x40, 0x100020);

function config(engine: Engine, over: Partial<MachineConfig> = {}): MachineConfig {
  return {
    memoryMiB: 4,
    smp: 1,
    kernel: KERNEL,
    cmdline: "kernel.bin",
    modules: [],
    serial: null,
    debugcon: null,
    noReboot: false,
    timeoutSeconds: null,
    engine,
    ...over,
  };
}

const outString =
  (s: string): Step =>
  (host) => {
    for (const c of s) host.io.write(0x3f8, 1, c.charCodeAt(0));
    return { kind: "budget" };
  };
const debugExit =
  (value: number): Step =>
  (host) => {
    host.io.write(0xf4, 4, value);
    return { kind: "budget" };
  };

describe("Machine", () => {
  it("loads the kernel and starts the vCPU at its multiboot entry", () => {
    const engine = scriptedEngine([() => ({ kind: "budget" })]);
    const machine = new Machine(config(engine));
    // The local APIC kicks the vCPU whenever its inputs may have changed: not counted here.
    const calls = engine.vcpu?.calls.filter((c) => c !== "kick");
    assert.deepEqual(calls, [
      "attach",
      "reset",
      `entry eip=0x100020 ebx=0x${INFO_ADDR.toString(16)}`,
    ]);
    assert.deepEqual(machine.mem.ram.subarray(0x100000, 0x100000 + KERNEL.length), KERNEL);
  });

  it("streams COM1 output and ends with the isa-debug-exit status", async () => {
    const serial = new Collect();
    const engine = scriptedEngine([outString("hello, "), outString("world\n"), debugExit(0x10)]);
    const machine = new Machine(config(engine, { serial }));
    assert.deepEqual(await machine.run(), { kind: "exit", status: 0x21 });
    assert.equal(serial.text(), "hello, world\n");
    assert.ok(serial.flushes >= 3, "output is flushed after every slice");
  });

  it("computes (v << 1) | 1 without 32-bit overflow", async () => {
    const machine = new Machine(config(scriptedEngine([debugExit(0xffffffff)])));
    assert.deepEqual(await machine.run(), { kind: "exit", status: 0x1ffffffff });
  });

  it("sends port 0xE9 output to the debug console and reads back 0xE9", async () => {
    const debugcon = new Collect();
    let readback = 0;
    const engine = scriptedEngine([
      (host) => {
        readback = host.io.read(0xe9, 1);
        host.io.write(0xe9, 1, 0x41);
        host.io.write(0x80, 1, 0x55); // a POST code: accepted, dropped
        return { kind: "budget" };
      },
      debugExit(0),
    ]);
    await new Machine(config(engine, { debugcon })).run();
    assert.equal(readback, 0xe9);
    assert.equal(debugcon.text(), "A");
  });

  it("places COM1-COM4 and the debug ports on the I/O bus", () => {
    const machine = new Machine(config(scriptedEngine([() => ({ kind: "budget" })])));
    for (const port of [0x3f8, 0x2f8, 0x3e8, 0x2e8]) {
      assert.equal(machine.io.read(port + 5, 1), 0x60, `LSR at 0x${port.toString(16)}`);
    }
    for (const port of [0x80, 0xe9, 0xf4, 0xf7])
      assert.ok(machine.io.find(port), `0x${port.toString(16)}`);
  });

  it("feeds console input to COM1", () => {
    const machine = new Machine(config(scriptedEngine([() => ({ kind: "budget" })])));
    machine.receiveSerial([0x71]);
    assert.equal(machine.io.read(0x3fd, 1) & 1, 1, "LSR.DR");
    assert.equal(machine.io.read(0x3f8, 1), 0x71);
  });

  it("stops with the fault chain and registers on a triple fault with noReboot", async () => {
    const engine = scriptedEngine([() => ({ kind: "triple-fault", chain: "#GP -> #DF -> #GP" })]);
    const result = await new Machine(config(engine, { noReboot: true })).run();
    assert.deepEqual(result, {
      kind: "shutdown",
      chain: "#GP -> #DF -> #GP",
      registers: "EAX=00000000 EBX=00000000\nEIP=00100000",
    });
  });

  it("resets on a triple fault: devices reset, kernel reloaded, vCPU restarted", async () => {
    const engine = scriptedEngine([
      (host) => {
        host.mem.write(0x100000, 4, 0xdeadbeef); // the guest overwrites its own image
        host.io.write(0x3f9, 1, 0x0f); // COM1 IER
        return { kind: "triple-fault", chain: "#DF" };
      },
      (host) => {
        assert.equal(host.mem.read(0x100000, 1), KERNEL[0], "kernel reloaded");
        assert.equal(host.io.read(0x3f9, 1), 0, "COM1 reset");
        return { kind: "budget" };
      },
      debugExit(1),
    ]);
    const result = await new Machine(config(engine)).run();
    assert.deepEqual(result, { kind: "exit", status: 3 });
    const entry = `entry eip=0x100020 ebx=0x${INFO_ADDR.toString(16)}`;
    assert.deepEqual(
      engine.vcpu?.calls.filter((c) => c !== "kick"),
      ["attach", "reset", entry, "run", "reset", entry, "run", "run"],
    );
  });

  it("sleeps on HLT without spinning until the timeout", async () => {
    const engine = scriptedEngine([() => ({ kind: "halt", interruptsEnabled: false })]);
    const machine = new Machine(config(engine, { timeoutSeconds: 0.05 }));
    assert.deepEqual(await machine.run(), { kind: "timeout", seconds: 0.05 });
    assert.equal(engine.vcpu?.calls.filter((c) => c === "run").length, 1);
  });

  it("ends a sleeping run when the user quits", async () => {
    const engine = scriptedEngine([() => ({ kind: "halt", interruptsEnabled: true })]);
    const machine = new Machine(config(engine));
    const done = machine.run();
    setTimeout(() => machine.quit(), 10);
    assert.deepEqual(await done, { kind: "quit" });
  });

  it("times out a guest that never stops", async () => {
    const engine = scriptedEngine([() => ({ kind: "budget" })]);
    const result = await new Machine(config(engine, { timeoutSeconds: 0.05 })).run();
    assert.deepEqual(result, { kind: "timeout", seconds: 0.05 });
  });

  it("decides each exit's action as data", () => {
    const machine = new Machine(config(scriptedEngine([() => ({ kind: "budget" })])));
    assert.deepEqual(machine.handleExit({ kind: "budget" }), { kind: "continue" });
    assert.deepEqual(machine.handleExit({ kind: "stopped" }), { kind: "continue" });
    assert.deepEqual(machine.handleExit({ kind: "halt", interruptsEnabled: false }), {
      kind: "idle",
    });
  });

  it("refuses bad CPU counts, memory sizes, speeds and over-long timeouts with a UserError", () => {
    const engine = scriptedEngine([() => ({ kind: "budget" })]);
    const refused = (over: Partial<MachineConfig>, message: RegExp) =>
      assert.throws(
        () => new Machine(config(engine, over)),
        (e: unknown) => e instanceof UserError && message.test(e.message),
      );
    refused({ smp: 0 }, /^CPU count 0 is out of range \(1 to 64\)/);
    refused({ smp: 65 }, /^CPU count 65 is out of range/);
    refused({ smp: 1.5 }, /^CPU count 1.5 is out of range/);
    refused({ mips: 0 }, /^CPU speed 0 MIPS is out of range/);
    refused({ memoryMiB: 1 }, /memory size 1 MiB is out of range \(2 to 3072 MiB\)/);
    refused({ memoryMiB: 3073 }, /out of range/);
    refused({ memoryMiB: 2.5 }, /out of range/);
    refused({ timeoutSeconds: 1e9 }, /timeout 1000000000 s is above/);
    refused({ kernel: new Uint8Array(100) }, /no multiboot header/);
  });
});

describe("Machine: the PC platform and SMP", () => {
  const LAPIC_ID = 0xfee00020;

  it("creates one vCPU per CPU, each seeing its own local APIC at the same address", async () => {
    const ids: number[][] = [[], [], []];
    const readId: Step = (host, vcpu) => {
      ids[vcpu.id].push(host.mem.read(LAPIC_ID, 4) >>> 24);
      return { kind: "budget" };
    };
    const engine = scriptedEngine([readId, readId, debugExit(0)], [readId]);
    const machine = new Machine(config(engine, { smp: 3 }));
    assert.equal(machine.vcpus.length, 3);
    assert.deepEqual(
      engine.vcpus.map((v) => v.id),
      [0, 1, 2],
    );
    await machine.run();
    assert.deepEqual(ids, [
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
    // Only the BSP enters the kernel; every vCPU is reset.
    assert.ok(engine.vcpus[0].calls.some((c) => c.startsWith("entry")));
    assert.ok(!engine.vcpus[1].calls.some((c) => c.startsWith("entry")));
  });

  it("sends IPIs through the local APICs: INIT and SIPI reach the target vCPU", async () => {
    const engine = scriptedEngine([
      (host) => {
        host.mem.write(0xfee00310, 4, 2 << 24); // ICR high: APIC ID 2
        host.mem.write(0xfee00300, 4, 0xc500); // INIT, level, assert
        host.mem.write(0xfee00300, 4, 0x0610); // startup, vector 0x10
        host.mem.write(0xfee00300, 4, 0x0400); // NMI
        return { kind: "budget" };
      },
      debugExit(0),
    ]);
    await new Machine(config(engine, { smp: 3 })).run();
    assert.deepEqual(
      engine.vcpus[2].calls.filter((c) => ["init", "sipi 16", "nmi"].includes(c)),
      ["init", "sipi 16", "nmi"],
    );
    assert.ok(!engine.vcpus[1].calls.includes("init"));
  });

  it("resets on the 8042's reset command, or stops with --no-reboot", async () => {
    const reset: Step = (host) => {
      host.io.write(0x64, 1, 0xfe);
      return { kind: "budget" };
    };
    const stopped = await new Machine(config(scriptedEngine([reset]), { noReboot: true })).run();
    assert.deepEqual(stopped, { kind: "reset", cause: "keyboard controller reset line" });
    const engine = scriptedEngine([reset, debugExit(2)]);
    assert.deepEqual(await new Machine(config(engine)).run(), { kind: "exit", status: 5 });
    assert.equal(engine.vcpu?.calls.filter((c) => c.startsWith("entry")).length, 2, "booted twice");
  });

  it("turns off through ACPI PM1a_CNT with SLP_TYP 0 and SLP_EN", async () => {
    const engine = scriptedEngine([
      (host) => {
        host.io.write(0x604, 2, 1 << 13);
        return { kind: "budget" };
      },
    ]);
    assert.deepEqual(await new Machine(config(engine)).run(), { kind: "poweroff" });
  });

  it("names the CPU that triple-faulted with SMP", async () => {
    const engine = scriptedEngine(
      [() => ({ kind: "budget" })],
      [() => ({ kind: "triple-fault", chain: "#DF" })],
    );
    const result = await new Machine(config(engine, { smp: 2, noReboot: true })).run();
    assert.equal(result.kind, "shutdown");
    assert.equal(result.kind === "shutdown" && result.chain, "CPU 1: #DF");
  });

  it("delivers the UART's interrupt through the I/O APIC to the local APIC", () => {
    const machine = new Machine(config(scriptedEngine([() => ({ kind: "budget" })])));
    const io = machine.platform.ioapic;
    io.write(0, 4, 0x10 + 2 * 4); // IRQ4's redirection entry: vector 0x34, fixed, APIC 0
    io.write(0x10, 4, 0x34);
    machine.io.write(0x3f9, 1, 0x01); // COM1 IER: received data available
    machine.receiveSerial([0x41]);
    const lapic = machine.platform.lapics[0];
    lapic.writeMmio(0xf0, 4, 0x1ff);
    assert.equal(lapic.hasInterrupt(), true);
    assert.equal(lapic.acknowledge(), 0x34);
  });
});
