/**
 * /dev/kvm: opening it with errors a user can act on, the API version and capability
 * checks, guest RAM mapped once and shared with the device model, and VM creation
 * (Documentation/virt/kvm/api.rst, 4.1-4.35).
 */
import { UserError } from "../../errors.js";
import {
  KVM,
  KVM_API_VERSION,
  KVM_CAP,
  kvm_cpuid2,
  kvm_cpuid_entry2,
  kvm_userspace_memory_region,
} from "./abi.js";
import type { CpuidEntry } from "./cpuid.js";
import {
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  errnoName,
  sys,
  type Libc,
} from "./sys.js";

export const KVM_DEVICE = "/dev/kvm";

/** Capabilities the engine cannot work without, with what each one is for. */
const REQUIRED_CAPS: [cap: number, name: string][] = [
  [KVM_CAP.USER_MEMORY, "KVM_CAP_USER_MEMORY"],
  [KVM_CAP.EXT_CPUID, "KVM_CAP_EXT_CPUID"],
  [KVM_CAP.SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"],
  [KVM_CAP.VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"],
  [KVM_CAP.DEBUGREGS, "KVM_CAP_DEBUGREGS"],
  [KVM_CAP.IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"],
  [KVM_CAP.INTERNAL_ERROR_DATA, "KVM_CAP_INTERNAL_ERROR_DATA"],
  [KVM_CAP.SET_GUEST_DEBUG, "KVM_CAP_SET_GUEST_DEBUG"],
];

/** Most CPUID entries KVM_GET_SUPPORTED_CPUID may return; E2BIG asks for more. */
const MAX_CPUID_ENTRIES = 256;
/**
 * KVM_SET_TSS_ADDR and KVM_SET_IDENTITY_MAP_ADDR: three pages and one page of guest-physical
 * space that Intel hosts use to run real-mode code (api.rst 4.47 and 4.65). They sit in
 * the PCI hole below the IOAPIC, where QEMU puts them, never in RAM or an MMIO device.
 */
const TSS_ADDR = 0xfeffd000;
const IDENTITY_MAP_ADDR = 0xfeffc000;

/** The open /dev/kvm with what it supports; one per process. */
export class KvmSystem {
  private static instance: KvmSystem | null = null;
  readonly vcpuMmapSize: number;
  readonly maxVcpus: number;
  readonly supportedCpuid: CpuidEntry[];

  private constructor(
    readonly libc: Libc,
    readonly fd: number,
  ) {
    const version = libc.ioctlInt(fd, KVM.GET_API_VERSION, 0);
    if (version !== KVM_API_VERSION) {
      throw new UserError(
        `${KVM_DEVICE} speaks KVM API version ${version}, SHV needs ${KVM_API_VERSION}; use --engine soft`,
      );
    }
    const missing = REQUIRED_CAPS.filter(([cap]) => this.checkExtension(cap) <= 0);
    if (missing.length > 0) {
      throw new UserError(
        `the host's KVM is too old: it lacks ${missing.map(([, n]) => n).join(", ")}; use --engine soft`,
      );
    }
    this.vcpuMmapSize = libc.ioctlInt(fd, KVM.GET_VCPU_MMAP_SIZE, 0);
    // KVM_CAP_MAX_VCPUS is the hard limit; NR_VCPUS the recommended one (api.rst 4.4).
    this.maxVcpus = this.checkExtension(KVM_CAP.MAX_VCPUS) || this.checkExtension(KVM_CAP.NR_VCPUS);
    this.supportedCpuid = this.getSupportedCpuid();
  }

  /** Opens /dev/kvm once; a UserError says why it cannot be used. */
  static open(): KvmSystem {
    if (KvmSystem.instance !== null) return KvmSystem.instance;
    if (process.platform !== "linux" || process.arch !== "x64") {
      throw new UserError(
        `the kvm engine needs Linux on x86-64 (this is ${process.platform}/${process.arch}); use --engine soft`,
      );
    }
    let libc: Libc;
    try {
      libc = sys();
    } catch (e) {
      throw new UserError(
        `cannot load the koffi FFI library for the kvm engine: ${(e as Error).message.split("\n")[0]}`,
      );
    }
    const fd = libc.open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
    if (fd < 0) throw new UserError(openError(libc.errno()));
    KvmSystem.instance = new KvmSystem(libc, fd);
    return KvmSystem.instance;
  }

  checkExtension(cap: number): number {
    return this.libc.ioctlInt(this.fd, KVM.CHECK_EXTENSION, cap);
  }

  /** KVM_GET_SUPPORTED_CPUID: what KVM can virtualize on this host (api.rst 4.46). */
  private getSupportedCpuid(): CpuidEntry[] {
    const buf = new Uint8Array(kvm_cpuid2.size + MAX_CPUID_ENTRIES * kvm_cpuid_entry2.size);
    const view = new DataView(buf.buffer);
    view.setUint32(kvm_cpuid2.fields.nent, MAX_CPUID_ENTRIES, true);
    if (this.libc.ioctl(this.fd, KVM.GET_SUPPORTED_CPUID, buf) < 0) {
      throw new Error(`KVM_GET_SUPPORTED_CPUID failed: ${errnoName(this.libc.errno())}`);
    }
    const n = view.getUint32(kvm_cpuid2.fields.nent, true);
    const f = kvm_cpuid_entry2.fields;
    return Array.from({ length: n }, (_, k) => {
      const at = kvm_cpuid2.fields.entries + k * kvm_cpuid_entry2.size;
      return {
        function: view.getUint32(at + f.function, true),
        index: view.getUint32(at + f.index, true),
        flags: view.getUint32(at + f.flags, true),
        eax: view.getUint32(at + f.eax, true),
        ebx: view.getUint32(at + f.ebx, true),
        ecx: view.getUint32(at + f.ecx, true),
        edx: view.getUint32(at + f.edx, true),
      };
    });
  }
}

/** The one-line error for a failed open of /dev/kvm. */
export function openError(errno: number): string {
  const name = errnoName(errno);
  if (name.startsWith("ENOENT") || name.startsWith("ENXIO") || name.startsWith("ENODEV")) {
    return `${KVM_DEVICE} does not exist: this host has no KVM (load the kvm module, or use --engine soft)`;
  }
  if (name.startsWith("EACCES") || name.startsWith("EPERM")) {
    return `no permission to open ${KVM_DEVICE} (join its group, usually kvm, or use --engine soft)`;
  }
  return `cannot open ${KVM_DEVICE}: ${name}; use --engine soft`;
}

/** Host addresses of the guest RAM buffers this engine mapped, by their ArrayBuffer. */
const mappedRam = new WeakMap<ArrayBufferLike, { addr: bigint; length: number }>();

/**
 * Guest RAM as anonymous host memory mapped once: KVM maps the same pages into the guest
 * (KVM_SET_USER_MEMORY_REGION) and the device model reads and writes them through the
 * returned view, so no byte is ever copied. MAP_NORESERVE: untouched RAM costs nothing.
 */
export function mapGuestRam(bytes: number): Uint8Array {
  const kvm = KvmSystem.open();
  let addr: bigint;
  try {
    addr = kvm.libc.mmap(
      bytes,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
      -1,
    );
  } catch (e) {
    throw new UserError(`cannot map ${bytes >>> 20} MiB of guest RAM: ${(e as Error).message}`);
  }
  const ram = new Uint8Array(kvm.libc.view(addr, bytes));
  mappedRam.set(ram.buffer, { addr, length: bytes });
  return ram;
}

/** A contiguous run of guest-physical RAM pages, which becomes one memory slot. */
export interface RamRun {
  base: number;
  length: number;
}

/** A KVM virtual machine: its fd, its memory slots and its vCPU fds. */
export class KvmVm {
  readonly fd: number;
  private slots: RamRun[] = [];
  private readonly ramAddr: bigint;

  constructor(
    readonly kvm: KvmSystem,
    readonly ram: Uint8Array,
  ) {
    const mapping = mappedRam.get(ram.buffer);
    if (mapping === undefined || ram.byteOffset !== 0) {
      throw new Error("kvm engine: guest RAM was not mapped by the engine (Engine.allocateRam)");
    }
    this.ramAddr = mapping.addr;
    const { libc } = kvm;
    this.fd = libc.ioctlInt(kvm.fd, KVM.CREATE_VM, 0);
    if (this.fd < 0) throw new UserError(`KVM_CREATE_VM failed: ${errnoName(libc.errno())}`);
    if (libc.ioctlInt(this.fd, KVM.SET_TSS_ADDR, TSS_ADDR) < 0) {
      throw new Error(`KVM_SET_TSS_ADDR failed: ${errnoName(libc.errno())}`);
    }
    const identity = new Uint8Array(8);
    new DataView(identity.buffer).setBigUint64(0, BigInt(IDENTITY_MAP_ADDR), true);
    // Optional (KVM_CAP_SET_IDENTITY_MAP_ADDR): only Intel hosts without EPT use it.
    libc.ioctl(this.fd, KVM.SET_IDENTITY_MAP_ADDR, identity);
  }

  /**
   * Makes the memory slots match `runs` (the RAM pages of the machine's memory map, with the
   * MMIO holes left out so that accesses there exit to the device model). Slots are
   * numbered from 0 in address order; a changed map replaces them all.
   */
  setRamRuns(runs: RamRun[]): void {
    const same =
      runs.length === this.slots.length &&
      runs.every((r, k) => r.base === this.slots[k].base && r.length === this.slots[k].length);
    if (same) return;
    // Deleting a slot is setting its size to 0 (api.rst 4.35).
    for (let k = 0; k < this.slots.length; k++) this.setSlot(k, 0, 0);
    runs.forEach((r, k) => this.setSlot(k, r.base, r.length));
    this.slots = runs.map((r) => ({ ...r }));
  }

  private setSlot(slot: number, base: number, length: number): void {
    const buf = new Uint8Array(kvm_userspace_memory_region.size);
    const v = new DataView(buf.buffer);
    const f = kvm_userspace_memory_region.fields;
    v.setUint32(f.slot, slot, true);
    v.setBigUint64(f.guest_phys_addr, BigInt(base), true);
    v.setBigUint64(f.memory_size, BigInt(length), true);
    v.setBigUint64(f.userspace_addr, this.ramAddr + BigInt(base), true);
    if (this.kvm.libc.ioctl(this.fd, KVM.SET_USER_MEMORY_REGION, buf) < 0) {
      const range = `0x${base.toString(16)}+0x${length.toString(16)}`;
      throw new Error(
        `KVM_SET_USER_MEMORY_REGION ${range} failed: ${errnoName(this.kvm.libc.errno())}`,
      );
    }
  }

  /** KVM_CREATE_VCPU; the vCPU id is also its APIC ID (api.rst 4.7). */
  createVcpuFd(id: number): number {
    if (id >= this.kvm.maxVcpus) {
      throw new UserError(`the host's KVM allows at most ${this.kvm.maxVcpus} vCPUs per VM`);
    }
    const fd = this.kvm.libc.ioctlInt(this.fd, KVM.CREATE_VCPU, id);
    if (fd < 0) {
      throw new UserError(`KVM_CREATE_VCPU ${id} failed: ${errnoName(this.kvm.libc.errno())}`);
    }
    return fd;
  }

  close(): void {
    this.kvm.libc.close(this.fd);
  }
}

/** The runs of RAM pages in a page-kind map (one byte per 4 KiB page, 1 = RAM). */
export function ramRuns(pageKind: Uint8Array, ramPages: number, ramKind: number): RamRun[] {
  const runs: RamRun[] = [];
  let start = -1;
  for (let p = 0; p <= ramPages; p++) {
    const ram = p < ramPages && pageKind[p] === ramKind;
    if (ram && start < 0) start = p;
    if (!ram && start >= 0) {
      runs.push({ base: start * 4096, length: (p - start) * 4096 });
      start = -1;
    }
  }
  return runs;
}
