/**
 * Events in VMX non-root operation (SDM Vol. 3C, 26.2 "Other Causes of VM Exits", 26.4
 * event blocking, 26.5 "Features Specific to VMX Non-Root Operation", 27.5-27.7 event
 * injection and what VM entry arms): the exception bitmap with the #PF error-code
 * mask/match, external-interrupt exiting with acknowledge-on-exit, NMI exiting, virtual
 * NMIs, the interrupt and NMI windows, the VMX-preemption timer, the monitor trap flag,
 * triple faults, INIT and SIPI, and IDT-vectoring information for exits that occur while
 * an event is being delivered.
 *
 * Everything is delivered through the CPU's one delivery path (interrupt.ts); the hooks
 * there and in the run loop (cpu.ts) call into this file only in non-root operation.
 *
 * Priority at an instruction boundary (SDM Vol. 3A, Table 6-2 with the VMX events of
 * 26.2 and 26.5): INIT and SIPI, then a pending MTF VM exit, then debug traps (delivered
 * by the run loop right after their instruction), the VMX-preemption timer, NMI-window
 * exiting, NMIs, interrupt-window exiting, external interrupts.
 */
import { ActivityState } from "../../engine/engine.js";
import { BLOCKING_MOV_SS, BLOCKING_STI, DF_VEC, NMI, PF_VEC } from "../arch.js";
import type { Cpu } from "../cpu.js";
import { DebugException, Fault } from "../fault.js";
import { IF } from "../flags.js";
import { PageFault } from "../mmu.js";
import { deliverEvent, deliverException, EventType } from "../interrupt.js";
import { PREEMPTION_TIMER_RATE } from "./capabilities.js";
import { ExitCtl, Pin, Proc } from "./controls.js";
import { ExitReason } from "./exit-reasons.js";
import { BLOCKING_NMI, vmExit, type ExitInfo } from "./exit.js";
import { F } from "./fields.js";
import {
  INTR_ERROR_CODE_VALID,
  INTR_NMI_UNBLOCKED_BY_IRET,
  INTR_TYPE_OTHER,
  INTR_TYPE_SHIFT,
  INTR_VALID,
  interruptionInfo,
  taskSwitchQualification,
} from "./exit-info.js";
import type { Vmcs } from "./vmcs.js";

/** DR6 bits an exit qualification for #DB reports: B3-B0, BD, BS (SDM 28.2.1, Table 28-1). */
const DEBUG_QUALIFICATION_BITS = 0xf | (1 << 13) | (1 << 14);

// ---------------------------------------------------------------- VM entry

/**
 * What VM entry does after loading the guest state (SDM 27.5 and 27.7): starts the
 * VMX-preemption timer, injects the event of the VM-entry interruption-information field
 * through the guest's IDT (a fault during its delivery is handled as in non-root
 * operation, so it may exit with IDT-vectoring information), makes an MTF VM exit
 * pending when asked to, and arms the checks of the first instruction boundary. May end
 * in a VM exit (VmExitSignal) when the injected event's delivery exits.
 */
export function afterVmEntry(c: Cpu): void {
  const s = c.vmx.events;
  const v = c.vmx.vmcs;
  s.vectoringInfo = 0;
  s.injecting = false;
  s.mtfPending = false;
  s.blockingBefore = c.blocking;
  startPreemptionTimer(c, v);
  c.eventPending = true; // windows, pending events and the timer: checked before any instruction
  const info = v.read(F.EntryInterruptionInfo);
  if (!(info & INTR_VALID)) return pendingDebugExceptions(c, v);
  const vector = info & 0xff;
  const type = (info >>> INTR_TYPE_SHIFT) & 7;
  if (type === INTR_TYPE_OTHER) {
    // Type 7, vector 0: a pending MTF VM exit (27.5.2), even without the MTF control.
    s.mtfPending = true;
    return;
  }
  const errorCode = info & INTR_ERROR_CODE_VALID ? v.read(F.EntryExceptionErrorCode) : -1;
  // A vectoring entry leaves no blocking by STI or MOV SS (27.7.1); the event is
  // delivered, so the processor is active afterwards.
  c.blocking = 0;
  s.blockingBefore = 0;
  c.activity = ActivityState.Active;
  if (type === EventType.Nmi) blockNmis(c, v);
  s.injecting = true;
  try {
    if (type === EventType.HardwareException) {
      // As an exception of the guest, with the double-fault rules for nested faults; the
      // injected exception itself is not checked against the exception bitmap, and CR2
      // and DR6 are not touched (27.5.1).
      deliverException(c, new Fault(vector, errorCode), true);
    } else {
      const software =
        type === EventType.SoftwareInterrupt ||
        type === EventType.SoftwareException ||
        type === EventType.PrivilegedSoftwareException;
      const length = software ? v.read(F.EntryInstructionLength) : 0;
      try {
        deliverEvent(c, vector, type as EventType, errorCode, advance(c, length));
      } catch (e) {
        if (!(e instanceof Fault)) throw e;
        s.injecting = false; // the nested fault is the guest's own
        deliverException(c, e);
      }
    }
  } finally {
    s.injecting = false;
  }
  // "Monitor trap flag" with a vectoring entry: an MTF VM exit before the first guest
  // instruction (26.5.2).
  if (v.read(F.ProcBasedControls) & Proc.MonitorTrapFlag) s.mtfPending = true;
}

/**
 * Pending debug exceptions after a VM entry that injects nothing (27.7.3): B0-B3 or BS
 * in the guest's pending-debug-exceptions field make a #DB trap with those DR6 bits,
 * delivered (or, with #DB in the exception bitmap, exiting) before the first instruction,
 * with the priority of traps on the previous instruction; blocking by MOV SS holds them
 * back (they are lost, which the SDM allows).
 */
function pendingDebugExceptions(c: Cpu, v: Vmcs): void {
  const bits = v.read(F.GuestPendingDebugExceptions) & DEBUG_QUALIFICATION_BITS & ~(1 << 13);
  if (bits === 0 || c.blocking & BLOCKING_MOV_SS) return;
  if (c.activity !== ActivityState.Active && c.activity !== ActivityState.Hlt) return;
  c.activity = ActivityState.Active;
  deliverException(c, new DebugException(bits), true);
}

/** The return address of a software event of `length` bytes at CS:rIP. */
function advance(c: Cpu, length: number): number {
  if (c.mode64) return c.eip + length;
  return c.segs[1].big ? (c.eip + length) >>> 0 : (c.eip + length) & 0xffff;
}

/**
 * An NMI was injected: with "virtual NMIs", virtual-NMI blocking is in effect after the
 * VM entry (27.6.1.2). Without, the SDM names no blocking, and processors set none: the
 * guest's NMIs stay unblocked until it blocks them itself (the original SHV's NMI
 * experiments 18 and 19 check this on hardware).
 */
function blockNmis(c: Cpu, v: Vmcs): void {
  if (v.read(F.PinBasedControls) & Pin.VirtualNmis) setVirtualNmiBlocking(v, true);
}

/** Virtual-NMI blocking is bit 3 of the guest interruptibility state (event-state.ts). */
function setVirtualNmiBlocking(v: Vmcs, blocked: boolean): void {
  const intr = v.read(F.GuestInterruptibilityState);
  v.write(F.GuestInterruptibilityState, blocked ? intr | BLOCKING_NMI : intr & ~BLOCKING_NMI);
}

function virtualNmiBlocked(v: Vmcs): boolean {
  return (v.read(F.GuestInterruptibilityState) & BLOCKING_NMI) !== 0;
}

// ---------------------------------------------------------------- VMX-preemption timer

/**
 * Starts the timer with the VMX-preemption timer-value field (27.7.4): it counts down by
 * one each time bit PREEMPTION_TIMER_RATE of the TSC changes (26.5.1; the TSC is the
 * machine's virtual clock, so runs stay deterministic) and exits at zero.
 */
function startPreemptionTimer(c: Cpu, v: Vmcs): void {
  const s = c.vmx.events;
  s.timerExpired = false;
  s.timerRunning = (v.read(F.PinBasedControls) & Pin.ActivatePreemptionTimer) !== 0;
  c.preemptionAlarm?.disarm();
  if (!s.timerRunning) return;
  const value = v.read(F.PreemptionTimerValue) >>> 0;
  const now = c.msr.tsc();
  const unit = 2 ** PREEMPTION_TIMER_RATE;
  s.timerStartTsc = now;
  s.timerStartValue = value;
  s.timerDeadline = (Math.floor(now / unit) + value) * unit;
  if (value === 0) s.timerExpired = true;
  else c.preemptionAlarm?.armIn(s.timerDeadline - now);
}

/** The timer's value now (what "save VMX-preemption timer value" stores, 28.3.4). */
export function preemptionTimerValue(c: Cpu): number {
  const s = c.vmx.events;
  const unit = 2 ** PREEMPTION_TIMER_RATE;
  const ticks = Math.floor(c.msr.tsc() / unit) - Math.floor(s.timerStartTsc / unit);
  return Math.max(0, s.timerStartValue - ticks);
}

/** Whether the timer has reached zero (polled when no clock alarm wakes the vCPU). */
function timerDue(c: Cpu): boolean {
  const s = c.vmx.events;
  if (!s.timerExpired && c.msr.tsc() >= s.timerDeadline) s.timerExpired = true;
  return s.timerExpired;
}

/** The clock alarm fired: the timer reached zero. */
export function preemptionTimerFired(c: Cpu): void {
  if (!c.vmx.nonRoot || !c.vmx.events.timerRunning) return;
  c.vmx.events.timerExpired = true;
  c.kick();
}

/**
 * What a VM exit does with the timer (28.3.4): stops it, and with "save VMX-preemption
 * timer value" stores the value it had reached. Called by every VM exit (exit.ts).
 */
export function stopPreemptionTimer(c: Cpu, v: Vmcs): void {
  const s = c.vmx.events;
  if (!s.timerRunning) return;
  if (v.read(F.ExitControls) & ExitCtl.SavePreemptionTimer) {
    v.write(F.PreemptionTimerValue, preemptionTimerValue(c));
  }
  s.timerRunning = false;
  s.timerExpired = false;
  c.preemptionAlarm?.disarm();
}

// ---------------------------------------------------------------- instruction boundaries

/**
 * The events of an instruction boundary in non-root operation, in priority order
 * (header comment). Either a VM exit (thrown), the delivery of an event into the guest,
 * or nothing; checks that cannot be decided yet (a window not open, an interrupt
 * blocked) keep `eventPending` set so the next boundary looks again.
 */
export function nonRootEvents(c: Cpu): void {
  const s = c.vmx.events;
  const v = c.vmx.vmcs;
  c.eventPending = false;
  const activity = c.activity;
  // INIT exits, except in the wait-for-SIPI state where it is blocked (26.2).
  if (c.initPending && activity !== ActivityState.WaitForSipi) {
    c.initPending = false;
    exitAtBoundary(c, ExitReason.Init);
  }
  // A SIPI exits in the wait-for-SIPI state, with the vector as qualification; otherwise
  // it is discarded (26.2).
  if (c.sipiVector >= 0) {
    const vector = c.sipiVector;
    c.sipiVector = -1;
    if (activity === ActivityState.WaitForSipi) exitAtBoundary(c, ExitReason.Sipi, vector);
  }
  // Everything else waits: a VM exit re-arms the check (beforeExit).
  if (activity === ActivityState.WaitForSipi) return;
  const shutdown = activity === ActivityState.Shutdown;
  if (s.mtfPending && !shutdown) {
    s.mtfPending = false;
    exitAtBoundary(c, ExitReason.MonitorTrapFlag);
  }
  let again = false;
  if (s.timerRunning) {
    if (timerDue(c)) {
      if (!shutdown) exitAtBoundary(c, ExitReason.PreemptionTimer);
    } else if (!c.preemptionAlarm) again = true; // no clock alarm: poll each boundary
  }
  const pin = v.read(F.PinBasedControls);
  const proc = v.read(F.ProcBasedControls);
  const movSs = (c.blocking & BLOCKING_MOV_SS) !== 0;
  const sti = (c.blocking & BLOCKING_STI) !== 0;
  // NMI window: no virtual-NMI blocking and no blocking by MOV SS (26.5.3 with 26.4:
  // blocking by STI does not hold NMIs back on this processor).
  if (proc & Proc.NmiWindowExiting) {
    if (!virtualNmiBlocked(v) && !movSs) exitAtBoundary(c, ExitReason.NmiWindow);
    again = true;
  }
  if (c.nmiPending) {
    if (pin & Pin.NmiExiting) {
      // With "virtual NMIs", NMIs are not blocked in non-root operation; without it,
      // blocking by NMI holds them while the guest runs (27.7.1).
      const blocked = movSs || (!(pin & Pin.VirtualNmis) && c.nmiBlocked);
      if (!blocked) {
        c.nmiPending = false;
        exitAtBoundary(c, ExitReason.ExceptionOrNmi, 0, {
          interruptionInfo: interruptionInfo(NMI, EventType.Nmi, false),
        });
      }
      again = true;
    } else if (!c.nmiBlocked && !movSs) {
      // An NMI also takes the guest out of the shutdown state (26.5.2 on MTF).
      c.nmiPending = false;
      c.nmiBlocked = true;
      c.activity = ActivityState.Active;
      c.eventPending = true;
      deliverGuestEvent(c, NMI, EventType.Nmi);
      return;
    } else again = true;
  }
  if (shutdown) {
    c.eventPending = again;
    return;
  }
  // Interrupt window: RFLAGS.IF = 1 and no blocking by STI or MOV SS (26.5.3).
  if (proc & Proc.InterruptWindowExiting) {
    if (c.flags.word & IF && !sti && !movSs) exitAtBoundary(c, ExitReason.InterruptWindow);
    again = true;
  }
  const lines = c.lines;
  if (lines !== null && lines.hasInterrupt()) {
    if (pin & Pin.ExternalInterruptExiting) {
      // RFLAGS.IF does not block it; STI and MOV SS do (26.4.1).
      if (!sti && !movSs) {
        let info = 0;
        if (v.read(F.ExitControls) & ExitCtl.AcknowledgeInterruptOnExit) {
          info = interruptionInfo(lines.acknowledge(), EventType.External, false);
        }
        exitAtBoundary(c, ExitReason.ExternalInterrupt, 0, { interruptionInfo: info });
      }
    } else if (c.flags.word & IF && !sti && !movSs) {
      c.activity = ActivityState.Active;
      c.eventPending = true;
      deliverGuestEvent(c, lines.acknowledge(), EventType.External);
      return;
    }
    again = true;
  }
  if (again) c.eventPending = true;
}

/**
 * Delivers an NMI or external interrupt into the guest at the boundary; a fault during
 * its delivery is handled there (it may exit with IDT-vectoring information).
 */
function deliverGuestEvent(c: Cpu, vector: number, type: EventType): void {
  try {
    deliverEvent(c, vector, type, -1, c.eip);
  } catch (e) {
    if (!(e instanceof Fault)) throw e;
    deliverException(c, e);
  }
}

/** A VM exit at an instruction boundary (the guest RIP is the next instruction). */
function exitAtBoundary(c: Cpu, reason: ExitReason, qualification = 0, info: ExitInfo = {}): never {
  return vmExit(c, reason, qualification, info);
}

/**
 * After an instruction retired in non-root operation with the monitor trap flag: an MTF
 * VM exit is pending (26.5.2). It has priority over the instruction's debug trap, which
 * becomes a pending debug exception saved in the guest state (`debugBits` in DR6 format).
 */
export function monitorTrap(c: Cpu, debugBits: number): never {
  c.vmx.events.mtfPending = false;
  return vmExit(c, ExitReason.MonitorTrapFlag, 0, {
    pendingDebugExceptions: debugBits & DEBUG_QUALIFICATION_BITS,
  });
}

/**
 * Whether a halted guest can be woken by an interrupt the machine may raise: with
 * "external-interrupt exiting" RFLAGS.IF does not matter (the scheduler paces idle time
 * differently when nothing but an NMI could wake a vCPU).
 */
export function haltInterruptible(c: Cpu): boolean {
  if (c.flags.word & IF) return true;
  return (c.vmx.vmcs.read(F.PinBasedControls) & Pin.ExternalInterruptExiting) !== 0;
}

// ---------------------------------------------------------------- delivery hooks

/**
 * Exception `f` is about to be delivered in non-root operation (interrupt.ts,
 * deliverException): an exit when the exception bitmap says so (26.2), before CR2 or DR6
 * change. #PF uses the error-code mask/match rule; its qualification is the faulting
 * linear address, #DB's the DR6 bits it would set. `direct`: a double fault made of a
 * nested fault, which is not "during event delivery" (28.2.4).
 */
export function exceptionExit(c: Cpu, f: Fault, direct: boolean): void {
  const s = c.vmx.events;
  if (s.injecting) return; // the injected event itself is never checked (27.5.1)
  const v = c.vmx.vmcs;
  if (!exceptionExits(v, f.vector, f.errorCode)) return;
  let qualification = 0;
  if (f instanceof PageFault) qualification = linearQualification(c, f.linear);
  else if (f instanceof DebugException) qualification = f.dr6 & DEBUG_QUALIFICATION_BITS;
  const info: ExitInfo = {
    interruptionInfo: interruptionInfo(f.vector, EventType.HardwareException, f.errorCode >= 0),
  };
  if (f.errorCode >= 0) info.interruptionErrorCode = f.errorCode;
  if (!direct) vectoringInfo(c, info);
  // A fault on an IRET that ended (virtual-)NMI blocking says so in bit 12, except during
  // event delivery, for #DF, and with NMI exiting but no virtual NMIs (28.2.2).
  const pin = v.read(F.PinBasedControls);
  if (
    s.nmiUnblockedByIretAt === c.instructionsRetired &&
    info.idtVectoringInfo === undefined &&
    f.vector !== DF_VEC &&
    (pin & (Pin.NmiExiting | Pin.VirtualNmis)) !== Pin.NmiExiting
  ) {
    info.interruptionInfo = (info.interruptionInfo ?? 0) | INTR_NMI_UNBLOCKED_BY_IRET;
  }
  s.vectoringInfo = 0;
  vmExit(c, ExitReason.ExceptionOrNmi, qualification, info);
}

/**
 * The exception bitmap (25.6.3): bit n exits exception n; for #PF the bit's meaning is
 * inverted unless (error code AND mask) = match (26.2).
 */
export function exceptionExits(v: Vmcs, vector: number, errorCode: number): boolean {
  const bit = (v.read(F.ExceptionBitmap) >>> vector) & 1;
  if (vector !== PF_VEC) return bit === 1;
  const match =
    (errorCode & v.read(F.PageFaultErrorCodeMask)) >>> 0 ===
    v.read(F.PageFaultErrorCodeMatch) >>> 0;
  return match ? bit === 1 : bit === 0;
}

/**
 * Event `vector` of `type` is about to go through the guest's IDT (interrupt.ts,
 * deliverEvent). INT3, INTO and INT1 are exceptions for the exception bitmap (26.2); any
 * exit while this delivery runs reports it as IDT-vectoring information.
 */
export function beforeDelivery(
  c: Cpu,
  vector: number,
  type: EventType,
  errorCode: number,
  returnEip: number,
): void {
  const s = c.vmx.events;
  const length = softwareEvent(type) ? instructionLength(c, returnEip) : 0;
  if (
    !s.injecting &&
    (type === EventType.SoftwareException || type === EventType.PrivilegedSoftwareException) &&
    exceptionExits(c.vmx.vmcs, vector, -1)
  ) {
    const info: ExitInfo = {
      interruptionInfo: interruptionInfo(vector, type, false),
      instructionLength: length,
    };
    vectoringInfo(c, info);
    s.vectoringInfo = 0;
    vmExit(c, ExitReason.ExceptionOrNmi, 0, info);
  }
  s.vectoringInfo = interruptionInfo(vector, type, errorCode >= 0);
  s.vectoringErrorCode = errorCode;
  s.vectoringLength = length;
}

/** The delivery completed: later exits are not "during delivery"; MTF is pending (26.5.2). */
export function afterDelivery(c: Cpu): void {
  c.vmx.events.vectoringInfo = 0;
  if (c.vmx.vmcs.read(F.ProcBasedControls) & Proc.MonitorTrapFlag) {
    c.vmx.events.mtfPending = true;
    c.eventPending = true;
  }
}

function softwareEvent(type: EventType): boolean {
  return (
    type === EventType.SoftwareInterrupt ||
    type === EventType.SoftwareException ||
    type === EventType.PrivilegedSoftwareException
  );
}

/** The length of the instruction whose software event returns to `returnEip`. */
function instructionLength(c: Cpu, returnEip: number): number {
  // Lengths are at most 15, so the difference modulo 16 survives 16-bit wraparound.
  return (((returnEip - c.eip) % 16) + 16) % 16;
}

/**
 * Adds the IDT-vectoring information of an exit during event delivery (28.2.4) to `info`
 * unless the caller gave its own: the event being delivered, its error code and, for a
 * software event, the instruction length. Every exit that can happen during delivery
 * (exceptions, EPT violations, task switches) goes through here or through vmExit with
 * the same fields.
 */
export function vectoringInfo(c: Cpu, info: ExitInfo): ExitInfo {
  const s = c.vmx.events;
  if (s.vectoringInfo === 0 || info.idtVectoringInfo !== undefined) return info;
  info.idtVectoringInfo = s.vectoringInfo;
  if (s.vectoringErrorCode >= 0) info.idtVectoringErrorCode = s.vectoringErrorCode;
  const type = (s.vectoringInfo >>> INTR_TYPE_SHIFT) & 7;
  if (softwareEvent(type as EventType)) info.instructionLength ??= s.vectoringLength;
  // An NMI whose delivery exits has blocked NMIs (or virtual NMIs) all the same: "the
  // event does update architectural state" (28.1); the VMM unblocks when it re-injects.
  return info;
}

/** A triple fault in non-root operation is a VM exit (26.2), not a shutdown. */
export function tripleFaultExit(c: Cpu): never {
  c.vmx.events.vectoringInfo = 0;
  return vmExit(c, ExitReason.TripleFault);
}

/**
 * IRET in non-root operation (26.3): with "NMI exiting" it leaves blocking by NMI alone;
 * with "virtual NMIs" it ends virtual-NMI blocking instead; otherwise it unblocks NMIs.
 */
export function iretNmiUnblocking(c: Cpu): void {
  const pin = c.vmx.vmcs.read(F.PinBasedControls);
  const virtual = (pin & Pin.VirtualNmis) !== 0;
  const unblocks = virtual
    ? virtualNmiBlocked(c.vmx.vmcs)
    : !(pin & Pin.NmiExiting) && c.nmiBlocked;
  if (unblocks) c.vmx.events.nmiUnblockedByIretAt = c.instructionsRetired;
  if (virtual) setVirtualNmiBlocking(c.vmx.vmcs, false);
  else if (!(pin & Pin.NmiExiting)) c.nmiBlocked = false;
  c.eventPending = true; // an NMI window may have opened
}

/**
 * A linear address as an exit qualification (a number for vmExit): zero-extended outside
 * IA-32e mode, sign-extended from bit 47 inside (the CPU keeps those folded to 48 bits).
 */
export function linearQualification(c: Cpu, lin: number): number {
  if (!c.longMode) return lin >>> 0;
  return lin >= 2 ** 47 ? lin - 2 ** 48 : lin;
}

/**
 * What every VM exit from non-root operation does for events (called by vmExit before it
 * records anything): IDT-vectoring information when the exit happens during event
 * delivery (28.2.4), the VMX-preemption timer stops and may save its value (28.3.4), no
 * MTF VM exit stays pending, the valid bit of the VM-entry interruption-information
 * field is cleared (every VM exit clears it: SDM 25.8.3), and the host's first
 * instruction boundary looks at the interrupt inputs.
 */
export function beforeExit(c: Cpu, v: Vmcs, info: ExitInfo): void {
  vectoringInfo(c, info);
  c.vmx.events.vectoringInfo = 0;
  c.vmx.events.mtfPending = false;
  stopPreemptionTimer(c, v);
  v.write(F.EntryInterruptionInfo, v.read(F.EntryInterruptionInfo) & ~INTR_VALID);
  // The host looks at its interrupt inputs at its first instruction boundary: an NMI or
  // interrupt held while the guest ran (or left pending by this exit) may be taken now.
  c.eventPending = true;
}

/**
 * A task switch in non-root operation is a VM exit (26.4.2), taken after the checks on
 * the gate or descriptor that lead to it: qualification the TSS selector and the source
 * (0 CALL, 1 IRET, 2 JMP, 3 a task gate in the IDT, which is task.ts's numbering), the
 * instruction length for CALL, IRET and JMP; a task gate in the IDT reports the event
 * being delivered as IDT-vectoring information (beforeExit).
 */
export function taskSwitchExit(c: Cpu, selector: number, source: number, returnEip: number): never {
  const info: ExitInfo = {};
  if (source !== 3) info.instructionLength = instructionLength(c, returnEip);
  return vmExit(c, ExitReason.TaskSwitch, taskSwitchQualification(selector, source), info);
}
