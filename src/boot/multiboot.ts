/**
 * Multiboot Specification 0.6.96 (version 1) loading, as QEMU's `-kernel` does it: find
 * and check the OS image's header (3.1), load its ELF segments or a.out-kludge image,
 * place the modules after it, and build the information structure (3.3) in low memory.
 * Every check happens before the first byte is written, so a refused kernel leaves guest
 * memory untouched.
 */
import type { MultibootEntry } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { EBDA_START, HIGH_MEMORY_START, systemAddressMap } from "../machine/layout.js";
import { PAGE_SIZE, type PhysicalMemory } from "../machine/memory.js";
import { isElf, parseElf } from "./elf.js";

/** 3.1.1: the header lies within the first 8192 bytes of the image, 32-bit aligned. */
const HEADER_SEARCH_LIMIT = 8192;
/** 3.1.2: the header's magic field. */
const HEADER_MAGIC = 0x1badb002;
/** 3.2: EAX holds this at entry, telling the kernel a multiboot loader started it. */
export const BOOTLOADER_MAGIC = 0x2badb002;

// Header flags (3.1.2). Bits 0-15 are requirements: a loader that does not understand one
// must refuse the image. Bits 16-31 are optional features.
/** Bit 0: align modules on 4 KiB pages. We always do. */
const HEADER_PAGE_ALIGN = 1 << 0;
/** Bit 1: provide mem_* and mmap_*. We always do. */
const HEADER_MEMORY_INFO = 1 << 1;
/** Bit 2: set a video mode and pass the video table. SHV has no graphics modes. */
const HEADER_VIDEO_MODE = 1 << 2;
/** Bit 16: the a.out kludge, header fields at offsets 12-28 say where to load the image. */
const HEADER_AOUT_KLUDGE = 1 << 16;
const HEADER_REQUIRED_MASK = 0xffff;
const HEADER_SUPPORTED_REQUIRED = HEADER_PAGE_ALIGN | HEADER_MEMORY_INFO;

/** Header sizes: magic, flags and checksum; plus the address fields of the a.out kludge. */
const HEADER_BASE_SIZE = 12;
const HEADER_AOUT_SIZE = 32;

// Information structure flags (3.3): which fields are valid.
/** Bit 0: mem_lower and mem_upper. */
const INFO_MEMORY = 1 << 0;
/** Bit 1: boot_device. */
const INFO_BOOT_DEVICE = 1 << 1;
/** Bit 2: cmdline. */
const INFO_CMDLINE = 1 << 2;
/** Bit 3: mods_count and mods_addr. */
const INFO_MODS = 1 << 3;
/** Bit 6: mmap_length and mmap_addr. */
const INFO_MEM_MAP = 1 << 6;
/** Bit 9: boot_loader_name. */
const INFO_BOOT_LOADER_NAME = 1 << 9;

// Information structure field offsets (3.3), up to the VBE fields: 88 bytes in all.
const INFO_FLAGS = 0;
const INFO_MEM_LOWER = 4;
const INFO_MEM_UPPER = 8;
const INFO_BOOT_DEVICE_FIELD = 12;
const INFO_CMDLINE_ADDR = 16;
const INFO_MODS_COUNT = 20;
const INFO_MODS_ADDR = 24;
const INFO_MMAP_LENGTH = 44;
const INFO_MMAP_ADDR = 48;
const INFO_BOOT_LOADER_NAME_ADDR = 64;
const INFO_SIZE = 88;
/** One memory map entry: a size field (20) then base_addr, length (64-bit) and type. */
const MMAP_ENTRY_SIZE = 24;
/** One module entry: mod_start, mod_end, string, reserved. */
const MODULE_ENTRY_SIZE = 16;

/** boot_device: BIOS drive 0x80, partitions 0xFF (none), as QEMU reports. */
const BOOT_DEVICE_FIRST_DISK = 0x8000ffff;

/** Where the information structure, memory map, module list and strings go (as QEMU). */
export const INFO_ADDR = 0x9000;
/**
 * The stack a kernel is entered with: where QEMU's -kernel leaves it (measured with QEMU
 * 7.2 and SeaBIOS), in conventional memory below the information structure and below the
 * area kernels commonly use at 0x7000.
 */
export const ENTRY_STACK = 0x6f08;
/** They must end below the EBDA. */
const INFO_LIMIT = EBDA_START;

const BOOT_LOADER_NAME = "shv";

export interface MultibootModule {
  data: Uint8Array;
  /** The module's string; QEMU passes the whole `-initrd` entry, file name included. */
  cmdline: string;
}

export interface MultibootOptions {
  /** The kernel command line; QEMU passes "<kernel file> <-append string>". */
  cmdline: string;
  modules: MultibootModule[];
}

/** A part of the kernel image to copy: fileBytes from the file, then zeros to memSize. */
interface LoadChunk {
  what: string;
  addr: number;
  fileBytes: Uint8Array;
  memSize: number;
}

interface KernelImage {
  entry: number;
  chunks: LoadChunk[];
}

/** Loads a multiboot kernel and its modules into `mem`; throws UserError if it cannot. */
export function loadMultiboot(
  mem: PhysicalMemory,
  kernel: Uint8Array,
  opts: MultibootOptions,
): MultibootEntry {
  const image = parseKernel(kernel);
  let kernelEnd = 0;
  for (const chunk of image.chunks) {
    checkPlacement(mem, chunk.what, chunk.addr, chunk.memSize);
    kernelEnd = Math.max(kernelEnd, chunk.addr + chunk.memSize);
  }

  // Modules follow the kernel's highest byte, each on its own page (header flag bit 0).
  const moduleAddrs: number[] = [];
  let next = alignUp(kernelEnd, PAGE_SIZE);
  for (const m of opts.modules) {
    if (!mem.isRam(next, m.data.length)) {
      throw new UserError(
        `module '${m.cmdline}' (${m.data.length} bytes) does not fit in RAM after the kernel`,
      );
    }
    moduleAddrs.push(next);
    next = alignUp(next + m.data.length, PAGE_SIZE);
  }
  const info = buildInfo(mem.ramSize, opts, moduleAddrs);

  for (const chunk of image.chunks) {
    mem.load(chunk.addr, chunk.fileBytes);
    mem.ram.fill(0, chunk.addr + chunk.fileBytes.length, chunk.addr + chunk.memSize);
  }
  opts.modules.forEach((m, i) => mem.load(moduleAddrs[i], m.data));
  mem.load(INFO_ADDR, info);
  return { eip: image.entry, eax: BOOTLOADER_MAGIC, ebx: INFO_ADDR, esp: ENTRY_STACK };
}

/** Finds the header, checks its flags and returns what to load and where to start. */
function parseKernel(kernel: Uint8Array): KernelImage {
  const header = findHeader(kernel);
  const flags = readU32(kernel, header + 4);
  const unsupported = flags & HEADER_REQUIRED_MASK & ~HEADER_SUPPORTED_REQUIRED;
  if (unsupported & HEADER_VIDEO_MODE) {
    throw new UserError("kernel asks for a video mode (multiboot flag 2); SHV has no graphics");
  }
  if (unsupported !== 0) {
    throw new UserError(
      `kernel's multiboot header requires unsupported features (flags 0x${hex(unsupported)})`,
    );
  }
  if (flags & HEADER_AOUT_KLUDGE) return aoutImage(kernel, header);
  if (!isElf(kernel)) {
    throw new UserError("kernel is not an ELF file and its multiboot header has no a.out kludge");
  }
  return elfImage(kernel);
}

/** 3.1.1-3.1.2: the first 32-bit aligned magic within 8192 bytes whose checksum holds. */
function findHeader(kernel: Uint8Array): number {
  const limit = Math.min(kernel.length, HEADER_SEARCH_LIMIT);
  let badChecksumAt = -1;
  for (let off = 0; off + 4 <= limit; off += 4) {
    if (readU32(kernel, off) !== HEADER_MAGIC) continue;
    if (off + HEADER_BASE_SIZE > kernel.length) {
      throw new UserError("kernel file is truncated inside its multiboot header");
    }
    // magic + flags + checksum must be zero modulo 2^32.
    const sum = (HEADER_MAGIC + readU32(kernel, off + 4) + readU32(kernel, off + 8)) >>> 0;
    if (sum === 0) return off;
    if (badChecksumAt < 0) badChecksumAt = off;
  }
  if (badChecksumAt >= 0) {
    throw new UserError(
      `kernel's multiboot header at offset 0x${hex(badChecksumAt)} has a bad checksum`,
    );
  }
  throw new UserError(`kernel has no multiboot header in its first ${HEADER_SEARCH_LIMIT} bytes`);
}

/** 3.1.3: the a.out kludge gives physical addresses for the header, text, data and bss. */
function aoutImage(kernel: Uint8Array, header: number): KernelImage {
  if (header + HEADER_AOUT_SIZE > kernel.length) {
    throw new UserError("kernel file is truncated inside its multiboot header");
  }
  const headerAddr = readU32(kernel, header + 12);
  const loadAddr = readU32(kernel, header + 16);
  const loadEndAddr = readU32(kernel, header + 20);
  const bssEndAddr = readU32(kernel, header + 24);
  const entry = readU32(kernel, header + 28);
  if (headerAddr < loadAddr) {
    throw new UserError("kernel's multiboot header_addr is below its load_addr");
  }
  // The header sits at header_addr in memory, so the image starts this far before it.
  const fileOffset = header - (headerAddr - loadAddr);
  if (fileOffset < 0) {
    throw new UserError("kernel's multiboot load_addr lies before the start of the file");
  }
  if (loadEndAddr !== 0 && loadEndAddr < loadAddr) {
    throw new UserError("kernel's multiboot load_end_addr is below its load_addr");
  }
  // load_end_addr 0: the text and data segments take the rest of the file.
  const loadSize = loadEndAddr === 0 ? kernel.length - fileOffset : loadEndAddr - loadAddr;
  if (fileOffset + loadSize > kernel.length) {
    throw new UserError(
      `kernel file is truncated: its multiboot header loads 0x${hex(loadSize)} bytes ` +
        `from offset 0x${hex(fileOffset)} but the file has 0x${hex(kernel.length)}`,
    );
  }
  // bss_end_addr 0: no bss.
  if (bssEndAddr !== 0 && bssEndAddr < loadAddr + loadSize) {
    throw new UserError("kernel's multiboot bss_end_addr is below its load_end_addr");
  }
  const memSize = bssEndAddr === 0 ? loadSize : bssEndAddr - loadAddr;
  if (memSize === 0) throw new UserError("kernel's multiboot header loads no bytes");
  const fileBytes = kernel.subarray(fileOffset, fileOffset + loadSize);
  return { entry, chunks: [{ what: "kernel image", addr: loadAddr, fileBytes, memSize }] };
}

function elfImage(kernel: Uint8Array): KernelImage {
  const elf = parseElf(kernel);
  if (elf.entry >= 0x100000000) {
    throw new UserError(
      `kernel's ELF entry point 0x${hex(elf.entry)} is above 4 GiB; ` +
        "a multiboot kernel starts in 32-bit mode",
    );
  }
  const chunks = elf.segments.map((s) => ({
    what: `kernel's ELF segment ${s.index}`,
    addr: s.paddr,
    fileBytes: kernel.subarray(s.offset, s.offset + s.fileSize),
    memSize: s.memSize,
  }));
  return { entry: elf.entry, chunks };
}

/** The kernel may only use RAM from 1 MiB up: below lie the firmware's data areas. */
function checkPlacement(mem: PhysicalMemory, what: string, addr: number, size: number): void {
  const range = `0x${hex(addr)}-0x${hex(addr + size - 1)}`;
  if (addr < HIGH_MEMORY_START) {
    throw new UserError(`${what} at ${range} overlaps the reserved memory below 1 MiB`);
  }
  if (!mem.isRam(addr, size)) {
    const mib = mem.ramSize / (1024 * 1024);
    throw new UserError(`${what} at ${range} lies beyond the end of RAM (${mib} MiB)`);
  }
}

/**
 * The information structure, memory map, module list and strings, as one block to copy to
 * INFO_ADDR. Each address inside it is INFO_ADDR plus the offset in the block.
 */
function buildInfo(ramSize: number, opts: MultibootOptions, moduleAddrs: number[]): Uint8Array {
  const encoder = new TextEncoder();
  const ranges = systemAddressMap(ramSize);
  const mmapOffset = INFO_SIZE;
  const modsOffset = mmapOffset + ranges.length * MMAP_ENTRY_SIZE;
  const stringsOffset = modsOffset + opts.modules.length * MODULE_ENTRY_SIZE;
  // Each string is NUL-terminated (3.3: "zero-terminated").
  const strings = [opts.cmdline, BOOT_LOADER_NAME, ...opts.modules.map((m) => m.cmdline)].map((s) =>
    encoder.encode(s + "\0"),
  );
  const size = stringsOffset + strings.reduce((n, s) => n + s.length, 0);
  if (INFO_ADDR + size > INFO_LIMIT) {
    throw new UserError(
      `the command line and module strings take ${size} bytes; ` +
        `at most ${INFO_LIMIT - INFO_ADDR} fit in low memory`,
    );
  }

  const block = new Uint8Array(size);
  const view = new DataView(block.buffer);
  const u32 = (off: number, v: number) => view.setUint32(off, v, true);
  const u64 = (off: number, v: number) => {
    u32(off, v % 0x100000000);
    u32(off + 4, Math.floor(v / 0x100000000));
  };

  const stringAddrs: number[] = [];
  let off = stringsOffset;
  for (const s of strings) {
    block.set(s, off);
    stringAddrs.push(INFO_ADDR + off);
    off += s.length;
  }
  const [cmdlineAddr, loaderNameAddr, ...moduleStringAddrs] = stringAddrs;

  u32(
    INFO_FLAGS,
    INFO_MEMORY |
      INFO_BOOT_DEVICE |
      INFO_CMDLINE |
      INFO_MODS |
      INFO_MEM_MAP |
      INFO_BOOT_LOADER_NAME,
  );
  // The first BIOS hard disk (0x80), no partition (0xFF in each partition byte): QEMU's
  // value. Kernels that test the wrong flag bit for the command line (the original SHV
  // tests bit 1) find it set, as under QEMU.
  u32(INFO_BOOT_DEVICE_FIELD, BOOT_DEVICE_FIRST_DISK);
  // KiB of lower memory (from 0) and of upper memory (from 1 MiB to the first hole).
  u32(INFO_MEM_LOWER, EBDA_START / 1024);
  u32(INFO_MEM_UPPER, (ramSize - HIGH_MEMORY_START) / 1024);
  u32(INFO_CMDLINE_ADDR, cmdlineAddr);
  u32(INFO_MODS_COUNT, opts.modules.length);
  u32(INFO_MODS_ADDR, INFO_ADDR + modsOffset);
  u32(INFO_MMAP_LENGTH, ranges.length * MMAP_ENTRY_SIZE);
  u32(INFO_MMAP_ADDR, INFO_ADDR + mmapOffset);
  u32(INFO_BOOT_LOADER_NAME_ADDR, loaderNameAddr);

  ranges.forEach((r, i) => {
    const e = mmapOffset + i * MMAP_ENTRY_SIZE;
    // The size field counts the bytes after itself, so a reader can skip to the next entry.
    u32(e, MMAP_ENTRY_SIZE - 4);
    u64(e + 4, r.base);
    u64(e + 12, r.length);
    u32(e + 20, r.type);
  });
  opts.modules.forEach((m, i) => {
    const e = modsOffset + i * MODULE_ENTRY_SIZE;
    u32(e, moduleAddrs[i]);
    u32(e + 4, moduleAddrs[i] + m.data.length);
    u32(e + 8, moduleStringAddrs[i]);
  });
  return block;
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function readU32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

function hex(n: number): string {
  return n.toString(16);
}
