/**
 * The VM-entry MSR-load list, the VM-exit MSR-store list and the VM-exit MSR-load list
 * (SDM Vol. 3C, 25.7.2, 25.8.2, 26.4, 28.4 and 28.6). Each list is an array of 16-byte
 * entries in physical memory: bits 31:0 the MSR index, 63:32 reserved (0), 127:64 data.
 */
import type { Cpu } from "../cpu.js";
import { Fault } from "../fault.js";
import { IA32_FS_BASE, IA32_GS_BASE } from "../msr.js";
import { F } from "./fields.js";
import type { Vmcs } from "./vmcs.js";

/** Size of one list entry in bytes. */
export const MSR_ENTRY_SIZE = 16;
/** IA32_SMM_MONITOR_CTL: writable only in SMM (SDM 26.4). */
const IA32_SMM_MONITOR_CTL = 0x9b;
/** IA32_SMBASE: readable only in SMM (SDM 28.4). */
const IA32_SMBASE = 0x9e;

/** x2APIC MSRs (bits 31:8 = 000008H) may not appear in any list (26.4, 28.4, 28.6). */
const isX2apic = (index: number): boolean => index >>> 8 === 0x8;

/**
 * Loads the MSRs of a list (26.4 on VM entry, 28.6 on VM exit: the same rules) through
 * WRMSR's checks.
 * Returns 0 when every entry loaded, else the 1-based number of the entry that failed
 * (the exit qualification of a VM-entry failure, 26.8).
 */
export function loadMsrList(c: Cpu, address: number, count: number): number {
  for (let k = 0; k < count; k++) {
    const a = address + MSR_ENTRY_SIZE * k;
    const index = c.mem.read(a, 4) >>> 0;
    const reserved = c.mem.read(a + 4, 4);
    if (reserved !== 0 || isX2apic(index)) return k + 1;
    if (index === IA32_FS_BASE || index === IA32_GS_BASE || index === IA32_SMM_MONITOR_CTL) {
      return k + 1;
    }
    try {
      c.msr.write(index, c.mem.read(a + 8, 4), c.mem.read(a + 12, 4));
    } catch (e) {
      if (e instanceof Fault) return k + 1;
      throw e;
    }
  }
  return 0;
}

/** Stores the guest MSRs of the VM-exit MSR-store list (28.4); false when one fails. */
export function storeMsrList(c: Cpu, v: Vmcs): boolean {
  const address = v.read64(F.ExitMsrStoreAddress);
  const count = v.read(F.ExitMsrStoreCount);
  for (let k = 0; k < count; k++) {
    const a = address + MSR_ENTRY_SIZE * k;
    const index = c.mem.read(a, 4) >>> 0;
    if (c.mem.read(a + 4, 4) !== 0 || isX2apic(index) || index === IA32_SMBASE) return false;
    let value: [number, number];
    try {
      value = c.msr.read(index);
    } catch (e) {
      if (e instanceof Fault) return false;
      throw e;
    }
    c.mem.write(a + 8, 4, value[0] >>> 0);
    c.mem.write(a + 12, 4, value[1] >>> 0);
  }
  return true;
}
