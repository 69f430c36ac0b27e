/**
 * The local APIC timer (SDM Vol. 3A, 11.5.4), a part of each local APIC (lapic.ts): the
 * initial-count, current-count and divide-configuration registers and the LVT timer
 * entry's three modes. The counter runs at the APIC bus clock, 1 GHz as in QEMU, divided
 * by 1 to 128, on the machine's virtual clock; TSC-deadline mode compares the TSC with
 * IA32_TSC_DEADLINE. Events are only armed for expiries that can interrupt: a masked timer
 * counts (its current count moves) without events.
 */
import type { Timer, VirtualClock } from "../machine/clock.js";

/** Nanoseconds per APIC bus clock cycle: the timer's input clock is 1 GHz. */
const NS_PER_BUS_CYCLE = 1;

// LVT timer entry fields.
/** Bits 7:0: vector. */
const LVT_VECTOR = 0xff;
/** Bit 16: masked. */
const LVT_MASKED = 1 << 16;
/** Bits 18:17: timer mode. */
export const LVT_TIMER_MODE_SHIFT = 17;
export const LVT_TIMER_MODE = 3 << LVT_TIMER_MODE_SHIFT;
export const TIMER_ONE_SHOT = 0;
export const TIMER_PERIODIC = 1;
export const TIMER_TSC_DEADLINE = 2;

/** Divide configuration: bits 3, 1 and 0 are written. */
export const TIMER_DIVIDE_WRITABLE = 0xb;

export interface LapicTimerSnapshot {
  initial: number;
  divide: number;
  /** Virtual time the current count started from. */
  start: number;
  tscDeadline: number;
}

export class LapicTimer {
  s: LapicTimerSnapshot = LapicTimer.powerOn();
  private readonly event: Timer;
  /** Expiry number (counted from `start`) the event is armed for. */
  private armedExpiry = 0;

  constructor(
    private readonly clock: VirtualClock,
    name: string,
    /** The LVT timer entry. */
    private readonly lvt: () => number,
    /** An expiry that interrupts: the LVT entry's vector goes to the IRR. */
    private readonly interrupt: (vector: number) => void,
  ) {
    this.event = clock.timer(name, () => this.expired());
  }

  static powerOn(): LapicTimerSnapshot {
    return { initial: 0, divide: 0, start: 0, tscDeadline: 0 };
  }

  reset(): void {
    this.s = LapicTimer.powerOn();
    this.event.disarm();
  }

  mode(): number {
    return (this.lvt() & LVT_TIMER_MODE) >>> LVT_TIMER_MODE_SHIFT;
  }

  /** Nanoseconds per count: the bus clock divided by the divide configuration. */
  private countNs(): number {
    const d = this.s.divide;
    const code = ((d & 8) >>> 1) | (d & 3);
    return (code === 7 ? 1 : 2 << code) * NS_PER_BUS_CYCLE;
  }

  private counting(): boolean {
    const mode = this.mode();
    return this.s.initial !== 0 && (mode === TIMER_ONE_SHOT || mode === TIMER_PERIODIC);
  }

  /** The current-count register. */
  current(): number {
    const s = this.s;
    if (!this.counting()) return 0;
    const elapsed = Math.floor((this.clock.now() - s.start) / this.countNs());
    if (this.mode() === TIMER_ONE_SHOT) return Math.max(0, s.initial - elapsed);
    return s.initial - (elapsed % s.initial);
  }

  /** A write of the initial count starts the count (ignored in TSC-deadline mode). */
  writeInitial(v: number): void {
    if (this.mode() === TIMER_TSC_DEADLINE) return;
    this.s.initial = v >>> 0;
    this.s.start = this.clock.now();
    this.schedule();
  }

  /** A new divide configuration: the count goes on from where it is, at the new rate. */
  writeDivide(v: number): void {
    const current = this.current();
    this.s.divide = v & TIMER_DIVIDE_WRITABLE;
    if (this.counting() && current > 0) {
      this.s.start = this.clock.now() - (this.s.initial - current) * this.countNs();
    }
    this.schedule();
  }

  /** The LVT timer entry changed from `old`: entering or leaving TSC-deadline mode disarms. */
  lvtWritten(old: number): void {
    const wasDeadline = (old & LVT_TIMER_MODE) >>> LVT_TIMER_MODE_SHIFT === TIMER_TSC_DEADLINE;
    if (wasDeadline !== (this.mode() === TIMER_TSC_DEADLINE)) {
      this.s.initial = 0;
      this.s.tscDeadline = 0;
    }
    this.schedule();
  }

  /** IA32_TSC_DEADLINE reads zero outside TSC-deadline mode (11.5.4.1). */
  readDeadline(): number {
    return this.mode() === TIMER_TSC_DEADLINE ? this.s.tscDeadline : 0;
  }

  /** IA32_TSC_DEADLINE: arms (or with zero, disarms) in TSC-deadline mode; else ignored. */
  writeDeadline(tsc: number): void {
    if (this.mode() !== TIMER_TSC_DEADLINE) return;
    this.s.tscDeadline = tsc;
    this.schedule();
  }

  private expiryTime(k: number): number {
    return this.s.start + k * this.s.initial * this.countNs();
  }

  /** Arms the event for the next expiry that can interrupt (none while masked). */
  schedule(): void {
    const s = this.s;
    const now = this.clock.now();
    if (this.lvt() & LVT_MASKED) {
      this.event.disarm();
    } else if (this.mode() === TIMER_TSC_DEADLINE) {
      if (s.tscDeadline === 0) this.event.disarm();
      else this.event.arm(this.clock.timeOfTsc(s.tscDeadline));
    } else if (this.counting()) {
      let k = Math.floor((now - s.start) / (s.initial * this.countNs())) + 1;
      while (this.expiryTime(k) <= now) k++;
      if (this.mode() === TIMER_ONE_SHOT && k > 1) {
        this.event.disarm(); // expired already
      } else {
        this.armedExpiry = k;
        this.event.arm(this.expiryTime(k));
      }
    } else {
      this.event.disarm();
    }
  }

  disarm(): void {
    this.event.disarm();
  }

  private expired(): void {
    const lvt = this.lvt();
    if (this.mode() === TIMER_TSC_DEADLINE) this.s.tscDeadline = 0;
    if (!(lvt & LVT_MASKED)) this.interrupt(lvt & LVT_VECTOR);
    if (this.mode() === TIMER_PERIODIC) {
      this.armedExpiry++;
      this.event.arm(this.expiryTime(this.armedExpiry));
    }
  }
}
