/**
 * The kvm engine: SHV's machine on Linux KVM (hardware virtualization). Guest RAM is mapped
 * by the engine so KVM and the device model share it; one runner per machine owns the VM.
 */
import type { PhysicalMemory } from "../../machine/memory.js";
import type { CpuHost, Engine, Vcpu } from "../engine.js";
import { KvmRunner } from "./runner.js";
import { KvmSystem, KvmVm, mapGuestRam } from "./system.js";
import { vmxHint } from "./vmx-hint.js";

/** The VM of each machine, by its memory. */
const runners = new WeakMap<PhysicalMemory, KvmRunner>();

export const kvmEngine: Engine = {
  name: "kvm",
  realTime: true,
  allocateRam(bytes: number): Uint8Array {
    return mapGuestRam(bytes);
  },
  createVcpu(host: CpuHost, id: number): Vcpu {
    let runner = runners.get(host.mem);
    if (runner === undefined) {
      runner = new KvmRunner(new KvmVm(KvmSystem.open(), host.mem.ram), host.mem);
      runners.set(host.mem, runner);
    }
    return runner.addVcpu(host, id);
  },
  kernelNote: vmxHint,
};

/** Ends the vCPU threads and closes the VM of a machine's memory (tests, the oracle). */
export function closeKvmMachine(mem: PhysicalMemory): void {
  runners.get(mem)?.close();
  runners.delete(mem);
}
