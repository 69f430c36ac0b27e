/**
 * What every x87 instruction shares (SDM Vol. 1, chapter 8): the CR0.EM/TS availability
 * check, the pending-exception check of waiting instructions, the instruction and data
 * pointers, stack overflow and underflow with their masked responses, and memory operands
 * of 2 to 10 bytes.
 */
import { CR0_EM, CR0_NE, CR0_TS, CS, MF, NM } from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { fault } from "../fault.js";
import { FSW_C1, FSW_IE, FSW_SF, INDEFINITE, type FpuState } from "../fpu.js";
import { ea, effectiveAddress64, memAddr } from "./operands.js";

/** How an x87 instruction begins (SDM Vol. 1, 8.1.8, 8.3.11 and 8.7). */
export const enum Kind {
  /** Arithmetic, loads, stores: waits for pending exceptions, records FIP/FDP/FOP. */
  Numeric,
  /** FLDCW, FLDENV, FRSTOR, WAIT: waits, but leaves the pointers alone. */
  WaitingControl,
  /** FNINIT, FNCLEX, FNSTSW, FNSTCW, FNSTENV, FNSAVE: neither. */
  NoWait,
}

/**
 * #NM when CR0.EM or CR0.TS is set (SDM Vol. 3A, 2.5, Table 2-2), then, for a waiting
 * instruction, a pending unmasked exception: #MF when CR0.NE is set. With CR0.NE clear a PC
 * signals it through FERR# and IRQ 13, which this machine does not wire: the instruction
 * runs as it would with IGNNE# asserted, and the exception stays pending in FSW.ES.
 */
export function begin(c: Cpu, i: Instr, kind: Kind): FpuState {
  if (c.cr0 & (CR0_EM | CR0_TS)) fault(NM);
  const f = c.fpu;
  if (kind === Kind.NoWait) return f;
  if (f.pending && c.cr0 & CR0_NE) fault(MF);
  if (kind === Kind.Numeric) recordPointers(c, i, f);
  return f;
}

/** FIP, FCS, FOP and, for a memory operand, FDP and FDS (SDM Vol. 1, 8.1.8, 8.1.9). */
function recordPointers(c: Cpu, i: Instr, f: FpuState): void {
  if (c.mode64) {
    f.fip = (c.eip % 0x100000000) | 0;
    f.fipHi = (Math.floor(c.eip / 0x100000000) << 16) >> 16;
  } else {
    f.fip = c.eip;
    f.fipHi = 0;
  }
  f.fcs = c.segs[CS].selector;
  // The opcode's low 3 bits and the ModRM byte (SDM Vol. 1, Figure 8-8).
  f.fop = ((i.opcode & 7) << 8) | (i.mod << 6) | ((i.reg & 7) << 3) | (i.rm & 7);
  if (i.mod === 3) return;
  if (i.mode64 && i.asize === 64) {
    f.fdp = effectiveAddress64(c, i);
    f.fdpHi = c.hi;
  } else {
    f.fdp = ea(c, i);
    f.fdpHi = 0;
  }
  f.fds = c.segs[i.seg].selector;
}

/**
 * A stack fault: IE and SF, C1 = 1 for overflow and 0 for underflow (SDM Vol. 1, 8.5.1.1).
 * Returns true when IE is masked and the masked response (the QNaN indefinite) applies.
 */
export function stackFault(f: FpuState, overflow: boolean): boolean {
  f.fsw = overflow ? f.fsw | FSW_C1 : f.fsw & ~FSW_C1;
  return f.raise(FSW_IE | FSW_SF);
}

/** ST(i) is empty: raises the underflow; true when the masked response applies. */
export function underflow(f: FpuState, ...sts: number[]): boolean | undefined {
  for (const st of sts) if (f.isEmpty(st)) return stackFault(f, false);
  return undefined;
}

/**
 * Pushes bits onto the register stack; on overflow (ST(7) not empty) the masked response
 * pushes the QNaN indefinite and an unmasked one changes nothing.
 */
export function push(f: FpuState, lo: number, hi: number, se: number): void {
  if (!f.isEmpty(7)) {
    if (!stackFault(f, true)) return;
    ({ lo, hi, se } = INDEFINITE);
  } else f.fsw &= ~FSW_C1;
  f.decTop();
  f.setBits(0, lo, hi, se);
}

/** ST(i) := the QNaN indefinite. */
export function setIndefinite(f: FpuState, i: number): void {
  f.setBits(i, INDEFINITE.lo, INDEFINITE.hi, INDEFINITE.se);
}

// ---- memory operands ----

/** Linear address of a memory operand of `size` bytes, checked for the access. */
export function operand(c: Cpu, i: Instr, size: number, write: boolean): number {
  const lin = memAddr(c, i, size, write);
  if (write) c.probeWrite(lin, size);
  return lin;
}

/** Reads an 80-bit value at `lin` into lo, hi, se. */
export function read80(c: Cpu, lin: number): { lo: number; hi: number; se: number } {
  return { lo: c.rd(lin, 4), hi: c.rd(lin + 4, 4), se: c.rd(lin + 8, 2) };
}

/** Writes physical register p's 80 bits at `lin`. */
export function write80(c: Cpu, lin: number, f: FpuState, p: number): void {
  c.wr(lin, 4, f.sigLo[p]);
  c.wr(lin + 4, 4, f.sigHi[p]);
  c.wr(lin + 8, 2, f.se[p]);
}
