/**
 * The 8254 PIT and port 0x61 (src/devices/pit8254.ts) on a virtual clock moved by hand:
 * each mode's count and OUT, latches, read-back, BCD, the gate, and IRQ0's edges.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PIT_HZ, Pit8254, SystemControlPortB } from "../src/devices/pit8254.js";
import { VirtualClock } from "../src/machine/clock.js";

const TICK_NS = 1e9 / PIT_HZ;

function setUp() {
  const clock = new VirtualClock();
  const edges: number[] = [];
  let level = false;
  const pit = new Pit8254(clock, (l) => {
    if (l && !level) edges.push(clock.now());
    level = l;
  });
  const portB = new SystemControlPortB(pit, clock);
  edges.length = 0; // IRQ0 rises with OUT at power-on
  /** Moves time to `ticks` PIT clocks (plus a little) after the start, firing events. */
  const at = (ticks: number) => {
    for (;;) {
      const t = Math.min(clock.nextDeadline(), ticks * TICK_NS + 1);
      clock.advanceTo(t);
      clock.runDue();
      if (t === ticks * TICK_NS + 1) return;
    }
  };
  const control = (v: number) => pit.write(3, 1, v);
  const count = (ch: number, v: number) => {
    pit.write(ch, 1, v & 0xff);
    pit.write(ch, 1, v >>> 8);
  };
  const latch = (ch: number) => {
    control(ch << 6);
    return pit.read(ch, 1) | (pit.read(ch, 1) << 8);
  };
  return { clock, pit, portB, edges, at, control, count, latch, level: () => level };
}

describe("8254 PIT", () => {
  it("mode 0 on channel 2: OUT (port 0x61 bit 5) rises at terminal count, the count runs down", () => {
    const { portB, at, control, count, latch } = setUp();
    portB.write(0, 1, 0x01); // gate 2 on, speaker off
    control(0xb0); // channel 2, LSB then MSB, mode 0
    count(2, 1000);
    assert.equal(portB.read(0, 1) & 0x20, 0);
    at(400);
    assert.equal(latch(2), 600);
    at(999);
    assert.equal(portB.read(0, 1) & 0x20, 0);
    at(1000);
    assert.equal(portB.read(0, 1) & 0x20, 0x20);
    at(1500);
    assert.equal(latch(2), 0x10000 - 500, "the count wraps and keeps running");
    assert.equal(portB.read(0, 1) & 0x20, 0x20, "OUT stays high");
  });

  it("mode 0: a low gate pauses the count", () => {
    const { portB, at, control, count, latch } = setUp();
    portB.write(0, 1, 0x01);
    control(0xb0);
    count(2, 100);
    at(30);
    portB.write(0, 1, 0x00);
    at(500);
    assert.equal(latch(2), 70);
    portB.write(0, 1, 0x01);
    at(520);
    assert.equal(latch(2), 50);
  });

  it("mode 2 on channel 0: an IRQ0 edge every period; a new count waits for the period's end", () => {
    const { at, control, count, edges } = setUp();
    control(0x34); // channel 0, LSB then MSB, mode 2
    count(0, 100);
    at(350);
    assert.deepEqual(
      edges.map((t) => Math.round(t / TICK_NS)),
      [100, 200, 300],
    );
    count(0, 50); // written in the fourth period
    at(500);
    assert.deepEqual(
      edges.map((t) => Math.round(t / TICK_NS)),
      [100, 200, 300, 400, 450, 500],
    );
  });

  it("mode 3: a square wave, high for the first half of each period", () => {
    const { pit, at, control, count, edges } = setUp();
    control(0x36); // channel 0, mode 3
    count(0, 10);
    at(3);
    assert.equal(pit.output(0), true);
    at(7);
    assert.equal(pit.output(0), false);
    at(30);
    assert.equal(edges.length, 3);
  });

  it("modes 4 and 5: a one-pulse strobe after the count, mode 5 triggered by the gate", () => {
    const { pit, portB, at, control, count, edges } = setUp();
    control(0x38); // channel 0, mode 4
    count(0, 20);
    at(20);
    assert.equal(pit.output(0), false, "low for the pulse after terminal count");
    at(40);
    assert.equal(pit.output(0), true);
    assert.deepEqual(
      edges.map((t) => Math.round(t / TICK_NS)),
      [21],
    );

    control(0xba); // channel 2, mode 5
    count(2, 10);
    at(100);
    assert.equal(pit.output(2), true, "no trigger yet");
    portB.write(0, 1, 0x01); // the gate's rising edge triggers it
    at(110);
    assert.equal(pit.output(2), false);
    at(112);
    assert.equal(pit.output(2), true);
  });

  it("mode 1: OUT low from the gate's trigger until terminal count, retriggerable", () => {
    const { pit, portB, at, control, count } = setUp();
    control(0xb2); // channel 2, mode 1
    count(2, 50);
    at(10);
    assert.equal(pit.output(2), true);
    portB.write(0, 1, 0x01);
    at(40);
    assert.equal(pit.output(2), false);
    portB.write(0, 1, 0x00);
    portB.write(0, 1, 0x01); // retrigger at 40
    at(80);
    assert.equal(pit.output(2), false);
    at(90);
    assert.equal(pit.output(2), true);
  });

  it("latches the count until both bytes are read; LSB-only and MSB-only access", () => {
    const { pit, at, control, count } = setUp();
    control(0x30); // mode 0
    count(0, 0x1234);
    control(0x00); // latch channel 0
    at(0x34);
    assert.equal(pit.read(0, 1), 0x34, "the latched LSB");
    at(0x100);
    assert.equal(pit.read(0, 1), 0x12, "the latched MSB, though the count moved on");
    control(0x10); // LSB only
    pit.write(0, 1, 0x80);
    at(0x110);
    assert.equal(pit.read(0, 1), 0x70, "one byte per read, the LSB");
    control(0x20); // MSB only: the count is 0x0200
    pit.write(0, 1, 0x02);
    at(0x210);
    assert.equal(pit.read(0, 1), 0x01, "the MSB of 0x0200 - 0x100");
  });

  it("answers the read-back command with status and count, in that order", () => {
    const { pit, at, control, count } = setUp();
    control(0xb0); // channel 2, mode 0, binary
    assert.equal(pit.snapshot()[2].nullCount, false);
    count(2, 300);
    control(0xc8); // read-back: count and status of channel 2
    assert.equal(pit.read(2, 1), 0x30, "OUT low, count loaded, RW 3, mode 0, binary");
    at(10);
    assert.equal(pit.read(2, 1) | (pit.read(2, 1) << 8), 300, "latched at the command");
    control(0xe8); // status only
    assert.equal(pit.read(2, 1) & 0x80, 0);
  });

  it("counts in BCD", () => {
    const { pit, at, control } = setUp();
    control(0x31); // channel 0, LSB then MSB, mode 0, BCD
    pit.write(0, 1, 0x00);
    pit.write(0, 1, 0x10); // 1000 in BCD
    at(1);
    control(0x00);
    assert.equal(pit.read(0, 1) | (pit.read(0, 1) << 8), 0x0999);
  });

  it("toggles port 0x61's refresh bit every 15 microseconds", () => {
    const { clock, portB } = setUp();
    const first = portB.read(0, 1) & 0x10;
    clock.advanceTo(15_100);
    assert.notEqual(portB.read(0, 1) & 0x10, first);
    portB.write(0, 1, 0xff);
    assert.equal(portB.read(0, 1) & 0x0f, 0x0f, "bits 3:0 read back");
  });
});
