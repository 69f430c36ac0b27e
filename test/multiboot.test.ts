import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BOOTLOADER_MAGIC,
  INFO_ADDR,
  loadMultiboot,
  type MultibootOptions,
  ENTRY_STACK,
} from "../src/boot/multiboot.js";
import { UserError } from "../src/errors.js";
import { PhysicalMemory } from "../src/machine/memory.js";
import {
  aoutImage,
  elfImage,
  MB_FLAG_AOUT_KLUDGE,
  MB_FLAG_MEMORY_INFO,
  MB_FLAG_PAGE_ALIGN,
  MB_FLAG_VIDEO_MODE,
  multibootHeader,
  pattern,
} from "./helpers/kernel-images.js";

const MIB = 1024 * 1024;
const RAM = 4 * MIB;
const NO_OPTS: MultibootOptions = { cmdline: "", modules: [] };

function u32(mem: PhysicalMemory, addr: number): number {
  return mem.read(addr, 4);
}

function u64(mem: PhysicalMemory, addr: number): number {
  return u32(mem, addr) + u32(mem, addr + 4) * 0x100000000;
}

function cString(mem: PhysicalMemory, addr: number): string {
  let end = addr;
  while (mem.ram[end] !== 0) end++;
  return new TextDecoder().decode(mem.ram.subarray(addr, end));
}

function bytesAt(mem: PhysicalMemory, addr: number, n: number): Uint8Array {
  return mem.ram.slice(addr, addr + n);
}

/** Expects loading to fail with a UserError whose message matches `message`. */
function assertRefused(kernel: Uint8Array, message: RegExp, opts = NO_OPTS, ram = RAM) {
  const mem = new PhysicalMemory(ram);
  assert.throws(
    () => loadMultiboot(mem, kernel, opts),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"), "the message is one line");
      return true;
    },
  );
  // Every check runs before the first write.
  assert.ok(
    mem.ram.every((b) => b === 0),
    "a refused kernel leaves RAM untouched",
  );
}

describe("multiboot loading", () => {
  it("loads ELF32 segments by physical address and zeroes the bss", () => {
    const text = pattern(100);
    const data = pattern(50, 0x80);
    const kernel = elfImage({
      bits: 32,
      entry: 0x100010,
      segments: [
        { paddr: 0x100000, data: text },
        { paddr: 0x102000, data, memSize: 0x300, flags: 6 },
      ],
    });
    const mem = new PhysicalMemory(RAM);
    mem.ram.fill(0xaa, 0x102000, 0x103000); // stale bytes where the bss goes
    const entry = loadMultiboot(mem, kernel, NO_OPTS);
    assert.deepEqual(entry, {
      eip: 0x100010,
      eax: BOOTLOADER_MAGIC,
      ebx: INFO_ADDR,
      esp: ENTRY_STACK, // QEMU's entry stack (design.md, decision 6)
    });
    assert.deepEqual(bytesAt(mem, 0x100000, 100), text);
    assert.deepEqual(bytesAt(mem, 0x102000, 50), data);
    assert.ok(
      bytesAt(mem, 0x102000 + 50, 0x300 - 50).every((b) => b === 0),
      "bss zeroed",
    );
    assert.equal(mem.ram[0x102300], 0xaa, "nothing written past the bss");
  });

  it("loads ELF64 segments and translates a high virtual entry point", () => {
    const text = pattern(64);
    const kernel = elfImage({
      bits: 64,
      entry: 0xffffffff80200008n,
      segments: [{ paddr: 0x200000, vaddr: 0xffffffff80200000n, data: text, memSize: 0x1000 }],
    });
    const mem = new PhysicalMemory(RAM);
    const entry = loadMultiboot(mem, kernel, NO_OPTS);
    assert.equal(entry.eip, 0x200008);
    assert.deepEqual(bytesAt(mem, 0x200000, 64), text);
  });

  it("loads an a.out-kludge image at load_addr with its bss", () => {
    const text = pattern(200);
    const kernel = aoutImage(0x100000, text, 0x100, 0x100020);
    const mem = new PhysicalMemory(RAM);
    mem.ram.fill(0xaa, 0x100000, 0x101000);
    const entry = loadMultiboot(mem, kernel, NO_OPTS);
    assert.equal(entry.eip, 0x100020);
    assert.deepEqual(bytesAt(mem, 0x100000, kernel.length), kernel);
    const bssStart = 0x100000 + kernel.length;
    assert.ok(bytesAt(mem, bssStart, 0x100).every((b) => b === 0));
    assert.equal(mem.ram[bssStart + 0x100], 0xaa);
  });

  it("takes the a.out image to the end of the file when load_end_addr is 0", () => {
    const header = multibootHeader(MB_FLAG_AOUT_KLUDGE, {
      headerAddr: 0x100100,
      loadAddr: 0x100000,
      loadEndAddr: 0,
      bssEndAddr: 0,
      entryAddr: 0x100000,
    });
    // The header sits 0x100 bytes into the image, so the image starts at file offset 0.
    const kernel = new Uint8Array(0x180);
    kernel.set(pattern(0x100), 0);
    kernel.set(header, 0x100);
    const mem = new PhysicalMemory(RAM);
    loadMultiboot(mem, kernel, NO_OPTS);
    assert.deepEqual(bytesAt(mem, 0x100000, kernel.length), kernel);
  });

  it("ignores unknown optional header flags and accepts the memory-info flag", () => {
    const flags = MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY_INFO | (1 << 20);
    const kernel = elfImage({
      bits: 32,
      entry: 0x100000,
      segments: [{ paddr: 0x100000, data: pattern(16) }],
      header: multibootHeader(flags),
    });
    loadMultiboot(new PhysicalMemory(RAM), kernel, NO_OPTS);
  });

  it("builds the information structure, memory map, command line and modules", () => {
    const kernel = elfImage({
      bits: 32,
      entry: 0x100000,
      segments: [{ paddr: 0x100000, data: pattern(16), memSize: 0x1234 }],
    });
    const modA = pattern(5000, 7);
    const modB = pattern(3, 9);
    const mem = new PhysicalMemory(RAM);
    loadMultiboot(mem, kernel, {
      cmdline: "kernel.elf shv_opt=0xdfd",
      modules: [
        { data: modA, cmdline: "a.bin arg1 arg2" },
        { data: modB, cmdline: "b.bin" },
      ],
    });
    const info = INFO_ADDR;
    // flags: mem (0), boot_device (1), cmdline (2), mods (3), mmap (6), boot_loader_name (9).
    assert.equal(u32(mem, info), 0x24f);
    assert.equal(u32(mem, info + 12), 0x8000ffff, "boot_device: first hard disk, as QEMU");
    assert.equal(u32(mem, info + 4), 639, "mem_lower");
    assert.equal(u32(mem, info + 8), (RAM - MIB) / 1024, "mem_upper");
    assert.equal(cString(mem, u32(mem, info + 16)), "kernel.elf shv_opt=0xdfd");
    assert.equal(cString(mem, u32(mem, info + 64)), "shv");

    const mmapLength = u32(mem, info + 44);
    const mmapAddr = u32(mem, info + 48);
    const entries: [number, number, number][] = [];
    for (let e = mmapAddr; e < mmapAddr + mmapLength; e += u32(mem, e) + 4) {
      assert.equal(u32(mem, e), 20, "entry size field");
      entries.push([u64(mem, e + 4), u64(mem, e + 12), u32(mem, e + 20)]);
    }
    assert.deepEqual(entries, [
      [0, 0x9fc00, 1],
      [0x9fc00, 0x400, 2],
      [0xe0000, 0x20000, 2],
      [0x100000, RAM - 0x100000, 1],
    ]);

    assert.equal(u32(mem, info + 20), 2, "mods_count");
    const mods = u32(mem, info + 24);
    // The kernel ends at 0x101234: the modules follow on page boundaries.
    assert.equal(u32(mem, mods), 0x102000);
    assert.equal(u32(mem, mods + 4), 0x102000 + modA.length);
    assert.equal(cString(mem, u32(mem, mods + 8)), "a.bin arg1 arg2");
    assert.equal(u32(mem, mods + 16), 0x104000);
    assert.equal(u32(mem, mods + 20), 0x104000 + modB.length);
    assert.equal(cString(mem, u32(mem, mods + 24)), "b.bin");
    assert.deepEqual(bytesAt(mem, 0x102000, modA.length), modA);
    assert.deepEqual(bytesAt(mem, 0x104000, modB.length), modB);
    // Everything lies in low memory below the EBDA.
    for (const addr of [mmapAddr, mods, u32(mem, info + 16), u32(mem, mods + 24)]) {
      assert.ok(addr >= INFO_ADDR && addr < 0x9fc00);
    }
  });

  it("reports no modules with mods_count 0", () => {
    const kernel = aoutImage(0x100000, pattern(8), 0, 0x100000);
    const mem = new PhysicalMemory(RAM);
    loadMultiboot(mem, kernel, NO_OPTS);
    assert.equal(u32(mem, INFO_ADDR + 20), 0);
    assert.equal(cString(mem, u32(mem, INFO_ADDR + 16)), "");
  });
});

describe("multiboot refusals", () => {
  const seg = [{ paddr: 0x100000, data: pattern(16) }];
  const elf32 = (over: Partial<Parameters<typeof elfImage>[0]> = {}) =>
    elfImage({ bits: 32, entry: 0x100000, segments: seg, ...over });

  it("refuses a file without a multiboot header", () => {
    assertRefused(new Uint8Array(0), /no multiboot header in its first 8192 bytes/);
    assertRefused(pattern(20000), /no multiboot header/);
    assertRefused(elf32({ header: null }), /no multiboot header/);
  });

  it("refuses a header that starts beyond the first 8192 bytes", () => {
    const kernel = new Uint8Array(8192 + 64);
    kernel.set(multibootHeader(0), 8192);
    assertRefused(kernel, /no multiboot header/);
  });

  it("refuses a header with a bad checksum", () => {
    assertRefused(elf32({ header: multibootHeader(0, undefined, 0x1234) }), /bad checksum/);
  });

  it("refuses a header cut off by the end of the file", () => {
    assertRefused(multibootHeader(0).subarray(0, 8), /truncated inside its multiboot header/);
    const kludge = multibootHeader(MB_FLAG_AOUT_KLUDGE);
    assertRefused(kludge, /truncated inside its multiboot header/);
  });

  it("refuses video mode requests and unknown required flags", () => {
    assertRefused(elf32({ header: multibootHeader(MB_FLAG_VIDEO_MODE) }), /video mode/);
    assertRefused(
      elf32({ header: multibootHeader(1 << 5) }),
      /unsupported features \(flags 0x20\)/,
    );
  });

  it("refuses a non-ELF file without the a.out kludge", () => {
    const kernel = new Uint8Array(64);
    kernel.set(multibootHeader(0), 0);
    assertRefused(kernel, /not an ELF file and its multiboot header has no a\.out kludge/);
  });

  it("refuses malformed ELF headers", () => {
    const withByte = (kernel: Uint8Array, at: number, value: number) => {
      const copy = kernel.slice();
      copy[at] = value;
      return copy;
    };
    assertRefused(withByte(elf32(), 4, 3), /unsupported ELF class 3/);
    assertRefused(withByte(elf32(), 5, 2), /big-endian/);
    assertRefused(withByte(elf32(), 16, 3), /not an ELF executable \(e_type 3/);
    assertRefused(elf32({ machine: 40 }), /another architecture \(e_machine 40\)/);

    const short = new Uint8Array(48); // an ELF64 header needs 64 bytes
    short.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    short.set(multibootHeader(0), 36);
    assertRefused(short, /ELF header is incomplete/);
  });

  it("refuses program headers or segments past the end of the file", () => {
    const manyHeaders = elf32();
    manyHeaders[44] = 200; // e_phnum
    assertRefused(manyHeaders, /program headers extend past the end/);
    const kernel = elf32({ segments: [{ paddr: 0x100000, data: pattern(64) }] });
    assertRefused(kernel.subarray(0, kernel.length - 16), /segment 0 extends past the end/);
  });

  it("refuses a segment with p_filesz above p_memsz, or no loadable segment", () => {
    const segments = [{ paddr: 0x100000, data: pattern(64), memSize: 32 }];
    assertRefused(elf32({ segments }), /segment 0 has p_filesz larger than p_memsz/);
    const note = [{ paddr: 0x100000, data: pattern(16), type: 4 }];
    assertRefused(elf32({ segments: note }), /no loadable segments/);
  });

  it("refuses segments below 1 MiB or beyond RAM", () => {
    const low = [{ paddr: 0x9000, data: pattern(16) }];
    assertRefused(elf32({ segments: low }), /segment 0 at 0x9000-0x900f overlaps .* below 1 MiB/);
    const high = [
      { paddr: 0x100000, data: pattern(16) },
      { paddr: RAM - 8, data: pattern(16) },
    ];
    assertRefused(elf32({ segments: high }), /segment 1 at .* beyond the end of RAM \(4 MiB\)/);
    const above4g = [{ paddr: 0x100000000, data: pattern(16) }];
    assertRefused(elfImage({ bits: 64, entry: 0x100000, segments: above4g }), /beyond the end/);
  });

  it("refuses an ELF64 entry point above 4 GiB", () => {
    const kernel = elfImage({ bits: 64, entry: 0x100000000, segments: seg });
    assertRefused(kernel, /entry point 0x100000000 is above 4 GiB/);
  });

  it("refuses inconsistent a.out kludge addresses", () => {
    const image = (fields: Partial<Parameters<typeof multibootHeader>[1] & object>) => {
      const header = multibootHeader(MB_FLAG_AOUT_KLUDGE, {
        headerAddr: 0x100000,
        loadAddr: 0x100000,
        loadEndAddr: 0x100040,
        bssEndAddr: 0,
        entryAddr: 0x100000,
        ...fields,
      });
      const kernel = new Uint8Array(64);
      kernel.set(header);
      return kernel;
    };
    assertRefused(image({ loadAddr: 0x100010 }), /header_addr is below its load_addr/);
    assertRefused(image({ headerAddr: 0x100010 }), /load_addr lies before the start/);
    assertRefused(image({ loadEndAddr: 0xfffff }), /load_end_addr is below its load_addr/);
    assertRefused(image({ loadEndAddr: 0x100080 }), /truncated: .* loads 0x80 bytes/);
    assertRefused(image({ bssEndAddr: 0x100020 }), /bss_end_addr is below its load_end_addr/);
    assertRefused(image({ loadEndAddr: 0x100000 }), /loads no bytes/);
    const low = { headerAddr: 0x10000, loadAddr: 0x10000, loadEndAddr: 0x10040 };
    assertRefused(image(low), /at 0x10000-0x1003f overlaps the reserved memory below 1 MiB/);
  });

  it("refuses modules that do not fit in RAM", () => {
    const kernel = aoutImage(0x100000, pattern(16), 0, 0x100000);
    const modules = [{ data: new Uint8Array(RAM), cmdline: "big.bin" }];
    assertRefused(kernel, /module 'big\.bin' \(4194304 bytes\) does not fit in RAM/, {
      cmdline: "",
      modules,
    });
  });

  it("refuses strings that do not fit in low memory", () => {
    const kernel = aoutImage(0x100000, pattern(16), 0, 0x100000);
    const cmdline = "x".repeat(0x9fc00);
    assertRefused(kernel, /at most \d+ fit in low memory/, { cmdline, modules: [] });
  });
});
