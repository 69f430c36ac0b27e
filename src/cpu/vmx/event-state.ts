/**
 * The per-vCPU state of VMX non-root event handling (events.ts, nonroot.ts): what the
 * processor keeps between instruction boundaries beyond the architectural registers.
 * Virtual-NMI blocking is not here: while "virtual NMIs" is 1 it lives in bit 3 of the
 * current VMCS's guest interruptibility-state field (SDM Vol. 3C, 25.4.2), which VM
 * entry loads and VM exit saves as it is.
 */
export class EventState {
  /**
   * Blocking by STI / MOV SS as it was when the current instruction began: a fault-like
   * VM exit saves it (the instruction did not complete; SDM Vol. 3C, 28.3.4).
   */
  blockingBefore = 0;
  /** An MTF VM exit is pending at the next instruction boundary (SDM Vol. 3C, 26.5.2). */
  mtfPending = false;
  /**
   * The VMX-preemption timer (SDM Vol. 3C, 26.5.1): running since the last VM entry,
   * the TSC value at which it reaches zero, and whether it has.
   */
  timerRunning = false;
  timerDeadline = 0;
  timerExpired = false;
  /** The TSC at VM entry and the timer value then, to save the remaining value on exit. */
  timerStartTsc = 0;
  timerStartValue = 0;
  /**
   * The event being delivered through the IDT, in the interruption-information format
   * (0: none), its error code and, for software events, the instruction length: a VM
   * exit during its delivery reports it as IDT-vectoring information (28.2.4).
   */
  vectoringInfo = 0;
  vectoringErrorCode = 0;
  vectoringLength = 0;
  /** The event being delivered was injected by VM entry (not checked against the bitmap). */
  injecting = false;
  /**
   * instructionsRetired of the IRET that last ended blocking by NMI or virtual-NMI
   * blocking (-1: none): a fault or EPT violation of that same IRET, not yet retired,
   * reports "NMI unblocking due to IRET" (SDM Vol. 3C, 28.2.2 and Table 28-7, bit 12).
   */
  nmiUnblockedByIretAt = -1;

  reset(): void {
    this.blockingBefore = 0;
    this.mtfPending = false;
    this.timerRunning = false;
    this.timerExpired = false;
    this.timerDeadline = 0;
    this.timerStartTsc = 0;
    this.timerStartValue = 0;
    this.vectoringInfo = 0;
    this.vectoringErrorCode = 0;
    this.vectoringLength = 0;
    this.injecting = false;
    this.nmiUnblockedByIretAt = -1;
  }
}
