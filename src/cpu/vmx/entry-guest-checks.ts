/**
 * The VM-entry checks on the guest-state area (SDM Vol. 3C, 27.3.1), one table row per
 * check as in entry-checks.ts. A failure is a VM-entry failure: a VM exit with basic
 * reason 33 (bit 31 set) and the row's exit qualification (27.8: 0, or 2 for the PDPTEs,
 * 4 for the VMCS link pointer).
 */
import {
  AR_DB,
  AR_DPL_SHIFT,
  AR_G,
  AR_L,
  AR_P,
  AR_S,
  AR_UNUSABLE,
  BLOCKING_MOV_SS,
  BLOCKING_STI,
  CR0_PE,
  CR0_PG,
  CR4_PAE,
  CR4_PCIDE,
  EFER_LMA,
  EFER_LME,
  MAXPHYADDR,
} from "../arch.js";
import { ActivityState } from "../../engine/engine.js";
import {
  CR0_FIXED0,
  CR0_FIXED1,
  CR4_FIXED0,
  CR4_FIXED1,
  VMCS_REVISION_ID,
} from "./capabilities.js";
import { EntryCtl, Pin, Proc2 } from "./controls.js";
import {
  canonicalOk,
  EFER_VALID,
  fixedOk,
  patOk,
  physOk,
  type EntryCheck,
  type EntryContext,
} from "./entry-checks.js";
import { F } from "./fields.js";

const S_CR = "27.3.1.1";
const S_SEG = "27.3.1.2";
const S_DT = "27.3.1.3";
const S_RIP = "27.3.1.4";
const S_NONREG = "27.3.1.5";
const S_PDPTE = "27.3.1.6";

/** The qualification of a failure in the VMCS link pointer and in the PDPTEs (27.8). */
export const QUAL_PDPTE = 2;
export const QUAL_LINK_POINTER = 4;

const PHYS_HI_RESERVED = ~((1 << (MAXPHYADDR - 32)) - 1);
const RFLAGS_VM = 1 << 17;
const RFLAGS_IF = 1 << 9;
const RFLAGS_TF = 1 << 8;
/** RFLAGS bits 63:22, 15, 5 and 3 are reserved (0); bit 1 is 1. */
const RFLAGS_RESERVED = 0xffc08028;
/** Interruptibility-state bits beyond STI and MOV SS (SDM Table 25-3). */
const BLOCKING_SMI = 1 << 2;
const BLOCKING_NMI = 1 << 3;
/** Pending debug exceptions: B3-B0, enabled breakpoint (12), BS (14), RTM (16). */
const PENDING_DEBUG_VALID = 0x500f;
const PENDING_BS = 1 << 14;

// ---- decoded guest fields ----
const cr0 = (x: EntryContext): number => x.v.read(F.GuestCr0);
const cr4 = (x: EntryContext): number => x.v.read(F.GuestCr4);
const rflags = (x: EntryContext): number => x.v.read(F.GuestRflags);
const v86 = (x: EntryContext): boolean => (rflags(x) & RFLAGS_VM) !== 0;
const intr = (x: EntryContext): number => x.v.read(F.GuestInterruptibilityState);
const activity = (x: EntryContext): number => x.v.read(F.GuestActivityState);

/** The four fields of a segment register in the guest-state area. */
interface Seg {
  name: string;
  sel: F;
  base: F;
  limit: F;
  ar: F;
}
const seg = (name: string, sel: F, base: F, limit: F, ar: F): Seg => ({
  name,
  sel,
  base,
  limit,
  ar,
});
const ES = seg("ES", F.GuestEsSelector, F.GuestEsBase, F.GuestEsLimit, F.GuestEsAccessRights);
const CS = seg("CS", F.GuestCsSelector, F.GuestCsBase, F.GuestCsLimit, F.GuestCsAccessRights);
const SS = seg("SS", F.GuestSsSelector, F.GuestSsBase, F.GuestSsLimit, F.GuestSsAccessRights);
const DS = seg("DS", F.GuestDsSelector, F.GuestDsBase, F.GuestDsLimit, F.GuestDsAccessRights);
const FS = seg("FS", F.GuestFsSelector, F.GuestFsBase, F.GuestFsLimit, F.GuestFsAccessRights);
const GS = seg("GS", F.GuestGsSelector, F.GuestGsBase, F.GuestGsLimit, F.GuestGsAccessRights);
const TR = seg("TR", F.GuestTrSelector, F.GuestTrBase, F.GuestTrLimit, F.GuestTrAccessRights);
const LDTR = seg(
  "LDTR",
  F.GuestLdtrSelector,
  F.GuestLdtrBase,
  F.GuestLdtrLimit,
  F.GuestLdtrAccessRights,
);
const SIX = [ES, CS, SS, DS, FS, GS];
const DATA = [ES, SS, DS, FS, GS];

const ar = (x: EntryContext, s: Seg): number => x.v.read(s.ar);
const usable = (x: EntryContext, s: Seg): boolean => (ar(x, s) & AR_UNUSABLE) === 0;
const type = (x: EntryContext, s: Seg): number => ar(x, s) & 0xf;
const dpl = (x: EntryContext, s: Seg): number => (ar(x, s) >>> AR_DPL_SHIFT) & 3;
const rpl = (x: EntryContext, s: Seg): number => x.v.read(s.sel) & 3;

/** The limit and G agree: G = 0 if limit bits 11:0 are not all 1, G = 1 if bits 31:20 are not 0. */
function granularityOk(x: EntryContext, s: Seg): boolean {
  const limit = x.v.read(s.limit);
  const g = (ar(x, s) & AR_G) !== 0;
  if ((limit & 0xfff) !== 0xfff && g) return false;
  if (limit >>> 20 !== 0 && !g) return false;
  return true;
}

/** Rows for one of CS, SS, DS, ES, FS, GS in virtual-8086 mode (RFLAGS.VM = 1). */
function v86Rows(s: Seg): EntryCheck[] {
  return [
    {
      section: S_SEG,
      description: `in virtual-8086 mode, the ${s.name} base must be the selector shifted left by 4`,
      fields: [s.base, s.sel],
      ok: (x) => !v86(x) || (x.v.readHi(s.base) === 0 && x.v.read(s.base) === x.v.read(s.sel) << 4),
    },
    {
      section: S_SEG,
      description: `in virtual-8086 mode, the ${s.name} limit must be 0000FFFFH`,
      fields: [s.limit],
      ok: (x) => !v86(x) || x.v.read(s.limit) === 0xffff,
    },
    {
      section: S_SEG,
      description: `in virtual-8086 mode, the ${s.name} access rights must be 000000F3H`,
      fields: [s.ar],
      ok: (x) => !v86(x) || ar(x, s) === 0xf3,
    },
  ];
}

/** The access-rights rows shared by CS and the usable data segments outside V86 mode. */
function commonArRows(s: Seg, applies: (x: EntryContext) => boolean): EntryCheck[] {
  return [
    {
      section: S_SEG,
      description: `${s.name} access rights: S (bit 4) must be 1`,
      fields: [s.ar],
      ok: (x) => !applies(x) || (ar(x, s) & AR_S) !== 0,
    },
    {
      section: S_SEG,
      description: `${s.name} access rights: P (bit 7) must be 1`,
      fields: [s.ar],
      ok: (x) => !applies(x) || (ar(x, s) & AR_P) !== 0,
    },
    {
      section: S_SEG,
      description: `${s.name} access rights: reserved bits 11:8 and 31:17 must be 0`,
      fields: [s.ar],
      ok: (x) => !applies(x) || (ar(x, s) & 0xfffe0f00) === 0,
    },
    {
      section: S_SEG,
      description: `${s.name} access rights: G must match the limit (bits 11:0 all 1 if G, bits 31:20 0 unless G)`,
      fields: [s.ar, s.limit],
      ok: (x) => !applies(x) || granularityOk(x, s),
    },
  ];
}

/** Rows for a data segment (SS, DS, ES, FS, GS) outside virtual-8086 mode, when usable. */
function dataRows(s: Seg): EntryCheck[] {
  const applies = (x: EntryContext): boolean => !v86(x) && usable(x, s);
  const rows: EntryCheck[] = [
    {
      section: S_SEG,
      description: `${s.name} access rights: the type must be accessed (bit 0), and readable if code`,
      fields: [s.ar],
      ok: (x) => {
        if (!applies(x)) return true;
        const t = type(x, s);
        return (t & 1) !== 0 && (!(t & 8) || (t & 2) !== 0);
      },
    },
    ...commonArRows(s, applies),
  ];
  if (s !== SS) {
    rows.push({
      section: S_SEG,
      description: `${s.name} access rights: DPL must not be below the RPL for data and non-conforming code (without unrestricted guest)`,
      fields: [s.ar, s.sel],
      ok: (x) => !applies(x) || x.unrestricted || type(x, s) > 11 || dpl(x, s) >= rpl(x, s),
    });
  }
  return rows;
}

export const GUEST_CHECKS: readonly EntryCheck[] = [
  // ---- 27.3.1.1: control registers, debug registers, MSRs ----
  {
    section: S_CR,
    description:
      "guest CR0 must have the bits IA32_VMX_CR0_FIXED0/1 require (PE and PG free with unrestricted guest)",
    fields: [F.GuestCr0],
    ok: (x) =>
      fixedOk(
        x.v,
        F.GuestCr0,
        CR0_FIXED0,
        CR0_FIXED1,
        0x60000000 | (x.unrestricted ? CR0_PE | CR0_PG : 0),
      ),
  },
  {
    section: S_CR,
    description: "guest CR0.PG requires CR0.PE",
    fields: [F.GuestCr0],
    ok: (x) => !(cr0(x) & CR0_PG) || (cr0(x) & CR0_PE) !== 0,
  },
  {
    section: S_CR,
    description: "guest CR4 must have the bits IA32_VMX_CR4_FIXED0/1 require",
    fields: [F.GuestCr4],
    ok: (x) => fixedOk(x.v, F.GuestCr4, CR4_FIXED0, CR4_FIXED1),
  },
  {
    section: S_CR,
    description:
      "with load debug controls, guest IA32_DEBUGCTL reserved bits must be 0 (none are implemented)",
    fields: [F.GuestIa32Debugctl],
    ok: (x) =>
      !(x.entry & EntryCtl.LoadDebugControls) ||
      (x.v.read(F.GuestIa32Debugctl) | x.v.readHi(F.GuestIa32Debugctl)) === 0,
  },
  {
    section: S_CR,
    description: "with IA-32e mode guest, guest CR0.PG and CR4.PAE must be 1",
    fields: [F.GuestCr0, F.GuestCr4],
    ok: (x) => !x.ia32eGuest || ((cr0(x) & CR0_PG) !== 0 && (cr4(x) & CR4_PAE) !== 0),
  },
  {
    section: S_CR,
    description: "without IA-32e mode guest, guest CR4.PCIDE must be 0",
    fields: [F.GuestCr4],
    ok: (x) => x.ia32eGuest || (cr4(x) & CR4_PCIDE) === 0,
  },
  {
    section: S_CR,
    description: "guest CR3 bits 63:MAXPHYADDR must be 0",
    fields: [F.GuestCr3],
    ok: (x) => (x.v.readHi(F.GuestCr3) & PHYS_HI_RESERVED) === 0,
  },
  {
    section: S_CR,
    description: "with load debug controls, guest DR7 bits 63:32 must be 0",
    fields: [F.GuestDr7],
    ok: (x) => !(x.entry & EntryCtl.LoadDebugControls) || x.v.readHi(F.GuestDr7) === 0,
  },
  {
    section: S_CR,
    description: "guest IA32_SYSENTER_ESP must be canonical",
    fields: [F.GuestIa32SysenterEsp],
    ok: (x) => canonicalOk(x.v, F.GuestIa32SysenterEsp),
  },
  {
    section: S_CR,
    description: "guest IA32_SYSENTER_EIP must be canonical",
    fields: [F.GuestIa32SysenterEip],
    ok: (x) => canonicalOk(x.v, F.GuestIa32SysenterEip),
  },
  {
    section: S_CR,
    description: "with load IA32_PAT, each guest PAT entry must be a valid memory type",
    fields: [F.GuestIa32Pat],
    ok: (x) => !(x.entry & EntryCtl.LoadPat) || patOk(x.v, F.GuestIa32Pat),
  },
  {
    section: S_CR,
    description: "with load IA32_EFER, guest EFER reserved bits must be 0",
    fields: [F.GuestIa32Efer],
    ok: (x) =>
      !(x.entry & EntryCtl.LoadEfer) ||
      (x.v.readHi(F.GuestIa32Efer) === 0 && (x.v.read(F.GuestIa32Efer) & ~EFER_VALID) === 0),
  },
  {
    section: S_CR,
    description:
      "with load IA32_EFER, guest EFER.LMA must equal IA-32e mode guest, and EFER.LME too if CR0.PG",
    fields: [F.GuestIa32Efer, F.EntryControls],
    ok: (x) => {
      if (!(x.entry & EntryCtl.LoadEfer)) return true;
      const e = x.v.read(F.GuestIa32Efer);
      if (((e & EFER_LMA) !== 0) !== x.ia32eGuest) return false;
      return !(cr0(x) & CR0_PG) || ((e & EFER_LME) !== 0) === x.ia32eGuest;
    },
  },
  // ---- 27.3.1.2: segment registers ----
  {
    section: S_SEG,
    description: "guest TR selector TI (bit 2) must be 0",
    fields: [F.GuestTrSelector],
    ok: (x) => (x.v.read(F.GuestTrSelector) & 4) === 0,
  },
  {
    section: S_SEG,
    description: "guest LDTR selector TI (bit 2) must be 0 if LDTR is usable",
    fields: [F.GuestLdtrSelector],
    ok: (x) => !usable(x, LDTR) || (x.v.read(F.GuestLdtrSelector) & 4) === 0,
  },
  {
    section: S_SEG,
    description: "guest SS RPL must equal CS RPL (outside V86 mode, without unrestricted guest)",
    fields: [F.GuestSsSelector, F.GuestCsSelector],
    ok: (x) => v86(x) || x.unrestricted || rpl(x, SS) === rpl(x, CS),
  },
  ...SIX.flatMap(v86Rows),
  ...[TR, FS, GS].map((s): EntryCheck => ({
    section: S_SEG,
    description: `guest ${s.name} base must be canonical`,
    fields: [s.base],
    ok: (x) => canonicalOk(x.v, s.base),
  })),
  {
    section: S_SEG,
    description: "guest LDTR base must be canonical if LDTR is usable",
    fields: [F.GuestLdtrBase],
    ok: (x) => !usable(x, LDTR) || canonicalOk(x.v, F.GuestLdtrBase),
  },
  {
    section: S_SEG,
    description: "guest CS base bits 63:32 must be 0",
    fields: [F.GuestCsBase],
    ok: (x) => x.v.readHi(F.GuestCsBase) === 0,
  },
  ...[SS, DS, ES].map((s): EntryCheck => ({
    section: S_SEG,
    description: `guest ${s.name} base bits 63:32 must be 0 if ${s.name} is usable`,
    fields: [s.base],
    ok: (x) => !usable(x, s) || x.v.readHi(s.base) === 0,
  })),
  {
    section: S_SEG,
    description: "CS access rights: the type must be 9, 11, 13 or 15 (3 with unrestricted guest)",
    fields: [F.GuestCsAccessRights],
    ok: (x) => {
      if (v86(x)) return true;
      const t = type(x, CS);
      return t === 9 || t === 11 || t === 13 || t === 15 || (x.unrestricted && t === 3);
    },
  },
  ...commonArRows(CS, (x) => !v86(x)),
  {
    section: S_SEG,
    description: "CS access rights: DPL must be 0 for type 3 (unrestricted guest)",
    fields: [F.GuestCsAccessRights],
    ok: (x) => v86(x) || type(x, CS) !== 3 || dpl(x, CS) === 0,
  },
  {
    section: S_SEG,
    description: "CS access rights: DPL must equal SS DPL for non-conforming code (types 9, 11)",
    fields: [F.GuestCsAccessRights, F.GuestSsAccessRights],
    ok: (x) => v86(x) || (type(x, CS) & ~2) !== 9 || dpl(x, CS) === dpl(x, SS),
  },
  {
    section: S_SEG,
    description: "CS access rights: DPL must not exceed SS DPL for conforming code (types 13, 15)",
    fields: [F.GuestCsAccessRights, F.GuestSsAccessRights],
    ok: (x) => v86(x) || (type(x, CS) & ~2) !== 13 || dpl(x, CS) <= dpl(x, SS),
  },
  {
    section: S_SEG,
    description: "CS access rights: D/B must be 0 when L is 1 in an IA-32e mode guest",
    fields: [F.GuestCsAccessRights],
    ok: (x) => !x.ia32eGuest || !(ar(x, CS) & AR_L) || (ar(x, CS) & AR_DB) === 0,
  },
  {
    section: S_SEG,
    description: "SS access rights: the type must be 3 or 7 if SS is usable",
    fields: [F.GuestSsAccessRights],
    ok: (x) => v86(x) || !usable(x, SS) || type(x, SS) === 3 || type(x, SS) === 7,
  },
  {
    section: S_SEG,
    description: "SS access rights: DPL must equal the SS RPL (without unrestricted guest)",
    fields: [F.GuestSsAccessRights, F.GuestSsSelector],
    ok: (x) => v86(x) || x.unrestricted || dpl(x, SS) === rpl(x, SS),
  },
  {
    section: S_SEG,
    description: "SS access rights: DPL must be 0 if CS type is 3 or CR0.PE is 0",
    fields: [F.GuestSsAccessRights],
    ok: (x) => v86(x) || (type(x, CS) !== 3 && (cr0(x) & CR0_PE) !== 0) || dpl(x, SS) === 0,
  },
  ...DATA.flatMap(dataRows),
  {
    section: S_SEG,
    description:
      "TR access rights: the type must be 11 (busy 32/64-bit TSS), or 3 outside IA-32e mode",
    fields: [F.GuestTrAccessRights],
    ok: (x) => type(x, TR) === 11 || (!x.ia32eGuest && type(x, TR) === 3),
  },
  {
    section: S_SEG,
    description: "TR access rights: S must be 0, P 1, unusable 0, reserved bits 11:8 and 31:17 0",
    fields: [F.GuestTrAccessRights],
    ok: (x) => (ar(x, TR) & (AR_S | AR_P | AR_UNUSABLE | 0xfffe0f00)) === AR_P,
  },
  {
    section: S_SEG,
    description: "TR access rights: G must match the limit",
    fields: [F.GuestTrAccessRights, F.GuestTrLimit],
    ok: (x) => granularityOk(x, TR),
  },
  {
    section: S_SEG,
    description: "LDTR access rights (usable): type 2, S 0, P 1, reserved bits 11:8 and 31:17 0",
    fields: [F.GuestLdtrAccessRights],
    ok: (x) => !usable(x, LDTR) || (ar(x, LDTR) & (0xf | AR_S | AR_P | 0xfffe0f00)) === (2 | AR_P),
  },
  {
    section: S_SEG,
    description: "LDTR access rights (usable): G must match the limit",
    fields: [F.GuestLdtrAccessRights, F.GuestLdtrLimit],
    ok: (x) => !usable(x, LDTR) || granularityOk(x, LDTR),
  },
  // ---- 27.3.1.3: descriptor-table registers ----
  ...[F.GuestGdtrBase, F.GuestIdtrBase].map((f): EntryCheck => ({
    section: S_DT,
    description: "guest GDTR and IDTR bases must be canonical",
    fields: [f],
    ok: (x) => canonicalOk(x.v, f),
  })),
  ...[F.GuestGdtrLimit, F.GuestIdtrLimit].map((f): EntryCheck => ({
    section: S_DT,
    description: "guest GDTR and IDTR limit bits 31:16 must be 0",
    fields: [f],
    ok: (x) => x.v.read(f) >>> 16 === 0,
  })),
  // ---- 27.3.1.4: RIP and RFLAGS ----
  {
    section: S_RIP,
    description: "guest RIP bits 63:32 must be 0 unless the guest is in 64-bit mode",
    fields: [F.GuestRip],
    ok: (x) => (x.ia32eGuest && (ar(x, CS) & AR_L) !== 0) || x.v.readHi(F.GuestRip) === 0,
  },
  {
    section: S_RIP,
    description: "guest RIP must be canonical in 64-bit mode",
    fields: [F.GuestRip],
    ok: (x) => !x.ia32eGuest || !(ar(x, CS) & AR_L) || canonicalOk(x.v, F.GuestRip),
  },
  {
    section: S_RIP,
    description: "guest RFLAGS reserved bits (63:22, 15, 5, 3) must be 0 and bit 1 must be 1",
    fields: [F.GuestRflags],
    ok: (x) => x.v.readHi(F.GuestRflags) === 0 && (rflags(x) & (RFLAGS_RESERVED | 2)) === 2,
  },
  {
    section: S_RIP,
    description: "guest RFLAGS.VM must be 0 with IA-32e mode guest or CR0.PE = 0",
    fields: [F.GuestRflags],
    ok: (x) => !v86(x) || (!x.ia32eGuest && (cr0(x) & CR0_PE) !== 0),
  },
  {
    section: S_RIP,
    description: "guest RFLAGS.IF must be 1 to inject an external interrupt",
    fields: [F.GuestRflags, F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || x.injType !== 0 || (rflags(x) & RFLAGS_IF) !== 0,
  },
  // ---- 27.3.1.5: non-register state ----
  {
    section: S_NONREG,
    description: "the guest activity state must be 0-3 (active, HLT, shutdown, wait-for-SIPI)",
    fields: [F.GuestActivityState],
    ok: (x) => activity(x) <= ActivityState.WaitForSipi,
  },
  {
    section: S_NONREG,
    description: "the guest activity state must not be HLT when SS DPL is not 0",
    fields: [F.GuestActivityState, F.GuestSsAccessRights],
    ok: (x) => activity(x) !== ActivityState.Hlt || dpl(x, SS) === 0,
  },
  {
    section: S_NONREG,
    description: "the guest activity state must be active with blocking by STI or MOV SS",
    fields: [F.GuestActivityState, F.GuestInterruptibilityState],
    ok: (x) =>
      !(intr(x) & (BLOCKING_STI | BLOCKING_MOV_SS)) || activity(x) === ActivityState.Active,
  },
  {
    section: S_NONREG,
    description:
      "the guest activity state must accept the injected event (shutdown: NMI and #MC only; wait-for-SIPI: none)",
    fields: [F.GuestActivityState, F.EntryInterruptionInfo],
    ok: (x) => {
      if (!x.injValid) return true;
      const a = activity(x);
      if (a === ActivityState.WaitForSipi) return false;
      if (a !== ActivityState.Shutdown) return true;
      return x.injType === 2 || (x.injType === 3 && x.injVector === 18);
    },
  },
  {
    section: S_NONREG,
    description: "guest interruptibility state reserved bits 31:5 (and enclave bit 4) must be 0",
    fields: [F.GuestInterruptibilityState],
    ok: (x) => intr(x) >>> 4 === 0,
  },
  {
    section: S_NONREG,
    description: "guest interruptibility state must not block by both STI and MOV SS",
    fields: [F.GuestInterruptibilityState],
    ok: (x) => (intr(x) & 3) !== 3,
  },
  {
    section: S_NONREG,
    description: "blocking by STI requires guest RFLAGS.IF = 1",
    fields: [F.GuestInterruptibilityState, F.GuestRflags],
    ok: (x) => !(intr(x) & BLOCKING_STI) || (rflags(x) & RFLAGS_IF) !== 0,
  },
  {
    section: S_NONREG,
    description: "an injected external interrupt requires no blocking by STI or MOV SS",
    fields: [F.GuestInterruptibilityState, F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || x.injType !== 0 || (intr(x) & 3) === 0,
  },
  {
    section: S_NONREG,
    description: "an injected NMI requires no blocking by MOV SS",
    fields: [F.GuestInterruptibilityState, F.EntryInterruptionInfo],
    ok: (x) => !x.injValid || x.injType !== 2 || (intr(x) & BLOCKING_MOV_SS) === 0,
  },
  {
    section: S_NONREG,
    description: "blocking by SMI must be 0 outside SMM",
    fields: [F.GuestInterruptibilityState],
    ok: (x) => (intr(x) & BLOCKING_SMI) === 0,
  },
  {
    section: S_NONREG,
    description: "with virtual NMIs, an injected NMI requires no (virtual-)NMI blocking",
    fields: [F.GuestInterruptibilityState, F.EntryInterruptionInfo],
    ok: (x) =>
      !(x.pin & Pin.VirtualNmis) ||
      !x.injValid ||
      x.injType !== 2 ||
      (intr(x) & BLOCKING_NMI) === 0,
  },
  {
    section: S_NONREG,
    description: "guest pending debug exceptions reserved bits (11:4, 13, 15, 63:16) must be 0",
    fields: [F.GuestPendingDebugExceptions],
    ok: (x) =>
      x.v.readHi(F.GuestPendingDebugExceptions) === 0 &&
      (x.v.read(F.GuestPendingDebugExceptions) & ~PENDING_DEBUG_VALID) === 0,
  },
  {
    section: S_NONREG,
    description:
      "with blocking by STI or MOV SS or activity HLT, pending BS must equal RFLAGS.TF (IA32_DEBUGCTL.BTF is 0)",
    fields: [F.GuestPendingDebugExceptions, F.GuestRflags],
    ok: (x) => {
      if (!(intr(x) & 3) && activity(x) !== ActivityState.Hlt) return true;
      const bs = (x.v.read(F.GuestPendingDebugExceptions) & PENDING_BS) !== 0;
      return bs === ((rflags(x) & RFLAGS_TF) !== 0);
    },
  },
  {
    section: S_NONREG,
    description:
      "the VMCS link pointer must be FFFFFFFF_FFFFFFFFH, or a 4-KiB aligned address within MAXPHYADDR of a region with this revision identifier (no shadow VMCS)",
    fields: [F.VmcsLinkPointer],
    qualification: QUAL_LINK_POINTER,
    ok: (x) => {
      const lo = x.v.read(F.VmcsLinkPointer);
      const hi = x.v.readHi(F.VmcsLinkPointer);
      if ((lo & hi) >>> 0 === 0xffffffff) return true;
      if (!physOk(x.v, F.VmcsLinkPointer, 0xfff)) return false;
      // Bit 31 (shadow VMCS) matters only with VMCS shadowing, which is not offered.
      return (x.c.mem.read(x.v.read64(F.VmcsLinkPointer), 4) & 0x7fffffff) === VMCS_REVISION_ID;
    },
  },
  // ---- 27.3.1.6: PDPTEs (with EPT, the guest PDPTE fields; without, loaded from CR3) ----
  ...[F.GuestPdpte0, F.GuestPdpte1, F.GuestPdpte2, F.GuestPdpte3].map((f, k): EntryCheck => ({
    section: S_PDPTE,
    description: `with EPT and PAE paging, PDPTE${k} must not set reserved bits (2:1, 8:5, 63:MAXPHYADDR) when present`,
    fields: [f],
    qualification: QUAL_PDPTE,
    ok: (x) => {
      if (!(x.proc2 & Proc2.EnableEpt) || x.ia32eGuest) return true;
      if (!(cr0(x) & CR0_PG) || !(cr4(x) & CR4_PAE)) return true;
      const lo = x.v.read(f);
      return !(lo & 1) || ((lo & 0x1e6) === 0 && (x.v.readHi(f) & PHYS_HI_RESERVED) === 0);
    },
  })),
];
