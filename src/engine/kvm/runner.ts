/**
 * The run loop of a KVM machine, on the main thread. Every vCPU runs on its own thread;
 * during a slice the main thread handles the exits of all of them (the device model is
 * single-threaded, like QEMU's devices under its global lock), whichever vCPU the slice
 * is for: the machine's scheduler calls run() for each vCPU in turn, and all of them run
 * at the same time.
 */
import type { CpuHost, VcpuExit } from "../engine.js";
import { PageKind, PAGE_SHIFT, type PhysicalMemory } from "../../machine/memory.js";
import { UserError } from "../../errors.js";
import {
  KVM,
  KVM_CAP,
  KVM_MSR_EXIT_REASON_FILTER,
  KVM_MSR_EXIT_REASON_INVAL,
  KVM_MSR_FILTER_DEFAULT_ALLOW,
  KVM_MSR_FILTER_READ,
  KVM_MSR_FILTER_WRITE,
  kvm_enable_cap,
  kvm_msr_filter,
  kvm_msr_filter_range,
} from "./abi.js";
import { IA32_TSC_DEADLINE } from "./exits.js";
import { KvmVm, ramRuns } from "./system.js";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, errnoName } from "./sys.js";
import { waitWhile } from "./thread.js";
import { KvmVcpu, closeVcpu } from "./vcpu.js";

/**
 * KVM cannot count instructions, so the engine counts nominal ones: one per 10 ns of run
 * time, the machine's default speed (100 MIPS), times the number of vCPUs. The machine's
 * clock shares each round of slices among the vCPUs as if they ran one after the other;
 * on KVM they run at the same time, and with this count the clock follows the wall clock.
 */
const NOMINAL_NS_PER_INSTRUCTION = 10;

/** Spin for the next exit only within this long of the last one. */
const SPIN_WINDOW_MS = 0.2;

/** Machines whose vCPU threads may be in KVM_RUN, for the kick at process exit. */
const live = new Set<KvmRunner>();
let exitHook = false;

export class KvmRunner {
  readonly vcpus: KvmVcpu[] = [];
  /** Rung by every vCPU thread when its KVM_RUN returns (thread.ts). */
  readonly doorbell = new Int32Array(new SharedArrayBuffer(4));
  private prepared = false;
  /** When the last exit was handled (performance.now()). */
  private lastExit = -Infinity;

  constructor(
    readonly vm: KvmVm,
    private readonly mem: PhysicalMemory,
  ) {
    live.add(this);
    if (!exitHook) {
      // Node joins worker threads at exit; one inside KVM_RUN would never return.
      process.once("exit", () => live.forEach((r) => r.kickAll()));
      exitHook = true;
    }
  }

  /** Wall-clock nanoseconds of run time per counted instruction (see above). */
  get nsPerInstruction(): number {
    return NOMINAL_NS_PER_INSTRUCTION / this.vcpus.length;
  }

  addVcpu(host: CpuHost, id: number): KvmVcpu {
    if (this.prepared) throw new Error("kvm: vCPUs must be created before the machine runs");
    const vcpu = new KvmVcpu(this, host, id, this.vm.createVcpuFd(id));
    this.vcpus.push(vcpu);
    return vcpu;
  }

  run(self: KvmVcpu, budget: number): VcpuExit | Promise<VcpuExit> {
    if (!this.prepared) return this.prepare().then(() => this.slice(self, budget));
    return this.slice(self, budget);
  }

  /**
   * Before the first slice: the memory slots follow the machine's memory map as it is now
   * (RAM pages only: MMIO pages must exit), the APIC MSRs are routed to user space when the
   * machine has local APICs, and every vCPU thread has started.
   */
  private async prepare(): Promise<void> {
    this.vm.setRamRuns(ramRuns(this.mem.pageKind, this.mem.ramSize >>> PAGE_SHIFT, PageKind.Ram));
    if (this.vcpus.some((v) => v.host.apic !== undefined)) this.routeApicMsrs();
    await Promise.all(this.vcpus.map((v) => v.thread.ready()));
    this.prepared = true;
  }

  /**
   * One slice: every vCPU that can run is in KVM_RUN on its thread, and this thread handles
   * their exits as they come, until `budget` instructions' worth of time is up, a stop is
   * requested or `self` parks. The vCPUs run on between slices (an exit then waits for the
   * next slice); a vCPU is kicked out of KVM_RUN only to take an event or to change its
   * state. Returns how `self` stands: parked (halt, triple fault, stopped) or "budget".
   */
  private slice(self: KvmVcpu, budget: number): VcpuExit {
    const deadline = performance.now() + (budget * this.nsPerInstruction) / 1e6;
    for (const v of this.vcpus) v.stopRequested = false;
    for (const v of this.vcpus) {
      if (!v.running && (v.outcome === null || v.eventsPending)) v.resume();
    }
    for (;;) {
      const bell = Atomics.load(this.doorbell, 0);
      const stopping = this.vcpus.some((v) => v.stopRequested);
      let running = false;
      for (const v of this.vcpus) {
        if (v.running && v.thread.done) {
          v.finish();
          this.lastExit = performance.now();
          if (v.outcome === null && !stopping) v.resume();
        } else if (!v.running && v.eventsPending && !stopping) {
          v.resume(); // woken by an interrupt, NMI, INIT or SIPI
        }
        running ||= v.running;
      }
      if (self.outcome !== null || !running || this.vcpus.some((v) => v.stopRequested)) break;
      const left = deadline - performance.now();
      if (left <= 0) break;
      // Spin only while exits come thick and fast (the next may be microseconds away): a
      // guest that computes keeps the host CPU to itself.
      waitWhile(this.doorbell, 0, bell, left, performance.now() - this.lastExit < SPIN_WINDOW_MS);
    }
    const outcome = self.outcome;
    if (outcome?.kind === "stopped") self.outcome = null;
    return outcome ?? { kind: self.stopRequested ? "stopped" : "budget" };
  }

  /** Kicks every vCPU thread out of KVM_RUN (process exit). */
  private kickAll(): void {
    for (const v of this.vcpus) if (v.running && !v.thread.done) v.thread.kick();
  }

  /**
   * The local APIC is SHV's (CpuHost.apic), not KVM's, so its MSRs must reach user space:
   * x2APIC registers fail in KVM without an in-kernel APIC (KVM_MSR_EXIT_REASON_INVAL),
   * and IA32_TSC_DEADLINE, which KVM would silently accept, is filtered (api.rst 7.21
   * KVM_CAP_X86_USER_SPACE_MSR, 4.126 KVM_X86_SET_MSR_FILTER).
   */
  private routeApicMsrs(): void {
    const { kvm } = this.vm;
    for (const cap of [KVM_CAP.X86_USER_SPACE_MSR, KVM_CAP.X86_MSR_FILTER]) {
      if (kvm.checkExtension(cap) <= 0) {
        throw new UserError(
          "the host's KVM is too old for SHV's local APIC: it lacks KVM_CAP_X86_USER_SPACE_MSR " +
            "or KVM_CAP_X86_MSR_FILTER (Linux 5.10); use --engine soft",
        );
      }
    }
    const enable = new Uint8Array(kvm_enable_cap.size);
    const ev = new DataView(enable.buffer);
    ev.setUint32(kvm_enable_cap.fields.cap, KVM_CAP.X86_USER_SPACE_MSR, true);
    ev.setBigUint64(
      kvm_enable_cap.fields.args,
      BigInt(KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_FILTER),
      true,
    );
    this.vmIoctl("ENABLE_CAP", enable);

    // One range, one MSR, its bit clear: reads and writes of IA32_TSC_DEADLINE are denied.
    // The range points at its bitmap by host address: a page of its own, which cannot move
    // (KVM copies the bitmap during the ioctl).
    const bitmapAddr = kvm.libc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    const filter = new Uint8Array(kvm_msr_filter.size);
    const fv = new DataView(filter.buffer);
    const range = kvm_msr_filter.fields.ranges;
    const rf = kvm_msr_filter_range.fields;
    fv.setUint32(kvm_msr_filter.fields.flags, KVM_MSR_FILTER_DEFAULT_ALLOW, true);
    fv.setUint32(range + rf.flags, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, true);
    fv.setUint32(range + rf.nmsrs, 1, true);
    fv.setUint32(range + rf.base, IA32_TSC_DEADLINE, true);
    fv.setBigUint64(range + rf.bitmap, bitmapAddr, true);
    try {
      this.vmIoctl("X86_SET_MSR_FILTER", filter);
    } finally {
      kvm.libc.munmap(bitmapAddr, 4096);
    }
  }

  private vmIoctl(name: keyof typeof KVM, arg: Uint8Array): void {
    const { libc } = this.vm.kvm;
    if (libc.ioctl(this.vm.fd, KVM[name], arg) < 0) {
      throw new Error(`KVM_${name} failed: ${errnoName(libc.errno())}`);
    }
  }

  /** Stops the vCPUs, ends their threads and closes the VM. */
  close(): void {
    for (const v of this.vcpus) v.pause();
    for (const v of this.vcpus) closeVcpu(v);
    this.vm.close();
    live.delete(this);
  }
}
