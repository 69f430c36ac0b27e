/**
 * VM exits (SDM Vol. 3C, chapter 28) seen from the VMX core: the guest state saved, the
 * host state loaded, the MSR-store and MSR-load lists, VMX aborts, and the trace lines.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AR_UNUSABLE, CS, SS } from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { IA32_SYSENTER_CS } from "../src/cpu/msr.js";
import { EntryCtl, ExitCtl, Proc } from "../src/cpu/vmx/controls.js";
import { F } from "../src/cpu/vmx/fields.js";
import type { Vmcs } from "../src/cpu/vmx/vmcs.js";
import {
  CODE,
  GUEST_RIP,
  HOST_RIP,
  validVmcs,
  VMCS_REGION,
  VMLAUNCH,
  vmxCpu,
  vmxOnWithVmcs,
} from "./helpers/vmx-core.js";

/** Launches `guest` code with the VMCS prepared by `prep`; runs until the host's HLT. */
function launch(guest: number[], prep: (v: Vmcs, cpu: Cpu) => void = () => {}) {
  const { cpu, mem } = vmxCpu();
  const v = vmxOnWithVmcs(cpu);
  validVmcs(cpu, v);
  prep(v, cpu);
  const lines: string[] = [];
  cpu.vmx.trace = (l) => lines.push(l);
  mem.ram.set(guest, GUEST_RIP);
  mem.ram.set(VMLAUNCH, CODE);
  cpu.eip = cpu.nextEip = CODE;
  const result = cpu.run(1000);
  return { cpu, v, lines, result };
}

const MSR_AREA = 0x40000;

describe("VM exits", () => {
  it("save the guest state and load the host state (SDM 28.3, 28.5)", () => {
    // mov esp, 0x6000; mov ebx, 0x1234; sti; cpuid
    const code = [0xbc, 0x00, 0x60, 0, 0, 0xbb, 0x34, 0x12, 0, 0, 0xfb, 0x0f, 0xa2];
    const { cpu, v } = launch(code);
    assert.equal(v.read(F.ExitReason), 10);
    assert.equal(v.read(F.GuestRip), GUEST_RIP + 11);
    assert.equal(v.read(F.GuestRsp), 0x6000);
    assert.equal(v.read(F.GuestRflags), 0x202);
    // CPUID right after an STI that set IF: blocking by STI is saved (a fault-like exit).
    assert.equal(v.read(F.GuestInterruptibilityState), 1);
    assert.equal(v.read(F.GuestActivityState), 0);
    assert.equal(v.read(F.GuestCsSelector), 0x08);
    assert.equal(v.read(F.GuestTrAccessRights), 0x8b);
    assert.equal(v.read(F.GuestLdtrAccessRights) & AR_UNUSABLE, AR_UNUSABLE);
    assert.equal(v.read(F.EntryControls) & EntryCtl.Ia32eModeGuest, 0);
    // The host: its selectors, flat segments, TR limit 67H, GDTR/IDTR limits FFFFH.
    assert.equal(cpu.eip, HOST_RIP + 1);
    assert.equal(cpu.segs[CS].selector, 0x08);
    assert.equal(cpu.segs[SS].selector, 0x10);
    assert.equal(cpu.segs[CS].limit, 0xffffffff);
    assert.equal(cpu.tr.limit, 0x67);
    assert.equal(cpu.gdtrLimit, 0xffff);
    assert.equal(cpu.ldtr.ar & AR_UNUSABLE, AR_UNUSABLE);
    assert.equal(cpu.dr[7], 0x400);
    assert.equal(cpu.flags.get() & ~0x2, 0, "RFLAGS = 2");
    assert.equal(cpu.regs[4], 0x7ff0);
    assert.equal(cpu.regs[3], 0x1234, "general registers are the guest's");
  });

  it("store MSRs into the VM-exit MSR-store list and load the VM-exit MSR-load list", () => {
    const { cpu, v } = launch([0x0f, 0xa2], (v, cpu) => {
      v.write(F.GuestIa32SysenterCs, 0x77);
      v.write(F.ExitMsrStoreAddress, MSR_AREA);
      v.write(F.ExitMsrStoreCount, 1);
      cpu.mem.write(MSR_AREA, 4, IA32_SYSENTER_CS);
      v.write(F.ExitMsrLoadAddress, MSR_AREA + 0x100);
      v.write(F.ExitMsrLoadCount, 1);
      cpu.mem.write(MSR_AREA + 0x100, 4, 0x277); // IA32_PAT
      cpu.mem.write(MSR_AREA + 0x108, 4, 0x06060606);
      cpu.mem.write(MSR_AREA + 0x10c, 4, 0x06060606);
    });
    assert.equal(v.read(F.ExitReason), 10);
    assert.equal(cpu.mem.read(MSR_AREA + 8, 4), 0x77);
    assert.deepEqual(cpu.msr.read(0x277), [0x06060606, 0x06060606]);
  });

  it("save and load EFER and PAT under their controls", () => {
    const { cpu, v } = launch([0x0f, 0xa2], (v) => {
      v.write(F.EntryControls, v.read(F.EntryControls) | EntryCtl.LoadPat);
      v.write(F.GuestIa32Pat, 0x01010101, 0x01010101);
      v.write(
        F.ExitControls,
        v.read(F.ExitControls) | ExitCtl.SavePat | ExitCtl.LoadPat | ExitCtl.SaveEfer,
      );
      v.write(F.HostIa32Pat, 0x07070707, 0x07070707);
    });
    assert.equal(v.read(F.ExitReason), 10);
    assert.equal(v.read(F.GuestIa32Pat), 0x01010101);
    assert.equal(v.read(F.GuestIa32Efer), 0);
    assert.deepEqual(cpu.msr.read(0x277), [0x07070707, 0x07070707]);
  });

  it("end in a VMX abort when the VM-exit MSR-load list fails: indicator 4, shutdown", () => {
    const { cpu, result, lines } = launch([0x0f, 0xa2], (v, cpu) => {
      v.write(F.ExitMsrLoadAddress, MSR_AREA);
      v.write(F.ExitMsrLoadCount, 1);
      cpu.mem.write(MSR_AREA, 4, 0x808); // an x2APIC MSR: never in a list
    });
    assert.equal(result.kind, "triple-fault");
    assert.match(result.kind === "triple-fault" ? result.chain : "", /VMX abort, indicator 4/);
    assert.equal(cpu.mem.read(VMCS_REGION + 4, 4), 4);
    assert.ok(lines.some((l) => l.includes("VM exit CPUID")));
  });

  it("trace entries and exits with reason names and decoded I/O qualifications", () => {
    // out 0x80, al; then in al, dx with DX = 0x3f8
    const { v, lines } = launch([0xe6, 0x80], (v) => {
      v.write(F.ProcBasedControls, v.read(F.ProcBasedControls) | Proc.UnconditionalIoExiting);
    });
    assert.equal(v.read(F.ExitReason), 30);
    assert.deepEqual(lines.slice(-2), [
      `vmx cpu0: VM entry (VMLAUNCH) rip=0x${GUEST_RIP.toString(16)}`,
      `vmx cpu0: VM exit IO_INSTRUCTION out port=0x80 size=1 (imm) rip=0x${GUEST_RIP.toString(16)}`,
    ]);
  });
});
