/**
 * Debug registers at work (SDM Vol. 3B, 18.2 and 18.3): instruction breakpoints (faults
 * before the instruction), data and I/O breakpoints (traps after it). DR7 is decoded once
 * per write into the masks below, so the run loop pays one test per instruction only
 * while some breakpoint is armed.
 */
import { CR4_DE } from "./arch.js";
import { CodeBreakpoint } from "./interrupt.js";
import type { Cpu } from "./cpu.js";

/** DR7 R/Wn values (SDM Vol. 3B, 18.2.4). */
const RW_EXEC = 0;
const RW_WRITE = 1;
const RW_IO = 2;
const RW_READ_WRITE = 3;
/** Breakpoint lengths by DR7 LENn: 1, 2, 8 (IA-32e encoding 10), 4 bytes. */
const LEN = [1, 2, 8, 4];

export class DebugState {
  /** Breakpoints (bit n for DRn) armed for instruction fetches, data accesses, I/O. */
  code = 0;
  data = 0;
  io = 0;
  /** DR6.Bn bits of data and I/O breakpoints hit by the current instruction. */
  hits = 0;

  /** Re-decodes DR7 (after MOV to DR7 or a reset). */
  update(c: Cpu): void {
    const dr7 = c.dr[7];
    this.code = this.data = this.io = 0;
    for (let n = 0; n < 4; n++) {
      if (((dr7 >> (2 * n)) & 3) === 0) continue; // neither Ln nor Gn
      const rw = (dr7 >>> (16 + 4 * n)) & 3;
      if (rw === RW_EXEC) this.code |= 1 << n;
      else if (rw === RW_IO) this.io |= c.cr4 & CR4_DE ? 1 << n : 0;
      else this.data |= 1 << n;
    }
    c.modeChanged(); // data breakpoints force the checked memory path
  }

  /** Records data-breakpoint hits of an access of `size` bytes at `lin`. */
  dataAccess(c: Cpu, lin: number, size: number, write: boolean): void {
    for (let n = 0; n < 4; n++) {
      if (!(this.data & (1 << n))) continue;
      const rw = (c.dr[7] >>> (16 + 4 * n)) & 3;
      if (rw === RW_WRITE && !write) continue;
      if (rw !== RW_WRITE && rw !== RW_READ_WRITE) continue;
      if (overlaps(breakpointAddress(c, n), lengthOf(c, n), linear(lin), size)) this.hits |= 1 << n;
    }
  }

  /** Records I/O-breakpoint hits of IN/OUT to `port` (CR4.DE set). */
  ioAccess(c: Cpu, port: number, size: number): void {
    for (let n = 0; n < 4; n++) {
      if (!(this.io & (1 << n))) continue;
      if (overlaps(c.dr[n] & 0xffff, lengthOf(c, n), port & 0xffff, size)) this.hits |= 1 << n;
    }
  }
}

function lengthOf(c: Cpu, n: number): number {
  return LEN[(c.dr[7] >>> (18 + 4 * n)) & 3];
}

/** DRn as a linear address in the folded form of mmu.ts. */
function breakpointAddress(c: Cpu, n: number): number {
  return (c.drHi[n] & 0xffff) * 0x100000000 + (c.dr[n] >>> 0);
}

function linear(lin: number): number {
  return lin < 0 ? lin + 0x100000000 : lin;
}

/** The breakpoint covers [addr & ~(len-1), +len): the address is aligned down (18.2.5). */
function overlaps(bp: number, len: number, at: number, size: number): boolean {
  const start = bp - (bp % len);
  return at < start + len && start < at + size;
}

/**
 * Raises the #DB fault of an instruction breakpoint on the instruction at CS:rIP, with
 * DR6.Bn set for each breakpoint that matches (SDM Vol. 3B, 18.3.1.1).
 */
export function checkCodeBreakpoint(c: Cpu): void {
  const lin = linear(c.mode64 ? c.eip : (c.segs[1].base + c.eip) | 0);
  let hit = 0;
  for (let n = 0; n < 4; n++) {
    if (c.debug.code & (1 << n) && breakpointAddress(c, n) === lin) hit |= 1 << n;
  }
  if (hit === 0) return;
  throw new CodeBreakpoint(hit); // DR6.Bn are set at delivery (fault.ts, DebugException)
}
