/**
 * Just enough ELF to boot a kernel: the file header and the PT_LOAD program headers of
 * little-endian ELF32 and ELF64 x86 executables (System V ABI, "ELF Header" and "Program
 * Header"). Everything is bounds-checked: a malformed file gives a UserError naming the
 * problem, never a host exception.
 */
import { UserError } from "../errors.js";

/** e_ident[EI_MAG0..EI_MAG3]: "\x7fELF". */
const ELF_MAGIC = 0x464c457f;
/** e_ident[EI_CLASS] values. */
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
/** e_ident[EI_DATA]: two's complement, little-endian. */
const ELFDATA2LSB = 1;
/** e_type: executable file. */
const ET_EXEC = 2;
/** e_machine values we accept: a multiboot kernel starts in 32-bit mode either way. */
const EM_386 = 3;
const EM_X86_64 = 62;
/** p_type of a loadable segment. */
const PT_LOAD = 1;
/** p_flags bit: the segment is executable. */
const PF_X = 1;

/** Sizes of the file header and of one program header, per class. */
const EHDR_SIZE = { 32: 52, 64: 64 } as const;
const PHDR_SIZE = { 32: 32, 64: 56 } as const;

export interface ElfSegment {
  /** Index in the program header table, for error messages. */
  index: number;
  /** p_paddr: where the segment goes in guest-physical memory. */
  paddr: number;
  /** p_vaddr, exact: 64-bit kernels link far above 2^53. */
  vaddr: bigint;
  /** p_offset and p_filesz: the bytes in the file. */
  offset: number;
  fileSize: number;
  /** p_memsz: fileSize bytes from the file, then zeros (the bss) up to memSize. */
  memSize: number;
  executable: boolean;
}

export interface ElfImage {
  bits: 32 | 64;
  /** e_entry translated to a physical address (see entryPhysical). */
  entry: number;
  /** PT_LOAD segments with a non-zero p_memsz, in program header order. */
  segments: ElfSegment[];
}

/** True when the file starts with the ELF magic. */
export function isElf(file: Uint8Array): boolean {
  return file.length >= 4 && readU32(file, 0) === ELF_MAGIC;
}

/** Parses an ELF executable's headers; throws UserError when they are malformed. */
export function parseElf(file: Uint8Array): ElfImage {
  if (!isElf(file)) throw new UserError("kernel is not an ELF file");
  const elfClass = file.length > 4 ? file[4] : 0;
  if (elfClass !== ELFCLASS32 && elfClass !== ELFCLASS64) {
    throw new UserError(`kernel has an unsupported ELF class ${elfClass} (expected 32 or 64-bit)`);
  }
  const bits = elfClass === ELFCLASS32 ? 32 : 64;
  if (file.length < EHDR_SIZE[bits]) {
    throw new UserError("kernel file is truncated: its ELF header is incomplete");
  }
  if (file[5] !== ELFDATA2LSB) throw new UserError("kernel is a big-endian ELF file");
  const type = readU16(file, 16);
  if (type !== ET_EXEC) {
    throw new UserError(`kernel is not an ELF executable (e_type ${type}, expected ${ET_EXEC})`);
  }
  const machine = readU16(file, 18);
  if (machine !== EM_386 && machine !== EM_X86_64) {
    throw new UserError(`kernel is an ELF file for another architecture (e_machine ${machine})`);
  }

  // Field offsets differ between the classes (ELF32 words vs ELF64 xwords).
  const entryVirtual = bits === 32 ? BigInt(readU32(file, 24)) : readU64(file, 24);
  const phoff = bits === 32 ? readU32(file, 28) : toNumber(readU64(file, 32));
  const phentsize = readU16(file, bits === 32 ? 42 : 54);
  const phnum = readU16(file, bits === 32 ? 44 : 56);
  if (phnum > 0 && phentsize < PHDR_SIZE[bits]) {
    throw new UserError(`kernel's ELF program header size ${phentsize} is too small`);
  }
  if (phoff + phnum * phentsize > file.length) {
    throw new UserError("kernel file is truncated: its ELF program headers extend past the end");
  }

  const segments: ElfSegment[] = [];
  for (let index = 0; index < phnum; index++) {
    const ph = phoff + index * phentsize;
    if (readU32(file, ph) !== PT_LOAD) continue;
    const segment =
      bits === 32
        ? {
            index,
            offset: readU32(file, ph + 4),
            vaddr: BigInt(readU32(file, ph + 8)),
            paddr: readU32(file, ph + 12),
            fileSize: readU32(file, ph + 16),
            memSize: readU32(file, ph + 20),
            executable: (readU32(file, ph + 24) & PF_X) !== 0,
          }
        : {
            index,
            executable: (readU32(file, ph + 4) & PF_X) !== 0,
            offset: toNumber(readU64(file, ph + 8)),
            vaddr: readU64(file, ph + 16),
            paddr: toNumber(readU64(file, ph + 24)),
            fileSize: toNumber(readU64(file, ph + 32)),
            memSize: toNumber(readU64(file, ph + 40)),
          };
    if (segment.memSize === 0) continue;
    if (segment.fileSize > segment.memSize) {
      throw new UserError(`kernel's ELF segment ${index} has p_filesz larger than p_memsz`);
    }
    if (segment.offset + segment.fileSize > file.length) {
      throw new UserError(
        `kernel file is truncated: ELF segment ${index} extends past the end of the file`,
      );
    }
    segments.push(segment);
  }
  if (segments.length === 0) throw new UserError("kernel's ELF file has no loadable segments");
  return { bits, entry: entryPhysical(entryVirtual, segments), segments };
}

/**
 * e_entry is a virtual address. A kernel linked to run high (p_vaddr != p_paddr) starts with
 * paging off, so its entry is translated through the executable segment that holds it, as
 * QEMU's ELF loader does for multiboot kernels.
 */
function entryPhysical(entry: bigint, segments: ElfSegment[]): number {
  for (const s of segments) {
    const paddr = BigInt(s.paddr);
    const end = s.vaddr + BigInt(s.fileSize);
    if (s.executable && s.vaddr !== paddr && entry >= s.vaddr && entry < end) {
      return toNumber(entry - s.vaddr + paddr);
    }
  }
  return toNumber(entry);
}

function readU16(b: Uint8Array, off: number): number {
  return b[off] | (b[off + 1] << 8);
}

function readU32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

function readU64(b: Uint8Array, off: number): bigint {
  return (BigInt(readU32(b, off + 4)) << 32n) | BigInt(readU32(b, off));
}

/**
 * An offset, size or address as a number: exact below 2^53. Anything larger lies far beyond
 * the file and guest RAM, so the range checks refuse it either way.
 */
function toNumber(n: bigint): number {
  return Number(n);
}
