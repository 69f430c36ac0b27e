/**
 * The kvm engine's pure parts, without /dev/kvm: exits decoded from synthetic kvm_run pages
 * and carried out on the device model, the CPUID filter, the memory-slot layout and the
 * QEMU accelerator spellings.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rewriteQemuSpellings } from "../src/cli/options.js";
import type { CpuHost, LocalApicPort } from "../src/engine/engine.js";
import { KVM_EXIT, KVM_INTERNAL_ERROR, kvm_run } from "../src/engine/kvm/abi.js";
import { filterCpuid, hasVmx, type CpuidEntry } from "../src/engine/kvm/cpuid.js";
import { EINTR, decodeExit, describeFatalExit, performAccess } from "../src/engine/kvm/exits.js";
import { ramRuns } from "../src/engine/kvm/system.js";
import { findVmxInstruction } from "../src/engine/kvm/vmx-hint.js";
import { UserError } from "../src/errors.js";
import { Bus, type AccessSize, type BusDevice } from "../src/machine/bus.js";
import { PAGE_SHIFT, PageKind, PhysicalMemory } from "../src/machine/memory.js";

const F = kvm_run.fields;

/** A kvm_run page (three pages, like the vCPU mmap) with an exit reason. */
function page(reason: number): DataView {
  const v = new DataView(new ArrayBuffer(3 * 4096));
  v.setUint32(F.exit_reason, reason, true);
  return v;
}

/** A device that records accesses and answers reads with a fixed pattern. */
class Recorder implements BusDevice {
  readonly name = "recorder";
  readonly log: string[] = [];
  read(offset: number, size: AccessSize): number {
    this.log.push(`r${size}@${offset}`);
    return size === 1 ? 0xa5 : size === 2 ? 0xbeef : 0xdeadbeef;
  }
  write(offset: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${offset}=${value.toString(16)}`);
  }
}

function host(apic?: LocalApicPort): { host: CpuHost; port: Recorder; mmio: Recorder } {
  const mem = new PhysicalMemory(1 << 20);
  const io = new Bus("io");
  const port = new Recorder();
  const mmio = new Recorder();
  io.register(0x3f8, 8, port);
  mem.mapMmio(0xfee00000, 0x1000, mmio);
  return { host: { mem, io, apic }, port, mmio };
}

describe("kvm exits", () => {
  it("decodes and performs OUT and IN, including string I/O batches", () => {
    const { host: h, port } = host();
    const out = page(KVM_EXIT.IO);
    out.setUint8(F["io.direction"], 1);
    out.setUint8(F["io.size"], 1);
    out.setUint16(F["io.port"], 0x3f8, true);
    out.setUint32(F["io.count"], 3, true);
    out.setBigUint64(F["io.data_offset"], 4096n, true);
    [0x41, 0x42, 0x43].forEach((b, k) => out.setUint8(4096 + k, b));
    const exit = decodeExit(out, 0);
    assert.deepEqual(exit, {
      kind: "io",
      out: true,
      size: 1,
      port: 0x3f8,
      count: 3,
      dataOffset: 4096,
    });
    performAccess(exit as Extract<typeof exit, { kind: "io" }>, out, h);
    assert.deepEqual(port.log, ["w1@0=41", "w1@0=42", "w1@0=43"]);

    const inp = page(KVM_EXIT.IO);
    inp.setUint8(F["io.size"], 2);
    inp.setUint16(F["io.port"], 0x3fd, true);
    inp.setUint32(F["io.count"], 1, true);
    inp.setBigUint64(F["io.data_offset"], 4096n, true);
    const e2 = decodeExit(inp, 0);
    performAccess(e2 as Extract<typeof e2, { kind: "io" }>, inp, h);
    assert.equal(inp.getUint16(4096, true), 0xbeef);
    assert.equal(port.log.at(-1), "r2@5");
  });

  it("splits an 8-byte MMIO access and reads all-ones where nothing is mapped", () => {
    const { host: h, mmio } = host();
    const w = page(KVM_EXIT.MMIO);
    w.setBigUint64(F["mmio.phys_addr"], 0xfee00300n, true);
    w.setBigUint64(F["mmio.data"], 0x1122334455667788n, true);
    w.setUint32(F["mmio.len"], 8, true);
    w.setUint8(F["mmio.is_write"], 1);
    const e = decodeExit(w, 0);
    assert.deepEqual(e, { kind: "mmio", addr: 0xfee00300, len: 8, write: true });
    performAccess(e as Extract<typeof e, { kind: "mmio" }>, w, h);
    assert.deepEqual(mmio.log, ["w4@768=55667788", "w4@772=11223344"]);

    const r = page(KVM_EXIT.MMIO);
    r.setBigUint64(F["mmio.phys_addr"], 0xfec00000n, true);
    r.setUint32(F["mmio.len"], 2, true);
    const e2 = decodeExit(r, 0);
    performAccess(e2 as Extract<typeof e2, { kind: "mmio" }>, r, h);
    assert.equal(r.getUint16(F["mmio.data"], true), 0xffff);
  });

  it("routes x2APIC and TSC-deadline MSRs to the APIC model, #GP for the rest", () => {
    const calls: string[] = [];
    const apic: LocalApicPort = {
      setApicBase: () => {},
      readMsr: (i) => (i === 0x802 ? [0x05000000, 0] : undefined),
      writeMsr: (i, lo, hi) => {
        calls.push(`${i.toString(16)}=${hi}:${lo}`);
        return i !== 0x803;
      },
    };
    const { host: h } = host(apic);
    const msr = (reason: number, index: number, lo = 0, hi = 0) => {
      const p = page(reason);
      p.setUint32(F["msr.index"], index, true);
      p.setUint32(F["msr.data"], lo, true);
      p.setUint32(F["msr.data"] + 4, hi, true);
      const e = decodeExit(p, 0);
      performAccess(e as Extract<typeof e, { kind: "msr" }>, p, h);
      return { error: p.getUint8(F["msr.error"]), data: p.getBigUint64(F["msr.data"], true) };
    };
    assert.deepEqual(msr(KVM_EXIT.X86_RDMSR, 0x802), { error: 0, data: 0x05000000n });
    assert.equal(msr(KVM_EXIT.X86_RDMSR, 0x8ff).error, 1);
    assert.equal(msr(KVM_EXIT.X86_WRMSR, 0x6e0, 7, 1).error, 0);
    assert.equal(msr(KVM_EXIT.X86_WRMSR, 0x803, 1).error, 1);
    assert.equal(msr(KVM_EXIT.X86_WRMSR, 0x1234, 1).error, 1);
    assert.deepEqual(calls, ["6e0=1:7", "803=0:1"]);
    // Without an APIC model even x2APIC MSRs fault.
    const { host: bare } = host();
    const p = page(KVM_EXIT.X86_RDMSR);
    p.setUint32(F["msr.index"], 0x802, true);
    const e = decodeExit(p, 0);
    performAccess(e as Extract<typeof e, { kind: "msr" }>, p, bare);
    assert.equal(p.getUint8(F["msr.error"]), 1);
  });

  it("decodes the exits that park or stop a vCPU", () => {
    assert.deepEqual(decodeExit(page(KVM_EXIT.HLT), 0), { kind: "hlt" });
    assert.deepEqual(decodeExit(page(KVM_EXIT.SHUTDOWN), 0), { kind: "shutdown" });
    assert.deepEqual(decodeExit(page(KVM_EXIT.IRQ_WINDOW_OPEN), 0), { kind: "irq-window" });
    assert.deepEqual(decodeExit(page(KVM_EXIT.HLT), -EINTR), { kind: "intr" });
    assert.deepEqual(decodeExit(page(0), -14), { kind: "run-failed", errno: 14 });
    const ev = page(KVM_EXIT.SYSTEM_EVENT);
    ev.setUint32(F["system_event.type"], 2, true);
    assert.deepEqual(decodeExit(ev, 0), { kind: "system-event", type: 2 });
    const fail = page(KVM_EXIT.FAIL_ENTRY);
    fail.setBigUint64(F["fail_entry.hardware_entry_failure_reason"], 0x21n, true);
    fail.setUint32(F["fail_entry.cpu"], 3, true);
    const fe = decodeExit(fail, 0);
    assert.deepEqual(fe, { kind: "fail-entry", reason: 0x21n, cpu: 3 });
    assert.match(describeFatalExit(fe), /VM entry failed with hardware reason 0x21 on host CPU 3/);
  });

  it("names an emulation failure with the instruction's bytes", () => {
    const p = page(KVM_EXIT.INTERNAL_ERROR);
    p.setUint32(F["internal.suberror"], KVM_INTERNAL_ERROR.EMULATION, true);
    p.setUint32(F["internal.ndata"], 4, true);
    p.setBigUint64(F["emulation_failure.flags"], 1n, true);
    p.setUint8(F["emulation_failure.insn_size"], 2);
    p.setUint8(F["emulation_failure.insn_bytes"], 0x0f);
    p.setUint8(F["emulation_failure.insn_bytes"] + 1, 0x0b);
    const e = decodeExit(p, 0);
    assert.equal(e.kind, "internal-error");
    assert.equal(
      describeFatalExit(e),
      "KVM_EXIT_INTERNAL_ERROR: KVM could not emulate an instruction; instruction bytes 0f 0b",
    );
  });
});

describe("kvm CPUID model", () => {
  const supported: CpuidEntry[] = [
    {
      function: 1,
      index: 0,
      flags: 0,
      eax: 0xa00f11,
      ebx: 0x00020800,
      ecx: 0x81202021,
      edx: 0x078bfbff,
    },
    { function: 0xb, index: 0, flags: 1, eax: 0, ebx: 1, ecx: 0x100, edx: 0 },
    { function: 0x40000000, index: 0, flags: 0, eax: 0x40000001, ebx: 0, ecx: 0, edx: 0 },
    { function: 0x40000001, index: 0, flags: 0, eax: 0x1007efb, ebx: 0, ecx: 0, edx: 0 },
  ];

  it("sets APIC IDs, drops the paravirtual leaves and the hypervisor bit", () => {
    const out = filterCpuid(supported, { vcpuId: 3, apic: true });
    assert.deepEqual(
      out.map((e) => e.function),
      [1, 0xb],
    );
    assert.equal(out[0].ebx >>> 24, 3);
    assert.equal(out[0].ecx >>> 31, 0);
    assert.equal((out[0].edx >>> 9) & 1, 1, "APIC");
    assert.equal((out[0].ecx >>> 21) & 1, 1, "x2APIC");
    assert.equal(out[1].edx, 3);
  });

  it("hides the APIC features when the machine has no local APIC", () => {
    const [leaf1] = filterCpuid(supported, { vcpuId: 0, apic: false });
    assert.equal((leaf1.edx >>> 9) & 1, 0);
    assert.equal((leaf1.ecx >>> 21) & 1, 0);
    assert.equal((leaf1.ecx >>> 24) & 1, 0);
  });

  it("keeps VMX exactly when KVM offers it", () => {
    assert.equal(hasVmx(filterCpuid(supported, { vcpuId: 0, apic: false })), true);
    const noVmx = supported.map((e) => (e.function === 1 ? { ...e, ecx: e.ecx & ~0x20 } : e));
    assert.equal(hasVmx(filterCpuid(noVmx, { vcpuId: 0, apic: false })), false);
  });
});

describe("kvm memory slots", () => {
  it("are the RAM runs of the memory map, with MMIO holes left out", () => {
    const mem = new PhysicalMemory(4 << 20);
    mem.mapMmio(0xb8000, 0x8000, new Recorder());
    const runs = ramRuns(mem.pageKind, mem.ramSize >>> PAGE_SHIFT, PageKind.Ram);
    assert.deepEqual(runs, [
      { base: 0, length: 0xb8000 },
      { base: 0xc0000, length: (4 << 20) - 0xc0000 },
    ]);
  });
});

describe("QEMU accelerator spellings", () => {
  it("maps -enable-kvm and -accel to --engine", () => {
    assert.deepEqual(rewriteQemuSpellings(["run", "-enable-kvm"]), ["run", "--engine", "kvm"]);
    assert.deepEqual(rewriteQemuSpellings(["-accel", "kvm"]), ["--engine", "kvm"]);
    assert.deepEqual(rewriteQemuSpellings(["-accel", "tcg"]), ["--engine", "soft"]);
    assert.throws(() => rewriteQemuSpellings(["-accel", "hvf"]), UserError);
  });
});

describe("VMX hint", () => {
  it("finds VMXON with a memory operand, VMLAUNCH and VMRESUME", () => {
    const code = (...b: number[]) => new Uint8Array([0x90, 0x90, ...b, 0xc3]);
    assert.deepEqual(findVmxInstruction(code(0xf3, 0x0f, 0xc7, 0x30)), {
      offset: 2,
      name: "VMXON",
    });
    assert.deepEqual(findVmxInstruction(code(0x0f, 0x01, 0xc2)), { offset: 2, name: "VMLAUNCH" });
    assert.deepEqual(findVmxInstruction(code(0x0f, 0x01, 0xc3)), { offset: 2, name: "VMRESUME" });
    // RDRAND (0F C7 /6, register operand) and VMCALL (0F 01 C1) are not VMX operation.
    assert.equal(findVmxInstruction(code(0xf3, 0x0f, 0xc7, 0xf0)), null);
    assert.equal(findVmxInstruction(code(0x0f, 0x01, 0xc1)), null);
  });
});
