/**
 * A soft CPU ready for VMX (tests of the VMX core: instructions, VM entry, VM exit):
 * flat 32-bit protected mode with paging on (one 4-MiB identity page), CR0.NE and
 * CR4.VMXE set, a VMXON region and a VMCS region carrying the revision identifier, and a
 * VMCS whose host and guest state are a valid flat 32-bit machine, so tests break one
 * field at a time. Instructions run through the CPU's own decoder and handlers.
 */
import {
  AR_DB,
  AR_G,
  AR_P,
  AR_S,
  AR_TYPE_ACCESSED,
  AR_TYPE_CODE,
  AR_TYPE_RW,
  AR_UNUSABLE,
  CR0_NE,
  CR0_PG,
  CR4_PSE,
  CR4_VMXE,
  SYS_TSS32_BUSY,
} from "../../src/cpu/arch.js";
import type { Cpu } from "../../src/cpu/cpu.js";
import { Fault } from "../../src/cpu/fault.js";
import { VMCS_REVISION_ID } from "../../src/cpu/vmx/capabilities.js";
import { EntryCtl, ExitCtl } from "../../src/cpu/vmx/controls.js";
import { VmExitSignal } from "../../src/cpu/vmx/exit.js";
import { F } from "../../src/cpu/vmx/fields.js";
import type { Vmcs } from "../../src/cpu/vmx/vmcs.js";
import type { PhysicalMemory } from "../../src/machine/memory.js";
import { CODE, decodeAt, makeCpu } from "./cpu.js";

export { CODE };
/** The page directory (one 4-MiB page, identity). */
export const PAGE_DIR = 0x2000;
/** The host's RIP after a VM exit: a HLT. */
export const HOST_RIP = 0x3000;
/** Guest code. */
export const GUEST_RIP = 0x4000;
/** Memory operands of the VMX instructions (8 or 16 bytes each). */
export const OPERAND = 0x9000;
export const VMXON_REGION = 0x10000;
export const VMCS_REGION = 0x11000;
export const VMCS_REGION2 = 0x12000;

/** A CPU that may execute VMXON: paging, CR0.NE, CR4.VMXE; regions initialized. */
export function vmxCpu(): { cpu: Cpu; mem: PhysicalMemory } {
  const { cpu, mem } = makeCpu();
  mem.write(PAGE_DIR, 4, 0x87); // present, writable, user, 4 MiB
  cpu.cr3 = PAGE_DIR;
  cpu.cr4 |= CR4_PSE | CR4_VMXE;
  cpu.cr0 |= CR0_NE | CR0_PG;
  cpu.modeChanged();
  cpu.flushTlb(true);
  for (const r of [VMXON_REGION, VMCS_REGION, VMCS_REGION2]) mem.write(r, 4, VMCS_REVISION_ID);
  mem.ram[HOST_RIP] = 0xf4;
  return { cpu, mem };
}

/**
 * Executes one instruction at CODE through the decoder and its handler; returns the
 * fault it raised, "exit" when it left through VmExitSignal (an entry failure), or
 * undefined.
 */
export function exec(cpu: Cpu, bytes: number[]): Fault | "exit" | undefined {
  const i = decodeAt(cpu, bytes);
  try {
    i.exec(cpu, i);
  } catch (e) {
    if (e instanceof Fault) return e;
    if (e instanceof VmExitSignal) return "exit";
    throw e;
  }
  return undefined;
}

/** disp32 operand bytes of `addr`. */
const d32 = (addr: number): number[] => [
  addr & 0xff,
  (addr >> 8) & 0xff,
  (addr >> 16) & 0xff,
  addr >>> 24,
];

// ---- the instructions, 32-bit encodings with a [disp32] memory operand ----
export const VMXON = [0xf3, 0x0f, 0xc7, 0x35, ...d32(OPERAND)];
export const VMCLEAR = [0x66, 0x0f, 0xc7, 0x35, ...d32(OPERAND)];
export const VMPTRLD = [0x0f, 0xc7, 0x35, ...d32(OPERAND)];
export const VMPTRST = [0x0f, 0xc7, 0x3d, ...d32(OPERAND)];
/** VMREAD eax, ecx: the field named by ECX into EAX. */
export const VMREAD_EAX_ECX = [0x0f, 0x78, 0xc8];
/** VMWRITE ecx, eax: EAX into the field named by ECX. */
export const VMWRITE_ECX_EAX = [0x0f, 0x79, 0xc8];
export const VMLAUNCH = [0x0f, 0x01, 0xc2];
export const VMRESUME = [0x0f, 0x01, 0xc3];
export const VMXOFF = [0x0f, 0x01, 0xc4];
export const VMCALL = [0x0f, 0x01, 0xc1];
/** INVEPT eax, [OPERAND] and INVVPID eax, [OPERAND]. */
export const INVEPT = [0x66, 0x0f, 0x38, 0x80, 0x05, ...d32(OPERAND)];
export const INVVPID = [0x66, 0x0f, 0x38, 0x81, 0x05, ...d32(OPERAND)];

/** Puts a 64-bit value at OPERAND. */
export function operand(mem: PhysicalMemory, lo: number, hi = 0): void {
  mem.write(OPERAND, 4, lo >>> 0);
  mem.write(OPERAND + 4, 4, hi >>> 0);
}

/** VMXON with VMXON_REGION, then VMCLEAR and VMPTRLD of `vmcs`; returns the VMCS. */
export function vmxOnWithVmcs(cpu: Cpu, vmcs = VMCS_REGION): Vmcs {
  operand(cpu.mem, VMXON_REGION);
  for (const [bytes, addr] of [
    [VMXON, VMXON_REGION],
    [VMCLEAR, vmcs],
    [VMPTRLD, vmcs],
  ] as const) {
    operand(cpu.mem, addr);
    const f = exec(cpu, [...bytes]);
    if (f !== undefined || cpu.flags.get() & 0x41) throw new Error(`setup failed at ${bytes[0]}`);
  }
  return cpu.vmx.vmcs;
}

const FLAT = AR_P | AR_S | AR_DB | AR_G | AR_TYPE_ACCESSED | AR_TYPE_RW;

/**
 * Fills the current VMCS with a valid flat 32-bit host (HLT at HOST_RIP) and guest (code
 * at GUEST_RIP), no controls beyond the required ones, the CPU's CR0/CR3/CR4.
 */
export function validVmcs(cpu: Cpu, v: Vmcs): void {
  const w = (f: F, lo: number, hi = 0): void => v.write(f, lo, hi);
  // Controls: the default1 bits (IA32_VMX_*_CTLS allowed-0).
  w(F.PinBasedControls, 0x16);
  w(F.ProcBasedControls, 0x0401e172);
  w(F.ExitControls, 0x00036dff & ~ExitCtl.HostAddressSpaceSize);
  w(F.EntryControls, 0x000011ff & ~EntryCtl.Ia32eModeGuest);
  w(F.VmcsLinkPointer, -1, -1);
  // Host: flat 32-bit.
  w(F.HostCr0, cpu.cr0);
  w(F.HostCr3, cpu.cr3);
  w(F.HostCr4, cpu.cr4);
  w(F.HostCsSelector, 0x08);
  for (const f of [F.HostSsSelector, F.HostDsSelector, F.HostEsSelector]) w(f, 0x10);
  w(F.HostTrSelector, 0x18);
  w(F.HostRip, HOST_RIP);
  w(F.HostRsp, 0x7ff0);
  // Guest: flat 32-bit, the same paging.
  w(F.GuestCr0, cpu.cr0);
  w(F.GuestCr3, cpu.cr3);
  w(F.GuestCr4, cpu.cr4);
  w(F.GuestDr7, 0x400);
  w(F.GuestCsSelector, 0x08);
  w(F.GuestCsLimit, 0xffffffff);
  w(F.GuestCsAccessRights, FLAT | AR_TYPE_CODE);
  for (const [sel, limit, ar] of [
    [F.GuestSsSelector, F.GuestSsLimit, F.GuestSsAccessRights],
    [F.GuestDsSelector, F.GuestDsLimit, F.GuestDsAccessRights],
    [F.GuestEsSelector, F.GuestEsLimit, F.GuestEsAccessRights],
    [F.GuestFsSelector, F.GuestFsLimit, F.GuestFsAccessRights],
    [F.GuestGsSelector, F.GuestGsLimit, F.GuestGsAccessRights],
  ]) {
    w(sel, 0x10);
    w(limit, 0xffffffff);
    w(ar, FLAT);
  }
  w(F.GuestTrSelector, 0x18);
  w(F.GuestTrLimit, 0x67);
  w(F.GuestTrAccessRights, AR_P | SYS_TSS32_BUSY);
  w(F.GuestLdtrAccessRights, AR_UNUSABLE);
  w(F.GuestGdtrLimit, 0x1f);
  w(F.GuestIdtrLimit, 0x7ff);
  w(F.GuestRip, GUEST_RIP);
  w(F.GuestRsp, 0x6ff0);
  w(F.GuestRflags, 0x2);
}
