/**
 * The VMX instructions in and outside VMX root operation (SDM Vol. 3C, chapter 31): every
 * #UD and #GP case of their pseudocode that this CPU can reach, every VMfailInvalid and
 * VMfailValid outcome with its VM-instruction error number (31.4), and the enablement
 * (CPUID, IA32_FEATURE_CONTROL, CR0/CR4 fixed bits, capability MSRs).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BLOCKING_MOV_SS, CR0_NE, CR4_VMXE, EAX, GP, UD } from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { cpuid } from "../src/cpu/cpuid.js";
import { Fault } from "../src/cpu/fault.js";
import { ARITH, CF, VM, ZF } from "../src/cpu/flags.js";
import { IA32_FEATURE_CONTROL } from "../src/cpu/msr.js";
import { CAPABILITY_MSRS, IA32_VMX_BASIC, VMCS_REVISION_ID } from "../src/cpu/vmx/capabilities.js";
import { F } from "../src/cpu/vmx/fields.js";
import {
  CODE,
  exec,
  GUEST_RIP,
  HOST_RIP,
  INVEPT,
  INVVPID,
  operand,
  OPERAND,
  validVmcs,
  VMCALL,
  VMCLEAR,
  VMCS_REGION,
  VMLAUNCH,
  VMPTRLD,
  VMPTRST,
  VMREAD_EAX_ECX,
  VMRESUME,
  VMWRITE_ECX_EAX,
  vmxCpu,
  VMXOFF,
  VMXON,
  VMXON_REGION,
  vmxOnWithVmcs,
} from "./helpers/vmx-core.js";

/** The VMX outcome in RFLAGS: succeed, failInvalid (CF) or failValid (ZF). */
function outcome(cpu: Cpu): "succeed" | "failInvalid" | "failValid" {
  const f = cpu.flags.get() & ARITH;
  if (f === 0) return "succeed";
  if (f === CF) return "failInvalid";
  if (f === ZF) return "failValid";
  throw new Error(`RFLAGS arithmetic flags 0x${f.toString(16)}`);
}

/** Runs `bytes` with arithmetic flags all set, so the outcome must clear the others. */
function run(cpu: Cpu, bytes: number[], op?: number, opHi = 0): Fault | "exit" | undefined {
  if (op !== undefined) operand(cpu.mem, op, opHi);
  cpu.flags.load(cpu.flags.get() | ARITH);
  return exec(cpu, bytes);
}

const isFault = (f: unknown, vector: number): boolean => f instanceof Fault && f.vector === vector;
const error = (cpu: Cpu): number => cpu.vmx.vmcs.read(F.VmInstructionError);

describe("VMX enablement", () => {
  it("reports VMX in CPUID.1:ECX bit 5 and allows CR4.VMXE", () => {
    const { cpu } = vmxCpu();
    assert.ok(cpuid(cpu, 1, 0)[2] & (1 << 5));
    assert.ok(cpu.cr4 & CR4_VMXE);
  });

  it("starts IA32_FEATURE_CONTROL locked with VMX outside SMX; a locked MSR is read-only", () => {
    const { cpu } = vmxCpu();
    assert.deepEqual(cpu.msr.read(IA32_FEATURE_CONTROL), [5, 0]);
    assert.throws(() => cpu.msr.write(IA32_FEATURE_CONTROL, 5, 0), Fault);
    cpu.msr.load(IA32_FEATURE_CONTROL, 0, 0);
    cpu.msr.write(IA32_FEATURE_CONTROL, 4, 0); // unlocked: writable
    assert.throws(() => cpu.msr.write(IA32_FEATURE_CONTROL, 2, 0), Fault); // no SMX
  });

  it("reports the capability MSRs read-only; IA32_VMX_BASIC: revision, 4 KiB, WB, INS/OUTS info, TRUE", () => {
    const { cpu } = vmxCpu();
    for (const index of CAPABILITY_MSRS.keys()) {
      assert.throws(() => cpu.msr.write(index, 0, 0), Fault, `WRMSR 0x${index.toString(16)}`);
    }
    const [lo, hi] = cpu.msr.read(IA32_VMX_BASIC);
    assert.equal(lo, VMCS_REVISION_ID);
    assert.equal(hi & 0x1fff, 4096);
    assert.equal((hi >>> 18) & 0xf, 6);
    assert.ok(hi & (1 << 22) && hi & (1 << 23));
  });
});

describe("VMXON", () => {
  it("raises #UD without CR4.VMXE, in virtual-8086 mode, and never runs outside protected mode", () => {
    const { cpu } = vmxCpu();
    cpu.cr4 &= ~CR4_VMXE;
    assert.ok(isFault(run(cpu, VMXON, VMXON_REGION), UD));
    cpu.cr4 |= CR4_VMXE;
    cpu.flags.load(cpu.flags.get() | VM);
    assert.ok(isFault(run(cpu, VMXON, VMXON_REGION), UD));
  });

  it("raises #GP(0) at CPL > 0, without CR0.NE, or when IA32_FEATURE_CONTROL forbids it", () => {
    const cases: ((c: Cpu) => void)[] = [
      (c) => (c.cpl = 3),
      (c) => (c.cr0 &= ~CR0_NE),
      (c) => c.msr.load(IA32_FEATURE_CONTROL, 4, 0), // VMX enabled but not locked
      (c) => c.msr.load(IA32_FEATURE_CONTROL, 1, 0), // locked without VMX outside SMX
    ];
    for (const breakIt of cases) {
      const { cpu } = vmxCpu();
      breakIt(cpu);
      const f = run(cpu, VMXON, VMXON_REGION);
      assert.ok(isFault(f, GP) && (f as Fault).errorCode === 0);
      assert.equal(cpu.vmx.on, false);
    }
  });

  it("fails invalid for an unaligned or too wide address and a wrong or shadow revision", () => {
    const bad: [number, number, (c: Cpu) => void][] = [
      [VMXON_REGION + 8, 0, () => {}],
      [VMXON_REGION, 0x10, () => {}], // bit 36: beyond MAXPHYADDR
      [VMXON_REGION, 0, (c) => c.mem.write(VMXON_REGION, 4, VMCS_REVISION_ID + 1)],
      [VMXON_REGION, 0, (c) => c.mem.write(VMXON_REGION, 4, VMCS_REVISION_ID | 0x80000000)],
    ];
    for (const [lo, hi, prep] of bad) {
      const { cpu } = vmxCpu();
      prep(cpu);
      assert.equal(run(cpu, VMXON, lo, hi), undefined);
      assert.equal(outcome(cpu), "failInvalid");
      assert.equal(cpu.vmx.on, false);
    }
  });

  it("enters VMX operation with no current VMCS; again in root operation it is error 15", () => {
    const { cpu } = vmxCpu();
    assert.equal(run(cpu, VMXON, VMXON_REGION), undefined);
    assert.equal(outcome(cpu), "succeed");
    assert.ok(cpu.vmx.on);
    assert.equal(run(cpu, VMPTRST), undefined);
    assert.equal(cpu.mem.read(OPERAND, 4), 0xffffffff);
    assert.equal(cpu.mem.read(OPERAND + 4, 4), 0xffffffff);
    run(cpu, VMXON, VMXON_REGION);
    assert.equal(outcome(cpu), "failInvalid"); // VMfail without a current VMCS
    run(cpu, VMCLEAR, VMCS_REGION);
    run(cpu, VMPTRLD, VMCS_REGION);
    run(cpu, VMXON, VMXON_REGION);
    assert.equal(outcome(cpu), "failValid");
    assert.equal(error(cpu), 15);
  });

  it("keeps CR4.VMXE and the CR0 fixed bits in VMX operation (MOV to CR raises #GP)", () => {
    const { cpu } = vmxCpu();
    run(cpu, VMXON, VMXON_REGION);
    cpu.regs[EAX] = cpu.cr4 & ~CR4_VMXE;
    assert.ok(isFault(exec(cpu, [0x0f, 0x22, 0xe0]), GP)); // mov cr4, eax
    cpu.regs[EAX] = cpu.cr0 & ~CR0_NE;
    assert.ok(isFault(exec(cpu, [0x0f, 0x22, 0xc0]), GP)); // mov cr0, eax
    cpu.regs[EAX] = cpu.cr0 & 0x7fffffff;
    assert.ok(isFault(exec(cpu, [0x0f, 0x22, 0xc0]), GP)); // paging off
    run(cpu, VMXOFF);
    cpu.regs[EAX] = cpu.cr4 & ~CR4_VMXE;
    assert.equal(exec(cpu, [0x0f, 0x22, 0xe0]), undefined);
  });
});

describe("VMX instructions outside and in root operation", () => {
  it("raise #UD outside VMX operation (VMCALL too)", () => {
    const { cpu } = vmxCpu();
    for (const bytes of [VMCLEAR, VMPTRLD, VMPTRST, VMREAD_EAX_ECX, VMWRITE_ECX_EAX, VMLAUNCH]) {
      assert.ok(isFault(run(cpu, bytes), UD));
    }
    for (const bytes of [VMRESUME, VMXOFF, VMCALL, INVEPT, INVVPID]) {
      assert.ok(isFault(run(cpu, bytes), UD));
    }
  });

  it("raise #GP(0) at CPL > 0 and #UD in virtual-8086 mode", () => {
    const { cpu } = vmxCpu();
    run(cpu, VMXON, VMXON_REGION);
    cpu.cpl = 3;
    for (const bytes of [VMCLEAR, VMPTRLD, VMXOFF, VMLAUNCH, VMCALL, INVEPT]) {
      assert.ok(isFault(run(cpu, bytes, VMCS_REGION), GP));
    }
    cpu.cpl = 0;
    cpu.flags.load(cpu.flags.get() | VM);
    assert.ok(isFault(run(cpu, VMCLEAR, VMCS_REGION), UD));
  });

  it("VMCLEAR: errors 2 (address) and 3 (VMXON pointer); clears the launch state", () => {
    const { cpu } = vmxCpu();
    vmxOnWithVmcs(cpu);
    run(cpu, VMCLEAR, VMCS_REGION + 0x10);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,2");
    run(cpu, VMCLEAR, VMXON_REGION);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,3");
    cpu.vmx.vmcs.launched = true;
    run(cpu, VMCLEAR, VMCS_REGION);
    assert.equal(outcome(cpu), "succeed");
    assert.equal(cpu.vmx.current, null);
    run(cpu, VMPTRLD, VMCS_REGION);
    assert.equal(cpu.vmx.vmcs.launched, false);
  });

  it("VMPTRLD: errors 9 (address), 10 (VMXON pointer), 11 (revision); VMPTRST stores it", () => {
    const { cpu, mem } = vmxCpu();
    vmxOnWithVmcs(cpu);
    run(cpu, VMPTRLD, VMCS_REGION, 0x100);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,9");
    run(cpu, VMPTRLD, VMXON_REGION);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,10");
    mem.write(0x13000, 4, VMCS_REVISION_ID ^ 1);
    run(cpu, VMPTRLD, 0x13000);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,11");
    run(cpu, VMPTRST, 0);
    assert.equal(outcome(cpu), "succeed");
    assert.equal(mem.read(OPERAND, 4), VMCS_REGION);
    assert.equal(mem.read(OPERAND + 4, 4), 0);
  });

  it("VMREAD, VMWRITE, VMLAUNCH, VMRESUME and VMCALL fail invalid without a current VMCS", () => {
    const { cpu } = vmxCpu();
    run(cpu, VMXON, VMXON_REGION);
    for (const bytes of [VMREAD_EAX_ECX, VMWRITE_ECX_EAX, VMLAUNCH, VMRESUME, VMCALL]) {
      assert.equal(run(cpu, bytes), undefined);
      assert.equal(outcome(cpu), "failInvalid");
    }
  });

  it("VMCALL in root operation is error 1 (no dual-monitor treatment)", () => {
    const { cpu } = vmxCpu();
    vmxOnWithVmcs(cpu);
    run(cpu, VMCALL);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,1");
  });

  it("VMLAUNCH of a launched VMCS is error 4, VMRESUME of a clear one error 5", () => {
    const { cpu } = vmxCpu();
    vmxOnWithVmcs(cpu);
    run(cpu, VMRESUME);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,5");
    cpu.vmx.vmcs.launched = true;
    run(cpu, VMLAUNCH);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,4");
  });

  it("VMLAUNCH right after MOV SS is error 26 (the run loop keeps the blocking)", () => {
    const { cpu, mem } = vmxCpu();
    const v = vmxOnWithVmcs(cpu);
    validVmcs(cpu, v);
    mem.ram.set(VMLAUNCH, CODE);
    cpu.eip = cpu.nextEip = CODE;
    cpu.blocking = BLOCKING_MOV_SS; // as the instruction before left it
    cpu.flags.load(cpu.flags.get() | ARITH);
    cpu.run(1);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,26");
    assert.equal(cpu.vmx.nonRoot, false);
  });

  it("VMLAUNCH enters the guest and sets the launch state; the exit comes back to the host", () => {
    const { cpu, mem } = vmxCpu();
    const v = vmxOnWithVmcs(cpu);
    validVmcs(cpu, v);
    mem.ram.set([0x0f, 0xa2], GUEST_RIP); // CPUID: exits unconditionally
    mem.ram.set(VMLAUNCH, CODE);
    cpu.eip = cpu.nextEip = CODE;
    const exit = cpu.run(100);
    assert.equal(exit.kind, "halt");
    assert.equal(cpu.eip, HOST_RIP + 1);
    assert.ok(v.launched);
    assert.equal(v.read(F.ExitReason), 10);
    assert.equal(v.read(F.GuestRip), GUEST_RIP);
    assert.equal(v.read(F.ExitInstructionLength), 2);
    // VMRESUME now, VMLAUNCH no more.
    cpu.eip = cpu.nextEip = CODE;
    run(cpu, VMLAUNCH);
    assert.equal([outcome(cpu), error(cpu)].join(), "failValid,4");
  });

  it("INVEPT and INVVPID: error 28 for unsupported types and bad descriptors", () => {
    const { cpu, mem } = vmxCpu();
    vmxOnWithVmcs(cpu);
    const desc = (a: number, b: number, c: number, d: number): void => {
      [a, b, c, d].forEach((x, k) => mem.write(OPERAND + 4 * k, 4, x >>> 0));
    };
    const cases: [number[], number, number[], string][] = [
      [INVEPT, 0, [0x5000 | 0x1e, 0, 0, 0], "failValid"], // type 0 unsupported
      [INVEPT, 3, [0x5000 | 0x1e, 0, 0, 0], "failValid"],
      [INVEPT, 1, [0x5000 | 0x1f, 0, 0, 0], "failValid"], // EPTP walk length 4 but type 7 (reserved)
      [INVEPT, 1, [0x5000 | 0x1e, 0, 0, 0], "succeed"], // WB, 4-level
      [INVEPT, 2, [0, 0, 0, 0], "succeed"],
      [INVVPID, 4, [1, 0, 0, 0], "failValid"], // type 4 unsupported
      [INVVPID, 1, [0, 0, 0, 0], "failValid"], // VPID 0
      [INVVPID, 1, [0x10001, 0, 0, 0], "failValid"], // reserved bits 63:16
      [INVVPID, 0, [1, 0, 0, 0x8000], "failValid"], // non-canonical address
      [INVVPID, 0, [1, 0, 0x1000, 0], "succeed"],
      [INVVPID, 1, [1, 0, 0, 0], "succeed"],
      [INVVPID, 2, [0, 0, 0, 0], "succeed"], // all-context: VPID ignored
      [INVVPID, 3, [2, 0, 0, 0], "succeed"],
    ];
    for (const [bytes, type, d, want] of cases) {
      desc(d[0], d[1], d[2], d[3]);
      cpu.regs[EAX] = type;
      cpu.vmx.vmcs.write(F.VmInstructionError, 0);
      run(cpu, bytes);
      assert.equal(outcome(cpu), want, `${bytes[3].toString(16)} type ${type} ${d.join(",")}`);
      if (want === "failValid") assert.equal(error(cpu), 28);
    }
  });

  it("VMXOFF leaves VMX operation and writes the active VMCSs back", () => {
    const { cpu } = vmxCpu();
    const v = vmxOnWithVmcs(cpu);
    v.write(F.GuestRip, 0x1234);
    run(cpu, VMXOFF);
    assert.equal(outcome(cpu), "succeed");
    assert.equal(cpu.vmx.on, false);
    assert.ok(isFault(run(cpu, VMPTRST), UD));
    // Back in: the region still holds the field.
    run(cpu, VMXON, VMXON_REGION);
    run(cpu, VMPTRLD, VMCS_REGION);
    assert.equal(cpu.vmx.vmcs.read(F.GuestRip), 0x1234);
  });
});
