/**
 * VM exits (SDM Vol. 3C, chapter 28): recording the exit information (28.2), saving the
 * guest state (28.3), the MSR-store list (28.4), loading the host state (28.5), the
 * MSR-load list (28.6) and VMX aborts (28.7). `vmExit` ends by throwing `VmExitSignal`,
 * which unwinds the instruction or event in progress; the CPU's run loop catches it
 * and carries on with the host (like Fault for exceptions).
 */
import { ActivityState } from "../../engine/engine.js";
import {
  AR_DB,
  AR_G,
  AR_L,
  AR_P,
  AR_S,
  AR_TYPE_ACCESSED,
  AR_TYPE_CODE,
  AR_TYPE_RW,
  AR_UNUSABLE,
  BLOCKING_MOV_SS,
  BLOCKING_STI,
  CR0_CD,
  CR0_ET,
  CR0_NW,
  CR0_PG,
  CR4_PAE,
  CR4_PCIDE,
  CS,
  DR7_FIXED1,
  DS,
  EFER_LMA,
  EFER_LME,
  ES,
  ESP,
  FS,
  GS,
  SS,
  SYS_LDT,
  SYS_TSS32_BUSY,
} from "../arch.js";
import type { Cpu } from "../cpu.js";
import { Fault } from "../fault.js";
import { loadPdptes } from "../mmu.js";
import { IA32_SYSENTER_CS, IA32_SYSENTER_EIP, IA32_SYSENTER_ESP } from "../msr.js";
import { ExitReason } from "./exit-reasons.js";
import { EntryCtl, ExitCtl, Pin, Proc, Proc2 } from "./controls.js";
import { F } from "./fields.js";
import { loadMsrList, storeMsrList } from "./msr-lists.js";
import { exitToHostTlb } from "./tlb.js";
import { beforeExit } from "./events.js";
import { traceExit } from "./trace.js";
import { writeAbortIndicator, type Vmcs } from "./vmcs.js";

/** Thrown by vmExit once the host state is loaded: the run loop catches it. */
export class VmExitSignal {
  constructor(readonly reason: number) {}
}

/** Exit reason bit 31: VM-entry failure (SDM Vol. 3C, 25.9.1, Table 25-17). */
export const EXIT_REASON_ENTRY_FAILURE = 0x80000000;

/** VMX-abort indicator values (SDM Vol. 3C, 28.7). */
export const enum VmxAbort {
  SaveGuestMsrs = 1,
  HostPdpte = 2,
  VmcsCorrupted = 3,
  LoadHostMsrs = 4,
  MachineCheck = 5,
  HostNotIa32e = 6,
}

// Interruptibility-state bits beyond arch.ts's STI and MOV SS (SDM Vol. 3C, Table 25-3).
export const BLOCKING_SMI = 1 << 2;
export const BLOCKING_NMI = 1 << 3;

// Interruption-information format (SDM Vol. 3C, Table 25-18 and 25-19).
export const INTR_INFO_VALID = 0x80000000;
export const INTR_TYPE_SHIFT = 8;
export const INTR_TYPE_NMI = 2;

/**
 * What a VM exit reports beside its reason and qualification (SDM Vol. 3C, 28.2). Fields
 * left out are not written, except the two interruption-information fields, whose valid
 * bit is cleared when not given (28.2.2 and 28.2.4).
 */
export interface ExitInfo {
  /** Guest-linear address field (a linear address as this CPU keeps it: folded 48 bits). */
  guestLinear?: number;
  /** Guest-physical address field (EPT violations and misconfigurations). */
  guestPhysical?: number;
  /** VM-exit instruction length (instruction-caused exits). */
  instructionLength?: number;
  /** VM-exit instruction information (instructions.ts: operandInfo). */
  instructionInfo?: number;
  /** VM-exit interruption information and error code (exceptions, NMIs, interrupts). */
  interruptionInfo?: number;
  interruptionErrorCode?: number;
  /** IDT-vectoring information and error code (exits during event delivery). */
  idtVectoringInfo?: number;
  idtVectoringErrorCode?: number;
  /** Guest pending debug exceptions to save (SDM 25.4.2); 0 when left out. */
  pendingDebugExceptions?: number;
}

/** Writes a natural-width field from a number: negative values are sign-extended int32. */
function writeNatural(v: Vmcs, enc: F, x: number): void {
  // Below -2^32 the high half is not all ones (a sign-extended 48-bit address).
  if (x < 0) v.write(enc, (x % 0x100000000) | 0, Math.floor(x / 0x100000000) | 0);
  else v.write64(enc, x);
}

/**
 * Writes a linear address as this CPU keeps it (a uint32 or int32 outside IA-32e mode, a
 * 48-bit folded canonical address in it) as the 64-bit canonical value (bit 47 extended).
 */
export function writeLinear(v: Vmcs, enc: F, lin: number): void {
  if (lin < 0) v.write(enc, lin | 0, 0);
  else {
    const hi = Math.floor(lin / 0x100000000);
    v.write(enc, (lin % 0x100000000) | 0, (hi << 16) >> 16);
  }
}

/**
 * A VM exit from VMX non-root operation with basic exit reason `reason` (exit-reasons.ts)
 * and exit qualification `qualification` (negative: a sign-extended displacement).
 * Never returns: throws VmExitSignal after the host state is loaded.
 */
export function vmExit(c: Cpu, reason: number, qualification = 0, info: ExitInfo = {}): never {
  const x = c.vmx;
  const v = x.vmcs;
  if (!x.nonRoot) throw new Error(`VM exit (reason ${reason}) outside VMX non-root operation`);
  // Events (events.ts): IDT-vectoring information, the preemption timer, pending MTF.
  beforeExit(c, v, info);
  // 28.2: exit information.
  v.write(F.ExitReason, reason);
  writeNatural(v, F.ExitQualification, qualification);
  if (info.guestLinear !== undefined) writeLinear(v, F.GuestLinearAddress, info.guestLinear);
  if (info.guestPhysical !== undefined) v.write64(F.GuestPhysicalAddress, info.guestPhysical);
  if (info.instructionLength !== undefined) {
    v.write(F.ExitInstructionLength, info.instructionLength);
  }
  if (info.instructionInfo !== undefined) v.write(F.ExitInstructionInfo, info.instructionInfo);
  v.write(F.ExitInterruptionInfo, info.interruptionInfo ?? 0);
  if (info.interruptionErrorCode !== undefined) {
    v.write(F.ExitInterruptionErrorCode, info.interruptionErrorCode);
  }
  v.write(F.IdtVectoringInfo, info.idtVectoringInfo ?? 0);
  if (info.idtVectoringErrorCode !== undefined) {
    v.write(F.IdtVectoringErrorCode, info.idtVectoringErrorCode);
  }
  traceExit(c, reason, qualification, info);
  const guestIa32e = c.longMode;
  // 28.3: guest state, then 28.4: the MSR-store list.
  saveGuestState(c, v, info.pendingDebugExceptions ?? 0);
  x.nonRoot = false;
  if (!storeMsrList(c, v)) vmxAbort(c, VmxAbort.SaveGuestMsrs);
  // 28.5 and 28.6: the host state and the MSR-load list.
  if (guestIa32e && !(v.read(F.ExitControls) & ExitCtl.HostAddressSpaceSize)) {
    vmxAbort(c, VmxAbort.HostNotIa32e);
  }
  finishExit(c, v, reason, info);
  throw new VmExitSignal(reason);
}

/**
 * The part of a VM exit shared with VM-entry failures after the guest state was loaded
 * (SDM Vol. 3C, 27.8): host state, blocking, TLB, the MSR-load list.
 */
export function finishExit(c: Cpu, v: Vmcs, reason: number, info: ExitInfo): void {
  // 28.5.5: the host's TLB bank (VPID 0, no EPT) before anything reads host memory (the
  // PDPTEs); without "enable VPID" the mappings of VPID 0 are invalidated.
  exitToHostTlb(c, v);
  if (!loadHostState(c, v)) vmxAbort(c, VmxAbort.HostPdpte);
  // Blocking by STI and MOV SS ends with a VM exit; an NMI that caused the exit leaves
  // NMIs blocked (with or without "virtual NMIs": the NMI was taken, 26.2).
  c.blocking &= ~(BLOCKING_STI | BLOCKING_MOV_SS);
  const intr = info.interruptionInfo ?? 0;
  const nmiExit =
    reason === ExitReason.ExceptionOrNmi &&
    (intr & INTR_INFO_VALID) !== 0 &&
    ((intr >>> INTR_TYPE_SHIFT) & 7) === INTR_TYPE_NMI;
  if (nmiExit) c.nmiBlocked = true;
  c.activity = ActivityState.Active;
  // The host's blocking changed: its pending events (an NMI held back in the guest, an
  // interrupt) are looked at again at the first instruction boundary.
  c.eventPending = true;
  if (loadMsrList(c, v.read64(F.ExitMsrLoadAddress), v.read(F.ExitMsrLoadCount)) !== 0) {
    vmxAbort(c, VmxAbort.LoadHostMsrs);
  }
}

/** SDM Vol. 3C, 28.3: saving the guest state into the current VMCS. */
export function saveGuestState(c: Cpu, v: Vmcs, pendingDebug: number): void {
  const exitCtl = v.read(F.ExitControls);
  v.write(F.GuestCr0, c.cr0);
  v.write(F.GuestCr3, c.cr3, c.cr3Hi);
  v.write(F.GuestCr4, c.cr4);
  if (exitCtl & ExitCtl.SaveDebugControls) {
    v.write(F.GuestDr7, c.dr[7]);
    v.write(F.GuestIa32Debugctl, 0); // no DEBUGCTL bits are implemented
  }
  v.write(F.GuestIa32SysenterCs, c.msr.read(IA32_SYSENTER_CS)[0]);
  const esp = c.msr.read(IA32_SYSENTER_ESP);
  v.write(F.GuestIa32SysenterEsp, esp[0], esp[1]);
  const eip = c.msr.read(IA32_SYSENTER_EIP);
  v.write(F.GuestIa32SysenterEip, eip[0], eip[1]);
  if (exitCtl & ExitCtl.SavePat) {
    const pat = c.msr.read(0x277);
    v.write(F.GuestIa32Pat, pat[0], pat[1]);
  }
  if (exitCtl & ExitCtl.SaveEfer) v.write(F.GuestIa32Efer, c.msr.efer);
  // IA32_VMX_MISC bit 5: EFER.LMA goes into the "IA-32e mode guest" entry control, so an
  // unrestricted guest that left or entered IA-32e mode resumes in the right mode.
  const entry = v.read(F.EntryControls) & ~EntryCtl.Ia32eModeGuest;
  v.write(F.EntryControls, c.longMode ? entry | EntryCtl.Ia32eModeGuest : entry);
  // 28.3.2: segment registers, with the unusable bit as the cache holds it.
  const segFields: [number, F, F, F, F][] = [
    [ES, F.GuestEsSelector, F.GuestEsBase, F.GuestEsLimit, F.GuestEsAccessRights],
    [CS, F.GuestCsSelector, F.GuestCsBase, F.GuestCsLimit, F.GuestCsAccessRights],
    [SS, F.GuestSsSelector, F.GuestSsBase, F.GuestSsLimit, F.GuestSsAccessRights],
    [DS, F.GuestDsSelector, F.GuestDsBase, F.GuestDsLimit, F.GuestDsAccessRights],
    [FS, F.GuestFsSelector, F.GuestFsBase, F.GuestFsLimit, F.GuestFsAccessRights],
    [GS, F.GuestGsSelector, F.GuestGsBase, F.GuestGsLimit, F.GuestGsAccessRights],
  ];
  for (const [s, sel, base, limit, ar] of segFields) {
    const r = c.segs[s];
    v.write(sel, r.selector);
    v.write(base, r.base, r.baseHi);
    v.write(limit, r.limit);
    v.write(ar, r.ar);
  }
  v.write(F.GuestLdtrSelector, c.ldtr.selector);
  v.write(F.GuestLdtrBase, c.ldtr.base, c.ldtr.baseHi);
  v.write(F.GuestLdtrLimit, c.ldtr.limit);
  v.write(F.GuestLdtrAccessRights, c.ldtr.ar);
  v.write(F.GuestTrSelector, c.tr.selector);
  v.write(F.GuestTrBase, c.tr.base, c.tr.baseHi);
  v.write(F.GuestTrLimit, c.tr.limit);
  v.write(F.GuestTrAccessRights, c.tr.ar);
  writeLinear(v, F.GuestGdtrBase, c.gdtrBase);
  v.write(F.GuestGdtrLimit, c.gdtrLimit);
  writeLinear(v, F.GuestIdtrBase, c.idtrBase);
  v.write(F.GuestIdtrLimit, c.idtrLimit);
  // 28.3.3: RIP, RSP, RFLAGS (RIP as the instruction that exited or the next one).
  writeLinear(v, F.GuestRip, c.eip);
  v.write(F.GuestRsp, c.regs[ESP], c.longMode ? c.regsHi[ESP] : 0);
  v.write(F.GuestRflags, c.flags.get());
  // 28.3.4: non-register state.
  v.write(F.GuestActivityState, c.activity);
  let intr = c.blocking & (BLOCKING_STI | BLOCKING_MOV_SS);
  if (!(v.read(F.PinBasedControls) & Pin.VirtualNmis) && c.nmiBlocked) intr |= BLOCKING_NMI;
  else intr |= v.read(F.GuestInterruptibilityState) & BLOCKING_NMI; // virtual-NMI blocking
  v.write(F.GuestInterruptibilityState, intr);
  v.write(F.GuestPendingDebugExceptions, pendingDebug);
  // PDPTEs are saved with EPT when the guest uses PAE paging (28.3.4, last item).
  const ept =
    v.read(F.ProcBasedControls) & Proc.ActivateSecondaryControls &&
    v.read(F.ProcBasedControls2) & Proc2.EnableEpt;
  if (ept && c.paging && c.cr4 & CR4_PAE && !c.longMode) {
    const pdpte = [F.GuestPdpte0, F.GuestPdpte1, F.GuestPdpte2, F.GuestPdpte3];
    for (let k = 0; k < 4; k++) v.write64(pdpte[k], c.pdpte[k]);
  }
}

/**
 * SDM Vol. 3C, 28.5: loading the host state. Returns false when the host PDPTEs cannot be
 * loaded (a VMX abort).
 */
export function loadHostState(c: Cpu, v: Vmcs): boolean {
  const exitCtl = v.read(F.ExitControls);
  const host64 = (exitCtl & ExitCtl.HostAddressSpaceSize) !== 0;
  // 28.5.1: CR0 keeps ET, CD, NW and its reserved bits; the VMX-fixed bits are 1 anyway.
  const keep = CR0_ET | CR0_CD | CR0_NW | 0x1ff80000 | (1 << 17) | 0xffc0;
  c.cr0 = (c.cr0 & keep) | (v.read(F.HostCr0) & ~keep);
  c.cr3 = v.read(F.HostCr3) | 0;
  c.cr3Hi = host64 ? v.readHi(F.HostCr3) | 0 : 0;
  let cr4 = v.read(F.HostCr4) | 0;
  if (host64) cr4 |= CR4_PAE;
  else cr4 &= ~CR4_PCIDE;
  c.cr4 = cr4;
  c.dr[7] = DR7_FIXED1;
  c.debug.update(c);
  c.msr.write(IA32_SYSENTER_CS, v.read(F.HostIa32SysenterCs) & 0xffff, 0); // a 16-bit MSR here
  c.msr.write(IA32_SYSENTER_ESP, v.read(F.HostIa32SysenterEsp), v.readHi(F.HostIa32SysenterEsp));
  c.msr.write(IA32_SYSENTER_EIP, v.read(F.HostIa32SysenterEip), v.readHi(F.HostIa32SysenterEip));
  if (exitCtl & ExitCtl.LoadPat) c.msr.write(0x277, v.read(F.HostIa32Pat), v.readHi(F.HostIa32Pat));
  let efer = exitCtl & ExitCtl.LoadEfer ? v.read(F.HostIa32Efer) : c.msr.efer;
  efer = host64 ? efer | EFER_LMA | EFER_LME : efer & ~(EFER_LMA | EFER_LME);
  c.msr.efer = efer;
  // 28.5.2: segment registers.
  const data = AR_P | AR_S | AR_TYPE_RW | AR_TYPE_ACCESSED | AR_DB | AR_G;
  const code = AR_P | AR_S | AR_TYPE_CODE | AR_TYPE_RW | AR_TYPE_ACCESSED | AR_G;
  c.segs[CS].set(v.read(F.HostCsSelector), 0, 0xffffffff, code | (host64 ? AR_L : AR_DB));
  const dataSegs: [number, F][] = [
    [ES, F.HostEsSelector],
    [SS, F.HostSsSelector],
    [DS, F.HostDsSelector],
    [FS, F.HostFsSelector],
    [GS, F.HostGsSelector],
  ];
  for (const [s, f] of dataSegs) {
    const sel = v.read(f);
    c.segs[s].set(sel, 0, 0xffffffff, sel === 0 ? data | AR_UNUSABLE : data);
  }
  c.segs[FS].base = v.read(F.HostFsBase) | 0;
  c.segs[FS].baseHi = host64 ? v.readHi(F.HostFsBase) | 0 : 0;
  c.segs[FS].flat = c.segs[FS].flat && c.segs[FS].base === 0 && c.segs[FS].baseHi === 0;
  c.segs[GS].base = v.read(F.HostGsBase) | 0;
  c.segs[GS].baseHi = host64 ? v.readHi(F.HostGsBase) | 0 : 0;
  c.segs[GS].flat = c.segs[GS].flat && c.segs[GS].base === 0 && c.segs[GS].baseHi === 0;
  c.tr.set(v.read(F.HostTrSelector), v.read(F.HostTrBase), 0x67, AR_P | SYS_TSS32_BUSY);
  c.tr.baseHi = host64 ? v.readHi(F.HostTrBase) | 0 : 0;
  c.ldtr.set(0, 0, 0, AR_UNUSABLE | SYS_LDT);
  c.gdtrBase = readLinear(v, F.HostGdtrBase, host64);
  c.gdtrLimit = 0xffff;
  c.idtrBase = readLinear(v, F.HostIdtrBase, host64);
  c.idtrLimit = 0xffff;
  // 28.5.3: RIP, RSP, RFLAGS; CPL 0.
  c.eip = c.nextEip = readLinear(v, F.HostRip, host64);
  c.regs[ESP] = v.read(F.HostRsp) | 0;
  c.regsHi[ESP] = host64 ? v.readHi(F.HostRsp) | 0 : 0;
  c.flags.load(0x2);
  c.cpl = 0;
  c.modeChanged();
  // 28.5.4: PAE paging outside IA-32e mode loads the PDPTEs from the host CR3.
  if (!host64 && c.cr0 & CR0_PG && c.cr4 & CR4_PAE) {
    try {
      loadPdptes(c);
    } catch (e) {
      if (e instanceof Fault) return false;
      throw e;
    }
  }
  return true;
}

/** A natural-width address field as this CPU keeps linear addresses (see writeLinear). */
export function readLinear(v: Vmcs, enc: F, ia32e: boolean): number {
  const lo = v.read(enc);
  return ia32e ? (v.readHi(enc) & 0xffff) * 0x100000000 + lo : lo;
}

/**
 * A VMX abort (SDM Vol. 3C, 28.7): the indicator goes into the current VMCS's region and
 * the logical processor shuts down until RESET.
 */
export function vmxAbort(c: Cpu, code: VmxAbort): never {
  const v = c.vmx.vmcs;
  writeAbortIndicator(c.mem, v.address, code);
  c.vmx.nonRoot = false;
  c.activity = ActivityState.Shutdown;
  throw new VmxAbortSignal(code);
}

/** Thrown by a VMX abort: the run loop reports the vCPU shut down. */
export class VmxAbortSignal {
  constructor(readonly code: number) {}
  toString(): string {
    return `VMX abort, indicator ${this.code}`;
  }
}
