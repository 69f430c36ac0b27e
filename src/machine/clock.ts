/**
 * The machine's one virtual clock (design.md, decision 5). Virtual time is counted in
 * nanoseconds and derived from retired instructions: while a vCPU runs a slice, the clock
 * reads the slice's start time plus the instructions that vCPU has retired since, at the
 * scheduler's rate. Between slices the scheduler moves it forward (a halted vCPU's share
 * of time, or a jump to the next timer when every vCPU is idle). Every time-keeping device
 * (TSC, LAPIC timers, PIT, RTC, PM timer, the UART's character timeout) reads this clock
 * and schedules its events on it, so a run is a pure function of the kernel and options.
 *
 * Times are doubles: a stretch of N vCPUs runs at a fraction of a nanosecond per
 * instruction. IEEE arithmetic is deterministic, so runs stay reproducible.
 */

/** What the clock reads while a vCPU runs: its retired-instruction count. */
export interface InstructionCounter {
  readonly instructionsRetired: number;
}

/** A one-shot event on the virtual clock; devices re-arm it for periodic events. */
export class Timer {
  /** The virtual time it fires at, or Infinity while disarmed. */
  deadline = Infinity;
  /** Arming order: timers due at the same time fire in the order they were armed. */
  seq = 0;

  constructor(
    private readonly clock: VirtualClock,
    /** For traces: "lapic0 timer", "pit ch0", ... */
    readonly name: string,
    readonly fire: () => void,
  ) {}

  /** Fires at virtual time `when` (at once, at the next check, if that has passed). */
  arm(when: number): void {
    this.clock.arm(this, when);
  }

  disarm(): void {
    this.clock.disarm(this);
  }

  get armed(): boolean {
    return this.deadline !== Infinity;
  }
}

/** More events than this at one instant means a device re-arms its timer in the past. */
const MAX_EVENTS_AT_ONCE = 1_000_000;

/** Nanoseconds per second. */
export const NS_PER_SECOND = 1e9;

export class VirtualClock {
  /** Virtual time at the start of the current stretch (or the time, between stretches). */
  private base = 0;
  private counter: InstructionCounter | null = null;
  private counterStart = 0;
  private nsPerInstruction = 0;
  /** The end of the running stretch: a timer armed before it must cut the stretch short. */
  private stretchLimit = Infinity;
  private readonly armedTimers = new Set<Timer>();
  private nextSeq = 0;
  private cachedNext: Timer | null = null;
  private cacheValid = true;
  /** Virtual time of the last machine reset: the TSC counts from there. */
  private tscBase = 0;
  /**
   * Called when a timer is armed before the end of the running stretch, so the scheduler
   * can stop the running vCPU in time for it.
   */
  onEarlyDeadline: (() => void) | null = null;

  /** The current virtual time in nanoseconds. */
  now(): number {
    const c = this.counter;
    if (c === null) return this.base;
    return this.base + (c.instructionsRetired - this.counterStart) * this.nsPerInstruction;
  }

  /**
   * The time stamp counter: 1 GHz, counting from the last machine reset (SDM Vol. 3B,
   * 18.17: the TSC is reset to zero by RESET). CpuHost.tsc reads it.
   */
  tsc(): number {
    return Math.floor(this.now() - this.tscBase);
  }

  /** The TSC restarts from zero (a machine reset). */
  resetTsc(): void {
    this.tscBase = this.now();
  }

  /** The virtual time at which the TSC reads `tsc`. */
  timeOfTsc(tsc: number): number {
    return this.tscBase + tsc;
  }

  /**
   * Starts a stretch: time follows `counter`'s retired instructions, `nsPerInstruction`
   * each, until stopRunning(). `limit` is where the scheduler plans to stop it.
   */
  startRunning(counter: InstructionCounter, nsPerInstruction: number, limit: number): void {
    this.base = this.now();
    this.counter = counter;
    this.counterStart = counter.instructionsRetired;
    this.nsPerInstruction = nsPerInstruction;
    this.stretchLimit = limit;
  }

  /** Ends the stretch: the time it reached becomes the clock's time. */
  stopRunning(): void {
    this.base = this.now();
    this.counter = null;
    this.stretchLimit = Infinity;
  }

  /** Moves time forward to `t` between stretches (idle time); never backwards. */
  advanceTo(t: number): void {
    if (this.counter !== null) throw new Error("advanceTo while a vCPU is running");
    if (t > this.base) this.base = t;
  }

  arm(timer: Timer, when: number): void {
    timer.deadline = when;
    timer.seq = this.nextSeq++;
    this.armedTimers.add(timer);
    this.cacheValid = false;
    if (when < this.stretchLimit && this.counter !== null) this.onEarlyDeadline?.();
  }

  disarm(timer: Timer): void {
    if (!this.armedTimers.delete(timer)) return;
    timer.deadline = Infinity;
    if (this.cachedNext === timer) this.cacheValid = false;
  }

  /** The earliest armed timer's deadline, or Infinity. */
  nextDeadline(): number {
    return this.next()?.deadline ?? Infinity;
  }

  /** Fires every timer whose deadline has come, earliest first; returns how many fired. */
  runDue(): number {
    let fired = 0;
    for (;;) {
      const t = this.next();
      if (t === null || t.deadline > this.now()) return fired;
      this.disarm(t);
      if (++fired > MAX_EVENTS_AT_ONCE) {
        // A device that keeps re-arming its timer in the past would hang the machine.
        throw new Error(`timer '${t.name}' fired ${MAX_EVENTS_AT_ONCE} times without time passing`);
      }
      t.fire();
    }
  }

  private next(): Timer | null {
    if (this.cacheValid) return this.cachedNext;
    let best: Timer | null = null;
    for (const t of this.armedTimers) {
      if (
        best === null ||
        t.deadline < best.deadline ||
        (t.deadline === best.deadline && t.seq < best.seq)
      ) {
        best = t;
      }
    }
    this.cachedNext = best;
    this.cacheValid = true;
    return best;
  }

  /** A timer on this clock. */
  timer(name: string, fire: () => void): Timer {
    return new Timer(this, name, fire);
  }
}
