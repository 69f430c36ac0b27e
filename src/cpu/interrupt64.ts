/**
 * Event delivery in IA-32e mode (SDM Vol. 3A, 6.14): 16-byte interrupt and trap gates to
 * 64-bit code, the IST, stack switches that load a null SS, a 16-byte aligned stack and
 * an always-pushed SS:RSP, all 8 bytes wide. Called by deliverEvent (interrupt.ts).
 */
import {
  AR_DPL_SHIFT,
  AR_L,
  AR_P,
  AR_S,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  CS,
  ESP,
  GP,
  NP,
  SS,
  SYS_INT_GATE32,
  SYS_TRAP_GATE32,
  TS,
} from "./arch.js";
import { fault } from "./fault.js";
import { IF, NT, RF, TF, VM } from "./flags.js";
import { descriptorAr } from "./segreg.js";
import { commitSegment, readDescriptor } from "./segment.js";
import type { Cpu } from "./cpu.js";
import { canonical } from "./exec/operands.js";

const TWO32 = 0x100000000;

/** Halves of a folded canonical address (bits 63:48 are copies of bit 47). */
function halves(addr: number): [number, number] {
  return [(addr % TWO32) | 0, (Math.floor(addr / TWO32) << 16) >> 16];
}

/** Reads a 64-bit value from the TSS at `offset` (64-bit TSS layout, SDM Vol. 3A, 8.7). */
function tss64(c: Cpu, offset: number, ext: number): number {
  if (offset + 7 > c.tr.limit) fault(TS, (c.tr.selector & 0xfffc) | ext);
  const at = c.linear(c.tr.base64(), offset);
  return canonical(c.rdSys(at, 4), c.rdSys(c.linear(at, 4), 4), GP);
}

/** Writes one 8-byte stack slot below `rsp` (folded), without segment checks. */
function push64(c: Cpu, rsp: number, lo: number, hi: number): number {
  const at = (rsp - 8 + 2 ** 48) % 2 ** 48;
  c.wrSys(at, 4, lo);
  c.wrSys(at + 4, 4, hi);
  return at;
}

/**
 * Delivers `vector`; `checkDpl` for INT n, INT3 and INTO (the gate's DPL must allow the
 * CPL), `ext` the EXT bit of selector error codes, `returnRip` the saved RIP (folded).
 */
export function deliverEvent64(
  c: Cpu,
  vector: number,
  checkDpl: boolean,
  ext: number,
  errorCode: number,
  returnRip: number,
): void {
  const idtErr = vector * 8 + 2 + ext;
  if (vector * 16 + 15 > c.idtrLimit) fault(GP, idtErr);
  const at = c.linear(c.idtrBase, vector * 16);
  const lo = c.rdSys(at, 4);
  const hi = c.rdSys(c.linear(at, 4), 4);
  const offHi = c.rdSys(c.linear(at, 8), 4);
  const type = (hi >> 8) & 0x1f;
  // Only 64-bit interrupt and trap gates exist in the IA-32e IDT (task gates do not).
  if (type !== SYS_INT_GATE32 && type !== SYS_TRAP_GATE32) fault(GP, idtErr);
  const gateDpl = (hi >> 13) & 3;
  if (checkDpl && gateDpl < c.cpl) fault(GP, vector * 8 + 2);
  if (!(hi & (1 << 15))) fault(NP, idtErr);
  const sel = lo >>> 16;
  const target = canonical((hi & 0xffff0000) | (lo & 0xffff), offHi, GP);
  const ist = hi & 7;
  if ((sel & 0xfffc) === 0) fault(GP, ext);
  const [dlo, dhi] = readDescriptor(c, sel, GP);
  const ar = descriptorAr(dhi);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  // The handler must be 64-bit code at a privilege level no less privileged.
  if ((ar & (AR_S | AR_TYPE_CODE)) !== (AR_S | AR_TYPE_CODE) || !(ar & AR_L) || dpl > c.cpl) {
    fault(GP, (sel & 0xfffc) | ext);
  }
  if (!(ar & AR_P)) fault(NP, (sel & 0xfffc) | ext);
  const newCpl = ar & AR_TYPE_EC ? c.cpl : dpl;

  const oldSs = c.segs[SS].selector;
  const oldRsp = [c.regs[ESP], c.regsHi[ESP]];
  const flags = c.flags.get();
  // The new stack: an IST slot, or RSPn for a privilege change, else the current one;
  // aligned to 16 bytes (SDM Vol. 3A, 6.14.2).
  let rsp: number;
  if (ist) rsp = tss64(c, 0x24 + (ist - 1) * 8, ext);
  else if (newCpl < c.cpl) rsp = tss64(c, 4 + newCpl * 8, ext);
  else rsp = (oldRsp[1] & 0xffff) * TWO32 + (oldRsp[0] >>> 0);
  rsp -= rsp % 16;
  const [rl, rh] = halves(returnRip);
  const frame: [number, number][] = [
    [oldSs, 0],
    [oldRsp[0], oldRsp[1]],
    [flags, 0],
    [c.segs[CS].selector, 0],
    [rl, rh],
  ];
  if (errorCode >= 0) frame.push([errorCode, 0]);
  const oldCpl = c.cpl;
  c.cpl = newCpl; // the pushes are supervisor accesses at the new level
  c.modeChanged();
  try {
    for (const [vlo, vhi] of frame) rsp = push64(c, rsp, vlo, vhi);
  } catch (e) {
    c.cpl = oldCpl;
    c.modeChanged();
    throw e;
  }
  if (newCpl !== oldCpl) {
    // A privilege change loads SS with a null selector whose RPL is the new CPL.
    c.segs[SS].set(newCpl, 0, 0, 0x10000 | (newCpl << AR_DPL_SHIFT));
  }
  commitSegment(c, c.segs[CS], (sel & 0xfffc) | newCpl, dlo, dhi);
  const [sl, sh] = halves(rsp);
  c.regs[ESP] = sl;
  c.regsHi[ESP] = sh;
  let fl = flags & ~(TF | VM | RF | NT);
  if (type === SYS_INT_GATE32) fl &= ~IF;
  c.flags.load(fl);
  c.eip = c.nextEip = target;
  c.modeChanged();
}
