/**
 * What the machine needs from a CPU engine (design.md, decision 1: one device model, two
 * engines). The machine never branches on the engine kind: it creates vCPUs, runs them in
 * slices and handles their exits, which are data.
 */
import type { Bus } from "../machine/bus.js";
import type { PhysicalMemory } from "../machine/memory.js";

/**
 * The machine side a vCPU talks to: guest-physical memory, the port-I/O bus and, when the
 * machine has them, the vCPU's local APIC and the machine's virtual clock.
 */
export interface CpuHost {
  readonly mem: PhysicalMemory;
  readonly io: Bus;
  /** This vCPU's local APIC, for the registers the processor reaches through MSRs. */
  readonly apic?: LocalApicPort;
  /**
   * The machine-wide virtual time in TSC ticks (design.md, decision 5). Without it a vCPU
   * counts its own retired instructions.
   */
  readonly tsc?: () => number;
  /**
   * Makes this vCPU the one that per-vCPU devices (the xAPIC page) answer to. The machine
   * selects the vCPU whose slice runs; an engine whose vCPUs run at the same time (kvm)
   * calls this before carrying out each of this vCPU's device accesses.
   */
  readonly select?: () => void;
  /**
   * An alarm on the machine's virtual clock for this vCPU (the VMX-preemption timer):
   * `fire` runs when the time comes, as device timers do, so a halted vCPU wakes and a
   * running one stops in time. Without it the vCPU polls its TSC.
   */
  readonly alarm?: (name: string, fire: () => void) => TscAlarm;
}

/** A one-shot alarm on the virtual clock, in TSC ticks from now. */
export interface TscAlarm {
  armIn(ticks: number): void;
  disarm(): void;
}

/**
 * The local APIC as its own processor reaches it through MSRs (SDM Vol. 3A, 11.4.4 and
 * 11.12): the APIC base, the x2APIC registers (0x800-0x8FF) and IA32_TSC_DEADLINE (0x6E0).
 * Its xAPIC MMIO page is a device on the MMIO bus.
 */
export interface LocalApicPort {
  /** IA32_APIC_BASE after a write the CPU accepted: base, global enable, x2APIC mode. */
  setApicBase(lo: number, hi: number): void;
  /** Reads an x2APIC or TSC-deadline MSR; undefined when the access must raise #GP(0). */
  readMsr(index: number): [number, number] | undefined;
  /** Writes one; false when the access must raise #GP(0). */
  writeMsr(index: number, lo: number, hi: number): boolean;
}

/** Register state at a multiboot kernel's entry (Multiboot Specification 0.6.96, 3.2). */
export interface MultibootEntry {
  eip: number;
  eax: number; // 0x2BADB002
  ebx: number; // physical address of the multiboot information structure
  /**
   * ESP: the specification leaves it undefined, but QEMU's -kernel (and GRUB) enter with a
   * usable stack in low memory, and kernels such as the original SHV push before setting up
   * their own (design.md, decision 6).
   */
  esp: number;
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

/**
 * The interrupt inputs of a vCPU: what its local APIC (or, without one, the 8259 PIC on
 * LINT0) offers at instruction boundaries (SDM Vol. 3A, 6.3 and chapter 11).
 */
export interface InterruptLines {
  /** INTR: a maskable interrupt is ready to be accepted (priority already decided). */
  hasInterrupt(): boolean;
  /** The interrupt-acknowledge cycle: returns the vector and puts it in service. */
  acknowledge(): number;
}

/** Activity states, numbered as in the VMCS guest activity-state field (SDM 25.4.2). */
export const enum ActivityState {
  Active = 0,
  Hlt = 1,
  Shutdown = 2,
  WaitForSipi = 3,
}

export interface Vcpu {
  readonly id: number;
  /** Whether the vCPU executes, sleeps in HLT or waits for a startup IPI. */
  readonly activity: ActivityState;
  /** Connects the interrupt inputs (once, when the machine is built). */
  attachInterrupts(lines: InterruptLines): void;
  /**
   * Tells the vCPU its inputs changed (an interrupt became pending): it looks at them at
   * the next instruction boundary and leaves HLT if the interrupt can be taken.
   */
  kick(): void;
  /** An NMI arrives (edge-triggered; blocked while an NMI handler runs, until IRET). */
  nmi(): void;
  /** An INIT signal (SDM Vol. 3A, 10.4): the vCPU resets and waits for a startup IPI. */
  init(): void;
  /** A startup IPI: a vCPU waiting for SIPI starts in real mode at `vector` << 12. */
  sipi(vector: number): void;
  /** Retired-instruction count since creation. */
  readonly instructionsRetired: number;
  /** Power-on state (SDM Vol. 3A, 10.1.1), as after RESET. */
  reset(): void;
  /** Puts the vCPU in the multiboot entry state: flat 32-bit protected mode, paging off. */
  setMultibootEntry(entry: MultibootEntry): void;
  /**
   * Runs at most `budget` instructions (an engine that cannot count them, such as KVM,
   * treats it as a slice of similar length). An engine whose vCPUs run elsewhere, such
   * as on a worker thread, may answer with a promise.
   */
  run(budget: number): VcpuExit | Promise<VcpuExit>;
  /** Makes a running run() return { kind: "stopped" } after the current instruction. */
  requestStop(): void;
  /** A multi-line dump of the architectural registers, for error reports. */
  describeState(): string;
}

export interface Engine {
  readonly name: string;
  /**
   * The vCPUs run in real time, at the same time (kvm): the machine's clock must follow
   * the wall clock, as with the realtime option, or the guest's own time stamp counter and
   * the machine's timers would drift apart.
   */
  readonly realTime?: boolean;
  /**
   * Guest RAM of `bytes` bytes, for engines that share it with someone else: the kvm engine
   * maps it once for both KVM and the device model. Without it the machine allocates RAM.
   */
  allocateRam?(bytes: number): Uint8Array;
  createVcpu(host: CpuHost, id: number): Vcpu;
  /**
   * A remark about running `kernel` on this engine, or null: the kvm engine warns when a
   * kernel uses VMX and the host's KVM cannot offer it.
   */
  kernelNote?(kernel: Uint8Array): string | null;
}
