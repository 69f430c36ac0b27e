/**
 * A differential run: generate cases, run them on both engines a batch (one slot set) at a
 * time, compare, and tally by mode, width and instruction class. Mismatches are replayed
 * alone to confirm that they do not depend on the cases around them. In modes the host
 * runs through KVM's instruction emulator (host.ts), a mismatch that fits one of that
 * emulator's known defects is counted apart.
 */
import type { SnippetMode } from "../engine/kvm/oracle.js";
import { placedCode, runCases, type CaseResult } from "./batch.js";
import { SLOTS, WINDOW, regName, windowAddress, type DiffCase } from "./cases.js";
import { compareCase, flagNames, type Difference } from "./compare.js";
import { generateCase, type GenerateOptions } from "./generate.js";
import { explainByEmulator } from "./host.js";
import type { SnippetRunner } from "./soft-oracle.js";

export interface Mismatch {
  c: DiffCase;
  soft: CaseResult;
  kvm: CaseResult;
  diffs: Difference[];
  /** Whether the case, run alone, still mismatches. */
  alone?: boolean;
  /** The known defect of the host's KVM emulator that explains it (emulated modes only). */
  emulatorDefect?: string;
}

export interface Tally {
  cases: number;
  /** Mismatches not explained by the host's emulator. */
  mismatches: number;
  /** Mismatches explained by a known defect of the host's KVM emulator. */
  emulator: number;
}

export interface DiffReport {
  seed: number;
  cases: number;
  /** Unexplained mismatches, then those put down to the host's emulator. */
  mismatches: Mismatch[];
  emulatorMismatches: Mismatch[];
  /** By `mode/width/class`. */
  tallies: Map<string, Tally>;
  /** Milliseconds spent in each engine, and in generating and comparing. */
  ms: { kvm: number; soft: number; other: number };
}

export interface RunOptions extends GenerateOptions {
  seed: number;
  cases: number;
  /** Modes the host runs in KVM's instruction emulator (host.ts, emulatedModes). */
  emulated?: ReadonlySet<SnippetMode>;
  /** Replay each mismatch alone (default true). */
  replay?: boolean;
  onBatch?: (done: number) => void;
}

export const tallyKey = (c: DiffCase): string => `${c.mode}/${c.bits}/${c.cls}`;

export function runDifferential(
  kvm: SnippetRunner,
  soft: SnippetRunner,
  opts: RunOptions,
): DiffReport {
  const report: DiffReport = {
    seed: opts.seed,
    cases: 0,
    mismatches: [],
    emulatorMismatches: [],
    tallies: new Map(),
    ms: { kvm: 0, soft: 0, other: 0 },
  };
  const t0 = performance.now();
  for (let first = 0; first < opts.cases; first += SLOTS) {
    const n = Math.min(SLOTS, opts.cases - first);
    const cases = Array.from({ length: n }, (_, k) => generateCase(opts.seed, first + k, opts));
    let t = performance.now();
    const onKvm = runCases(kvm, cases);
    report.ms.kvm += performance.now() - t;
    t = performance.now();
    const onSoft = runCases(soft, cases);
    report.ms.soft += performance.now() - t;
    cases.forEach((c, k) => {
      const tally = report.tallies.get(tallyKey(c)) ?? { cases: 0, mismatches: 0, emulator: 0 };
      report.tallies.set(tallyKey(c), tally);
      tally.cases++;
      const diffs = compareCase(c, onSoft[k], onKvm[k]);
      if (diffs.length === 0) return;
      const m: Mismatch = { c, soft: onSoft[k], kvm: onKvm[k], diffs };
      const defect = opts.emulated?.has(c.mode) ? explainByEmulator(c, m.soft, m.kvm) : null;
      if (defect !== null) {
        tally.emulator++;
        m.emulatorDefect = defect.what;
        report.emulatorMismatches.push(m);
        return;
      }
      tally.mismatches++;
      if (opts.replay !== false) {
        const [sk] = runCases(kvm, [c]);
        const [ss] = runCases(soft, [c]);
        m.alone = compareCase(c, ss, sk).length > 0;
      }
      report.mismatches.push(m);
    });
    report.cases += n;
    opts.onBatch?.(report.cases);
  }
  report.ms.other = performance.now() - t0 - report.ms.kvm - report.ms.soft;
  return report;
}

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
const bytes = (b: ArrayLike<number>): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

/** The initial state of a case, as lines. */
export function describeCase(c: DiffCase, disasm?: (mode: SnippetMode, b: number[]) => string) {
  const code = placedCode(c);
  const long = c.mode === "long64";
  const regs = c.regs.map((v, r) => `${regName(r, long ? 64 : 32)}=${hex(v)}`);
  const lines = [
    `case ${c.index} of seed ${c.seed}: ${c.mode}, ${c.form}, ${c.bits}-bit (${c.cls})`,
    `  code: ${bytes(code)}${disasm ? `   ${disasm(c.mode, code)}` : ""}`,
  ];
  for (let k = 0; k < regs.length; k += 4) lines.push(`  ${regs.slice(k, k + 4).join(" ")}`);
  lines.push(
    `  rflags=${hex(c.rflags)} (${flagNames(c.rflags)}${c.rflags & 0x400 ? "|DF" : ""}) ` +
      `window at ${hex(windowAddress(c.slot))}` +
      (c.facts.count !== undefined ? ` count=${c.facts.count}` : ""),
  );
  return lines;
}

/** A mismatch as text: the case, its initial state, and each differing field. */
export function formatMismatch(
  m: Mismatch,
  disasm?: (mode: SnippetMode, b: number[]) => string,
  reference = "kvm",
): string {
  const lines = describeCase(m.c, disasm);
  const off = m.c.memory ? m.c.memory.addr - windowAddress(m.c.slot) : -1;
  if (m.c.memory !== undefined && off >= 0 && off < WINDOW) {
    const init = m.c.window.subarray(off, off + m.c.memory.size);
    lines.push(`  memory operand at window+0x${off.toString(16)}: ${bytes(init)}`);
  }
  for (const d of m.diffs) lines.push(`  ${d.field}: soft ${d.soft}, ${reference} ${d.kvm}`);
  if (m.alone === false) lines.push("  (matches when run alone: depends on neighbouring cases)");
  if (m.emulatorDefect) lines.push(`  host's KVM emulator: ${m.emulatorDefect}`);
  return lines.join("\n");
}
