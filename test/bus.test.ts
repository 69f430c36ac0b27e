import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { allOnes, Bus, type AccessSize, type BusDevice } from "../src/machine/bus.js";

/** A device that records its accesses and reads back offset-derived values. */
class Recorder implements BusDevice {
  readonly log: string[] = [];
  constructor(readonly name: string) {}
  read(offset: number, size: AccessSize): number {
    this.log.push(`r${size}@${offset}`);
    return 0x40 + offset;
  }
  write(offset: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${offset}=${value.toString(16)}`);
  }
}

describe("Bus", () => {
  it("gives devices offsets into their range, not absolute addresses", () => {
    const bus = new Bus("io");
    const dev = new Recorder("dev");
    bus.register(0x3f8, 8, dev);
    assert.equal(bus.read(0x3fd, 1), 0x45);
    bus.write(0x3f8, 2, 0x1234);
    bus.write(0x3ff, 4, 0xdeadbeef);
    assert.deepEqual(dev.log, ["r1@5", "w2@0=1234", "w4@7=deadbeef"]);
  });

  it("routes each address to the device that covers it", () => {
    const bus = new Bus("io");
    const a = new Recorder("a");
    const b = new Recorder("b");
    bus.register(0x100, 4, b);
    bus.register(0x10, 4, a);
    bus.read(0x13, 1);
    bus.read(0x100, 1);
    assert.deepEqual(a.log, ["r1@3"]);
    assert.deepEqual(b.log, ["r1@0"]);
    assert.equal(bus.find(0x14), undefined, "the range end is exclusive");
  });

  it("rejects overlapping registrations and empty ranges", () => {
    const bus = new Bus("io");
    bus.register(0x60, 4, new Recorder("kbd"));
    assert.throws(() => bus.register(0x63, 2, new Recorder("late")), /late .* overlaps kbd/);
    assert.throws(() => bus.register(0x5f, 2, new Recorder("early")), /overlaps kbd/);
    assert.throws(() => bus.register(0x40, 0x100, new Recorder("around")), /overlaps kbd/);
    assert.throws(() => bus.register(0x80, 0, new Recorder("empty")), /empty range/);
    // Adjacent ranges do not overlap.
    bus.register(0x5c, 4, new Recorder("below"));
    bus.register(0x64, 4, new Recorder("above"));
  });

  it("reads all-ones and drops writes at unassigned addresses, telling onUnassigned", () => {
    const bus = new Bus("io");
    const seen: string[] = [];
    bus.onUnassigned = (addr, size, write) => seen.push(`${write ? "w" : "r"}${size}@${addr}`);
    assert.equal(bus.read(0x1234, 1), 0xff);
    assert.equal(bus.read(0x1234, 2), 0xffff);
    assert.equal(bus.read(0x1234, 4), 0xffffffff);
    bus.write(0x1234, 4, 0);
    assert.deepEqual(seen, ["r1@4660", "r2@4660", "r4@4660", "w4@4660"]);
  });

  it("computes all-ones per access size", () => {
    assert.deepEqual(
      [1, 2, 4].map((s) => allOnes(s as AccessSize)),
      [0xff, 0xffff, 0xffffffff],
    );
  });
});
