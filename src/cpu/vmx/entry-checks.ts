/**
 * The VM-entry checks on the VMX controls and the host-state area (SDM Vol. 3C, 27.2), one
 * table row per check: its SDM section, what it requires, the field(s) it reads, and a
 * predicate. A failed control check is VMfailValid(7), a failed host-state check
 * VMfailValid(8); the guest-state checks (27.3.1) are in entry-guest-checks.ts. The rows
 * cover what this implementation supports: controls it never allows to be 1 are covered
 * by the reserved-bit rows, so their own rows would never apply.
 */
import { CR4_PAE, CR4_PCIDE, HAS_ERROR_CODE, MAXPHYADDR } from "../arch.js";
import type { Cpu } from "../cpu.js";
import {
  CR0_FIXED0,
  CR0_FIXED1,
  CR3_TARGET_COUNT,
  CR4_FIXED0,
  CR4_FIXED1,
  controlsValid,
  MSR_LIST_MAX,
} from "./capabilities.js";
import {
  ENTRY_CONTROLS,
  EntryCtl,
  EXIT_CONTROLS,
  ExitCtl,
  Pin,
  PIN_CONTROLS,
  Proc,
  Proc2,
  PROC2_CONTROLS,
  PROC_CONTROLS,
} from "./controls.js";
import { eptpProblem } from "./ept.js";
import { F, fieldName, FIELDS, Width } from "./fields.js";
import { hex64 } from "./trace.js";
import type { Vmcs } from "./vmcs.js";

/** What the checks read, decoded once per VM entry. */
export interface EntryContext {
  c: Cpu;
  v: Vmcs;
  pin: number;
  proc: number;
  /** The secondary controls in effect: 0 without "activate secondary controls". */
  proc2: number;
  exit: number;
  entry: number;
  /** "IA-32e mode guest" and "host address-space size". */
  ia32eGuest: boolean;
  host64: boolean;
  unrestricted: boolean;
  /** VM-entry interruption information: valid, type, vector. */
  injValid: boolean;
  injType: number;
  injVector: number;
}

export function entryContext(c: Cpu, v: Vmcs): EntryContext {
  const proc = v.read(F.ProcBasedControls);
  const proc2 = proc & Proc.ActivateSecondaryControls ? v.read(F.ProcBasedControls2) : 0;
  const entry = v.read(F.EntryControls);
  const inj = v.read(F.EntryInterruptionInfo);
  return {
    c,
    v,
    pin: v.read(F.PinBasedControls),
    proc,
    proc2,
    exit: v.read(F.ExitControls),
    entry,
    ia32eGuest: (entry & EntryCtl.Ia32eModeGuest) !== 0,
    host64: (v.read(F.ExitControls) & ExitCtl.HostAddressSpaceSize) !== 0,
    unrestricted: (proc2 & Proc2.UnrestrictedGuest) !== 0,
    injValid: (inj & 0x80000000) !== 0,
    injType: (inj >>> 8) & 7,
    injVector: inj & 0xff,
  };
}

/** One VM-entry check (a row of the tables). */
export interface EntryCheck {
  /** SDM Vol. 3C section, current numbering (e.g. "27.2.1.1"). */
  section: string;
  /** What must hold, in the SDM's words. */
  description: string;
  /** The field(s) the check reads; the first is reported as the offending one. */
  fields: readonly F[];
  ok: (x: EntryContext) => boolean;
  /** Guest-state checks: the exit qualification of the failure (27.8), 0 if left out. */
  qualification?: number;
}

/** The first check of `table` that fails, or undefined. */
export function firstFailure(
  table: readonly EntryCheck[],
  x: EntryContext,
): EntryCheck | undefined {
  for (const r of table) if (!r.ok(x)) return r;
  return undefined;
}

/** "<section> <description>: <field> = <value>[, ...]" for traces and tests. */
export function describeFailure(r: EntryCheck, v: Vmcs): string {
  const values = r.fields.map((f) => {
    const w = FIELDS.find((d) => d.enc === f)?.width;
    const val =
      w === Width.W64 || w === Width.Natural ? hex64(v.read(f), v.readHi(f)) : hex64(v.read(f), 0);
    return `${fieldName(f)} = ${val}`;
  });
  return `${r.section} ${r.description}: ${values.join(", ")}`;
}

// ---- shared predicates ----

/** Bits of a high dword beyond MAXPHYADDR. */
const PHYS_HI_RESERVED = ~((1 << (MAXPHYADDR - 32)) - 1);

/** A 64-bit field holds a physical address within MAXPHYADDR with `align` low bits 0. */
export function physOk(v: Vmcs, f: F, alignMask: number): boolean {
  return (v.read(f) & alignMask) === 0 && (v.readHi(f) & PHYS_HI_RESERVED) === 0;
}

/** A natural-width field holds a canonical address (bits 63:47 equal). */
export function canonicalOk(v: Vmcs, f: F): boolean {
  const hi = v.readHi(f) | 0;
  return (hi << 16) >> 16 === hi;
}

/** An MSR list: count within the limit, 16-byte aligned, last byte within MAXPHYADDR. */
function msrListOk(v: Vmcs, count: F, addr: F): boolean {
  const n = v.read(count);
  if (n === 0) return true;
  if (n > MSR_LIST_MAX || v.read(addr) & 0xf) return false;
  const last = v.read64(addr) + n * 16 - 1;
  return last < 2 ** MAXPHYADDR && (v.readHi(addr) & PHYS_HI_RESERVED) === 0;
}

/** Every byte of a PAT value is a valid memory type: 0, 1, 4, 5, 6 or 7. */
export function patOk(v: Vmcs, f: F): boolean {
  for (const dw of [v.read(f), v.readHi(f)]) {
    for (let k = 0; k < 32; k += 8) {
      const t = (dw >>> k) & 0xff;
      if (t === 2 || t === 3 || t > 7) return false;
    }
  }
  return true;
}

/** CR0 or CR4 value against the VMX-fixed bits; `ignore` bits are not checked. */
export function fixedOk(v: Vmcs, f: F, fixed0: number, fixed1: number, ignore = 0): boolean {
  const val = v.read(f) & ~ignore;
  const must = fixed0 & ~ignore;
  return v.readHi(f) === 0 && (val & must) === must && (val & ~fixed1 & ~ignore) === 0;
}

/** EFER bits this CPU has: SCE, LME, LMA, NXE. */
export const EFER_VALID = 0xd01;
const EFER_LME = 1 << 8;
const EFER_LMA = 1 << 10;

/** Interruption types of the VM-entry interruption-information field (Table 25-17). */
const enum Inj {
  External = 0,
  Nmi = 2,
  HardwareException = 3,
  SoftwareInterrupt = 4,
  PrivilegedSoftwareException = 5,
  SoftwareException = 6,
  Other = 7,
}

// ---- 27.2.1: checks on the VMX controls (VMfailValid 7) ----

const S_EXEC = "27.2.1.1";
const S_EXIT = "27.2.1.2";
const S_ENTRY = "27.2.1.3";

export const CONTROL_CHECKS: readonly EntryCheck[] = [
  {
    section: S_EXEC,
    description: "pin-based controls must be allowed by IA32_VMX_TRUE_PINBASED_CTLS",
    fields: [F.PinBasedControls],
    ok: (x) => controlsValid(PIN_CONTROLS, x.pin),
  },
  {
    section: S_EXEC,
    description: "primary processor-based controls must be allowed by IA32_VMX_TRUE_PROCBASED_CTLS",
    fields: [F.ProcBasedControls],
    ok: (x) => controlsValid(PROC_CONTROLS, x.proc),
  },
  {
    section: S_EXEC,
    description: "secondary processor-based controls must be allowed by IA32_VMX_PROCBASED_CTLS2",
    fields: [F.ProcBasedControls2],
    ok: (x) => controlsValid(PROC2_CONTROLS, x.proc2),
  },
  {
    section: S_EXEC,
    description: `the CR3-target count must not exceed ${CR3_TARGET_COUNT}`,
    fields: [F.Cr3TargetCount],
    ok: (x) => x.v.read(F.Cr3TargetCount) <= CR3_TARGET_COUNT,
  },
  {
    section: S_EXEC,
    description: "with use I/O bitmaps, I/O bitmap A must be 4-KiB aligned within MAXPHYADDR",
    fields: [F.IoBitmapA],
    ok: (x) => !(x.proc & Proc.UseIoBitmaps) || physOk(x.v, F.IoBitmapA, 0xfff),
  },
  {
    section: S_EXEC,
    description: "with use I/O bitmaps, I/O bitmap B must be 4-KiB aligned within MAXPHYADDR",
    fields: [F.IoBitmapB],
    ok: (x) => !(x.proc & Proc.UseIoBitmaps) || physOk(x.v, F.IoBitmapB, 0xfff),
  },
  {
    section: S_EXEC,
    description:
      "with use MSR bitmaps, the MSR-bitmap address must be 4-KiB aligned within MAXPHYADDR",
    fields: [F.MsrBitmaps],
    ok: (x) => !(x.proc & Proc.UseMsrBitmaps) || physOk(x.v, F.MsrBitmaps, 0xfff),
  },
  {
    section: S_EXEC,
    description: "virtual NMIs requires NMI exiting",
    fields: [F.PinBasedControls],
    ok: (x) => !(x.pin & Pin.VirtualNmis) || (x.pin & Pin.NmiExiting) !== 0,
  },
  {
    section: S_EXEC,
    description: "NMI-window exiting requires virtual NMIs",
    fields: [F.ProcBasedControls, F.PinBasedControls],
    ok: (x) => !(x.proc & Proc.NmiWindowExiting) || (x.pin & Pin.VirtualNmis) !== 0,
  },
  {
    section: S_EXEC,
    description: "with enable VPID, the VPID must not be 0000H",
    fields: [F.Vpid],
    ok: (x) => !(x.proc2 & Proc2.EnableVpid) || x.v.read(F.Vpid) !== 0,
  },
  {
    section: S_EXEC,
    description:
      "with enable EPT, the EPTP must have a supported memory type, a 4-level walk, A/D only if supported, and no reserved bits",
    fields: [F.EptPointer],
    ok: (x) =>
      !(x.proc2 & Proc2.EnableEpt) ||
      eptpProblem(x.v.read(F.EptPointer), x.v.readHi(F.EptPointer)) === null,
  },
  {
    section: S_EXEC,
    description: "unrestricted guest requires enable EPT",
    fields: [F.ProcBasedControls2],
    ok: (x) => !x.unrestricted || (x.proc2 & Proc2.EnableEpt) !== 0,
  },
  {
    section: S_EXIT,
    description: "VM-exit controls must be allowed by IA32_VMX_TRUE_EXIT_CTLS",
    fields: [F.ExitControls],
    ok: (x) => controlsValid(EXIT_CONTROLS, x.exit),
  },
  {
    section: S_EXIT,
    description: "save VMX-preemption timer value requires activate VMX-preemption timer",
    fields: [F.ExitControls, F.PinBasedControls],
    ok: (x) =>
      !(x.exit & ExitCtl.SavePreemptionTimer) || (x.pin & Pin.ActivatePreemptionTimer) !== 0,
  },
  {
    section: S_EXIT,
    description: `the VM-exit MSR-store list must hold at most ${MSR_LIST_MAX} entries, 16-byte aligned within MAXPHYADDR`,
    fields: [F.ExitMsrStoreAddress, F.ExitMsrStoreCount],
    ok: (x) => msrListOk(x.v, F.ExitMsrStoreCount, F.ExitMsrStoreAddress),
  },
  {
    section: S_EXIT,
    description: `the VM-exit MSR-load list must hold at most ${MSR_LIST_MAX} entries, 16-byte aligned within MAXPHYADDR`,
    fields: [F.ExitMsrLoadAddress, F.ExitMsrLoadCount],
    ok: (x) => msrListOk(x.v, F.ExitMsrLoadCount, F.ExitMsrLoadAddress),
  },
  {
    section: S_ENTRY,
    description: "VM-entry controls must be allowed by IA32_VMX_TRUE_ENTRY_CTLS",
    fields: [F.EntryControls],
    ok: (x) => controlsValid(ENTRY_CONTROLS, x.entry),
  },
  {
    section: S_ENTRY,
    description: "the injected event's interruption type must not be 1 (reserved)",
    fields: [F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || x.injType !== 1,
  },
  {
    section: S_ENTRY,
    description: "an injected NMI must have vector 2",
    fields: [F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || x.injType !== Inj.Nmi || x.injVector === 2,
  },
  {
    section: S_ENTRY,
    description: "an injected hardware exception must have a vector at most 31",
    fields: [F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || x.injType !== Inj.HardwareException || x.injVector <= 31,
  },
  {
    section: S_ENTRY,
    description: "an injected other event (pending MTF VM exit) must have vector 0",
    fields: [F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || x.injType !== Inj.Other || x.injVector === 0,
  },
  {
    section: S_ENTRY,
    description:
      "deliver-error-code must be 1 exactly for hardware exceptions #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP with guest CR0.PE = 1",
    fields: [F.EntryInterruptionInfo, F.GuestCr0],
    ok: (x) => {
      if (!x.injValid) return true;
      const pe = (x.v.read(F.GuestCr0) & 1) !== 0;
      const want = x.injType === Inj.HardwareException && pe && HAS_ERROR_CODE(x.injVector);
      return ((x.v.read(F.EntryInterruptionInfo) & 0x800) !== 0) === want;
    },
  },
  {
    section: S_ENTRY,
    description: "bits 30:12 of the VM-entry interruption-information field must be 0",
    fields: [F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || (x.v.read(F.EntryInterruptionInfo) & 0x7ffff000) === 0,
  },
  {
    section: S_ENTRY,
    description:
      "with deliver-error-code, bits 31:16 of the VM-entry exception error code must be 0",
    fields: [F.EntryExceptionErrorCode],
    ok: (x) =>
      !x.injValid ||
      !(x.v.read(F.EntryInterruptionInfo) & 0x800) ||
      x.v.read(F.EntryExceptionErrorCode) >>> 16 === 0,
  },
  {
    section: S_ENTRY,
    description:
      "an injected software interrupt or exception needs an instruction length of 1 to 15",
    fields: [F.EntryInstructionLength],
    ok: (x) => {
      const t = x.injType;
      const soft =
        t === Inj.SoftwareInterrupt ||
        t === Inj.PrivilegedSoftwareException ||
        t === Inj.SoftwareException;
      const len = x.v.read(F.EntryInstructionLength);
      return !x.injValid || !soft || (len >= 1 && len <= 15);
    },
  },
  {
    section: S_ENTRY,
    description: `the VM-entry MSR-load list must hold at most ${MSR_LIST_MAX} entries, 16-byte aligned within MAXPHYADDR`,
    fields: [F.EntryMsrLoadAddress, F.EntryMsrLoadCount],
    ok: (x) => msrListOk(x.v, F.EntryMsrLoadCount, F.EntryMsrLoadAddress),
  },
];

// ---- 27.2.2 - 27.2.4: checks on the host-state area (VMfailValid 8) ----

const S_HOST_CR = "27.2.2";
const S_HOST_SEG = "27.2.3";
const S_HOST_AS = "27.2.4";

/** Host selector fields whose RPL and TI must be 0 (27.2.3). */
const HOST_SELECTORS: [string, F][] = [
  ["ES", F.HostEsSelector],
  ["CS", F.HostCsSelector],
  ["SS", F.HostSsSelector],
  ["DS", F.HostDsSelector],
  ["FS", F.HostFsSelector],
  ["GS", F.HostGsSelector],
  ["TR", F.HostTrSelector],
];

/** Host base fields that must be canonical (27.2.3). */
const HOST_BASES: F[] = [F.HostFsBase, F.HostGsBase, F.HostGdtrBase, F.HostIdtrBase, F.HostTrBase];

export const HOST_CHECKS: readonly EntryCheck[] = [
  {
    section: S_HOST_CR,
    description: "host CR0 must have the bits IA32_VMX_CR0_FIXED0/1 require",
    fields: [F.HostCr0],
    // CD and NW are not loaded on VM exit, so not checked.
    ok: (x) => fixedOk(x.v, F.HostCr0, CR0_FIXED0, CR0_FIXED1, 0x60000000),
  },
  {
    section: S_HOST_CR,
    description: "host CR4 must have the bits IA32_VMX_CR4_FIXED0/1 require",
    fields: [F.HostCr4],
    ok: (x) => fixedOk(x.v, F.HostCr4, CR4_FIXED0, CR4_FIXED1),
  },
  {
    section: S_HOST_CR,
    description: "host CR3 bits 63:MAXPHYADDR must be 0",
    fields: [F.HostCr3],
    ok: (x) => (x.v.readHi(F.HostCr3) & PHYS_HI_RESERVED) === 0,
  },
  {
    section: S_HOST_CR,
    description: "host IA32_SYSENTER_ESP must be canonical",
    fields: [F.HostIa32SysenterEsp],
    ok: (x) => canonicalOk(x.v, F.HostIa32SysenterEsp),
  },
  {
    section: S_HOST_CR,
    description: "host IA32_SYSENTER_EIP must be canonical",
    fields: [F.HostIa32SysenterEip],
    ok: (x) => canonicalOk(x.v, F.HostIa32SysenterEip),
  },
  {
    section: S_HOST_CR,
    description: "with load IA32_PAT, each host PAT entry must be a valid memory type",
    fields: [F.HostIa32Pat],
    ok: (x) => !(x.exit & ExitCtl.LoadPat) || patOk(x.v, F.HostIa32Pat),
  },
  {
    section: S_HOST_CR,
    description: "with load IA32_EFER, host EFER reserved bits must be 0",
    fields: [F.HostIa32Efer],
    ok: (x) =>
      !(x.exit & ExitCtl.LoadEfer) ||
      (x.v.readHi(F.HostIa32Efer) === 0 && (x.v.read(F.HostIa32Efer) & ~EFER_VALID) === 0),
  },
  {
    section: S_HOST_CR,
    description:
      "with load IA32_EFER, host EFER.LMA and EFER.LME must equal host address-space size",
    fields: [F.HostIa32Efer, F.ExitControls],
    ok: (x) => {
      if (!(x.exit & ExitCtl.LoadEfer)) return true;
      const e = x.v.read(F.HostIa32Efer);
      return ((e & EFER_LMA) !== 0) === x.host64 && ((e & EFER_LME) !== 0) === x.host64;
    },
  },
  ...HOST_SELECTORS.map(([name, f]): EntryCheck => ({
    section: S_HOST_SEG,
    description: `host ${name} selector RPL and TI must be 0`,
    fields: [f],
    ok: (x) => (x.v.read(f) & 7) === 0,
  })),
  {
    section: S_HOST_SEG,
    description: "host CS selector must not be 0000H",
    fields: [F.HostCsSelector],
    ok: (x) => x.v.read(F.HostCsSelector) !== 0,
  },
  {
    section: S_HOST_SEG,
    description: "host TR selector must not be 0000H",
    fields: [F.HostTrSelector],
    ok: (x) => x.v.read(F.HostTrSelector) !== 0,
  },
  {
    section: S_HOST_SEG,
    description: "host SS selector must not be 0000H unless host address-space size is 1",
    fields: [F.HostSsSelector, F.ExitControls],
    ok: (x) => x.host64 || x.v.read(F.HostSsSelector) !== 0,
  },
  ...HOST_BASES.map((f): EntryCheck => ({
    section: S_HOST_SEG,
    description: `${fieldName(f)} must be canonical`,
    fields: [f],
    ok: (x) => canonicalOk(x.v, f),
  })),
  {
    section: S_HOST_AS,
    description: "outside IA-32e mode, IA-32e mode guest and host address-space size must be 0",
    fields: [F.EntryControls, F.ExitControls],
    ok: (x) => x.c.longMode || (!x.ia32eGuest && !x.host64),
  },
  {
    section: S_HOST_AS,
    description: "in IA-32e mode, host address-space size must be 1",
    fields: [F.ExitControls],
    ok: (x) => !x.c.longMode || x.host64,
  },
  {
    section: S_HOST_AS,
    description: "without host address-space size, IA-32e mode guest must be 0",
    fields: [F.EntryControls, F.ExitControls],
    ok: (x) => x.host64 || !x.ia32eGuest,
  },
  {
    section: S_HOST_AS,
    description: "without host address-space size, host CR4.PCIDE must be 0",
    fields: [F.HostCr4],
    ok: (x) => x.host64 || (x.v.read(F.HostCr4) & CR4_PCIDE) === 0,
  },
  {
    section: S_HOST_AS,
    description: "without host address-space size, host RIP bits 63:32 must be 0",
    fields: [F.HostRip],
    ok: (x) => x.host64 || x.v.readHi(F.HostRip) === 0,
  },
  {
    section: S_HOST_AS,
    description: "with host address-space size, host CR4.PAE must be 1",
    fields: [F.HostCr4],
    ok: (x) => !x.host64 || (x.v.read(F.HostCr4) & CR4_PAE) !== 0,
  },
  {
    section: S_HOST_AS,
    description: "with host address-space size, host RIP must be canonical",
    fields: [F.HostRip],
    ok: (x) => !x.host64 || canonicalOk(x.v, F.HostRip),
  },
];
