/** The 8259A pair (src/devices/pic8259.ts), programmed through its ports as a kernel does. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PicPair } from "../src/devices/pic8259.js";

/** A pair initialized like Linux does: master 0x20-0x27, slave 0x28-0x2F, cascade on IR2. */
function setUp(icw4 = 0x01) {
  const intr: boolean[] = [];
  const pic = new PicPair((level) => intr.push(level));
  const m = pic.masterPorts;
  const s = pic.slavePorts;
  m.write(0, 1, 0x11); // ICW1: edge, cascade, ICW4 follows
  m.write(1, 1, 0x20); // ICW2
  m.write(1, 1, 0x04); // ICW3: slave on IR2
  m.write(1, 1, icw4); // ICW4: 8086 mode
  s.write(0, 1, 0x11);
  s.write(1, 1, 0x28);
  s.write(1, 1, 0x02); // slave ID 2
  s.write(1, 1, 0x01);
  return { pic, m, s, intr };
}

const readIsr = (port: {
  write(o: number, s: 1, v: number): void;
  read(o: number, s: 1): number;
}) => {
  port.write(0, 1, 0x0b); // OCW3: read ISR
  const v = port.read(0, 1);
  port.write(0, 1, 0x0a); // back to IRR
  return v;
};

describe("8259A PIC pair", () => {
  it("clears the mask on ICW1 and delivers an edge at its vector", () => {
    const { pic, m, intr } = setUp();
    assert.equal(m.read(1, 1), 0, "ICW1 clears the IMR");
    pic.setIrq(1, true);
    assert.equal(pic.interruptRequested, true);
    assert.deepEqual(intr, [true]);
    assert.equal(m.read(0, 1), 0x02, "IRR");
    assert.equal(pic.acknowledge(), 0x21);
    assert.equal(pic.interruptRequested, false);
    assert.equal(readIsr(m), 0x02);
    assert.equal(m.read(0, 1), 0x00, "the edge request was consumed");
    m.write(0, 1, 0x20); // non-specific EOI
    assert.equal(readIsr(m), 0);
  });

  it("needs a new rising edge for another edge-triggered request", () => {
    const { pic } = setUp();
    pic.setIrq(3, true);
    pic.acknowledge();
    pic.masterPorts.write(0, 1, 0x20);
    pic.setIrq(3, true); // still high: no new edge
    assert.equal(pic.interruptRequested, false);
    pic.setIrq(3, false);
    pic.setIrq(3, true);
    assert.equal(pic.interruptRequested, true);
  });

  it("resolves priorities: IR0 first, in-service levels block lower ones, higher ones nest", () => {
    const { pic, m } = setUp();
    pic.setIrq(5, true);
    pic.setIrq(3, true);
    assert.equal(pic.acknowledge(), 0x23);
    assert.equal(pic.interruptRequested, false, "IR5 is below IR3 in service");
    pic.setIrq(1, true);
    assert.equal(pic.acknowledge(), 0x21, "IR1 nests above IR3");
    m.write(0, 1, 0x20); // EOI for IR1 (the highest in service)
    assert.equal(readIsr(m), 0x08);
    m.write(0, 1, 0x63); // specific EOI for IR3
    assert.equal(pic.acknowledge(), 0x25);
  });

  it("masks inputs with OCW1 and keeps their requests", () => {
    const { pic, m } = setUp();
    m.write(1, 1, 0xfe);
    pic.setIrq(4, true);
    assert.equal(pic.interruptRequested, false);
    assert.equal(m.read(0, 1), 0x10);
    m.write(1, 1, 0x00);
    assert.equal(pic.acknowledge(), 0x24);
  });

  it("cascades the slave through the master's IR2", () => {
    const { pic, m, s } = setUp();
    pic.setIrq(10, true);
    assert.equal(pic.interruptRequested, true);
    assert.equal(pic.acknowledge(), 0x2a);
    assert.equal(readIsr(m), 0x04);
    assert.equal(readIsr(s), 0x04);
    s.write(0, 1, 0x20);
    m.write(0, 1, 0x20);
    assert.equal(readIsr(m) | readIsr(s), 0);
  });

  it("answers an acknowledge without a request with IR7, setting no in-service bit", () => {
    const { pic, m } = setUp();
    const elcr = pic.elcrPorts;
    elcr.write(0, 1, 0x08); // IRQ3 level-triggered
    pic.setIrq(3, true);
    assert.equal(pic.interruptRequested, true);
    pic.setIrq(3, false); // the line drops before the acknowledge
    assert.equal(pic.acknowledge(), 0x27);
    assert.equal(readIsr(m), 0);
  });

  it("follows level-triggered lines (ELCR) and keeps IRQ0-2, 8 and 13 edge-only", () => {
    const { pic, m } = setUp();
    pic.elcrPorts.write(0, 2, 0xffff);
    assert.equal(pic.elcrPorts.read(0, 2), 0xdef8);
    pic.setIrq(5, true);
    assert.equal(pic.acknowledge(), 0x25);
    m.write(0, 1, 0x20);
    assert.equal(pic.interruptRequested, true, "a level still high requests again");
    pic.setIrq(5, false);
    assert.equal(pic.interruptRequested, false);
  });

  it("skips the in-service bit in automatic-EOI mode", () => {
    const { pic, m } = setUp(0x03); // ICW4: 8086, AEOI
    pic.setIrq(6, true);
    assert.equal(pic.acknowledge(), 0x26);
    assert.equal(readIsr(m), 0);
  });

  it("rotates priorities on a rotating EOI and on set-priority", () => {
    const { pic, m } = setUp();
    pic.setIrq(0, true);
    assert.equal(pic.acknowledge(), 0x20);
    m.write(0, 1, 0xa0); // rotate on non-specific EOI: IR0 becomes the lowest
    pic.setIrq(0, false);
    pic.setIrq(0, true);
    pic.setIrq(4, true);
    assert.equal(pic.acknowledge(), 0x24, "IR4 now ranks above IR0");
    m.write(0, 1, 0x20);
    m.write(0, 1, 0xc4); // set priority: IR4 lowest, IR5 highest
    pic.setIrq(4, false);
    pic.setIrq(4, true);
    assert.equal(pic.acknowledge(), 0x20, "IR0 before IR4");
  });

  it("lets lower levels through in special mask mode", () => {
    const { pic, m } = setUp();
    pic.setIrq(1, true);
    assert.equal(pic.acknowledge(), 0x21);
    m.write(1, 1, 0x02); // mask IR1 (in service)
    m.write(0, 1, 0x68); // OCW3: set special mask mode
    pic.setIrq(6, true);
    assert.equal(pic.acknowledge(), 0x26, "IR6 despite IR1 in service");
    m.write(0, 1, 0x48); // reset special mask mode
    pic.setIrq(7, true);
    assert.equal(pic.interruptRequested, false);
  });

  it("acknowledges through a poll command", () => {
    const { pic, m } = setUp();
    pic.setIrq(5, true);
    m.write(0, 1, 0x0c); // OCW3: poll
    assert.equal(m.read(0, 1), 0x85);
    assert.equal(readIsr(m), 0x20);
    m.write(0, 1, 0x0c);
    assert.equal(m.read(0, 1), 0x00, "nothing pending");
  });

  it("nests slave interrupts in special fully nested mode", () => {
    const { pic, s } = setUp(0x11); // ICW4: 8086, SFNM
    pic.setIrq(12, true);
    assert.equal(pic.acknowledge(), 0x2c);
    pic.setIrq(9, true);
    assert.equal(pic.acknowledge(), 0x29, "IRQ9 nests over IRQ12 on the same master input");
    assert.equal(readIsr(s), 0x12);
  });

  it("starts as a BIOS leaves it: vectors 0x08 and 0x70, everything masked", () => {
    const pic = new PicPair();
    pic.initializeAsBios();
    assert.equal(pic.masterPorts.read(1, 1), 0xfb);
    assert.equal(pic.slavePorts.read(1, 1), 0xff);
    pic.masterPorts.write(1, 1, 0xfa);
    pic.setIrq(0, true);
    assert.equal(pic.acknowledge(), 0x08);
    pic.slavePorts.write(1, 1, 0x00);
    pic.setIrq(8, true);
    pic.masterPorts.write(0, 1, 0x20);
    assert.equal(pic.acknowledge(), 0x70);
  });
});
