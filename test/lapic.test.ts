/**
 * The local APIC (src/devices/lapic.ts): priorities and the interrupt acknowledge, EOI,
 * the timer's three modes, IPIs with every delivery mode and destination form, LINT0
 * ExtINT and the globally disabled APIC, the error register, and x2APIC mode through MSRs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApicBus, type EoiListener } from "../src/devices/apic-bus.js";
import {
  APIC_BASE_EN,
  APIC_BASE_EXTD,
  LocalApic,
  REG_APR,
  REG_DFR,
  REG_EOI,
  REG_ESR,
  REG_ICR_HI,
  REG_ICR_LO,
  REG_ID,
  REG_IRR,
  REG_ISR,
  REG_LDR,
  REG_LVT_ERROR,
  REG_LVT_LINT0,
  REG_LVT_LINT1,
  REG_LVT_TIMER,
  REG_PPR,
  REG_SVR,
  REG_TIMER_CURRENT,
  REG_TIMER_DIVIDE,
  REG_TIMER_INITIAL,
  REG_TMR,
  REG_TPR,
  REG_VERSION,
  XAPIC_DEFAULT_BASE,
} from "../src/devices/lapic.js";
import { ActivityState, type Vcpu } from "../src/engine/engine.js";
import { VirtualClock } from "../src/machine/clock.js";

/** A vCPU that records what its APIC asks of it. */
class FakeVcpu {
  readonly events: string[] = [];
  kicks = 0;
  readonly activity = ActivityState.Active;
  kick(): void {
    this.kicks++;
  }
  nmi(): void {
    this.events.push("nmi");
  }
  init(): void {
    this.events.push("init");
  }
  sipi(v: number): void {
    this.events.push(`sipi ${v}`);
  }
}

const ENABLE = 0x1ff; // SVR: software-enabled, spurious vector 0xFF

function setUp(n = 3) {
  const clock = new VirtualClock();
  const bus = new ApicBus();
  const eois: number[] = [];
  const ioapic: EoiListener = { eoi: (v) => eois.push(v) };
  bus.addEoiListener(ioapic);
  let picAcks = 0;
  const apics = Array.from({ length: n }, (_, id) => {
    const apic = new LocalApic({ id, clock, bus, picAcknowledge: () => 0x70 + picAcks++ });
    bus.addLocalApic(apic);
    return apic;
  });
  const vcpus = apics.map((a) => {
    const v = new FakeVcpu();
    a.connect(v as unknown as Vcpu);
    return v;
  });
  const rd = (a: LocalApic, reg: number) => a.readMmio(reg, 4);
  const wr = (a: LocalApic, reg: number, v: number) => a.writeMmio(reg, 4, v);
  for (const a of apics) wr(a, REG_SVR, ENABLE);
  /** Moves time forward, firing the APIC timers' events. */
  const to = (ns: number) => {
    while (clock.nextDeadline() <= ns) {
      clock.advanceTo(clock.nextDeadline());
      clock.runDue();
    }
    clock.advanceTo(ns);
  };
  return { clock, bus, apics, vcpus, rd, wr, to, eois, picAcks: () => picAcks };
}

/** A fixed IPI from `from` to physical APIC ID `dest`. */
function ipi(
  wr: (a: LocalApic, r: number, v: number) => void,
  from: LocalApic,
  dest: number,
  lo: number,
) {
  wr(from, REG_ICR_HI, dest << 24);
  wr(from, REG_ICR_LO, lo);
}

describe("local APIC", () => {
  it("starts with its ID, version and power-on registers", () => {
    const { apics, rd } = setUp();
    const a = new LocalApic({
      id: 5,
      clock: new VirtualClock(),
      bus: new ApicBus(),
      picAcknowledge: () => 0,
    });
    assert.equal(rd(a, REG_ID), 5 << 24);
    assert.equal(rd(a, REG_VERSION), 0x00050014);
    assert.equal(rd(a, REG_SVR), 0xff);
    assert.equal(rd(a, REG_DFR), 0xffffffff);
    for (const r of [REG_LVT_TIMER, REG_LVT_LINT0, REG_LVT_LINT1, REG_LVT_ERROR]) {
      assert.equal(rd(a, r), 0x10000, "masked");
    }
    assert.equal(a.mmioBase, XAPIC_DEFAULT_BASE);
    assert.equal(rd(apics[2], REG_ID), 2 << 24);
  });

  it("delivers the highest pending vector above the processor priority; EOI ends it", () => {
    const { apics, vcpus, rd, wr } = setUp();
    const [a] = apics;
    ipi(wr, apics[1], 0, 0x41);
    ipi(wr, apics[1], 0, 0x62);
    assert.ok(vcpus[0].kicks > 0);
    assert.equal(rd(a, REG_IRR + 0x20), 1 << 1, "vector 0x41 in IRR word 2");
    assert.equal(a.hasInterrupt(), true);
    assert.equal(a.acknowledge(), 0x62);
    assert.equal(rd(a, REG_ISR + 0x30), 1 << 2);
    assert.equal(rd(a, REG_PPR), 0x60);
    assert.equal(a.hasInterrupt(), false, "0x41 is below the in-service class");
    wr(a, REG_EOI, 0);
    assert.equal(a.hasInterrupt(), true);
    wr(a, REG_TPR, 0x50);
    assert.equal(rd(a, REG_PPR), 0x50);
    assert.equal(a.hasInterrupt(), false, "TPR class 5 blocks 0x41");
    wr(a, REG_TPR, 0x30);
    assert.equal(a.acknowledge(), 0x41);
  });

  it("answers an acknowledge with nothing deliverable with the spurious vector", () => {
    const { apics, wr } = setUp();
    wr(apics[0], REG_SVR, 0x1e7);
    assert.equal(apics[0].acknowledge(), 0xe7);
  });

  it("holds interrupts while software-disabled, and keeps its LVT entries masked", () => {
    const { apics, rd, wr } = setUp();
    const [a] = apics;
    wr(a, REG_SVR, 0xff);
    ipi(wr, apics[1], 0, 0x45);
    assert.equal(a.hasInterrupt(), false);
    wr(a, REG_LVT_LINT0, 0x700);
    assert.equal(rd(a, REG_LVT_LINT0), 0x10700, "the mask stays set");
    wr(a, REG_SVR, ENABLE);
    assert.equal(a.acknowledge(), 0x45, "the held interrupt");
  });

  it("sends EOIs of level-triggered vectors to the I/O APICs", () => {
    const { apics, rd, wr, eois } = setUp();
    const [a] = apics;
    a.accept({
      vector: 0x55,
      mode: 0,
      logical: false,
      destination: 0,
      x2apic: false,
      shorthand: 0,
      assert: true,
      levelTriggered: true,
    });
    assert.equal(rd(a, REG_TMR + 0x20), 1 << (0x55 & 31), "TMR: level-triggered");
    a.acknowledge();
    wr(a, REG_EOI, 0);
    assert.deepEqual(eois, [0x55]);
    ipi(wr, apics[1], 0, 0x56);
    a.acknowledge();
    wr(a, REG_EOI, 0);
    assert.deepEqual(eois, [0x55], "edge-triggered: no broadcast");
  });

  it("counts down in one-shot mode with the divide configuration, interrupting once", () => {
    const { apics, rd, wr, to } = setUp();
    const [a] = apics;
    wr(a, REG_TIMER_DIVIDE, 0x3); // divide by 16
    wr(a, REG_LVT_TIMER, 0x30);
    wr(a, REG_TIMER_INITIAL, 1000);
    to(16 * 400);
    assert.equal(rd(a, REG_TIMER_CURRENT), 600);
    assert.equal(a.hasInterrupt(), false);
    to(16 * 1000);
    assert.equal(rd(a, REG_TIMER_CURRENT), 0);
    assert.equal(a.acknowledge(), 0x30);
    wr(a, REG_EOI, 0);
    to(16 * 5000);
    assert.equal(a.hasInterrupt(), false, "one shot");
    wr(a, REG_TIMER_DIVIDE, 0xb); // divide by 1
    wr(a, REG_TIMER_INITIAL, 10);
    to(16 * 5000 + 10);
    assert.equal(a.hasInterrupt(), true);
  });

  it("reloads in periodic mode; a masked timer counts without interrupting", () => {
    const { apics, rd, wr, to } = setUp();
    const [a] = apics;
    wr(a, REG_TIMER_DIVIDE, 0xb);
    wr(a, REG_LVT_TIMER, 0x20031); // periodic
    wr(a, REG_TIMER_INITIAL, 100);
    let ticks = 0;
    for (let t = 0; t <= 1000; t += 10) {
      to(t);
      while (a.hasInterrupt()) {
        a.acknowledge();
        wr(a, REG_EOI, 0);
        ticks++;
      }
    }
    assert.equal(ticks, 10);
    to(1050);
    assert.equal(rd(a, REG_TIMER_CURRENT), 50);
    wr(a, REG_LVT_TIMER, 0x30031);
    to(2000);
    assert.equal(a.hasInterrupt(), false);
    wr(a, REG_LVT_TIMER, 0x20031); // unmasked again: the next period interrupts
    to(2100);
    assert.equal(a.acknowledge(), 0x31);
  });

  it("fires at the TSC deadline; other timer modes ignore the deadline MSR", () => {
    const { clock, apics, rd, wr, to } = setUp();
    const [a] = apics;
    assert.equal(a.writeMsr(0x6e0, 500, 0), true);
    assert.deepEqual(a.readMsr(0x6e0), [0, 0], "ignored in one-shot mode");
    wr(a, REG_LVT_TIMER, 0x40032); // TSC-deadline mode
    wr(a, REG_TIMER_INITIAL, 100);
    assert.equal(rd(a, REG_TIMER_INITIAL), 0, "the initial count is ignored");
    a.writeMsr(0x6e0, 5000, 0);
    assert.deepEqual(a.readMsr(0x6e0), [5000, 0]);
    to(4999);
    assert.equal(a.hasInterrupt(), false);
    to(5000);
    assert.equal(clock.tsc(), 5000);
    assert.equal(a.acknowledge(), 0x32);
    assert.deepEqual(a.readMsr(0x6e0), [0, 0], "disarmed once it fired");
    a.writeMsr(0x6e0, 7000, 0);
    wr(a, REG_LVT_TIMER, 0x32); // leaving TSC-deadline mode disarms the timer
    to(8000);
    assert.equal(a.hasInterrupt(), false);
  });

  it("sends IPIs to physical, logical (flat and cluster) and shorthand destinations", () => {
    const { apics, rd, wr } = setUp();
    const irr = (a: LocalApic, v: number) => (rd(a, REG_IRR + (v >>> 5) * 0x10) >>> (v & 31)) & 1;
    // Logical IDs: 0x01, 0x02, 0x04 (flat model).
    apics.forEach((a, i) => wr(a, REG_LDR, (1 << i) << 24));
    ipi(wr, apics[0], 0x06, 0x0800 | 0x40); // logical 0x06: CPUs 1 and 2
    assert.deepEqual(
      apics.map((a) => irr(a, 0x40)),
      [0, 1, 1],
    );
    ipi(wr, apics[0], 0, 0x40000 | 0x41); // self
    assert.deepEqual(
      apics.map((a) => irr(a, 0x41)),
      [1, 0, 0],
    );
    ipi(wr, apics[0], 0, 0x80000 | 0x42); // all including self
    assert.deepEqual(
      apics.map((a) => irr(a, 0x42)),
      [1, 1, 1],
    );
    ipi(wr, apics[0], 0, 0xc0000 | 0x43); // all excluding self
    assert.deepEqual(
      apics.map((a) => irr(a, 0x43)),
      [0, 1, 1],
    );
    ipi(wr, apics[0], 0xff, 0x44); // physical broadcast
    assert.deepEqual(
      apics.map((a) => irr(a, 0x44)),
      [1, 1, 1],
    );
    // Cluster model: cluster 1, members 0x1 and 0x2 on CPUs 1 and 2.
    apics.forEach((a) => wr(a, REG_DFR, 0x0fffffff));
    wr(apics[1], REG_LDR, 0x11000000);
    wr(apics[2], REG_LDR, 0x12000000);
    ipi(wr, apics[0], 0x12, 0x0800 | 0x45);
    assert.deepEqual(
      apics.map((a) => irr(a, 0x45)),
      [0, 0, 1],
    );
    assert.equal(rd(apics[0], REG_ICR_LO) & 0x1000, 0, "delivery status: idle");
  });

  it("gives a lowest-priority interrupt to the APIC with the lowest arbitration priority", () => {
    const { apics, rd, wr } = setUp();
    wr(apics[0], REG_TPR, 0x40);
    wr(apics[1], REG_TPR, 0x20);
    wr(apics[2], REG_TPR, 0x30);
    assert.equal(rd(apics[1], REG_APR), 0x20);
    ipi(wr, apics[0], 0xff, 0x100 | 0x50); // lowest priority, broadcast
    assert.deepEqual(
      apics.map((a) => a.hasInterrupt()),
      [false, true, false],
    );
  });

  it("passes NMI, INIT and startup IPIs to the processor; INIT de-assert does nothing", () => {
    const { apics, vcpus, rd, wr } = setUp();
    wr(apics[1], REG_TPR, 0x70);
    ipi(wr, apics[0], 1, 0x400); // NMI
    ipi(wr, apics[0], 1, 0xc500); // INIT, level, assert
    assert.equal(rd(apics[1], REG_TPR), 0, "INIT resets the APIC's registers");
    assert.equal(rd(apics[1], REG_ID), 1 << 24, "but not its ID");
    ipi(wr, apics[0], 1, 0x8500); // INIT level de-assert
    ipi(wr, apics[0], 1, 0x608); // startup, vector 8
    ipi(wr, apics[0], 1, 0x200); // SMI: no system-management mode, ignored
    assert.deepEqual(vcpus[1].events, ["nmi", "init", "sipi 8"]);
  });

  it("records illegal vectors in the ESR after a write, and raises the error LVT", () => {
    const { apics, rd, wr } = setUp();
    const [a, b] = apics;
    wr(a, REG_LVT_ERROR, 0xfe);
    ipi(wr, a, 1, 0x05); // fixed vector 5: send illegal vector
    assert.equal(rd(a, REG_ESR), 0, "not visible before an ESR write");
    wr(a, REG_ESR, 0);
    assert.equal(rd(a, REG_ESR), 0x20);
    assert.equal(a.acknowledge(), 0xfe);
    b.accept({
      vector: 3,
      mode: 0,
      logical: false,
      destination: 1,
      x2apic: false,
      shorthand: 0,
      assert: true,
      levelTriggered: false,
    });
    wr(b, REG_ESR, 0);
    assert.equal(rd(b, REG_ESR), 0x40, "receive illegal vector");
    a.readMmio(0x3a0, 4); // a reserved register
    wr(a, REG_ESR, 0);
    assert.equal(rd(a, REG_ESR), 0x80, "illegal register address");
  });

  it("takes the 8259's vector through LINT0 in ExtINT mode, and LINT1 NMIs on edges", () => {
    const { apics, vcpus, wr, picAcks } = setUp();
    const [a] = apics;
    a.setLint0(true);
    assert.equal(a.hasInterrupt(), false, "LINT0 masked");
    a.setUpVirtualWire();
    assert.equal(a.hasInterrupt(), true);
    assert.equal(a.acknowledge(), 0x70);
    assert.equal(picAcks(), 1);
    a.setLint1(true);
    a.setLint1(true);
    a.setLint1(false);
    a.setLint1(true);
    assert.deepEqual(vcpus[0].events, ["nmi", "nmi"]);
    wr(a, REG_LVT_LINT0, 0x10700);
    assert.equal(a.hasInterrupt(), false, "masked again");
  });

  it("routes LINT0 straight to INTR while globally disabled, and resets when re-enabled", () => {
    const { apics, rd, wr } = setUp();
    const [a] = apics;
    wr(a, REG_TPR, 0x20);
    a.setApicBase(XAPIC_DEFAULT_BASE, 0); // EN clear
    assert.equal(a.mmioBase, null);
    assert.equal(a.onBus, false);
    a.setLint0(true);
    assert.equal(a.hasInterrupt(), true);
    assert.equal(a.acknowledge(), 0x70);
    a.setApicBase(0xfed00000 | APIC_BASE_EN, 0);
    assert.equal(a.mmioBase, 0xfed00000, "relocated");
    assert.equal(rd(a, REG_TPR), 0, "the state was lost");
    assert.equal(rd(a, REG_SVR), 0xff);
  });

  it("works through MSRs in x2APIC mode", () => {
    const { apics, vcpus } = setUp();
    const [a, b] = apics;
    assert.equal(a.readMsr(0x802), undefined, "x2APIC registers #GP in xAPIC mode");
    for (const x of apics) x.setApicBase(XAPIC_DEFAULT_BASE | APIC_BASE_EN | APIC_BASE_EXTD, 0);
    assert.equal(a.mmioBase, null, "no MMIO page in x2APIC mode");
    assert.deepEqual(b.readMsr(0x802), [1, 0], "32-bit ID");
    assert.deepEqual(b.readMsr(0x80d), [0x00000002, 0], "LDR: cluster 0, bit 1");
    assert.equal(a.readMsr(0x80e), undefined, "no DFR");
    assert.equal(a.writeMsr(0x802, 7, 0), false, "the ID is read-only");
    assert.equal(a.writeMsr(0x80b, 1, 0), false, "EOI takes only zero");
    assert.equal(a.readMsr(0x80b), undefined, "EOI is write-only");
    assert.equal(a.writeMsr(0x80f, 0x1ff, 0), true);
    assert.equal(b.writeMsr(0x80f, 0x1ff, 0), true);
    assert.equal(a.writeMsr(0x830, 0x4060, 1), true, "fixed IPI 0x60 to x2APIC ID 1");
    assert.equal(b.acknowledge(), 0x60);
    assert.equal(a.writeMsr(0x830, 0x400, 1), true);
    assert.deepEqual(vcpus[1].events, ["nmi"]);
    assert.equal(a.writeMsr(0x83f, 0x61, 0), true, "SELF IPI");
    assert.equal(a.acknowledge(), 0x61);
    assert.equal(a.writeMsr(0x808, 0x100, 0), false, "reserved TPR bits");
    assert.equal(a.writeMsr(0x830, 1 << 13, 0), false, "reserved ICR bits");
  });
});
