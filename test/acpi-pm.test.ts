/**
 * The ACPI PM timer and PM1 registers (src/devices/acpi-pm.ts): the 24-bit 3.579545 MHz
 * counter, TMR_STS and its SCI, write-1-to-clear status, SCI_EN and soft-off.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AcpiPm, PM_TIMER_HZ } from "../src/devices/acpi-pm.js";
import { VirtualClock } from "../src/machine/clock.js";

const STS = 0;
const EN = 2;
const CNT = 4;
const TMR = 8;
const CARRY_NS = ((1 << 23) * 1e9) / PM_TIMER_HZ;

function setUp() {
  const clock = new VirtualClock();
  const sci: boolean[] = [];
  let off = 0;
  const pm = new AcpiPm(
    clock,
    (l) => sci.push(l),
    () => off++,
  );
  const to = (ns: number) => {
    while (clock.nextDeadline() <= ns) {
      clock.advanceTo(clock.nextDeadline());
      clock.runDue();
    }
    clock.advanceTo(ns);
  };
  return { clock, pm, sci, to, off: () => off };
}

describe("ACPI PM timer and PM1 registers", () => {
  it("counts at 3.579545 MHz in 24 bits", () => {
    const { pm, to } = setUp();
    assert.equal(pm.read(TMR, 4), 0);
    to(1e6);
    assert.equal(pm.read(TMR, 4), 3579);
    to(5e9);
    assert.equal(pm.read(TMR, 4), Math.floor(5 * PM_TIMER_HZ) & 0xffffff, "wrapped at 2^24");
    assert.equal(pm.read(TMR + 1, 1), (pm.read(TMR, 4) >>> 8) & 0xff, "byte reads");
  });

  it("sets TMR_STS when bit 23 changes, cleared by writing 1", () => {
    const { pm, to } = setUp();
    to(CARRY_NS - 1000);
    assert.equal(pm.read(STS, 2) & 1, 0);
    to(CARRY_NS + 1000);
    assert.equal(pm.read(STS, 2) & 1, 1);
    pm.write(STS, 2, 0x0000);
    assert.equal(pm.read(STS, 2) & 1, 1, "writing 0 keeps it");
    pm.write(STS, 2, 0x0001);
    assert.equal(pm.read(STS, 2) & 1, 0);
  });

  it("raises the SCI at the carry when TMR_EN is set", () => {
    const { pm, sci, to } = setUp();
    pm.write(EN, 2, 0x0001);
    assert.equal(pm.read(EN, 2), 0x0001);
    to(CARRY_NS - 1);
    assert.deepEqual(sci, []);
    to(CARRY_NS + 1);
    assert.deepEqual(sci, [true]);
    pm.write(STS, 2, 0x0001);
    assert.deepEqual(sci, [true, false]);
    to(2 * CARRY_NS + 1);
    assert.deepEqual(sci, [true, false, true]);
  });

  it("reads SCI_EN set, and turns off on SLP_EN with SLP_TYP 0", () => {
    const { pm, off } = setUp();
    assert.equal(pm.read(CNT, 2) & 1, 1);
    pm.write(CNT, 2, 5 << 10); // SLP_TYP 5 without SLP_EN
    assert.equal(off(), 0);
    assert.equal(pm.read(CNT, 2), (5 << 10) | 1, "SLP_TYP reads back");
    pm.write(CNT, 2, (5 << 10) | (1 << 13)); // another sleeping state: not supported
    assert.equal(off(), 0);
    pm.write(CNT, 2, 1 << 13);
    assert.equal(off(), 1);
    assert.equal(pm.read(CNT, 2) & (1 << 13), 0, "SLP_EN is write-only");
  });
});
