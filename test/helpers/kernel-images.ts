/**
 * Builders for small multiboot kernel images (ELF32, ELF64 and a.out kludge), so the loader
 * and CLI tests need no prebuilt binaries.
 */

export const MB_MAGIC = 0x1badb002;
export const MB_FLAG_PAGE_ALIGN = 1 << 0;
export const MB_FLAG_MEMORY_INFO = 1 << 1;
export const MB_FLAG_VIDEO_MODE = 1 << 2;
export const MB_FLAG_AOUT_KLUDGE = 1 << 16;

export interface AoutFields {
  headerAddr: number;
  loadAddr: number;
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

/** A multiboot header: 12 bytes, or 32 with the a.out kludge fields. */
export function multibootHeader(
  flags: number,
  aout?: AoutFields,
  checksum = (-(MB_MAGIC + flags) >>> 0) >>> 0,
): Uint8Array {
  const words = [MB_MAGIC, flags >>> 0, checksum];
  if (aout) {
    words.push(aout.headerAddr, aout.loadAddr, aout.loadEndAddr, aout.bssEndAddr, aout.entryAddr);
  }
  const out = new Uint8Array(words.length * 4);
  const view = new DataView(out.buffer);
  words.forEach((w, i) => view.setUint32(i * 4, w >>> 0, true));
  return out;
}

export interface SegmentSpec {
  paddr: number;
  /** Defaults to paddr; a bigint for addresses above 2^53. */
  vaddr?: number | bigint;
  data: Uint8Array;
  /** Defaults to data.length; more gives a bss. */
  memSize?: number;
  /** p_flags; defaults to PF_R | PF_X. */
  flags?: number;
  /** p_type; defaults to PT_LOAD. */
  type?: number;
}

export interface ElfSpec {
  bits: 32 | 64;
  entry: number | bigint;
  segments: SegmentSpec[];
  /** The multiboot header to place after the program headers; null for none. */
  header?: Uint8Array | null;
  machine?: number;
}

/** A little-endian ELF executable with the given segments and a multiboot header. */
export function elfImage(spec: ElfSpec): Uint8Array {
  const is64 = spec.bits === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const header = spec.header === undefined ? multibootHeader(MB_FLAG_PAGE_ALIGN) : spec.header;
  const headerOffset = align(ehsize + phentsize * spec.segments.length, 4);
  let offset = align(headerOffset + (header?.length ?? 0), 16);
  const offsets = spec.segments.map((s) => {
    const at = offset;
    offset = align(offset + s.data.length, 16);
    return at;
  });
  const file = new Uint8Array(offset);
  const v = new DataView(file.buffer);
  const u16 = (o: number, x: number) => v.setUint16(o, x, true);
  const u32 = (o: number, x: number | bigint) => v.setUint32(o, Number(x) >>> 0, true);
  const u64 = (o: number, x: number | bigint) => v.setBigUint64(o, BigInt(x), true);

  file.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1], 0); // magic, class, LSB, version
  u16(16, 2); // ET_EXEC
  u16(18, spec.machine ?? (is64 ? 62 : 3));
  u32(20, 1); // EV_CURRENT
  if (is64) {
    u64(24, spec.entry);
    u64(32, ehsize); // e_phoff
    u16(52, ehsize);
    u16(54, phentsize);
    u16(56, spec.segments.length);
  } else {
    u32(24, spec.entry);
    u32(28, ehsize); // e_phoff
    u16(40, ehsize);
    u16(42, phentsize);
    u16(44, spec.segments.length);
  }
  spec.segments.forEach((s, i) => {
    const ph = ehsize + i * phentsize;
    const memSize = s.memSize ?? s.data.length;
    const flags = s.flags ?? 5;
    u32(ph, s.type ?? 1);
    if (is64) {
      u32(ph + 4, flags);
      u64(ph + 8, offsets[i]);
      u64(ph + 16, s.vaddr ?? s.paddr);
      u64(ph + 24, s.paddr);
      u64(ph + 32, s.data.length);
      u64(ph + 40, memSize);
    } else {
      u32(ph + 4, offsets[i]);
      u32(ph + 8, s.vaddr ?? s.paddr);
      u32(ph + 12, s.paddr);
      u32(ph + 16, s.data.length);
      u32(ph + 20, memSize);
      u32(ph + 24, flags);
    }
    file.set(s.data, offsets[i]);
  });
  if (header) file.set(header, headerOffset);
  return file;
}

/**
 * A flat a.out-kludge image: the header at file offset 0 and at loadAddr, then `text`;
 * `bss` zero bytes follow in memory.
 */
export function aoutImage(loadAddr: number, text: Uint8Array, bss: number, entry: number) {
  const headerSize = 32;
  const loadEnd = loadAddr + headerSize + text.length;
  const header = multibootHeader(MB_FLAG_PAGE_ALIGN | MB_FLAG_AOUT_KLUDGE, {
    headerAddr: loadAddr,
    loadAddr,
    loadEndAddr: loadEnd,
    bssEndAddr: bss === 0 ? 0 : loadEnd + bss,
    entryAddr: entry,
  });
  const file = new Uint8Array(headerSize + text.length);
  file.set(header, 0);
  file.set(text, headerSize);
  return file;
}

/** `n` bytes counting up from `start`, to recognize where each byte landed. */
export function pattern(n: number, start = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
