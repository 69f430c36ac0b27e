/**
 * The hardware oracle's building block (design.md, decision 8): runs a code snippet at CPL 3
 * on the host CPU through KVM, in 64-bit mode, compatibility mode or 32-bit protected
 * mode, from a given register state, and returns the architectural state it ends in or the
 * exception it raised. At CPL 3 the host executes the snippet natively even where KVM
 * emulates the guest kernel in software. ARCHITECTURE.md documents the environment.
 *
 * The snippet ends at a HLT placed right after it: HLT at CPL 3 raises #GP(0) (SDM Vol. 2A,
 * HLT), so "completed" is a #GP whose saved RIP is that HLT. Every vector's IDT gate (DPL 3,
 * so INT n reaches vector n) leads to a ring-0 stub that is just HLT, which exits to SHV
 * with the general registers exactly as the snippet left them; RIP, CS, RFLAGS, RSP and SS
 * come from the exception frame on the ring-0 stack.
 */
import { encodeCpuid2, filterCpuid } from "./cpuid.js";
import { decodeExit, describeFatalExit } from "./exits.js";
import { KvmSystem, KvmVm, mapGuestRam } from "./system.js";
import { REG_NAMES, VcpuState, type Regs, type Segment, type StateSnapshot } from "./state.js";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "./sys.js";
import { VcpuThread } from "./thread.js";

export type SnippetMode = "long64" | "compat32" | "prot32";

/** The guest-physical (and linear: identity-mapped) layout of the oracle's VM. */
export const ORACLE_LAYOUT = {
  gdt: 0x1000,
  idt64: 0x2000,
  idt32: 0x3000,
  tss64: 0x4000,
  tss32: 0x4100,
  /** One 4-byte stub per vector: HLT, then a jump back to it. */
  stubs: 0x5000,
  pml4: 0x8000,
  pdpt: 0x9000,
  pd: 0xa000,
  /** The ring-0 stack grows down from here (TSS RSP0/ESP0). */
  kernelStackTop: 0x1f000,
  /** Everything from here to `userEnd` is user memory (a 2 MiB user page when paging). */
  userBase: 0x200000,
  /** The snippet starts here. */
  code: 0x200000,
  /** `data` is loaded here; the result returns this region. */
  data: 0x300000,
  dataSize: 0x80000,
  /** The default RSP/ESP: the top of the user region's stack area. */
  stackTop: 0x3ff000,
  userEnd: 0x400000,
} as const;

/** The VM's RAM; buildTables, userSregs and readFrame are engine-independent too. */
export const RAM_BYTES = 0x400000;
const MAX_CODE = ORACLE_LAYOUT.data - ORACLE_LAYOUT.code - 1;
const HLT = 0xf4;
const GP = 13;
/** Vectors that push an error code (SDM Vol. 3A, 6.3.1, Table 6-1). */
export const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

/** GDT selectors (RPL included where the selector is loaded at CPL 3). */
const SEL = {
  kernelCode64: 0x08,
  kernelData: 0x10,
  userCode32: 0x1b,
  userData: 0x23,
  userCode64: 0x2b,
  kernelCode32: 0x30,
  tss64: 0x38,
  tss32: 0x48,
} as const;

export interface SnippetInput {
  mode: SnippetMode;
  /** Machine code, placed at ORACLE_LAYOUT.code; it must fall through to its end. */
  code: Uint8Array;
  /**
   * Initial general registers and RFLAGS (all zero by default; RFLAGS 0x202). RIP and RSP
   * default to ORACLE_LAYOUT.code and ORACLE_LAYOUT.stackTop. In 32-bit modes only the low
   * halves matter.
   */
  regs?: Partial<Regs>;
  /** Bytes placed at ORACLE_LAYOUT.data (the rest of the data region is zero). */
  data?: Uint8Array;
  /** Wall-clock limit for the snippet (default 1000 ms). */
  timeoutMs?: number;
}

/** Every register zero. */
export function zeroRegs(): Regs {
  return Object.fromEntries(REG_NAMES.map((n) => [n, 0n])) as Regs;
}

/** A snippet's starting registers, with the defaults SnippetInput.regs describes. */
export function snippetRegs(input: SnippetInput): Regs {
  const L = ORACLE_LAYOUT;
  return {
    ...zeroRegs(),
    ...{ rip: BigInt(L.code), rsp: BigInt(L.stackTop), rflags: 0x202n },
    ...input.regs,
  };
}

export interface SnippetResult {
  /**
   * completed: the snippet ran to its end; exception: it raised `vector`; timeout: it did
   * not finish in time; exit: something else stopped it (`exit` says what, e.g. an I/O
   * instruction with IOPL 3, or a KVM failure).
   */
  outcome: "completed" | "exception" | "timeout" | "exit";
  vector?: number;
  errorCode?: number;
  /** The registers at the end; for an exception RIP/RSP/RFLAGS as the processor saved them. */
  regs: Regs;
  cs: number;
  ss: number;
  /** CR2: the faulting linear address after a #PF. */
  cr2: bigint;
  /** The data region after the run. */
  data: Uint8Array;
  exit?: string;
}

/** One VM with one vCPU, set up once and reused for every snippet. */
export class KvmOracle {
  private readonly ram: Uint8Array;
  private readonly state: VcpuState;
  private readonly page: DataView;
  private readonly pageAddr: bigint;
  private readonly reset: StateSnapshot;

  private constructor(
    private readonly vm: KvmVm,
    private readonly fd: number,
    private readonly thread: VcpuThread,
  ) {
    const { libc } = vm.kvm;
    this.ram = vm.ram;
    this.state = new VcpuState(libc, fd);
    const cpuid = filterCpuid(vm.kvm.supportedCpuid, { vcpuId: 0, apic: false });
    this.state.ioctl("SET_CPUID2", encodeCpuid2(cpuid));
    this.reset = this.state.snapshot();
    const size = vm.kvm.vcpuMmapSize;
    this.pageAddr = libc.mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    this.page = new DataView(libc.view(this.pageAddr, size));
    buildTables(this.ram);
  }

  /** Creates the VM; throws a UserError when /dev/kvm cannot be used (see KvmSystem). */
  static async create(): Promise<KvmOracle> {
    const kvm = KvmSystem.open();
    const vm = new KvmVm(kvm, mapGuestRam(RAM_BYTES));
    vm.setRamRuns([{ base: 0, length: RAM_BYTES }]);
    const fd = vm.createVcpuFd(0);
    const doorbell = new SharedArrayBuffer(4);
    const thread = new VcpuThread(kvm.libc, 0, fd, doorbell);
    await thread.ready();
    return new KvmOracle(vm, fd, thread);
  }

  /** Runs one snippet; see SnippetInput and SnippetResult. */
  run(input: SnippetInput): SnippetResult {
    const L = ORACLE_LAYOUT;
    if (input.code.length > MAX_CODE) throw new RangeError(`snippet longer than ${MAX_CODE} bytes`);
    if ((input.data?.length ?? 0) > L.dataSize) {
      throw new RangeError(`data longer than ${L.dataSize} bytes`);
    }
    this.ram.fill(0, L.userBase, L.userEnd);
    this.ram.set(input.code, L.code);
    this.ram[L.code + input.code.length] = HLT;
    if (input.data) this.ram.set(input.data, L.data);
    const endMarker = BigInt(L.code + input.code.length);

    this.state.restore(this.reset, "reset");
    this.state.setSregs(userSregs(this.state.getSregs(), input.mode));
    const regs = snippetRegs(input);
    this.state.setRegs(regs);

    const exit = this.runOnce(input.timeoutMs ?? 1000);
    const after = this.state.getRegs();
    const sregs = this.state.getSregs();
    const data = this.ram.slice(L.data, L.data + L.dataSize);
    const base = { cs: sregs.cs.selector, ss: sregs.ss.selector, cr2: sregs.cr2, data };
    if (exit !== null)
      return { outcome: exit === "timeout" ? "timeout" : "exit", regs: after, exit, ...base };

    // The HLT of stub `vector` exited: RIP is just past it.
    const vector = Number(after.rip - BigInt(L.stubs) - 1n) / 4;
    const frame = readFrame(this.ram, Number(after.rsp), input.mode !== "prot32", vector);
    const result: SnippetResult = {
      outcome: "exception",
      vector,
      errorCode: frame.errorCode,
      regs: { ...after, rip: frame.rip, rsp: frame.rsp, rflags: frame.rflags },
      ...base,
      cs: frame.cs,
      ss: frame.ss,
    };
    if (vector === GP && frame.errorCode === 0 && frame.rip === endMarker) {
      // The end marker. Its #GP set RFLAGS.RF in the saved image (SDM Vol. 3A, 17.3.1.1).
      return {
        outcome: "completed",
        regs: { ...result.regs, rflags: frame.rflags & ~(1n << 16n) },
        cs: frame.cs,
        ss: frame.ss,
        cr2: sregs.cr2,
        data,
      };
    }
    return result;
  }

  /** KVM_RUN until a stub's HLT; null then, else what stopped the snippet. */
  private runOnce(timeoutMs: number): string | null {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.thread.start();
      if (!this.thread.wait(deadline - performance.now())) {
        this.thread.kick();
        this.thread.waitDone();
        this.thread.take();
        return "timeout";
      }
      const exit = decodeExit(this.page, this.thread.take());
      if (exit.kind === "hlt") {
        const rip = this.state.getRegs().rip;
        const stubs = BigInt(ORACLE_LAYOUT.stubs);
        if (rip > stubs && rip <= stubs + 256n * 4n) return null;
        return `HLT at 0x${rip.toString(16)} outside the exception stubs`;
      }
      if (exit.kind === "intr") continue;
      if (exit.kind === "io") {
        return `${exit.out ? "OUT to" : "IN from"} port 0x${exit.port.toString(16)}`;
      }
      if (exit.kind === "mmio") return `MMIO access at 0x${exit.addr.toString(16)}`;
      if (exit.kind === "shutdown") return "shutdown (triple fault)";
      return describeFatalExit(exit);
    }
  }

  close(): void {
    this.thread.close();
    this.vm.kvm.libc.munmap(this.pageAddr, this.page.byteLength);
    this.vm.kvm.libc.close(this.fd);
    this.vm.close();
  }
}

/** The exception frame at `rsp` (SDM Vol. 3A, 6.14.4 for 64-bit, 6.12.1 for 32-bit). */
export function readFrame(ram: Uint8Array, rsp: number, wide: boolean, vector: number) {
  const v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const w = wide ? 8 : 4;
  const get = (k: number) =>
    wide ? v.getBigUint64(rsp + k * w, true) : BigInt(v.getUint32(rsp + k * w, true));
  const e = ERROR_CODE_VECTORS.has(vector) ? 1 : 0;
  return {
    errorCode: e ? Number(get(0) & 0xffffffffn) : undefined,
    rip: get(e),
    cs: Number(get(e + 1) & 0xffffn),
    rflags: get(e + 2),
    rsp: get(e + 3),
    ss: Number(get(e + 4) & 0xffffn),
  };
}

function segment(selector: number, code: boolean, dpl: number, long: boolean): Segment {
  return {
    base: 0n,
    limit: 0xffffffff,
    selector,
    type: code ? 0xb : 0x3,
    present: true,
    dpl,
    db: !long,
    s: true,
    l: long,
    g: true,
    unusable: false,
  };
}

/** Control and segment registers for CPL 3 in `mode` (SDM Vol. 3A, 9.8.5 for long mode). */
export function userSregs(s: ReturnType<VcpuState["getSregs"]>, mode: SnippetMode) {
  const L = ORACLE_LAYOUT;
  const long = mode !== "prot32";
  const CR0_PE = 1n,
    CR0_MP = 2n,
    CR0_ET = 0x10n,
    CR0_NE = 0x20n,
    CR0_WP = 0x10000n;
  const CR0_PG = 0x80000000n;
  const CR4_PAE = 0x20n,
    CR4_OSFXSR = 0x200n,
    CR4_OSXMMEXCPT = 0x400n;
  const EFER_LME = 0x100n,
    EFER_LMA = 0x400n,
    EFER_NXE = 0x800n;
  const data = segment(SEL.userData, false, 3, false);
  return {
    ...s,
    cs:
      mode === "long64"
        ? segment(SEL.userCode64, true, 3, true)
        : segment(SEL.userCode32, true, 3, false),
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    // A busy TSS (type 11) for the stack switch to ring 0.
    tr: {
      ...segment(long ? SEL.tss64 : SEL.tss32, false, 0, false),
      base: BigInt(long ? L.tss64 : L.tss32),
      limit: 0x67,
      type: 0xb,
      s: false,
      db: false,
      g: false,
    },
    ldt: { ...segment(0, false, 0, false), type: 2, s: false, present: false, unusable: true },
    gdt: { base: BigInt(L.gdt), limit: 0x4f },
    idt: { base: BigInt(long ? L.idt64 : L.idt32), limit: long ? 0xfff : 0x7ff },
    // 32-bit protected mode runs without paging: this host class may lack non-long-mode
    // paging, and flat segments suffice for user code.
    cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | (long ? CR0_WP | CR0_PG : 0n),
    cr2: 0n,
    cr3: long ? BigInt(L.pml4) : 0n,
    cr4: CR4_OSFXSR | CR4_OSXMMEXCPT | (long ? CR4_PAE : 0n),
    efer: long ? EFER_LME | EFER_LMA | EFER_NXE : 0n,
  };
}

/** GDT, IDTs, TSSs, stubs and page tables (SDM Vol. 3A, 3.4.5, 6.14.1, 7.2.1 and 4.5). */
export function buildTables(ram: Uint8Array): void {
  const L = ORACLE_LAYOUT;
  const v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const q = (at: number, value: bigint) => v.setBigUint64(at, value, true);
  // Code/data descriptors: limit 0xFFFFF pages, base 0; access byte, then G/D/L flags.
  const desc = (access: number, flags: number) =>
    0xffffn | (BigInt(access) << 40n) | (0xfn << 48n) | (BigInt(flags) << 52n);
  q(L.gdt + SEL.kernelCode64, desc(0x9a, 0xa)); // G, L
  q(L.gdt + SEL.kernelData, desc(0x92, 0xc)); // G, B
  q(L.gdt + (SEL.userCode32 & ~3), desc(0xfa, 0xc)); // DPL 3, G, D
  q(L.gdt + (SEL.userData & ~3), desc(0xf2, 0xc));
  q(L.gdt + (SEL.userCode64 & ~3), desc(0xfa, 0xa));
  q(L.gdt + SEL.kernelCode32, desc(0x9a, 0xc));
  const tss = (base: number) =>
    0x67n | (BigInt(base & 0xffffff) << 16n) | (0x8bn << 40n) | (BigInt(base >>> 24) << 56n);
  q(L.gdt + SEL.tss64, tss(L.tss64)); // the upper half (base 63:32) stays 0
  q(L.gdt + SEL.tss32, tss(L.tss32));
  // TSS: RSP0 (64-bit) or SS0:ESP0 (32-bit); the I/O map base beyond the limit (no bitmap).
  q(L.tss64 + 4, BigInt(L.kernelStackTop));
  v.setUint16(L.tss64 + 0x66, 0x68, true);
  v.setUint32(L.tss32 + 4, L.kernelStackTop, true);
  v.setUint32(L.tss32 + 8, SEL.kernelData, true);
  v.setUint16(L.tss32 + 0x66, 0x68, true);
  for (let vec = 0; vec < 256; vec++) {
    const stub = L.stubs + vec * 4;
    ram.set([HLT, 0xeb, 0xfd, HLT], stub); // hlt; jmp back to the hlt
    // Interrupt gates (type 14), DPL 3, present.
    const lo = BigInt(stub & 0xffff) | (BigInt(stub >>> 16) << 48n) | (0xeen << 40n);
    q(L.idt64 + vec * 16, lo | (BigInt(SEL.kernelCode64) << 16n));
    q(L.idt32 + vec * 8, lo | (BigInt(SEL.kernelCode32) << 16n));
  }
  // Identity map: the first 2 MiB for the supervisor only, the next 2 MiB for the user.
  const P = 1n,
    RW = 2n,
    US = 4n,
    PS = 0x80n;
  q(L.pml4, BigInt(L.pdpt) | P | RW | US);
  q(L.pdpt, BigInt(L.pd) | P | RW | US);
  q(L.pd, 0n | P | RW | PS);
  q(L.pd + 8, BigInt(L.userBase) | P | RW | US | PS);
}
