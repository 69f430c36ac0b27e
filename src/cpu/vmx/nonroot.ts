/**
 * Instructions in VMX non-root operation (SDM Vol. 3C, chapter 26, "VMX Non-Root
 * Operation"): for every opcode-table row with an `exit` annotation, one predicate says
 * whether it exits under the current VM-execution controls (26.1.2 unconditionally,
 * 26.1.3 conditionally), and the exit carries its qualification, instruction length and
 * instruction information (27.2.1, 27.2.5). Where non-root operation changes what the
 * instruction does without exiting (26.3: CR0/CR4 guest/host masks and read shadows,
 * CLTS, LMSW, RDTSC with TSC offsetting, RDTSCP and INVPCID enables) the instruction is
 * carried out here.
 *
 * Priority (26.1.1): invalid-opcode exceptions, faults based on privilege level and the
 * TSS I/O-permission check come before the VM exit; so do faults fetching an operand the
 * exit depends on (LMSW). The exit comes before every other fault of the instruction.
 *
 * The CPU's non-root run loop calls nonRootInstruction for annotated rows only, so other
 * instructions and root operation pay nothing (cpu.ts).
 */
import {
  CR0_PE,
  CR0_TS,
  CR4_DE,
  CR4_OSXSAVE,
  CR4_PCE,
  CR4_TSD,
  CR4_UMIP,
  CS,
  EAX,
  ECX,
  EDX,
  EFER_LMA,
  ES,
  FS,
  GP,
  UD,
  AR_L,
} from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { fault } from "../fault.js";
import { VM } from "../flags.js";
import { IA32_TIME_STAMP_COUNTER, IA32_TSC_AUX } from "../msr.js";
import { checkIoPermission } from "../exec/io.js";
import { memAddr, readE, setReg } from "../exec/operands.js";
import { writeCr0, writeCr4 } from "../exec/system.js";
import { ExitReason } from "./exit-reasons.js";
import { Proc, Proc2 } from "./controls.js";
import { F } from "./fields.js";
import type { Vmcs } from "./vmcs.js";
import {
  CrAccessType,
  DescriptorTableIdentity,
  crQualification,
  displacementQualification,
  drQualification,
  foldedToHalves,
  gdtrIdtrInfo,
  invalidationInfo,
  ioQualification,
  ldtrTrInfo,
  stringIoInfo,
  vmcsPointerInfo,
  vmreadVmwriteInfo,
} from "./exit-info.js";
import { vmExit } from "./exit.js";

// ---------------------------------------------------------------- the exit

/**
 * A VM exit caused by instruction `i` (fault-like: the guest RIP stays on it). The
 * qualification comes as 64-bit halves; `linear` is a guest-linear address as the CPU
 * keeps it (folded 48 bits in IA-32e mode). Blocking by STI or MOV SS is saved as it
 * was before the instruction (SDM 28.3.4).
 */
export function instructionExit(
  c: Cpu,
  i: Instr,
  reason: ExitReason,
  qualLo = 0,
  qualHi = 0,
  info?: number,
  linear?: number,
): never {
  c.blocking = c.vmx.events.blockingBefore;
  return vmExit(c, reason, qualHi * 0x100000000 + (qualLo >>> 0), {
    instructionLength: i.len,
    instructionInfo: info,
    guestLinear: linear,
  });
}

// ---------------------------------------------------------------- controls

/** The secondary controls in effect: 0 unless "activate secondary controls" (25.6.2). */
export function secondaryControls(v: Vmcs): number {
  return v.read(F.ProcBasedControls) & Proc.ActivateSecondaryControls
    ? v.read(F.ProcBasedControls2)
    : 0;
}

// ---------------------------------------------------------------- pure predicates

/**
 * Whether an I/O access of `size` ports from `port` exits (SDM 26.1.3): with "use I/O
 * bitmaps" the bitmaps decide ("unconditional I/O exiting" is then ignored), a bit per
 * port, A for 0000H-7FFFH and B for 8000H-FFFFH, any set bit exits, and an access that
 * wraps past FFFFH always exits; without them "unconditional I/O exiting" decides.
 * `bit(port)` reads the port's bit (0 or 1) from the bitmap that covers it.
 */
export function ioExits(
  procControls: number,
  port: number,
  size: number,
  bit: (port: number) => number,
): boolean {
  if (!(procControls & Proc.UseIoBitmaps))
    return (procControls & Proc.UnconditionalIoExiting) !== 0;
  for (let k = 0; k < size; k++) {
    const p = port + k;
    if (p > 0xffff) return true;
    if (bit(p)) return true;
  }
  return false;
}

/** Bytes from the start of the I/O-bitmap page holding `port`'s bit (bitmap B for 8000H+). */
export function ioBitmapByte(port: number): number {
  return (port & 0x7fff) >> 3;
}

/**
 * The bit number, in the 4-KiB MSR-bitmap page, of RDMSR (write = false) or WRMSR of MSR
 * `index` (SDM 25.6.9): read bitmap for low MSRs (00000000H-00001FFFH) at byte 0, for
 * high MSRs (C0000000H-C0001FFFH) at byte 1024, the write bitmaps at 2048 and 3072.
 * -1 for an MSR outside both ranges: its access always exits (26.1.3).
 */
export function msrBitmapBit(index: number, write: boolean): number {
  const msr = index >>> 0;
  let base: number;
  let offset: number;
  if (msr <= 0x1fff) {
    base = 0;
    offset = msr;
  } else if (msr >= 0xc0000000 && msr <= 0xc0001fff) {
    base = 1024;
    offset = msr - 0xc0000000;
  } else return -1;
  return (base + (write ? 2048 : 0)) * 8 + offset;
}

/** Whether RDMSR/WRMSR exits: always without "use MSR bitmaps", else per the bitmap bit. */
export function msrExits(
  procControls: number,
  index: number,
  write: boolean,
  bit: (bitNumber: number) => number,
): boolean {
  if (!(procControls & Proc.UseMsrBitmaps)) return true;
  const b = msrBitmapBit(index, write);
  return b < 0 || bit(b) !== 0;
}

/**
 * MOV to CR3 with "CR3-load exiting" (SDM 26.1.3): exits unless the value equals one of
 * the first `count` CR3-target values (so always when the count is 0). Values as halves.
 */
export function cr3LoadExits(
  lo: number,
  hi: number,
  count: number,
  targets: readonly (readonly [number, number])[],
): boolean {
  for (let k = 0; k < Math.min(count, targets.length); k++) {
    if (targets[k][0] >>> 0 === lo >>> 0 && targets[k][1] >>> 0 === hi >>> 0) return false;
  }
  return true;
}

/**
 * MOV to CR0 or CR4 exits when a bit owned by the host (set in the guest/host mask)
 * differs between the source and the read shadow (SDM 26.1.3). One 32-bit half.
 */
export function crWriteExits(value: number, mask: number, shadow: number): boolean {
  return ((value ^ shadow) & mask) !== 0;
}

/** What a guest reads from CR0 or CR4: host-owned bits from the read shadow (26.3). */
export function crReadValue(actual: number, mask: number, shadow: number): number {
  return (actual & ~mask) | (shadow & mask) | 0;
}

/**
 * LMSW exits when CR0.PE is host-owned, the source sets PE and the shadow has it clear,
 * or when any of MP, EM, TS is host-owned and differs from the shadow (SDM 26.1.3).
 */
export function lmswExits(source: number, mask: number, shadow: number): boolean {
  if (mask & CR0_PE && source & CR0_PE && !(shadow & CR0_PE)) return true;
  return ((source ^ shadow) & mask & 0xe) !== 0;
}

/**
 * The CR0 an LMSW that does not exit leaves: it loads the guest-owned bits among PE, MP,
 * EM and TS (PE can be set but not cleared) and keeps the host-owned ones (SDM 26.3).
 */
export function lmswResult(cr0: number, source: number, mask: number): number {
  const loaded = (cr0 & ~0xe) | (source & 0xe) | (source & CR0_PE);
  const owned = mask & 0xf;
  return (cr0 & owned) | (loaded & ~owned) | 0;
}

// ---------------------------------------------------------------- dispatch

/**
 * An annotated instruction in non-root operation: raises what must come before its VM
 * exit, then exits (throws through vmExit), or carries out its non-root behaviour and
 * returns true, or returns false for the normal handler to run.
 */
export function nonRootInstruction(c: Cpu, i: Instr): boolean {
  const v = c.vmx.vmcs;
  const reason = i.entry.exit as ExitReason;
  switch (reason) {
    case ExitReason.Cpuid:
    case ExitReason.Getsec:
      return instructionExit(c, i, reason);
    case ExitReason.Xsetbv:
      // #UD without CR4.OSXSAVE and #GP at CPL > 0 come first (SDM Vol. 2, XSETBV).
      if (!(c.cr4 & CR4_OSXSAVE)) fault(UD);
      requireCpl0(c);
      return instructionExit(c, i, reason);
    case ExitReason.Invd:
      requireCpl0(c);
      return instructionExit(c, i, reason);
    case ExitReason.Hlt:
      requireCpl0(c);
      return v.read(F.ProcBasedControls) & Proc.HltExiting ? instructionExit(c, i, reason) : false;
    case ExitReason.Invlpg:
      return invlpg(c, i, v);
    case ExitReason.Rdpmc:
      if (c.cpl > 0 && !(c.cr4 & CR4_PCE)) fault(GP, 0);
      return v.read(F.ProcBasedControls) & Proc.RdpmcExiting
        ? instructionExit(c, i, reason)
        : false;
    case ExitReason.Rdtsc:
    case ExitReason.Rdtscp:
      return rdtsc(c, i, v, reason === ExitReason.Rdtscp);
    case ExitReason.Pause:
      return v.read(F.ProcBasedControls) & Proc.PauseExiting
        ? instructionExit(c, i, reason)
        : false;
    case ExitReason.Wbinvd:
      requireCpl0(c);
      return secondaryControls(v) & Proc2.WbinvdExiting ? instructionExit(c, i, reason) : false;
    case ExitReason.CrAccess:
      return crAccess(c, i, v);
    case ExitReason.DrAccess:
      return drAccess(c, i, v);
    case ExitReason.IoInstruction:
      return io(c, i, v);
    case ExitReason.Rdmsr:
    case ExitReason.Wrmsr:
      return msr(c, i, v, reason === ExitReason.Wrmsr);
    case ExitReason.GdtrIdtrAccess:
    case ExitReason.LdtrTrAccess:
      return descriptorTable(c, i, v, reason);
    case ExitReason.Invpcid:
      return invpcid(c, i, v);
    case ExitReason.Vmcall:
      return instructionExit(c, i, reason);
    case ExitReason.Vmclear:
    case ExitReason.Vmlaunch:
    case ExitReason.Vmptrld:
    case ExitReason.Vmptrst:
    case ExitReason.Vmread:
    case ExitReason.Vmresume:
    case ExitReason.Vmwrite:
    case ExitReason.Vmxoff:
    case ExitReason.Vmxon:
    case ExitReason.Invept:
    case ExitReason.Invvpid:
      return vmxInstruction(c, i, reason);
    default:
      // Rows annotated with exits this implementation does not produce (none today).
      return false;
  }
}

function requireCpl0(c: Cpu): void {
  if (c.cpl !== 0) fault(GP, 0);
}

/** INVLPG: CPL 0, then "INVLPG exiting" with the linear address as qualification. */
function invlpg(c: Cpu, i: Instr, v: Vmcs): boolean {
  requireCpl0(c);
  if (!(v.read(F.ProcBasedControls) & Proc.InvlpgExiting)) return false;
  let lin: number;
  if (c.mode64) {
    try {
      lin = memAddr(c, i, 1, false);
    } catch {
      return false; // a non-canonical operand makes INVLPG a no-op, which does not exit
    }
  } else lin = (c.segs[i.seg].base + ea32(c, i)) >>> 0;
  const [lo, hi] = foldedToHalves(lin);
  return instructionExit(c, i, ExitReason.Invlpg, lo, hi);
}

/** The offset of a memory operand outside 64-bit mode, without segment checks. */
function ea32(c: Cpu, i: Instr): number {
  let a = i.disp;
  if (i.base >= 0) a += c.regs[i.base];
  if (i.index >= 0) a += c.regs[i.index] << i.scale;
  return i.asize === 32 ? a | 0 : a & 0xffff;
}

/**
 * RDTSC and RDTSCP (SDM 26.3): RDTSCP is #UD unless "enable RDTSCP"; CR4.TSD at CPL > 0
 * is #GP before the exit; "RDTSC exiting" exits (RDTSCP with its own reason); otherwise
 * "use TSC offsetting" adds the TSC offset.
 */
function rdtsc(c: Cpu, i: Instr, v: Vmcs, rdtscp: boolean): boolean {
  if (rdtscp && !(secondaryControls(v) & Proc2.EnableRdtscp)) fault(UD);
  if (c.cr4 & CR4_TSD && c.cpl !== 0) fault(GP, 0);
  const proc = v.read(F.ProcBasedControls);
  if (proc & Proc.RdtscExiting) {
    return instructionExit(c, i, rdtscp ? ExitReason.Rdtscp : ExitReason.Rdtsc);
  }
  if (!(proc & Proc.UseTscOffsetting)) return false;
  const [lo, hi] = guestTsc(c, v);
  c.regs[EAX] = lo;
  c.regsHi[EAX] = 0;
  c.regs[EDX] = hi;
  c.regsHi[EDX] = 0;
  if (rdtscp) setReg(c, ECX, 32, c.msr.read(IA32_TSC_AUX)[0]);
  return true;
}

/** The TSC as the guest reads it: the TSC plus the 64-bit TSC offset, modulo 2^64. */
export function guestTsc(c: Cpu, v: Vmcs): [number, number] {
  const t = c.msr.tsc();
  const tLo = t % 0x100000000;
  const sumLo = tLo + (v.read(F.TscOffset) >>> 0);
  const carry = sumLo >= 0x100000000 ? 1 : 0;
  const hi = (Math.floor(t / 0x100000000) + v.readHi(F.TscOffset) + carry) | 0;
  return [sumLo | 0, hi];
}

// ---------------------------------------------------------------- control registers

/** MOV to/from CRn (0F 22 / 0F 20), CLTS (0F 06), LMSW (0F 01 /6). */
function crAccess(c: Cpu, i: Instr, v: Vmcs): boolean {
  if (i.opcode === 0x106) return clts(c, i, v);
  if (i.opcode === 0x101) return lmsw(c, i, v);
  const toCr = i.opcode === 0x122;
  // The checks of MOV CR that come before the exit: V86 mode, the register, CPL.
  if (c.v86) fault(GP, 0);
  const n = i.reg;
  if (!(n === 0 || n === 2 || n === 3 || n === 4 || (n === 8 && c.mode64))) fault(UD);
  requireCpl0(c);
  const proc = v.read(F.ProcBasedControls);
  const qual = (): number =>
    crQualification(n, toCr ? CrAccessType.MovToCr : CrAccessType.MovFromCr, i.rm);
  const lo = c.regs[i.rm];
  const hi = c.mode64 ? c.regsHi[i.rm] : 0;
  switch (n) {
    case 0:
    case 4: {
      const mask = v.read(n === 0 ? F.Cr0GuestHostMask : F.Cr4GuestHostMask);
      const maskHi = v.readHi(n === 0 ? F.Cr0GuestHostMask : F.Cr4GuestHostMask);
      const shadow = v.read(n === 0 ? F.Cr0ReadShadow : F.Cr4ReadShadow);
      const shadowHi = v.readHi(n === 0 ? F.Cr0ReadShadow : F.Cr4ReadShadow);
      const actual = n === 0 ? c.cr0 : c.cr4;
      if (!toCr) {
        const width = c.mode64 ? 64 : 32;
        setReg(c, i.rm, width, crReadValue(actual, mask, shadow), shadowHi & maskHi);
        return true;
      }
      if (crWriteExits(lo, mask, shadow) || crWriteExits(hi, maskHi, shadowHi)) {
        return instructionExit(c, i, ExitReason.CrAccess, qual());
      }
      // Host-owned bits keep their value; bits 63:32 are reserved unless host-owned.
      if (hi & ~maskHi) fault(GP, 0);
      const merged = (actual & mask) | (lo & ~mask);
      if (n === 0) writeCr0(c, merged);
      else writeCr4(c, merged);
      return true;
    }
    case 3:
      if (toCr) {
        if (!(proc & Proc.Cr3LoadExiting)) return false;
        const targets: [number, number][] = [
          F.Cr3TargetValue0,
          F.Cr3TargetValue1,
          F.Cr3TargetValue2,
          F.Cr3TargetValue3,
        ].map((f) => [v.read(f), v.readHi(f)]);
        if (!cr3LoadExits(lo, hi, v.read(F.Cr3TargetCount), targets)) return false;
        return instructionExit(c, i, ExitReason.CrAccess, qual());
      }
      return proc & Proc.Cr3StoreExiting
        ? instructionExit(c, i, ExitReason.CrAccess, qual())
        : false;
    case 8:
      if (proc & (toCr ? Proc.Cr8LoadExiting : Proc.Cr8StoreExiting)) {
        return instructionExit(c, i, ExitReason.CrAccess, qual());
      }
      return false;
    default:
      return false; // CR2 is never intercepted
  }
}

/**
 * CLTS (SDM 26.1.3 and 26.3): exits when CR0.TS is host-owned and set in the read
 * shadow; leaves CR0.TS alone when host-owned and clear in the shadow.
 */
function clts(c: Cpu, i: Instr, v: Vmcs): boolean {
  requireCpl0(c);
  const mask = v.read(F.Cr0GuestHostMask);
  if (!(mask & CR0_TS)) return false;
  if (v.read(F.Cr0ReadShadow) & CR0_TS) {
    return instructionExit(c, i, ExitReason.CrAccess, crQualification(0, CrAccessType.Clts));
  }
  return true;
}

/** LMSW (SDM 26.1.3 and 26.3): the operand is read first (its faults come first). */
function lmsw(c: Cpu, i: Instr, v: Vmcs): boolean {
  requireCpl0(c);
  const memory = i.mod !== 3;
  let linear = 0;
  let source: number;
  if (memory) {
    linear = memAddr(c, i, 2, false);
    source = c.rd(linear, 2);
  } else source = readE(c, i, 16);
  const mask = v.read(F.Cr0GuestHostMask);
  const shadow = v.read(F.Cr0ReadShadow);
  if (lmswExits(source & 0xf, mask, shadow)) {
    const q = crQualification(0, CrAccessType.Lmsw, 0, memory, source);
    return instructionExit(c, i, ExitReason.CrAccess, q, 0, undefined, memory ? linear : undefined);
  }
  writeCr0(c, lmswResult(c.cr0, source & 0xf, mask));
  return true;
}

/** MOV to/from DRn: #GP in V86 mode, #UD for DR8+ or DR4/5 with CR4.DE, #GP at CPL > 0. */
function drAccess(c: Cpu, i: Instr, v: Vmcs): boolean {
  if (c.v86) fault(GP, 0);
  const n = i.reg;
  if (n > 7 || ((n === 4 || n === 5) && c.cr4 & CR4_DE)) fault(UD);
  requireCpl0(c);
  if (!(v.read(F.ProcBasedControls) & Proc.MovDrExiting)) return false;
  const fromDr = i.opcode === 0x121;
  return instructionExit(c, i, ExitReason.DrAccess, drQualification(n, fromDr, i.rm));
}

// ---------------------------------------------------------------- I/O and MSRs

/**
 * IN, OUT, INS, OUTS: the IOPL/TSS permission check comes first, then the exit decided
 * by the controls and the I/O bitmaps. String forms report the linear address of their
 * memory operand and the address size and segment in the instruction information.
 */
function io(c: Cpu, i: Instr, v: Vmcs): boolean {
  const op = i.opcode;
  const string = op >= 0x6c && op <= 0x6f;
  const input = string ? op <= 0x6d : (op & 2) === 0; // E4/E5/EC/ED and 6C/6D read
  const immediate = op === 0xe4 || op === 0xe5 || op === 0xe6 || op === 0xe7;
  const byte = (op & 1) === 0;
  const size = (byte ? 1 : i.osize === 16 ? 2 : 4) as 1 | 2 | 4;
  const port = immediate ? i.imm & 0xff : c.regs[EDX] & 0xffff;
  checkIoPermission(c, port, size);
  const proc = v.read(F.ProcBasedControls);
  const exits = ioExits(proc, port, size, (p) => {
    const base = v.read64(p < 0x8000 ? F.IoBitmapA : F.IoBitmapB);
    return (c.mem.read(base + ioBitmapByte(p), 1) >> (p & 7)) & 1;
  });
  if (!exits) return false;
  const q = ioQualification(port, size, input, string, string && i.rep !== 0, immediate);
  if (!string) return instructionExit(c, i, ExitReason.IoInstruction, q);
  const linear = stringLinear(c, i, !input);
  return instructionExit(c, i, ExitReason.IoInstruction, q, 0, stringIoInfo(i, !input), linear);
}

/**
 * Linear address of the first byte INS writes (ES:rDI) or OUTS reads (seg:rSI), as the
 * CPU keeps linear addresses: folded to 48 bits in IA-32e mode (mmu.ts).
 */
function stringLinear(c: Cpu, i: Instr, outs: boolean): number {
  const reg = outs ? 6 : 7; // rSI, rDI
  const seg = c.segs[outs ? i.seg : ES];
  if (!c.longMode) {
    const off = i.asize === 32 ? c.regs[reg] : c.regs[reg] & 0xffff;
    return (seg.base + off) | 0;
  }
  // 64-bit mode: only FS and GS keep a base; the offset is 64 or 32 bits.
  const useBase = c.mode64 ? outs && i.seg >= FS : true;
  const offLo = c.regs[reg] >>> 0;
  const offHi = i.asize === 64 ? c.regsHi[reg] : 0;
  const off = i.asize === 16 ? offLo & 0xffff : offLo;
  const lo = off + (useBase ? seg.base >>> 0 : 0);
  const hi =
    (i.asize === 16 ? 0 : offHi) + (useBase ? seg.baseHi : 0) + Math.floor(lo / 0x100000000);
  return ((hi & 0xffff) * 0x100000000 + (lo % 0x100000000)) % 2 ** 48;
}

/**
 * RDMSR and WRMSR: #GP at CPL > 0 first, then the exit per the MSR bitmaps; otherwise
 * RDMSR of IA32_TIME_STAMP_COUNTER sees the TSC offset (26.3).
 */
function msr(c: Cpu, i: Instr, v: Vmcs, write: boolean): boolean {
  requireCpl0(c);
  const index = c.regs[ECX];
  const proc = v.read(F.ProcBasedControls);
  const exits = msrExits(proc, index, write, (b) => {
    return (c.mem.read(v.read64(F.MsrBitmaps) + (b >> 3), 1) >> (b & 7)) & 1;
  });
  if (exits) return instructionExit(c, i, write ? ExitReason.Wrmsr : ExitReason.Rdmsr);
  if (!write && index >>> 0 === IA32_TIME_STAMP_COUNTER && proc & Proc.UseTscOffsetting) {
    const [lo, hi] = guestTsc(c, v);
    setReg(c, EAX, 32, lo);
    setReg(c, EDX, 32, hi);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- descriptor tables

/**
 * LGDT, LIDT, SGDT, SIDT, LLDT, LTR, SLDT, STR with "descriptor-table exiting" (26.1.3):
 * #UD outside protected mode for the LDTR/TR forms, the CPL and UMIP checks come first;
 * the exit comes before any access to the memory operand.
 */
function descriptorTable(c: Cpu, i: Instr, v: Vmcs, reason: ExitReason): boolean {
  const gdtIdt = reason === ExitReason.GdtrIdtrAccess;
  const form = i.reg & 7; // ModRM.reg: 0 SGDT/SLDT, 1 SIDT/STR, 2 LGDT/LLDT, 3 LIDT/LTR
  if (!gdtIdt && (!c.protectedMode || c.v86)) fault(UD);
  const load = form >= 2;
  if (load) requireCpl0(c);
  else if (c.cr4 & CR4_UMIP && c.cpl > 0) fault(GP, 0);
  if (!(secondaryControls(v) & Proc2.DescriptorTableExiting)) return false;
  const identity = form as DescriptorTableIdentity;
  const info = gdtIdt ? gdtrIdtrInfo(i, identity) : ldtrTrInfo(i, identity);
  const [qlo, qhi] = displacementQualification(i, c.nextEip);
  return instructionExit(c, i, reason, qlo, qhi, info);
}

/**
 * INVPCID (26.3): #UD unless "enable INVPCID"; then, after its own #UD and CPL checks,
 * "INVLPG exiting" makes it exit.
 */
function invpcid(c: Cpu, i: Instr, v: Vmcs): boolean {
  if (!(secondaryControls(v) & Proc2.EnableInvpcid)) fault(UD);
  if (!c.protectedMode || c.v86) fault(UD);
  requireCpl0(c);
  if (!(v.read(F.ProcBasedControls) & Proc.InvlpgExiting)) return false;
  const [qlo, qhi] = displacementQualification(i, c.nextEip);
  return instructionExit(c, i, ExitReason.Invpcid, qlo, qhi, invalidationInfo(i));
}

// ---------------------------------------------------------------- VMX instructions

/**
 * VMX instructions in non-root operation exit (SDM 26.1.2), after their #UD checks: real
 * and virtual-8086 mode, compatibility mode (SDM Vol. 3C, 31.3 operation sections); the
 * CPL check comes after the exit. VMCALL has none of these checks.
 */
function vmxInstruction(c: Cpu, i: Instr, reason: ExitReason): boolean {
  const compatibility = (c.msr.efer & EFER_LMA) !== 0 && (c.segs[CS].ar & AR_L) === 0;
  if (!c.protectedMode || c.flags.word & VM || compatibility) fault(UD);
  let info = 0;
  let qlo = 0;
  let qhi = 0;
  switch (reason) {
    case ExitReason.Vmclear:
    case ExitReason.Vmptrld:
    case ExitReason.Vmptrst:
    case ExitReason.Vmxon:
      info = vmcsPointerInfo(i);
      [qlo, qhi] = displacementQualification(i, c.nextEip);
      break;
    case ExitReason.Vmread:
    case ExitReason.Vmwrite:
      info = vmreadVmwriteInfo(i);
      [qlo, qhi] = displacementQualification(i, c.nextEip);
      break;
    case ExitReason.Invept:
    case ExitReason.Invvpid:
      info = invalidationInfo(i);
      [qlo, qhi] = displacementQualification(i, c.nextEip);
      break;
  }
  return instructionExit(c, i, reason, qlo, qhi, info);
}

// ---------------------------------------------------------------- reads of CR0 and CR4

/** CR0 as SMSW and MOV from CR0 see it in non-root operation (26.3). */
export function guestVisibleCr0(c: Cpu): number {
  const v = c.vmx.vmcs;
  return crReadValue(c.cr0, v.read(F.Cr0GuestHostMask), v.read(F.Cr0ReadShadow));
}
