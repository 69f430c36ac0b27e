/**
 * A soft CPU put straight into VMX non-root operation for tests of non-root behaviour
 * (vmx-nonroot.test.ts, vmx-events.test.ts): a current VMCS with a minimal flat 32-bit
 * host state whose RIP points at a HLT, the controls a test asks for, and the CPU's
 * own state as the guest (flat 32-bit protected mode, CPL 0, code at CODE). VM-entry
 * checks and guest-state loading are VM entry's business (entry.ts) and are skipped:
 * what is tested is what happens after it, through the same afterVmEntry hook.
 */
import { ActivityState } from "../../src/engine/engine.js";
import { CR0_NE, CR4_VMXE } from "../../src/cpu/arch.js";
import type { Cpu } from "../../src/cpu/cpu.js";
import { Proc } from "../../src/cpu/vmx/controls.js";
import { afterVmEntry } from "../../src/cpu/vmx/events.js";
import { VmExitSignal } from "../../src/cpu/vmx/exit.js";
import { F } from "../../src/cpu/vmx/fields.js";
import { enterGuestTlb } from "../../src/cpu/vmx/tlb.js";
import { Vmcs } from "../../src/cpu/vmx/vmcs.js";
import type { PhysicalMemory } from "../../src/machine/memory.js";
import { CODE, makeCpu } from "./cpu.js";

export { CODE };
/** The host's RIP after a VM exit: a HLT, so run() returns once the exit is taken. */
export const HOST_RIP = 0x3000;
export const VMCS_ADDR = 0x5000;
/** Scratch pages for tests: I/O bitmaps A and B, the MSR bitmap, data. */
export const IO_BITMAP_A = 0x6000;
export const IO_BITMAP_B = 0x7000;
export const MSR_BITMAP = 0x8000;
export const DATA = 0x9000;

export interface Controls {
  pin?: number;
  proc?: number;
  /** Secondary controls; "activate secondary controls" is set when given. */
  proc2?: number;
  exit?: number;
  exceptionBitmap?: number;
  /** Extra VMCS fields to write before "entry": [encoding, low, high]. */
  fields?: [F, number, number?][];
  /** Set up the guest before the entry (descriptor tables, registers). */
  before?: (cpu: Cpu, mem: PhysicalMemory) => void;
}

export interface Guest {
  cpu: Cpu;
  mem: PhysicalMemory;
  v: Vmcs;
  /** Runs until the host's HLT (or `budget` instructions); returns the exit reason field. */
  runToExit(budget?: number): number;
}

/** A CPU that has just entered non-root operation to run `code` at CODE with `ctl`. */
export function guest(code: number[], ctl: Controls = {}): Guest {
  const { cpu, mem } = makeCpu();
  mem.ram.set(code, CODE);
  mem.ram[HOST_RIP] = 0xf4; // HLT
  cpu.cr0 |= CR0_NE; // fixed to 1 in VMX operation
  cpu.cr4 |= CR4_VMXE;
  const v = new Vmcs(VMCS_ADDR);
  cpu.vmx.on = true;
  cpu.vmx.active.set(VMCS_ADDR, v);
  cpu.vmx.current = v;
  cpu.vmx.currentPointer = VMCS_ADDR;
  v.write(F.HostCr0, cpu.cr0);
  v.write(F.HostCr4, cpu.cr4);
  v.write(F.HostCsSelector, 0x08);
  for (const f of [F.HostSsSelector, F.HostDsSelector, F.HostEsSelector]) v.write(f, 0x10);
  v.write(F.HostTrSelector, 0x18);
  v.write(F.HostRip, HOST_RIP);
  v.write(F.HostRsp, 0x7ff0);
  v.write(F.PinBasedControls, ctl.pin ?? 0);
  v.write(F.ProcBasedControls, (ctl.proc ?? 0) | (ctl.proc2 ? Proc.ActivateSecondaryControls : 0));
  v.write(F.ProcBasedControls2, ctl.proc2 ?? 0);
  v.write(F.ExitControls, ctl.exit ?? 0);
  v.write(F.ExceptionBitmap, ctl.exceptionBitmap ?? 0);
  v.write64(F.IoBitmapA, IO_BITMAP_A);
  v.write64(F.IoBitmapB, IO_BITMAP_B);
  v.write64(F.MsrBitmaps, MSR_BITMAP);
  v.write(F.VmcsLinkPointer, -1, -1);
  for (const [f, lo, hi] of ctl.fields ?? []) v.write(f, lo, hi ?? 0);
  ctl.before?.(cpu, mem);
  enter(cpu, v);
  return {
    cpu,
    mem,
    v,
    runToExit(budget = 1000): number {
      cpu.run(budget);
      return v.read(F.ExitReason);
    },
  };
}

/** What VM entry does once the guest state is in place: non-root, TLB, events. */
export function enter(cpu: Cpu, v: Vmcs): void {
  cpu.vmx.nonRoot = true;
  cpu.activity = v.read(F.GuestActivityState) as ActivityState;
  enterGuestTlb(cpu, v);
  try {
    afterVmEntry(cpu);
  } catch (e) {
    // The injected event's delivery exited: the CPU is back in the host.
    if (!(e instanceof VmExitSignal)) throw e;
  }
}

/** Whether the CPU is back in the host at its HLT. */
export function inHost(cpu: Cpu): boolean {
  return !cpu.vmx.nonRoot && cpu.eip === HOST_RIP + 1;
}

/** Where descriptor tables and handlers go for event tests. */
export const GDT = 0x2800;
export const IDT = 0x2000;
/** Each vector's handler: HANDLERS + vector * 16, a HLT (then IRET, so tests may resume). */
export const HANDLERS = 0xa000;

/**
 * A flat GDT (null, 32-bit code 08, data 10, busy TSS 18, available TSS 20) and a 256-entry IDT of 32-bit
 * interrupt gates to HANDLERS + vector * 16, each handler "HLT; IRET".
 */
export function descriptorTables(cpu: Cpu, mem: PhysicalMemory): void {
  const view = new DataView(mem.ram.buffer, mem.ram.byteOffset);
  const gdt = [
    [0, 0],
    [0x0000ffff, 0x00cf9b00],
    [0x0000ffff, 0x00cf9300],
    [0x00000067, 0x00008b00],
    [0x00000067, 0x00008900], // 20: an available 32-bit TSS at 0
  ];
  gdt.forEach(([lo, hi], k) => {
    view.setUint32(GDT + 8 * k, lo, true);
    view.setUint32(GDT + 8 * k + 4, hi, true);
  });
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = gdt.length * 8 - 1;
  for (let v = 0; v < 256; v++) {
    const handler = HANDLERS + v * 16;
    view.setUint32(IDT + 8 * v, (0x08 << 16) | (handler & 0xffff), true);
    view.setUint32(IDT + 8 * v + 4, (handler & 0xffff0000) | 0x8e00, true);
    mem.ram[handler] = 0xf4; // HLT
    mem.ram[handler + 1] = 0xcf; // IRET
  }
  cpu.idtrBase = IDT;
  cpu.idtrLimit = 256 * 8 - 1;
}

/** The dword at `addr`. */
export function dword(mem: PhysicalMemory, addr: number): number {
  return new DataView(mem.ram.buffer, mem.ram.byteOffset).getUint32(addr, true);
}
