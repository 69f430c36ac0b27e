/**
 * The 82093AA I/O APIC (src/devices/ioapic.ts) through IOREGSEL/IOWIN, delivering to a
 * recording APIC bus target: registers, edge and level triggering, remote IRR and EOI,
 * polarity, masking and destinations.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ApicBus,
  DeliveryMode,
  type ApicBusTarget,
  type ApicMessage,
} from "../src/devices/apic-bus.js";
import { IoApic, RTE_LEVEL, RTE_MASKED, RTE_REMOTE_IRR } from "../src/devices/ioapic.js";

class Target implements ApicBusTarget {
  readonly got: ApicMessage[] = [];
  onBus = true;
  constructor(
    readonly id: number,
    readonly ldr = 0,
  ) {}
  matchesPhysical(d: number): boolean {
    return d === this.id;
  }
  matchesLogical(d: number): boolean {
    return (d & this.ldr) !== 0;
  }
  arbitrationPriority(): number {
    return 0;
  }
  accept(msg: ApicMessage): void {
    this.got.push(msg);
  }
}

function setUp() {
  const bus = new ApicBus();
  const cpu0 = new Target(0, 0x01);
  const cpu1 = new Target(1, 0x02);
  bus.addLocalApic(cpu0);
  bus.addLocalApic(cpu1);
  const io = new IoApic(bus, 4);
  const reg = (i: number, v?: number) => {
    io.write(0, 4, i);
    if (v === undefined) return io.read(0x10, 4);
    io.write(0x10, 4, v);
    return v;
  };
  const route = (pin: number, lo: number, dest: number) => {
    reg(0x10 + 2 * pin + 1, dest << 24);
    reg(0x10 + 2 * pin, lo);
  };
  return { bus, io, reg, route, cpu0, cpu1 };
}

describe("82093AA I/O APIC", () => {
  it("has its ID, version and 24 masked redirection entries", () => {
    const { io, reg } = setUp();
    assert.equal(reg(0x00), 4 << 24);
    assert.equal(reg(0x01), 0x00170011);
    assert.equal(reg(0x02), 4 << 24, "arbitration ID");
    for (let pin = 0; pin < 24; pin++) assert.equal(reg(0x10 + 2 * pin), RTE_MASKED);
    reg(0x00, 0x0a000000);
    assert.equal(reg(0x00), 0x0a000000);
    reg(0x01, 0);
    assert.equal(reg(0x01), 0x00170011, "read-only");
    assert.equal(io.read(0, 4), 0x01, "IOREGSEL reads back");
    reg(0x11, 0xffffffff);
    assert.equal(reg(0x11), 0xff000000, "only the destination byte is writable");
  });

  it("sends a fixed edge-triggered message on each rising edge", () => {
    const { io, route, cpu1 } = setUp();
    route(2, 0x30, 1);
    io.setIrq(2, true);
    io.setIrq(2, true);
    assert.equal(cpu1.got.length, 1);
    assert.deepEqual(
      { v: cpu1.got[0].vector, m: cpu1.got[0].mode, lvl: cpu1.got[0].levelTriggered },
      { v: 0x30, m: DeliveryMode.Fixed, lvl: false },
    );
    io.setIrq(2, false);
    io.setIrq(2, true);
    assert.equal(cpu1.got.length, 2);
  });

  it("loses edges on a masked pin", () => {
    const { io, route, reg, cpu0 } = setUp();
    route(4, RTE_MASKED | 0x31, 0);
    io.setIrq(4, true);
    reg(0x18, 0x31); // unmask while the line is high: no edge
    assert.equal(cpu0.got.length, 0);
  });

  it("holds a level-triggered pin in service until the EOI, then sends again if still asserted", () => {
    const { bus, io, route, reg, cpu0 } = setUp();
    route(9, RTE_LEVEL | 0x39, 0);
    io.setIrq(9, true);
    assert.equal(cpu0.got.length, 1);
    assert.equal(cpu0.got[0].levelTriggered, true);
    assert.equal(reg(0x10 + 18) & RTE_REMOTE_IRR, RTE_REMOTE_IRR);
    io.setIrq(9, false);
    io.setIrq(9, true);
    assert.equal(cpu0.got.length, 1, "remote IRR holds it back");
    bus.broadcastEoi(0x38);
    assert.equal(cpu0.got.length, 1, "another vector's EOI");
    bus.broadcastEoi(0x39);
    assert.equal(cpu0.got.length, 2);
    io.setIrq(9, false);
    bus.broadcastEoi(0x39);
    assert.equal(reg(0x10 + 18) & RTE_REMOTE_IRR, 0);
    assert.equal(cpu0.got.length, 2);
  });

  it("sees a masked level-triggered input again when unmasked", () => {
    const { io, route, reg, cpu0 } = setUp();
    route(10, RTE_MASKED | RTE_LEVEL | 0x3a, 0);
    io.setIrq(10, true);
    assert.equal(cpu0.got.length, 0);
    reg(0x10 + 20, RTE_LEVEL | 0x3a);
    assert.equal(cpu0.got.length, 1);
  });

  it("inverts active-low inputs", () => {
    const { io, route, cpu0 } = setUp();
    route(11, (1 << 13) | 0x3b, 0); // active low, edge
    io.setIrq(11, true);
    assert.equal(cpu0.got.length, 0);
    io.setIrq(11, false);
    assert.equal(cpu0.got.length, 1);
  });

  it("delivers to logical destinations, NMI and ExtINT modes", () => {
    const { io, route, cpu0, cpu1 } = setUp();
    route(5, (1 << 11) | 0x35, 0x03); // logical, both CPUs
    io.setIrq(5, true);
    assert.equal(cpu0.got.length, 1);
    assert.equal(cpu1.got.length, 1);
    route(6, (DeliveryMode.Nmi << 8) | 0x02, 1);
    io.setIrq(6, true);
    assert.equal(cpu1.got[1].mode, DeliveryMode.Nmi);
    route(0, DeliveryMode.ExtInt << 8, 0);
    io.setIrq(0, true);
    assert.equal(cpu0.got[1].mode, DeliveryMode.ExtInt);
    route(7, (DeliveryMode.Fixed << 8) | 0x37, 0xff); // physical broadcast
    io.setIrq(7, true);
    assert.deepEqual([cpu0.got.length, cpu1.got.length], [3, 3]);
  });
});
