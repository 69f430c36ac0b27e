import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AccessSize, BusDevice } from "../src/machine/bus.js";
import { PAGE_SIZE, PhysicalMemory } from "../src/machine/memory.js";

const MIB = 1024 * 1024;

class Register implements BusDevice {
  readonly name = "reg";
  readonly writes: [number, number, number][] = [];
  read(offset: number, size: AccessSize): number {
    return size === 1 ? 0xa0 + (offset & 0xf) : 0x1000 + offset;
  }
  write(offset: number, size: AccessSize, value: number): void {
    this.writes.push([offset, size, value]);
  }
}

describe("PhysicalMemory", () => {
  it("reads and writes RAM little-endian at every width", () => {
    const mem = new PhysicalMemory(2 * MIB);
    mem.write(0x1000, 4, 0x44332211);
    assert.equal(mem.read(0x1000, 1), 0x11);
    assert.equal(mem.read(0x1001, 2), 0x3322);
    assert.equal(mem.read(0x1000, 4), 0x44332211);
    mem.write(0x2000, 4, 0xfedcba98);
    assert.equal(mem.read(0x2000, 4), 0xfedcba98, "reads are unsigned");
    mem.write(0x3000, 2, 0x1abcd);
    assert.equal(mem.read(0x3000, 4), 0xabcd, "a 2-byte write stores the low 16 bits");
  });

  it("splits accesses that cross a page boundary", () => {
    const mem = new PhysicalMemory(2 * MIB);
    mem.write(PAGE_SIZE - 2, 4, 0xa1b2c3d4);
    assert.deepEqual([...mem.ram.subarray(PAGE_SIZE - 2, PAGE_SIZE + 2)], [0xd4, 0xc3, 0xb2, 0xa1]);
    assert.equal(mem.read(PAGE_SIZE - 1, 2), 0xb2c3);
    assert.equal(mem.read(PAGE_SIZE - 3, 4), 0xb2c3d400);
  });

  it("reads all-ones and drops writes outside RAM, even across the end of RAM", () => {
    const mem = new PhysicalMemory(2 * MIB);
    const end = 2 * MIB;
    assert.equal(mem.read(end, 4), 0xffffffff);
    assert.equal(mem.read(0xfffffffc, 4), 0xffffffff);
    assert.equal(mem.read(0x100000000, 2), 0xffff, "above 4 GiB is unassigned");
    mem.write(end, 4, 0);
    assert.equal(mem.read(end, 4), 0xffffffff);
    mem.write(end - 2, 4, 0x11223344);
    assert.equal(mem.read(end - 2, 2), 0x3344, "the in-RAM half of the write lands");
    assert.equal(mem.read(end - 2, 4), 0xffff3344, "the other half reads all-ones");
  });

  it("lays MMIO over RAM and gives the device offsets", () => {
    const mem = new PhysicalMemory(2 * MIB);
    const dev = new Register();
    mem.mapMmio(0x10000, PAGE_SIZE, dev);
    assert.equal(mem.read(0x10004, 4), 0x1004);
    mem.write(0x10008, 2, 0xbeef);
    assert.deepEqual(dev.writes, [[8, 2, 0xbeef]]);
    assert.equal(mem.ram[0x10008], 0, "the RAM under MMIO is not written");
    assert.equal(mem.isRam(0x10000, 1), false);
    // A read straddling RAM and MMIO splits into bytes, each going where its page says.
    mem.ram[0xffff] = 0x5a;
    assert.equal(mem.read(0xffff, 2), 0xa05a);
  });

  it("rejects misaligned MMIO and overlapping devices", () => {
    const mem = new PhysicalMemory(2 * MIB);
    assert.throws(() => mem.mapMmio(0x10010, PAGE_SIZE, new Register()), /not page-aligned/);
    mem.mapMmio(0xfee00000, PAGE_SIZE, new Register());
    assert.throws(() => mem.mapMmio(0xfee00000, PAGE_SIZE, new Register()), /overlaps/);
  });

  it("checks RAM ranges and refuses loads outside RAM", () => {
    const mem = new PhysicalMemory(2 * MIB);
    assert.equal(mem.isRam(0, 2 * MIB), true);
    assert.equal(mem.isRam(2 * MIB - 1, 2), false);
    assert.equal(mem.isRam(-1, 1), false);
    mem.load(0x100000, Uint8Array.of(1, 2, 3));
    assert.equal(mem.read(0x100000, 4), 0x030201);
    assert.throws(() => mem.load(2 * MIB - 1, Uint8Array.of(1, 2)), RangeError);
  });

  it("refuses RAM sizes that are not page multiples or too large", () => {
    assert.throws(() => new PhysicalMemory(1000), RangeError);
    assert.throws(() => new PhysicalMemory(0), RangeError);
    assert.throws(() => new PhysicalMemory(4 * 1024 * MIB), RangeError);
  });
});
