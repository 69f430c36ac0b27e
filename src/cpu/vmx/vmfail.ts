/**
 * The outcomes of VMX instructions (SDM Vol. 3C, 31.2 "Conventions"): VMsucceed,
 * VMfailInvalid and VMfailValid with their RFLAGS effects, and the VM-instruction error
 * numbers (31.4, Table 31-1), with their SDM descriptions for traces.
 */
import type { Cpu } from "../cpu.js";
import { ARITH, CF, ZF } from "../flags.js";
import { F } from "./fields.js";
import { traceNote } from "./trace.js";

/** VM-instruction error numbers (SDM Vol. 3C, Table 31-1). */
export const enum VmxError {
  VmcallInRoot = 1,
  VmclearInvalidAddress = 2,
  VmclearVmxonPointer = 3,
  VmlaunchNonClear = 4,
  VmresumeNonLaunched = 5,
  VmresumeAfterVmxoff = 6,
  EntryInvalidControls = 7,
  EntryInvalidHostState = 8,
  VmptrldInvalidAddress = 9,
  VmptrldVmxonPointer = 10,
  VmptrldBadRevision = 11,
  UnsupportedComponent = 12,
  VmwriteReadOnly = 13,
  VmxonInRoot = 15,
  EntryInvalidExecutiveVmcs = 16,
  EntryNonLaunchedExecutive = 17,
  EntryExecutiveNotVmxon = 18,
  VmcallNonClear = 19,
  VmcallInvalidExitControls = 20,
  VmcallBadMsegRevision = 22,
  VmxoffDualMonitor = 23,
  VmcallInvalidSmmMonitor = 24,
  EntryInvalidExecutiveControls = 25,
  EntryMovSsBlocking = 26,
  InvalidInvOperand = 28,
}

/** SDM descriptions of the VM-instruction errors, for traces. */
export const VMX_ERROR_NAMES: Record<number, string> = {
  1: "VMCALL executed in VMX root operation",
  2: "VMCLEAR with invalid physical address",
  3: "VMCLEAR with VMXON pointer",
  4: "VMLAUNCH with non-clear VMCS",
  5: "VMRESUME with non-launched VMCS",
  6: "VMRESUME after VMXOFF",
  7: "VM entry with invalid control field(s)",
  8: "VM entry with invalid host-state field(s)",
  9: "VMPTRLD with invalid physical address",
  10: "VMPTRLD with VMXON pointer",
  11: "VMPTRLD with incorrect VMCS revision identifier",
  12: "VMREAD/VMWRITE from/to unsupported VMCS component",
  13: "VMWRITE to read-only VMCS component",
  15: "VMXON executed in VMX root operation",
  16: "VM entry with invalid executive-VMCS pointer",
  17: "VM entry with non-launched executive VMCS",
  18: "VM entry with executive-VMCS pointer not VMXON pointer",
  19: "VMCALL with non-clear VMCS",
  20: "VMCALL with invalid VM-exit control fields",
  22: "VMCALL with incorrect MSEG revision identifier",
  23: "VMXOFF under dual-monitor treatment of SMIs and SMM",
  24: "VMCALL with invalid SMM-monitor features",
  25: "VM entry with invalid VM-execution control fields in executive VMCS",
  26: "VM entry with events blocked by MOV SS",
  28: "Invalid operand to INVEPT/INVVPID",
};

/** VMsucceed: CF, PF, AF, ZF, SF and OF cleared. */
export function vmSucceed(c: Cpu): void {
  c.flags.load(c.flags.get() & ~ARITH);
}

/** VMfailInvalid: CF set, PF, AF, ZF, SF and OF cleared (no current VMCS to report in). */
export function vmFailInvalid(c: Cpu): void {
  c.flags.load((c.flags.get() & ~ARITH) | CF);
  traceNote(c, "VMfailInvalid");
}

/** VMfailValid(error): ZF set, the others cleared, the error in the current VMCS. */
export function vmFailValid(c: Cpu, error: VmxError): void {
  c.flags.load((c.flags.get() & ~ARITH) | ZF);
  c.vmx.vmcs.write(F.VmInstructionError, error);
  traceNote(c, `VMfailValid(${error}: ${VMX_ERROR_NAMES[error] ?? "?"})`);
}

/** VMfail(error): VMfailValid when there is a current VMCS, else VMfailInvalid. */
export function vmFail(c: Cpu, error: VmxError): void {
  if (c.vmx.current !== null) vmFailValid(c, error);
  else vmFailInvalid(c);
}
