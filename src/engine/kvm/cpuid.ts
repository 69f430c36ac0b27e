/**
 * The CPUID a kvm guest sees: KVM's supported CPUID (KVM_GET_SUPPORTED_CPUID, what the host
 * can virtualize) filtered to the processor SHV's machine actually is. Bits are named as in
 * the Intel SDM Vol. 2A, CPUID, Tables 3-10 and 3-11 (AMD documents the same leaf 1 bits).
 */
import { kvm_cpuid2, kvm_cpuid_entry2 } from "./abi.js";

export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** CPUID.1:ECX. */
const ECX_VMX = 1 << 5;
const ECX_X2APIC = 1 << 21;
const ECX_TSC_DEADLINE = 1 << 24;
const ECX_HYPERVISOR = 1 << 31;
/** CPUID.1:EDX. */
const EDX_APIC = 1 << 9;
/** KVM's paravirtual leaves (Documentation/virt/kvm/x86/cpuid.rst). */
const HYPERVISOR_LEAVES_FIRST = 0x40000000;
const HYPERVISOR_LEAVES_LAST = 0x4fffffff;

export interface CpuidModel {
  /** The vCPU's id, which is also its initial APIC ID. */
  vcpuId: number;
  /** Whether the machine gives this vCPU a local APIC (CpuHost.apic). */
  apic: boolean;
}

/**
 * Filters KVM's supported CPUID into a coherent model:
 * - the APIC, x2APIC and TSC-deadline bits only when the machine has a local APIC, as on
 *   the soft engine (the APIC is SHV's device model, not KVM's);
 * - the initial APIC ID in leaf 1 EBX[31:24], the x2APIC ID in leaves 0BH and 1FH and the
 *   AMD extended APIC ID in leaf 8000001EH are the vCPU id, which is what the MADT lists;
 * - no paravirtual interface: KVM's leaves 40000000H and up are dropped and the
 *   "hypervisor present" bit is clear, so a guest sees a plain processor on both engines
 *   (KVM's paravirtual EOI, clock and IPIs would bypass SHV's interrupt controllers);
 * - VMX stays exactly when KVM offers it, that is when the host's KVM has nested VMX.
 */
export function filterCpuid(supported: readonly CpuidEntry[], model: CpuidModel): CpuidEntry[] {
  const out: CpuidEntry[] = [];
  for (const e of supported) {
    if (e.function >= HYPERVISOR_LEAVES_FIRST && e.function <= HYPERVISOR_LEAVES_LAST) continue;
    const r = { ...e };
    switch (e.function) {
      case 0x1: {
        r.ebx = ((r.ebx & 0x00ffffff) | ((model.vcpuId & 0xff) << 24)) >>> 0;
        r.ecx = (r.ecx & ~ECX_HYPERVISOR) >>> 0;
        if (!model.apic) {
          r.ecx = (r.ecx & ~(ECX_X2APIC | ECX_TSC_DEADLINE)) >>> 0;
          r.edx = (r.edx & ~EDX_APIC) >>> 0;
        }
        break;
      }
      case 0xb:
      case 0x1f:
        r.edx = model.vcpuId >>> 0;
        break;
      case 0x8000001e:
        r.eax = model.vcpuId >>> 0;
        break;
    }
    out.push(r);
  }
  return out;
}

/** Whether a CPUID table offers VMX (CPUID.1:ECX.VMX[bit 5]). */
export function hasVmx(entries: readonly CpuidEntry[]): boolean {
  const leaf1 = entries.find((e) => e.function === 1);
  return leaf1 !== undefined && (leaf1.ecx & ECX_VMX) !== 0;
}

/** A kvm_cpuid2 buffer for KVM_SET_CPUID2. */
export function encodeCpuid2(entries: readonly CpuidEntry[]): Uint8Array {
  const buf = new Uint8Array(kvm_cpuid2.size + entries.length * kvm_cpuid_entry2.size);
  const v = new DataView(buf.buffer);
  v.setUint32(kvm_cpuid2.fields.nent, entries.length, true);
  const f = kvm_cpuid_entry2.fields;
  entries.forEach((e, k) => {
    const at = kvm_cpuid2.fields.entries + k * kvm_cpuid_entry2.size;
    v.setUint32(at + f.function, e.function, true);
    v.setUint32(at + f.index, e.index, true);
    v.setUint32(at + f.flags, e.flags, true);
    v.setUint32(at + f.eax, e.eax, true);
    v.setUint32(at + f.ebx, e.ebx, true);
    v.setUint32(at + f.ecx, e.ecx, true);
    v.setUint32(at + f.edx, e.edx, true);
  });
  return buf;
}
