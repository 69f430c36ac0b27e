/**
 * VM entries (SDM Vol. 3C, chapter 27): the checks on the controls and the host state
 * (27.2: VMfailValid 7 or 8), the checks on the guest state (27.3.1: a VM-entry failure),
 * loading the guest state (27.3.2) with the PDPTEs of PAE guests, the VM-entry MSR-load
 * list (27.4), then events.ts's afterVmEntry (event injection, windows, the preemption
 * timer, MTF). Failures after the checks on controls and host state leave through
 * entryFailure (27.8), which loads the host state as a VM exit does.
 */
import {
  AR_DPL_SHIFT,
  BLOCKING_MOV_SS,
  BLOCKING_STI,
  CR0_CD,
  CR0_ET,
  CR0_NW,
  CR0_PG,
  CR4_PAE,
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
} from "../arch.js";
import type { Cpu } from "../cpu.js";
import { Fault } from "../fault.js";
import { loadPdptes } from "../mmu.js";
import { IA32_SYSENTER_CS, IA32_SYSENTER_EIP, IA32_SYSENTER_ESP } from "../msr.js";
import { EntryCtl, Pin, Proc2 } from "./controls.js";
import {
  CONTROL_CHECKS,
  describeFailure,
  entryContext,
  firstFailure,
  HOST_CHECKS,
  type EntryContext,
} from "./entry-checks.js";
import { GUEST_CHECKS, QUAL_PDPTE } from "./entry-guest-checks.js";
import { afterVmEntry } from "./events.js";
import { ExitReason } from "./exit-reasons.js";
import { EXIT_REASON_ENTRY_FAILURE, finishExit, readLinear, VmExitSignal } from "./exit.js";
import { F } from "./fields.js";
import { loadMsrList } from "./msr-lists.js";
import { enterGuestTlb } from "./tlb.js";
import { hex64, traceEntry, traceEntryFailure } from "./trace.js";
import type { Vmcs } from "./vmcs.js";
import { VmxError, vmFailValid } from "./vmfail.js";

/**
 * VMLAUNCH/VMRESUME after their own checks (instructions.ts): returns after VMfailValid
 * or a successful entry (the CPU then runs the guest); throws VmExitSignal after a
 * VM-entry failure (the CPU runs the host again).
 */
export function vmEntry(c: Cpu, launch: boolean): void {
  const v = c.vmx.vmcs;
  const x = entryContext(c, v);
  const ctl = firstFailure(CONTROL_CHECKS, x);
  if (ctl !== undefined) {
    traceEntryFailure(c, describeFailure(ctl, v), "VMfailValid(7)");
    return vmFailValid(c, VmxError.EntryInvalidControls);
  }
  const host = firstFailure(HOST_CHECKS, x);
  if (host !== undefined) {
    traceEntryFailure(c, describeFailure(host, v), "VMfailValid(8)");
    return vmFailValid(c, VmxError.EntryInvalidHostState);
  }
  const guest = firstFailure(GUEST_CHECKS, x);
  if (guest !== undefined) {
    const q = guest.qualification ?? 0;
    traceEntryFailure(c, describeFailure(guest, v), `exit reason 33, qualification ${q}`);
    entryFailure(c, v, ExitReason.EntryFailGuestState, q);
  }
  // 27.8: a failure from here on leaves blocking by NMI as it was before the entry.
  const nmiBlocked = c.nmiBlocked;
  if (!loadGuestState(c, v, x)) {
    c.nmiBlocked = nmiBlocked;
    const cr3 = `guest CR3 = ${hex64(v.read(F.GuestCr3), v.readHi(F.GuestCr3))}`;
    const why = "27.3.1.6 the PDPTEs loaded from guest CR3 must not set reserved bits";
    traceEntryFailure(c, `${why}: ${cr3}`, "exit reason 33, qualification 2");
    entryFailure(c, v, ExitReason.EntryFailGuestState, QUAL_PDPTE);
  }
  const bad = loadMsrList(c, v.read64(F.EntryMsrLoadAddress), v.read(F.EntryMsrLoadCount));
  if (bad !== 0) {
    c.nmiBlocked = nmiBlocked;
    const index = c.mem.read(v.read64(F.EntryMsrLoadAddress) + 16 * (bad - 1), 4) >>> 0;
    const why = `27.4 entry ${bad} (MSR 0x${index.toString(16)}) of the VM-entry MSR-load list must load as WRMSR would`;
    const list = hex64(v.read(F.EntryMsrLoadAddress), v.readHi(F.EntryMsrLoadAddress));
    traceEntryFailure(
      c,
      `${why}: VM-entry MSR-load address = ${list}`,
      `exit reason 34, qualification ${bad}`,
    );
    entryFailure(c, v, ExitReason.EntryFailMsrLoading, bad);
  }
  if (launch) v.launched = true;
  c.vmx.nonRoot = true;
  // The guest's TLB bank and EPT before anything touches guest memory (tlb.ts).
  enterGuestTlb(c, v);
  traceEntry(c, launch);
  afterVmEntry(c);
}

/**
 * A VM-entry failure during or after loading the guest state (SDM Vol. 3C, 27.8): exit
 * reason with bit 31 set and the qualification; the other exit-information fields and
 * the guest-state area are untouched; the host state and the VM-exit MSR-load list are
 * loaded as on a VM exit. Throws VmExitSignal.
 */
export function entryFailure(c: Cpu, v: Vmcs, reason: number, qualification: number): never {
  v.write(F.ExitReason, (reason | EXIT_REASON_ENTRY_FAILURE) >>> 0);
  v.write(F.ExitQualification, qualification);
  c.vmx.nonRoot = false;
  finishExit(c, v, reason | EXIT_REASON_ENTRY_FAILURE, {});
  throw new VmExitSignal(reason | EXIT_REASON_ENTRY_FAILURE);
}

/** The guest segment registers' fields, in the CPU's numbering (arch.ts). */
const SEGS: [number, F, F, F, F][] = [
  [ES, F.GuestEsSelector, F.GuestEsBase, F.GuestEsLimit, F.GuestEsAccessRights],
  [CS, F.GuestCsSelector, F.GuestCsBase, F.GuestCsLimit, F.GuestCsAccessRights],
  [SS, F.GuestSsSelector, F.GuestSsBase, F.GuestSsLimit, F.GuestSsAccessRights],
  [DS, F.GuestDsSelector, F.GuestDsBase, F.GuestDsLimit, F.GuestDsAccessRights],
  [FS, F.GuestFsSelector, F.GuestFsBase, F.GuestFsLimit, F.GuestFsAccessRights],
  [GS, F.GuestGsSelector, F.GuestGsBase, F.GuestGsLimit, F.GuestGsAccessRights],
];

/**
 * SDM Vol. 3C, 27.3.2: loading the guest state. Returns false when the PDPTEs of a PAE
 * guest without EPT cannot be loaded from its CR3 (a VM-entry failure, qualification 2).
 */
function loadGuestState(c: Cpu, v: Vmcs, x: EntryContext): boolean {
  // 27.3.2.1: control registers (CR0's ET, NW, CD and reserved bits are kept), debug
  // registers, MSRs.
  const keep = CR0_ET | CR0_CD | CR0_NW | 0x1ff80000 | (1 << 17) | 0xffc0;
  c.cr0 = (c.cr0 & keep) | (v.read(F.GuestCr0) & ~keep);
  c.cr3 = v.read(F.GuestCr3) | 0;
  c.cr3Hi = x.ia32eGuest ? v.readHi(F.GuestCr3) | 0 : 0;
  c.cr4 = v.read(F.GuestCr4) | 0;
  if (x.entry & EntryCtl.LoadDebugControls) {
    c.dr[7] = (v.read(F.GuestDr7) | DR7_FIXED1) & ~(0xc000 | 0x800);
  }
  c.msr.write(IA32_SYSENTER_CS, v.read(F.GuestIa32SysenterCs) & 0xffff, 0); // a 16-bit MSR here
  c.msr.write(IA32_SYSENTER_ESP, v.read(F.GuestIa32SysenterEsp), v.readHi(F.GuestIa32SysenterEsp));
  c.msr.write(IA32_SYSENTER_EIP, v.read(F.GuestIa32SysenterEip), v.readHi(F.GuestIa32SysenterEip));
  if (x.entry & EntryCtl.LoadPat) {
    c.msr.write(0x277, v.read(F.GuestIa32Pat), v.readHi(F.GuestIa32Pat));
  }
  if (x.entry & EntryCtl.LoadEfer) c.msr.efer = v.read(F.GuestIa32Efer);
  else {
    // Without "load IA32_EFER", LMA follows "IA-32e mode guest", and LME too if CR0.PG.
    let efer = c.msr.efer & ~EFER_LMA;
    if (x.ia32eGuest) efer |= EFER_LMA;
    if (c.cr0 & CR0_PG) efer = x.ia32eGuest ? efer | EFER_LME : efer & ~EFER_LME;
    c.msr.efer = efer;
  }
  // 27.3.2.2: segment and descriptor-table registers, as the fields give them.
  for (const [s, sel, base, limit, ar] of SEGS) {
    const r = c.segs[s];
    r.set(v.read(sel), v.read(base), v.read(limit), v.read(ar));
    r.baseHi = v.readHi(base) | 0;
    if (r.baseHi !== 0) r.flat = false;
  }
  c.ldtr.set(
    v.read(F.GuestLdtrSelector),
    v.read(F.GuestLdtrBase),
    v.read(F.GuestLdtrLimit),
    v.read(F.GuestLdtrAccessRights),
  );
  c.ldtr.baseHi = v.readHi(F.GuestLdtrBase) | 0;
  c.tr.set(
    v.read(F.GuestTrSelector),
    v.read(F.GuestTrBase),
    v.read(F.GuestTrLimit),
    v.read(F.GuestTrAccessRights),
  );
  c.tr.baseHi = v.readHi(F.GuestTrBase) | 0;
  c.gdtrBase = readLinear(v, F.GuestGdtrBase, x.ia32eGuest);
  c.gdtrLimit = v.read(F.GuestGdtrLimit);
  c.idtrBase = readLinear(v, F.GuestIdtrBase, x.ia32eGuest);
  c.idtrLimit = v.read(F.GuestIdtrLimit);
  // 27.3.2.3: RIP, RSP, RFLAGS; CPL is SS.DPL.
  c.regs[ESP] = v.read(F.GuestRsp) | 0;
  c.regsHi[ESP] = v.readHi(F.GuestRsp) | 0;
  c.flags.load(v.read(F.GuestRflags));
  c.cpl = (c.segs[SS].ar >>> AR_DPL_SHIFT) & 3;
  c.modeChanged();
  c.eip = c.nextEip = readLinear(v, F.GuestRip, c.mode64);
  c.debug.update(c);
  // 27.3.2.5: non-register state. With "virtual NMIs", bit 3 is virtual-NMI blocking and
  // stays in the field (events.ts), and NMIs are not blocked; without, it is blocking by NMI.
  const intr = v.read(F.GuestInterruptibilityState);
  c.blocking = intr & (BLOCKING_STI | BLOCKING_MOV_SS);
  c.nmiBlocked = !(x.pin & Pin.VirtualNmis) && (intr & 8) !== 0;
  c.activity = v.read(F.GuestActivityState);
  // 27.3.2.4: PDPTEs of a PAE guest, from the fields with EPT, else from guest CR3.
  if (c.cr0 & CR0_PG && c.cr4 & CR4_PAE && !x.ia32eGuest) {
    if (x.proc2 & Proc2.EnableEpt) {
      const f = [F.GuestPdpte0, F.GuestPdpte1, F.GuestPdpte2, F.GuestPdpte3];
      for (let k = 0; k < 4; k++) c.pdpte[k] = v.read64(f[k]);
    } else {
      try {
        loadPdptes(c);
      } catch (e) {
        if (e instanceof Fault) return false;
        throw e;
      }
    }
  }
  return true;
}
