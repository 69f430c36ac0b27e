/**
 * KVM exits as data (design.md, decision 1): decodeExit turns the kvm_run page into a
 * discriminated union, and performAccess carries out the port-I/O, MMIO and MSR accesses
 * on the same device model the soft engine uses, writing what the guest reads back into
 * kvm_run (api.rst 5, "The kvm_run structure"). Both are plain functions of a buffer, so
 * tests drive them with synthetic kvm_run pages.
 */
import type { AccessSize } from "../../machine/bus.js";
import type { CpuHost } from "../engine.js";
import {
  KVM_EXIT,
  KVM_EXIT_IO_OUT,
  KVM_INTERNAL_ERROR,
  KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
  kvm_run,
} from "./abi.js";

const F = kvm_run.fields;
/** errno values KVM_RUN returns that are not failures (asm-generic/errno-base.h). */
export const EINTR = 4;
export const EAGAIN = 11;

export type KvmExit =
  /** IN/OUT, possibly a string instruction: `count` items of `size` bytes at `dataOffset`. */
  | {
      kind: "io";
      out: boolean;
      size: AccessSize;
      port: number;
      count: number;
      dataOffset: number;
    }
  /** A guest-physical access outside the memory slots: up to 8 bytes in mmio.data. */
  | { kind: "mmio"; addr: number; len: number; write: boolean }
  /** RDMSR/WRMSR that KVM hands to user space (KVM_CAP_X86_USER_SPACE_MSR). */
  | { kind: "msr"; write: boolean; index: number; reason: number }
  /** HLT with no in-kernel local APIC: the vCPU waits for an interrupt. */
  | { kind: "hlt" }
  /** request_interrupt_window was set and the guest can now take an interrupt. */
  | { kind: "irq-window" }
  /** KVM_RUN returned EINTR: the vCPU was kicked (or immediate_exit was set). */
  | { kind: "intr" }
  /** A triple fault: the processor shut down (SDM Vol. 3A, 6.15). */
  | { kind: "shutdown" }
  | { kind: "system-event"; type: number }
  /** A guest-debug exit (KVM_SET_GUEST_DEBUG): single step or breakpoint. */
  | { kind: "debug"; exception: number; pc: bigint; dr6: bigint; dr7: bigint }
  /** VM entry failed: the hardware refused the guest state. */
  | { kind: "fail-entry"; reason: bigint; cpu: number }
  /** KVM could not go on, e.g. it could not emulate an instruction. */
  | { kind: "internal-error"; suberror: number; data: bigint[]; insn: Uint8Array | null }
  /** KVM_RUN itself failed with this errno. */
  | { kind: "run-failed"; errno: number }
  | { kind: "other"; reason: number };

/** Decodes the exit in `run` after KVM_RUN returned `result` (0, or minus errno). */
export function decodeExit(run: DataView, result: number): KvmExit {
  if (result < 0) {
    return -result === EINTR || -result === EAGAIN
      ? { kind: "intr" }
      : { kind: "run-failed", errno: -result };
  }
  const reason = run.getUint32(F.exit_reason, true);
  switch (reason) {
    case KVM_EXIT.IO:
      return {
        kind: "io",
        out: run.getUint8(F["io.direction"]) === KVM_EXIT_IO_OUT,
        size: run.getUint8(F["io.size"]) as AccessSize,
        port: run.getUint16(F["io.port"], true),
        count: run.getUint32(F["io.count"], true),
        dataOffset: Number(run.getBigUint64(F["io.data_offset"], true)),
      };
    case KVM_EXIT.MMIO:
      return {
        kind: "mmio",
        addr: Number(run.getBigUint64(F["mmio.phys_addr"], true)),
        len: run.getUint32(F["mmio.len"], true),
        write: run.getUint8(F["mmio.is_write"]) !== 0,
      };
    case KVM_EXIT.X86_RDMSR:
    case KVM_EXIT.X86_WRMSR:
      return {
        kind: "msr",
        write: reason === KVM_EXIT.X86_WRMSR,
        index: run.getUint32(F["msr.index"], true),
        reason: run.getUint32(F["msr.reason"], true),
      };
    case KVM_EXIT.HLT:
      return { kind: "hlt" };
    case KVM_EXIT.IRQ_WINDOW_OPEN:
      return { kind: "irq-window" };
    case KVM_EXIT.INTR:
      return { kind: "intr" };
    case KVM_EXIT.SHUTDOWN:
      return { kind: "shutdown" };
    case KVM_EXIT.SYSTEM_EVENT:
      return { kind: "system-event", type: run.getUint32(F["system_event.type"], true) };
    case KVM_EXIT.DEBUG:
      return {
        kind: "debug",
        exception: run.getUint32(F["debug.arch.exception"], true),
        pc: run.getBigUint64(F["debug.arch.pc"], true),
        dr6: run.getBigUint64(F["debug.arch.dr6"], true),
        dr7: run.getBigUint64(F["debug.arch.dr7"], true),
      };
    case KVM_EXIT.FAIL_ENTRY:
      return {
        kind: "fail-entry",
        reason: run.getBigUint64(F["fail_entry.hardware_entry_failure_reason"], true),
        cpu: run.getUint32(F["fail_entry.cpu"], true),
      };
    case KVM_EXIT.INTERNAL_ERROR:
      return decodeInternalError(run);
    default:
      return { kind: "other", reason };
  }
}

function decodeInternalError(run: DataView): KvmExit {
  const suberror = run.getUint32(F["internal.suberror"], true);
  const ndata = Math.min(run.getUint32(F["internal.ndata"], true), 16);
  const data = Array.from({ length: ndata }, (_, k) =>
    run.getBigUint64(F["internal.data"] + 8 * k, true),
  );
  let insn: Uint8Array | null = null;
  // With the INSTRUCTION_BYTES flag, an emulation failure carries the instruction's bytes.
  if (
    suberror === KVM_INTERNAL_ERROR.EMULATION &&
    ndata >= 1 &&
    (data[0] & BigInt(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) !== 0n
  ) {
    const size = Math.min(run.getUint8(F["emulation_failure.insn_size"]), 15);
    const at = run.byteOffset + F["emulation_failure.insn_bytes"];
    insn = new Uint8Array(run.buffer.slice(at, at + size));
  }
  return { kind: "internal-error", suberror, data, insn };
}

/**
 * Carries out an I/O, MMIO or MSR exit on the machine's devices. For reads, the value goes
 * into kvm_run, where KVM picks it up when KVM_RUN is next called and completes the
 * instruction (api.rst 5: "the operations are complete only after userspace re-enters").
 */
export function performAccess(
  exit: Extract<KvmExit, { kind: "io" | "mmio" | "msr" }>,
  run: DataView,
  host: CpuHost,
): void {
  switch (exit.kind) {
    case "io": {
      const { size, port, count } = exit;
      // String I/O (INS/OUTS with REP) batches `count` items in one exit.
      for (let k = 0, at = exit.dataOffset; k < count; k++, at += size) {
        if (exit.out) host.io.write(port, size, getLe(run, at, size));
        else setLe(run, at, size, host.io.read(port, size));
      }
      return;
    }
    case "mmio": {
      const data = F["mmio.data"];
      // Split into naturally sized pieces: the bus takes 1, 2 and 4-byte accesses.
      for (let done = 0; done < exit.len;) {
        const left = exit.len - done;
        const size: AccessSize = left >= 4 ? 4 : left >= 2 ? 2 : 1;
        if (exit.write) host.mem.write(exit.addr + done, size, getLe(run, data + done, size));
        else setLe(run, data + done, size, host.mem.read(exit.addr + done, size));
        done += size;
      }
      return;
    }
    case "msr":
      performMsr(exit, run, host);
      return;
  }
}

/** x2APIC registers (SDM Vol. 3A, 11.12.1.2) and IA32_TSC_DEADLINE (11.5.4.1). */
const X2APIC_FIRST = 0x800;
const X2APIC_LAST = 0x8ff;
export const IA32_TSC_DEADLINE = 0x6e0;

/**
 * The local APIC's MSRs go to the machine's APIC model (CpuHost.apic), the same one the
 * soft CPU talks to. Any other MSR that reaches user space is one KVM refused, so it gets
 * #GP(0) as KVM would give it (msr.error = 1; api.rst 5, KVM_EXIT_X86_RDMSR).
 * IA32_APIC_BASE is not here: KVM keeps and checks it, and the vCPU passes changes on from
 * kvm_run.apic_base.
 */
function performMsr(exit: Extract<KvmExit, { kind: "msr" }>, run: DataView, host: CpuHost): void {
  const apic = host.apic;
  const i = exit.index;
  let ok = false;
  if (apic !== undefined && ((i >= X2APIC_FIRST && i <= X2APIC_LAST) || i === IA32_TSC_DEADLINE)) {
    if (exit.write) {
      const lo = run.getUint32(F["msr.data"], true);
      const hi = run.getUint32(F["msr.data"] + 4, true);
      ok = apic.writeMsr(i, lo, hi);
    } else {
      const value = apic.readMsr(i);
      ok = value !== undefined;
      if (value !== undefined) {
        run.setUint32(F["msr.data"], value[0] >>> 0, true);
        run.setUint32(F["msr.data"] + 4, value[1] >>> 0, true);
      }
    }
  }
  run.setUint8(F["msr.error"], ok ? 0 : 1);
}

function getLe(v: DataView, at: number, size: AccessSize): number {
  return size === 1 ? v.getUint8(at) : size === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
}

function setLe(v: DataView, at: number, size: AccessSize, value: number): void {
  if (size === 1) v.setUint8(at, value);
  else if (size === 2) v.setUint16(at, value, true);
  else v.setUint32(at, value >>> 0, true);
}

/** One line naming a fatal exit, for the error the run ends with. */
export function describeFatalExit(exit: KvmExit): string {
  switch (exit.kind) {
    case "fail-entry":
      return (
        `KVM_EXIT_FAIL_ENTRY: VM entry failed with hardware reason 0x${exit.reason.toString(16)} ` +
        `on host CPU ${exit.cpu}`
      );
    case "internal-error": {
      const names: Record<number, string> = {
        [KVM_INTERNAL_ERROR.EMULATION]: "KVM could not emulate an instruction",
        [KVM_INTERNAL_ERROR.SIMUL_EX]: "an exception occurred while delivering another one",
        [KVM_INTERNAL_ERROR.DELIVERY_EV]: "an event could not be delivered",
        [KVM_INTERNAL_ERROR.UNEXPECTED_EXIT_REASON]: "an unexpected hardware exit",
      };
      const what = names[exit.suberror] ?? `suberror ${exit.suberror}`;
      const insn =
        exit.insn === null
          ? ""
          : `; instruction bytes ${Array.from(exit.insn, (b) => b.toString(16).padStart(2, "0")).join(" ")}`;
      return `KVM_EXIT_INTERNAL_ERROR: ${what}${insn}`;
    }
    case "run-failed":
      return `KVM_RUN failed with errno ${exit.errno}`;
    case "other":
      return `unexpected KVM exit reason ${exit.reason}`;
    default:
      return `KVM exit ${exit.kind}`;
  }
}
