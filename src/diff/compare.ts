/**
 * Compares one case's results on the two engines: the outcome (exception vector and error
 * code, faulting RIP, CR2 for #PF), the general registers, RFLAGS and the data window,
 * leaving out only what the SDM leaves undefined (masks.ts).
 */
import { AF, CF, OF, PF, SF, ZF } from "../cpu/flags.js";
import type { CaseResult } from "./batch.js";
import { windowAddress, regName, type DiffCase } from "./cases.js";
import { resultDefined, sameException, undefinedFlags } from "./masks.js";

export interface Difference {
  field: string;
  soft: string;
  kvm: string;
}

const hex = (v: bigint | number | undefined): string =>
  v === undefined ? "-" : `0x${v.toString(16)}`;

const FLAG_BITS = Object.entries({ CF, PF, AF, ZF, SF, OF });
export const flagNames = (f: number): string =>
  FLAG_BITS.flatMap(([n, b]) => (f & b ? [n] : [])).join("|") || "-";

/** Bits of each register (by number) whose value is undefined in this case. */
function undefinedRegisterBits(c: DiffCase): Map<number, bigint> {
  const u = new Map<number, bigint>();
  const d = c.destination;
  if (d?.kind !== "reg" || resultDefined(c.m, c.facts)) return u;
  // A 32-bit destination in 64-bit mode: its zero extension is part of the write.
  const bits = d.bits === 32 && c.mode === "long64" ? 64 : d.bits;
  const m = (1n << BigInt(bits)) - 1n;
  u.set(d.high8 ? d.reg - 4 : d.reg, d.high8 ? 0xff00n : m);
  return u;
}

/** Window offsets whose value is undefined in this case. */
function undefinedBytes(c: DiffCase): [number, number] | null {
  const d = c.destination;
  if (d?.kind !== "mem" || resultDefined(c.m, c.facts)) return null;
  const off = d.addr - windowAddress(c.slot);
  return [off, off + d.size];
}

export function compareCase(c: DiffCase, soft: CaseResult, kvm: CaseResult): Difference[] {
  const diffs: Difference[] = [];
  const add = (field: string, s: string, k: string) => {
    if (s !== k) diffs.push({ field, soft: s, kvm: k });
  };
  const outcome = (r: CaseResult) =>
    r.outcome === "exception"
      ? `#${r.vector}${r.errorCode === undefined ? "" : `(${hex(r.errorCode)})`}`
      : r.outcome === "exit" || r.outcome === "timeout"
        ? `${r.outcome}: ${r.exit}`
        : r.outcome;
  const variant = soft.outcome === "exception" && kvm.outcome === "exception";
  if (!variant || !sameException(soft, kvm, c.facts)) add("outcome", outcome(soft), outcome(kvm));
  if (diffs.length > 0) return diffs; // the rest would only repeat the difference
  if (soft.outcome === "exception") {
    add("rip", hex(soft.rip), hex(kvm.rip));
    if (soft.vector === 14) add("cr2", hex(soft.cr2), hex(kvm.cr2));
  }

  const undef = undefinedRegisterBits(c);
  soft.regs.forEach((v, r) => {
    const keep = ~(undef.get(r) ?? 0n);
    add(regName(r, c.mode === "long64" ? 64 : 32), hex(v & keep), hex(kvm.regs[r] & keep));
  });

  const flags = BigInt(undefinedFlags(c.m, c.facts));
  const sf = soft.rflags & ~flags;
  const kf = kvm.rflags & ~flags;
  if (sf !== kf) {
    diffs.push({
      field: flags ? `rflags (without ${flagNames(Number(flags))})` : "rflags",
      soft: `${hex(sf)} ${flagNames(Number(sf))}`,
      kvm: `${hex(kf)} ${flagNames(Number(kf))}`,
    });
  }

  const skip = undefinedBytes(c);
  const bad: number[] = [];
  for (let k = 0; k < soft.window.length; k++) {
    if (skip && k >= skip[0] && k < skip[1]) continue;
    if (soft.window[k] !== kvm.window[k]) bad.push(k);
  }
  if (bad.length > 0) {
    const lo = bad[0];
    const hi = bad[bad.length - 1] + 1;
    const bytes = (w: Uint8Array) =>
      Array.from(w.subarray(lo, Math.min(hi, lo + 16)), (b) => b.toString(16).padStart(2, "0"));
    diffs.push({
      field: `memory window+0x${lo.toString(16)}..0x${hi.toString(16)}`,
      soft: bytes(soft.window).join(" "),
      kvm: bytes(kvm.window).join(" "),
    });
  }
  return diffs;
}
