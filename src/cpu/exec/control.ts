/**
 * Control transfers (SDM Vol. 2: JMP, Jcc, CALL, RET, LOOP, INT n, IRET, BOUND) and the
 * protected-mode far forms with call gates, task gates and TSS targets (SDM Vol. 3A, 5.8).
 */
import { sext } from "../alu.js";
import {
  AR_DPL_SHIFT,
  AR_L,
  AR_P,
  AR_S,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  AR_TYPE_RW,
  BP,
  BR,
  CS,
  DB,
  DS,
  ECX,
  ES,
  ESP,
  FS,
  GP,
  GS,
  NP,
  OF_VEC,
  SS,
  SYS_CALL_GATE32,
  SYS_TASK_GATE,
  SYS_TSS32_AVAIL,
  SYS_CALL_GATE16,
  UD,
} from "../arch.js";
import { fault } from "../fault.js";
import { IF, IOPL, IOPL_SHIFT, NT, VIF, VIP, VM, WRITABLE } from "../flags.js";
import { descriptorAr, descriptorLimit } from "../segreg.js";
import { checkStackSegment, commitSegment, readDescriptor, segAddr } from "../segment.js";
import { deliverEvent, EventType, loadStackSeg, pushSys, tssStack } from "../interrupt.js";
import { iretNmiUnblocking } from "../vmx/events.js";
import { taskSwitch, TaskSwitchReason } from "../task.js";
import type { Cpu } from "../cpu.js";
import { callGate64, iret64 } from "./system64.js";
import type { Instr } from "../decode.js";
import type { Handler } from "../opcodes.js";
import {
  adjustSp,
  canonical,
  memAddr,
  readMem,
  ea,
  getReg,
  peek,
  push,
  readE,
  setReg,
  setSp,
  stackAddr,
  type Size,
} from "./operands.js";

/** A near branch target truncated to the operand size; #GP(0) beyond the CS limit. */
function nearTarget(c: Cpu, i: Instr, target: number): number {
  const t = i.osize === 16 ? target & 0xffff : target >>> 0;
  if (t > c.segs[CS].limit) fault(GP, 0);
  return t;
}

/**
 * The target of a relative branch: in 64-bit mode RIP + displacement, which must be
 * canonical (#GP(0) otherwise, SDM Vol. 2, JMP); elsewhere EIP + displacement truncated to
 * the operand size and checked against the CS limit.
 */
function relTarget(c: Cpu, i: Instr, disp: number): number {
  if (!i.mode64) return nearTarget(c, i, c.nextEip + disp);
  return foldRip(unfoldRip(c.nextEip) + disp);
}

/** RIP as a signed number (exact: canonical addresses have 48 significant bits). */
export function unfoldRip(rip: number): number {
  return rip >= 2 ** 47 ? rip - 2 ** 48 : rip;
}

/** A signed 64-bit mode target, checked canonical and folded to 48 bits. */
export function foldRip(t: number): number {
  if (t < -(2 ** 47) || t >= 2 ** 47) fault(GP, 0);
  return t < 0 ? t + 2 ** 48 : t;
}

/** Low and high halves of a folded RIP, for pushing a return address. */
export function pushRip(c: Cpu, bits: number, rip: number): void {
  if (bits !== 64) return push(c, bits, rip);
  push(c, 64, (rip % 0x100000000) | 0, (Math.floor(rip / 0x100000000) << 16) >> 16);
}

/** An absolute near target just read at `bits` (for 64, its high half in cpu.hi). */
function absTarget(c: Cpu, i: Instr, lo: number): number {
  return i.osize === 64 ? canonical(lo, c.hi, GP) : nearTarget(c, i, lo);
}

/** Displacement of Jz/Jcc rel16/32 (a rel32 for 64-bit operand size). */
const relz = (i: Instr): number => (i.osize === 16 ? sext(i.imm, 16) : i.imm | 0);

/** JMP rel8/rel32 (EB, E9) and Jcc (70-7F, 0F 80-8F). */
export const jmpRel: Handler = (c, i) => {
  c.nextEip = relTarget(c, i, relz(i));
};
export const jmpRel8: Handler = (c, i) => {
  c.nextEip = relTarget(c, i, sext(i.imm, 8));
};
export const jccRel8: Handler = (c, i) => {
  if (c.flags.cond(i.opcode & 15)) c.nextEip = relTarget(c, i, sext(i.imm, 8));
};
export const jccRel: Handler = (c, i) => {
  if (c.flags.cond(i.opcode & 15)) c.nextEip = relTarget(c, i, relz(i));
};

/** Count register of LOOP/JrCXZ and the string instructions: RCX, ECX or CX by address size. */
export function countIsZero(c: Cpu, i: Instr): boolean {
  if (i.asize === 64) return (c.regs[ECX] | c.regsHi[ECX]) === 0;
  return (i.asize === 32 ? c.regs[ECX] : c.regs[ECX] & 0xffff) === 0;
}

/** Decrements the count register at the address size; true when it is then zero. */
export function decrementCount(c: Cpu, i: Instr): boolean {
  if (i.asize === 64) {
    const lo = c.regs[ECX];
    setReg(c, ECX, 64, lo - 1, c.regsHi[ECX] - (lo === 0 ? 1 : 0));
  } else setReg(c, ECX, i.asize, c.regs[ECX] - 1);
  return countIsZero(c, i);
}

/** LOOPNE/LOOPE/LOOP (E0-E2) and JrCXZ (E3). */
export const loop: Handler = (c, i) => {
  let take: boolean;
  if (i.opcode === 0xe3) take = countIsZero(c, i);
  else {
    take = !decrementCount(c, i);
    if (i.opcode === 0xe0) take &&= !c.flags.zf();
    else if (i.opcode === 0xe1) take &&= c.flags.zf();
  }
  if (take) c.nextEip = relTarget(c, i, sext(i.imm, 8));
};

/** CALL checks the target before it pushes the return address (SDM Vol. 2, CALL). */
export const callRel: Handler = (c, i) => {
  const target = relTarget(c, i, relz(i));
  pushRip(c, i.osize, c.nextEip);
  c.nextEip = target;
};

export const callE: Handler = (c, i) => {
  const target = absTarget(c, i, readE(c, i, i.osize));
  pushRip(c, i.osize, c.nextEip);
  c.nextEip = target;
};

export const jmpE: Handler = (c, i) => {
  c.nextEip = absTarget(c, i, readE(c, i, i.osize));
};

/** RET / RET imm16 (C3, C2). */
export const retNear =
  (withImm: boolean): Handler =>
  (c, i) => {
    c.nextEip = absTarget(c, i, peek(c, 0, i.osize));
    adjustSp(c, (i.osize >> 3) + (withImm ? i.imm : 0));
  };

// ---------------------------------------------------------------- far transfers

/**
 * Reads a far pointer (offset, then selector) from the memory operand: m16:16, m16:32 or,
 * with REX.W in 64-bit mode, m16:64 (the offset's high half is left in cpu.hi).
 */
function farPointer(c: Cpu, i: Instr): [number, number] {
  if (i.mod === 3) fault(UD);
  const size = i.osize >> 3;
  const lin = memAddr(c, i, size + 2, false);
  const sel = c.rd(lin + size, 2);
  const off = readMem(c, lin, i.osize);
  return [off, sel];
}

export const jmpFarImm: Handler = (c, i) => farJump(c, i, i.imm2, i.imm);
export const jmpFarMem: Handler = (c, i) => {
  const [off, sel] = farPointer(c, i);
  farJump(c, i, sel, off);
};
export const callFarImm: Handler = (c, i) => farCall(c, i, i.imm2, i.imm);
export const callFarMem: Handler = (c, i) => {
  const [off, sel] = farPointer(c, i);
  farCall(c, i, sel, off);
};

function realMode(c: Cpu): boolean {
  return !c.protectedMode || c.v86;
}

/** Commits a CS load at privilege `cpl`; the caller has made every check. */
function loadCs(c: Cpu, sel: number, lo: number, hi: number, cpl: number, offset: number): void {
  commitSegment(c, c.segs[CS], (sel & 0xfffc) | cpl, lo, hi);
  c.cpl = cpl;
  c.nextEip = offset < 0 ? offset >>> 0 : offset;
  c.modeChanged();
}

/** The descriptor a protected-mode far JMP/CALL names: [low, high, access rights]. */
function farDescriptor(c: Cpu, sel: number): [number, number, number] {
  if ((sel & 0xfffc) === 0) fault(GP, 0);
  const [lo, hi] = readDescriptor(c, sel);
  return [lo, hi, descriptorAr(hi)];
}

/** Checks a code segment as the direct target of JMP/CALL (SDM Vol. 3A, 5.8.1). */
function checkDirectCode(
  c: Cpu,
  sel: number,
  ar: number,
  offset: number,
  lo: number,
  hi: number,
): void {
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  if (ar & AR_TYPE_EC) {
    if (dpl > c.cpl) fault(GP, sel & 0xfffc);
  } else if ((sel & 3) > c.cpl || dpl !== c.cpl) {
    fault(GP, sel & 0xfffc);
  }
  if (!(ar & AR_P)) fault(NP, sel & 0xfffc);
  if (offset >>> 0 > descriptorLimit(lo, hi)) fault(GP, 0);
}

function isCode(ar: number): boolean {
  return (ar & (AR_S | AR_TYPE_CODE)) === (AR_S | AR_TYPE_CODE);
}

/** Checks a gate, TSS or task gate's DPL against CPL and RPL and its present bit. */
function checkGate(c: Cpu, sel: number, ar: number): void {
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  if (dpl < c.cpl || dpl < (sel & 3)) fault(GP, sel & 0xfffc);
  if (!(ar & AR_P)) fault(NP, sel & 0xfffc);
}

function farJump(c: Cpu, i: Instr, sel: number, offset: number): void {
  if (i.osize === 16) offset &= 0xffff;
  if (realMode(c)) {
    c.segs[CS].setReal(sel);
    c.nextEip = offset >>> 0;
    return;
  }
  const [lo, hi, ar] = farDescriptor(c, sel);
  if (isCode(ar)) {
    checkDirectCode(c, sel, ar, offset, lo, hi);
    loadCs(c, sel, lo, hi, c.cpl, offset);
    return;
  }
  const type = ar & 0x1f;
  if (type === SYS_CALL_GATE32 && c.longMode) {
    checkGate(c, sel, ar);
    return callGate64(c, sel, lo, hi, false);
  }
  if (type === SYS_CALL_GATE32 || type === SYS_CALL_GATE16) {
    checkGate(c, sel, ar);
    // JMP through a call gate never changes privilege (SDM Vol. 3A, 5.8.4).
    const g = gateDestination(c, lo, hi, type, (dpl, conforming) =>
      conforming ? dpl <= c.cpl : dpl === c.cpl,
    );
    loadCs(c, g.sel, g.lo, g.hi, c.cpl, g.offset);
    return;
  }
  if ((type === SYS_TASK_GATE || type === SYS_TSS32_AVAIL) && !c.longMode) {
    // There are no task switches in IA-32e mode: such targets fall through to #GP.
    checkGate(c, sel, ar);
    taskSwitch(c, type === SYS_TASK_GATE ? lo >>> 16 : sel, TaskSwitchReason.Jump, c.nextEip);
    return;
  }
  fault(GP, sel & 0xfffc);
}

interface GateDestination {
  sel: number;
  offset: number;
  lo: number;
  hi: number;
  dpl: number;
  conforming: boolean;
}

/**
 * The code segment a call gate leads to (SDM Vol. 3A, 5.8.4, Figure 5-8), checked: a
 * present code segment that `allowed(dpl, conforming)` accepts, with the gate's offset
 * inside its limit.
 */
function gateDestination(
  c: Cpu,
  lo: number,
  hi: number,
  type: number,
  allowed: (dpl: number, conforming: boolean) => boolean,
): GateDestination {
  const sel = lo >>> 16;
  const offset = type === SYS_CALL_GATE32 ? ((hi & 0xffff0000) | (lo & 0xffff)) >>> 0 : lo & 0xffff;
  if ((sel & 0xfffc) === 0) fault(GP, 0);
  const [clo, chi] = readDescriptor(c, sel);
  const car = descriptorAr(chi);
  const dpl = (car >> AR_DPL_SHIFT) & 3;
  const conforming = (car & AR_TYPE_EC) !== 0;
  if (!isCode(car) || !allowed(dpl, conforming)) fault(GP, sel & 0xfffc);
  if (!(car & AR_P)) fault(NP, sel & 0xfffc);
  if (offset > descriptorLimit(clo, chi)) fault(GP, 0);
  return { sel, offset, lo: clo, hi: chi, dpl, conforming };
}

function farCall(c: Cpu, i: Instr, sel: number, offset: number): void {
  if (i.osize === 16) offset &= 0xffff;
  if (realMode(c)) {
    stackAddr(c, -2 * (i.osize >> 3), 2 * (i.osize >> 3), true);
    push(c, i.osize, c.segs[CS].selector);
    push(c, i.osize, c.nextEip);
    c.segs[CS].setReal(sel);
    c.nextEip = offset >>> 0;
    return;
  }
  const [lo, hi, ar] = farDescriptor(c, sel);
  if (isCode(ar)) {
    checkDirectCode(c, sel, ar, offset, lo, hi);
    stackAddr(c, -2 * (i.osize >> 3), 2 * (i.osize >> 3), true);
    push(c, i.osize, c.segs[CS].selector);
    push(c, i.osize, c.nextEip);
    loadCs(c, sel, lo, hi, c.cpl, offset);
    return;
  }
  const type = ar & 0x1f;
  if ((type === SYS_TASK_GATE || type === SYS_TSS32_AVAIL) && !c.longMode) {
    // There are no task switches in IA-32e mode: such targets fall through to #GP.
    checkGate(c, sel, ar);
    taskSwitch(c, type === SYS_TASK_GATE ? lo >>> 16 : sel, TaskSwitchReason.Call, c.nextEip);
    return;
  }
  // IA-32e mode has only 64-bit call gates, with the 32-bit gate's type (SDM 5.8.3.1).
  if (type !== SYS_CALL_GATE32 && (type !== SYS_CALL_GATE16 || c.longMode)) {
    fault(GP, sel & 0xfffc);
  }
  checkGate(c, sel, ar);
  if (c.longMode) return callGate64(c, sel, lo, hi, true);
  callGate(c, lo, hi, type);
}

/** CALL through a call gate, switching stacks when it enters a more privileged level. */
function callGate(c: Cpu, lo: number, hi: number, type: number): void {
  const g = gateDestination(c, lo, hi, type, (dpl) => dpl <= c.cpl);
  const { sel: csSel, offset: target, lo: clo, hi: chi, dpl } = g;
  const size = type === SYS_CALL_GATE32 ? 4 : 2;
  const retCs = c.segs[CS].selector;
  const retEip = c.nextEip;
  if (!g.conforming && dpl < c.cpl) {
    // More privileged: new stack from the TSS, parameters copied (SDM Vol. 3A, 5.8.5).
    const count = hi & 0x1f;
    const params: number[] = [];
    for (let k = count - 1; k >= 0; k--) params.push(peek(c, k * size, size * 8));
    const [newSs, newEsp] = tssStack(c, dpl, 0);
    const oldSs = c.segs[SS].selector;
    const oldEsp = c.regs[ESP];
    const savedSs = [
      c.segs[SS].selector,
      c.segs[SS].base,
      c.segs[SS].limit,
      c.segs[SS].ar,
    ] as const;
    const oldCpl = c.cpl;
    loadStackSeg(c, newSs, dpl, 0);
    c.regs[ESP] = newEsp;
    c.cpl = dpl;
    c.modeChanged();
    try {
      pushSys(c, size, oldSs);
      pushSys(c, size, oldEsp);
      for (const p of params) pushSys(c, size, p);
      pushSys(c, size, retCs);
      pushSys(c, size, retEip);
    } catch (e) {
      c.segs[SS].set(...savedSs);
      c.regs[ESP] = oldEsp;
      c.cpl = oldCpl;
      c.modeChanged();
      throw e;
    }
    loadCs(c, csSel, clo, chi, dpl, target);
    return;
  }
  stackAddr(c, -2 * size, 2 * size, true);
  push(c, size * 8, retCs);
  push(c, size * 8, retEip);
  loadCs(c, csSel, clo, chi, c.cpl, target);
}

/** RETF / RETF imm16 (CB, CA). */
export const retFar =
  (withImm: boolean): Handler =>
  (c, i) => {
    const size = i.osize >> 3;
    const imm = withImm ? i.imm : 0;
    const offset = peek(c, 0, i.osize) >>> 0;
    const offHi = i.osize === 64 ? c.hi : 0;
    const sel = peek(c, size, 16);
    if (realMode(c)) {
      c.segs[CS].setReal(sel);
      c.nextEip = i.osize === 16 ? offset & 0xffff : offset;
      setSp(c, c.regs[ESP] + 2 * size + imm);
      return;
    }
    returnTo(c, i, sel, offset, offHi, 2 * size, imm);
  };

/**
 * Protected-mode return to sel:offset (RETF and IRET): `frame` bytes of the return frame
 * are on the stack; a return to an outer level pops SS:ESP after them (SDM Vol. 2, RET).
 */
function returnTo(
  c: Cpu,
  i: Instr,
  sel: number,
  offset: number,
  offHi: number,
  frame: number,
  imm: number,
): void {
  const size = i.osize >> 3;
  if ((sel & 0xfffc) === 0) fault(GP, 0);
  const rpl = sel & 3;
  if (rpl < c.cpl) fault(GP, sel & 0xfffc);
  const [lo, hi] = readDescriptor(c, sel);
  const ar = descriptorAr(hi);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  if (!isCode(ar) || (ar & AR_TYPE_EC ? dpl > rpl : dpl !== rpl)) fault(GP, sel & 0xfffc);
  if (!(ar & AR_P)) fault(NP, sel & 0xfffc);
  if (i.osize === 16) offset &= 0xffff;
  // A return to 64-bit code takes a canonical 64-bit RIP and checks no limit.
  const to64 = c.longMode && (ar & AR_L) !== 0;
  if (to64) offset = canonical(offset, offHi, GP);
  else if (offset > descriptorLimit(lo, hi)) fault(GP, 0);
  if (rpl === c.cpl) {
    loadCs(c, sel, lo, hi, rpl, offset);
    adjustSp(c, frame + imm);
    return;
  }
  // Return to an outer privilege level.
  const newEsp = peek(c, frame + imm, i.osize);
  const newEspHi = i.osize === 64 ? c.hi : 0;
  const ssSel = peek(c, frame + imm + size, 16);
  const [slo, shi] = checkStackSegment(c, ssSel, rpl, GP);
  loadCs(c, sel, lo, hi, rpl, offset);
  commitSegment(c, c.segs[SS], ssSel, slo, shi);
  setSp(c, i.osize === 16 ? newEsp & 0xffff : newEsp, newEspHi);
  adjustSp(c, imm);
  nullInaccessibleSegments(c);
}

/** After a return to an outer level, data segments the new CPL may not use become null. */
export function nullInaccessibleSegments(c: Cpu): void {
  for (const s of [ES, DS, FS, GS]) {
    const g = c.segs[s];
    const conformingCode = (g.ar & (AR_TYPE_CODE | AR_TYPE_EC)) === (AR_TYPE_CODE | AR_TYPE_EC);
    if (g.usable && !conformingCode && g.dpl < c.cpl) g.set(0, 0, 0, 0x10000);
  }
}

// ---------------------------------------------------------------- interrupts

/** INT n (CD): in V86 mode without IOPL 3 it is #GP(0) (SDM Vol. 3A, 20.3.3). */
export const intN: Handler = (c, i) => {
  if (c.v86 && (c.flags.word & IOPL) >> IOPL_SHIFT < 3) fault(GP, 0);
  deliverEvent(c, i.imm & 0xff, EventType.SoftwareInterrupt, -1, c.nextEip);
};

export const int3: Handler = (c) => deliverEvent(c, BP, EventType.SoftwareException, -1, c.nextEip);

export const into: Handler = (c) => {
  if (c.flags.of()) deliverEvent(c, OF_VEC, EventType.SoftwareException, -1, c.nextEip);
};

/** INT1 / ICEBP (F1): a #DB trap that ignores the gate DPL. */
export const int1: Handler = (c) =>
  deliverEvent(c, DB, EventType.PrivilegedSoftwareException, -1, c.nextEip);

/** IRET/IRETD (CF) (SDM Vol. 2, IRET). */
export const iret: Handler = (c, i) => {
  // IRET ends NMI blocking even when it faults (SDM Vol. 3A, 6.7.1); VMX non-root
  // operation changes which blocking it ends (vmx/events.ts).
  if (c.vmx.nonRoot) iretNmiUnblocking(c);
  else c.nmiBlocked = false;
  if (c.longMode) return iret64(c, i.osize);
  const size = i.osize >> 3;
  const iopl = (c.flags.word & IOPL) >> IOPL_SHIFT;
  if (!c.protectedMode || c.v86) {
    if (c.v86 && iopl < 3) fault(GP, 0);
    const ip = peek(c, 0, i.osize) >>> 0;
    const cs = peek(c, size, 16);
    const fl = peek(c, 2 * size, i.osize);
    if (ip > c.segs[CS].limit && !c.v86) fault(GP, 0);
    c.segs[CS].setReal(cs);
    c.nextEip = i.osize === 16 ? ip & 0xffff : ip;
    setSp(c, c.regs[ESP] + 3 * size);
    // In V86 mode IOPL cannot change; in real mode everything writable can.
    let mask = WRITABLE & ~(VM | VIF | VIP);
    if (c.v86) mask &= ~IOPL;
    if (i.osize === 16) mask &= 0xffff;
    c.flags.load((c.flags.get() & ~mask) | (fl & mask));
    c.modeChanged();
    return;
  }
  if (c.flags.word & NT) {
    const link = c.rdSys(c.tr.base, 2);
    taskSwitch(c, link, TaskSwitchReason.Iret, c.nextEip);
    return;
  }
  const eip = peek(c, 0, i.osize) >>> 0;
  const cs = peek(c, size, 16);
  const fl = peek(c, 2 * size, i.osize);
  if (fl & VM && c.cpl === 0 && i.osize === 32) return iretToV86(c, eip, cs, fl);
  const oldCpl = c.cpl;
  returnTo(c, i, cs, eip, 0, 3 * size, 0);
  let mask = WRITABLE & ~(VM | VIF | VIP);
  if (oldCpl > 0) mask &= ~IOPL;
  if (oldCpl > iopl) mask &= ~IF;
  if (i.osize === 16) mask &= 0xffff;
  c.flags.load((c.flags.get() & ~mask) | (fl & mask));
  c.modeChanged();
};

/** IRET from CPL 0 to virtual-8086 mode: pops ESP, SS, ES, DS, FS, GS as well. */
function iretToV86(c: Cpu, eip: number, cs: number, fl: number): void {
  const vals = Array.from({ length: 6 }, (_, k) => peek(c, 12 + 4 * k, 32));
  c.flags.load(fl & (WRITABLE | VM));
  const ar = AR_P | AR_S | AR_TYPE_RW | (3 << AR_DPL_SHIFT);
  const segs = [ES, DS, FS, GS];
  segs.forEach((s, k) => c.segs[s].set(vals[2 + k], vals[2 + k] << 4, 0xffff, ar));
  c.segs[SS].set(vals[1], vals[1] << 4, 0xffff, ar);
  c.segs[CS].set(cs, cs << 4, 0xffff, ar | AR_TYPE_CODE);
  c.regs[ESP] = vals[0];
  c.cpl = 3;
  c.nextEip = eip & 0xffff;
  c.modeChanged();
}

/** BOUND G, Ma (62): #BR when the signed index is outside [lower, upper]. */
export const bound: Handler = (c, i) => {
  if (i.mod === 3) fault(UD);
  const bits = i.osize;
  const size = (bits >> 3) as Size;
  const lin = segAddr(c, i.seg, ea(c, i), 2 * size, false);
  const lower = sext(c.rd(lin, size), bits);
  const upper = sext(c.rd((lin + size) | 0, size), bits);
  const idx = sext(getReg(c, i.reg, bits), bits);
  if (idx < lower || idx > upper) fault(BR);
};
