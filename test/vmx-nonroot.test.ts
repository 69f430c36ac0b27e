/**
 * VMX non-root operation, instructions (src/cpu/vmx/nonroot.ts, exit-info.ts): the exit
 * predicates as pure functions of the controls (every bitmap boundary), the encoders of
 * qualifications and instruction information, and small hand-assembled guests that run
 * on the soft CPU in non-root operation and exit to a host HLT.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CR0_MP,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR4_PCE,
  CR4_TSD,
  CR4_VMXE,
  EAX,
  EBX,
  ECX,
  EDX,
  GP,
  UD,
} from "../src/cpu/arch.js";
import { decodeAt } from "./helpers/cpu.js";
import { Proc, Proc2 } from "../src/cpu/vmx/controls.js";
import { ExitReason } from "../src/cpu/vmx/exit-reasons.js";
import { F } from "../src/cpu/vmx/fields.js";
import {
  cr3LoadExits,
  crReadValue,
  crWriteExits,
  ioBitmapByte,
  ioExits,
  lmswExits,
  lmswResult,
  msrBitmapBit,
  msrExits,
} from "../src/cpu/vmx/nonroot.js";
import {
  CrAccessType,
  DescriptorTableIdentity,
  crQualification,
  displacementQualification,
  drQualification,
  gdtrIdtrInfo,
  interruptionInfo,
  ioQualification,
  ldtrTrInfo,
  memoryOperandInfo,
  taskSwitchQualification,
} from "../src/cpu/vmx/exit-info.js";
import {
  CODE,
  DATA,
  IO_BITMAP_A,
  IO_BITMAP_B,
  MSR_BITMAP,
  guest,
  inHost,
} from "./helpers/vmx-guest.js";

// ---------------------------------------------------------------- pure predicates

/** A bitmap as a set of ports whose bit is 1. */
const bits = (set: number[]) => (p: number) => (set.includes(p) ? 1 : 0);

test("I/O: without bitmaps, unconditional I/O exiting decides", () => {
  assert.equal(ioExits(0, 0x80, 1, bits([])), false);
  assert.equal(ioExits(Proc.UnconditionalIoExiting, 0x80, 1, bits([])), true);
});

test("I/O: with bitmaps, unconditional I/O exiting is ignored and each port's bit counts", () => {
  const both = Proc.UseIoBitmaps | Proc.UnconditionalIoExiting;
  assert.equal(ioExits(both, 0x80, 1, bits([])), false);
  assert.equal(ioExits(Proc.UseIoBitmaps, 0x80, 1, bits([0x80])), true);
  // A word or dword access exits when any of its ports is set.
  assert.equal(ioExits(Proc.UseIoBitmaps, 0x7e, 2, bits([0x80])), false);
  assert.equal(ioExits(Proc.UseIoBitmaps, 0x7e, 4, bits([0x80])), true);
  // The A/B boundary: 7FFF is the last bit of A, 8000 the first of B.
  assert.equal(ioExits(Proc.UseIoBitmaps, 0x7fff, 2, bits([0x8000])), true);
  assert.equal(ioExits(Proc.UseIoBitmaps, 0x7fff, 1, bits([0x8000])), false);
  assert.equal(ioExits(Proc.UseIoBitmaps, 0xffff, 1, bits([0xffff])), true);
  assert.equal(ioExits(Proc.UseIoBitmaps, 0xffff, 1, bits([])), false);
  // An access wrapping past FFFFH always exits, whatever the bitmaps say.
  assert.equal(ioExits(Proc.UseIoBitmaps, 0xffff, 2, bits([])), true);
  assert.equal(ioExits(Proc.UseIoBitmaps, 0xfffd, 4, bits([])), true);
  assert.equal(ioExits(Proc.UseIoBitmaps, 0xfffc, 4, bits([])), false);
});

test("I/O: bitmap byte offsets within A and B", () => {
  assert.equal(ioBitmapByte(0), 0);
  assert.equal(ioBitmapByte(0x7fff), 0xfff);
  assert.equal(ioBitmapByte(0x8000), 0);
  assert.equal(ioBitmapByte(0xffff), 0xfff);
});

test("MSR bitmap: the four 1-KiB quarters and the ranges around them", () => {
  assert.equal(msrBitmapBit(0, false), 0);
  assert.equal(msrBitmapBit(0x1fff, false), 0x1fff);
  assert.equal(msrBitmapBit(0x2000, false), -1);
  assert.equal(msrBitmapBit(0xbfffffff, false), -1);
  assert.equal(msrBitmapBit(0xc0000000, false), 1024 * 8);
  assert.equal(msrBitmapBit(0xc0001fff, false), 1024 * 8 + 0x1fff);
  assert.equal(msrBitmapBit(0xc0002000, false), -1);
  assert.equal(msrBitmapBit(0, true), 2048 * 8);
  assert.equal(msrBitmapBit(0x1fff, true), 2048 * 8 + 0x1fff);
  assert.equal(msrBitmapBit(0xc0000000 | 0, true), 3072 * 8); // index as an int32
  assert.equal(msrBitmapBit(0xc0001fff, true), 3072 * 8 + 0x1fff);
});

test("MSR: without MSR bitmaps every access exits; outside the ranges always", () => {
  const none = () => 0;
  assert.equal(msrExits(0, 0x10, false, none), true);
  assert.equal(msrExits(Proc.UseMsrBitmaps, 0x10, false, none), false);
  assert.equal(msrExits(Proc.UseMsrBitmaps, 0x2000, false, none), true);
  assert.equal(msrExits(Proc.UseMsrBitmaps, 0xc0002000, true, none), true);
  const only = (b: number) => (x: number) => (x === b ? 1 : 0);
  assert.equal(msrExits(Proc.UseMsrBitmaps, 0x1fff, false, only(0x1fff)), true);
  assert.equal(msrExits(Proc.UseMsrBitmaps, 0x1fff, true, only(0x1fff)), false);
  assert.equal(msrExits(Proc.UseMsrBitmaps, 0xc0000080, true, only(3072 * 8 + 0x80)), true);
});

test("CR3-target values: none matches with count 0; only the first `count` count", () => {
  const t: [number, number][] = [
    [0x1000, 0],
    [0x2000, 0],
    [0x3000, 1],
    [0x4000, 0],
  ];
  assert.equal(cr3LoadExits(0x1000, 0, 0, t), true);
  assert.equal(cr3LoadExits(0x1000, 0, 1, t), false);
  assert.equal(cr3LoadExits(0x2000, 0, 1, t), true);
  assert.equal(cr3LoadExits(0x3000, 0, 4, t), true); // high halves differ
  assert.equal(cr3LoadExits(0x3000, 1, 3, t), false);
  assert.equal(cr3LoadExits(0x4000, 0, 3, t), true);
  assert.equal(cr3LoadExits(0x4000, 0, 4, t), false);
});

test("CR0/CR4 guest/host masks and read shadows", () => {
  // Host owns TS and PG; the shadow says TS=1, PG=1.
  const mask = CR0_TS | CR0_PG;
  const shadow = CR0_TS | CR0_PG;
  assert.equal(crWriteExits(CR0_PE | CR0_TS | CR0_PG, mask, shadow), false);
  assert.equal(crWriteExits(CR0_PE | CR0_PG, mask, shadow), true); // TS differs
  assert.equal(crWriteExits(CR0_PE | CR0_TS | CR0_PG | CR0_MP, mask, shadow), false); // MP is guest's
  assert.equal(crReadValue(CR0_PE | CR0_PG, mask, CR0_TS), CR0_PE | CR0_TS);
  assert.equal(crReadValue(CR0_PE | CR0_MP, 0, 0xffffffff), CR0_PE | CR0_MP);
});

test("LMSW: exit rules and the bits it loads", () => {
  // PE host-owned, shadow PE clear: setting PE exits, leaving it clear does not.
  assert.equal(lmswExits(CR0_PE, CR0_PE, 0), true);
  assert.equal(lmswExits(0, CR0_PE, 0), false);
  // PE host-owned and set in the shadow: LMSW cannot clear it, so no exit.
  assert.equal(lmswExits(0, CR0_PE, CR0_PE), false);
  // MP/EM/TS host-owned: any difference from the shadow exits.
  assert.equal(lmswExits(CR0_TS, CR0_TS, 0), true);
  assert.equal(lmswExits(CR0_TS, CR0_TS, CR0_TS), false);
  assert.equal(lmswExits(0xe, 0, 0), false);
  // No exit: host-owned bits keep their value, PE is never cleared.
  assert.equal(lmswResult(CR0_PE | CR0_TS, 0, CR0_TS), CR0_PE | CR0_TS);
  assert.equal(lmswResult(CR0_PE | CR0_TS, 0, 0), CR0_PE);
  assert.equal(lmswResult(0, CR0_PE | CR0_MP, CR0_PE), CR0_MP);
  assert.equal(lmswResult(0x80000011, 0x2, 0) >>> 0, 0x80000013);
});

// ---------------------------------------------------------------- encoders

test("exit qualification formats", () => {
  assert.equal(crQualification(4, CrAccessType.MovToCr, 9), 0x904);
  assert.equal(crQualification(3, CrAccessType.MovFromCr, 3), 0x313);
  assert.equal(crQualification(0, CrAccessType.Clts), 0x20);
  assert.equal(crQualification(0, CrAccessType.Lmsw, 0, true, 0xbeef), 0xbeef0070);
  assert.equal(drQualification(7, false, 0), 7);
  assert.equal(drQualification(6, true, 12), 0xc16);
  assert.equal(ioQualification(0x3f8, 1, false, false, false, false), 0x03f80000);
  assert.equal(ioQualification(0x80, 4, true, false, false, true), 0x0080004b);
  assert.equal(ioQualification(0xffff, 2, true, true, true, false), 0xffff0039);
  assert.equal(taskSwitchQualification(0x28, 3), 0xc0000028);
  assert.equal(interruptionInfo(14, 3, true) >>> 0, 0x80000b0e);
  assert.equal(interruptionInfo(2, 2, false) >>> 0, 0x80000202);
});

test("instruction information: memory operands, registers, identities", () => {
  const { cpu } = guest([]);
  // LGDT [EBX+ESI*4+0x10] (0F 01 54 B3 10): base EBX, index ESI, scale 4, 32-bit, DS.
  let i = decodeAt(cpu, [0x0f, 0x01, 0x54, 0xb3, 0x10]);
  const m = memoryOperandInfo(i);
  assert.equal(m & 3, 2); // scale 4
  assert.equal((m >> 7) & 7, 1); // 32-bit address size
  assert.equal((m >> 15) & 7, 3); // DS
  assert.equal((m >> 18) & 0xf, 6); // ESI
  assert.equal((m >> 22) & 1, 0);
  assert.equal((m >> 23) & 0xf, 3); // EBX
  assert.equal((m >> 27) & 1, 0);
  const g = gdtrIdtrInfo(i, DescriptorTableIdentity.LgdtOrLldt);
  assert.equal((g >>> 28) & 3, 2);
  assert.equal((g >> 11) & 1, 1); // 32-bit operand size
  assert.deepEqual(displacementQualification(i, cpu.nextEip), [0x10, 0]);
  // SIDT [0x2000] with an SS override (36 0F 01 0D disp32): no base, no index.
  i = decodeAt(cpu, [0x36, 0x0f, 0x01, 0x0d, 0x00, 0x20, 0x00, 0x00]);
  const s = memoryOperandInfo(i);
  assert.equal((s >> 15) & 7, 2); // SS
  assert.equal((s >> 22) & 1, 1);
  assert.equal((s >> 27) & 1, 1);
  // SLDT EAX (0F 00 C0): register operand in bits 6:3 with bit 10 set.
  i = decodeAt(cpu, [0x0f, 0x00, 0xc0]);
  const l = ldtrTrInfo(i, DescriptorTableIdentity.SgdtOrSldt);
  assert.equal((l >> 10) & 1, 1);
  assert.equal((l >> 3) & 0xf, 0);
  assert.deepEqual(displacementQualification(i, 0), [0, 0]);
  // A negative displacement is sign-extended: LTR [EBP-8] (0F 00 5D F8).
  i = decodeAt(cpu, [0x0f, 0x00, 0x5d, 0xf8]);
  assert.deepEqual(displacementQualification(i, 0), [-8, -1]);
  assert.equal((ldtrTrInfo(i, DescriptorTableIdentity.LidtOrLtr) >>> 28) & 3, 3);
});

// ---------------------------------------------------------------- guests

const CPUID = [0x0f, 0xa2];
const HLT = [0xf4];
const movEax = (v: number) => [0xb8, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];
const movEcx = (v: number) => [0xb9, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];
const movEdx = (v: number) => [0xba, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];

test("CPUID exits unconditionally with its length, RIP on the instruction", () => {
  const g = guest([0x90, ...CPUID]);
  assert.equal(g.runToExit(), ExitReason.Cpuid);
  assert.ok(inHost(g.cpu));
  assert.equal(g.v.read(F.ExitInstructionLength), 2);
  assert.equal(g.v.read(F.GuestRip), CODE + 1);
});

test("HLT exits only with HLT exiting; otherwise the guest halts", () => {
  let g = guest(HLT, { proc: Proc.HltExiting });
  assert.equal(g.runToExit(), ExitReason.Hlt);
  assert.equal(g.v.read(F.ExitInstructionLength), 1);
  g = guest(HLT);
  const r = g.cpu.run(100);
  assert.equal(r.kind, "halt");
  assert.ok(g.cpu.vmx.nonRoot);
});

test("HLT at CPL 3 is #GP before any exit: the exception bitmap sees it", () => {
  const g = guest(HLT, { proc: Proc.HltExiting, exceptionBitmap: 1 << GP });
  g.cpu.cpl = 3;
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000b0d);
  assert.equal(g.v.read(F.ExitInterruptionErrorCode), 0);
});

test("I/O: IN with an immediate port, through bitmap A", () => {
  const g = guest([0xe4, 0x80], { proc: Proc.UseIoBitmaps });
  g.mem.ram[IO_BITMAP_A + 0x10] = 1; // port 0x80
  assert.equal(g.runToExit(), ExitReason.IoInstruction);
  assert.equal(g.v.read(F.ExitQualification) >>> 0, 0x00800048);
  assert.equal(g.v.read(F.ExitInstructionLength), 2);
});

test("I/O: OUT DX to a port in bitmap B; a clear bit lets it through", () => {
  let g = guest([...movEdx(0x8001), 0x66, 0xef, 0xf4], { proc: Proc.UseIoBitmaps });
  g.mem.ram[IO_BITMAP_B] = 0x2; // port 0x8001
  assert.equal(g.runToExit(), ExitReason.IoInstruction);
  assert.equal(g.v.read(F.ExitQualification) >>> 0, 0x80010001); // 2 bytes, OUT, DX
  g = guest([...movEdx(0x8002), 0xee, 0xf4], { proc: Proc.UseIoBitmaps });
  g.mem.ram[IO_BITMAP_B] = 0x2;
  assert.equal(g.cpu.run(100).kind, "halt");
  assert.ok(g.cpu.vmx.nonRoot); // the guest's own HLT
});

test("I/O: REP OUTSB reports string, REP, the linear address and the segment", () => {
  const code = [0xbe, 0x34, 0x12, 0, 0, ...movEdx(0x3f8), ...movEcx(4), 0x26, 0xf3, 0x6e];
  const g = guest(code, { proc: Proc.UnconditionalIoExiting });
  assert.equal(g.runToExit(), ExitReason.IoInstruction);
  assert.equal(g.v.read(F.ExitQualification) >>> 0, 0x03f80030);
  assert.equal(g.v.read(F.GuestLinearAddress), 0x1234);
  assert.equal(g.v.read(F.ExitInstructionLength), 3);
  const info = g.v.read(F.ExitInstructionInfo);
  assert.equal((info >> 7) & 7, 1); // 32-bit addresses
  assert.equal((info >> 15) & 7, 0); // ES override
});

test("I/O: the TSS permission check comes before the exit (#GP at CPL 3, IOPL 0)", () => {
  const g = guest([0xe4, 0x80], {
    proc: Proc.UnconditionalIoExiting,
    exceptionBitmap: 1 << GP,
  });
  g.cpu.cpl = 3;
  // A TSS whose I/O map base lies beyond its limit: every port is denied.
  g.cpu.tr.set(0x18, 0, 0x67, g.cpu.tr.ar);
  g.mem.ram[0x67] = 0x10;
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) & 0xff, GP);
});

test("RDMSR/WRMSR: the MSR bitmap decides; outside its ranges they exit", () => {
  let g = guest([...movEcx(0x174), 0x0f, 0x32, 0xf4], { proc: Proc.UseMsrBitmaps });
  assert.equal(g.cpu.run(100).kind, "halt"); // read bit clear: RDMSR runs in the guest
  assert.ok(g.cpu.vmx.nonRoot);
  g = guest([...movEcx(0x174), 0x0f, 0x30], { proc: Proc.UseMsrBitmaps });
  g.mem.ram[MSR_BITMAP + 2048 + (0x174 >> 3)] = 1 << (0x174 & 7);
  assert.equal(g.runToExit(), ExitReason.Wrmsr);
  g = guest([...movEcx(0x2000), 0x0f, 0x32], { proc: Proc.UseMsrBitmaps });
  assert.equal(g.runToExit(), ExitReason.Rdmsr);
  g = guest([...movEcx(0xc0000080), 0x0f, 0x32]);
  assert.equal(g.runToExit(), ExitReason.Rdmsr); // no bitmaps: always
});

test("RDTSC: TSC offsetting adds the offset; RDTSC exiting exits", () => {
  let g = guest([0x0f, 0x31, 0xf4], {
    proc: Proc.UseTscOffsetting,
    fields: [[F.TscOffset, 0x00000010, 0x00000100]],
  });
  g.cpu.run(100);
  assert.equal(g.cpu.regs[EDX], 0x100);
  assert.ok(g.cpu.regs[EAX] >>> 0 >= 0x10 && g.cpu.regs[EAX] >>> 0 < 0x1000);
  g = guest([0x0f, 0x31], { proc: Proc.RdtscExiting | Proc.UseTscOffsetting });
  assert.equal(g.runToExit(), ExitReason.Rdtsc);
  // CR4.TSD at CPL 3: #GP comes first.
  g = guest([0x0f, 0x31], { proc: Proc.RdtscExiting, exceptionBitmap: 1 << GP });
  g.cpu.cr4 |= CR4_TSD;
  g.cpu.cpl = 3;
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
});

test("RDTSC: a negative offset wraps modulo 2^64", () => {
  const g = guest([0x0f, 0x31, 0xf4], {
    proc: Proc.UseTscOffsetting,
    fields: [[F.TscOffset, -0x100000, -1]],
  });
  g.cpu.run(100);
  assert.equal(g.cpu.regs[EDX], -1);
});

test("RDTSCP: #UD unless enable RDTSCP; then its own exit reason", () => {
  let g = guest([0x0f, 0x01, 0xf9], { proc: Proc.RdtscExiting, exceptionBitmap: 1 << UD });
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) & 0xff, UD);
  g = guest([0x0f, 0x01, 0xf9], { proc: Proc.RdtscExiting, proc2: Proc2.EnableRdtscp });
  assert.equal(g.runToExit(), ExitReason.Rdtscp);
  assert.equal(g.v.read(F.ExitInstructionLength), 3);
});

test("RDPMC: #GP at CPL 3 without CR4.PCE before the exit; with PCE it exits", () => {
  let g = guest([0x0f, 0x33], { proc: Proc.RdpmcExiting, exceptionBitmap: 1 << GP });
  g.cpu.cpl = 3;
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  g = guest([0x0f, 0x33], { proc: Proc.RdpmcExiting });
  g.cpu.cpl = 3;
  g.cpu.cr4 |= CR4_PCE;
  assert.equal(g.runToExit(), ExitReason.Rdpmc);
});

test("MOV to CR0: a host-owned bit differing from the shadow exits, with the register", () => {
  const g = guest([...movEbx(0x11), 0x0f, 0x22, 0xc3], {
    fields: [
      [F.Cr0GuestHostMask, CR0_TS],
      [F.Cr0ReadShadow, CR0_TS],
    ],
  });
  assert.equal(g.runToExit(), ExitReason.CrAccess);
  assert.equal(g.v.read(F.ExitQualification), crQualification(0, CrAccessType.MovToCr, EBX));
});

test("MOV to CR0 without exit keeps host-owned bits; MOV from CR0 reads the shadow", () => {
  // Unrestricted guest lets this guest run with paging off (VM entry would also want EPT,
  // which these tests do not set up: its checks are entry-checks.ts's).
  const g = guest([...movEax(0x33), 0x0f, 0x22, 0xc0, 0x0f, 0x20, 0xc1, 0xf4], {
    proc2: Proc2.UnrestrictedGuest,
    fields: [
      [F.Cr0GuestHostMask, CR0_TS],
      [F.Cr0ReadShadow, 0],
    ],
  });
  g.cpu.cr0 |= CR0_TS;
  g.cpu.run(100);
  assert.ok(g.cpu.vmx.nonRoot);
  assert.equal(g.cpu.cr0 & CR0_TS, CR0_TS); // host-owned: unchanged though EAX has TS clear
  assert.equal(g.cpu.cr0 & CR0_MP, CR0_MP); // guest-owned: loaded
  assert.equal(g.cpu.regs[ECX] & CR0_TS, 0); // MOV ECX, CR0 sees the shadow
  assert.equal(g.cpu.regs[ECX] & CR0_MP, CR0_MP);
});

test("MOV to CR4: host-owned VMXE read as the shadow, writes that keep it do not exit", () => {
  const g = guest([0x0f, 0x20, 0xe0, 0x0f, 0x22, 0xe0, 0xf4], {
    fields: [
      [F.Cr4GuestHostMask, CR4_VMXE],
      [F.Cr4ReadShadow, 0],
    ],
  });
  g.cpu.run(100);
  assert.ok(g.cpu.vmx.nonRoot);
  assert.equal(g.cpu.regs[EAX] & CR4_VMXE, 0);
  assert.equal(g.cpu.cr4 & CR4_VMXE, CR4_VMXE);
});

test("MOV to CR3: CR3-target values avoid the exit; MOV from CR3 with store exiting", () => {
  let g = guest([...movEax(0x4000), 0x0f, 0x22, 0xd8, 0xf4], {
    proc: Proc.Cr3LoadExiting,
    fields: [
      [F.Cr3TargetCount, 2],
      [F.Cr3TargetValue1, 0x4000],
    ],
  });
  g.cpu.run(100);
  assert.ok(g.cpu.vmx.nonRoot);
  assert.equal(g.cpu.cr3, 0x4000);
  g = guest([...movEax(0x5000), 0x0f, 0x22, 0xd8], {
    proc: Proc.Cr3LoadExiting,
    fields: [
      [F.Cr3TargetCount, 2],
      [F.Cr3TargetValue1, 0x4000],
    ],
  });
  assert.equal(g.runToExit(), ExitReason.CrAccess);
  assert.equal(g.v.read(F.ExitQualification), crQualification(3, CrAccessType.MovToCr, EAX));
  g = guest([0x0f, 0x20, 0xda], { proc: Proc.Cr3StoreExiting });
  assert.equal(g.runToExit(), ExitReason.CrAccess);
  assert.equal(g.v.read(F.ExitQualification), crQualification(3, CrAccessType.MovFromCr, EDX));
});

test("CLTS: exits when TS is host-owned and set in the shadow; no-op when clear there", () => {
  let g = guest([0x0f, 0x06], {
    fields: [
      [F.Cr0GuestHostMask, CR0_TS],
      [F.Cr0ReadShadow, CR0_TS],
    ],
  });
  assert.equal(g.runToExit(), ExitReason.CrAccess);
  assert.equal(g.v.read(F.ExitQualification), 0x20);
  g = guest([0x0f, 0x06, 0xf4], { fields: [[F.Cr0GuestHostMask, CR0_TS]] });
  g.cpu.cr0 |= CR0_TS;
  g.cpu.run(100);
  assert.ok(g.cpu.vmx.nonRoot);
  assert.equal(g.cpu.cr0 & CR0_TS, CR0_TS);
});

test("LMSW from memory: qualification with the source data and the linear address", () => {
  const g = guest([0x0f, 0x01, 0x35, 0x00, 0x90, 0x00, 0x00], {
    fields: [[F.Cr0GuestHostMask, CR0_TS]],
  });
  g.mem.ram[DATA] = 0x09; // PE | TS
  assert.equal(g.runToExit(), ExitReason.CrAccess);
  assert.equal(g.v.read(F.ExitQualification) >>> 0, 0x00090070);
  assert.equal(g.v.read(F.GuestLinearAddress), DATA);
});

test("MOV DR: MOV-DR exiting, after the #UD for DR4 with CR4.DE", () => {
  let g = guest([0x0f, 0x21, 0xf0], { proc: Proc.MovDrExiting });
  assert.equal(g.runToExit(), ExitReason.DrAccess);
  assert.equal(g.v.read(F.ExitQualification), drQualification(6, true, EAX));
  g = guest([0x0f, 0x23, 0xe0], { proc: Proc.MovDrExiting, exceptionBitmap: 1 << UD });
  g.cpu.cr4 |= 1 << 3; // CR4.DE: DR4 is reserved
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
});

test("descriptor-table exiting: SGDT/LLDT with displacement and instruction information", () => {
  let g = guest([0x0f, 0x01, 0x43, 0x10], { proc2: Proc2.DescriptorTableExiting });
  assert.equal(g.runToExit(), ExitReason.GdtrIdtrAccess);
  assert.equal(g.v.read(F.ExitQualification), 0x10);
  assert.equal((g.v.read(F.ExitInstructionInfo) >>> 28) & 3, DescriptorTableIdentity.SgdtOrSldt);
  g = guest([0x0f, 0x00, 0xd1], { proc2: Proc2.DescriptorTableExiting });
  assert.equal(g.runToExit(), ExitReason.LdtrTrAccess);
  const info = g.v.read(F.ExitInstructionInfo);
  assert.equal((info >>> 28) & 3, DescriptorTableIdentity.LgdtOrLldt);
  assert.equal((info >> 10) & 1, 1);
  assert.equal((info >> 3) & 0xf, ECX);
  // Without the control, LGDT runs in the guest.
  g = guest([0x0f, 0x01, 0x15, 0x00, 0x90, 0x00, 0x00, 0xf4]);
  g.mem.ram.set([0x17, 0x00, 0x00, 0x20, 0x00, 0x00], DATA);
  g.cpu.run(100);
  assert.equal(g.cpu.gdtrBase, 0x2000);
});

test("INVLPG exiting reports the linear address; INVD and WBINVD", () => {
  let g = guest([...movEax(0x12345678), 0x0f, 0x01, 0x38], { proc: Proc.InvlpgExiting });
  assert.equal(g.runToExit(), ExitReason.Invlpg);
  assert.equal(g.v.read(F.ExitQualification), 0x12345678);
  g = guest([0x0f, 0x08]);
  assert.equal(g.runToExit(), ExitReason.Invd);
  g = guest([0x0f, 0x09, 0xf4]);
  g.cpu.run(100);
  assert.ok(g.cpu.vmx.nonRoot);
  g = guest([0x0f, 0x09], { proc2: Proc2.WbinvdExiting });
  assert.equal(g.runToExit(), ExitReason.Wbinvd);
});

test("PAUSE exiting", () => {
  const g = guest([0xf3, 0x90], { proc: Proc.PauseExiting });
  assert.equal(g.runToExit(), ExitReason.Pause);
  assert.equal(g.v.read(F.ExitInstructionLength), 2);
});

test("INVPCID: #UD unless enabled; with INVLPG exiting it exits", () => {
  const code = [0x66, 0x0f, 0x38, 0x82, 0x03];
  let g = guest(code, { exceptionBitmap: 1 << UD });
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) & 0xff, UD);
  g = guest(code, { proc: Proc.InvlpgExiting, proc2: Proc2.EnableInvpcid });
  assert.equal(g.runToExit(), ExitReason.Invpcid);
  assert.equal((g.v.read(F.ExitInstructionInfo) >>> 28) & 0xf, EAX);
});

test("a fault-like exit saves the blocking by STI as before the instruction", () => {
  const g = guest([0xfb, ...CPUID]); // STI; CPUID
  g.cpu.flags.word &= ~(1 << 9);
  assert.equal(g.runToExit(), ExitReason.Cpuid);
  assert.equal(g.v.read(F.GuestInterruptibilityState) & 1, 1);
});

const movEbx = (v: number) => [0xbb, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];

test("VMX instructions exit with their own reasons, operands in the instruction information", () => {
  let g = guest([0x0f, 0x01, 0xc1]); // VMCALL
  g.cpu.cpl = 3; // no CPL check comes first
  assert.equal(g.runToExit(), ExitReason.Vmcall);
  assert.equal(g.v.read(F.ExitInstructionLength), 3);
  g = guest([0x0f, 0x78, 0xc8]); // VMREAD EAX, ECX
  assert.equal(g.runToExit(), ExitReason.Vmread);
  let info = g.v.read(F.ExitInstructionInfo);
  assert.equal((info >> 10) & 1, 1); // register operand
  assert.equal((info >> 3) & 0xf, EAX);
  assert.equal((info >>> 28) & 0xf, ECX);
  g = guest([0x0f, 0xc7, 0x35, 0x00, 0x90, 0x00, 0x00]); // VMPTRLD [0x9000]
  assert.equal(g.runToExit(), ExitReason.Vmptrld);
  assert.equal(g.v.read(F.ExitQualification), 0x9000);
  info = g.v.read(F.ExitInstructionInfo);
  assert.equal((info >> 22) & 1, 1); // no index
  assert.equal((info >> 27) & 1, 1); // no base
  g = guest([0x66, 0x0f, 0x38, 0x80, 0x48, 0x08]); // INVEPT ECX, [EAX+8]
  assert.equal(g.runToExit(), ExitReason.Invept);
  assert.equal(g.v.read(F.ExitQualification), 8);
  info = g.v.read(F.ExitInstructionInfo);
  assert.equal((info >> 23) & 0xf, EAX);
  assert.equal((info >>> 28) & 0xf, ECX);
  g = guest([0x0f, 0x01, 0xc4]); // VMXOFF
  assert.equal(g.runToExit(), ExitReason.Vmxoff);
  g = guest([0x0f, 0x01, 0xc2]); // VMLAUNCH
  assert.equal(g.runToExit(), ExitReason.Vmlaunch);
});

test("RDMSR of the TSC sees the TSC offset", () => {
  const g = guest([...movEcx(0x10), 0x0f, 0x32, 0xf4], {
    proc: Proc.UseTscOffsetting | Proc.UseMsrBitmaps,
    fields: [[F.TscOffset, 0, 0x7000]],
  });
  g.cpu.run(100);
  assert.ok(g.cpu.vmx.nonRoot);
  assert.equal(g.cpu.regs[EDX], 0x7000);
});
