/**
 * A KVM vCPU behind SHV's Vcpu contract. KVM_RUN happens on the vCPU's own thread
 * (thread.ts, worker.ts); everything else happens here, on the main thread, while that
 * thread is idle: exits are decoded and handled (exits.ts), interrupts, NMIs, INIT and
 * SIPI from SHV's interrupt controllers are injected, and state is read and written.
 *
 * There is no in-kernel irqchip (ARCHITECTURE.md explains why), so KVM hands HLT to user
 * space and SHV injects interrupts itself (api.rst 4.16 KVM_INTERRUPT, 4.61 KVM_NMI, and 5:
 * request_interrupt_window, ready_for_interrupt_injection, if_flag).
 */
import { ActivityState } from "../engine.js";
import type { CpuHost, InterruptLines, MultibootEntry, Vcpu, VcpuExit } from "../engine.js";
import { KVM_SYSTEM_EVENT, kvm_interrupt, kvm_run } from "./abi.js";
import { encodeCpuid2, filterCpuid } from "./cpuid.js";
import { IA32_TSC_DEADLINE, decodeExit, describeFatalExit, performAccess } from "./exits.js";
import type { KvmRunner } from "./runner.js";
import { VcpuState, flatSegment, type Regs, type Sregs, type StateSnapshot } from "./state.js";
import { PROT_READ, PROT_WRITE, MAP_SHARED } from "./sys.js";
import { VcpuThread } from "./thread.js";

const R = kvm_run.fields;
/** CR0.PE and CR0.ET: protected mode, as the multiboot entry state has it. */
const CR0_PE = 1n;
const CR0_ET = 1n << 4n;
/** EFER.LMA: long mode active. */
const EFER_LMA = 1n << 10n;
/** The time-stamp counter MSR (SDM Vol. 3B, 18.17). */
const IA32_TIME_STAMP_COUNTER = 0x10;
/** EFLAGS bit 1 is always set. */
const EFLAGS_FIXED = 2n;
/** Most completion round trips a string I/O instruction may need (4 KiB per exit). */
const MAX_COMPLETIONS = 1 << 16;

export class KvmVcpu implements Vcpu {
  activity: ActivityState = ActivityState.Active;
  /** The thread is in KVM_RUN. */
  running = false;
  /** Why the vCPU is parked, for run() to report; null when it can run on. */
  outcome: VcpuExit | null = null;
  stopRequested = false;
  /** Something may have arrived on the interrupt inputs: look before the next KVM_RUN. */
  eventsPending = true;

  readonly thread: VcpuThread;
  readonly state: VcpuState;
  /** The vCPU's kvm_run page(s), mapped from its fd: shared with KVM, read in place. */
  readonly page: DataView;
  readonly pageAddr: bigint;
  private readonly initial: StateSnapshot;
  private lines: InterruptLines | null = null;
  private nmiPending = false;
  private initPending = false;
  private sipiVector = -1;
  /** The last exit was an access that completes on the next KVM_RUN. */
  private needsCompletion = false;
  /** Nanoseconds spent in KVM_RUN so far, and when the running KVM_RUN started. */
  private ranNs = 0;
  private runStartNs = 0;
  private apicBase: bigint;
  /** The guest TSC's frequency (KVM_GET_TSC_KHZ), once asked. */
  private tscKhz: number | undefined;

  constructor(
    private readonly runner: KvmRunner,
    readonly host: CpuHost,
    readonly id: number,
    readonly fd: number,
  ) {
    const { libc } = runner.vm.kvm;
    this.state = new VcpuState(libc, fd);
    const size = runner.vm.kvm.vcpuMmapSize;
    this.pageAddr = libc.mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    this.page = new DataView(libc.view(this.pageAddr, size));
    const cpuid = filterCpuid(runner.vm.kvm.supportedCpuid, {
      vcpuId: id,
      apic: host.apic !== undefined,
    });
    this.state.ioctl("SET_CPUID2", encodeCpuid2(cpuid));
    // KVM creates the vCPU in its RESET state (SDM Vol. 3A, 10.1.1); keep it for reset().
    this.initial = this.state.snapshot();
    this.apicBase = this.state.getSregs().apicBase;
    this.thread = new VcpuThread(libc, id, fd, runner.doorbell.buffer as SharedArrayBuffer);
    this.reset();
  }

  // ---------------------------------------------------------------- Vcpu contract

  /**
   * KVM cannot count retired instructions: this counts nominal ones from the time the vCPU
   * has spent in KVM_RUN (runner.ts, NOMINAL_NS_PER_INSTRUCTION), live while it runs.
   */
  get instructionsRetired(): number {
    const ns = this.ranNs + (this.running ? nowNs() - this.runStartNs : 0);
    return Math.floor(ns / this.runner.nsPerInstruction);
  }

  attachInterrupts(lines: InterruptLines): void {
    this.lines = lines;
    this.kick();
  }

  /**
   * The inputs changed. A vCPU in KVM_RUN is taken out of it only if an interrupt is now
   * pending: a kick costs an exit, and the lines change more often than they raise one.
   */
  kick(): void {
    this.eventsPending = true;
    if (this.lines === null || this.lines.hasInterrupt()) this.interruptRun();
  }

  nmi(): void {
    this.nmiPending = this.eventsPending = true;
    this.interruptRun();
  }

  init(): void {
    this.initPending = this.eventsPending = true;
    this.interruptRun();
  }

  sipi(vector: number): void {
    this.sipiVector = vector & 0xff;
    this.eventsPending = true;
    this.interruptRun();
  }

  /** Makes a running KVM_RUN return, so that the next one starts with the events taken. */
  private interruptRun(): void {
    if (this.running && !this.thread.done) this.thread.kick();
  }

  /** Ends the running slice (the vCPU itself runs on: see KvmRunner.slice). */
  requestStop(): void {
    this.stopRequested = true;
  }

  run(budget: number): VcpuExit | Promise<VcpuExit> {
    return this.runner.run(this, budget);
  }

  /** Power-on state: KVM's RESET state, kept from when the vCPU was created. */
  reset(): void {
    this.pause();
    this.state.restore(this.initial, "reset");
    this.activity = this.id === 0 ? ActivityState.Active : ActivityState.WaitForSipi;
    this.nmiPending = this.initPending = false;
    this.sipiVector = -1;
    this.outcome = null;
    this.eventsPending = true;
    // The injection flags in kvm_run describe the state before the reset.
    this.page.setUint8(R.ready_for_interrupt_injection, 0);
    this.page.setUint8(R.request_interrupt_window, 0);
  }

  /**
   * Multiboot entry (Multiboot Specification 0.6.96, 3.2): flat 32-bit, paging off, and the
   * stack QEMU's -kernel leaves (MultibootEntry.esp).
   */
  setMultibootEntry(entry: MultibootEntry): void {
    this.reset();
    const s = this.state.getSregs();
    for (const n of ["ds", "es", "fs", "gs", "ss"] as const) s[n] = flatSegment(0x10, false);
    s.cs = flatSegment(0x08, true);
    s.cr0 = CR0_PE | CR0_ET;
    this.state.setSregs(s);
    const r = this.state.getRegs();
    for (const k of Object.keys(r) as (keyof Regs)[]) r[k] = 0n;
    r.rax = BigInt(entry.eax >>> 0);
    r.rbx = BigInt(entry.ebx >>> 0);
    r.rsp = BigInt(entry.esp >>> 0);
    r.rip = BigInt(entry.eip >>> 0);
    r.rsp = BigInt(entry.esp >>> 0);
    r.rflags = EFLAGS_FIXED;
    this.state.setRegs(r);
    this.activity = ActivityState.Active;
  }

  describeState(): string {
    this.pause();
    return describeRegisters(this.state.getRegs(), this.state.getSregs(), (lin) =>
      this.readCode(lin),
    );
  }

  // ---------------------------------------------------------------- the runner's side

  /** Takes what the inputs offer, then starts KVM_RUN or parks the vCPU with a reason. */
  resume(): void {
    this.takeEvents();
    if (this.activity !== ActivityState.Active) {
      if (this.activity !== ActivityState.Shutdown) {
        this.outcome = { kind: "halt", interruptsEnabled: this.page.getUint8(R.if_flag) !== 0 };
      }
      return;
    }
    this.outcome = null;
    this.needsCompletion = false;
    this.running = true;
    this.runStartNs = nowNs();
    this.thread.start();
  }

  /**
   * Takes the vCPU out of KVM_RUN (a kick, if it is in there) and completes the access it
   * stopped in, so that its state can be read or changed. Its exit is handled as usual;
   * it runs again at the next slice unless that parked it.
   */
  pause(): void {
    if (this.running) {
      if (!this.thread.done) this.thread.kick();
      this.thread.waitDone();
      this.finish();
    }
    this.settle();
  }

  /**
   * Handles the exit of the KVM_RUN that just returned: accesses go to the devices, and
   * HLT, shutdown and debug exits park the vCPU with the outcome run() reports. Failures
   * of KVM or of VM entry end the run with an error naming them and the registers.
   */
  finish(): void {
    this.running = false;
    this.ranNs += nowNs() - this.runStartNs;
    const exit = decodeExit(this.page, this.thread.take());
    this.noticeApicBase();
    switch (exit.kind) {
      case "io":
      case "mmio":
      case "msr":
        if (exit.kind === "msr" && exit.index === IA32_TSC_DEADLINE && this.host.tsc) {
          this.tscDeadline(exit.write);
        } else {
          this.host.select?.();
          performAccess(exit, this.page, this.host);
        }
        this.needsCompletion = true;
        return;
      case "intr":
      case "irq-window":
        this.eventsPending = true;
        return;
      case "hlt":
        this.activity = ActivityState.Hlt;
        this.eventsPending = true;
        return;
      case "shutdown":
        this.activity = ActivityState.Shutdown;
        this.outcome = { kind: "triple-fault", chain: "shutdown (KVM_EXIT_SHUTDOWN)" };
        return;
      case "system-event": {
        const names: Record<number, string> = {
          [KVM_SYSTEM_EVENT.SHUTDOWN]: "shutdown",
          [KVM_SYSTEM_EVENT.RESET]: "reset",
          [KVM_SYSTEM_EVENT.CRASH]: "crash",
        };
        this.activity = ActivityState.Shutdown;
        const what = names[exit.type] ?? `type ${exit.type}`;
        this.outcome = { kind: "triple-fault", chain: `KVM system event: ${what}` };
        return;
      }
      case "debug":
        this.outcome = { kind: "stopped" };
        return;
      default:
        throw new Error(
          `kvm: vCPU ${this.id} stopped: ${describeFatalExit(exit)}\n${this.describeState()}`,
        );
    }
  }

  /**
   * Completes an access the guest is still in the middle of, so that its state can be read
   * or changed: KVM_RUN with immediate_exit finishes the instruction and returns at once
   * without running the guest (api.rst 5, immediate_exit).
   */
  private settle(): void {
    for (let k = 0; this.needsCompletion; k++) {
      if (k === MAX_COMPLETIONS) throw new Error(`kvm: vCPU ${this.id}: I/O does not complete`);
      this.page.setUint8(R.immediate_exit, 1);
      this.thread.start();
      this.thread.waitDone();
      this.page.setUint8(R.immediate_exit, 0);
      this.needsCompletion = false;
      const exit = decodeExit(this.page, this.thread.take());
      if (exit.kind === "io" || exit.kind === "mmio" || exit.kind === "msr") {
        // A string instruction goes on with its next batch.
        this.host.select?.();
        performAccess(exit, this.page, this.host);
        this.needsCompletion = true;
      }
    }
  }

  /**
   * The inputs at an instruction boundary, in the priority order of SDM Vol. 3A, 6.9: INIT,
   * then NMI, then a maskable interrupt (as in the soft CPU). KVM blocks NMIs until IRET and
   * tells when the guest can take an interrupt (EFLAGS.IF and no STI/MOV SS shadow).
   */
  private takeEvents(): void {
    if (!this.eventsPending) return;
    this.eventsPending = false;
    if (this.initPending) {
      // INIT resets the processor but keeps x87/SSE state and the TSC; an AP then waits
      // for a startup IPI (SDM Vol. 3A, 10.4 and Table 10-1).
      this.initPending = false;
      this.settle();
      this.state.restore(this.initial, "init");
      this.activity = this.id === 0 ? ActivityState.Active : ActivityState.WaitForSipi;
      this.page.setUint8(R.ready_for_interrupt_injection, 0);
    }
    if (this.sipiVector >= 0) {
      const vector = this.sipiVector;
      this.sipiVector = -1;
      if (this.activity === ActivityState.WaitForSipi) this.startup(vector);
    }
    if (this.activity === ActivityState.WaitForSipi || this.activity === ActivityState.Shutdown) {
      return;
    }
    if (this.nmiPending) {
      this.nmiPending = false;
      this.state.ioctl("NMI", null);
      this.activity = ActivityState.Active;
    }
    const lines = this.lines;
    if (lines !== null && lines.hasInterrupt()) {
      // Look again at every boundary until the lines are quiet (another may be waiting).
      this.eventsPending = true;
      const ready =
        this.page.getUint8(R.ready_for_interrupt_injection) !== 0 &&
        this.page.getUint8(R.if_flag) !== 0;
      if (ready) {
        const irq = new Uint8Array(kvm_interrupt.size);
        new DataView(irq.buffer).setUint32(kvm_interrupt.fields.irq, lines.acknowledge(), true);
        this.state.ioctl("INTERRUPT", irq);
        this.page.setUint8(R.ready_for_interrupt_injection, 0);
        this.page.setUint8(R.request_interrupt_window, 0);
        this.activity = ActivityState.Active;
      } else if (this.activity === ActivityState.Active) {
        // Exit with KVM_EXIT_IRQ_WINDOW_OPEN as soon as the guest can take it.
        this.page.setUint8(R.request_interrupt_window, 1);
      }
    } else {
      this.page.setUint8(R.request_interrupt_window, 0);
    }
  }

  /** A startup IPI: real mode at vector * 4096, CS = vector << 8 (SDM Vol. 3A, 10.4.4.1). */
  private startup(vector: number): void {
    this.settle();
    const s = this.state.getSregs();
    s.cs = { ...s.cs, selector: vector << 8, base: BigInt(vector << 12), limit: 0xffff };
    this.state.setSregs(s);
    const r = this.state.getRegs();
    r.rip = 0n;
    this.state.setRegs(r);
    this.activity = ActivityState.Active;
  }

  /**
   * IA32_TSC_DEADLINE between two time bases: the guest's TSC is the host's (KVM's, at
   * KVM_GET_TSC_KHZ), SHV's APIC counts on the machine's clock (CpuHost.tsc, 1 GHz). A
   * deadline is passed on as the same distance from now (0 stays 0: the timer disarmed).
   */
  private tscDeadline(write: boolean): void {
    const data = R["msr.data"];
    const khz = (this.tscKhz ??= this.state.ioctlValue("GET_TSC_KHZ"));
    const guestNow = this.state.getMsr(IA32_TIME_STAMP_COUNTER);
    const machineNow = this.host.tsc!();
    const exit = { kind: "msr", write, index: IA32_TSC_DEADLINE, reason: 0 } as const;
    this.host.select?.();
    if (write) {
      const d = Number(this.page.getBigUint64(data, true));
      const v = d === 0 ? 0 : Math.max(1, machineNow + ((d - guestNow) * 1e6) / khz);
      this.page.setBigUint64(data, BigInt(Math.round(v)), true);
      performAccess(exit, this.page, this.host);
    } else {
      performAccess(exit, this.page, this.host);
      const v = Number(this.page.getBigUint64(data, true));
      const d = v === 0 ? 0 : Math.max(1, guestNow + ((v - machineNow) * khz) / 1e6);
      this.page.setBigUint64(data, BigInt(Math.round(d)), true);
    }
  }

  /** Passes a guest write of IA32_APIC_BASE, which KVM keeps, on to SHV's local APIC. */
  private noticeApicBase(): void {
    const base = this.page.getBigUint64(R.apic_base, true);
    if (base === this.apicBase) return;
    this.apicBase = base;
    this.host.apic?.setApicBase(Number(base & 0xffffffffn) >>> 0, Number(base >> 32n) >>> 0);
  }

  /** Up to 16 bytes of guest code at a linear address, through the guest's page tables. */
  private readCode(linear: bigint): Uint8Array | null {
    const phys = this.state.translate(linear);
    if (phys === null || phys >= BigInt(this.host.mem.ramSize)) return null;
    const p = Number(phys);
    const n = Math.min(16, 4096 - (p & 4095));
    return this.host.mem.isRam(p, n) ? this.host.mem.ram.slice(p, p + n) : null;
  }
}

function nowNs(): number {
  return performance.now() * 1e6;
}

/** The same register dump as the soft engine's, from KVM's view of the vCPU. */
export function describeRegisters(
  r: Regs,
  s: Sregs,
  readCode: (linear: bigint) => Uint8Array | null,
): string {
  const long = (s.efer & EFER_LMA) !== 0n;
  const h = (v: bigint | number, w = 8) =>
    BigInt.asUintN(w * 4, BigInt(v))
      .toString(16)
      .padStart(w, "0");
  const lines: string[] = [];
  if (long) {
    const names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] as const;
    const all = [...names, "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"] as const;
    for (let k = 0; k < all.length; k += 4) {
      lines.push(
        all
          .slice(k, k + 4)
          .map((n) => `${n.toUpperCase()}=${h(r[n], 16)}`)
          .join(" "),
      );
    }
    lines.push(`RIP=${h(r.rip, 16)} RFLAGS=${h(r.rflags)} CPL=${s.cs.dpl}`);
  } else {
    const names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] as const;
    const e = names.map((n) => `E${n.slice(1).toUpperCase()}=${h(r[n])}`);
    lines.push(e.slice(0, 4).join(" "), e.slice(4).join(" "));
    lines.push(`EIP=${h(r.rip)} EFLAGS=${h(r.rflags)} CPL=${s.cs.dpl}`);
  }
  for (const n of ["es", "cs", "ss", "ds", "fs", "gs"] as const) {
    const g = s[n];
    // Access rights in the VMCS format (SDM Vol. 3C, 25.4.1, Table 25-2), as the soft CPU.
    const ar =
      g.type |
      (Number(g.s) << 4) |
      (g.dpl << 5) |
      (Number(g.present) << 7) |
      (Number(g.l) << 13) |
      (Number(g.db) << 14) |
      (Number(g.g) << 15) |
      (Number(g.unusable) << 16);
    lines.push(
      `${n.toUpperCase()}=${h(g.selector, 4)} base=${h(g.base, long ? 16 : 8)} limit=${h(g.limit)} ar=${h(ar, 5)}`,
    );
  }
  lines.push(`LDTR=${h(s.ldt.selector, 4)} TR=${h(s.tr.selector, 4)} base=${h(s.tr.base)}`);
  lines.push(`GDT=${h(s.gdt.base)}/${h(s.gdt.limit, 4)} IDT=${h(s.idt.base)}/${h(s.idt.limit, 4)}`);
  lines.push(`CR0=${h(s.cr0)} CR2=${h(s.cr2)} CR3=${h(s.cr3)} CR4=${h(s.cr4)}`);
  lines.push(`EFER=${h(s.efer)}`);
  const linear = long && !s.cs.l ? (s.cs.base + r.rip) & 0xffffffffn : s.cs.base + r.rip;
  const code = readCode(long ? linear : linear & 0xffffffffn);
  lines.push(
    code === null
      ? "code: <unreadable>"
      : `code: ${Array.from(code, (b) => b.toString(16).padStart(2, "0")).join(" ")}`,
  );
  return lines.join("\n");
}

/** The vCPU's thread ends with the machine; exported for the runner. */
export function closeVcpu(v: KvmVcpu): void {
  v.thread.close();
  v.state.libc.munmap(v.pageAddr, v.page.byteLength);
  v.state.libc.close(v.fd);
}
