/**
 * The software x86 CPU: one explicit state object per logical processor, with the
 * memory-access fast paths and the run loop. Instruction semantics live in exec/, the
 * decoder in decode.ts, page walks in mmu.ts, descriptor loads in segment.ts and event
 * delivery in interrupt.ts.
 */
import {
  ActivityState,
  type CpuHost,
  type TscAlarm,
  type InterruptLines,
  type MultibootEntry,
  type Vcpu,
  type VcpuExit,
} from "../engine/engine.js";
import { PageKind, type PhysicalMemory } from "../machine/memory.js";
import type { Bus } from "../machine/bus.js";
import {
  BLOCKING_MOV_SS,
  BLOCKING_STI,
  NMI,
  AC_VEC,
  AR_L,
  EFER_LMA,
  AR_DB,
  AR_G,
  AR_P,
  AR_S,
  AR_TYPE_ACCESSED,
  AR_TYPE_CODE,
  AR_TYPE_RW,
  CR0_AM,
  CR0_ET,
  CR0_PE,
  CR0_PG,
  CS,
  DR6_BS,
  DR6_FIXED1,
  DR7_FIXED1,
  EAX,
  EBX,
  EDX,
  ESP,
  GP,
  PFEC_I,
  PFEC_U,
  PFEC_W,
  REG32_NAMES,
  SEG_NAMES,
  SYS_LDT,
  SYS_TSS32_BUSY,
} from "./arch.js";
import { AC, Flags, IF, RF, TF, VM } from "./flags.js";
import { checkCodeBreakpoint, DebugState } from "./debug.js";
import { DebugException, Fault, fault } from "./fault.js";
import { SegReg } from "./segreg.js";
import { Instr, decode } from "./decode.js";
import {
  ACC_IMPLICIT,
  P_RS_AC,
  P_WS_AC,
  linearPage,
  translate,
  TLB_SIZE,
  P_NEVER,
  P_RAM,
  P_RS,
  P_RU,
  P_WS,
  P_WU,
  P_XS,
  P_XU,
} from "./mmu.js";
import { deliverEvent, deliverException, EventType, TripleFault } from "./interrupt.js";
import { MsrFile } from "./msr.js";
import { codeCacheFor, type CodeCache } from "./code-cache.js";
import { disassemble } from "./disasm.js";
import { FpuState } from "./fpu.js";
import { VmxState } from "./vmx/state.js";
import { VmExitSignal, VmxAbortSignal } from "./vmx/exit.js";
import {
  haltInterruptible,
  monitorTrap,
  nonRootEvents,
  preemptionTimerFired,
} from "./vmx/events.js";
import { nonRootInstruction } from "./vmx/nonroot.js";
import { Proc } from "./vmx/controls.js";
import { F } from "./vmx/fields.js";
import { TlbSet, type TlbBank } from "./vmx/tlb.js";
import type { EptContext } from "./vmx/ept.js";
import { EptExitSignal } from "./vmx/ept-mmu.js";

export class Cpu implements Vcpu {
  // ---- architectural state ----
  /** General-purpose registers RAX..R15: low 32 bits, and high 32 bits (64-bit mode). */
  readonly regs = new Int32Array(16);
  readonly regsHi = new Int32Array(16);
  /**
   * The second return register of 64-bit operand reads: the high half of the value a
   * read returned (exec/operands.ts).
   */
  hi = 0;
  /** Offset of the current instruction in CS. */
  eip = 0;
  /** Offset of the next instruction; control transfers write it. */
  nextEip = 0;
  readonly flags = new Flags();
  /** ES, CS, SS, DS, FS, GS (arch.ts numbering). */
  readonly segs: SegReg[] = Array.from({ length: 6 }, () => new SegReg());
  readonly ldtr = new SegReg();
  readonly tr = new SegReg();
  gdtrBase = 0;
  gdtrLimit = 0xffff;
  idtrBase = 0;
  idtrLimit = 0xffff;
  cr0 = CR0_ET;
  cr2 = 0;
  cr3 = 0;
  /** CR3 bits 63:32 (IA-32e mode: the PML4 may lie above 4 GiB). */
  cr3Hi = 0;
  cr4 = 0;
  /** DR0-DR7; DR4/DR5 alias DR6/DR7 when CR4.DE is clear. */
  readonly dr = new Int32Array(8);
  /** High halves of the breakpoint addresses DR0-DR3 (64-bit mode). */
  readonly drHi = new Int32Array(4);
  /** CR8, the task-priority class in 64-bit mode (SDM Vol. 3A, 10.8.6.1). */
  cr8 = 0;
  /** Current privilege level, kept equal to CS.RPL/SS.DPL by the code that changes them. */
  cpl = 0;
  /**
   * 64-bit mode: IA-32e mode active with a 64-bit code segment (CS.L); kept by
   * modeChanged(). RIP is then a canonical address folded to 48 bits (mmu.ts).
   */
  mode64 = false;
  readonly msr: MsrFile;
  /** PDPTEs loaded from CR3 when PAE paging is enabled (SDM Vol. 3A, 4.4.1). */
  readonly pdpte = new Float64Array(4);
  /** Active, HLT, shutdown or wait-for-SIPI (engine.ts, numbered as in the VMCS). */
  activity = ActivityState.Active;
  /** An NMI was delivered and no IRET has run since: further NMIs wait (SDM 6.7.1). */
  nmiBlocked = false;
  /**
   * Blocking by STI and by MOV SS for the one instruction that follows them (SDM Vol. 3A,
   * 6.8.3 and Vol. 3C, 25.4.2: the guest interruptibility state).
   */
  blocking = 0;

  /** Breakpoints armed in DR7 (debug.ts), and data/I/O breakpoint hits awaiting their trap. */
  readonly debug = new DebugState();
  /** x87, MXCSR, XMM registers and XCR0 (fpu.ts). */
  readonly fpu = new FpuState();
  /** VMX operation: root/non-root, VMXON pointer, current and active VMCSs (vmx/state.ts). */
  readonly vmx = new VmxState();

  // ---- implementation state ----
  instructionsRetired = 0;
  // The interrupt inputs' latches; VMX non-root operation takes them in vmx/events.ts.
  /** Something on the interrupt inputs may need attention at the next boundary. */
  eventPending = false;
  nmiPending = false;
  initPending = false;
  /** Vector of a startup IPI not yet taken, or -1. */
  sipiVector = -1;
  lines: InterruptLines | null = null;
  /** The VMX-preemption timer's alarm on the machine's clock, when it has one (events.ts). */
  readonly preemptionAlarm: TscAlarm | null;
  private stopRequested = false;
  readonly mem: PhysicalMemory;
  readonly io: Bus;
  readonly ram: Uint8Array;
  readonly ramView: DataView;
  /** Decoded instructions by physical address, shared by the machine's vCPUs. */
  readonly code: CodeCache;

  /** TLB banks tagged by VPID and EPT root (vmx/tlb.ts); the arrays below are the current one. */
  readonly tlbs = new TlbSet();
  /**
   * Software TLB: linear page number tag, physical page base, permission bits (mmu.ts).
   * Tags are doubles: IA-32e linear pages need 36 bits (see linearPage).
   */
  tlbTag = this.tlbs.current.tag;
  tlbPhys = this.tlbs.current.phys;
  tlbPerm = this.tlbs.current.perm;
  /**
   * The EPT that translates guest-physical addresses: set in VMX non-root operation with
   * "enable EPT", else null (vmx/ept-mmu.ts; mmu.ts asks only on TLB misses).
   */
  ept: EptContext | null = null;
  /** TLB permission bit each kind of access needs at the current CPL (P_NEVER forces checks). */
  needRead = P_RS;
  needWrite = P_WS;
  needExec = P_XS;

  /** Linear page of the last instruction fetch and its physical base, for fast fetches. */
  private fetchPage = -1;
  private fetchPhys = 0;

  constructor(
    readonly host: CpuHost,
    readonly id: number,
  ) {
    this.mem = host.mem;
    this.io = host.io;
    this.ram = host.mem.ram;
    this.ramView = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
    this.msr = new MsrFile(this);
    this.code = codeCacheFor(host.mem);
    this.preemptionAlarm =
      host.alarm?.(`cpu${id} VMX-preemption timer`, () => preemptionTimerFired(this)) ?? null;
    this.code.watch((page) => this.dropWritePermission(page));
    this.reset();
  }

  // ---------------------------------------------------------------- reset and entry

  /** Power-on state (SDM Vol. 3A, 10.1.1, Table 10-1). */
  reset(): void {
    this.regs.fill(0);
    this.regsHi.fill(0);
    this.regs[EDX] = 0x000906a0; // family/model/stepping, as CPUID.1:EAX reports
    this.flags.load(0);
    this.eip = this.nextEip = 0xfff0;
    const data = AR_P | AR_S | AR_TYPE_RW | AR_TYPE_ACCESSED;
    for (const s of this.segs) s.set(0, 0, 0xffff, data);
    this.segs[CS].set(0xf000, 0xffff0000, 0xffff, data | AR_TYPE_CODE);
    this.ldtr.set(0, 0, 0xffff, AR_P | SYS_LDT);
    this.tr.set(0, 0, 0xffff, AR_P | SYS_TSS32_BUSY);
    this.gdtrBase = this.idtrBase = 0;
    this.gdtrLimit = this.idtrLimit = 0xffff;
    this.cr0 = 0x60000000 | CR0_ET;
    this.cr2 = this.cr3 = this.cr4 = this.cr3Hi = 0;
    this.dr.fill(0);
    this.drHi.fill(0);
    this.debug.update(this);
    this.cr8 = 0;
    this.dr[6] = DR6_FIXED1;
    this.dr[7] = DR7_FIXED1;
    this.cpl = 0;
    this.msr.reset();
    this.vmx.reset();
    this.fpu.reset();
    // After RESET the bootstrap processor runs; the others wait for INIT-SIPI-SIPI
    // (SDM Vol. 3A, 10.4.1: the BIOS parks them, here they start parked).
    this.activity = this.id === 0 ? ActivityState.Active : ActivityState.WaitForSipi;
    this.blocking = 0;
    this.nmiBlocked = false;
    this.nmiPending = this.initPending = false;
    this.sipiVector = -1;
    this.ept = null;
    this.useTlb(this.tlbs.reset());
  }

  /** Multiboot entry (Multiboot Specification 0.6.96, 3.2): flat 32-bit, paging off. */
  setMultibootEntry(entry: MultibootEntry): void {
    this.reset();
    this.cr0 = CR0_ET | CR0_PE;
    const flat = AR_P | AR_S | AR_DB | AR_G | AR_TYPE_ACCESSED | AR_TYPE_RW;
    for (const s of this.segs) s.set(0x10, 0, 0xffffffff, flat);
    this.segs[CS].set(0x08, 0, 0xffffffff, flat | AR_TYPE_CODE);
    this.regs[EAX] = entry.eax;
    this.regs[EBX] = entry.ebx;
    this.regs[EDX] = 0;
    this.regs[ESP] = entry.esp;
    this.eip = this.nextEip = entry.eip >>> 0;
    this.flags.load(0);
    this.activity = ActivityState.Active;
    this.modeChanged();
  }

  // ---------------------------------------------------------------- interrupt inputs

  attachInterrupts(lines: InterruptLines): void {
    this.lines = lines;
    this.eventPending = true;
  }

  kick(): void {
    this.eventPending = true;
  }

  nmi(): void {
    this.nmiPending = this.eventPending = true;
  }

  init(): void {
    this.initPending = this.eventPending = true;
  }

  sipi(vector: number): void {
    this.sipiVector = vector & 0xff;
    this.eventPending = true;
  }

  /**
   * Takes what the interrupt inputs offer at an instruction boundary, in the priority
   * order of SDM Vol. 3A, 6.9: INIT, then NMI, then a maskable interrupt. HLT ends when
   * one is taken; an interrupt that cannot be taken yet (IF clear, or blocking by STI or
   * MOV SS) keeps the check armed.
   */
  private takeEvents(): void {
    if (this.vmx.nonRoot) return nonRootEvents(this);
    this.eventPending = false;
    // INIT is blocked in VMX root operation (SDM Vol. 3C, 24.8); it waits for VM entry
    // (where it exits) or VMXOFF.
    if (this.initPending && !this.vmx.on) {
      this.initPending = false;
      // INIT resets the processor; an AP then waits for a startup IPI (SDM Vol. 3A, 10.4).
      // INIT leaves the x87 and SSE state and XCR0 as they were (SDM Vol. 3A, 10.1.1).
      const keep = this.msr.readTsc();
      const fpu = new FpuState();
      fpu.copyFrom(this.fpu);
      this.reset();
      this.fpu.copyFrom(fpu);
      this.msr.writeTsc(keep);
      this.activity = this.id === 0 ? ActivityState.Active : ActivityState.WaitForSipi;
    }
    if (this.sipiVector >= 0) {
      const v = this.sipiVector;
      this.sipiVector = -1;
      if (this.activity === ActivityState.WaitForSipi) this.startup(v);
    }
    if (this.activity === ActivityState.WaitForSipi || this.activity === ActivityState.Shutdown) {
      return;
    }
    if (this.nmiPending) {
      if (!this.nmiBlocked && !(this.blocking & BLOCKING_MOV_SS)) {
        this.nmiPending = false;
        this.nmiBlocked = true;
        this.activity = ActivityState.Active;
        this.eventPending = true; // a maskable interrupt may be waiting too
        deliverEvent(this, NMI, EventType.Nmi, -1, this.eip);
        return;
      }
      this.eventPending = true;
    }
    if (this.lines !== null && this.lines.hasInterrupt()) {
      if (this.flags.word & IF && !(this.blocking & (BLOCKING_STI | BLOCKING_MOV_SS))) {
        this.activity = ActivityState.Active;
        deliverEvent(this, this.lines.acknowledge(), EventType.External, -1, this.eip);
      }
      this.eventPending = true;
    }
  }

  /** A startup IPI: real mode at vector * 4096, CS = vector << 8 (SDM Vol. 3A, 10.4.4.1). */
  private startup(vector: number): void {
    const cs = this.segs[CS];
    cs.set(vector << 8, vector << 12, 0xffff, cs.ar);
    this.eip = this.nextEip = 0;
    this.activity = ActivityState.Active;
    this.modeChanged();
  }

  // ---------------------------------------------------------------- run loop

  requestStop(): void {
    this.stopRequested = true;
  }

  run(budget: number): VcpuExit {
    this.stopRequested = false;
    const end = this.instructionsRetired + budget;
    while (this.instructionsRetired < end) {
      if (this.stopRequested) return { kind: "stopped" };
      try {
        if (this.eventPending) this.takeEvents();
        if (this.activity !== ActivityState.Active) {
          const wakeable = this.vmx.nonRoot
            ? haltInterruptible(this)
            : (this.flags.word & IF) !== 0;
          return { kind: "halt", interruptsEnabled: wakeable };
        }
        if (this.vmx.nonRoot) this.runBlockNonRoot(end);
        else this.runBlock(end);
      } catch (e) {
        const signal = this.vmxSignal(e);
        if (signal === null) continue;
        if (signal !== undefined) return signal;
        if (!(e instanceof Fault)) throw e;
        try {
          deliverException(this, e);
        } catch (t) {
          if (t instanceof TripleFault) return { kind: "triple-fault", chain: t.chain };
          const nested = this.vmxSignal(t);
          if (nested === null) continue;
          if (nested !== undefined) return nested;
          throw t;
        }
      }
    }
    return this.stopRequested ? { kind: "stopped" } : { kind: "budget" };
  }

  /**
   * What a VMX signal thrown out of an instruction or a delivery means for the run: null
   * to carry on (a VM exit has loaded the host state, vmx/exit.ts), the run's end for a
   * VMX abort, undefined when `e` is no VMX signal. An EPT violation or misconfiguration
   * takes its VM exit here, now that the instruction or delivery has unwound
   * (vmx/ept-mmu.ts).
   */
  private vmxSignal(e: unknown): VcpuExit | null | undefined {
    if (e instanceof VmExitSignal) return null;
    if (e instanceof VmxAbortSignal) return { kind: "triple-fault", chain: e.toString() };
    if (!(e instanceof EptExitSignal)) return undefined;
    try {
      e.exit(this);
    } catch (t) {
      const signal = this.vmxSignal(t);
      if (signal !== undefined) return signal;
      throw t;
    }
    return null;
  }

  /**
   * Executes instructions until `end` retired, a stop request, HLT or a fault (thrown),
   * taking interrupts at instruction boundaries.
   */
  private runBlock(end: number): void {
    const cs = this.segs[CS];
    while (
      this.instructionsRetired < end &&
      !this.stopRequested &&
      this.activity === ActivityState.Active
    ) {
      if (this.eventPending) {
        this.takeEvents();
        // A VM entry (which always sets eventPending) switches to the non-root loop.
        if (this.activity !== ActivityState.Active || this.vmx.nonRoot) return;
      }
      const tf = this.flags.word & TF;
      // Instruction breakpoints are checked before the instruction (unless EFLAGS.RF), and
      // RF is cleared at its start (SDM Vol. 3B, 18.3.1.1).
      if (this.debug.code !== 0 && !(this.flags.word & RF)) checkCodeBreakpoint(this);
      this.flags.word &= ~RF;
      const i = this.fetchDecoded(cs);
      // VMLAUNCH/VMRESUME fail after MOV SS (vmx/instructions.ts): keep the blocking.
      this.vmx.events.blockingBefore = this.blocking;
      this.blocking = 0;
      i.exec(this, i);
      this.eip = this.nextEip;
      this.instructionsRetired++;
      // MOV SS and POP SS hold the single-step trap back until the next instruction.
      if ((tf !== 0 && (this.blocking & BLOCKING_MOV_SS) === 0) || this.debug.hits !== 0) {
        this.debugTrap(tf !== 0 && (this.blocking & BLOCKING_MOV_SS) === 0);
      }
    }
  }

  /**
   * runBlock in VMX non-root operation (SDM Vol. 3C, chapter 26): instructions whose
   * opcode-table row names a VM exit ask nonRootInstruction first (vmx/nonroot.ts), the
   * blocking state before each instruction is kept for fault-like exits, and the monitor
   * trap flag exits after each instruction, ahead of its debug trap (26.5.2). Ends at
   * every VM exit (thrown) and leaves it to run() to pick the loop again.
   */
  private runBlockNonRoot(end: number): void {
    const cs = this.segs[CS];
    const ev = this.vmx.events;
    const mtf = (this.vmx.vmcs.read(F.ProcBasedControls) & Proc.MonitorTrapFlag) !== 0;
    while (
      this.instructionsRetired < end &&
      !this.stopRequested &&
      this.activity === ActivityState.Active
    ) {
      if (this.eventPending) {
        this.takeEvents();
        if (this.activity !== ActivityState.Active || !this.vmx.nonRoot) return;
      }
      const tf = this.flags.word & TF;
      if (this.debug.code !== 0 && !(this.flags.word & RF)) checkCodeBreakpoint(this);
      this.flags.word &= ~RF;
      const i = this.fetchDecoded(cs);
      ev.blockingBefore = this.blocking;
      this.blocking = 0;
      if (i.entry.exit === undefined || !nonRootInstruction(this, i)) i.exec(this, i);
      this.eip = this.nextEip;
      this.instructionsRetired++;
      const singleStep = tf !== 0 && (this.blocking & BLOCKING_MOV_SS) === 0;
      if (mtf) {
        const bits =
          singleStep || this.debug.hits !== 0 ? this.debug.hits | (singleStep ? DR6_BS : 0) : 0;
        this.debug.hits = 0;
        monitorTrap(this, bits);
      }
      if (singleStep || this.debug.hits !== 0) this.debugTrap(singleStep);
    }
  }

  /**
   * The decoded instruction at CS:EIP, from the code cache when its bytes were decoded
   * before in the same code-segment size; otherwise decoded now and cached when it lies
   * within one RAM page. Sets nextEip.
   */
  private fetchDecoded(cs: SegReg): Instr {
    const eip = this.eip;
    const lin = this.mode64 ? eip : (cs.base + eip) | 0;
    const page = linearPage(lin);
    if (page !== this.fetchPage) this.fetchByte(eip); // translate, check the page
    if (this.fetchPage === page) {
      const phys = this.fetchPhys + (lin & 0xfff);
      const hit = this.code.lookup(phys);
      if (
        hit !== undefined &&
        hit.big === cs.big &&
        hit.mode64 === this.mode64 &&
        (this.mode64 || (eip + hit.len - 1) >>> 0 <= cs.limit)
      ) {
        this.nextEip = this.mode64
          ? eip + hit.len
          : cs.big
            ? (eip + hit.len) >>> 0
            : (eip + hit.len) & 0xffff;
        return hit;
      }
      const i = new Instr();
      decode(this, i);
      if ((lin & 0xfff) + i.len <= 4096) this.code.insert(phys, i);
      return i;
    }
    const i = new Instr();
    decode(this, i);
    return i;
  }

  /** A page now holds cached code: its writes must take the checked path, in every TLB bank. */
  private dropWritePermission(page: number): void {
    for (const b of this.tlbs.all()) b.dropPermission(page * 4096, P_WS | P_WU | P_WS_AC);
  }

  /** TF was set when the instruction began: a #DB trap follows it (SDM Vol. 3B, 18.3.1.4). */
  /** The #DB trap after an instruction: single-step (BS) and data/I/O breakpoint hits. */
  private debugTrap(singleStep: boolean): void {
    const bits = this.debug.hits | (singleStep ? DR6_BS : 0);
    this.debug.hits = 0;
    deliverException(this, new DebugException(bits), true);
  }

  // ---------------------------------------------------------------- mode bookkeeping

  /** Recomputes what depends on CPL, CR0, CR4, EFER and EFLAGS.AC/VM. */
  modeChanged(): void {
    const user = this.cpl === 3;
    const alignCheck = user && (this.cr0 & CR0_AM) !== 0 && (this.flags.word & AC) !== 0;
    // With EFLAGS.AC, supervisor accesses may also use user pages under SMAP (mmu.ts).
    const ac = (this.flags.word & AC) !== 0;
    // Alignment checks and armed data breakpoints need every access on the checked path.
    const slow = alignCheck || this.debug.data !== 0;
    this.needRead = slow ? P_NEVER : user ? P_RU : ac ? P_RS | P_RS_AC : P_RS;
    this.needWrite = slow ? P_NEVER : user ? P_WU : ac ? P_WS | P_WS_AC : P_WS;
    this.needExec = user ? P_XU : P_XS;
    this.fetchPage = -1;
    // 64-bit mode: IA-32e mode with a 64-bit code segment (SDM Vol. 3A, 2.2.1).
    this.mode64 = (this.msr.efer & EFER_LMA) !== 0 && (this.segs[CS].ar & AR_L) !== 0;
  }

  /**
   * base + offset as a linear address for implicit system accesses (descriptor tables,
   * TSS, IDT): 32-bit wraparound in legacy modes, folded 48 bits in IA-32e mode.
   */
  linear(base: number, offset: number): number {
    if (!(this.msr.efer & EFER_LMA)) return (base + offset) | 0;
    return ((base < 0 ? base + 0x100000000 : base) + offset) % 2 ** 48;
  }

  /** IA-32e mode is active (EFER.LMA). */
  get longMode(): boolean {
    return (this.msr.efer & EFER_LMA) !== 0;
  }

  get protectedMode(): boolean {
    return (this.cr0 & CR0_PE) !== 0;
  }
  get v86(): boolean {
    return (this.flags.word & VM) !== 0;
  }
  get paging(): boolean {
    return (this.cr0 & CR0_PG) !== 0;
  }

  /** Empties the TLB; global entries survive unless `global` (SDM Vol. 3A, 4.10.4). */
  flushTlb(global: boolean): void {
    this.tlbs.current.flush(global);
    this.fetchPage = -1;
  }

  /** INVLPG: drops the translation of one linear page. */
  flushTlbPage(lin: number): void {
    this.tlbs.current.flushPage(lin);
    this.fetchPage = -1;
  }

  /** Makes `bank` the TLB in use (VM entries and exits, INVEPT and INVVPID: vmx/tlb.ts). */
  useTlb(bank: TlbBank): void {
    this.tlbs.current = bank;
    this.tlbTag = bank.tag;
    this.tlbPhys = bank.phys;
    this.tlbPerm = bank.perm;
    this.fetchPage = -1;
  }

  // ---------------------------------------------------------------- memory: linear

  /** Reads `size` bytes at linear address `lin` with the current CPL's permissions. */
  rd(lin: number, size: 1 | 2 | 4): number {
    const page = linearPage(lin);
    const i = page & (TLB_SIZE - 1);
    if (this.tlbTag[i] === page && (this.tlbPerm[i] & this.needRead) !== 0) {
      const off = lin & 0xfff;
      if (off <= 4096 - size) {
        const p = this.tlbPhys[i] + off;
        if ((this.tlbPerm[i] & P_RAM) !== 0) {
          return size === 4
            ? this.ramView.getInt32(p, true)
            : size === 1
              ? this.ram[p]
              : this.ramView.getUint16(p, true);
        }
        return size === 4 ? this.mem.read(p, 4) | 0 : this.mem.read(p, size);
      }
    }
    return this.rdSlow(lin, size, this.cpl === 3 ? PFEC_U : 0);
  }

  /** Writes `size` bytes at linear address `lin` with the current CPL's permissions. */
  wr(lin: number, size: 1 | 2 | 4, v: number): void {
    const page = linearPage(lin);
    const i = page & (TLB_SIZE - 1);
    if (this.tlbTag[i] === page && (this.tlbPerm[i] & this.needWrite) !== 0) {
      const off = lin & 0xfff;
      if (off <= 4096 - size) {
        const p = this.tlbPhys[i] + off;
        if ((this.tlbPerm[i] & P_RAM) !== 0) {
          if (size === 4) this.ramView.setInt32(p, v, true);
          else if (size === 1) this.ram[p] = v;
          else this.ramView.setUint16(p, v, true);
        } else this.mem.write(p, size, v);
        return;
      }
    }
    this.wrSlow(lin, size, v, this.cpl === 3 ? PFEC_U : 0);
  }

  /** Reads for a read-modify-write: the access is checked as a write (SDM Vol. 3A, 4.6). */
  rdw(lin: number, size: 1 | 2 | 4): number {
    const page = linearPage(lin);
    const i = page & (TLB_SIZE - 1);
    if (
      this.tlbTag[i] !== page ||
      (this.tlbPerm[i] & this.needWrite) === 0 ||
      (lin & 0xfff) > 4096 - size
    ) {
      this.alignCheck(lin, size, this.cpl === 3 ? PFEC_U : 0);
      this.probeWrite(lin, size);
    }
    return this.rd(lin, size);
  }

  /** Implicit supervisor reads (descriptor tables, IDT, TSS): CPL does not matter. */
  rdSys(lin: number, size: 1 | 2 | 4): number {
    return this.rdSlow(lin, size, ACC_IMPLICIT);
  }
  wrSys(lin: number, size: 1 | 2 | 4, v: number): void {
    this.wrSlow(lin, size, v, ACC_IMPLICIT);
  }

  private alignCheck(lin: number, size: number, user: number): void {
    if (
      (user & PFEC_U) !== 0 &&
      (lin & (size - 1)) !== 0 &&
      (this.cr0 & CR0_AM) !== 0 &&
      (this.flags.word & AC) !== 0
    ) {
      fault(AC_VEC, 0);
    }
  }

  private rdSlow(lin: number, size: 1 | 2 | 4, user: number): number {
    this.alignCheck(lin, size, user);
    if (this.debug.data !== 0) this.debug.dataAccess(this, lin, size, false);
    if ((lin & 0xfff) > 4096 - size) {
      // Crosses a page boundary: each byte through its own translation.
      let v = 0;
      for (let k = 0; k < size; k++)
        v |= this.mem.read(translate(this, lin + k, user), 1) << (8 * k);
      return size === 4 ? v | 0 : v;
    }
    const p = translate(this, lin, user);
    return size === 4 ? this.mem.read(p, 4) | 0 : this.mem.read(p, size);
  }

  private wrSlow(lin: number, size: 1 | 2 | 4, v: number, user: number): void {
    this.alignCheck(lin, size, user);
    if (this.debug.data !== 0) this.debug.dataAccess(this, lin, size, true);
    if ((lin & 0xfff) > 4096 - size) {
      // Translate both pages before writing anything, so a fault leaves memory unchanged.
      const p0 = translate(this, lin, user | PFEC_W);
      const p1 = translate(this, (lin + size - 1) | 0, user | PFEC_W);
      for (let k = 0; k < size; k++) {
        const a = lin + k;
        const p = ((a ^ lin) & ~0xfff) === 0 ? p0 + k : p1 - (size - 1 - k);
        this.mem.write(p, 1, (v >>> (8 * k)) & 0xff);
      }
      return;
    }
    this.mem.write(translate(this, lin, user | PFEC_W), size, v);
  }

  /** Checks that [lin, lin+size) is writable now, so a later write cannot fault. */
  probeWrite(lin: number, size: number): void {
    const user = this.cpl === 3 ? PFEC_U : 0;
    translate(this, lin, user | PFEC_W);
    if ((lin & 0xfff) > 4096 - size) translate(this, (lin + size - 1) | 0, user | PFEC_W);
  }

  // ---------------------------------------------------------------- instruction fetch

  /** Fetches the instruction byte at CS:offset (offset already limit-checked by decode). */
  fetchByte(offset: number): number {
    const lin = this.mode64 ? offset : (this.segs[CS].base + offset) | 0;
    const page = linearPage(lin);
    if (page === this.fetchPage) return this.ram[this.fetchPhys + (lin & 0xfff)];
    const user = this.cpl === 3 ? PFEC_U : 0;
    const p = translate(this, lin, user | PFEC_I);
    if (p < 0x100000000 && this.mem.pageKind[Math.floor(p / 4096)] === PageKind.Ram) {
      this.fetchPage = page;
      this.fetchPhys = p - (lin & 0xfff);
      return this.ram[p];
    }
    return this.mem.read(p, 1);
  }

  // ---------------------------------------------------------------- ports

  /** Port input after the privilege checks of IN/INS (exec/io.ts). */
  portIn(port: number, size: 1 | 2 | 4): number {
    if (this.debug.io !== 0) this.debug.ioAccess(this, port, size);
    const v = this.io.read(port & 0xffff, size);
    return size === 4 ? v | 0 : v;
  }
  portOut(port: number, size: 1 | 2 | 4, v: number): void {
    if (this.debug.io !== 0) this.debug.ioAccess(this, port, size);
    this.io.write(port & 0xffff, size, size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff));
  }

  // ---------------------------------------------------------------- reporting

  describeState(): string {
    const h = (v: number, w = 8): string => (v >>> 0).toString(16).padStart(w, "0");
    const lines: string[] = [];
    if (this.longMode) {
      const names = ["RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI"];
      const r = Array.from(
        { length: 16 },
        (_, k) => `${names[k] ?? `R${k}`.padEnd(3)}=${h(this.regsHi[k])}${h(this.regs[k])}`,
      );
      for (let k = 0; k < 16; k += 4) lines.push(r.slice(k, k + 4).join(" "));
      const rip = Math.floor(this.eip / 0x100000000);
      lines.push(
        `RIP=${h((rip << 16) >> 16)}${h(this.eip % 0x100000000)} RFLAGS=${h(this.flags.get())} ` +
          `CPL=${this.cpl} ${this.mode64 ? "64-bit" : "compatibility"} mode`,
      );
      return this.describeSystem(lines, h);
    }
    const r = REG32_NAMES.map((n, k) => `${n.toUpperCase()}=${h(this.regs[k])}`);
    lines.push(r.slice(0, 4).join(" "), r.slice(4).join(" "));
    lines.push(`EIP=${h(this.eip)} EFLAGS=${h(this.flags.get())} CPL=${this.cpl}`);
    return this.describeSystem(lines, h);
  }

  /** The segment, descriptor-table, control and debug registers and the current instruction. */
  private describeSystem(lines: string[], h: (v: number, w?: number) => string): string {
    for (let s = 0; s < 6; s++) {
      const g = this.segs[s];
      lines.push(
        `${SEG_NAMES[s].toUpperCase()}=${h(g.selector, 4)} base=${h(g.base)} ` +
          `limit=${h(g.limit)} ar=${h(g.ar, 5)}`,
      );
    }
    lines.push(
      `LDTR=${h(this.ldtr.selector, 4)} TR=${h(this.tr.selector, 4)} base=${h(this.tr.base)}`,
    );
    lines.push(
      `GDT=${h(this.gdtrBase)}/${h(this.gdtrLimit, 4)} IDT=${h(this.idtrBase)}/${h(this.idtrLimit, 4)}`,
    );
    lines.push(`CR0=${h(this.cr0)} CR2=${h(this.cr2)} CR3=${h(this.cr3)} CR4=${h(this.cr4)}`);
    lines.push(`EFER=${h(this.msr.efer)} DR6=${h(this.dr[6])} DR7=${h(this.dr[7])}`);
    try {
      lines.push(`code: ${disassemble(this, this.eip)}`);
    } catch {
      lines.push("code: <unreadable>");
    }
    return lines.join("\n");
  }

  /** #GP(0) helper for instruction code. */
  gp0(): never {
    return fault(GP, 0);
  }
}
