/**
 * The one event-delivery path (design.md, decision 2): exceptions, software interrupts and
 * (later) external interrupts and NMIs all enter through deliverEvent, which knows the IVT,
 * interrupt/trap/task gates, privilege-level stack switches and the double-fault rules
 * (SDM Vol. 3A, chapter 6). VMX will intercept events here, before delivery.
 */
import {
  AR_DPL_SHIFT,
  AR_P,
  AR_S,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  CS,
  DF_VEC,
  DS,
  ES,
  ESP,
  FS,
  GP,
  GS,
  NP,
  PF_VEC,
  SS,
  SS_VEC,
  SYS_INT_GATE16,
  SYS_INT_GATE32,
  SYS_TASK_GATE,
  SYS_TRAP_GATE16,
  SYS_TRAP_GATE32,
  TS,
  EXCEPTION_NAMES,
  DR7_GD,
} from "./arch.js";
import { DebugException, Fault, fault } from "./fault.js";
import { PageFault } from "./mmu.js";
import { AC, IF, NT, RF, TF, VM } from "./flags.js";
import { descriptorAr } from "./segreg.js";
import { checkStackSegment, commitSegment, readDescriptor } from "./segment.js";
import { taskSwitch, TaskSwitchReason } from "./task.js";
import { deliverEvent64 } from "./interrupt64.js";
import type { Cpu } from "./cpu.js";
import { afterDelivery, beforeDelivery, exceptionExit, tripleFaultExit } from "./vmx/events.js";

/** Interruption types, numbered as in the VMCS interruption-information field (SDM 25.8.3). */
export const enum EventType {
  External = 0,
  Nmi = 2,
  HardwareException = 3,
  SoftwareInterrupt = 4, // INT n
  PrivilegedSoftwareException = 5, // INT1
  SoftwareException = 6, // INT3, INTO
}

/** The #DB fault of an instruction breakpoint, with the DR6.Bn bits of the matches. */
export class CodeBreakpoint extends DebugException {}

/** The processor shut down: an exception while delivering a double fault. */
export class TripleFault extends Error {
  constructor(readonly chain: string) {
    super(`triple fault: ${chain}`);
  }
}

const enum Class {
  Benign,
  Contributory,
  PageFault,
}

/** Exception classes for the double-fault rules (SDM Vol. 3A, Table 6-4). */
function classOf(vector: number): Class {
  if (vector === PF_VEC) return Class.PageFault;
  if (vector === 0 || (vector >= TS && vector <= GP)) return Class.Contributory;
  return Class.Benign;
}

/**
 * Delivers a fault or trap raised by the instruction at cpu.eip (for traps, cpu.eip is
 * already the next instruction). Exceptions raised during delivery combine into #DF or,
 * during a #DF, shut the processor down (SDM Vol. 3A, Table 6-5).
 */
export function deliverException(c: Cpu, first: Fault, trap = false): void {
  // The EFLAGS image of a fault-class exception has RF set, so the faulting instruction
  // restarts without hitting its instruction breakpoint again; not for the #DB of that
  // breakpoint itself, nor for traps (SDM Vol. 3B, 18.3.1.1).
  if (!trap && !(first instanceof CodeBreakpoint)) c.flags.word |= RF;
  const where = `${c.segs[CS].selector.toString(16).padStart(4, "0")}:${(c.eip >>> 0).toString(16).padStart(8, "0")}`;
  const chain = [`${first.toString()} at ${where}`];
  let f = first;
  // A double fault made of two exceptions is not "during event delivery" for VMX.
  let direct = false;
  for (;;) {
    try {
      // In VMX non-root operation the exception bitmap may turn it into a VM exit, before
      // CR2 or DR6 change (vmx/events.ts).
      if (c.vmx.nonRoot) exceptionExit(c, f, direct);
      if (f instanceof PageFault) c.cr2 = f.linear;
      else if (f instanceof DebugException) {
        c.dr[6] |= f.dr6;
        if (f.clearGd) c.dr[7] &= ~DR7_GD;
      }
      deliverEvent(c, f.vector, EventType.HardwareException, f.errorCode, c.eip);
      return;
    } catch (e) {
      if (!(e instanceof Fault)) throw e;
      c.vmx.events.injecting = false; // a nested fault is not the injected event
      chain.push(`${e.toString()} while delivering ${EXCEPTION_NAMES[f.vector] ?? f.vector}`);
      const first = classOf(f.vector);
      const second = classOf(e.vector);
      if (f.vector === DF_VEC && second !== Class.Benign) {
        if (c.vmx.nonRoot) tripleFaultExit(c);
        throw new TripleFault(chain.join(" -> "));
      }
      if (
        (first === Class.Contributory && second === Class.Contributory) ||
        (first === Class.PageFault && second !== Class.Benign)
      ) {
        f = new Fault(DF_VEC, 0);
        direct = true;
        chain.push("#DF(0x0)");
      } else {
        f = e; // handled serially
        direct = false;
      }
    }
  }
}

/**
 * Delivers event `vector` of `type`, pushing `errorCode` when it is not negative, with
 * `returnEip` as the saved instruction pointer. On return CS:EIP is the handler entry.
 */
export function deliverEvent(
  c: Cpu,
  vector: number,
  type: EventType,
  errorCode: number,
  returnEip: number,
): void {
  if (!c.vmx.nonRoot) return deliverThroughIdt(c, vector, type, errorCode, returnEip);
  // VMX non-root operation: INT3/INTO/INT1 meet the exception bitmap, and an exit during
  // the delivery reports the event as IDT-vectoring information (vmx/events.ts).
  beforeDelivery(c, vector, type, errorCode, returnEip);
  deliverThroughIdt(c, vector, type, errorCode, returnEip);
  afterDelivery(c);
}

function deliverThroughIdt(
  c: Cpu,
  vector: number,
  type: EventType,
  errorCode: number,
  returnEip: number,
): void {
  if (!c.protectedMode) return deliverReal(c, vector, returnEip);
  // EXT (bit 0 of a selector error code): the event came from outside the program.
  const ext =
    type === EventType.External || type === EventType.Nmi || type === EventType.HardwareException
      ? 1
      : 0;
  const software = type === EventType.SoftwareInterrupt || type === EventType.SoftwareException;
  if (c.longMode) return deliverEvent64(c, vector, software, ext, errorCode, returnEip);
  const idtErr = vector * 8 + 2 + ext;
  if (vector * 8 + 7 > c.idtrLimit) fault(GP, idtErr);
  const gateAddr = (c.idtrBase + vector * 8) | 0;
  const lo = c.rdSys(gateAddr, 4);
  const hi = c.rdSys((gateAddr + 4) | 0, 4);
  const gateType = (hi >> 8) & 0x1f; // type and S
  const gateDpl = (hi >> 13) & 3;
  if (
    gateType !== SYS_TASK_GATE &&
    gateType !== SYS_INT_GATE16 &&
    gateType !== SYS_INT_GATE32 &&
    gateType !== SYS_TRAP_GATE16 &&
    gateType !== SYS_TRAP_GATE32
  ) {
    fault(GP, idtErr);
  }
  // INT n, INT3 and INTO check the gate's DPL; INT1 and hardware events do not (6.12.1.1).
  if (
    (type === EventType.SoftwareInterrupt || type === EventType.SoftwareException) &&
    gateDpl < c.cpl
  ) {
    fault(GP, vector * 8 + 2);
  }
  if (!(hi & (1 << 15))) fault(NP, idtErr);

  if (gateType === SYS_TASK_GATE) {
    taskSwitch(c, lo >>> 16, TaskSwitchReason.InterruptOrException, returnEip);
    if (errorCode >= 0) {
      const big = c.tr.ar & 8; // a 32-bit TSS pushes a 32-bit error code
      pushSys(c, big ? 4 : 2, errorCode);
    }
    return;
  }

  const gate32 = gateType === SYS_INT_GATE32 || gateType === SYS_TRAP_GATE32;
  const sel = lo >>> 16;
  const offset = gate32 ? ((hi & 0xffff0000) | (lo & 0xffff)) >>> 0 : lo & 0xffff;
  if ((sel & 0xfffc) === 0) fault(GP, ext);
  const [dlo, dhi] = readDescriptor(c, sel, GP);
  const ar = descriptorAr(dhi);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  if ((ar & (AR_S | AR_TYPE_CODE)) !== (AR_S | AR_TYPE_CODE) || dpl > c.cpl) {
    fault(GP, (sel & 0xfffc) | ext);
  }
  if (!(ar & AR_P)) fault(NP, (sel & 0xfffc) | ext);
  const conforming = (ar & AR_TYPE_EC) !== 0;
  const oldFlags = c.flags.get();
  const size = gate32 ? 4 : 2;

  // Save what a failed push must restore: delivery is all or nothing.
  const saved = saveStackState(c);
  try {
    if (!conforming && dpl < c.cpl) {
      // Inter-privilege: switch to the stack for `dpl` from the TSS (6.12.1).
      if (c.v86 && dpl !== 0) fault(GP, (sel & 0xfffc) | ext);
      const [newSs, newEsp] = tssStack(c, dpl, ext);
      const oldSs = c.segs[SS].selector;
      const oldEsp = c.regs[ESP];
      const wasV86 = c.v86;
      loadStackSeg(c, newSs, dpl, ext);
      c.regs[ESP] = c.segs[SS].big ? newEsp : newEsp & 0xffff;
      c.cpl = dpl;
      c.modeChanged();
      if (wasV86) {
        pushSys(c, size, c.segs[GS].selector);
        pushSys(c, size, c.segs[FS].selector);
        pushSys(c, size, c.segs[DS].selector);
        pushSys(c, size, c.segs[ES].selector);
        for (const s of [GS, FS, DS, ES]) c.segs[s].set(0, 0, 0, 0x10000);
      }
      pushSys(c, size, oldSs);
      pushSys(c, size, oldEsp);
    } else {
      if (c.v86) fault(GP, (sel & 0xfffc) | ext);
    }
    pushSys(c, size, oldFlags);
    pushSys(c, size, c.segs[CS].selector);
    pushSys(c, size, returnEip);
    if (errorCode >= 0) pushSys(c, size, errorCode);
  } catch (e) {
    restoreStackState(c, saved);
    throw e;
  }
  commitSegment(c, c.segs[CS], (sel & 0xfffc) | c.cpl, dlo, dhi);
  let fl = oldFlags & ~(TF | VM | RF | NT);
  if (gateType === SYS_INT_GATE16 || gateType === SYS_INT_GATE32) fl &= ~IF;
  c.flags.load(fl);
  c.eip = c.nextEip = offset;
  c.modeChanged();
}

/** Real-address mode: the IVT at IDTR.base holds 4-byte CS:IP vectors (SDM Vol. 3A, 20.1.4). */
function deliverReal(c: Cpu, vector: number, returnEip: number): void {
  if (vector * 4 + 3 > c.idtrLimit) fault(GP, 0);
  const ip = c.rdSys((c.idtrBase + vector * 4) | 0, 2);
  const cs = c.rdSys((c.idtrBase + vector * 4 + 2) | 0, 2);
  pushSys(c, 2, c.flags.get());
  pushSys(c, 2, c.segs[CS].selector);
  pushSys(c, 2, returnEip);
  c.flags.load(c.flags.get() & ~(IF | TF | AC | RF));
  c.segs[CS].setReal(cs);
  c.eip = c.nextEip = ip;
}

/** Pushes on SS:ESP with supervisor-implicit checks of the current stack segment. */
export function pushSys(c: Cpu, size: 2 | 4, v: number): void {
  const s = c.segs[SS];
  const esp = s.big ? (c.regs[ESP] - size) | 0 : (c.regs[ESP] - size) & 0xffff;
  const o = esp >>> 0;
  if ((s.ar & (AR_TYPE_CODE | AR_TYPE_EC)) === AR_TYPE_EC) {
    if (o <= s.limit || o + size - 1 > (s.big ? 0xffffffff : 0xffff)) fault(SS_VEC, 0);
  } else if (o + size - 1 > s.limit) {
    fault(SS_VEC, 0);
  }
  c.wrSys((s.base + o) | 0, size, v);
  if (s.big) c.regs[ESP] = esp;
  else c.regs[ESP] = (c.regs[ESP] & ~0xffff) | esp;
}

/** Reads SS:ESP for privilege level `dpl` from the current TSS (SDM Vol. 3A, 8.2.1). */
export function tssStack(c: Cpu, dpl: number, ext: number): [number, number] {
  const tss32 = (c.tr.ar & 8) !== 0;
  const at = tss32 ? 4 + dpl * 8 : 2 + dpl * 4;
  const size = tss32 ? 4 : 2;
  if (at + size + (tss32 ? 4 : 2) - 1 > c.tr.limit) fault(TS, (c.tr.selector & 0xfffc) | ext);
  const esp = c.rdSys((c.tr.base + at) | 0, size);
  const ss = c.rdSys((c.tr.base + at + size) | 0, 2);
  return [ss, esp];
}

/** Loads SS for an inter-privilege transfer to `dpl`; failures are #TS (SDM 6.12.1). */
export function loadStackSeg(c: Cpu, sel: number, dpl: number, ext: number): void {
  const [lo, hi] = checkStackSegment(c, sel, dpl, TS, ext);
  commitSegment(c, c.segs[SS], sel, lo, hi);
}

interface StackState {
  esp: number;
  cpl: number;
  segs: [number, number, number, number][];
}

function saveStackState(c: Cpu): StackState {
  return {
    esp: c.regs[ESP],
    cpl: c.cpl,
    segs: c.segs.map(
      (g) => [g.selector, g.base, g.limit, g.ar] as [number, number, number, number],
    ),
  };
}

function restoreStackState(c: Cpu, st: StackState): void {
  st.segs.forEach((v, k) => c.segs[k].set(v[0], v[1], v[2], v[3]));
  c.regs[ESP] = st.esp;
  c.cpl = st.cpl;
  c.modeChanged();
}
