/**
 * The VMCS field table (SDM Vol. 3C, Appendix B) and VMREAD/VMWRITE over it: encodings
 * follow the encoding rules, existence follows the capabilities, every width round-trips
 * through the instructions, read-only fields reject VMWRITE, the VMCS region holds the
 * data across VMCLEAR and VMPTRLD.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AR_DB, AR_L, CR4_PAE, CS, EAX, ECX, EFER_LMA, EFER_LME } from "../src/cpu/arch.js";
import { IA32_VMX_VMCS_ENUM, VMCS_REVISION_ID } from "../src/cpu/vmx/capabilities.js";
import { MAX_ACTIVE } from "../src/cpu/vmx/state.js";
import { FEATURES, Proc2 } from "../src/cpu/vmx/controls.js";
import {
  encIndex,
  encType,
  encWidth,
  F,
  FIELD_MAP,
  FieldMap,
  FIELDS,
  FieldType,
  Width,
} from "../src/cpu/vmx/fields.js";
import { CF, ZF } from "../src/cpu/flags.js";
import {
  exec,
  operand,
  VMCLEAR,
  VMCS_REGION,
  VMCS_REGION2,
  VMPTRLD,
  VMREAD_EAX_ECX,
  VMWRITE_ECX_EAX,
  vmxCpu,
  vmxOnWithVmcs,
  VMXON_REGION,
  OPERAND,
} from "./helpers/vmx-core.js";
import type { Cpu } from "../src/cpu/cpu.js";

/** VMWRITE then VMREAD through the instructions; returns [flags after write, value read]. */
function writeRead(cpu: Cpu, enc: number, value: number): [number, number] {
  cpu.regs[ECX] = enc;
  cpu.regs[EAX] = value;
  assert.equal(exec(cpu, VMWRITE_ECX_EAX), undefined);
  const flags = cpu.flags.get();
  cpu.regs[EAX] = 0x5a5a5a5a;
  assert.equal(exec(cpu, VMREAD_EAX_ECX), undefined);
  return [flags, cpu.regs[EAX] >>> 0];
}

describe("VMCS field table", () => {
  it("encodes width, type and index as Appendix B's rules say (bit 0 and bit 12 clear)", () => {
    for (const d of FIELDS) {
      assert.equal(encWidth(d.enc), d.width, `${d.name}: width bits 14:13`);
      assert.equal(encType(d.enc), d.type, `${d.name}: type bits 11:10`);
      assert.equal(d.enc & 1, 0, `${d.name}: full access type`);
      assert.equal(d.enc & 0x1000, 0, `${d.name}: bit 12 reserved`);
    }
  });

  it("has no duplicate encodings, and indexes count up from 0 within each width and type", () => {
    const seen = new Set<number>();
    const byGroup = new Map<number, number[]>();
    for (const d of FIELDS) {
      assert.ok(!seen.has(d.enc), `duplicate 0x${d.enc.toString(16)}`);
      seen.add(d.enc);
      const g = d.enc & 0x6c00;
      byGroup.set(g, [...(byGroup.get(g) ?? []), encIndex(d.enc)]);
    }
    for (const [g, idx] of byGroup) {
      // Appendix B lists each group densely, except index 22 of the 32-bit guest fields
      // (0x482C, not assigned: the preemption-timer value is index 23).
      const gaps = g === 0x4800 ? [22] : [];
      const want = Array.from({ length: idx.length + gaps.length }, (_, k) => k).filter(
        (k) => !gaps.includes(k),
      );
      assert.deepEqual(idx, want, `group 0x${g.toString(16)}`);
    }
  });

  it("names fields from the SDM: a few spot checks of encoding and name", () => {
    const byEnc = new Map(FIELDS.map((d) => [d.enc as number, d.name]));
    assert.equal(byEnc.get(0x0000), "virtual-processor identifier (VPID)");
    assert.equal(byEnc.get(0x201a), "EPT pointer (EPTP)");
    assert.equal(byEnc.get(0x4402), "exit reason");
    assert.equal(byEnc.get(0x6820), "guest RFLAGS");
    assert.equal(byEnc.get(0x6c16), "host RIP");
    assert.equal(byEnc.get(0x482e), "VMX-preemption timer value");
  });

  it("lets fields exist only with their feature; IA32_VMX_VMCS_ENUM reports the highest index", () => {
    const exists = (enc: F): boolean => FIELD_MAP.lookup(enc) !== undefined;
    assert.ok(exists(F.Vpid) && exists(F.EptPointer) && exists(F.GuestPdpte0));
    // Not offered: posted interrupts, APIC virtualization, PML, VM functions, shadowing.
    for (const enc of [
      F.PostedInterruptNotificationVector,
      F.VirtualApicAddress,
      F.TprThreshold,
      F.PmlAddress,
      F.EptpListAddress,
      F.VmreadBitmapAddress,
      F.GuestIa32PerfGlobalCtrl,
      F.HostIa32SCet,
    ]) {
      assert.ok(!exists(enc), `0x${enc.toString(16)} must not exist`);
    }
    const noEpt = new FieldMap({ ...FEATURES, proc2: FEATURES.proc2 & ~Proc2.EnableEpt });
    assert.equal(noEpt.lookup(F.EptPointer), undefined);
    assert.equal(noEpt.lookup(F.GuestPhysicalAddress), undefined);
    const { cpu } = vmxCpu();
    assert.equal(cpu.msr.read(IA32_VMX_VMCS_ENUM)[0], FIELD_MAP.highestIndex << 1);
    assert.equal(FIELD_MAP.highestIndex, 0x17);
  });

  it("accepts the high access type only for 64-bit fields, and no encoding bits 63:15", () => {
    assert.ok(FIELD_MAP.lookup(F.TscOffset + 1) !== undefined);
    assert.equal(FIELD_MAP.lookup(F.GuestRip + 1), undefined); // natural width
    assert.equal(FIELD_MAP.lookup(F.ExitReason + 1), undefined); // 32-bit
    assert.equal(FIELD_MAP.lookup(F.GuestRip | 0x8000), undefined);
    assert.equal(FIELD_MAP.lookup(F.GuestRip, 1), undefined);
  });
});

describe("VMREAD and VMWRITE over the table", () => {
  it("round-trips every writable field at its width (32-bit mode: low 32 bits)", () => {
    const { cpu } = vmxCpu();
    vmxOnWithVmcs(cpu);
    for (const d of FIELD_MAP.fields) {
      if (d.type === FieldType.ExitInfo) continue;
      const [flags, got] = writeRead(cpu, d.enc, 0xdeadbeef);
      assert.equal(flags & (CF | ZF), 0, `${d.name}: VMsucceed`);
      const want = d.width === Width.W16 ? 0xbeef : 0xdeadbeef;
      assert.equal(got, want, d.name);
    }
  });

  it("writes and reads bits 63:32 of 64-bit fields through the high access type", () => {
    const { cpu } = vmxCpu();
    const v = vmxOnWithVmcs(cpu);
    writeRead(cpu, F.TscOffset, 0x11111111);
    const [, hi] = writeRead(cpu, F.TscOffset + 1, 0x22222222);
    assert.equal(hi, 0x22222222);
    assert.equal(v.read(F.TscOffset), 0x11111111);
    assert.equal(v.readHi(F.TscOffset), 0x22222222);
    // A full-access write from a 32-bit operand clears bits 63:32 (31.3, VMWRITE).
    writeRead(cpu, F.TscOffset, 0x33333333);
    assert.equal(v.readHi(F.TscOffset), 0);
  });

  it("rejects VMWRITE to read-only (VM-exit information) fields with error 13", () => {
    const { cpu } = vmxCpu();
    const v = vmxOnWithVmcs(cpu);
    for (const d of FIELD_MAP.fields.filter((x) => x.type === FieldType.ExitInfo)) {
      if (d.enc === F.VmInstructionError) continue; // holds the error itself
      v.write(d.enc, 0x1234);
      cpu.regs[ECX] = d.enc;
      cpu.regs[EAX] = 0x5678;
      exec(cpu, VMWRITE_ECX_EAX);
      assert.equal(cpu.flags.get() & (CF | ZF), ZF, `${d.name}: VMfailValid`);
      assert.equal(v.read(F.VmInstructionError), 13, d.name);
      assert.equal(v.read(d.enc), 0x1234, `${d.name} unchanged`);
      cpu.regs[EAX] = 0;
      exec(cpu, VMREAD_EAX_ECX);
      assert.equal(cpu.flags.get() & (CF | ZF), 0, `${d.name}: VMREAD succeeds`);
      assert.equal(cpu.regs[EAX], 0x1234);
    }
  });

  it("rejects unsupported components with error 12 (absent features, bad encodings)", () => {
    const { cpu } = vmxCpu();
    const v = vmxOnWithVmcs(cpu);
    for (const enc of [F.VirtualApicAddress, F.GuestRip + 1, 0x1000 | F.GuestRip, 0x6c1e]) {
      for (const bytes of [VMREAD_EAX_ECX, VMWRITE_ECX_EAX]) {
        v.write(F.VmInstructionError, 0);
        cpu.regs[ECX] = enc;
        exec(cpu, bytes);
        assert.equal(cpu.flags.get() & (CF | ZF), ZF, `0x${enc.toString(16)}`);
        assert.equal(v.read(F.VmInstructionError), 12);
      }
    }
  });

  it("keeps the data in the VMCS region: VMCLEAR writes it back, VMPTRLD reads it again", () => {
    const { cpu, mem } = vmxCpu();
    vmxOnWithVmcs(cpu, VMCS_REGION);
    writeRead(cpu, F.GuestRip, 0xcafe0000);
    writeRead(cpu, F.Vpid, 7);
    operand(mem, VMCS_REGION);
    exec(cpu, VMCLEAR);
    assert.equal(cpu.vmx.current, null);
    // Another VMCS in between, then the first one again, loaded from memory.
    operand(mem, VMCS_REGION2);
    exec(cpu, VMCLEAR);
    exec(cpu, VMPTRLD);
    assert.equal(writeRead(cpu, F.GuestRip, 1)[1], 1);
    operand(mem, VMCS_REGION);
    exec(cpu, VMPTRLD);
    cpu.regs[ECX] = F.GuestRip;
    exec(cpu, VMREAD_EAX_ECX);
    assert.equal(cpu.regs[EAX] >>> 0, 0xcafe0000);
    cpu.regs[ECX] = F.Vpid;
    exec(cpu, VMREAD_EAX_ECX);
    assert.equal(cpu.regs[EAX], 7);
  });

  it("keeps at most MAX_ACTIVE VMCSs cached; evicted ones come back from their regions", () => {
    const { cpu, mem } = vmxCpu();
    vmxOnWithVmcs(cpu);
    const regions = Array.from({ length: MAX_ACTIVE + 6 }, (_, k) => 0x40000 + k * 0x1000);
    for (const [k, r] of regions.entries()) {
      mem.write(r, 4, VMCS_REVISION_ID);
      operand(mem, r);
      exec(cpu, VMCLEAR);
      exec(cpu, VMPTRLD);
      writeRead(cpu, F.GuestRip, 0x1000 + k);
    }
    assert.ok(cpu.vmx.active.size <= MAX_ACTIVE);
    for (const [k, r] of regions.entries()) {
      operand(mem, r);
      exec(cpu, VMPTRLD);
      cpu.regs[ECX] = F.GuestRip;
      exec(cpu, VMREAD_EAX_ECX);
      assert.equal(cpu.regs[EAX], 0x1000 + k);
    }
  });

  it("in 64-bit mode: 64-bit operands, full natural-width values, 16-bit truncation, memory forms", () => {
    const { cpu, mem } = vmxCpu();
    // IA-32e mode: identity-mapped 2 MiB page through 4-level paging, 64-bit CS.
    mem.write(0x50000, 4, 0x51000 | 7);
    mem.write(0x51000, 4, 0x52000 | 7);
    mem.write(0x52000, 4, 0x87);
    cpu.cr4 |= CR4_PAE;
    cpu.cr3 = 0x50000;
    cpu.msr.efer |= EFER_LME | EFER_LMA;
    cpu.segs[CS].set(0x08, 0, 0xffffffff, (cpu.segs[CS].ar & ~AR_DB) | AR_L);
    cpu.modeChanged();
    cpu.flushTlb(true);
    assert.ok(cpu.mode64);
    const abs = (addr: number): number[] => [
      0x25,
      ...[0, 8, 16, 24].map((k) => (addr >>> k) & 0xff),
    ];
    for (const [op, addr] of [
      [[0xf3, 0x0f, 0xc7, 0x34], VMXON_REGION],
      [[0x66, 0x0f, 0xc7, 0x34], VMCS_REGION],
      [[0x0f, 0xc7, 0x34], VMCS_REGION],
    ] as const) {
      operand(mem, addr);
      assert.equal(exec(cpu, [...op, ...abs(OPERAND)]), undefined);
      assert.equal(cpu.flags.get() & (CF | ZF), 0);
    }
    const v = cpu.vmx.vmcs;
    const write64 = (enc: number, lo: number, hi: number): void => {
      cpu.regs[ECX] = enc;
      cpu.regsHi[ECX] = 0;
      cpu.regs[EAX] = lo;
      cpu.regsHi[EAX] = hi;
      assert.equal(exec(cpu, VMWRITE_ECX_EAX), undefined);
      assert.equal(cpu.flags.get() & (CF | ZF), 0);
    };
    write64(F.TscOffset, 0x55667788, 0x11223344);
    assert.deepEqual([v.read(F.TscOffset), v.readHi(F.TscOffset)], [0x55667788, 0x11223344]);
    write64(F.GuestRip, 0x12345678, -0x8000); // a canonical upper-half address
    assert.equal(v.readHi(F.GuestRip), 0xffff8000);
    write64(F.GuestEsSelector, 0x12345678, 0x1);
    assert.deepEqual([v.read(F.GuestEsSelector), v.readHi(F.GuestEsSelector)], [0x5678, 0]);
    // VMREAD rax, rcx of the high half: 32 bits, zero-extended.
    cpu.regs[ECX] = F.TscOffset + 1;
    cpu.regsHi[EAX] = -1;
    exec(cpu, VMREAD_EAX_ECX);
    assert.deepEqual([cpu.regs[EAX] >>> 0, cpu.regsHi[EAX]], [0x11223344, 0]);
    // VMREAD [mem], rcx: 8 bytes.
    cpu.regs[ECX] = F.GuestRip;
    assert.equal(exec(cpu, [0x0f, 0x78, 0x0c, ...abs(0x9100)]), undefined);
    assert.deepEqual([mem.read(0x9100, 4), mem.read(0x9104, 4)], [0x12345678, 0xffff8000]);
    // An encoding with bits 63:32 set is an unsupported component.
    cpu.regs[ECX] = F.GuestRip;
    cpu.regsHi[ECX] = 1;
    exec(cpu, VMREAD_EAX_ECX);
    assert.equal(cpu.flags.get() & (CF | ZF), ZF);
    assert.equal(v.read(F.VmInstructionError), 12);
  });
});
