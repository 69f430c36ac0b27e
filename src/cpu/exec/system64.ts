/**
 * Instructions of IA-32e mode: SYSCALL, SYSRET, SWAPGS (SDM Vol. 2) and IRET in IA-32e
 * mode, which always pops SS:RSP in 64-bit mode and may return to 64-bit or
 * compatibility code.
 */
import {
  AR_DB,
  AR_DPL_SHIFT,
  AR_G,
  AR_L,
  AR_P,
  AR_S,
  AR_TYPE_ACCESSED,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  AR_TYPE_RW,
  CR4_FSGSBASE,
  CS,
  ECX,
  EFER_SCE,
  ESP,
  GP,
  GS,
  NP,
  SS,
  UD,
} from "../arch.js";
import { fault } from "../fault.js";
import { IF, IOPL, IOPL_SHIFT, NT, RF, VIF, VIP, VM, WRITABLE } from "../flags.js";
import { IA32_FMASK, IA32_KERNEL_GS_BASE, IA32_LSTAR, IA32_STAR } from "../msr.js";
import { descriptorAr, descriptorLimit } from "../segreg.js";
import {
  checkStackSegment,
  commitSegment,
  readDescriptor,
  readSystemDescriptorHigh,
} from "../segment.js";
import type { Cpu } from "../cpu.js";
import type { Handler } from "../opcodes.js";
import { canonical, peek, setReg } from "./operands.js";
import { nullInaccessibleSegments } from "./control.js";

const TWO32 = 0x100000000;
/** R11, which SYSCALL loads with RFLAGS. */
const R11 = 11;
/** Flat segments of SYSCALL/SYSRET (SDM Vol. 2, SYSCALL: the descriptors are not read). */
const FLAT = AR_P | AR_S | AR_G | AR_TYPE_ACCESSED;
const CODE64 = FLAT | AR_TYPE_CODE | AR_TYPE_RW | AR_L;
const CODE32 = FLAT | AR_TYPE_CODE | AR_TYPE_RW | AR_DB;
const DATA = FLAT | AR_TYPE_RW | AR_DB;

/** SYSCALL: #UD unless EFER.SCE and 64-bit mode. */
export const syscall: Handler = (c) => {
  if (!(c.msr.efer & EFER_SCE) || !c.mode64) fault(UD);
  const star = c.msr.read(IA32_STAR)[1];
  const [tl, th] = c.msr.read(IA32_LSTAR);
  const rip = c.nextEip;
  setReg(c, ECX, 64, (rip % TWO32) | 0, (Math.floor(rip / TWO32) << 16) >> 16);
  const flags = c.flags.get();
  setReg(c, R11, 64, flags & ~RF, 0);
  c.flags.load(flags & ~c.msr.read(IA32_FMASK)[0] & ~RF);
  const sel = star & 0xfffc;
  c.segs[CS].set(sel, 0, 0xffffffff, CODE64);
  c.segs[SS].set(sel + 8, 0, 0xffffffff, DATA);
  c.cpl = 0;
  c.nextEip = canonical(tl, th, GP);
  c.modeChanged();
};

/** SYSRET: back to CPL 3, to 64-bit code with REX.W, else to compatibility mode. */
export const sysret: Handler = (c, i) => {
  if (!(c.msr.efer & EFER_SCE) || !c.mode64) fault(UD);
  if (c.cpl !== 0) fault(GP, 0);
  const base = c.msr.read(IA32_STAR)[1] >>> 16;
  const to64 = i.osize === 64;
  // Intel checks RCX before anything changes: a non-canonical RIP is #GP(0) at CPL 0.
  const target = to64 ? canonical(c.regs[ECX], c.regsHi[ECX], GP) : c.regs[ECX] >>> 0;
  const dpl3 = 3 << AR_DPL_SHIFT;
  if (to64) c.segs[CS].set((base + 16) | 3, 0, 0xffffffff, CODE64 | dpl3);
  else c.segs[CS].set(base | 3, 0, 0xffffffff, CODE32 | dpl3);
  c.segs[SS].set((base + 8) | 3, 0, 0xffffffff, DATA | dpl3);
  c.flags.load((c.regs[R11] & 0x3c7fd7) | 2);
  c.cpl = 3;
  c.nextEip = target;
  c.modeChanged();
};

/** SWAPGS: exchanges the GS base with IA32_KERNEL_GS_BASE (64-bit mode, CPL 0). */
export const swapgs: Handler = (c) => {
  if (!c.mode64) fault(UD);
  if (c.cpl !== 0) fault(GP, 0);
  const gs = c.segs[GS];
  const [kl, kh] = c.msr.read(IA32_KERNEL_GS_BASE);
  c.msr.write(IA32_KERNEL_GS_BASE, gs.base >>> 0, gs.baseHi >>> 0);
  gs.base = kl | 0;
  gs.baseHi = kh | 0;
  gs.flat = false;
};

/** IRET in IA-32e mode (SDM Vol. 2, IRET, "IA-32e-MODE"). */
export function iret64(c: Cpu, osize: number): void {
  if (c.flags.word & NT) fault(GP, 0); // no task switches in IA-32e mode
  const size = osize >> 3;
  const ripLo = peek(c, 0, osize);
  const ripHi = osize === 64 ? c.hi : 0;
  const cs = peek(c, size, 16);
  const fl = peek(c, 2 * size, osize === 64 ? 32 : osize);
  const rpl = cs & 3;
  const outer = rpl > c.cpl;
  // 64-bit mode always pops SS:RSP; compatibility mode only on a privilege change.
  const popStack = c.mode64 || outer;
  if ((cs & 0xfffc) === 0) fault(GP, 0);
  if (rpl < c.cpl) fault(GP, cs & 0xfffc);
  const [lo, hi] = readDescriptor(c, cs);
  const ar = descriptorAr(hi);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  if ((ar & (AR_S | AR_TYPE_CODE)) !== (AR_S | AR_TYPE_CODE)) fault(GP, cs & 0xfffc);
  if (ar & AR_TYPE_EC ? dpl > rpl : dpl !== rpl) fault(GP, cs & 0xfffc);
  if (!(ar & AR_P)) fault(NP, cs & 0xfffc);
  const to64 = (ar & AR_L) !== 0;
  const rip = to64 ? canonical(ripLo, ripHi, GP) : ripLo >>> 0;
  if (!to64 && rip > descriptorLimit(lo, hi)) fault(GP, 0);
  let rsp: [number, number] | null = null;
  let ss: [number, number] | null = null;
  let ssSel = 0;
  if (popStack) {
    const spLo = peek(c, 3 * size, osize);
    rsp = [spLo, osize === 64 ? c.hi : 0];
    ssSel = peek(c, 4 * size, 16);
    // A null SS is allowed for a return to 64-bit code below CPL 3 (SDM Vol. 3A, 6.14.4).
    if ((ssSel & 0xfffc) !== 0 || !to64 || rpl === 3) ss = checkStackSegment(c, ssSel, rpl, GP);
  }
  const oldCpl = c.cpl;
  const iopl = (c.flags.word & IOPL) >> IOPL_SHIFT;
  commitSegment(c, c.segs[CS], cs, lo, hi);
  c.cpl = rpl;
  c.nextEip = rip;
  if (rsp !== null) {
    if (ss !== null) commitSegment(c, c.segs[SS], ssSel, ss[0], ss[1]);
    else c.segs[SS].set(ssSel, 0, 0, 0x10000 | (rpl << AR_DPL_SHIFT));
    c.regs[ESP] = rsp[0];
    c.regsHi[ESP] = to64 ? rsp[1] : 0;
  }
  let mask = WRITABLE & ~(VM | VIF | VIP);
  if (oldCpl > 0) mask &= ~IOPL;
  if (oldCpl > iopl) mask &= ~IF;
  if (osize === 16) mask &= 0xffff;
  c.flags.load((c.flags.get() & ~mask) | (fl & mask));
  if (outer) nullInaccessibleSegments(c); // (SDM Vol. 2, IRET)
  c.modeChanged();
}

/**
 * A far CALL or JMP through an IA-32e mode call gate (SDM Vol. 3A, 5.8.3.1 and 5.8.5):
 * 16 bytes with a 64-bit offset, to 64-bit code only; a CALL to a more privileged level
 * takes RSPn from the TSS, loads a null SS and pushes SS:RSP; all pushes are 8 bytes and
 * no parameters are copied.
 */
export function callGate64(c: Cpu, gateSel: number, lo: number, hi: number, call: boolean): void {
  const offHi = readSystemDescriptorHigh(c, gateSel);
  const sel = lo >>> 16;
  const target = canonical((hi & 0xffff0000) | (lo & 0xffff), offHi, GP);
  if ((sel & 0xfffc) === 0) fault(GP, 0);
  const [clo, chi] = readDescriptor(c, sel);
  const ar = descriptorAr(chi);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  const conforming = (ar & AR_TYPE_EC) !== 0;
  const code64 = (ar & (AR_S | AR_TYPE_CODE | AR_L | AR_DB)) === (AR_S | AR_TYPE_CODE | AR_L);
  // CALL may go to a more privileged level; JMP keeps the privilege level (5.8.4).
  const allowed = call || conforming ? dpl <= c.cpl : dpl === c.cpl;
  if (!code64 || !allowed) fault(GP, sel & 0xfffc);
  if (!(ar & AR_P)) fault(NP, sel & 0xfffc);
  const newCpl = conforming ? c.cpl : dpl;
  if (call) {
    const retCs = c.segs[CS].selector;
    const rip = c.nextEip;
    const frame: [number, number][] = [];
    let rsp = (c.regsHi[ESP] & 0xffff) * TWO32 + (c.regs[ESP] >>> 0);
    if (newCpl < c.cpl) {
      frame.push([c.segs[SS].selector, 0], [c.regs[ESP], c.regsHi[ESP]]);
      const at = c.linear(c.tr.base64(), 4 + newCpl * 8);
      if (4 + newCpl * 8 + 7 > c.tr.limit) fault(13, c.tr.selector & 0xfffc);
      rsp = canonical(c.rdSys(at, 4), c.rdSys(c.linear(at, 4), 4), GP);
    }
    frame.push([retCs, 0], [(rip % TWO32) | 0, (Math.floor(rip / TWO32) << 16) >> 16]);
    const oldCpl = c.cpl;
    c.cpl = newCpl;
    c.modeChanged();
    try {
      for (const [vlo, vhi] of frame) {
        rsp = (rsp - 8 + 2 ** 48) % 2 ** 48;
        c.wr(rsp, 4, vlo);
        c.wr(rsp + 4, 4, vhi);
      }
    } catch (e) {
      c.cpl = oldCpl;
      c.modeChanged();
      throw e;
    }
    if (newCpl !== oldCpl) c.segs[SS].set(newCpl, 0, 0, 0x10000 | (newCpl << AR_DPL_SHIFT));
    c.regs[ESP] = (rsp % TWO32) | 0;
    c.regsHi[ESP] = (Math.floor(rsp / TWO32) << 16) >> 16;
  }
  commitSegment(c, c.segs[CS], (sel & 0xfffc) | newCpl, clo, chi);
  c.cpl = newCpl;
  c.nextEip = target;
  c.modeChanged();
}

/**
 * RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE (F3 0F AE /0-/3): the FS or GS base at CPL 3 when
 * CR4.FSGSBASE allows it; 32-bit forms zero-extend (SDM Vol. 2, RDFSBASE/WRFSBASE).
 */
export const fsgsBase =
  (write: boolean, seg: number): Handler =>
  (c, i) => {
    if (!c.mode64 || !(c.cr4 & CR4_FSGSBASE)) fault(UD);
    const s = c.segs[seg];
    if (!write) {
      setReg(c, i.rm, i.osize === 64 ? 64 : 32, s.base, s.baseHi);
      return;
    }
    const lo = c.regs[i.rm];
    const hi = i.osize === 64 ? c.regsHi[i.rm] : 0;
    canonical(lo, hi, GP);
    s.base = lo;
    s.baseHi = hi;
    s.flat = false;
  };
