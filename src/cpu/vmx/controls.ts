/**
 * The VM-execution, VM-exit and VM-entry controls (SDM Vol. 3C, 25.6, 25.7 and 25.8): one
 * commented constant per control bit, named as in the SDM, and one table per control
 * field saying which bits this implementation honours. The capability MSRs
 * (capabilities.ts) and the existence of VMCS fields (fields.ts) are derived from these
 * tables, never typed by hand: flip `implemented` when a control starts to work.
 */

// ---- pin-based VM-execution controls (SDM Vol. 3C, Table 25-5) ----
export const enum Pin {
  ExternalInterruptExiting = 1 << 0,
  NmiExiting = 1 << 3,
  VirtualNmis = 1 << 5,
  ActivatePreemptionTimer = 1 << 6,
  ProcessPostedInterrupts = 1 << 7,
}

// ---- primary processor-based VM-execution controls (SDM Vol. 3C, Table 25-6) ----
export const enum Proc {
  InterruptWindowExiting = 1 << 2,
  UseTscOffsetting = 1 << 3,
  HltExiting = 1 << 7,
  InvlpgExiting = 1 << 9,
  MwaitExiting = 1 << 10,
  RdpmcExiting = 1 << 11,
  RdtscExiting = 1 << 12,
  Cr3LoadExiting = 1 << 15,
  Cr3StoreExiting = 1 << 16,
  ActivateTertiaryControls = 1 << 17,
  Cr8LoadExiting = 1 << 19,
  Cr8StoreExiting = 1 << 20,
  UseTprShadow = 1 << 21,
  NmiWindowExiting = 1 << 22,
  MovDrExiting = 1 << 23,
  UnconditionalIoExiting = 1 << 24,
  UseIoBitmaps = 1 << 25,
  MonitorTrapFlag = 1 << 27,
  UseMsrBitmaps = 1 << 28,
  MonitorExiting = 1 << 29,
  PauseExiting = 1 << 30,
  ActivateSecondaryControls = 1 << 31,
}

// ---- secondary processor-based VM-execution controls (SDM Vol. 3C, Table 25-7) ----
export const enum Proc2 {
  VirtualizeApicAccesses = 1 << 0,
  EnableEpt = 1 << 1,
  DescriptorTableExiting = 1 << 2,
  EnableRdtscp = 1 << 3,
  VirtualizeX2apicMode = 1 << 4,
  EnableVpid = 1 << 5,
  WbinvdExiting = 1 << 6,
  UnrestrictedGuest = 1 << 7,
  ApicRegisterVirtualization = 1 << 8,
  VirtualInterruptDelivery = 1 << 9,
  PauseLoopExiting = 1 << 10,
  RdrandExiting = 1 << 11,
  EnableInvpcid = 1 << 12,
  EnableVmFunctions = 1 << 13,
  VmcsShadowing = 1 << 14,
  EnableEnclsExiting = 1 << 15,
  RdseedExiting = 1 << 16,
  EnablePml = 1 << 17,
  EptViolationVe = 1 << 18,
  ConcealVmxFromPt = 1 << 19,
  EnableXsavesXrstors = 1 << 20,
  PasidTranslation = 1 << 21,
  ModeBasedExecuteControl = 1 << 22,
  SubPageWritePermissions = 1 << 23,
  PtUsesGuestPhysical = 1 << 24,
  UseTscScaling = 1 << 25,
  EnableUserWaitAndPause = 1 << 26,
  EnablePconfig = 1 << 27,
  EnableEnclvExiting = 1 << 28,
  VmmBusLockDetection = 1 << 30,
  InstructionTimeout = 1 << 31,
}

// ---- primary VM-exit controls (SDM Vol. 3C, Table 25-13) ----
export const enum ExitCtl {
  SaveDebugControls = 1 << 2,
  HostAddressSpaceSize = 1 << 9,
  LoadPerfGlobalCtrl = 1 << 12,
  AcknowledgeInterruptOnExit = 1 << 15,
  SavePat = 1 << 18,
  LoadPat = 1 << 19,
  SaveEfer = 1 << 20,
  LoadEfer = 1 << 21,
  SavePreemptionTimer = 1 << 22,
  ClearBndcfgs = 1 << 23,
  ConcealVmxFromPt = 1 << 24,
  ClearRtitCtl = 1 << 25,
  ClearLbrCtl = 1 << 26,
  ClearUinv = 1 << 27,
  LoadCetState = 1 << 28,
  LoadPkrs = 1 << 29,
  SavePerfGlobalCtl = 1 << 30,
  ActivateSecondaryControls = 1 << 31,
}

// ---- VM-entry controls (SDM Vol. 3C, Table 25-15) ----
export const enum EntryCtl {
  LoadDebugControls = 1 << 2,
  Ia32eModeGuest = 1 << 9,
  EntryToSmm = 1 << 10,
  DeactivateDualMonitor = 1 << 11,
  LoadPerfGlobalCtrl = 1 << 13,
  LoadPat = 1 << 14,
  LoadEfer = 1 << 15,
  LoadBndcfgs = 1 << 16,
  ConcealVmxFromPt = 1 << 17,
  LoadRtitCtl = 1 << 18,
  LoadUinv = 1 << 19,
  LoadCetState = 1 << 20,
  LoadLbrCtl = 1 << 21,
  LoadPkrs = 1 << 22,
}

/** One control bit: its SDM name and whether this implementation honours it. */
export interface ControlDef {
  bit: number;
  name: string;
  implemented: boolean;
}

/** A control field: its bits, and the "default1" bits of SDM Vol. 3C, Appendix A.2. */
export interface ControlTable {
  name: string;
  controls: readonly ControlDef[];
  /**
   * Bits reported as 1 in the allowed-0 half of the non-TRUE capability MSR (default1
   * class). Those that are also controls in `controls` and implemented may be 0 in the
   * TRUE MSR; the others are reserved and fixed to 1 there too (SDM A.2).
   */
  default1: number;
}

const c = (bit: number, name: string, implemented: boolean): ControlDef => ({
  bit,
  name,
  implemented,
});

export const PIN_CONTROLS: ControlTable = {
  name: "pin-based VM-execution controls",
  default1: 0x16, // bits 1, 2, 4
  controls: [
    c(Pin.ExternalInterruptExiting, "external-interrupt exiting", true),
    c(Pin.NmiExiting, "NMI exiting", true),
    c(Pin.VirtualNmis, "virtual NMIs", true),
    c(Pin.ActivatePreemptionTimer, "activate VMX-preemption timer", true),
    c(Pin.ProcessPostedInterrupts, "process posted interrupts", false),
  ],
};

export const PROC_CONTROLS: ControlTable = {
  name: "primary processor-based VM-execution controls",
  default1: 0x0401e172, // bits 1, 4-6, 8, 13-16, 26
  controls: [
    c(Proc.InterruptWindowExiting, "interrupt-window exiting", true),
    c(Proc.UseTscOffsetting, "use TSC offsetting", true),
    c(Proc.HltExiting, "HLT exiting", true),
    c(Proc.InvlpgExiting, "INVLPG exiting", true),
    c(Proc.MwaitExiting, "MWAIT exiting", true),
    c(Proc.RdpmcExiting, "RDPMC exiting", true),
    c(Proc.RdtscExiting, "RDTSC exiting", true),
    c(Proc.Cr3LoadExiting, "CR3-load exiting", true),
    c(Proc.Cr3StoreExiting, "CR3-store exiting", true),
    c(Proc.ActivateTertiaryControls, "activate tertiary controls", false),
    c(Proc.Cr8LoadExiting, "CR8-load exiting", true),
    c(Proc.Cr8StoreExiting, "CR8-store exiting", true),
    c(Proc.UseTprShadow, "use TPR shadow", false),
    c(Proc.NmiWindowExiting, "NMI-window exiting", true),
    c(Proc.MovDrExiting, "MOV-DR exiting", true),
    c(Proc.UnconditionalIoExiting, "unconditional I/O exiting", true),
    c(Proc.UseIoBitmaps, "use I/O bitmaps", true),
    c(Proc.MonitorTrapFlag, "monitor trap flag", true),
    c(Proc.UseMsrBitmaps, "use MSR bitmaps", true),
    c(Proc.MonitorExiting, "MONITOR exiting", true),
    c(Proc.PauseExiting, "PAUSE exiting", true),
    c(Proc.ActivateSecondaryControls, "activate secondary controls", true),
  ],
};

export const PROC2_CONTROLS: ControlTable = {
  name: "secondary processor-based VM-execution controls",
  default1: 0,
  controls: [
    c(Proc2.VirtualizeApicAccesses, "virtualize APIC accesses", false),
    c(Proc2.EnableEpt, "enable EPT", true),
    c(Proc2.DescriptorTableExiting, "descriptor-table exiting", true),
    c(Proc2.EnableRdtscp, "enable RDTSCP", true),
    c(Proc2.VirtualizeX2apicMode, "virtualize x2APIC mode", false),
    c(Proc2.EnableVpid, "enable VPID", true),
    c(Proc2.WbinvdExiting, "WBINVD exiting", true),
    c(Proc2.UnrestrictedGuest, "unrestricted guest", true),
    c(Proc2.ApicRegisterVirtualization, "APIC-register virtualization", false),
    c(Proc2.VirtualInterruptDelivery, "virtual-interrupt delivery", false),
    c(Proc2.PauseLoopExiting, "PAUSE-loop exiting", false),
    c(Proc2.RdrandExiting, "RDRAND exiting", false),
    c(Proc2.EnableInvpcid, "enable INVPCID", true),
    c(Proc2.EnableVmFunctions, "enable VM functions", false),
    c(Proc2.VmcsShadowing, "VMCS shadowing", false),
    c(Proc2.EnableEnclsExiting, "enable ENCLS exiting", false),
    c(Proc2.RdseedExiting, "RDSEED exiting", false),
    c(Proc2.EnablePml, "enable PML", false),
    c(Proc2.EptViolationVe, "EPT-violation #VE", false),
    c(Proc2.ConcealVmxFromPt, "conceal VMX from PT", false),
    c(Proc2.EnableXsavesXrstors, "enable XSAVES/XRSTORS", false),
    c(Proc2.PasidTranslation, "PASID translation", false),
    c(Proc2.ModeBasedExecuteControl, "mode-based execute control for EPT", false),
    c(Proc2.SubPageWritePermissions, "sub-page write permissions for EPT", false),
    c(Proc2.PtUsesGuestPhysical, "Intel PT uses guest physical addresses", false),
    c(Proc2.UseTscScaling, "use TSC scaling", false),
    c(Proc2.EnableUserWaitAndPause, "enable user wait and pause", false),
    c(Proc2.EnablePconfig, "enable PCONFIG", false),
    c(Proc2.EnableEnclvExiting, "enable ENCLV exiting", false),
    c(Proc2.VmmBusLockDetection, "VMM bus-lock detection", false),
    c(Proc2.InstructionTimeout, "instruction timeout", false),
  ],
};

export const EXIT_CONTROLS: ControlTable = {
  name: "VM-exit controls",
  default1: 0x00036dff, // bits 0-8, 10, 11, 13, 14, 16, 17
  controls: [
    c(ExitCtl.SaveDebugControls, "save debug controls", true),
    c(ExitCtl.HostAddressSpaceSize, "host address-space size", true),
    c(ExitCtl.LoadPerfGlobalCtrl, "load IA32_PERF_GLOBAL_CTRL", false),
    c(ExitCtl.AcknowledgeInterruptOnExit, "acknowledge interrupt on exit", true),
    c(ExitCtl.SavePat, "save IA32_PAT", true),
    c(ExitCtl.LoadPat, "load IA32_PAT", true),
    c(ExitCtl.SaveEfer, "save IA32_EFER", true),
    c(ExitCtl.LoadEfer, "load IA32_EFER", true),
    c(ExitCtl.SavePreemptionTimer, "save VMX-preemption timer value", true),
    c(ExitCtl.ClearBndcfgs, "clear IA32_BNDCFGS", false),
    c(ExitCtl.ConcealVmxFromPt, "conceal VMX from PT", false),
    c(ExitCtl.ClearRtitCtl, "clear IA32_RTIT_CTL", false),
    c(ExitCtl.ClearLbrCtl, "clear IA32_LBR_CTL", false),
    c(ExitCtl.ClearUinv, "clear UINV", false),
    c(ExitCtl.LoadCetState, "load CET state", false),
    c(ExitCtl.LoadPkrs, "load PKRS", false),
    c(ExitCtl.SavePerfGlobalCtl, "save IA32_PERF_GLOBAL_CTL", false),
    c(ExitCtl.ActivateSecondaryControls, "activate secondary controls", false),
  ],
};

export const ENTRY_CONTROLS: ControlTable = {
  name: "VM-entry controls",
  default1: 0x000011ff, // bits 0-8, 12
  controls: [
    c(EntryCtl.LoadDebugControls, "load debug controls", true),
    c(EntryCtl.Ia32eModeGuest, "IA-32e mode guest", true),
    c(EntryCtl.EntryToSmm, "entry to SMM", false),
    c(EntryCtl.DeactivateDualMonitor, "deactivate dual-monitor treatment", false),
    c(EntryCtl.LoadPerfGlobalCtrl, "load IA32_PERF_GLOBAL_CTRL", false),
    c(EntryCtl.LoadPat, "load IA32_PAT", true),
    c(EntryCtl.LoadEfer, "load IA32_EFER", true),
    c(EntryCtl.LoadBndcfgs, "load IA32_BNDCFGS", false),
    c(EntryCtl.ConcealVmxFromPt, "conceal VMX from PT", false),
    c(EntryCtl.LoadRtitCtl, "load IA32_RTIT_CTL", false),
    c(EntryCtl.LoadUinv, "load UINV", false),
    c(EntryCtl.LoadCetState, "load CET state", false),
    c(EntryCtl.LoadLbrCtl, "load guest IA32_LBR_CTL", false),
    c(EntryCtl.LoadPkrs, "load PKRS", false),
  ],
};

/** The controls of a table that this implementation lets software set (allowed-1). */
export function allowed1(t: ControlTable): number {
  let m = t.default1;
  for (const d of t.controls) if (d.implemented) m |= d.bit;
  return m >>> 0;
}

/**
 * Controls that must be 1 in the TRUE capability MSR: the default1 bits that are not
 * implemented controls (SDM Vol. 3C, A.2: e.g. "CR3-load exiting" may be 0 there).
 */
export function trueAllowed0(t: ControlTable): number {
  let m = t.default1;
  for (const d of t.controls) if (d.implemented) m &= ~d.bit;
  return m >>> 0;
}

/**
 * What this implementation supports, as the existence of VMCS fields needs it (SDM
 * Vol. 3C, Appendix B: a field exists when the processor supports its feature): the
 * allowed-1 settings of each control field.
 */
export interface VmxFeatures {
  pin: number;
  proc: number;
  proc2: number;
  exit: number;
  entry: number;
}

export const FEATURES: VmxFeatures = {
  pin: allowed1(PIN_CONTROLS),
  proc: allowed1(PROC_CONTROLS),
  proc2: allowed1(PROC2_CONTROLS),
  exit: allowed1(EXIT_CONTROLS),
  entry: allowed1(ENTRY_CONTROLS),
};

/** Name of a control bit of a table, for traces and entry-check messages. */
export function controlName(t: ControlTable, bit: number): string {
  return t.controls.find((d) => d.bit === bit)?.name ?? `bit ${31 - Math.clz32(bit)}`;
}
