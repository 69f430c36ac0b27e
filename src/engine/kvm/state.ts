/**
 * A vCPU's architectural state through KVM: kvm_regs and kvm_sregs as plain objects (64-bit
 * values as BigInt: these calls are off the hot path), and whole-structure snapshots for
 * reset. Field names follow the kvm.h structures.
 */
import {
  KVM,
  SREGS_SEGMENTS,
  kvm_debugregs,
  kvm_dtable,
  kvm_fpu,
  kvm_msr_entry,
  kvm_msrs,
  kvm_regs,
  kvm_segment,
  kvm_sregs,
  kvm_translation,
  kvm_vcpu_events,
  kvm_xcrs,
} from "./abi.js";
import { errnoName, type Libc } from "./sys.js";

export type RegName = keyof typeof kvm_regs.fields;
export const REG_NAMES = Object.keys(kvm_regs.fields) as RegName[];
export type Regs = Record<RegName, bigint>;

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  /** The descriptor's 4-bit type field. */
  type: number;
  present: boolean;
  dpl: number;
  /** D/B: default operation size (code) or big (stack). */
  db: boolean;
  /** S: code/data rather than system. */
  s: boolean;
  /** L: 64-bit code. */
  l: boolean;
  g: boolean;
  unusable: boolean;
}

export type SegmentName = (typeof SREGS_SEGMENTS)[number];

export interface Sregs extends Record<SegmentName, Segment> {
  gdt: { base: bigint; limit: number };
  idt: { base: bigint; limit: number };
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

/** One vCPU fd's register access. */
export class VcpuState {
  private readonly regsBuf = new Uint8Array(kvm_regs.size);
  private readonly sregsBuf = new Uint8Array(kvm_sregs.size);

  constructor(
    readonly libc: Libc,
    readonly fd: number,
  ) {}

  /** An ioctl on the vCPU that must succeed; its failure is an SHV bug or a host problem. */
  ioctl(name: keyof typeof KVM, arg: Uint8Array | null): void {
    if (this.libc.ioctl(this.fd, KVM[name], arg) < 0) {
      throw new Error(`KVM_${name} failed: ${errnoName(this.libc.errno())}`);
    }
  }

  /** An ioctl without argument that returns a value (e.g. KVM_GET_TSC_KHZ). */
  ioctlValue(name: keyof typeof KVM): number {
    const r = this.libc.ioctlInt(this.fd, KVM[name], 0);
    if (r < 0) throw new Error(`KVM_${name} failed: ${errnoName(this.libc.errno())}`);
    return r;
  }

  /** One MSR through KVM_GET_MSRS, as a double (exact below 2^53). */
  getMsr(index: number): number {
    const buf = new Uint8Array(kvm_msrs.size + kvm_msr_entry.size);
    const v = view(buf);
    v.setUint32(kvm_msrs.fields.nmsrs, 1, true);
    v.setUint32(kvm_msrs.fields.entries + kvm_msr_entry.fields.index, index, true);
    if (this.libc.ioctl(this.fd, KVM.GET_MSRS, buf) !== 1) {
      throw new Error(`KVM_GET_MSRS of MSR 0x${index.toString(16)} failed`);
    }
    return Number(v.getBigUint64(kvm_msrs.fields.entries + kvm_msr_entry.fields.data, true));
  }

  getRegs(): Regs {
    this.ioctl("GET_REGS", this.regsBuf);
    const v = view(this.regsBuf);
    const r = {} as Regs;
    for (const n of REG_NAMES) r[n] = v.getBigUint64(kvm_regs.fields[n], true);
    return r;
  }

  setRegs(r: Regs): void {
    const v = view(this.regsBuf);
    for (const n of REG_NAMES) v.setBigUint64(kvm_regs.fields[n], BigInt.asUintN(64, r[n]), true);
    this.ioctl("SET_REGS", this.regsBuf);
  }

  getSregs(): Sregs {
    this.ioctl("GET_SREGS", this.sregsBuf);
    const v = view(this.sregsBuf);
    const f = kvm_sregs.fields;
    const s = {} as Sregs;
    for (const n of SREGS_SEGMENTS) s[n] = readSegment(v, f[n]);
    s.gdt = readDtable(v, f.gdt);
    s.idt = readDtable(v, f.idt);
    s.cr0 = v.getBigUint64(f.cr0, true);
    s.cr2 = v.getBigUint64(f.cr2, true);
    s.cr3 = v.getBigUint64(f.cr3, true);
    s.cr4 = v.getBigUint64(f.cr4, true);
    s.cr8 = v.getBigUint64(f.cr8, true);
    s.efer = v.getBigUint64(f.efer, true);
    s.apicBase = v.getBigUint64(f.apic_base, true);
    return s;
  }

  /**
   * KVM_SET_SREGS. The interrupt bitmap is left zero: with no in-kernel irqchip, a set bit
   * would inject that interrupt (api.rst 4.14), and SHV injects through KVM_INTERRUPT.
   */
  setSregs(s: Sregs): void {
    const v = view(this.sregsBuf);
    const f = kvm_sregs.fields;
    this.sregsBuf.fill(0);
    for (const n of SREGS_SEGMENTS) writeSegment(v, f[n], s[n]);
    writeDtable(v, f.gdt, s.gdt);
    writeDtable(v, f.idt, s.idt);
    v.setBigUint64(f.cr0, s.cr0, true);
    v.setBigUint64(f.cr2, s.cr2, true);
    v.setBigUint64(f.cr3, s.cr3, true);
    v.setBigUint64(f.cr4, s.cr4, true);
    v.setBigUint64(f.cr8, s.cr8, true);
    v.setBigUint64(f.efer, s.efer, true);
    v.setBigUint64(f.apic_base, s.apicBase, true);
    this.ioctl("SET_SREGS", this.sregsBuf);
  }

  /** KVM_TRANSLATE: the guest-physical address of a linear address, or null. */
  translate(linear: bigint): bigint | null {
    const buf = new Uint8Array(kvm_translation.size);
    const v = view(buf);
    v.setBigUint64(kvm_translation.fields.linear_address, linear, true);
    if (this.libc.ioctl(this.fd, KVM.TRANSLATE, buf) < 0) return null;
    if (v.getUint8(kvm_translation.fields.valid) === 0) return null;
    return v.getBigUint64(kvm_translation.fields.physical_address, true);
  }

  /** A copy of every piece of state that reset restores (see restore). */
  snapshot(): StateSnapshot {
    const get = (name: keyof typeof KVM, size: number) => {
      const buf = new Uint8Array(size);
      this.ioctl(name, buf);
      return buf;
    };
    return {
      regs: get("GET_REGS", kvm_regs.size),
      sregs: get("GET_SREGS", kvm_sregs.size),
      events: get("GET_VCPU_EVENTS", kvm_vcpu_events.size),
      debugregs: get("GET_DEBUGREGS", kvm_debugregs.size),
      fpu: get("GET_FPU", kvm_fpu.size),
      xcrs: get("GET_XCRS", kvm_xcrs.size),
    };
  }

  /**
   * Puts back a snapshot: the register state of INIT (regs, sregs, events, debug registers)
   * and, for RESET, the x87/SSE state and XCR0 too (SDM Vol. 3A, 10.1.1, Table 10-1: INIT
   * leaves the FPU and XCR0 alone).
   */
  restore(s: StateSnapshot, what: "init" | "reset"): void {
    this.ioctl("SET_REGS", s.regs);
    this.ioctl("SET_SREGS", s.sregs);
    // The snapshot's flags would be KVM's output flags; set every field we restore.
    const events = s.events.slice();
    view(events).setUint32(kvm_vcpu_events.fields.flags, EVENTS_RESTORE_FLAGS, true);
    this.ioctl("SET_VCPU_EVENTS", events);
    this.ioctl("SET_DEBUGREGS", s.debugregs);
    if (what === "reset") {
      this.ioctl("SET_FPU", s.fpu);
      this.ioctl("SET_XCRS", s.xcrs);
    }
  }
}

/** KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW: clear those too. */
const EVENTS_RESTORE_FLAGS = 0x1 | 0x4;

export interface StateSnapshot {
  regs: Uint8Array;
  sregs: Uint8Array;
  events: Uint8Array;
  debugregs: Uint8Array;
  fpu: Uint8Array;
  xcrs: Uint8Array;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function readSegment(v: DataView, at: number): Segment {
  const f = kvm_segment.fields;
  return {
    base: v.getBigUint64(at + f.base, true),
    limit: v.getUint32(at + f.limit, true),
    selector: v.getUint16(at + f.selector, true),
    type: v.getUint8(at + f.type),
    present: v.getUint8(at + f.present) !== 0,
    dpl: v.getUint8(at + f.dpl),
    db: v.getUint8(at + f.db) !== 0,
    s: v.getUint8(at + f.s) !== 0,
    l: v.getUint8(at + f.l) !== 0,
    g: v.getUint8(at + f.g) !== 0,
    unusable: v.getUint8(at + f.unusable) !== 0,
  };
}

function writeSegment(v: DataView, at: number, s: Segment): void {
  const f = kvm_segment.fields;
  v.setBigUint64(at + f.base, s.base, true);
  v.setUint32(at + f.limit, s.limit >>> 0, true);
  v.setUint16(at + f.selector, s.selector, true);
  v.setUint8(at + f.type, s.type);
  v.setUint8(at + f.present, s.present ? 1 : 0);
  v.setUint8(at + f.dpl, s.dpl);
  v.setUint8(at + f.db, s.db ? 1 : 0);
  v.setUint8(at + f.s, s.s ? 1 : 0);
  v.setUint8(at + f.l, s.l ? 1 : 0);
  v.setUint8(at + f.g, s.g ? 1 : 0);
  v.setUint8(at + f.unusable, s.unusable ? 1 : 0);
}

function readDtable(v: DataView, at: number): { base: bigint; limit: number } {
  return {
    base: v.getBigUint64(at + kvm_dtable.fields.base, true),
    limit: v.getUint16(at + kvm_dtable.fields.limit, true),
  };
}

function writeDtable(v: DataView, at: number, d: { base: bigint; limit: number }): void {
  v.setBigUint64(at + kvm_dtable.fields.base, d.base, true);
  v.setUint16(at + kvm_dtable.fields.limit, d.limit, true);
}

/** A flat 4 GiB segment for protected mode: data (type 3) or code (type 11), accessed. */
export function flatSegment(selector: number, code: boolean): Segment {
  return {
    base: 0n,
    limit: 0xffffffff,
    selector,
    type: code ? 0xb : 0x3,
    present: true,
    dpl: 0,
    db: true,
    s: true,
    l: false,
    g: true,
    unusable: false,
  };
}
