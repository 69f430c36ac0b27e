/**
 * What the machine needs from a CPU engine (design.md, decision 1: one device model, two
 * engines). The machine never branches on the engine kind: it creates vCPUs, runs them in
 * slices and handles their exits, which are data.
 */
import type { Bus } from "../machine/bus.js";
import type { PhysicalMemory } from "../machine/memory.js";

/** The machine side a vCPU talks to: guest-physical memory and the port-I/O bus. */
export interface CpuHost {
  readonly mem: PhysicalMemory;
  readonly io: Bus;
}

/** Register state at a multiboot kernel's entry (Multiboot Specification 0.6.96, 3.2). */
export interface MultibootEntry {
  eip: number;
  eax: number; // 0x2BADB002
  ebx: number; // physical address of the multiboot information structure
}

/** Why a vCPU's run slice ended. */
export type VcpuExit =
  /** The instruction budget of the slice is used up. */
  | { kind: "budget" }
  /** HLT: the vCPU sleeps until an interrupt it can take arrives. */
  | { kind: "halt"; interruptsEnabled: boolean }
  /** requestStop() was called (a device asked the machine to stop or reset). */
  | { kind: "stopped" }
  /** A triple fault: the processor shut down (SDM Vol. 3A, 6.15, #DF "Interrupt 8"). */
  | { kind: "triple-fault"; chain: string };

export interface Vcpu {
  readonly id: number;
  /** Retired-instruction count since creation. */
  readonly instructionsRetired: number;
  /** Power-on state (SDM Vol. 3A, 10.1.1), as after RESET. */
  reset(): void;
  /** Puts the vCPU in the multiboot entry state: flat 32-bit protected mode, paging off. */
  setMultibootEntry(entry: MultibootEntry): void;
  /** Runs at most `budget` instructions. */
  run(budget: number): VcpuExit;
  /** Makes a running run() return { kind: "stopped" } after the current instruction. */
  requestStop(): void;
  /** A multi-line dump of the architectural registers, for error reports. */
  describeState(): string;
}

export interface Engine {
  readonly name: string;
  createVcpu(host: CpuHost, id: number): Vcpu;
}
