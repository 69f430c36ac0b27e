/**
 * What the host's KVM really runs. A CPL-3 snippet should execute on the host CPU, but a
 * KVM implemented in software (such as one that runs guest user code in host user mode)
 * may run some modes through KVM's instruction emulator (arch/x86/kvm/emulate.c) instead.
 * A probe finds out per mode; in such a mode the comparison is against that emulator,
 * whose known departures from the SDM are listed here, each with the prediction a
 * mismatch must fit to be put down to it. They are never applied to modes that run on the
 * CPU, and they are not SDM masks: the soft CPU follows the SDM in all of them.
 */
import { AF, CF, OF, PF, SF, ZF } from "../cpu/flags.js";
import type { SnippetMode } from "../engine/kvm/oracle.js";
import type { CaseResult } from "./batch.js";
import type { DiffCase } from "./cases.js";
import type { SnippetRunner } from "./soft-oracle.js";

/**
 * Modes whose user code the host runs in KVM's instruction emulator. DAA is valid outside
 * 64-bit mode (SDM Vol. 2A, DAA), and the emulator does not implement it: #UD.
 */
export function emulatedModes(kvm: SnippetRunner): Set<SnippetMode> {
  const out = new Set<SnippetMode>();
  for (const mode of ["compat32", "prot32"] as const) {
    const r = kvm.run({ mode, code: Uint8Array.of(0x27) });
    if (r.outcome === "exception" && r.vector === 6) out.add(mode);
  }
  return out;
}

interface EmulatorDefect {
  m: string[];
  what: string;
  /** Whether the host's result is the one this defect predicts. */
  fits: (c: DiffCase, soft: CaseResult, kvm: CaseResult) => boolean;
}

const ud = (soft: CaseResult, kvm: CaseResult) =>
  soft.outcome === "completed" && kvm.outcome === "exception" && kvm.vector === 6;

/** SF, ZF and PF of a 32-bit value. */
function szp(v: bigint): bigint {
  const low = Number(v & 0xffn);
  let ones = 0;
  for (let b = low; b; b >>= 1) ones += b & 1;
  return BigInt((v & 0x80000000n ? SF : 0) | (v === 0n ? ZF : 0) | (ones % 2 ? 0 : PF));
}

export const EMULATOR_DEFECTS: readonly EmulatorDefect[] = [
  {
    m: ["daa", "aaa", "aas"],
    what: "KVM's emulator does not implement DAA, AAA and AAS (no opcode-table entry): #UD",
    fits: (_, soft, kvm) => ud(soft, kvm),
  },
  {
    m: ["enter"],
    what: "KVM's em_enter gives up on a nesting level other than 0: #UD",
    fits: (c, soft, kvm) => ud(soft, kvm) && (c.code[c.code.length - 1] & 31) !== 0,
  },
  {
    m: ["enter"],
    what: "KVM's em_enter pushes rBP at the stack size, not the operand size (SDM: Push(BP))",
    fits: (c, soft, kvm) =>
      c.bits === 16 &&
      soft.outcome === "completed" &&
      kvm.outcome === "completed" &&
      kvm.regs[4] === soft.regs[4] - 2n &&
      kvm.regs[5] === soft.regs[5] - 2n,
  },
  {
    m: ["aam", "aad"],
    what: "KVM's em_aam/em_aad set SF, ZF and PF from all of EAX rather than AL",
    fits: (_, soft, kvm) => {
      const szpMask = BigInt(SF | ZF | PF);
      const others = BigInt(CF | AF | OF) | szpMask;
      return (
        soft.outcome === "completed" &&
        kvm.outcome === "completed" &&
        kvm.regs.every((v, r) => v === soft.regs[r]) &&
        (kvm.rflags & ~others) === (soft.rflags & ~others) &&
        (kvm.rflags & szpMask) === szp(kvm.regs[0])
      );
    },
  },
];

/** The known emulator defect that explains a mismatch in an emulated mode, or null. */
export function explainByEmulator(
  c: DiffCase,
  soft: CaseResult,
  kvm: CaseResult,
): EmulatorDefect | null {
  return EMULATOR_DEFECTS.find((d) => d.m.includes(c.m) && d.fits(c, soft, kvm)) ?? null;
}
