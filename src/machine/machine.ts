/**
 * The virtual PC: RAM, the buses with the PC platform's devices (platform.ts), the vCPUs,
 * a multiboot kernel, and the run: the scheduler (scheduler.ts) runs the vCPUs in slices
 * on the virtual clock (clock.ts) and asks handleExit, a plain function of each exit, what
 * follows it (design.md, decision 1).
 */
import { loadMultiboot, type MultibootModule } from "../boot/multiboot.js";
import type { Engine, Vcpu, VcpuExit } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { Bus } from "./bus.js";
import { VirtualClock } from "./clock.js";
import { PhysicalMemory } from "./memory.js";
import { PcPlatform } from "./platform.js";
import { Scheduler, type ExitAction, type RunResult } from "./scheduler.js";

export type { ExitAction, RunResult } from "./scheduler.js";
export { COM_PORTS } from "./platform.js";

const MIB = 1024 * 1024;
/** RAM limits: the info structure needs low memory and the kernel loads from 1 MiB up. */
export const MIN_MEMORY_MIB = 2;
/** Everything above 3 GiB is left to the PCI and APIC hole (see MAX_RAM_BYTES). */
export const MAX_MEMORY_MIB = 3072;
/** setTimeout's longest delay is 2^31 - 1 ms. */
export const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** vCPUs: the xAPIC's 8-bit IDs would allow 255; the MADT and the tests cover 64. */
export const MAX_CPUS = 64;
/** The virtual CPU speed by default: 100 million instructions per virtual second. */
export const DEFAULT_MIPS = 100;
export const MAX_MIPS = 100_000;
/** The RTC's start time when time is not paced to the wall clock: runs are reproducible. */
export const DEFAULT_RTC_START = new Date("2000-01-01T00:00:00Z");

/** Where a device's output bytes go; flushed after every round and at the end of the run. */
export interface OutputSink {
  write(byte: number): void;
  flush(): void;
}

export interface MachineConfig {
  memoryMiB: number;
  smp: number;
  kernel: Uint8Array;
  /** The kernel command line as the guest sees it (QEMU passes "<kernel file> <append>"). */
  cmdline: string;
  modules: MultibootModule[];
  /** COM1's output; null when the console goes nowhere. */
  serial: OutputSink | null;
  /** The 0xE9 debug console's output; null when it goes nowhere. */
  debugcon: OutputSink | null;
  /** On a triple fault or a guest reset, stop instead of resetting the machine. */
  noReboot: boolean;
  /** Wall-clock limit for the run, or null for none. */
  timeoutSeconds: number | null;
  engine: Engine;
  /** Virtual instructions per virtual microsecond, per vCPU (default DEFAULT_MIPS). */
  mips?: number;
  /** Pace virtual time to the wall clock (and start the RTC at the host's time). */
  realtime?: boolean;
  /** A VGA in text mode (default true). */
  vga?: boolean;
  /** The RTC's time at power-on (default: DEFAULT_RTC_START, or now with realtime). */
  rtcStart?: Date;
}

export class Machine {
  readonly mem: PhysicalMemory;
  readonly io = new Bus("io");
  readonly clock = new VirtualClock();
  readonly platform: PcPlatform;
  readonly vcpus: Vcpu[];
  private readonly scheduler: Scheduler;
  private stopResult: RunResult | null = null;
  /** A reset the guest asked for, carried out at the end of the running slice. */
  private resetCause: string | null = null;

  /** Builds the machine and loads the kernel; throws UserError for an unusable config. */
  constructor(private readonly config: MachineConfig) {
    if (!Number.isInteger(config.smp) || config.smp < 1 || config.smp > MAX_CPUS) {
      throw new UserError(`CPU count ${config.smp} is out of range (1 to ${MAX_CPUS})`);
    }
    if (config.timeoutSeconds !== null && !(config.timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
      throw new UserError(`timeout ${config.timeoutSeconds} s is above ${MAX_TIMEOUT_SECONDS} s`);
    }
    const mips = config.mips ?? DEFAULT_MIPS;
    if (!(mips > 0 && mips <= MAX_MIPS)) {
      throw new UserError(`CPU speed ${mips} MIPS is out of range (above 0, up to ${MAX_MIPS})`);
    }
    this.mem = allocateMemory(config.memoryMiB, config.engine);
    // An engine whose vCPUs run in real time (kvm) paces the clock to the wall clock.
    const realtime = config.realtime === true || config.engine.realTime === true;

    const { serial, debugcon } = config;
    this.platform = new PcPlatform(this.mem, this.io, this.clock, {
      cpus: config.smp,
      ramBytes: this.mem.ramSize,
      vga: config.vga ?? true,
      rtcStart: config.rtcStart ?? (realtime ? new Date() : DEFAULT_RTC_START),
      serial: serial ? (b) => serial.write(b) : null,
      debugcon: debugcon ? (b) => debugcon.write(b) : null,
      onDebugExit: (status) => this.stop({ kind: "exit", status }),
      onReset: (cause) => {
        this.resetCause ??= cause;
        this.scheduler.interrupt();
      },
      onPowerOff: () => this.stop({ kind: "poweroff" }),
    });
    this.vcpus = this.platform.lapics.map((apic, id) => {
      const vcpu = config.engine.createVcpu(
        {
          mem: this.mem,
          io: this.io,
          apic,
          tsc: () => this.clock.tsc(),
          select: () => (this.platform.current = id),
          alarm: (name, fire) => {
            const timer = this.clock.timer(name, fire);
            // The TSC counts nanoseconds of virtual time (clock.ts).
            return {
              armIn: (ticks) => timer.arm(this.clock.now() + ticks),
              disarm: () => timer.disarm(),
            };
          },
        },
        id,
      );
      apic.connect(vcpu);
      vcpu.attachInterrupts(apic);
      return vcpu;
    });
    this.scheduler = new Scheduler({
      vcpus: this.vcpus,
      clock: this.clock,
      nsPerInstruction: 1000 / mips,
      realtime,
      select: (index) => (this.platform.current = index),
      handleExit: (exit, index) => this.handleExit(exit, index),
      afterRound: () => this.afterRound(),
      stopResult: () => this.stopResult,
    });
    this.boot();
  }

  /** Runs the guest until it exits, times out, shuts down or the user quits. */
  async run(): Promise<RunResult> {
    const seconds = this.config.timeoutSeconds;
    const timer =
      seconds === null
        ? null
        : setTimeout(() => this.stop({ kind: "timeout", seconds }), seconds * 1000);
    try {
      return await this.scheduler.run();
    } finally {
      if (timer !== null) clearTimeout(timer);
      this.afterRound();
    }
  }

  /**
   * Decides what follows an exit of vCPU `index`: a guest reset request is carried out (or
   * ends the run with noReboot), a triple fault resets the machine (or ends the run), HLT
   * idles the vCPU.
   */
  handleExit(exit: VcpuExit, index = 0): ExitAction {
    if (this.stopResult !== null) return { kind: "end", result: this.stopResult };
    if (this.resetCause !== null) {
      const cause = this.resetCause;
      this.resetCause = null;
      if (this.config.noReboot) return { kind: "end", result: { kind: "reset", cause } };
      this.reset();
      return { kind: "continue" };
    }
    switch (exit.kind) {
      case "budget":
      case "stopped": // stopped with no stop request pending: nothing to end, carry on
        return { kind: "continue" };
      case "halt":
        return { kind: "idle" };
      case "triple-fault":
        // A triple fault shuts the processor down; the PC's chipset turns that into a
        // reset (SDM Vol. 3A, 6.15 "Interrupt 8"), and QEMU reloads a -kernel on reset.
        if (this.config.noReboot) {
          const registers = this.vcpus[index].describeState();
          const chain = this.vcpus.length > 1 ? `CPU ${index}: ${exit.chain}` : exit.chain;
          return { kind: "end", result: { kind: "shutdown", chain, registers } };
        }
        this.reset();
        return { kind: "continue" };
    }
  }

  /** Bytes typed on the console, for COM1. */
  receiveSerial(bytes: Iterable<number>): void {
    this.platform.serialPorts[0].receive(bytes);
    this.scheduler.interrupt(); // an idle machine may have an interrupt to take now
  }

  /** Ends the run at the next slice boundary (the user quit). */
  quit(): void {
    this.stop({ kind: "quit" });
  }

  /** Records why the run ends (the first reason wins) and stops the running vCPU. */
  private stop(result: RunResult): void {
    this.stopResult ??= result;
    this.scheduler.interrupt();
  }

  /** Platform reset: devices to their reset state, the kernel reloaded, the vCPUs restarted. */
  private reset(): void {
    this.boot();
  }

  private boot(): void {
    const { kernel, cmdline, modules } = this.config;
    this.platform.reset();
    const entry = loadMultiboot(this.mem, kernel, { cmdline, modules });
    // The BSP enters the kernel; the APs wait for INIT and startup IPIs (SDM Vol. 3A, 9.4).
    for (const vcpu of this.vcpus) vcpu.reset();
    this.vcpus[0].setMultibootEntry(entry);
  }

  private afterRound(): void {
    for (const uart of this.platform.serialPorts) uart.poll();
    this.config.serial?.flush();
    this.config.debugcon?.flush();
  }
}

function allocateMemory(mib: number, engine: Engine): PhysicalMemory {
  if (!Number.isInteger(mib) || mib < MIN_MEMORY_MIB || mib > MAX_MEMORY_MIB) {
    throw new UserError(
      `memory size ${mib} MiB is out of range (${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB} MiB)`,
    );
  }
  try {
    return new PhysicalMemory(mib * MIB, engine.allocateRam?.(mib * MIB));
  } catch (e) {
    // The host could not allocate the buffer.
    if (e instanceof RangeError) throw new UserError(`cannot allocate ${mib} MiB of guest RAM`);
    throw e;
  }
}
