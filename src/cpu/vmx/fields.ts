/**
 * The VMCS field table (SDM Vol. 3C, Appendix B): every 16-bit, 64-bit, 32-bit and
 * natural-width field, with its encoding, width, type, SDM name and whether it exists on
 * this implementation. VMREAD/VMWRITE, VMCS storage, traces and tests all derive from
 * this one table.
 *
 * Encoding of a field (SDM Vol. 3C, 25.11.2, Table 25-21):
 *   bit 0      access type (0 = full, 1 = high: bits 63:32 of a 64-bit field)
 *   bits 9:1   index
 *   bits 11:10 type (0 control, 1 VM-exit information, 2 guest state, 3 host state)
 *   bit 12     reserved (0)
 *   bits 14:13 width (0 16-bit, 1 64-bit, 2 32-bit, 3 natural-width)
 */
import { EntryCtl, ExitCtl, FEATURES, Pin, Proc, Proc2, type VmxFeatures } from "./controls.js";

/** Field width, as encoded in bits 14:13. */
export const enum Width {
  W16 = 0,
  W64 = 1,
  W32 = 2,
  Natural = 3,
}

/** Field type, as encoded in bits 11:10. */
export const enum FieldType {
  Control = 0,
  /** VM-exit information: the "read-only data" fields. */
  ExitInfo = 1,
  Guest = 2,
  Host = 3,
}

/** VMCS field encodings, named after SDM Vol. 3C, Appendix B. */
export const enum F {
  // ---- B.1.1 16-bit control fields ----
  Vpid = 0x0000,
  PostedInterruptNotificationVector = 0x0002,
  EptpIndex = 0x0004,
  HlatPrefixSize = 0x0006,
  LastPidPointerIndex = 0x0008,
  // ---- B.1.2 16-bit guest-state fields ----
  GuestEsSelector = 0x0800,
  GuestCsSelector = 0x0802,
  GuestSsSelector = 0x0804,
  GuestDsSelector = 0x0806,
  GuestFsSelector = 0x0808,
  GuestGsSelector = 0x080a,
  GuestLdtrSelector = 0x080c,
  GuestTrSelector = 0x080e,
  GuestInterruptStatus = 0x0810,
  PmlIndex = 0x0812,
  GuestUinv = 0x0814,
  // ---- B.1.3 16-bit host-state fields ----
  HostEsSelector = 0x0c00,
  HostCsSelector = 0x0c02,
  HostSsSelector = 0x0c04,
  HostDsSelector = 0x0c06,
  HostFsSelector = 0x0c08,
  HostGsSelector = 0x0c0a,
  HostTrSelector = 0x0c0c,
  // ---- B.2.1 64-bit control fields ----
  IoBitmapA = 0x2000,
  IoBitmapB = 0x2002,
  MsrBitmaps = 0x2004,
  ExitMsrStoreAddress = 0x2006,
  ExitMsrLoadAddress = 0x2008,
  EntryMsrLoadAddress = 0x200a,
  ExecutiveVmcsPointer = 0x200c,
  PmlAddress = 0x200e,
  TscOffset = 0x2010,
  VirtualApicAddress = 0x2012,
  ApicAccessAddress = 0x2014,
  PostedInterruptDescriptorAddress = 0x2016,
  VmFunctionControls = 0x2018,
  EptPointer = 0x201a,
  EoiExitBitmap0 = 0x201c,
  EoiExitBitmap1 = 0x201e,
  EoiExitBitmap2 = 0x2020,
  EoiExitBitmap3 = 0x2022,
  EptpListAddress = 0x2024,
  VmreadBitmapAddress = 0x2026,
  VmwriteBitmapAddress = 0x2028,
  VeInformationAddress = 0x202a,
  XssExitingBitmap = 0x202c,
  EnclsExitingBitmap = 0x202e,
  SubPagePermissionTablePointer = 0x2030,
  TscMultiplier = 0x2032,
  TertiaryProcControls = 0x2034,
  EnclvExitingBitmap = 0x2036,
  // ---- B.2.2 64-bit read-only data field ----
  GuestPhysicalAddress = 0x2400,
  // ---- B.2.3 64-bit guest-state fields ----
  VmcsLinkPointer = 0x2800,
  GuestIa32Debugctl = 0x2802,
  GuestIa32Pat = 0x2804,
  GuestIa32Efer = 0x2806,
  GuestIa32PerfGlobalCtrl = 0x2808,
  GuestPdpte0 = 0x280a,
  GuestPdpte1 = 0x280c,
  GuestPdpte2 = 0x280e,
  GuestPdpte3 = 0x2810,
  GuestIa32Bndcfgs = 0x2812,
  GuestIa32RtitCtl = 0x2814,
  GuestIa32LbrCtl = 0x2816,
  GuestIa32Pkrs = 0x2818,
  // ---- B.2.4 64-bit host-state fields ----
  HostIa32Pat = 0x2c00,
  HostIa32Efer = 0x2c02,
  HostIa32PerfGlobalCtrl = 0x2c04,
  HostIa32Pkrs = 0x2c06,
  // ---- B.3.1 32-bit control fields ----
  PinBasedControls = 0x4000,
  ProcBasedControls = 0x4002,
  ExceptionBitmap = 0x4004,
  PageFaultErrorCodeMask = 0x4006,
  PageFaultErrorCodeMatch = 0x4008,
  Cr3TargetCount = 0x400a,
  ExitControls = 0x400c,
  ExitMsrStoreCount = 0x400e,
  ExitMsrLoadCount = 0x4010,
  EntryControls = 0x4012,
  EntryMsrLoadCount = 0x4014,
  EntryInterruptionInfo = 0x4016,
  EntryExceptionErrorCode = 0x4018,
  EntryInstructionLength = 0x401a,
  TprThreshold = 0x401c,
  ProcBasedControls2 = 0x401e,
  PleGap = 0x4020,
  PleWindow = 0x4022,
  InstructionTimeoutControl = 0x4024,
  // ---- B.3.2 32-bit read-only data fields ----
  VmInstructionError = 0x4400,
  ExitReason = 0x4402,
  ExitInterruptionInfo = 0x4404,
  ExitInterruptionErrorCode = 0x4406,
  IdtVectoringInfo = 0x4408,
  IdtVectoringErrorCode = 0x440a,
  ExitInstructionLength = 0x440c,
  ExitInstructionInfo = 0x440e,
  // ---- B.3.3 32-bit guest-state fields ----
  GuestEsLimit = 0x4800,
  GuestCsLimit = 0x4802,
  GuestSsLimit = 0x4804,
  GuestDsLimit = 0x4806,
  GuestFsLimit = 0x4808,
  GuestGsLimit = 0x480a,
  GuestLdtrLimit = 0x480c,
  GuestTrLimit = 0x480e,
  GuestGdtrLimit = 0x4810,
  GuestIdtrLimit = 0x4812,
  GuestEsAccessRights = 0x4814,
  GuestCsAccessRights = 0x4816,
  GuestSsAccessRights = 0x4818,
  GuestDsAccessRights = 0x481a,
  GuestFsAccessRights = 0x481c,
  GuestGsAccessRights = 0x481e,
  GuestLdtrAccessRights = 0x4820,
  GuestTrAccessRights = 0x4822,
  GuestInterruptibilityState = 0x4824,
  GuestActivityState = 0x4826,
  GuestSmbase = 0x4828,
  GuestIa32SysenterCs = 0x482a,
  PreemptionTimerValue = 0x482e,
  // ---- B.3.4 32-bit host-state field ----
  HostIa32SysenterCs = 0x4c00,
  // ---- B.4.1 natural-width control fields ----
  Cr0GuestHostMask = 0x6000,
  Cr4GuestHostMask = 0x6002,
  Cr0ReadShadow = 0x6004,
  Cr4ReadShadow = 0x6006,
  Cr3TargetValue0 = 0x6008,
  Cr3TargetValue1 = 0x600a,
  Cr3TargetValue2 = 0x600c,
  Cr3TargetValue3 = 0x600e,
  // ---- B.4.2 natural-width read-only data fields ----
  ExitQualification = 0x6400,
  IoRcx = 0x6402,
  IoRsi = 0x6404,
  IoRdi = 0x6406,
  IoRip = 0x6408,
  GuestLinearAddress = 0x640a,
  // ---- B.4.3 natural-width guest-state fields ----
  GuestCr0 = 0x6800,
  GuestCr3 = 0x6802,
  GuestCr4 = 0x6804,
  GuestEsBase = 0x6806,
  GuestCsBase = 0x6808,
  GuestSsBase = 0x680a,
  GuestDsBase = 0x680c,
  GuestFsBase = 0x680e,
  GuestGsBase = 0x6810,
  GuestLdtrBase = 0x6812,
  GuestTrBase = 0x6814,
  GuestGdtrBase = 0x6816,
  GuestIdtrBase = 0x6818,
  GuestDr7 = 0x681a,
  GuestRsp = 0x681c,
  GuestRip = 0x681e,
  GuestRflags = 0x6820,
  GuestPendingDebugExceptions = 0x6822,
  GuestIa32SysenterEsp = 0x6824,
  GuestIa32SysenterEip = 0x6826,
  GuestIa32SCet = 0x6828,
  GuestSsp = 0x682a,
  GuestIa32InterruptSspTableAddr = 0x682c,
  // ---- B.4.4 natural-width host-state fields ----
  HostCr0 = 0x6c00,
  HostCr3 = 0x6c02,
  HostCr4 = 0x6c04,
  HostFsBase = 0x6c06,
  HostGsBase = 0x6c08,
  HostTrBase = 0x6c0a,
  HostGdtrBase = 0x6c0c,
  HostIdtrBase = 0x6c0e,
  HostIa32SysenterEsp = 0x6c10,
  HostIa32SysenterEip = 0x6c12,
  HostRsp = 0x6c14,
  HostRip = 0x6c16,
  HostIa32SCet = 0x6c18,
  HostSsp = 0x6c1a,
  HostIa32InterruptSspTableAddr = 0x6c1c,
}

/** One VMCS field. */
export interface FieldDef {
  /** Encoding of the full field (access type 0). */
  enc: F;
  /** SDM name, as in Appendix B. */
  name: string;
  width: Width;
  type: FieldType;
  /** The field exists when the processor supports its feature (Appendix B notes). */
  exists: (f: VmxFeatures) => boolean;
  /** Position of the field in the VMCS storage (vmcs.ts); the table order. */
  slot: number;
}

type Row = [enc: F, name: string, exists?: (f: VmxFeatures) => boolean];

const always = (): boolean => true;
// Existence predicates, one per feature that brings fields (SDM Vol. 3C, Appendix B).
const pin = (bit: Pin) => (f: VmxFeatures) => (f.pin & bit) !== 0;
const proc = (bit: Proc) => (f: VmxFeatures) => (f.proc & bit) !== 0;
/** Secondary controls exist only with "activate secondary controls" (25.6.2). */
const proc2 = (bit: Proc2) => (f: VmxFeatures) =>
  (f.proc & Proc.ActivateSecondaryControls) !== 0 && (f.proc2 & bit) !== 0;
const exitOrEntry = (x: ExitCtl, e: EntryCtl) => (f: VmxFeatures) =>
  (f.exit & x) !== 0 || (f.entry & e) !== 0;
const entry = (bit: EntryCtl) => (f: VmxFeatures) => (f.entry & bit) !== 0;
const exit = (bit: ExitCtl) => (f: VmxFeatures) => (f.exit & bit) !== 0;

/** The groups of Appendix B, in its order: width, type, rows. */
const GROUPS: [Width, FieldType, Row[]][] = [
  [
    Width.W16,
    FieldType.Control,
    [
      [F.Vpid, "virtual-processor identifier (VPID)", proc2(Proc2.EnableVpid)],
      [
        F.PostedInterruptNotificationVector,
        "posted-interrupt notification vector",
        pin(Pin.ProcessPostedInterrupts),
      ],
      [F.EptpIndex, "EPTP index", proc2(Proc2.EptViolationVe)],
      [F.HlatPrefixSize, "HLAT prefix size", proc(Proc.ActivateTertiaryControls)],
      [F.LastPidPointerIndex, "last PID-pointer index", proc(Proc.ActivateTertiaryControls)],
    ],
  ],
  [
    Width.W16,
    FieldType.Guest,
    [
      [F.GuestEsSelector, "guest ES selector"],
      [F.GuestCsSelector, "guest CS selector"],
      [F.GuestSsSelector, "guest SS selector"],
      [F.GuestDsSelector, "guest DS selector"],
      [F.GuestFsSelector, "guest FS selector"],
      [F.GuestGsSelector, "guest GS selector"],
      [F.GuestLdtrSelector, "guest LDTR selector"],
      [F.GuestTrSelector, "guest TR selector"],
      [F.GuestInterruptStatus, "guest interrupt status", proc2(Proc2.VirtualInterruptDelivery)],
      [F.PmlIndex, "PML index", proc2(Proc2.EnablePml)],
      [F.GuestUinv, "guest UINV", entry(EntryCtl.LoadUinv)],
    ],
  ],
  [
    Width.W16,
    FieldType.Host,
    [
      [F.HostEsSelector, "host ES selector"],
      [F.HostCsSelector, "host CS selector"],
      [F.HostSsSelector, "host SS selector"],
      [F.HostDsSelector, "host DS selector"],
      [F.HostFsSelector, "host FS selector"],
      [F.HostGsSelector, "host GS selector"],
      [F.HostTrSelector, "host TR selector"],
    ],
  ],
  [
    Width.W64,
    FieldType.Control,
    [
      [F.IoBitmapA, "address of I/O bitmap A"],
      [F.IoBitmapB, "address of I/O bitmap B"],
      [F.MsrBitmaps, "address of MSR bitmaps", proc(Proc.UseMsrBitmaps)],
      [F.ExitMsrStoreAddress, "VM-exit MSR-store address"],
      [F.ExitMsrLoadAddress, "VM-exit MSR-load address"],
      [F.EntryMsrLoadAddress, "VM-entry MSR-load address"],
      [F.ExecutiveVmcsPointer, "executive-VMCS pointer"],
      [F.PmlAddress, "PML address", proc2(Proc2.EnablePml)],
      [F.TscOffset, "TSC offset"],
      [F.VirtualApicAddress, "virtual-APIC address", proc(Proc.UseTprShadow)],
      [F.ApicAccessAddress, "APIC-access address", proc2(Proc2.VirtualizeApicAccesses)],
      [
        F.PostedInterruptDescriptorAddress,
        "posted-interrupt descriptor address",
        pin(Pin.ProcessPostedInterrupts),
      ],
      [F.VmFunctionControls, "VM-function controls", proc2(Proc2.EnableVmFunctions)],
      [F.EptPointer, "EPT pointer (EPTP)", proc2(Proc2.EnableEpt)],
      [F.EoiExitBitmap0, "EOI-exit bitmap 0", proc2(Proc2.VirtualInterruptDelivery)],
      [F.EoiExitBitmap1, "EOI-exit bitmap 1", proc2(Proc2.VirtualInterruptDelivery)],
      [F.EoiExitBitmap2, "EOI-exit bitmap 2", proc2(Proc2.VirtualInterruptDelivery)],
      [F.EoiExitBitmap3, "EOI-exit bitmap 3", proc2(Proc2.VirtualInterruptDelivery)],
      [F.EptpListAddress, "EPTP-list address", proc2(Proc2.EnableVmFunctions)],
      [F.VmreadBitmapAddress, "VMREAD-bitmap address", proc2(Proc2.VmcsShadowing)],
      [F.VmwriteBitmapAddress, "VMWRITE-bitmap address", proc2(Proc2.VmcsShadowing)],
      [
        F.VeInformationAddress,
        "virtualization-exception information address",
        proc2(Proc2.EptViolationVe),
      ],
      [F.XssExitingBitmap, "XSS-exiting bitmap", proc2(Proc2.EnableXsavesXrstors)],
      [F.EnclsExitingBitmap, "ENCLS-exiting bitmap", proc2(Proc2.EnableEnclsExiting)],
      [
        F.SubPagePermissionTablePointer,
        "sub-page-permission-table pointer",
        proc2(Proc2.SubPageWritePermissions),
      ],
      [F.TscMultiplier, "TSC multiplier", proc2(Proc2.UseTscScaling)],
      [
        F.TertiaryProcControls,
        "tertiary processor-based VM-execution controls",
        proc(Proc.ActivateTertiaryControls),
      ],
      [F.EnclvExitingBitmap, "ENCLV-exiting bitmap", proc2(Proc2.EnableEnclvExiting)],
    ],
  ],
  [
    Width.W64,
    FieldType.ExitInfo,
    [[F.GuestPhysicalAddress, "guest-physical address", proc2(Proc2.EnableEpt)]],
  ],
  [
    Width.W64,
    FieldType.Guest,
    [
      [F.VmcsLinkPointer, "VMCS link pointer"],
      [F.GuestIa32Debugctl, "guest IA32_DEBUGCTL"],
      [F.GuestIa32Pat, "guest IA32_PAT", exitOrEntry(ExitCtl.SavePat, EntryCtl.LoadPat)],
      [F.GuestIa32Efer, "guest IA32_EFER", exitOrEntry(ExitCtl.SaveEfer, EntryCtl.LoadEfer)],
      [
        F.GuestIa32PerfGlobalCtrl,
        "guest IA32_PERF_GLOBAL_CTRL",
        entry(EntryCtl.LoadPerfGlobalCtrl),
      ],
      [F.GuestPdpte0, "guest PDPTE0", proc2(Proc2.EnableEpt)],
      [F.GuestPdpte1, "guest PDPTE1", proc2(Proc2.EnableEpt)],
      [F.GuestPdpte2, "guest PDPTE2", proc2(Proc2.EnableEpt)],
      [F.GuestPdpte3, "guest PDPTE3", proc2(Proc2.EnableEpt)],
      [
        F.GuestIa32Bndcfgs,
        "guest IA32_BNDCFGS",
        exitOrEntry(ExitCtl.ClearBndcfgs, EntryCtl.LoadBndcfgs),
      ],
      [
        F.GuestIa32RtitCtl,
        "guest IA32_RTIT_CTL",
        exitOrEntry(ExitCtl.ClearRtitCtl, EntryCtl.LoadRtitCtl),
      ],
      [
        F.GuestIa32LbrCtl,
        "guest IA32_LBR_CTL",
        exitOrEntry(ExitCtl.ClearLbrCtl, EntryCtl.LoadLbrCtl),
      ],
      [F.GuestIa32Pkrs, "guest IA32_PKRS", entry(EntryCtl.LoadPkrs)],
    ],
  ],
  [
    Width.W64,
    FieldType.Host,
    [
      [F.HostIa32Pat, "host IA32_PAT", exit(ExitCtl.LoadPat)],
      [F.HostIa32Efer, "host IA32_EFER", exit(ExitCtl.LoadEfer)],
      [F.HostIa32PerfGlobalCtrl, "host IA32_PERF_GLOBAL_CTRL", exit(ExitCtl.LoadPerfGlobalCtrl)],
      [F.HostIa32Pkrs, "host IA32_PKRS", exit(ExitCtl.LoadPkrs)],
    ],
  ],
  [
    Width.W32,
    FieldType.Control,
    [
      [F.PinBasedControls, "pin-based VM-execution controls"],
      [F.ProcBasedControls, "primary processor-based VM-execution controls"],
      [F.ExceptionBitmap, "exception bitmap"],
      [F.PageFaultErrorCodeMask, "page-fault error-code mask"],
      [F.PageFaultErrorCodeMatch, "page-fault error-code match"],
      [F.Cr3TargetCount, "CR3-target count"],
      [F.ExitControls, "primary VM-exit controls"],
      [F.ExitMsrStoreCount, "VM-exit MSR-store count"],
      [F.ExitMsrLoadCount, "VM-exit MSR-load count"],
      [F.EntryControls, "VM-entry controls"],
      [F.EntryMsrLoadCount, "VM-entry MSR-load count"],
      [F.EntryInterruptionInfo, "VM-entry interruption-information field"],
      [F.EntryExceptionErrorCode, "VM-entry exception error code"],
      [F.EntryInstructionLength, "VM-entry instruction length"],
      [F.TprThreshold, "TPR threshold", proc(Proc.UseTprShadow)],
      [
        F.ProcBasedControls2,
        "secondary processor-based VM-execution controls",
        proc(Proc.ActivateSecondaryControls),
      ],
      [F.PleGap, "PLE_Gap", proc2(Proc2.PauseLoopExiting)],
      [F.PleWindow, "PLE_Window", proc2(Proc2.PauseLoopExiting)],
      [F.InstructionTimeoutControl, "instruction-timeout control", proc2(Proc2.InstructionTimeout)],
    ],
  ],
  [
    Width.W32,
    FieldType.ExitInfo,
    [
      [F.VmInstructionError, "VM-instruction error"],
      [F.ExitReason, "exit reason"],
      [F.ExitInterruptionInfo, "VM-exit interruption information"],
      [F.ExitInterruptionErrorCode, "VM-exit interruption error code"],
      [F.IdtVectoringInfo, "IDT-vectoring information field"],
      [F.IdtVectoringErrorCode, "IDT-vectoring error code"],
      [F.ExitInstructionLength, "VM-exit instruction length"],
      [F.ExitInstructionInfo, "VM-exit instruction information"],
    ],
  ],
  [
    Width.W32,
    FieldType.Guest,
    [
      [F.GuestEsLimit, "guest ES limit"],
      [F.GuestCsLimit, "guest CS limit"],
      [F.GuestSsLimit, "guest SS limit"],
      [F.GuestDsLimit, "guest DS limit"],
      [F.GuestFsLimit, "guest FS limit"],
      [F.GuestGsLimit, "guest GS limit"],
      [F.GuestLdtrLimit, "guest LDTR limit"],
      [F.GuestTrLimit, "guest TR limit"],
      [F.GuestGdtrLimit, "guest GDTR limit"],
      [F.GuestIdtrLimit, "guest IDTR limit"],
      [F.GuestEsAccessRights, "guest ES access rights"],
      [F.GuestCsAccessRights, "guest CS access rights"],
      [F.GuestSsAccessRights, "guest SS access rights"],
      [F.GuestDsAccessRights, "guest DS access rights"],
      [F.GuestFsAccessRights, "guest FS access rights"],
      [F.GuestGsAccessRights, "guest GS access rights"],
      [F.GuestLdtrAccessRights, "guest LDTR access rights"],
      [F.GuestTrAccessRights, "guest TR access rights"],
      [F.GuestInterruptibilityState, "guest interruptibility state"],
      [F.GuestActivityState, "guest activity state"],
      [F.GuestSmbase, "guest SMBASE"],
      [F.GuestIa32SysenterCs, "guest IA32_SYSENTER_CS"],
      [F.PreemptionTimerValue, "VMX-preemption timer value", pin(Pin.ActivatePreemptionTimer)],
    ],
  ],
  [Width.W32, FieldType.Host, [[F.HostIa32SysenterCs, "host IA32_SYSENTER_CS"]]],
  [
    Width.Natural,
    FieldType.Control,
    [
      [F.Cr0GuestHostMask, "CR0 guest/host mask"],
      [F.Cr4GuestHostMask, "CR4 guest/host mask"],
      [F.Cr0ReadShadow, "CR0 read shadow"],
      [F.Cr4ReadShadow, "CR4 read shadow"],
      [F.Cr3TargetValue0, "CR3-target value 0"],
      [F.Cr3TargetValue1, "CR3-target value 1"],
      [F.Cr3TargetValue2, "CR3-target value 2"],
      [F.Cr3TargetValue3, "CR3-target value 3"],
    ],
  ],
  [
    Width.Natural,
    FieldType.ExitInfo,
    [
      [F.ExitQualification, "exit qualification"],
      [F.IoRcx, "I/O RCX"],
      [F.IoRsi, "I/O RSI"],
      [F.IoRdi, "I/O RDI"],
      [F.IoRip, "I/O RIP"],
      [F.GuestLinearAddress, "guest-linear address"],
    ],
  ],
  [
    Width.Natural,
    FieldType.Guest,
    [
      [F.GuestCr0, "guest CR0"],
      [F.GuestCr3, "guest CR3"],
      [F.GuestCr4, "guest CR4"],
      [F.GuestEsBase, "guest ES base"],
      [F.GuestCsBase, "guest CS base"],
      [F.GuestSsBase, "guest SS base"],
      [F.GuestDsBase, "guest DS base"],
      [F.GuestFsBase, "guest FS base"],
      [F.GuestGsBase, "guest GS base"],
      [F.GuestLdtrBase, "guest LDTR base"],
      [F.GuestTrBase, "guest TR base"],
      [F.GuestGdtrBase, "guest GDTR base"],
      [F.GuestIdtrBase, "guest IDTR base"],
      [F.GuestDr7, "guest DR7"],
      [F.GuestRsp, "guest RSP"],
      [F.GuestRip, "guest RIP"],
      [F.GuestRflags, "guest RFLAGS"],
      [F.GuestPendingDebugExceptions, "guest pending debug exceptions"],
      [F.GuestIa32SysenterEsp, "guest IA32_SYSENTER_ESP"],
      [F.GuestIa32SysenterEip, "guest IA32_SYSENTER_EIP"],
      [F.GuestIa32SCet, "guest IA32_S_CET", entry(EntryCtl.LoadCetState)],
      [F.GuestSsp, "guest SSP", entry(EntryCtl.LoadCetState)],
      [
        F.GuestIa32InterruptSspTableAddr,
        "guest IA32_INTERRUPT_SSP_TABLE_ADDR",
        entry(EntryCtl.LoadCetState),
      ],
    ],
  ],
  [
    Width.Natural,
    FieldType.Host,
    [
      [F.HostCr0, "host CR0"],
      [F.HostCr3, "host CR3"],
      [F.HostCr4, "host CR4"],
      [F.HostFsBase, "host FS base"],
      [F.HostGsBase, "host GS base"],
      [F.HostTrBase, "host TR base"],
      [F.HostGdtrBase, "host GDTR base"],
      [F.HostIdtrBase, "host IDTR base"],
      [F.HostIa32SysenterEsp, "host IA32_SYSENTER_ESP"],
      [F.HostIa32SysenterEip, "host IA32_SYSENTER_EIP"],
      [F.HostRsp, "host RSP"],
      [F.HostRip, "host RIP"],
      [F.HostIa32SCet, "host IA32_S_CET", exit(ExitCtl.LoadCetState)],
      [F.HostSsp, "host SSP", exit(ExitCtl.LoadCetState)],
      [
        F.HostIa32InterruptSspTableAddr,
        "host IA32_INTERRUPT_SSP_TABLE_ADDR",
        exit(ExitCtl.LoadCetState),
      ],
    ],
  ],
];

/** Every field of Appendix B, in its order; `slot` is the index here. */
export const FIELDS: readonly FieldDef[] = GROUPS.flatMap(([width, type, rows]) =>
  rows.map(([enc, name, exists]) => ({ enc, name, width, type, exists: exists ?? always })),
).map((d, slot) => ({ ...d, slot }));

/** Width of encoding `enc` (bits 14:13). */
export const encWidth = (enc: number): Width => ((enc >>> 13) & 3) as Width;
/** Type of encoding `enc` (bits 11:10). */
export const encType = (enc: number): FieldType => ((enc >>> 10) & 3) as FieldType;
/** Index of encoding `enc` (bits 9:1). */
export const encIndex = (enc: number): number => (enc >>> 1) & 0x1ff;
/** Access type "high" (bit 0): bits 63:32 of a 64-bit field. */
export const encHigh = (enc: number): boolean => (enc & 1) !== 0;

/**
 * The fields that exist with a set of features, as a slot per encoding: `slotOf[enc]` is
 * the storage slot of the field, or -1 when the encoding names no supported field.
 * Built once per feature set; lookups on the hot path are one typed-array read.
 */
export class FieldMap {
  /** Slot by full encoding (bits 14:0, access type 0), -1 when absent. */
  private readonly slotOf = new Int16Array(0x8000).fill(-1);
  /** The existing fields. */
  readonly fields: readonly FieldDef[];
  /** Highest index of any existing field (IA32_VMX_VMCS_ENUM bits 9:1). */
  readonly highestIndex: number;

  constructor(features: VmxFeatures) {
    this.fields = FIELDS.filter((d) => d.exists(features));
    let hi = 0;
    for (const d of this.fields) {
      this.slotOf[d.enc] = d.slot;
      hi = Math.max(hi, encIndex(d.enc));
    }
    this.highestIndex = hi;
  }

  /**
   * The field that VMREAD/VMWRITE encoding `enc` names, or undefined for an unsupported
   * component (SDM Vol. 3C, 31.3: bits 63:15 must be 0 and the field must exist; the
   * high access type exists only for 64-bit fields).
   */
  lookup(enc: number, encHi = 0): FieldDef | undefined {
    if (encHi !== 0 || enc >>> 15 !== 0) return undefined;
    if (encHigh(enc) && encWidth(enc) !== Width.W64) return undefined;
    const slot = this.slotOf[enc & 0x7ffe];
    return slot < 0 ? undefined : FIELDS[slot];
  }

  /** Storage slot of full encoding `enc` (the CPU's own accesses: always a valid field). */
  slot(enc: F): number {
    return this.slotOf[enc];
  }
}

/** The fields of this implementation (features from controls.ts). */
export const FIELD_MAP = new FieldMap(FEATURES);

/** SDM name of encoding `enc`, for traces; "(high)" for the upper half of a 64-bit field. */
export function fieldName(enc: number): string {
  const d = FIELDS.find((x) => x.enc === (enc & 0x7ffe));
  if (d === undefined) return `field 0x${(enc >>> 0).toString(16).padStart(4, "0")}`;
  return encHigh(enc) ? `${d.name} (high)` : d.name;
}

/** Number of slots the storage needs: every field of the table. */
export const FIELD_COUNT = FIELDS.length;
