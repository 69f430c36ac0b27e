/**
 * The VMX instructions in VMX root operation and outside VMX operation (SDM Vol. 3C,
 * chapter 31, each following its "Operation" pseudocode): VMXON, VMXOFF, VMCLEAR,
 * VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMLAUNCH, VMRESUME, VMCALL, INVEPT, INVVPID.
 *
 * In VMX non-root operation these handlers never run: their opcode-table rows carry an
 * `exit` annotation, and the non-root run loop hands such rows to nonroot.ts, which
 * raises the #UD cases that come first and then exits (26.1.2). The exit's instruction
 * information and qualification come from exit-info.ts, the one place that encodes them.
 */
import { AR_L, BLOCKING_MOV_SS, CS, EFER_LMA, GP, MAXPHYADDR, UD } from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { fault } from "../fault.js";
import type { Handler } from "../opcodes.js";
import { memAddr, readE, readMem, setReg, writeMem } from "../exec/operands.js";
import { MISC_VMWRITE_EXIT_INFO, VMCS_REVISION_ID } from "./capabilities.js";
import { FEATURES, Proc2 } from "./controls.js";
import {
  eptpProblem,
  inveptTypeSupported,
  invvpidTypeSupported,
  InveptType,
  InvvpidType,
} from "./ept.js";
import { vmEntry } from "./entry.js";
import { encHigh, FIELD_MAP, FieldType } from "./fields.js";
import { INVALID_VMCS_POINTER } from "./state.js";
import {
  eptRootPage,
  inveptAll,
  inveptContext,
  invvpidAddress,
  invvpidAll,
  invvpidContext,
} from "./tlb.js";
import { traceNote } from "./trace.js";
import { clearRegion, regionRevision, SHADOW_VMCS_INDICATOR } from "./vmcs.js";
import { VmxError, vmFail, vmFailInvalid, vmFailValid, vmSucceed } from "./vmfail.js";

/** IA-32e mode with a code segment that is not 64-bit. */
function compatibilityMode(c: Cpu): boolean {
  return (c.msr.efer & EFER_LMA) !== 0 && (c.segs[CS].ar & AR_L) === 0;
}

/**
 * The checks every VMX instruction but VMXON and VMCALL begins with: #UD outside VMX
 * operation, in real and virtual-8086 mode and in compatibility mode; then #GP(0) at
 * CPL > 0 (the non-root VM exit in between is nonroot.ts's).
 */
function rootChecks(c: Cpu): void {
  if (!c.vmx.on || !c.protectedMode || c.v86 || compatibilityMode(c)) fault(UD);
  if (c.vmx.nonRoot) throw new Error("VMX instruction handler reached in non-root operation");
  if (c.cpl > 0) fault(GP, 0);
}

/** Bits of a physical address's high dword beyond MAXPHYADDR. */
const PHYS_HI_RESERVED = ~((1 << (MAXPHYADDR - 32)) - 1);

/**
 * The 64-bit memory operand of VMXON, VMCLEAR and VMPTRLD as a physical address, or -1
 * when it is not 4-KiB aligned or sets bits beyond the physical-address width.
 */
function physicalOperand(c: Cpu, i: Instr): number {
  const lo = readMem(c, memAddr(c, i, 8, false), 64);
  const hi = c.hi;
  if (lo & 0xfff || hi & PHYS_HI_RESERVED) return -1;
  return (hi >>> 0) * 0x100000000 + (lo >>> 0);
}

/** Whether a region's revision dword names this implementation's VMCS format. */
function revisionMatches(rev: number, shadowAllowed: boolean): boolean {
  if ((rev & 0x7fffffff) !== VMCS_REVISION_ID) return false;
  return shadowAllowed || (rev & SHADOW_VMCS_INDICATOR) === 0;
}

// ---------------------------------------------------------------- VMXON, VMXOFF

/** VMXON m64 (F3 0F C7 /6). */
export const vmxon: Handler = (c, i) => {
  const x = c.vmx;
  if (!c.protectedMode || !(c.cr4 & 0x2000) || c.v86 || compatibilityMode(c)) fault(UD);
  if (x.nonRoot) throw new Error("VMXON handler reached in non-root operation");
  if (x.on) {
    if (c.cpl > 0) fault(GP, 0);
    return vmFail(c, VmxError.VmxonInRoot);
  }
  // CR0/CR4 must hold their VMX-fixed bits; IA32_FEATURE_CONTROL locked with VMX
  // enabled outside SMX (no SMX here); no A20M on this CPU.
  const fc = c.msr.read(0x3a)[0];
  const cr0ok = (c.cr0 & 0x80000021) === (0x80000021 | 0);
  if (c.cpl > 0 || !cr0ok || (fc & 5) !== 5) fault(GP, 0);
  const addr = physicalOperand(c, i);
  if (addr < 0 || !revisionMatches(regionRevision(c.mem, addr), false)) return vmFailInvalid(c);
  x.on = true;
  x.vmxonPointer = addr;
  x.current = null;
  x.currentPointer = INVALID_VMCS_POINTER;
  traceNote(c, `VMXON region 0x${addr.toString(16)}`);
  vmSucceed(c);
};

/** VMXOFF (0F 01 C4). */
export const vmxoff: Handler = (c) => {
  rootChecks(c);
  // No dual-monitor treatment of SMIs: VMXOFF always succeeds (error 23 cannot occur).
  c.vmx.off(c.mem);
  traceNote(c, "VMXOFF");
  vmSucceed(c);
  // An INIT held while in VMX root operation is taken now (cpu.ts, takeEvents).
  c.kick();
};

// ---------------------------------------------------------------- VMCS pointers

/** VMCLEAR m64 (66 0F C7 /6). */
export const vmclear: Handler = (c, i) => {
  rootChecks(c);
  const addr = physicalOperand(c, i);
  if (addr < 0) return vmFail(c, VmxError.VmclearInvalidAddress);
  if (addr === c.vmx.vmxonPointer) return vmFail(c, VmxError.VmclearVmxonPointer);
  // Write back a cached VMCS (launch state clear), or initialize the region's own data.
  if (!c.vmx.clear(c.mem, addr)) clearRegion(c.mem, addr);
  vmSucceed(c);
};

/** VMPTRLD m64 (NP 0F C7 /6). */
export const vmptrld: Handler = (c, i) => {
  rootChecks(c);
  const addr = physicalOperand(c, i);
  if (addr < 0) return vmFail(c, VmxError.VmptrldInvalidAddress);
  if (addr === c.vmx.vmxonPointer) return vmFail(c, VmxError.VmptrldVmxonPointer);
  const shadowing = (FEATURES.proc2 & Proc2.VmcsShadowing) !== 0;
  if (!revisionMatches(regionRevision(c.mem, addr), shadowing)) {
    return vmFail(c, VmxError.VmptrldBadRevision);
  }
  c.vmx.makeCurrent(c.mem, addr);
  vmSucceed(c);
};

/** VMPTRST m64 (NP 0F C7 /7): FFFFFFFF_FFFFFFFFH when there is no current VMCS. */
export const vmptrst: Handler = (c, i) => {
  rootChecks(c);
  const p = c.vmx.currentPointer;
  const lo = p < 0 ? -1 : (p % 0x100000000) | 0;
  const hi = p < 0 ? -1 : Math.floor(p / 0x100000000) | 0;
  writeMem(c, memAddr(c, i, 8, true), 64, lo, hi);
  vmSucceed(c);
};

// ---------------------------------------------------------------- VMREAD, VMWRITE

/** The field encoding in register `r` (64 bits in 64-bit mode, else 32): [lo, hi]. */
function encodingOperand(c: Cpu, r: number): [number, number] {
  return [c.regs[r] >>> 0, c.mode64 ? c.regsHi[r] : 0];
}

/** VMREAD Ey, Gy (NP 0F 78): the field named by Gy into r/m (64 bits in 64-bit mode). */
export const vmread: Handler = (c, i) => {
  rootChecks(c);
  const v = c.vmx.current;
  if (v === null) return vmFailInvalid(c);
  const [enc, encHi] = encodingOperand(c, i.reg);
  const d = FIELD_MAP.lookup(enc, encHi);
  if (d === undefined) return vmFailValid(c, VmxError.UnsupportedComponent);
  // The high access type reads bits 63:32 of a 64-bit field as a 32-bit value.
  const lo = encHigh(enc) ? v.readHi(d.enc) : v.read(d.enc);
  const hi = encHigh(enc) ? 0 : v.readHi(d.enc);
  const bits = c.mode64 ? 64 : 32;
  if (i.mod === 3) setReg(c, i.rm, bits, lo | 0, hi | 0);
  else writeMem(c, memAddr(c, i, bits >> 3, true), bits, lo | 0, hi | 0);
  vmSucceed(c);
};

/** VMWRITE Gy, Ey (NP 0F 79): r/m into the field named by Gy. */
export const vmwrite: Handler = (c, i) => {
  rootChecks(c);
  const v = c.vmx.current;
  if (v === null) return vmFailInvalid(c);
  const bits = c.mode64 ? 64 : 32;
  const lo = readE(c, i, bits);
  const hi = c.mode64 ? c.hi : 0;
  const [enc, encHi] = encodingOperand(c, i.reg);
  const d = FIELD_MAP.lookup(enc, encHi);
  if (d === undefined) return vmFailValid(c, VmxError.UnsupportedComponent);
  if (d.type === FieldType.ExitInfo && !MISC_VMWRITE_EXIT_INFO) {
    return vmFailValid(c, VmxError.VmwriteReadOnly);
  }
  // A field shorter than the operand ignores the high bits; a longer one has its high
  // bits cleared; the high access type writes bits 63:32 only (31.3, VMWRITE).
  if (encHigh(enc)) v.write(d.enc, v.read(d.enc), lo);
  else v.write(d.enc, lo, hi);
  vmSucceed(c);
};

// ---------------------------------------------------------------- VMLAUNCH, VMRESUME

/** VMLAUNCH (0F 01 C2) and VMRESUME (0F 01 C3). */
export const vmlaunchVmresume =
  (launch: boolean): Handler =>
  (c) => {
    rootChecks(c);
    const v = c.vmx.current;
    if (v === null) return vmFailInvalid(c);
    // The blocking left by the instruction before this one (kept by the run loop).
    if (c.vmx.events.blockingBefore & BLOCKING_MOV_SS) {
      return vmFailValid(c, VmxError.EntryMovSsBlocking);
    }
    if (launch && v.launched) return vmFailValid(c, VmxError.VmlaunchNonClear);
    if (!launch && !v.launched) return vmFailValid(c, VmxError.VmresumeNonLaunched);
    vmEntry(c, launch);
  };

// ---------------------------------------------------------------- VMCALL

/**
 * VMCALL (0F 01 C1) in VMX root operation: without the dual-monitor treatment of SMIs
 * and SMM, VMfail(VMCALL executed in VMX root operation). Outside VMX operation #UD.
 */
export const vmcall: Handler = (c) => {
  if (!c.vmx.on) fault(UD);
  if (c.vmx.nonRoot) throw new Error("VMCALL handler reached in non-root operation");
  if (c.v86 || compatibilityMode(c)) fault(UD);
  if (c.cpl > 0) fault(GP, 0);
  vmFail(c, VmxError.VmcallInRoot);
};

// ---------------------------------------------------------------- INVEPT, INVVPID

/** The type register of INVEPT/INVVPID: -1 when bits 63:32 are set (unsupported). */
function typeOperand(c: Cpu, r: number): number {
  if (c.mode64 && c.regsHi[r] !== 0) return -1;
  return c.regs[r] >>> 0;
}

/** INVEPT Gy, Mdq (66 0F 38 80). */
export const invept: Handler = (c, i) => {
  rootChecks(c);
  const type = typeOperand(c, i.reg);
  if (!inveptTypeSupported(type)) return vmFail(c, VmxError.InvalidInvOperand);
  const lin = memAddr(c, i, 16, false);
  const eptpLo = c.rd(lin, 4);
  const eptpHi = c.rd(lin + 4, 4);
  if (type === InveptType.SingleContext) {
    // The EPTP must be one VM entry would accept (27.2.1.1).
    if (eptpProblem(eptpLo, eptpHi) !== null) return vmFail(c, VmxError.InvalidInvOperand);
    inveptContext(c, eptRootPage(eptpLo, eptpHi));
  } else inveptAll(c);
  vmSucceed(c);
};

/** INVVPID Gy, Mdq (66 0F 38 81). */
export const invvpid: Handler = (c, i) => {
  rootChecks(c);
  const type = typeOperand(c, i.reg);
  if (!invvpidTypeSupported(type)) return vmFail(c, VmxError.InvalidInvOperand);
  const lin = memAddr(c, i, 16, false);
  const d0 = c.rd(lin, 4);
  const d1 = c.rd(lin + 4, 4);
  const addrLo = c.rd(lin + 8, 4);
  const addrHi = c.rd(lin + 12, 4);
  // Bits 63:16 of the descriptor are reserved; VPID 0 is the host's.
  if (d0 >>> 16 !== 0 || d1 !== 0) return vmFail(c, VmxError.InvalidInvOperand);
  const vpid = d0 & 0xffff;
  if (type !== InvvpidType.AllContext && vpid === 0) return vmFail(c, VmxError.InvalidInvOperand);
  switch (type) {
    case InvvpidType.IndividualAddress:
      if ((addrHi << 16) >> 16 !== addrHi) return vmFail(c, VmxError.InvalidInvOperand);
      invvpidAddress(c, vpid, (addrHi & 0xffff) * 0x100000000 + (addrLo >>> 0));
      break;
    case InvvpidType.SingleContext:
      invvpidContext(c, vpid, false);
      break;
    case InvvpidType.AllContext:
      invvpidAll(c);
      break;
    default:
      invvpidContext(c, vpid, true);
  }
  vmSucceed(c);
};
