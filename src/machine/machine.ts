/**
 * The virtual PC: RAM, the port-I/O bus with its devices, a multiboot kernel, and the run
 * loop. The loop runs the vCPU in slices and yields to the event loop between them, so
 * host input and timers keep working; what happens after each slice is decided by
 * handleExit, a plain function of the exit (design.md, decision 1).
 */
import { loadMultiboot, type MultibootModule } from "../boot/multiboot.js";
import { DebugCon, DEBUGCON_PORT } from "../devices/debugcon.js";
import { DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT, IsaDebugExit } from "../devices/isa-debug-exit.js";
import { PostCode, POST_CODE_PORT } from "../devices/post-code.js";
import { UART_PORT_COUNT, Uart16550 } from "../devices/uart16550.js";
import type { Engine, Vcpu, VcpuExit } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { Bus } from "./bus.js";
import { PhysicalMemory } from "./memory.js";

const MIB = 1024 * 1024;
/** RAM limits: the info structure needs low memory and the kernel loads from 1 MiB up. */
export const MIN_MEMORY_MIB = 2;
/** Everything above 3 GiB is left to the PCI and APIC hole (see MAX_RAM_BYTES). */
export const MAX_MEMORY_MIB = 3072;
/** setTimeout's longest delay is 2^31 - 1 ms. */
export const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** Instructions per run slice: long enough to be cheap, short enough to stay responsive. */
export const SLICE_INSTRUCTIONS = 200_000;
/** Virtual time advances 1 ns per retired instruction: a 1 GHz, one-per-cycle CPU. */
const NS_PER_INSTRUCTION = 1;
/** COM1-COM4 at their standard ISA addresses (IBM PC AT Technical Reference). */
export const COM_PORTS = [0x3f8, 0x2f8, 0x3e8, 0x2e8] as const;

/** Where a device's output bytes go; flushed after every slice and at the end of the run. */
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
  /** On a triple fault, stop instead of resetting the machine. */
  noReboot: boolean;
  /** Wall-clock limit for the run, or null for none. */
  timeoutSeconds: number | null;
  engine: Engine;
}

/** How a run ended. */
export type RunResult =
  /** The guest wrote to isa-debug-exit; status is (value << 1) | 1. */
  | { kind: "exit"; status: number }
  | { kind: "timeout"; seconds: number }
  /** A triple fault with noReboot: the fault chain and the registers at the fault. */
  | { kind: "shutdown"; chain: string; registers: string }
  /** The user asked to quit (e.g. Ctrl-A x on the console). */
  | { kind: "quit" };

/** What the run loop does after a vCPU exit. */
export type ExitAction =
  | { kind: "continue" }
  /** The vCPU is halted: wait without spinning until something ends the run. */
  | { kind: "sleep" }
  | { kind: "end"; result: RunResult };

export class Machine {
  readonly mem: PhysicalMemory;
  readonly io = new Bus("io");
  /** COM1-COM4. */
  readonly serialPorts: Uart16550[];
  readonly vcpu: Vcpu;
  private stopResult: RunResult | null = null;
  private wake: (() => void) | null = null;

  /** Builds the machine and loads the kernel; throws UserError for an unusable config. */
  constructor(private readonly config: MachineConfig) {
    if (config.smp !== 1) {
      throw new UserError(`SMP is not supported yet (${config.smp} CPUs asked for); use 1 CPU`);
    }
    if (config.timeoutSeconds !== null && !(config.timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
      throw new UserError(`timeout ${config.timeoutSeconds} s is above ${MAX_TIMEOUT_SECONDS} s`);
    }
    this.mem = allocateMemory(config.memoryMiB);

    const now = () => this.vcpu.instructionsRetired * NS_PER_INSTRUCTION;
    const { serial, debugcon } = config;
    // COM1 is the console; COM2-COM4 exist but their lines lead nowhere.
    this.serialPorts = COM_PORTS.map((port, i) => {
      const uart = new Uart16550({
        name: `uart16550@0x${port.toString(16)}`,
        now,
        transmit: i === 0 && serial ? (b) => serial.write(b) : undefined,
      });
      this.io.register(port, UART_PORT_COUNT, uart);
      return uart;
    });
    this.io.register(DEBUGCON_PORT, 1, new DebugCon(debugcon ? (b) => debugcon.write(b) : null));
    this.io.register(
      DEBUG_EXIT_PORT,
      DEBUG_EXIT_PORT_COUNT,
      new IsaDebugExit((status) => {
        this.stop({ kind: "exit", status });
        this.vcpu.requestStop();
      }),
    );
    this.io.register(POST_CODE_PORT, 1, new PostCode());

    this.vcpu = config.engine.createVcpu({ mem: this.mem, io: this.io }, 0);
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
      while (this.stopResult === null) {
        const action = this.handleExit(await this.vcpu.run(SLICE_INSTRUCTIONS));
        this.afterSlice();
        if (action.kind === "end") return action.result;
        if (action.kind === "sleep") await this.sleep();
        else await new Promise((resolve) => setImmediate(resolve));
      }
      return this.stopResult;
    } finally {
      if (timer !== null) clearTimeout(timer);
      this.afterSlice();
    }
  }

  /** Decides what follows a vCPU exit; resets the machine on a triple fault. */
  handleExit(exit: VcpuExit): ExitAction {
    if (this.stopResult !== null) return { kind: "end", result: this.stopResult };
    switch (exit.kind) {
      case "budget":
      case "stopped": // stopped with no stop request pending: nothing to end, carry on
        return { kind: "continue" };
      case "halt":
        // Nothing can wake a halted vCPU yet: there is no interrupt controller to deliver
        // the UART's interrupt, so interrupts enabled or not, it sleeps until the run ends.
        return { kind: "sleep" };
      case "triple-fault":
        // A triple fault shuts the processor down; the PC's chipset turns that into a
        // reset (SDM Vol. 3A, 6.15 "Interrupt 8"), and QEMU reloads a -kernel on reset.
        if (this.config.noReboot) {
          const registers = this.vcpu.describeState();
          return { kind: "end", result: { kind: "shutdown", chain: exit.chain, registers } };
        }
        this.reset();
        return { kind: "continue" };
    }
  }

  /** Bytes typed on the console, for COM1. */
  receiveSerial(bytes: Iterable<number>): void {
    this.serialPorts[0].receive(bytes);
  }

  /** Ends the run at the next slice boundary (the user quit). */
  quit(): void {
    this.stop({ kind: "quit" });
  }

  /** Records why the run ends (the first reason wins) and wakes a sleeping run loop. */
  private stop(result: RunResult): void {
    this.stopResult ??= result;
    this.wake?.();
  }

  /** Platform reset: devices to their reset state, the kernel reloaded, the vCPU restarted. */
  private reset(): void {
    for (const uart of this.serialPorts) uart.reset();
    this.boot();
  }

  private boot(): void {
    const { kernel, cmdline, modules } = this.config;
    const entry = loadMultiboot(this.mem, kernel, { cmdline, modules });
    this.vcpu.reset();
    this.vcpu.setMultibootEntry(entry);
  }

  private afterSlice(): void {
    for (const uart of this.serialPorts) uart.poll();
    this.config.serial?.flush();
    this.config.debugcon?.flush();
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      // A pending promise does not keep Node running, but a halted PC stays on: this
      // timer holds the process until stop() wakes us.
      const keepAlive = setInterval(() => {}, 2 ** 31 - 1);
      this.wake = () => {
        clearInterval(keepAlive);
        this.wake = null;
        resolve();
      };
    });
  }
}

function allocateMemory(mib: number): PhysicalMemory {
  if (!Number.isInteger(mib) || mib < MIN_MEMORY_MIB || mib > MAX_MEMORY_MIB) {
    throw new UserError(
      `memory size ${mib} MiB is out of range (${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB} MiB)`,
    );
  }
  try {
    return new PhysicalMemory(mib * MIB);
  } catch (e) {
    // The host could not allocate the buffer.
    if (e instanceof RangeError) throw new UserError(`cannot allocate ${mib} MiB of guest RAM`);
    throw e;
  }
}
