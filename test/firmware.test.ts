/**
 * The firmware's data (src/firmware/): the ACPI tables and MP tables are found and parsed
 * back from a machine's memory the way a kernel would, with every checksum, field and
 * entry checked, and the BDA's pointers. All of it must lie in memory the multiboot map
 * reports as reserved.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { softEngine } from "../src/engine/soft.js";
import { AddressRangeType, systemAddressMap } from "../src/machine/layout.js";
import { Machine } from "../src/machine/machine.js";
import type { PhysicalMemory } from "../src/machine/memory.js";
import { aoutImage, pattern } from "./helpers/kernel-images.js";

function machine(cpus: number, memoryMiB = 64): PhysicalMemory {
  return new Machine({
    memoryMiB,
    smp: cpus,
    kernel: aoutImage(0x100000, pattern(64), 0x40, 0x100020),
    cmdline: "k",
    modules: [],
    serial: null,
    debugcon: null,
    noReboot: true,
    timeoutSeconds: null,
    engine: softEngine,
  }).mem;
}

const text = (m: PhysicalMemory, at: number, n: number) =>
  String.fromCharCode(...m.ram.subarray(at, at + n));
const u8 = (m: PhysicalMemory, at: number) => m.ram[at];
const u16 = (m: PhysicalMemory, at: number) => m.read(at, 2);
const u32 = (m: PhysicalMemory, at: number) => m.read(at, 4);
const u64 = (m: PhysicalMemory, at: number) => u32(m, at) + u32(m, at + 4) * 2 ** 32;
const sum8 = (m: PhysicalMemory, at: number, n: number) =>
  m.ram.subarray(at, at + n).reduce((s, b) => (s + b) & 0xff, 0);

/** Asserts [at, at+n) lies in a reserved range of the memory map. */
function assertReserved(m: PhysicalMemory, at: number, n: number, what: string): void {
  const ok = systemAddressMap(m.ramSize).some(
    (r) => r.type === AddressRangeType.Reserved && at >= r.base && at + n <= r.base + r.length,
  );
  assert.ok(ok, `${what} at 0x${at.toString(16)} is not in reserved memory`);
}

/** An ACPI table at `at`: its signature, checked length and checksum. */
function table(m: PhysicalMemory, at: number, signature: string): number {
  assert.equal(text(m, at, 4), signature);
  const length = u32(m, at + 4);
  assert.equal(sum8(m, at, length), 0, `${signature} checksum`);
  assertReserved(m, at, length, signature);
  return length;
}

function findRsdp(m: PhysicalMemory): number {
  for (let a = 0xe0000; a < 0x100000; a += 16) {
    if (text(m, a, 8) === "RSD PTR " && sum8(m, a, 20) === 0) return a;
  }
  assert.fail("no RSDP in 0xE0000-0xFFFFF");
}

interface Madt {
  lapicAddress: number;
  flags: number;
  entries: number[][];
}

function readAcpi(m: PhysicalMemory) {
  const rsdp = findRsdp(m);
  assert.equal(u8(m, rsdp + 15), 2, "ACPI 2.0+ RSDP");
  assert.equal(u32(m, rsdp + 20), 36);
  assert.equal(sum8(m, rsdp, 36), 0, "extended checksum");
  assertReserved(m, rsdp, 36, "RSDP");
  const rsdt = u32(m, rsdp + 16);
  const xsdt = u64(m, rsdp + 24);
  const rsdtLen = table(m, rsdt, "RSDT");
  const xsdtLen = table(m, xsdt, "XSDT");
  const rsdtEntries = Array.from({ length: (rsdtLen - 36) / 4 }, (_, i) =>
    u32(m, rsdt + 36 + 4 * i),
  );
  const xsdtEntries = Array.from({ length: (xsdtLen - 36) / 8 }, (_, i) =>
    u64(m, xsdt + 36 + 8 * i),
  );
  assert.deepEqual(xsdtEntries, rsdtEntries, "the XSDT lists the same tables");
  const bySignature = new Map(rsdtEntries.map((a) => [text(m, a, 4), a]));
  assert.deepEqual([...bySignature.keys()].sort(), ["APIC", "FACP"]);
  const madtAt = bySignature.get("APIC")!;
  const madtLen = table(m, madtAt, "APIC");
  const entries: number[][] = [];
  for (let off = 44; off < madtLen; off += u8(m, madtAt + off + 1)) {
    entries.push([...m.ram.subarray(madtAt + off, madtAt + off + u8(m, madtAt + off + 1))]);
  }
  const madt: Madt = { lapicAddress: u32(m, madtAt + 36), flags: u32(m, madtAt + 40), entries };
  return { fadt: bySignature.get("FACP")!, madt };
}

describe("ACPI tables", () => {
  for (const cpus of [1, 4, 64]) {
    it(`describe ${cpus} CPU(s) in the MADT, with the I/O APIC, overrides and NMI`, () => {
      const m = machine(cpus);
      const { madt } = readAcpi(m);
      assert.equal(madt.lapicAddress, 0xfee00000);
      assert.equal(madt.flags & 1, 1, "PCAT_COMPAT: 8259s present");
      const lapics = madt.entries.filter((e) => e[0] === 0);
      assert.deepEqual(
        lapics.map((e) => [e.length, e[2], e[3], e[4] & 1]),
        Array.from({ length: cpus }, (_, i) => [8, i, i, 1]),
        "one enabled entry per CPU, the BSP (APIC ID 0) first",
      );
      const ioapics = madt.entries.filter((e) => e[0] === 1);
      assert.equal(ioapics.length, 1);
      const io = ioapics[0];
      assert.equal(io[2], cpus, "the I/O APIC's ID follows the CPUs'");
      assert.equal((io[4] | (io[5] << 8) | (io[6] << 16) | (io[7] << 24)) >>> 0, 0xfec00000);
      const overrides = madt.entries
        .filter((e) => e[0] === 2)
        .map((e) => ({ bus: e[2], irq: e[3], gsi: e[4] | (e[5] << 8), flags: e[8] | (e[9] << 8) }));
      assert.deepEqual(overrides, [
        { bus: 0, irq: 0, gsi: 2, flags: 0 },
        { bus: 0, irq: 9, gsi: 9, flags: 0x0d },
      ]);
      const nmis = madt.entries.filter((e) => e[0] === 4);
      assert.deepEqual(nmis, [[4, 6, 0xff, 0, 0, 1]], "LINT1 of every processor is NMI");
    });
  }

  it("describe the PM timer, PM1 blocks, SCI, century and reset register in the FADT", () => {
    const m = machine(2);
    const { fadt } = readAcpi(m);
    assert.equal(u32(m, fadt + 4), 244);
    assert.equal(u8(m, fadt + 8), 4, "revision");
    const facs = u32(m, fadt + 36);
    const dsdt = u32(m, fadt + 40);
    assert.equal(u64(m, fadt + 132), facs, "X_FIRMWARE_CTRL");
    assert.equal(u64(m, fadt + 140), dsdt, "X_DSDT");
    assert.equal(text(m, facs, 4), "FACS");
    assert.equal(u32(m, facs + 4), 64);
    assert.equal(facs % 64, 0, "the FACS is 64-byte aligned");
    assertReserved(m, facs, 64, "FACS");
    const dsdtLen = table(m, dsdt, "DSDT");
    assert.deepEqual(
      [...m.ram.subarray(dsdt + 36, dsdt + dsdtLen)],
      [0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00],
      "Name (_S5, Package () { 0, 0, 0, 0 })",
    );
    assert.equal(u16(m, fadt + 46), 9, "SCI_INT");
    assert.equal(u32(m, fadt + 48), 0, "no SMI_CMD: always in ACPI mode");
    assert.equal(u32(m, fadt + 56), 0x600, "PM1a_EVT_BLK");
    assert.equal(u32(m, fadt + 64), 0x604, "PM1a_CNT_BLK");
    assert.equal(u32(m, fadt + 76), 0x608, "PM_TMR_BLK");
    assert.deepEqual(
      [88, 89, 91].map((o) => u8(m, fadt + o)),
      [4, 2, 4],
      "block lengths",
    );
    assert.equal(u8(m, fadt + 108), 0x32, "CENTURY");
    assert.equal(u16(m, fadt + 109) & 3, 3, "legacy devices and an 8042");
    const flags = u32(m, fadt + 112);
    assert.equal(flags & (1 << 8), 0, "TMR_VAL_EXT clear: a 24-bit PM timer");
    assert.equal(flags & (1 << 10), 1 << 10, "RESET_REG_SUP");
    assert.deepEqual([u8(m, fadt + 116), u64(m, fadt + 120), u8(m, fadt + 128)], [1, 0x64, 0xfe]);
    // X_PM_TMR_BLK: system I/O, 32 bits, at 0x608.
    assert.deepEqual([u8(m, fadt + 208), u8(m, fadt + 209), u64(m, fadt + 212)], [1, 32, 0x608]);
  });
});

describe("MP tables", () => {
  it("have a floating pointer in the BIOS ROM area and a configuration table listing the machine", () => {
    const cpus = 3;
    const m = machine(cpus);
    let fp = -1;
    for (let a = 0xf0000; a < 0x100000 && fp < 0; a += 16) if (text(m, a, 4) === "_MP_") fp = a;
    assert.ok(fp > 0, "no MP floating pointer");
    assert.equal(sum8(m, fp, 16), 0);
    assert.deepEqual([u8(m, fp + 8), u8(m, fp + 9), u8(m, fp + 11), u8(m, fp + 12)], [1, 4, 0, 0]);
    const ct = u32(m, fp + 4);
    assert.equal(text(m, ct, 4), "PCMP");
    const len = u16(m, ct + 4);
    assert.equal(sum8(m, ct, len), 0, "base table checksum");
    assertReserved(m, ct, len, "MP configuration table");
    assert.equal(u32(m, ct + 36), 0xfee00000);
    const count = u16(m, ct + 34);
    const entries: number[][] = [];
    for (let off = 44, i = 0; i < count; i++) {
      const size = u8(m, ct + off) === 0 ? 20 : 8;
      entries.push([...m.ram.subarray(ct + off, ct + off + size)]);
      off += size;
    }
    const procs = entries.filter((e) => e[0] === 0);
    assert.deepEqual(
      procs.map((e) => [e[1], e[2], e[3]]),
      [
        [0, 0x14, 3],
        [1, 0x14, 1],
        [2, 0x14, 1],
      ],
      "APIC ID, version, EN and BP flags",
    );
    assert.equal(String.fromCharCode(...entries.find((e) => e[0] === 1)!.slice(2, 8)), "ISA   ");
    const io = entries.find((e) => e[0] === 2)!;
    assert.deepEqual(io.slice(1, 4), [cpus, 0x11, 1]);
    const ints = entries
      .filter((e) => e[0] === 3)
      .map((e) => ({ type: e[1], flags: e[2], irq: e[5], pin: e[7] }));
    assert.deepEqual(ints[0], { type: 3, flags: 0, irq: 0, pin: 0 }, "the 8259 on INTIN0 (ExtINT)");
    assert.deepEqual(ints[1], { type: 0, flags: 0, irq: 0, pin: 2 }, "IRQ0 on INTIN2");
    assert.equal(ints.length, 16, "ExtINT and 15 ISA IRQs (no cascade IRQ2)");
    assert.deepEqual(
      ints.find((i) => i.irq === 9),
      { type: 0, flags: 0x0d, irq: 9, pin: 9 },
    );
    const lints = entries.filter((e) => e[0] === 4).map((e) => [e[1], e[6], e[7]]);
    assert.deepEqual(lints, [
      [3, 0xff, 0],
      [1, 0xff, 1],
    ]);
  });
});

describe("BIOS data area", () => {
  it("points at the EBDA and lists the serial ports and base memory", () => {
    const m = machine(1);
    assert.equal(u16(m, 0x40e), 0x9fc0);
    assert.equal(u16(m, 0x413), 639);
    assert.deepEqual(
      [0, 2, 4, 6].map((o) => u16(m, 0x400 + o)),
      [0x3f8, 0x2f8, 0x3e8, 0x2e8],
    );
    assert.equal((u16(m, 0x410) >> 9) & 7, 4, "four serial ports");
    assert.equal(u8(m, 0x449), 3, "video mode 3");
    assert.equal(u16(m, 0x463), 0x3d4);
    assert.equal(u8(m, 0x9fc00), 1, "the EBDA's size in KiB");
  });
});
