/**
 * The MC146818 RTC and CMOS RAM (src/devices/rtc-cmos.ts): time and date formats, the
 * update cycle and UIP, setting the time, the periodic, alarm and update interrupts on
 * IRQ8, the BIOS's CMOS bytes and the NMI mask bit.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RtcCmos } from "../src/devices/rtc-cmos.js";
import { VirtualClock } from "../src/machine/clock.js";

const MIB = 1024 * 1024;

function setUp(start = "2024-02-28T23:59:58Z", ramBytes = 512 * MIB, cpus = 4) {
  const clock = new VirtualClock();
  const irq: boolean[] = [];
  const rtc = new RtcCmos(clock, {
    start: new Date(start),
    ramBytes,
    cpus,
    irq: (l) => irq.push(l),
  });
  const read = (i: number) => {
    rtc.write(0, 1, i);
    return rtc.read(1, 1);
  };
  const write = (i: number, v: number) => {
    rtc.write(0, 1, i);
    rtc.write(1, 1, v);
  };
  /** Moves virtual time to `ns`, firing the RTC's events on the way. */
  const to = (ns: number) => {
    while (clock.nextDeadline() <= ns) {
      clock.advanceTo(clock.nextDeadline());
      clock.runDue();
    }
    clock.advanceTo(ns);
  };
  return { clock, rtc, read, write, to, irq };
}

describe("MC146818 RTC and CMOS", () => {
  it("shows its start time in BCD, 24-hour format, and counts through a leap day", () => {
    const { read, to } = setUp();
    assert.deepEqual([9, 8, 7, 4, 2, 0].map(read), [0x24, 0x02, 0x28, 0x23, 0x59, 0x58]);
    assert.equal(read(6), 4, "day of week: Wednesday");
    assert.equal(read(0x32), 0x20, "century");
    to(2.6e9); // updates at 0.5, 1.5 and 2.5 s
    assert.deepEqual([9, 8, 7, 4, 2, 0].map(read), [0x24, 0x02, 0x29, 0x00, 0x00, 0x01]);
    assert.equal(read(6), 5);
  });

  it("reads binary and 12-hour formats", () => {
    const { read, write } = setUp("2023-12-31T15:04:05Z");
    write(0x0b, 0x04); // binary, 12-hour
    assert.deepEqual([4, 2, 0].map(read), [0x80 | 3, 4, 5]);
    write(4, 0x80 | 12); // 12 PM
    write(0x0b, 0x06);
    assert.equal(read(4), 12);
  });

  it("sets UIP 244 us before each update and stops updating while SET is on", () => {
    const { read, write, to } = setUp();
    to(0.4997e9);
    assert.equal(read(0x0a) & 0x80, 0);
    to(0.4998e9);
    assert.equal(read(0x0a) & 0x80, 0x80);
    write(0x0b, 0x82); // SET
    write(0, 0x30);
    write(2, 0x10);
    to(3e9);
    assert.deepEqual([2, 0].map(read), [0x10, 0x30]);
    assert.equal(read(0x0a) & 0x80, 0, "no update cycles while SET");
    write(0x0b, 0x02);
    to(3.6e9);
    assert.equal(read(0), 0x31);
  });

  it("raises IRQ8 for periodic interrupts at the rate register A selects; reading C lowers it", () => {
    const { read, write, to, irq } = setUp();
    write(0x0a, 0x26); // 1024 Hz
    write(0x0b, 0x42); // PIE
    to(0.9e6);
    assert.deepEqual(irq, []);
    to(1e6);
    assert.deepEqual(irq, [true]);
    assert.equal(read(0x0c), 0xc0, "IRQF and PF");
    assert.deepEqual(irq, [true, false]);
    assert.equal(read(0x0c), 0);
    to(10e6);
    assert.equal(irq.filter((l) => l).length, 2, "IRQ8 stays high until C is read");
    write(0x0b, 0x02);
    to(20e6);
    assert.equal(read(0x0c) & 0x40, 0x40, "PF is set without PIE, without an interrupt");
  });

  it("raises the alarm and update-ended interrupts", () => {
    const { read, write, to, irq } = setUp("2000-01-01T00:00:00Z");
    write(1, 0x03); // alarm at hh:mm:03, any hour and minute
    write(3, 0xc0);
    write(5, 0xff);
    write(0x0b, 0x22); // AIE
    to(2.4e9); // updates at 0.5 s (00:00:01) and 1.5 s (00:00:02)
    assert.deepEqual(irq, []);
    to(2.6e9); // 00:00:03 at 2.5 s
    assert.deepEqual(irq, [true]);
    // PF too: the 1024 Hz periodic flag is set whether or not PIE enables its interrupt.
    assert.equal(read(0x0c), 0xf0, "IRQF, PF, AF and UF");
    write(0x0b, 0x12); // UIE
    to(3.6e9);
    assert.equal(read(0x0c), 0xd0, "IRQF, PF and UF: 00:00:04 is no alarm");
  });

  it("holds the divider in reset: no updates, the first one half a second after release", () => {
    const { read, write, to } = setUp("2000-01-01T00:00:00Z");
    write(0x0a, 0x66);
    to(5e9);
    assert.equal(read(0), 0);
    write(0x0a, 0x26);
    to(5.4e9);
    assert.equal(read(0), 0);
    to(5.6e9);
    assert.equal(read(0), 1);
  });

  it("holds the memory sizes, CPU count and checksum a BIOS stores", () => {
    const { read } = setUp(undefined, 512 * MIB, 8);
    const word = (i: number) => read(i) | (read(i + 1) << 8);
    assert.equal(word(0x15), 640);
    assert.equal(word(0x17), 0xffff, "extended memory is capped at 64 MiB - 1 KiB");
    assert.equal(word(0x30), 0xffff);
    assert.equal(word(0x34), (512 - 16) * 16, "64 KiB units above 16 MiB");
    assert.deepEqual([0x5b, 0x5c, 0x5d].map(read), [0, 0, 0]);
    assert.equal(read(0x5f), 7);
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += read(i);
    assert.equal((read(0x2e) << 8) | read(0x2f), sum);
    const small = setUp(undefined, 8 * MIB, 1);
    assert.equal(small.read(0x17) | (small.read(0x18) << 8), 7 * 1024);
    assert.equal(small.read(0x34) | (small.read(0x35) << 8), 0);
  });

  it("keeps the NMI-disable bit of the index port and general CMOS bytes", () => {
    const { rtc, read, write } = setUp();
    assert.equal(rtc.nmiDisabled, false);
    rtc.write(0, 1, 0x80 | 0x40);
    assert.equal(rtc.nmiDisabled, true);
    write(0x40, 0x5a);
    assert.equal(rtc.nmiDisabled, false, "an index write without bit 7 enables NMIs");
    assert.equal(read(0x40), 0x5a);
    assert.equal(read(0x0d), 0x80, "VRT");
    assert.equal(rtc.read(0, 1), 0xff, "the index port is write-only");
  });
});
