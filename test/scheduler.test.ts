/**
 * Virtual time and round-robin scheduling (src/machine/clock.ts, scheduler.ts) with fake
 * vCPUs: timer order, time following retired instructions at the per-vCPU rate, slots cut
 * at deadlines, halted vCPUs skipping, idle jumps, pacing when only time can wake the
 * guest, and the same run twice giving the same events.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ActivityState,
  type InterruptLines,
  type Vcpu,
  type VcpuExit,
} from "../src/engine/engine.js";
import { VirtualClock } from "../src/machine/clock.js";
import { SLOT_INSTRUCTIONS, Scheduler, type RunResult } from "../src/machine/scheduler.js";

describe("virtual clock", () => {
  it("fires due timers earliest first, ties in arming order, and lets them re-arm", () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    const a = clock.timer("a", () => fired.push(`a@${clock.now()}`));
    const b = clock.timer("b", () => {
      fired.push(`b@${clock.now()}`);
      if (fired.length === 1) b.arm(200); // already due: fires in the same check
    });
    const c = clock.timer("c", () => fired.push("c"));
    b.arm(100);
    a.arm(100);
    c.arm(50);
    c.disarm();
    assert.equal(clock.nextDeadline(), 100);
    clock.advanceTo(99);
    assert.equal(clock.runDue(), 0);
    clock.advanceTo(250);
    clock.runDue();
    assert.deepEqual(fired, ["b@250", "a@250", "b@250"], "b again at 200, due at 250");
    assert.equal(b.armed, false);
    clock.advanceTo(100);
    assert.equal(clock.now(), 250, "time never goes back");
  });

  it("follows a running vCPU's retired instructions and reports earlier deadlines", () => {
    const clock = new VirtualClock();
    const cpu = { instructionsRetired: 1000 };
    let early = 0;
    clock.onEarlyDeadline = () => early++;
    clock.advanceTo(5000);
    clock.startRunning(cpu, 2.5, 6000);
    cpu.instructionsRetired += 100;
    assert.equal(clock.now(), 5250);
    clock.timer("late", () => {}).arm(7000);
    assert.equal(early, 0);
    clock.timer("soon", () => {}).arm(5300);
    assert.equal(early, 1, "armed before the stretch's planned end");
    clock.stopRunning();
    cpu.instructionsRetired += 100;
    assert.equal(clock.now(), 5250);
  });

  it("counts the TSC at 1 GHz from the last reset", () => {
    const clock = new VirtualClock();
    clock.advanceTo(1234.7);
    assert.equal(clock.tsc(), 1234);
    clock.resetTsc();
    clock.advanceTo(2000);
    assert.equal(clock.tsc(), 765);
    assert.equal(clock.timeOfTsc(100), 1334.7);
  });

  it("refuses a timer that keeps re-arming itself in the past", () => {
    const clock = new VirtualClock();
    const t = clock.timer("stuck", () => t.arm(0));
    t.arm(0);
    assert.throws(() => clock.runDue(), /timer 'stuck' fired 1000000 times/);
  });
});

/** A vCPU whose behaviour is a function of its own state: `step` decides each run. */
class FakeVcpu implements Vcpu {
  instructionsRetired = 0;
  activity = ActivityState.Active;
  interruptsEnabled = true;
  stopRequested = false;
  readonly runs: { at: number; budget: number }[] = [];
  pendingWake = false;
  constructor(
    readonly id: number,
    private readonly clock: VirtualClock,
    /** Instructions this vCPU runs before halting, or Infinity. */
    public work = Infinity,
  ) {}
  run(budget: number): VcpuExit {
    this.stopRequested = false;
    this.runs.push({ at: this.clock.now(), budget });
    if (this.pendingWake) {
      this.pendingWake = false;
      this.activity = ActivityState.Active;
    }
    if (this.activity !== ActivityState.Active) {
      return { kind: "halt", interruptsEnabled: this.interruptsEnabled };
    }
    const n = Math.min(budget, this.work);
    this.instructionsRetired += n;
    this.work -= n;
    if (this.work === 0) {
      this.activity = ActivityState.Hlt;
      return { kind: "halt", interruptsEnabled: this.interruptsEnabled };
    }
    return { kind: "budget" };
  }
  requestStop(): void {
    this.stopRequested = true;
  }
  kick(): void {
    this.pendingWake = true;
  }
  attachInterrupts(_l: InterruptLines): void {}
  nmi(): void {}
  init(): void {}
  sipi(): void {}
  reset(): void {}
  setMultibootEntry(): void {}
  describeState(): string {
    return "";
  }
}

function scheduler(
  vcpus: FakeVcpu[],
  clock: VirtualClock,
  opts: { nsPerInstruction?: number; stopAt?: number } = {},
) {
  let stop: RunResult | null = null;
  const selected: number[] = [];
  const s = new Scheduler({
    vcpus,
    clock,
    nsPerInstruction: opts.nsPerInstruction ?? 10,
    realtime: false,
    select: (i) => selected.push(i),
    handleExit: (exit: VcpuExit) => {
      if (stop) return { kind: "end", result: stop };
      return exit.kind === "halt" ? { kind: "idle" } : { kind: "continue" };
    },
    afterRound: () => {
      if (opts.stopAt !== undefined && clock.now() >= opts.stopAt) stop = { kind: "quit" };
    },
    stopResult: () => stop,
  });
  return { s, selected, stopNow: () => (stop = { kind: "quit" }) };
}

describe("round-robin scheduler", () => {
  it("gives each vCPU a slot per round, each at the full rate", async () => {
    const clock = new VirtualClock();
    const vcpus = [0, 1, 2].map((i) => new FakeVcpu(i, clock));
    const { s, selected } = scheduler(vcpus, clock, { stopAt: 3 * SLOT_INSTRUCTIONS * 10 });
    assert.deepEqual(await s.run(), { kind: "quit" });
    assert.deepEqual(selected, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    // Three rounds of one slot per vCPU: every vCPU ran 3 slots in 3 slots' worth of time.
    for (const v of vcpus) assert.equal(v.instructionsRetired, 3 * SLOT_INSTRUCTIONS);
    assert.equal(Math.round(clock.now()), 3 * SLOT_INSTRUCTIONS * 10);
    assert.deepEqual(
      vcpus[1].runs.map((r) => Math.round(r.at)),
      [1, 4, 7].map((k) => Math.round((k * SLOT_INSTRUCTIONS * 10) / 3)),
      "vCPU 1's slots follow vCPU 0's in the round's time",
    );
  });

  it("cuts a slot at a timer deadline so the event fires on time", async () => {
    const clock = new VirtualClock();
    const vcpu = new FakeVcpu(0, clock);
    const firedAt: number[] = [];
    clock.timer("t", () => firedAt.push(clock.now())).arm(12_345);
    const { s } = scheduler([vcpu], clock, { stopAt: 50_000 });
    await s.run();
    assert.deepEqual(firedAt, [12_350], "at the first instruction boundary past the deadline");
    assert.equal(vcpu.runs[0].budget, 1235);
  });

  it("lets a halted vCPU's time pass, waking it with a timer in its own slot", async () => {
    const clock = new VirtualClock();
    const busy = new FakeVcpu(0, clock);
    const sleeper = new FakeVcpu(1, clock, 0);
    sleeper.activity = ActivityState.Hlt;
    clock
      .timer("wake", () => {
        sleeper.kick();
        sleeper.work = 100;
      })
      .arm(SLOT_INSTRUCTIONS * 5 + 1000);
    const { s } = scheduler([busy, sleeper], clock, { stopAt: SLOT_INSTRUCTIONS * 10 * 4 });
    await s.run();
    assert.equal(sleeper.instructionsRetired, 100);
    assert.equal(busy.instructionsRetired, 4 * SLOT_INSTRUCTIONS, "the busy vCPU kept its rate");
  });

  it("jumps an idle machine to the next timer at once, and repeats the same run exactly", async () => {
    const trace = async () => {
      const clock = new VirtualClock();
      const vcpus = [new FakeVcpu(0, clock, 500), new FakeVcpu(1, clock, 700)];
      const events: string[] = [];
      const t = clock.timer("tick", () => {
        events.push(`tick@${clock.now()}`);
        vcpus[events.length % 2].kick();
        vcpus[events.length % 2].work = 300;
        if (events.length < 6) t.arm(clock.now() + 1e9); // a virtual second apart
      });
      t.arm(1e9);
      const { s } = scheduler(vcpus, clock, { stopAt: 6e9 });
      const wall = performance.now();
      await s.run();
      return {
        events,
        retired: vcpus.map((v) => v.instructionsRetired),
        wall: performance.now() - wall,
      };
    };
    const first = await trace();
    const second = await trace();
    assert.equal(first.events.length, 6);
    assert.deepEqual(first.events.slice(0, 2), ["tick@1000000000", "tick@2000000000"]);
    assert.deepEqual(first.retired, [500 + 900, 700 + 900]);
    assert.ok(first.wall < 1000, `6 s of idle virtual time took ${first.wall} ms`);
    assert.deepEqual(second.events, first.events);
    assert.deepEqual(second.retired, first.retired);
  });

  it("paces the jump to the wall clock when every vCPU is halted with interrupts off", async () => {
    const clock = new VirtualClock();
    const vcpu = new FakeVcpu(0, clock, 10);
    vcpu.interruptsEnabled = false;
    let fired = 0;
    clock.timer("far", () => fired++).arm(80e6); // 80 ms of virtual time away
    const { s } = scheduler([vcpu], clock, { stopAt: 80e6 });
    const wall = performance.now();
    await s.run();
    const took = performance.now() - wall;
    assert.equal(fired, 1);
    assert.ok(took >= 60, `only ${took} ms of host time for 80 ms of paced idle time`);
  });

  it("gives the host's event loop its turns while a timer keeps waking an idle guest", async () => {
    // Each tick wakes the vCPU for a little work, then a round passes with it halted and
    // the clock jumps to the next tick without waiting on the host. Such a run must still
    // let host timers (the --timeout, signals) fire.
    const clock = new VirtualClock();
    const vcpu = new FakeVcpu(0, clock, 100);
    const tick = clock.timer("tick", () => {
      // Keep the record short: its growth would pause the loop long enough to yield anyway.
      vcpu.runs.length = 0;
      vcpu.kick();
      vcpu.work = 100;
      tick.arm(clock.now() + 1e6);
    });
    tick.arm(1e6);
    let starved = false;
    const wall = performance.now();
    const s = new Scheduler({
      vcpus: [vcpu],
      clock,
      nsPerInstruction: 10,
      realtime: false,
      select: () => {},
      handleExit: (exit) => (exit.kind === "halt" ? { kind: "idle" } : { kind: "continue" }),
      afterRound: () => {
        // Without host turns the timeout below never fires: end the test instead of hanging.
        if (performance.now() - wall > 5000) starved = true;
      },
      stopResult: () => (starved ? { kind: "reset", cause: "starved" } : stop),
    });
    let stop: RunResult | null = null;
    let late = -1;
    setTimeout(() => {
      late = performance.now() - wall - 30;
      stop = { kind: "quit" };
      s.interrupt();
    }, 30);
    assert.deepEqual(await s.run(), { kind: "quit" }, "the host timer fired");
    // The loop yields every 10 ms; only a pause of the host (GC) makes it late otherwise.
    assert.ok(late < 250, `the host timer fired ${late.toFixed(0)} ms late`);
    assert.ok(clock.now() > 1e6, "the guest ran through ticks meanwhile");
  });

  it("sleeps on the host with nothing scheduled until interrupted", async () => {
    const clock = new VirtualClock();
    const vcpu = new FakeVcpu(0, clock, 10);
    const { s, stopNow } = scheduler([vcpu], clock);
    setTimeout(() => {
      stopNow();
      s.interrupt();
    }, 50);
    const wall = performance.now();
    assert.deepEqual(await s.run(), { kind: "quit" });
    assert.ok(performance.now() - wall >= 40);
    assert.ok(vcpu.runs.length <= 3, `${vcpu.runs.length} runs: no spinning`);
  });
});
