/**
 * The VM-entry checks (SDM Vol. 3C, 27.2 and 27.3.1): a valid VMCS enters; then one field
 * at a time is broken and the test asserts the outcome (VMfailValid 7 or 8, or a VM-entry
 * failure with exit reason 33/34 and its qualification) and the check the trace names:
 * its SDM section and the offending field.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AR_DPL_SHIFT, AR_S, CR0_NE, CR4_PAE, CR4_VMXE } from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { ARITH, CF, ZF } from "../src/cpu/flags.js";
import { EntryCtl, ExitCtl, Pin, Proc, Proc2 } from "../src/cpu/vmx/controls.js";
import { CONTROL_CHECKS, entryContext, HOST_CHECKS } from "../src/cpu/vmx/entry-checks.js";
import { GUEST_CHECKS } from "../src/cpu/vmx/entry-guest-checks.js";
import { F, FIELD_MAP, fieldName, FieldType } from "../src/cpu/vmx/fields.js";
import type { Vmcs } from "../src/cpu/vmx/vmcs.js";
import {
  exec,
  GUEST_RIP,
  HOST_RIP,
  validVmcs,
  VMLAUNCH,
  vmxCpu,
  vmxOnWithVmcs,
} from "./helpers/vmx-core.js";

/** A CPU in VMX root operation with a valid current VMCS, and the trace lines it prints. */
function setup(): { cpu: Cpu; v: Vmcs; lines: string[] } {
  const { cpu, mem } = vmxCpu();
  const v = vmxOnWithVmcs(cpu);
  validVmcs(cpu, v);
  mem.ram.set([0x0f, 0xa2], GUEST_RIP); // CPUID
  const lines: string[] = [];
  cpu.vmx.trace = (l) => lines.push(l);
  return { cpu, v, lines };
}

type Outcome = { error: 7 | 8 } | { reason: 33 | 34; qualification: number };

interface Case {
  what: string;
  breakIt: (v: Vmcs, cpu: Cpu) => void;
  section: string;
  field: F;
  outcome: Outcome;
}

const CONTROLS: Outcome = { error: 7 };
const HOST: Outcome = { error: 8 };
const GUEST: Outcome = { reason: 33, qualification: 0 };
const or = (v: Vmcs, f: F, bits: number): void => v.write(f, v.read(f) | bits, v.readHi(f));
const and = (v: Vmcs, f: F, bits: number): void => v.write(f, v.read(f) & bits, v.readHi(f));
const secondary = (v: Vmcs, bits: number): void => {
  or(v, F.ProcBasedControls, Proc.ActivateSecondaryControls);
  v.write(F.ProcBasedControls2, bits);
};
/** A valid 4-level write-back EPTP at 0x20000. */
const EPTP = 0x20000 | 0x1e;

const CASES: Case[] = [
  // ---- 27.2.1.1 VM-execution controls ----
  {
    what: "process posted interrupts (not offered)",
    breakIt: (v) => or(v, F.PinBasedControls, Pin.ProcessPostedInterrupts),
    section: "27.2.1.1",
    field: F.PinBasedControls,
    outcome: CONTROLS,
  },
  {
    what: "a pin-based default1 bit cleared",
    breakIt: (v) => and(v, F.PinBasedControls, ~2),
    section: "27.2.1.1",
    field: F.PinBasedControls,
    outcome: CONTROLS,
  },
  {
    what: "use TPR shadow (not offered)",
    breakIt: (v) => or(v, F.ProcBasedControls, Proc.UseTprShadow),
    section: "27.2.1.1",
    field: F.ProcBasedControls,
    outcome: CONTROLS,
  },
  {
    what: "virtualize APIC accesses (not offered)",
    breakIt: (v) => secondary(v, Proc2.VirtualizeApicAccesses),
    section: "27.2.1.1",
    field: F.ProcBasedControls2,
    outcome: CONTROLS,
  },
  {
    what: "CR3-target count 5",
    breakIt: (v) => v.write(F.Cr3TargetCount, 5),
    section: "27.2.1.1",
    field: F.Cr3TargetCount,
    outcome: CONTROLS,
  },
  {
    what: "I/O bitmap A not aligned",
    breakIt: (v) => {
      or(v, F.ProcBasedControls, Proc.UseIoBitmaps);
      v.write(F.IoBitmapA, 0x30008);
    },
    section: "27.2.1.1",
    field: F.IoBitmapA,
    outcome: CONTROLS,
  },
  {
    what: "MSR bitmap beyond MAXPHYADDR",
    breakIt: (v) => {
      or(v, F.ProcBasedControls, Proc.UseMsrBitmaps);
      v.write(F.MsrBitmaps, 0x30000, 0x10);
    },
    section: "27.2.1.1",
    field: F.MsrBitmaps,
    outcome: CONTROLS,
  },
  {
    what: "virtual NMIs without NMI exiting",
    breakIt: (v) => or(v, F.PinBasedControls, Pin.VirtualNmis),
    section: "27.2.1.1",
    field: F.PinBasedControls,
    outcome: CONTROLS,
  },
  {
    what: "NMI-window exiting without virtual NMIs",
    breakIt: (v) => or(v, F.ProcBasedControls, Proc.NmiWindowExiting),
    section: "27.2.1.1",
    field: F.ProcBasedControls,
    outcome: CONTROLS,
  },
  {
    what: "enable VPID with VPID 0",
    breakIt: (v) => secondary(v, Proc2.EnableVpid),
    section: "27.2.1.1",
    field: F.Vpid,
    outcome: CONTROLS,
  },
  {
    what: "enable EPT with a 5-level EPTP",
    breakIt: (v) => {
      secondary(v, Proc2.EnableEpt);
      v.write(F.EptPointer, 0x20000 | 0x26);
    },
    section: "27.2.1.1",
    field: F.EptPointer,
    outcome: CONTROLS,
  },
  {
    what: "unrestricted guest without EPT",
    breakIt: (v) => secondary(v, Proc2.UnrestrictedGuest),
    section: "27.2.1.1",
    field: F.ProcBasedControls2,
    outcome: CONTROLS,
  },
  // ---- 27.2.1.2 VM-exit controls ----
  {
    what: "save VMX-preemption timer value without the timer",
    breakIt: (v) => or(v, F.ExitControls, ExitCtl.SavePreemptionTimer),
    section: "27.2.1.2",
    field: F.ExitControls,
    outcome: CONTROLS,
  },
  {
    what: "load IA32_PERF_GLOBAL_CTRL on exit (not offered)",
    breakIt: (v) => or(v, F.ExitControls, ExitCtl.LoadPerfGlobalCtrl),
    section: "27.2.1.2",
    field: F.ExitControls,
    outcome: CONTROLS,
  },
  {
    what: "VM-exit MSR-store list of 513 entries",
    breakIt: (v) => {
      v.write(F.ExitMsrStoreAddress, 0x30000);
      v.write(F.ExitMsrStoreCount, 513);
    },
    section: "27.2.1.2",
    field: F.ExitMsrStoreAddress,
    outcome: CONTROLS,
  },
  {
    what: "VM-exit MSR-load list not 16-byte aligned",
    breakIt: (v) => {
      v.write(F.ExitMsrLoadAddress, 0x30008);
      v.write(F.ExitMsrLoadCount, 1);
    },
    section: "27.2.1.2",
    field: F.ExitMsrLoadAddress,
    outcome: CONTROLS,
  },
  // ---- 27.2.1.3 VM-entry controls ----
  {
    what: "entry to SMM",
    breakIt: (v) => or(v, F.EntryControls, EntryCtl.EntryToSmm),
    section: "27.2.1.3",
    field: F.EntryControls,
    outcome: CONTROLS,
  },
  {
    what: "injection of interruption type 1",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x80000120),
    section: "27.2.1.3",
    field: F.EntryInterruptionInfo,
    outcome: CONTROLS,
  },
  {
    what: "an injected NMI with vector 3",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x80000203),
    section: "27.2.1.3",
    field: F.EntryInterruptionInfo,
    outcome: CONTROLS,
  },
  {
    what: "an injected hardware exception with vector 32",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x80000320),
    section: "27.2.1.3",
    field: F.EntryInterruptionInfo,
    outcome: CONTROLS,
  },
  {
    what: "an injected #GP without its error code",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x8000030d),
    section: "27.2.1.3",
    field: F.EntryInterruptionInfo,
    outcome: CONTROLS,
  },
  {
    what: "an injected #UD with an error code",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x80000b06),
    section: "27.2.1.3",
    field: F.EntryInterruptionInfo,
    outcome: CONTROLS,
  },
  {
    what: "interruption-information bits 30:12 set",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x80001020),
    section: "27.2.1.3",
    field: F.EntryInterruptionInfo,
    outcome: CONTROLS,
  },
  {
    what: "an injected #GP with error code bits 31:16 set",
    breakIt: (v) => {
      v.write(F.EntryInterruptionInfo, 0x80000b0d);
      v.write(F.EntryExceptionErrorCode, 0x10000);
    },
    section: "27.2.1.3",
    field: F.EntryExceptionErrorCode,
    outcome: CONTROLS,
  },
  {
    what: "an injected software interrupt with instruction length 0",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x80000480),
    section: "27.2.1.3",
    field: F.EntryInstructionLength,
    outcome: CONTROLS,
  },
  {
    what: "the VM-entry MSR-load list beyond MAXPHYADDR",
    breakIt: (v) => {
      v.write(F.EntryMsrLoadAddress, 0x30000, 0x20);
      v.write(F.EntryMsrLoadCount, 1);
    },
    section: "27.2.1.3",
    field: F.EntryMsrLoadAddress,
    outcome: CONTROLS,
  },
  // ---- 27.2.2 - 27.2.4 host state ----
  {
    what: "host CR0 without PG",
    breakIt: (v) => and(v, F.HostCr0, 0x7fffffff),
    section: "27.2.2",
    field: F.HostCr0,
    outcome: HOST,
  },
  {
    what: "host CR4 without VMXE",
    breakIt: (v) => and(v, F.HostCr4, ~CR4_VMXE),
    section: "27.2.2",
    field: F.HostCr4,
    outcome: HOST,
  },
  {
    what: "host CR3 beyond MAXPHYADDR",
    breakIt: (v) => v.write(F.HostCr3, v.read(F.HostCr3), 0x100),
    section: "27.2.2",
    field: F.HostCr3,
    outcome: HOST,
  },
  {
    what: "host IA32_SYSENTER_ESP not canonical",
    breakIt: (v) => v.write(F.HostIa32SysenterEsp, 0, 0x8000),
    section: "27.2.2",
    field: F.HostIa32SysenterEsp,
    outcome: HOST,
  },
  {
    what: "host PAT with memory type 2",
    breakIt: (v) => {
      or(v, F.ExitControls, ExitCtl.LoadPat);
      v.write(F.HostIa32Pat, 0x00070402, 0x00070406);
    },
    section: "27.2.2",
    field: F.HostIa32Pat,
    outcome: HOST,
  },
  {
    what: "host EFER.LMA without host address-space size",
    breakIt: (v) => {
      or(v, F.ExitControls, ExitCtl.LoadEfer);
      v.write(F.HostIa32Efer, 0x500);
    },
    section: "27.2.2",
    field: F.HostIa32Efer,
    outcome: HOST,
  },
  {
    what: "host CS selector with RPL 3",
    breakIt: (v) => v.write(F.HostCsSelector, 0x0b),
    section: "27.2.3",
    field: F.HostCsSelector,
    outcome: HOST,
  },
  {
    what: "host TR selector 0",
    breakIt: (v) => v.write(F.HostTrSelector, 0),
    section: "27.2.3",
    field: F.HostTrSelector,
    outcome: HOST,
  },
  {
    what: "host SS selector 0 for a 32-bit host",
    breakIt: (v) => v.write(F.HostSsSelector, 0),
    section: "27.2.3",
    field: F.HostSsSelector,
    outcome: HOST,
  },
  {
    what: "host GS base not canonical",
    breakIt: (v) => v.write(F.HostGsBase, 0, 0x12345),
    section: "27.2.3",
    field: F.HostGsBase,
    outcome: HOST,
  },
  {
    what: "host address-space size outside IA-32e mode",
    breakIt: (v) => or(v, F.ExitControls, ExitCtl.HostAddressSpaceSize),
    section: "27.2.4",
    field: F.EntryControls,
    outcome: HOST,
  },
  {
    what: "IA-32e mode guest outside IA-32e mode",
    breakIt: (v) => or(v, F.EntryControls, EntryCtl.Ia32eModeGuest),
    section: "27.2.4",
    field: F.EntryControls,
    outcome: HOST,
  },
  // ---- 27.3.1.1 guest control registers and MSRs ----
  {
    what: "guest CR0 without NE",
    breakIt: (v) => and(v, F.GuestCr0, ~CR0_NE),
    section: "27.3.1.1",
    field: F.GuestCr0,
    outcome: GUEST,
  },
  {
    what: "guest CR4 without VMXE",
    breakIt: (v) => and(v, F.GuestCr4, ~CR4_VMXE),
    section: "27.3.1.1",
    field: F.GuestCr4,
    outcome: GUEST,
  },
  {
    what: "guest CR3 beyond MAXPHYADDR",
    breakIt: (v) => v.write(F.GuestCr3, v.read(F.GuestCr3), 0x80000000),
    section: "27.3.1.1",
    field: F.GuestCr3,
    outcome: GUEST,
  },
  {
    what: "guest DR7 bits 63:32 with load debug controls",
    breakIt: (v) => v.write(F.GuestDr7, 0x400, 1),
    section: "27.3.1.1",
    field: F.GuestDr7,
    outcome: GUEST,
  },
  {
    what: "guest EFER.LMA without IA-32e mode guest",
    breakIt: (v) => {
      or(v, F.EntryControls, EntryCtl.LoadEfer);
      v.write(F.GuestIa32Efer, 0x400);
    },
    section: "27.3.1.1",
    field: F.GuestIa32Efer,
    outcome: GUEST,
  },
  // ---- 27.3.1.2 guest segment registers ----
  {
    what: "guest TR selector in the LDT",
    breakIt: (v) => v.write(F.GuestTrSelector, 0x1c),
    section: "27.3.1.2",
    field: F.GuestTrSelector,
    outcome: GUEST,
  },
  {
    what: "guest SS RPL different from CS RPL",
    breakIt: (v) => v.write(F.GuestSsSelector, 0x13),
    section: "27.3.1.2",
    field: F.GuestSsSelector,
    outcome: GUEST,
  },
  {
    what: "guest CS type 3 without unrestricted guest",
    breakIt: (v) => v.write(F.GuestCsAccessRights, 0xc093),
    section: "27.3.1.2",
    field: F.GuestCsAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest CS a system segment (S = 0)",
    breakIt: (v) => and(v, F.GuestCsAccessRights, ~AR_S),
    section: "27.3.1.2",
    field: F.GuestCsAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest DS not accessed",
    breakIt: (v) => and(v, F.GuestDsAccessRights, ~1),
    section: "27.3.1.2",
    field: F.GuestDsAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest ES DPL below its RPL",
    breakIt: (v) => v.write(F.GuestEsSelector, 0x13),
    section: "27.3.1.2",
    field: F.GuestEsAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest SS a code segment",
    breakIt: (v) => v.write(F.GuestSsAccessRights, 0xc09b),
    section: "27.3.1.2",
    field: F.GuestSsAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest FS limit with G set but bits 11:0 not all 1",
    breakIt: (v) => v.write(F.GuestFsLimit, 0x1000),
    section: "27.3.1.2",
    field: F.GuestFsAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest GS reserved access-rights bits 11:8",
    breakIt: (v) => or(v, F.GuestGsAccessRights, 0x100),
    section: "27.3.1.2",
    field: F.GuestGsAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest TR an available TSS",
    breakIt: (v) => v.write(F.GuestTrAccessRights, 0x89),
    section: "27.3.1.2",
    field: F.GuestTrAccessRights,
    outcome: GUEST,
  },
  {
    what: "guest LDTR usable with a data type",
    breakIt: (v) => v.write(F.GuestLdtrAccessRights, 0x83),
    section: "27.3.1.2",
    field: F.GuestLdtrAccessRights,
    outcome: GUEST,
  },
  {
    what: "virtual-8086 guest with a base that is not selector * 16",
    breakIt: (v) => {
      v.write(F.GuestRflags, 0x20002);
      for (const [sel, base, limit, ar] of [
        [F.GuestEsSelector, F.GuestEsBase, F.GuestEsLimit, F.GuestEsAccessRights],
        [F.GuestCsSelector, F.GuestCsBase, F.GuestCsLimit, F.GuestCsAccessRights],
        [F.GuestSsSelector, F.GuestSsBase, F.GuestSsLimit, F.GuestSsAccessRights],
        [F.GuestDsSelector, F.GuestDsBase, F.GuestDsLimit, F.GuestDsAccessRights],
        [F.GuestFsSelector, F.GuestFsBase, F.GuestFsLimit, F.GuestFsAccessRights],
        [F.GuestGsSelector, F.GuestGsBase, F.GuestGsLimit, F.GuestGsAccessRights],
      ]) {
        v.write(sel, 0x100);
        v.write(base, 0x1000);
        v.write(limit, 0xffff);
        v.write(ar, 0xf3);
      }
      v.write(F.GuestDsBase, 0x2000);
    },
    section: "27.3.1.2",
    field: F.GuestDsBase,
    outcome: GUEST,
  },
  // ---- 27.3.1.3 - 27.3.1.4 ----
  {
    what: "guest GDTR limit above FFFFH",
    breakIt: (v) => v.write(F.GuestGdtrLimit, 0x10000),
    section: "27.3.1.3",
    field: F.GuestGdtrLimit,
    outcome: GUEST,
  },
  {
    what: "guest RIP bits 63:32 for a 32-bit guest",
    breakIt: (v) => v.write(F.GuestRip, GUEST_RIP, 1),
    section: "27.3.1.4",
    field: F.GuestRip,
    outcome: GUEST,
  },
  {
    what: "guest RFLAGS bit 1 clear",
    breakIt: (v) => v.write(F.GuestRflags, 0),
    section: "27.3.1.4",
    field: F.GuestRflags,
    outcome: GUEST,
  },
  {
    what: "an injected external interrupt with RFLAGS.IF = 0",
    breakIt: (v) => v.write(F.EntryInterruptionInfo, 0x80000020),
    section: "27.3.1.4",
    field: F.GuestRflags,
    outcome: GUEST,
  },
  // ---- 27.3.1.5 non-register state ----
  {
    what: "guest activity state 4",
    breakIt: (v) => v.write(F.GuestActivityState, 4),
    section: "27.3.1.5",
    field: F.GuestActivityState,
    outcome: GUEST,
  },
  {
    what: "guest activity wait-for-SIPI with an injected event",
    breakIt: (v) => {
      v.write(F.GuestActivityState, 3);
      v.write(F.EntryInterruptionInfo, 0x80000202);
    },
    section: "27.3.1.5",
    field: F.GuestActivityState,
    outcome: GUEST,
  },
  {
    what: "blocking by STI and MOV SS together",
    breakIt: (v) => {
      v.write(F.GuestRflags, 0x202);
      v.write(F.GuestInterruptibilityState, 3);
    },
    section: "27.3.1.5",
    field: F.GuestInterruptibilityState,
    outcome: GUEST,
  },
  {
    what: "blocking by STI with RFLAGS.IF = 0",
    breakIt: (v) => v.write(F.GuestInterruptibilityState, 1),
    section: "27.3.1.5",
    field: F.GuestInterruptibilityState,
    outcome: GUEST,
  },
  {
    what: "guest pending debug exceptions bit 13",
    breakIt: (v) => v.write(F.GuestPendingDebugExceptions, 1 << 13),
    section: "27.3.1.5",
    field: F.GuestPendingDebugExceptions,
    outcome: GUEST,
  },
  {
    what: "a VMCS link pointer to a region without the revision identifier",
    breakIt: (v) => v.write(F.VmcsLinkPointer, 0x30000, 0),
    section: "27.3.1.5",
    field: F.VmcsLinkPointer,
    outcome: { reason: 33, qualification: 4 },
  },
  // ---- 27.3.1.6 PDPTEs ----
  {
    what: "a PAE guest under EPT with a reserved bit in PDPTE2",
    breakIt: (v) => {
      secondary(v, Proc2.EnableEpt);
      v.write(F.EptPointer, EPTP);
      or(v, F.GuestCr4, CR4_PAE);
      v.write(F.GuestPdpte2, 0x5000 | 1 | 4);
    },
    section: "27.3.1.6",
    field: F.GuestPdpte2,
    outcome: { reason: 33, qualification: 2 },
  },
  {
    what: "a PAE guest without EPT whose CR3 holds a PDPTE with a reserved bit",
    breakIt: (v, cpu) => {
      or(v, F.GuestCr4, CR4_PAE);
      v.write(F.GuestCr3, 0x31000);
      cpu.mem.write(0x31008, 4, 0x5000 | 1 | 0x20);
    },
    section: "27.3.1.6",
    field: F.GuestCr3,
    outcome: { reason: 33, qualification: 2 },
  },
  // ---- 27.4 the VM-entry MSR-load list ----
  {
    what: "an x2APIC MSR in the second entry of the VM-entry MSR-load list",
    breakIt: (v, cpu) => {
      v.write(F.EntryMsrLoadAddress, 0x32000);
      v.write(F.EntryMsrLoadCount, 2);
      cpu.mem.write(0x32000, 4, 0x174); // IA32_SYSENTER_CS: fine
      cpu.mem.write(0x32010, 4, 0x808);
    },
    section: "27.4",
    field: F.EntryMsrLoadAddress,
    outcome: { reason: 34, qualification: 2 },
  },
];

describe("VM-entry checks", () => {
  it("let a valid VMCS enter: every row of the three tables holds", () => {
    const { cpu, v } = setup();
    const x = entryContext(cpu, v);
    for (const r of [...CONTROL_CHECKS, ...HOST_CHECKS, ...GUEST_CHECKS]) {
      assert.ok(r.ok(x), `${r.section} ${r.description}`);
    }
    assert.equal(exec(cpu, VMLAUNCH), undefined);
    assert.ok(cpu.vmx.nonRoot);
    assert.equal(cpu.nextEip, GUEST_RIP);
  });

  it("name their SDM sections with the current numbering and the fields they read", () => {
    for (const r of [...CONTROL_CHECKS, ...HOST_CHECKS, ...GUEST_CHECKS]) {
      assert.match(r.section, /^27\.[23]\.[1-4](\.[1-6])?$/);
      assert.ok(r.fields.length > 0 && r.description.length > 10);
    }
  });

  for (const c of CASES) {
    it(`reject ${c.what}: ${c.section}, ${fieldName(c.field)}`, () => {
      const { cpu, v, lines } = setup();
      c.breakIt(v, cpu);
      cpu.flags.load(cpu.flags.get() | ARITH);
      const result = exec(cpu, VMLAUNCH);
      assert.equal(cpu.vmx.nonRoot, false);
      const failed = lines.find((l) => l.includes("VM-entry check failed"));
      assert.ok(failed, `no failed check traced: ${lines.join(" | ")}`);
      assert.ok(failed.includes(`VM-entry check failed: ${c.section} `), failed);
      assert.ok(failed.includes(`${fieldName(c.field)} = `), failed);
      if ("error" in c.outcome) {
        assert.equal(result, undefined);
        assert.equal(cpu.flags.get() & ARITH, ZF, "VMfailValid");
        assert.equal(v.read(F.VmInstructionError), c.outcome.error);
      } else {
        assert.equal(result, "exit");
        assert.equal(v.read(F.ExitReason), (0x80000000 | c.outcome.reason) >>> 0);
        assert.equal(v.read(F.ExitQualification), c.outcome.qualification);
        assert.equal(cpu.eip, HOST_RIP, "host state loaded");
        assert.equal(cpu.flags.get() & (CF | ZF), 0, "RFLAGS = 2 from the host state");
        assert.equal(v.launched, false);
      }
    });
  }

  it("keep the SS DPL rule: activity HLT needs SS DPL 0", () => {
    const { cpu, v, lines } = setup();
    // A CPL-3 guest (CS, SS, DS ... all DPL 3 with RPL 3) in HLT.
    for (const [sel, ar] of [
      [F.GuestCsSelector, F.GuestCsAccessRights],
      [F.GuestSsSelector, F.GuestSsAccessRights],
      [F.GuestDsSelector, F.GuestDsAccessRights],
      [F.GuestEsSelector, F.GuestEsAccessRights],
      [F.GuestFsSelector, F.GuestFsAccessRights],
      [F.GuestGsSelector, F.GuestGsAccessRights],
    ]) {
      v.write(sel, v.read(sel) | 3);
      v.write(ar, v.read(ar) | (3 << AR_DPL_SHIFT));
    }
    v.write(F.GuestActivityState, 1);
    assert.equal(exec(cpu, VMLAUNCH), "exit");
    const failed = lines.find((l) => l.includes("VM-entry check failed")) ?? "";
    assert.ok(failed.includes("27.3.1.5 the guest activity state must not be HLT"), failed);
  });

  it("never throw out of the host on random field values (400 VMCSs, 1-4 fields each)", (t) => {
    let seed = 0x5eed;
    const rand = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    const writable = FIELD_MAP.fields.filter((d) => d.type !== FieldType.ExitInfo);
    const outcomes = new Map<string, number>();
    for (let n = 0; n < 400; n++) {
      const { cpu, v } = setup();
      cpu.vmx.trace = null;
      for (let k = 1 + (rand() % 4); k > 0; k--) {
        const d = writable[rand() % writable.length];
        // Mostly small perturbations of the valid value, sometimes anything.
        const lo = rand() % 3 === 0 ? rand() : v.read(d.enc) ^ (1 << (rand() % 32));
        v.write(d.enc, lo, rand() % 4 === 0 ? rand() : v.readHi(d.enc));
      }
      const r = exec(cpu, VMLAUNCH);
      let what = r === undefined ? (cpu.vmx.nonRoot ? "entered" : "VMfail") : String(r);
      if (cpu.vmx.nonRoot) what += `, then ${cpu.run(200).kind}`;
      outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
    }
    t.diagnostic([...outcomes].map(([k, n]) => `${k}: ${n}`).join("; "));
    assert.ok((outcomes.get("VMfail") ?? 0) > 0 && (outcomes.get("exit") ?? 0) > 0);
    assert.ok(
      [...outcomes.keys()].some((k) => k.startsWith("entered")),
      [...outcomes].join(),
    );
  });
});
