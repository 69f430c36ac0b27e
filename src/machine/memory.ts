/**
 * Guest physical memory: RAM in one host buffer, with MMIO regions laid over it through a
 * Bus. Every access is bounds-checked against a page map, so a guest can never reach host
 * memory: addresses outside RAM and devices read all-ones and drop writes.
 */
import { Bus, allOnes, type AccessSize } from "./bus.js";

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/** What backs a 4 KiB physical page (below 4 GiB; everything above is unassigned). */
export const enum PageKind {
  Unassigned = 0,
  Ram = 1,
  Mmio = 2,
}

/** Largest RAM we place below the 4 GiB boundary (the rest is the PCI/APIC hole). */
export const MAX_RAM_BYTES = 3 * 1024 * 1024 * 1024;

export class PhysicalMemory {
  readonly ram: Uint8Array;
  readonly mmio = new Bus("mmio");
  /** One byte per 4 KiB page of the 32-bit physical space. */
  readonly pageKind = new Uint8Array(1 << (32 - PAGE_SHIFT));
  private readonly view: DataView;
  /**
   * Pages whose writes must be reported (one byte per RAM page): the CPU's decoded-
   * instruction cache watches the pages it has cached code from, so self-modifying code
   * and code loaded over old code are seen. Fast CPU write paths never cover such pages.
   */
  readonly watched: Uint8Array;
  onWatchedWrite: ((page: number) => void) | null = null;

  /**
   * `ram`, when given, is the RAM buffer to use (ramSize bytes): an engine's memory that the
   * device model shares without copies, such as the kvm engine's mapping of guest RAM.
   */
  constructor(
    readonly ramSize: number,
    ram?: Uint8Array,
  ) {
    if (ramSize % PAGE_SIZE !== 0 || ramSize <= 0 || ramSize > MAX_RAM_BYTES) {
      throw new RangeError(`RAM size ${ramSize} is not a page multiple up to ${MAX_RAM_BYTES}`);
    }
    if (ram !== undefined && ram.length !== ramSize) {
      throw new RangeError(`RAM buffer of ${ram.length} bytes for ${ramSize} bytes of RAM`);
    }
    this.ram = ram ?? new Uint8Array(ramSize);
    this.view = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
    this.watched = new Uint8Array(ramSize >>> PAGE_SHIFT);
    this.pageKind.fill(PageKind.Ram, 0, ramSize >>> PAGE_SHIFT);
  }

  /** Lays an MMIO device over [base, base+length); both must be page-aligned. */
  mapMmio(base: number, length: number, device: Parameters<Bus["register"]>[2]): void {
    if (base % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0) {
      throw new RangeError(`MMIO range for ${device.name} is not page-aligned`);
    }
    this.mmio.register(base, length, device);
    this.pageKind.fill(PageKind.Mmio, base >>> PAGE_SHIFT, (base + length) >>> PAGE_SHIFT);
  }

  /** True when [addr, addr+len) is entirely RAM. */
  isRam(addr: number, len: number): boolean {
    if (addr < 0 || len < 0 || addr + len > this.ramSize) return false;
    for (let p = addr >>> PAGE_SHIFT; p <= (addr + len - 1) >>> PAGE_SHIFT; p++) {
      if (this.pageKind[p] !== PageKind.Ram) return false;
    }
    return true;
  }

  /**
   * Reads `size` bytes at physical address `addr` (a non-negative number below 2^52).
   * Accesses that cross a page boundary are split into bytes so each byte goes where its
   * page says.
   */
  read(addr: number, size: AccessSize): number {
    if ((addr & (PAGE_SIZE - 1)) + size > PAGE_SIZE) return this.readSplit(addr, size);
    const kind = addr < 0x100000000 ? this.pageKind[addr >>> PAGE_SHIFT] : PageKind.Unassigned;
    if (kind === PageKind.Ram) {
      if (size === 1) return this.ram[addr];
      if (size === 2) return this.view.getUint16(addr, true);
      return this.view.getUint32(addr, true);
    }
    if (kind === PageKind.Mmio) return this.mmio.read(addr, size);
    return allOnes(size);
  }

  write(addr: number, size: AccessSize, value: number): void {
    if ((addr & (PAGE_SIZE - 1)) + size > PAGE_SIZE) return this.writeSplit(addr, size, value);
    const kind = addr < 0x100000000 ? this.pageKind[addr >>> PAGE_SHIFT] : PageKind.Unassigned;
    if (kind === PageKind.Ram) {
      if (this.watched[addr >>> PAGE_SHIFT]) this.onWatchedWrite?.(addr >>> PAGE_SHIFT);
      if (size === 1) this.ram[addr] = value;
      else if (size === 2) this.view.setUint16(addr, value, true);
      else this.view.setUint32(addr, value, true);
    } else if (kind === PageKind.Mmio) {
      this.mmio.write(addr, size, value);
    }
  }

  private readSplit(addr: number, size: AccessSize): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.read(addr + i, 1) << (8 * i);
    return v >>> 0;
  }

  private writeSplit(addr: number, size: AccessSize, value: number): void {
    for (let i = 0; i < size; i++) this.write(addr + i, 1, (value >>> (8 * i)) & 0xff);
  }

  /** Copies host bytes into guest RAM; throws RangeError when the range is not all RAM. */
  load(addr: number, bytes: Uint8Array): void {
    if (!this.isRam(addr, bytes.length)) {
      throw new RangeError(
        `0x${addr.toString(16)}+0x${bytes.length.toString(16)} is not inside guest RAM`,
      );
    }
    this.ram.set(bytes, addr);
    for (let p = addr >>> PAGE_SHIFT; p <= (addr + bytes.length - 1) >>> PAGE_SHIFT; p++) {
      if (this.watched[p]) this.onWatchedWrite?.(p);
    }
  }
}
