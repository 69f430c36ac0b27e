/**
 * The VMX state of one logical processor (SDM Vol. 3C, 24.3 and 25.11): whether it is in
 * VMX operation, root or non-root, the VMXON pointer, the current-VMCS pointer and the
 * VMCSs it holds active. Every vCPU has its own (`cpu.vmx`); nothing here is shared.
 */
import type { PhysicalMemory } from "../../machine/memory.js";
import { EventState } from "./event-state.js";
import { Vmcs } from "./vmcs.js";

/** How many VMCSs a vCPU keeps cached (active) at most. */
export const MAX_ACTIVE = 64;

/** The current-VMCS pointer's invalid value FFFFFFFF_FFFFFFFFH, held as -1. */
export const INVALID_VMCS_POINTER = -1;

export class VmxState {
  /** In VMX operation: VMXON executed and no VMXOFF since (SDM 24.3). */
  on = false;
  /** In VMX non-root operation: a VM entry succeeded and no VM exit since. */
  nonRoot = false;
  /** Physical address of the VMXON region. */
  vmxonPointer = 0;
  /** Current-VMCS pointer (SDM 25.11.2), or INVALID_VMCS_POINTER. */
  currentPointer = INVALID_VMCS_POINTER;
  /** The current VMCS, or null when the pointer is invalid. */
  current: Vmcs | null = null;
  /**
   * Active VMCSs by region address: VMPTRLD makes a VMCS active (loads it from memory if
   * it was not), VMCLEAR writes it back and makes it inactive (SDM 25.11.3).
   */
  readonly active = new Map<number, Vmcs>();
  /** Where `--trace vmx` lines go (trace.ts), or null when VMX tracing is off. */
  trace: ((line: string) => void) | null = null;

  /** Non-root event handling between instruction boundaries (events.ts, nonroot.ts). */
  readonly events = new EventState();

  /** The current VMCS, for code that runs only when one exists (non-root operation). */
  get vmcs(): Vmcs {
    const v = this.current;
    if (v === null) throw new Error("VMX: no current VMCS");
    return v;
  }

  /** Makes the VMCS at `address` active and current, loading it from memory if needed. */
  makeCurrent(mem: PhysicalMemory, address: number): Vmcs {
    let v = this.active.get(address);
    if (v === undefined) {
      this.evict(mem);
      v = new Vmcs(address);
      v.load(mem);
      this.active.set(address, v);
    }
    this.current = v;
    this.currentPointer = address;
    return v;
  }

  /**
   * Keeps the cache bounded, whatever a guest does: beyond MAX_ACTIVE VMCSs the oldest one
   * that is not current goes back to its region (launch state included), as a processor
   * with a small VMCS cache may do at any time (SDM 25.11.1); a later VMPTRLD reloads it.
   */
  private evict(mem: PhysicalMemory): void {
    if (this.active.size < MAX_ACTIVE) return;
    for (const [address, v] of this.active) {
      if (v === this.current) continue;
      v.flush(mem);
      this.active.delete(address);
      return;
    }
  }

  /**
   * VMCLEAR's state change: writes the VMCS back (launch state clear), makes it inactive,
   * and invalidates the current-VMCS pointer if it was current. Returns whether it was
   * active.
   */
  clear(mem: PhysicalMemory, address: number): boolean {
    const v = this.active.get(address);
    if (v === undefined) return false;
    v.launched = false;
    v.flush(mem);
    this.active.delete(address);
    if (this.currentPointer === address) {
      this.current = null;
      this.currentPointer = INVALID_VMCS_POINTER;
    }
    return true;
  }

  /**
   * Leaves VMX operation (VMXOFF): active VMCSs are written back so their regions hold
   * their data (SDM 25.11.1 asks software to VMCLEAR first; writing back is the benign
   * choice when it did not).
   */
  off(mem: PhysicalMemory): void {
    for (const v of this.active.values()) v.flush(mem);
    this.active.clear();
    this.current = null;
    this.currentPointer = INVALID_VMCS_POINTER;
    this.on = false;
    this.nonRoot = false;
  }

  /** Power-on and RESET: outside VMX operation, nothing cached (SDM 24.3). */
  reset(): void {
    this.on = false;
    this.nonRoot = false;
    this.vmxonPointer = 0;
    this.current = null;
    this.currentPointer = INVALID_VMCS_POINTER;
    this.active.clear();
    this.events.reset();
  }
}
