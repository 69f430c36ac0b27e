/**
 * The VMX capability MSRs (SDM Vol. 3D, Appendix A), derived from what is implemented:
 * the control tables of controls.ts, the field table of fields.ts, the EPT/VPID facts of
 * ept.ts and the CR0/CR4 bits this CPU has. Nothing here is typed twice.
 */
import { CR0_NE, CR0_PE, CR0_PG, CR0_VALID, CR4_VALID, CR4_VMXE } from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Msr64 } from "../msr.js";
import {
  allowed1,
  ENTRY_CONTROLS,
  EXIT_CONTROLS,
  PIN_CONTROLS,
  Proc,
  Proc2,
  PROC2_CONTROLS,
  PROC_CONTROLS,
  trueAllowed0,
  type ControlTable,
} from "./controls.js";
import { EPT_VPID_CAP_HI, EPT_VPID_CAP_LO } from "./ept.js";
import { F, FIELD_MAP } from "./fields.js";
import type { Vmcs } from "./vmcs.js";

// ---- capability MSR indexes (SDM Vol. 4, Table 2-2) ----
export const IA32_VMX_BASIC = 0x480;
export const IA32_VMX_PINBASED_CTLS = 0x481;
export const IA32_VMX_PROCBASED_CTLS = 0x482;
export const IA32_VMX_EXIT_CTLS = 0x483;
export const IA32_VMX_ENTRY_CTLS = 0x484;
export const IA32_VMX_MISC = 0x485;
export const IA32_VMX_CR0_FIXED0 = 0x486;
export const IA32_VMX_CR0_FIXED1 = 0x487;
export const IA32_VMX_CR4_FIXED0 = 0x488;
export const IA32_VMX_CR4_FIXED1 = 0x489;
export const IA32_VMX_VMCS_ENUM = 0x48a;
export const IA32_VMX_PROCBASED_CTLS2 = 0x48b;
export const IA32_VMX_EPT_VPID_CAP = 0x48c;
export const IA32_VMX_TRUE_PINBASED_CTLS = 0x48d;
export const IA32_VMX_TRUE_PROCBASED_CTLS = 0x48e;
export const IA32_VMX_TRUE_EXIT_CTLS = 0x48f;
export const IA32_VMX_TRUE_ENTRY_CTLS = 0x490;

// ---- IA32_VMX_BASIC (SDM Vol. 3D, A.1) ----
/** VMCS revision identifier (bits 30:0): "SH" in ASCII, this implementation's format. */
export const VMCS_REVISION_ID = 0x00005348;
/** Bits 44:32: bytes to allocate for the VMXON region and any VMCS region. */
export const VMCS_SIZE = 4096;
/** Bits 53:50: memory type for the VMCS, paging structures and bitmaps: write-back. */
export const VMCS_MEMTYPE_WB = 6;
const BASIC_HI_MEMTYPE_SHIFT = 50 - 32;
/** Bit 54: VM exits due to INS/OUTS report the instruction-information field. */
const BASIC_HI_INS_OUTS_INFO = 1 << (54 - 32);
/** Bit 55: the default1 controls may be 0: the TRUE capability MSRs exist. */
const BASIC_HI_TRUE_CTLS = 1 << (55 - 32);
// Bit 48 (32-bit physical addresses only) is 0: addresses are up to MAXPHYADDR wide.
// Bit 49 (dual-monitor treatment of SMIs) is 0: no SMM. Bit 56 (any hardware exception
// may be injected with or without an error code) is 0: entry-checks.ts checks it.

// ---- IA32_VMX_MISC (SDM Vol. 3D, A.6) ----
/** Bits 4:0: the VMX-preemption timer counts down each time TSC bit 5 changes. */
export const PREEMPTION_TIMER_RATE = 5;
/** Bit 5: VM exits store EFER.LMA into the "IA-32e mode guest" VM-entry control. */
export const MISC_STORE_LMA = 1 << 5;
/** Bits 8:6: activity states HLT (6), shutdown (7) and wait-for-SIPI (8) supported. */
export const MISC_ACTIVITY_HLT = 1 << 6;
export const MISC_ACTIVITY_SHUTDOWN = 1 << 7;
export const MISC_ACTIVITY_WAIT_SIPI = 1 << 8;
/** Bits 24:16: number of CR3-target values. */
export const CR3_TARGET_COUNT = 4;
/**
 * Bits 27:25: N, where 512 * (N + 1) is the recommended maximum number of MSRs in each
 * MSR list; larger lists make VM entry fail (entry-checks.ts).
 */
export const MSR_LIST_N = 0;
export const MSR_LIST_MAX = 512 * (MSR_LIST_N + 1);
/**
 * Bit 29: VMWRITE may write the VM-exit information fields. 0 here: those fields are
 * read-only and VMWRITE to them fails with VM-instruction error 13.
 */
export const MISC_VMWRITE_EXIT_INFO = 0;

export const MISC_LO =
  (PREEMPTION_TIMER_RATE |
    MISC_STORE_LMA |
    MISC_ACTIVITY_HLT |
    MISC_ACTIVITY_SHUTDOWN |
    MISC_ACTIVITY_WAIT_SIPI |
    (CR3_TARGET_COUNT << 16) |
    (MSR_LIST_N << 25) |
    MISC_VMWRITE_EXIT_INFO) >>>
  0;

// ---- CR0 and CR4 in VMX operation (SDM Vol. 3D, A.7 and A.8) ----
/** CR0 bits fixed to 1 in VMX operation: PE, NE, PG (24.8). */
export const CR0_FIXED0 = CR0_PE | CR0_NE | CR0_PG;
/** CR0 bits that may be 1 in VMX operation: the ones this CPU implements. */
export const CR0_FIXED1 = CR0_VALID;
/** CR4 bits fixed to 1 in VMX operation: VMXE. */
export const CR4_FIXED0 = CR4_VMXE;
/** CR4 bits that may be 1 in VMX operation. */
export const CR4_FIXED1 = CR4_VALID;

/** A control capability MSR: allowed-0 settings low, allowed-1 settings high (A.3-A.5). */
function controlMsr(t: ControlTable, trueMsr: boolean): Msr64 {
  return [trueMsr ? trueAllowed0(t) : t.default1 >>> 0, allowed1(t)];
}

/** Every capability MSR by index: the values RDMSR returns (WRMSR raises #GP(0)). */
export const CAPABILITY_MSRS: ReadonlyMap<number, Msr64> = new Map<number, Msr64>([
  [
    IA32_VMX_BASIC,
    [
      VMCS_REVISION_ID,
      (VMCS_SIZE |
        (VMCS_MEMTYPE_WB << BASIC_HI_MEMTYPE_SHIFT) |
        BASIC_HI_INS_OUTS_INFO |
        BASIC_HI_TRUE_CTLS) >>>
        0,
    ],
  ],
  [IA32_VMX_PINBASED_CTLS, controlMsr(PIN_CONTROLS, false)],
  [IA32_VMX_PROCBASED_CTLS, controlMsr(PROC_CONTROLS, false)],
  [IA32_VMX_EXIT_CTLS, controlMsr(EXIT_CONTROLS, false)],
  [IA32_VMX_ENTRY_CTLS, controlMsr(ENTRY_CONTROLS, false)],
  [IA32_VMX_MISC, [MISC_LO, 0]],
  [IA32_VMX_CR0_FIXED0, [CR0_FIXED0 >>> 0, 0]],
  [IA32_VMX_CR0_FIXED1, [CR0_FIXED1 >>> 0, 0]],
  [IA32_VMX_CR4_FIXED0, [CR4_FIXED0 >>> 0, 0]],
  [IA32_VMX_CR4_FIXED1, [CR4_FIXED1 >>> 0, 0]],
  // A.9: bits 9:1 the highest index of any field encoding.
  [IA32_VMX_VMCS_ENUM, [FIELD_MAP.highestIndex << 1, 0]],
  [IA32_VMX_PROCBASED_CTLS2, controlMsr(PROC2_CONTROLS, false)],
  [IA32_VMX_EPT_VPID_CAP, [EPT_VPID_CAP_LO >>> 0, EPT_VPID_CAP_HI >>> 0]],
  [IA32_VMX_TRUE_PINBASED_CTLS, controlMsr(PIN_CONTROLS, true)],
  [IA32_VMX_TRUE_PROCBASED_CTLS, controlMsr(PROC_CONTROLS, true)],
  [IA32_VMX_TRUE_EXIT_CTLS, controlMsr(EXIT_CONTROLS, true)],
  [IA32_VMX_TRUE_ENTRY_CTLS, controlMsr(ENTRY_CONTROLS, true)],
]);

/** SDM names of the capability MSRs, for the MSR table. */
export const CAPABILITY_MSR_NAMES: Record<number, string> = {
  [IA32_VMX_BASIC]: "IA32_VMX_BASIC",
  [IA32_VMX_PINBASED_CTLS]: "IA32_VMX_PINBASED_CTLS",
  [IA32_VMX_PROCBASED_CTLS]: "IA32_VMX_PROCBASED_CTLS",
  [IA32_VMX_EXIT_CTLS]: "IA32_VMX_EXIT_CTLS",
  [IA32_VMX_ENTRY_CTLS]: "IA32_VMX_ENTRY_CTLS",
  [IA32_VMX_MISC]: "IA32_VMX_MISC",
  [IA32_VMX_CR0_FIXED0]: "IA32_VMX_CR0_FIXED0",
  [IA32_VMX_CR0_FIXED1]: "IA32_VMX_CR0_FIXED1",
  [IA32_VMX_CR4_FIXED0]: "IA32_VMX_CR4_FIXED0",
  [IA32_VMX_CR4_FIXED1]: "IA32_VMX_CR4_FIXED1",
  [IA32_VMX_VMCS_ENUM]: "IA32_VMX_VMCS_ENUM",
  [IA32_VMX_PROCBASED_CTLS2]: "IA32_VMX_PROCBASED_CTLS2",
  [IA32_VMX_EPT_VPID_CAP]: "IA32_VMX_EPT_VPID_CAP",
  [IA32_VMX_TRUE_PINBASED_CTLS]: "IA32_VMX_TRUE_PINBASED_CTLS",
  [IA32_VMX_TRUE_PROCBASED_CTLS]: "IA32_VMX_TRUE_PROCBASED_CTLS",
  [IA32_VMX_TRUE_EXIT_CTLS]: "IA32_VMX_TRUE_EXIT_CTLS",
  [IA32_VMX_TRUE_ENTRY_CTLS]: "IA32_VMX_TRUE_ENTRY_CTLS",
};

/**
 * Whether `value` is a setting of a control field the capability allows: every bit
 * required by allowed-0 (the TRUE MSR's) is 1 and every 1 is allowed (SDM 27.2.1.1).
 */
export function controlsValid(t: ControlTable, value: number): boolean {
  const must = trueAllowed0(t);
  const may = allowed1(t);
  return (value & must) === must && (value & ~may) === 0;
}

/**
 * Whether CR0 value `v` is allowed in VMX operation (SDM Vol. 3C, 24.8): the FIXED0 bits
 * set, nothing outside FIXED1; in non-root operation with "unrestricted guest", PE and PG
 * may be 0 (26.3).
 */
export function cr0AllowedInVmx(c: Cpu, v: number): boolean {
  let fixed0 = CR0_FIXED0;
  if (c.vmx.nonRoot && unrestrictedGuest(c.vmx.vmcs)) fixed0 &= ~(CR0_PE | CR0_PG);
  return (v & fixed0) === fixed0 && (v & ~CR0_FIXED1) === 0;
}

/** Whether CR4 value `v` is allowed in VMX operation (SDM Vol. 3C, 24.8). */
export function cr4AllowedInVmx(v: number): boolean {
  return (v & CR4_FIXED0) === CR4_FIXED0 && (v & ~CR4_FIXED1) === 0;
}

/** The "unrestricted guest" control in effect (a secondary control, 25.6.2). */
export function unrestrictedGuest(v: Vmcs): boolean {
  return (
    (v.read(F.ProcBasedControls) & Proc.ActivateSecondaryControls) !== 0 &&
    (v.read(F.ProcBasedControls2) & Proc2.UnrestrictedGuest) !== 0
  );
}
