/**
 * VMCS storage (SDM Vol. 3C, 25.2 and 25.11): the VMCS region in guest-physical memory
 * and its cached copy inside the logical processor.
 *
 * The region's format is implementation-specific except for its first 8 bytes (SDM
 * Table 25-1). This implementation's format:
 *
 *   offset 0   VMCS revision identifier (bits 30:0) and shadow-VMCS indicator (bit 31)
 *   offset 4   VMX-abort indicator
 *   offset 8   launch state: 0 clear, 1 launched (written by VMCLEAR and on flush)
 *   offset 16  the fields, 8 bytes each (low dword, high dword), in the order of the
 *              field table (fields.ts: FieldDef.slot)
 *
 * VMPTRLD copies the region into a `Vmcs` object; while the VMCS is active the CPU works
 * on that copy only (software must not touch an active VMCS's region: SDM 25.11.1), and
 * VMCLEAR writes it back. Values are held as 32-bit halves: no BigInt.
 */
import type { PhysicalMemory } from "../../machine/memory.js";
import { F, FIELD_COUNT, FIELDS, Width } from "./fields.js";

/** Offsets in the VMCS region (SDM Vol. 3C, Table 25-1, then this implementation's). */
export const VMCS_REVISION_OFFSET = 0;
export const VMCS_ABORT_OFFSET = 4;
const LAUNCH_STATE_OFFSET = 8;
const FIELDS_OFFSET = 16;
/** Bit 31 of the revision dword: the region is a shadow VMCS (SDM 25.2). */
export const SHADOW_VMCS_INDICATOR = 0x80000000;

/** Storage slot of every encoding of the table (existing or not), -1 for none. */
const SLOT = new Int16Array(0x8000).fill(-1);
/** Width of each slot's field. */
const SLOT_WIDTH = new Uint8Array(FIELD_COUNT);
for (const d of FIELDS) {
  SLOT[d.enc] = d.slot;
  SLOT_WIDTH[d.slot] = d.width;
}

/** Storage slot of full field encoding `enc`; throws for an encoding not in the table. */
export function slotOf(enc: F): number {
  const s = SLOT[enc & 0x7ffe];
  if (s < 0) throw new Error(`VMCS field 0x${enc.toString(16)} is not in the field table`);
  return s;
}

/**
 * One VMCS as the processor holds it: every field as 32-bit halves, and the launch
 * state. Accessors take full encodings (F) and do no existence or read-only checks: the
 * processor itself writes exit-information fields. VMREAD/VMWRITE do their checks in
 * instructions.ts before calling these.
 */
export class Vmcs {
  readonly lo = new Int32Array(FIELD_COUNT);
  readonly hi = new Int32Array(FIELD_COUNT);
  /** Launch state (SDM 25.11.3): set by VMLAUNCH, cleared by VMCLEAR. */
  launched = false;

  constructor(
    /** Physical address of the VMCS region (4-KiB aligned). */
    readonly address: number,
  ) {}

  /** Bits 31:0 of a field, as a uint32. */
  read(enc: F): number {
    return this.lo[slotOf(enc)] >>> 0;
  }

  /** Bits 63:32 of a field (0 for 16- and 32-bit fields), as a uint32. */
  readHi(enc: F): number {
    return this.hi[slotOf(enc)] >>> 0;
  }

  /**
   * A 64-bit or natural-width field as a double: exact below 2^53, which covers every
   * physical address and canonical linear address used as a number in this CPU.
   */
  read64(enc: F): number {
    const s = slotOf(enc);
    return (this.hi[s] >>> 0) * 0x100000000 + (this.lo[s] >>> 0);
  }

  /** Writes a field from its halves; the value is cut to the field's width. */
  write(enc: F, lo: number, hi = 0): void {
    const s = slotOf(enc);
    const w = SLOT_WIDTH[s] as Width;
    if (w === Width.W16) {
      this.lo[s] = lo & 0xffff;
      this.hi[s] = 0;
    } else if (w === Width.W32) {
      this.lo[s] = lo;
      this.hi[s] = 0;
    } else {
      this.lo[s] = lo;
      this.hi[s] = hi;
    }
  }

  /** Writes a 64-bit or natural-width field from a non-negative double below 2^53. */
  write64(enc: F, v: number): void {
    this.write(enc, (v % 0x100000000) | 0, Math.floor(v / 0x100000000) | 0);
  }

  /** Writes a natural-width field from a sign-extended int32 (a 32-bit register value). */
  writeSx(enc: F, v: number): void {
    this.write(enc, v, v < 0 ? -1 : 0);
  }

  /** Reads every field and the launch state from the region in memory (VMPTRLD). */
  load(mem: PhysicalMemory): void {
    const base = this.address + FIELDS_OFFSET;
    for (let s = 0; s < FIELD_COUNT; s++) {
      this.lo[s] = mem.read(base + 8 * s, 4);
      this.hi[s] = mem.read(base + 8 * s + 4, 4);
    }
    this.launched = mem.read(this.address + LAUNCH_STATE_OFFSET, 4) === 1;
  }

  /** Writes every field and the launch state to the region in memory (VMCLEAR). */
  flush(mem: PhysicalMemory): void {
    const base = this.address + FIELDS_OFFSET;
    for (let s = 0; s < FIELD_COUNT; s++) {
      mem.write(base + 8 * s, 4, this.lo[s] >>> 0);
      mem.write(base + 8 * s + 4, 4, this.hi[s] >>> 0);
    }
    mem.write(this.address + LAUNCH_STATE_OFFSET, 4, this.launched ? 1 : 0);
  }
}

/** Reads the revision identifier dword of the region at `address` (bit 31: shadow). */
export function regionRevision(mem: PhysicalMemory, address: number): number {
  return mem.read(address + VMCS_REVISION_OFFSET, 4) >>> 0;
}

/** Writes the VMX-abort indicator of the region at `address` (SDM 28.7: VMX aborts). */
export function writeAbortIndicator(mem: PhysicalMemory, address: number, code: number): void {
  mem.write(address + VMCS_ABORT_OFFSET, 4, code >>> 0);
}

/**
 * VMCLEAR of a region that is not cached: initialize its implementation-specific data
 * (SDM Vol. 3C, 31.3, VMCLEAR: launch state clear; the fields keep what memory holds).
 */
export function clearRegion(mem: PhysicalMemory, address: number): void {
  mem.write(address + LAUNCH_STATE_OFFSET, 4, 0);
}
