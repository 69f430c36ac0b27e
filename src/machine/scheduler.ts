/**
 * Deterministic round-robin scheduling of the vCPUs on one thread, and virtual time
 * (design.md, decision 5).
 *
 * A round gives every vCPU, in order, a slot of SLOT_INSTRUCTIONS instructions. The slots
 * of one round share one stretch of virtual time, each taking 1/N of it, so a vCPU runs at
 * the configured rate whatever the number of vCPUs: while a vCPU runs, the clock advances
 * nsPerInstruction / N per retired instruction. A slot is cut short at the next timer
 * deadline so device events fire on time; a halted vCPU's slot passes without it (its
 * time goes by, and timers that come due in it fire). A round in which no vCPU retired an
 * instruction means the machine is idle: the clock jumps to the next timer deadline,
 * instantly, or paced to the wall clock when nothing could wake the guest but time (every
 * vCPU halted with interrupts disabled, or a second of virtual time skipped without any
 * vCPU waking up), and with no deadline at all the host sleeps until an outside event.
 * With `realtime`, virtual time never runs ahead of the wall clock.
 *
 * Nothing here depends on host timing except where the host is waited for, so the same
 * kernel and options give the same run.
 */
import { ActivityState, type Vcpu, type VcpuExit } from "../engine/engine.js";
import { NS_PER_SECOND, type VirtualClock } from "./clock.js";

/** Instructions per vCPU slot: short enough for IPIs to travel fast, long enough to be cheap. */
export const SLOT_INSTRUCTIONS = 10_000;
/** Idle time skipped without anyone waking before the skipping is paced to the wall clock. */
const IDLE_SKIP_LIMIT_NS = NS_PER_SECOND;
/** The host's event loop gets a turn at least this often (ms of host time). */
const YIELD_INTERVAL_MS = 10;
/** setTimeout's longest delay. */
const MAX_HOST_SLEEP_MS = 2 ** 31 - 1;

/** How a run ended. */
export type RunResult =
  /** The guest wrote to isa-debug-exit; status is (value << 1) | 1. */
  | { kind: "exit"; status: number }
  | { kind: "timeout"; seconds: number }
  /** A triple fault with noReboot: the fault chain and the registers at the fault. */
  | { kind: "shutdown"; chain: string; registers: string }
  /** The guest asked for a reset with noReboot. */
  | { kind: "reset"; cause: string }
  /** The guest turned the machine off (ACPI S5). */
  | { kind: "poweroff" }
  /** The user asked to quit (e.g. Ctrl-A x on the console). */
  | { kind: "quit" };

/** What the run loop does after a vCPU exit. */
export type ExitAction =
  | { kind: "continue" }
  /** The vCPU is halted (or waits for a startup IPI): it idles until an event. */
  | { kind: "idle" }
  | { kind: "end"; result: RunResult };

export interface SchedulerHost {
  readonly vcpus: readonly Vcpu[];
  readonly clock: VirtualClock;
  /** Virtual nanoseconds per instruction of one vCPU. */
  readonly nsPerInstruction: number;
  readonly realtime: boolean;
  /** The vCPU about to run (per-vCPU devices such as the xAPIC page follow it). */
  select(index: number): void;
  handleExit(exit: VcpuExit, index: number): ExitAction;
  /** Called after every round: output flushing, polled devices. */
  afterRound(): void;
  /** Why the run must end, once something outside the vCPUs decided it. */
  stopResult(): RunResult | null;
}

type RoundOutcome = { kind: "end"; result: RunResult } | { kind: "ran"; retired: number };

export class Scheduler {
  private running: Vcpu | null = null;
  private wakeHost: (() => void) | null = null;
  /** Virtual time when the current stretch of idle rounds began, or -1. */
  private idleSince = -1;
  /** Per vCPU: its last slot ended halted with interrupts disabled (or waiting for SIPI). */
  private readonly blocked: boolean[];
  private wallStart = 0;
  private virtualStart = 0;

  constructor(private readonly h: SchedulerHost) {
    this.blocked = h.vcpus.map(() => false);
    h.clock.onEarlyDeadline = () => this.running?.requestStop();
  }

  /** Per instruction of the running vCPU: a round's time shared among the N slots. */
  private get clockNsPerInstruction(): number {
    return this.h.nsPerInstruction / this.h.vcpus.length;
  }

  /** Stops the running vCPU after its current instruction and wakes a sleeping host wait. */
  interrupt(): void {
    this.running?.requestStop();
    this.wakeHost?.();
  }

  async run(): Promise<RunResult> {
    this.wallStart = performance.now();
    this.virtualStart = this.h.clock.now();
    let lastYield = this.wallStart;
    for (;;) {
      const round = await this.round();
      this.h.afterRound();
      if (round.kind === "end") return round.result;
      const stop = this.h.stopResult();
      if (stop !== null) return stop;
      if (round.retired === 0) {
        if (this.idleSince < 0) this.idleSince = this.h.clock.now();
        // Only a wait on the host counts as the event loop's turn: an instant jump to the
        // next deadline is none, and a guest that wakes and halts again every round (timer
        // ticks while its vCPUs idle) would otherwise starve the timeout and signals.
        if (await this.idle()) lastYield = performance.now();
      } else {
        this.idleSince = -1;
        if (this.h.realtime) await this.keepBehindWallClock();
      }
      if (performance.now() - lastYield >= YIELD_INTERVAL_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
  }

  private async round(): Promise<RoundOutcome> {
    let retired = 0;
    for (let i = 0; i < this.h.vcpus.length; i++) {
      const slot = await this.slot(i);
      if (slot.kind === "end") return slot;
      retired += slot.retired;
    }
    return { kind: "ran", retired };
  }

  /** vCPU `index`'s slot: runs it, cut at timer deadlines, until the slot's time is up. */
  private async slot(index: number): Promise<RoundOutcome> {
    const { clock } = this.h;
    const vcpu = this.h.vcpus[index];
    const perInstruction = this.clockNsPerInstruction;
    const slotEnd = clock.now() + SLOT_INSTRUCTIONS * perInstruction;
    let retired = 0;
    this.h.select(index);
    for (;;) {
      clock.runDue();
      const stop = this.h.stopResult();
      if (stop !== null) return { kind: "end", result: stop };
      const now = clock.now();
      if (now >= slotEnd) break;
      const limit = Math.min(slotEnd, clock.nextDeadline());
      // The epsilon keeps rounding in the time arithmetic from adding an instruction.
      const budget = Math.max(1, Math.ceil((limit - now) / perInstruction - 1e-6));
      const before = vcpu.instructionsRetired;
      this.running = vcpu;
      clock.startRunning(vcpu, perInstruction, limit);
      let exit: VcpuExit | Promise<VcpuExit>;
      try {
        exit = vcpu.run(budget);
        if (exit instanceof Promise) exit = await exit;
      } finally {
        clock.stopRunning();
        this.running = null;
      }
      const ran = vcpu.instructionsRetired - before;
      retired += ran;
      const action = this.h.handleExit(exit, index);
      if (action.kind === "end") return action;
      if (action.kind === "idle") {
        this.blocked[index] =
          (exit.kind === "halt" && !exit.interruptsEnabled) || vcpu.activity !== ActivityState.Hlt;
        // Halted: its time passes until something is due (which may wake it) or the slot ends.
        if (ran === 0) clock.advanceTo(Math.min(slotEnd, clock.nextDeadline()));
      } else {
        this.blocked[index] = false;
      }
    }
    return { kind: "ran", retired };
  }

  /**
   * A whole round without an instruction: jump to the next timer event. The jump waits on
   * the wall clock in realtime mode, when every vCPU is halted with interrupts disabled
   * (only an NMI from a device timer could wake one), or when a second of virtual time has
   * been skipped without any vCPU waking; with nothing scheduled at all it waits for an
   * outside event (console input, the timeout, quit). True when it waited on the host.
   */
  private async idle(): Promise<boolean> {
    const { clock } = this.h;
    const deadline = clock.nextDeadline();
    if (deadline === Infinity) {
      await this.sleepHost(Infinity);
      return true;
    }
    const paced =
      this.h.realtime ||
      this.blocked.every((b) => b) ||
      clock.now() - this.idleSince >= IDLE_SKIP_LIMIT_NS;
    // How long the host waits before the jump: nothing unless paced.
    let ms = 0;
    if (paced) {
      ms = this.h.realtime
        ? (deadline - this.virtualStart) / 1e6 - (performance.now() - this.wallStart)
        : (deadline - clock.now()) / 1e6;
    }
    const started = performance.now();
    if (ms > 0 && (await this.sleepHost(ms))) {
      // Something outside happened first: only the time that really passed goes by.
      clock.advanceTo(Math.min(deadline, clock.now() + (performance.now() - started) * 1e6));
      return true;
    }
    clock.advanceTo(deadline);
    return ms > 0;
  }

  /** Realtime mode: virtual time may not run ahead of the wall clock. */
  private async keepBehindWallClock(): Promise<void> {
    const ahead =
      (this.h.clock.now() - this.virtualStart) / 1e6 - (performance.now() - this.wallStart);
    if (ahead >= 1) await this.sleepHost(ahead);
  }

  /** Waits `ms` of host time, or until interrupt(); true when interrupted. */
  private sleepHost(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      // A pending promise does not keep Node running, but a sleeping PC stays on: the
      // timer holds the process until interrupt() or its time.
      const forever = ms === Infinity;
      const timer = forever
        ? setInterval(() => {}, MAX_HOST_SLEEP_MS)
        : setTimeout(() => done(false), Math.min(ms, MAX_HOST_SLEEP_MS));
      const done = (woken: boolean) => {
        if (forever) clearInterval(timer);
        else clearTimeout(timer);
        this.wakeHost = null;
        resolve(woken);
      };
      this.wakeHost = () => done(true);
    });
  }
}
