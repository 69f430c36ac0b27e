/**
 * The soft CPU in the hardware oracle's environment (design.md, decision 8): the same VM
 * image (GDT, IDTs, TSSs, exception stubs and page tables, built by the oracle's own
 * `buildTables`), the same CPL-3 segment and control-register state (`userSregs`), and the
 * same way of ending a snippet, so that one SnippetInput gives comparable SnippetResults on
 * the soft CPU and on the host CPU through KVM.
 */
import {
  AR_DB,
  AR_DPL_SHIFT,
  AR_G,
  AR_L,
  AR_P,
  AR_S,
  AR_UNUSABLE,
  CR4_VALID,
} from "../cpu/arch.js";
import { Cpu } from "../cpu/cpu.js";
import { disassemble } from "../cpu/disasm.js";
import { RF } from "../cpu/flags.js";
import { ActivityState } from "../engine/engine.js";
import {
  ORACLE_LAYOUT,
  RAM_BYTES,
  buildTables,
  readFrame,
  snippetRegs,
  userSregs,
  zeroRegs,
  type SnippetInput,
  type SnippetMode,
  type SnippetResult,
} from "../engine/kvm/oracle.js";
import { type RegName, type Regs, type Segment, type Sregs } from "../engine/kvm/state.js";
import { Bus } from "../machine/bus.js";
import { PhysicalMemory } from "../machine/memory.js";

/** kvm_regs' general registers in the x86 register numbering (RAX = 0 ... R15 = 15). */
export const GPR_NAMES: readonly RegName[] = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
];

const L = ORACLE_LAYOUT;
const GP = 13;
/** Instructions per slice between wall-clock checks. */
const SLICE = 100_000;

/** An engine that runs snippets in the oracle's environment. */
export interface SnippetRunner {
  run(input: SnippetInput): SnippetResult;
}

/** A segment register as KVM describes it, in the VMCS access-rights format the CPU keeps. */
function accessRights(s: Segment): number {
  return (
    s.type |
    (s.s ? AR_S : 0) |
    (s.dpl << AR_DPL_SHIFT) |
    (s.present ? AR_P : 0) |
    (s.l ? AR_L : 0) |
    (s.db ? AR_DB : 0) |
    (s.g ? AR_G : 0) |
    (s.unusable ? AR_UNUSABLE : 0)
  );
}

/** The oracle's control and segment state for `mode`, as KVM_SET_SREGS receives it. */
export function oracleSregs(mode: SnippetMode): Sregs {
  const blank: Segment = {
    base: 0n,
    limit: 0,
    selector: 0,
    type: 0,
    present: false,
    dpl: 0,
    db: false,
    s: false,
    l: false,
    g: false,
    unusable: true,
  };
  const none = { base: 0n, limit: 0 };
  return userSregs(
    {
      ...{ cs: blank, ds: blank, es: blank, fs: blank, gs: blank, ss: blank, tr: blank },
      ...{ ldt: blank, gdt: none, idt: none, cr0: 0n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n },
      ...{ efer: 0n, apicBase: 0n },
    },
    mode,
  );
}

export class SoftOracle implements SnippetRunner {
  readonly mem = new PhysicalMemory(RAM_BYTES);
  readonly cpu = new Cpu({ mem: this.mem, io: new Bus("io") }, 0);
  private readonly sregs = new Map<SnippetMode, Sregs>();
  private readonly zeroUser = new Uint8Array(L.userEnd - L.userBase);

  constructor() {
    buildTables(this.mem.ram);
  }

  /** Runs one snippet exactly as KvmOracle.run does, on the soft CPU. */
  run(input: SnippetInput): SnippetResult {
    const cpu = this.cpu;
    const ram = this.mem.ram;
    if (input.code.length >= L.data - L.code) throw new RangeError("snippet too long");
    // mem.load drops the decoded-instruction cache of the pages it overwrites.
    this.mem.load(L.userBase, this.zeroUser);
    this.mem.load(L.code, input.code);
    this.mem.load(L.code + input.code.length, Uint8Array.of(0xf4)); // the end marker: HLT
    if (input.data) this.mem.load(L.data, input.data);
    const endMarker = BigInt(L.code + input.code.length);

    this.enter(input.mode);
    const regs = snippetRegs(input);
    GPR_NAMES.forEach((n, k) => {
      cpu.regs[k] = Number(BigInt.asIntN(32, regs[n]));
      cpu.regsHi[k] = Number(BigInt.asIntN(32, regs[n] >> 32n));
    });
    cpu.eip = cpu.nextEip = Number(regs.rip);
    cpu.flags.load(Number(regs.rflags & 0xffffffffn));

    const stop = this.runOnce(input.timeoutMs ?? 1000);
    const after = this.regs();
    const data = ram.slice(L.data, L.data + L.dataSize);
    const cr2 = BigInt(cpu.cr2 < 0 ? cpu.cr2 + 2 ** 32 : cpu.cr2);
    const base = { cs: cpu.segs[1].selector, ss: cpu.segs[2].selector, cr2, data };
    if (stop !== null) {
      return { outcome: stop === "timeout" ? "timeout" : "exit", regs: after, exit: stop, ...base };
    }
    // The HLT of stub `vector` stopped the CPU: RIP is just past it.
    const vector = Number(after.rip - BigInt(L.stubs) - 1n) / 4;
    const frame = readFrame(ram, Number(after.rsp), input.mode !== "prot32", vector);
    const frameRegs = { ...after, rip: frame.rip, rsp: frame.rsp, rflags: frame.rflags };
    if (vector === GP && frame.errorCode === 0 && frame.rip === endMarker) {
      const rflags = frame.rflags & ~BigInt(RF);
      return {
        outcome: "completed",
        ...base,
        regs: { ...frameRegs, rflags },
        cs: frame.cs,
        ss: frame.ss,
      };
    }
    return {
      outcome: "exception",
      vector,
      errorCode: frame.errorCode,
      ...base,
      regs: frameRegs,
      cs: frame.cs,
      ss: frame.ss,
    };
  }

  /** The project's disassembly of `bytes` placed at the snippet address in `mode`. */
  disassemble(mode: SnippetMode, bytes: ArrayLike<number>): string {
    this.mem.load(L.code, Uint8Array.from(bytes));
    this.enter(mode);
    this.cpu.eip = L.code;
    try {
      return disassemble(this.cpu, L.code);
    } catch {
      return "(undecodable)";
    }
  }

  /** Resets the CPU and loads the oracle's CPL-3 state for `mode` (as KVM_SET_SREGS would). */
  private enter(mode: SnippetMode): void {
    const cpu = this.cpu;
    let s = this.sregs.get(mode);
    if (s === undefined) this.sregs.set(mode, (s = oracleSregs(mode)));
    cpu.reset();
    const seg = (g: Segment) => [g.selector, Number(g.base), g.limit, accessRights(g)] as const;
    const order = [s.es, s.cs, s.ss, s.ds, s.fs, s.gs]; // the CPU's numbering (arch.ts)
    order.forEach((g, k) => cpu.segs[k].set(...seg(g)));
    cpu.tr.set(...seg(s.tr));
    cpu.ldtr.set(...seg(s.ldt));
    cpu.gdtrBase = Number(s.gdt.base);
    cpu.gdtrLimit = s.gdt.limit;
    cpu.idtrBase = Number(s.idt.base);
    cpu.idtrLimit = s.idt.limit;
    cpu.cr0 = Number(s.cr0) | 0;
    cpu.cr3 = Number(s.cr3);
    // The oracle also sets CR4.OSFXSR/OSXMMEXCPT, for SSE the soft CPU does not have.
    cpu.cr4 = Number(s.cr4) & CR4_VALID;
    cpu.msr.efer = Number(s.efer);
    cpu.cpl = 3;
    cpu.activity = ActivityState.Active;
    cpu.flushTlb(true);
    cpu.modeChanged();
  }

  /** Runs until a stub's HLT (null), a triple fault, or the wall-clock limit. */
  private runOnce(timeoutMs: number): string | null {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const exit = this.cpu.run(SLICE);
      if (exit.kind === "halt") {
        const eip = this.cpu.eip;
        if (eip > L.stubs && eip <= L.stubs + 256 * 4) return null;
        return `HLT at 0x${eip.toString(16)} outside the exception stubs`;
      }
      if (exit.kind === "triple-fault") return "shutdown (triple fault)";
      if (exit.kind === "stopped") return "stopped";
      if (performance.now() > deadline) return "timeout";
    }
  }

  /** The general registers, RIP and RFLAGS as kvm_regs gives them. */
  private regs(): Regs {
    const cpu = this.cpu;
    const r = zeroRegs();
    GPR_NAMES.forEach((n, k) => {
      r[n] = (BigInt(cpu.regsHi[k] >>> 0) << 32n) | BigInt(cpu.regs[k] >>> 0);
    });
    r.rip = BigInt(cpu.eip);
    r.rflags = BigInt(cpu.flags.get() >>> 0);
    return r;
  }
}
