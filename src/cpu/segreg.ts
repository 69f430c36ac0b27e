/**
 * A segment register with its hidden descriptor cache (SDM Vol. 3A, 3.4.3), the access
 * rights kept in the VMCS format (arch.ts).
 */
import {
  AR_DB,
  AR_DPL_SHIFT,
  AR_P,
  AR_S,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  AR_TYPE_RW,
  AR_UNUSABLE,
} from "./arch.js";

export class SegReg {
  selector = 0;
  /** Base address: 32 bits, or for FS and GS in 64-bit mode the low half of a 64-bit base. */
  base = 0;
  /** High half of a 64-bit FS or GS base (IA32_FS_BASE, IA32_GS_BASE). */
  baseHi = 0;
  /** Effective limit in bytes (granularity already applied). */
  limit = 0xffff;
  ar = 0;
  /**
   * True for a usable, writable, expand-up data segment with base 0 and a 4 GiB limit:
   * such a segment needs no checks on access, the common case for flat kernels.
   */
  flat = false;
  /** The D/B bit: 32-bit code, stack or expand-down bound. Cached: it is read per instruction. */
  big = false;

  set(selector: number, base: number, limit: number, ar: number): void {
    this.selector = selector & 0xffff;
    this.base = base | 0;
    this.baseHi = 0;
    this.limit = limit >>> 0;
    this.ar = ar;
    this.big = (ar & AR_DB) !== 0;
    this.flat =
      base === 0 &&
      this.limit === 0xffffffff &&
      (ar & (AR_UNUSABLE | AR_TYPE_CODE | AR_TYPE_EC | AR_TYPE_RW | AR_S | AR_P)) ===
        (AR_TYPE_RW | AR_S | AR_P);
  }

  /** The 64-bit base folded to 48 bits (FS/GS bases, TR and LDTR in IA-32e mode). */
  base64(): number {
    return (this.baseHi & 0xffff) * 0x100000000 + (this.base >>> 0);
  }

  /** Real-mode and virtual-8086 loads: base = selector * 16, other fields kept. */
  setReal(selector: number): void {
    this.set(selector, (selector & 0xffff) << 4, this.limit, this.ar);
  }

  get dpl(): number {
    return (this.ar >> AR_DPL_SHIFT) & 3;
  }
  get usable(): boolean {
    return (this.ar & AR_UNUSABLE) === 0;
  }
}

/** Decodes the two dwords of a segment descriptor (SDM Vol. 3A, 3.4.5). */
export function descriptorBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
}

export function descriptorLimit(lo: number, hi: number): number {
  const raw = (lo & 0xffff) | (hi & 0xf0000);
  return hi & (1 << 23) ? ((raw << 12) | 0xfff) >>> 0 : raw;
}

/** Access rights of a descriptor in the VMCS format: type/S/DPL/P and AVL/L/D/G. */
export function descriptorAr(hi: number): number {
  return ((hi >>> 8) & 0xff) | ((hi >>> 8) & 0xf000);
}
