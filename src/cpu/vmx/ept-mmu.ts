/**
 * EPT in the MMU (SDM Vol. 3C, 29.3.2 and 29.3.3): in VMX non-root operation with "enable
 * EPT", every guest-physical address the processor uses is translated through EPT: the
 * guest's own paging-structure reads and accessed/dirty writes, the PDPTE loads of PAE
 * paging, and the final address of every linear access (or the linear address itself
 * while the guest's CR0.PG = 0, as an unrestricted guest may run). mmu.ts calls these
 * functions only on a TLB miss, so the fast paths are the same in every mode.
 *
 * A failed translation ends the instruction with an EPT violation (exit reason 48: the
 * qualification of SDM Table 28-7, the guest-physical address, and the guest-linear
 * address when there is one) or an EPT misconfiguration (49: the guest-physical address),
 * thrown as an EptExitSignal that the run loop turns into the VM exit once the
 * instruction has unwound.
 */
import { PFEC_I, PFEC_W } from "../arch.js";
import type { Cpu } from "../cpu.js";
import {
  ACCESS_FETCH,
  ACCESS_READ,
  ACCESS_WRITE,
  EptOutcome,
  type EptContext,
  type EptWalk,
  QUAL_FINAL,
  QUAL_LINEAR_VALID,
  QUAL_NMI_UNBLOCKING,
} from "./ept.js";
import { ExitReason } from "./exit-reasons.js";
import { vmExit, type ExitInfo } from "./exit.js";
import { vectoringInfo } from "./events.js";

/**
 * A read (or, for `write`, an accessed/dirty update) of a guest paging-structure entry at
 * guest-physical address `gpa`, while translating linear address `lin`. Returns the
 * host-physical address.
 */
export function eptPaging(cpu: Cpu, ept: EptContext, gpa: number, lin: number, write: boolean) {
  const access = write ? ACCESS_WRITE : ept.pagingAccess;
  const w = ept.translate(cpu.mem, gpa, access);
  if (w.outcome !== EptOutcome.Ok) eptExit(cpu, w, gpa, lin, QUAL_LINEAR_VALID);
  return w.hpa;
}

/**
 * A load of the PDPTE registers from guest-physical address `gpa` (MOV to CR0/CR3/CR4
 * with PAE paging): a read even with EPT A/D flags, with no guest-linear address.
 */
export function eptPdpte(cpu: Cpu, ept: EptContext, gpa: number): number {
  const w = ept.translate(cpu.mem, gpa, ACCESS_READ);
  if (w.outcome !== EptOutcome.Ok) eptExit(cpu, w, gpa, 0, 0);
  return w.hpa;
}

/**
 * The final translation of linear address `lin` (`access`: PFEC_W / PFEC_I bits as in
 * mmu.ts) whose guest-physical address is `gpa`. Returns the host-physical address; the
 * EPT permissions and dirty state of the page stay in `ept.walk` for the TLB entry.
 */
export function eptFinal(cpu: Cpu, ept: EptContext, gpa: number, lin: number, access: number) {
  const kind = access & PFEC_W ? ACCESS_WRITE : access & PFEC_I ? ACCESS_FETCH : ACCESS_READ;
  const w = ept.translate(cpu.mem, gpa, kind);
  if (w.outcome !== EptOutcome.Ok) eptExit(cpu, w, gpa, lin, QUAL_LINEAR_VALID | QUAL_FINAL);
  return w.hpa;
}

/**
 * An EPT violation or misconfiguration on its way to the run loop (cpu.ts). The VM exit
 * is not taken where the walk fails but after the instruction or event delivery has
 * unwound as it does for a fault, restoring what it had changed (the stack of a delivery,
 * CPL, segments): the exit must save the guest state from before the access (SDM 28.3),
 * and restoring it after the host state is loaded would corrupt the host. Everything the
 * exit reports is captured here, where it is known, IDT-vectoring information included.
 */
export class EptExitSignal {
  constructor(
    readonly reason: number,
    readonly qualification: number,
    readonly info: ExitInfo,
  ) {}

  /** The VM exit itself: throws VmExitSignal (or VmxAbortSignal). */
  exit(cpu: Cpu): never {
    return vmExit(cpu, this.reason, this.qualification, this.info);
  }
}

/** Ends the instruction with the VM exit a failed walk calls for (EptExitSignal). */
function eptExit(cpu: Cpu, w: EptWalk, gpa: number, lin: number, bits: number): never {
  if (w.outcome === EptOutcome.Misconfig) {
    throw new EptExitSignal(ExitReason.EptMisconfig, 0, vectoringInfo(cpu, { guestPhysical: gpa }));
  }
  // Bit 7: the guest-linear-address field is valid (every violation but a PDPTE load).
  const info: ExitInfo = { guestPhysical: gpa };
  if (bits & QUAL_LINEAR_VALID) info.guestLinear = lin;
  // Bit 12: the access belongs to an IRET that ended (virtual-)NMI blocking, which stays
  // ended (SDM 28.1); the hypervisor must set it again before resuming the IRET.
  if (cpu.vmx.events.nmiUnblockedByIretAt === cpu.instructionsRetired) bits |= QUAL_NMI_UNBLOCKING;
  throw new EptExitSignal(
    ExitReason.EptViolation,
    w.qualification | bits,
    vectoringInfo(cpu, info),
  );
}
