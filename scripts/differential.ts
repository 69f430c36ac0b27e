/**
 * The bulk differential run (design.md, decision 8): generated instruction cases on the
 * soft CPU and on the host CPU, at CPL 3, compared on the architectural state (src/diff/,
 * ARCHITECTURE.md). The host CPU is reached through KVM, or natively in a Linux process
 * (src/diff/native-oracle.ts: 64-bit and compatibility mode only).
 *
 *   npx tsx scripts/differential.ts [--cases N] [--seed S] [--modes long64,compat32,prot32]
 *                                   [--reference kvm|native] [--show K] [--case C]
 *
 * The reference defaults to KVM when /dev/kvm is usable, else the native runner; modes the
 * reference cannot run are named and left out.
 * Prints the cases run and the mismatches per mode, width and instruction class, then the
 * mismatches grouped by instruction form with up to K examples each (default 3). With
 * --case, replays case C of the seed (and modes) alone and prints both results. Exits 1
 * when anything mismatched that the host's KVM emulator does not explain (modes it
 * emulates are named at the start).
 */
import { parseArgs } from "node:util";
import { KvmOracle, type SnippetMode } from "../src/engine/kvm/oracle.js";
import { runCases, type CaseResult } from "../src/diff/batch.js";
import { compareCase } from "../src/diff/compare.js";
import { MODES, generateCase } from "../src/diff/generate.js";
import { emulatedModes } from "../src/diff/host.js";
import {
  describeCase,
  formatMismatch,
  runDifferential,
  type Mismatch,
  type Tally,
} from "../src/diff/run.js";
import { NativeOracle } from "../src/diff/native-oracle.js";
import { SoftOracle, type SnippetRunner } from "../src/diff/soft-oracle.js";

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "100000" },
    seed: { type: "string", default: "1" },
    modes: { type: "string", default: MODES.join(",") },
    show: { type: "string", default: "3" },
    case: { type: "string" },
    reference: { type: "string" },
  },
});
const cases = Number(values.cases);
const seed = Number(values.seed);
const show = Number(values.show);
let modes = values.modes.split(",") as SnippetMode[];
if (!Number.isInteger(cases) || cases < 1 || !Number.isInteger(seed) || !(show >= 0)) {
  console.error("usage: differential.ts [--cases N] [--seed S] [--modes m1,m2] [--show K]");
  process.exit(2);
}
const unknown = modes.find((m) => !MODES.includes(m));
if (unknown !== undefined) {
  console.error(`unknown mode ${unknown}; modes: ${MODES.join(", ")}`);
  process.exit(2);
}

if (values.reference !== undefined && !["kvm", "native"].includes(values.reference)) {
  console.error("--reference is kvm or native");
  process.exit(2);
}

/** The host CPU's runner, and what it is called in reports. */
let host!: SnippetRunner & { close(): void };
let name!: "kvm" | "native";
let emulated = new Set<SnippetMode>();
let kvmError: string | null = null;
if (values.reference !== "native") {
  try {
    const kvm = await KvmOracle.create();
    [host, name, emulated] = [kvm, "kvm", emulatedModes(kvm)];
  } catch (e) {
    kvmError = (e as Error).message;
    if (values.reference === "kvm") {
      console.error(`/dev/kvm is not usable here: ${kvmError}`);
      process.exit(2);
    }
  }
}
if (kvmError !== null || values.reference === "native") {
  try {
    const native = NativeOracle.create();
    [host, name] = [native, "native"];
    console.log(
      kvmError === null
        ? "reference: the host CPU natively, in a Linux process (--reference native)"
        : `reference: the host CPU natively, in a Linux process (/dev/kvm is not usable: ${kvmError})`,
    );
    const left = modes.filter((m) => !native.modes.includes(m));
    for (const m of left) {
      console.log(`  ${m}: left out, ${native.missing.get(m)}; it needs the kvm reference`);
    }
    modes = modes.filter((m) => native.modes.includes(m));
  } catch (e) {
    console.error(`the native reference cannot run: ${(e as Error).message}`);
    process.exit(2);
  }
  if (modes.length === 0) {
    console.error("no mode to run on this reference");
    process.exit(2);
  }
} else console.log("reference: the host CPU through KVM");
const soft = new SoftOracle();
const disasm = (mode: SnippetMode, b: number[]) => soft.disassemble(mode, b);

if (values.case !== undefined) {
  // Replay one case alone.
  const c = generateCase(seed, Number(values.case), { modes });
  const [onKvm] = runCases(host, [c]);
  const [onSoft] = runCases(soft, [c]);
  host.close();
  const show = (name: string, r: CaseResult) =>
    `  ${name}: ${r.outcome}${r.vector === undefined ? "" : ` #${r.vector}`} ` +
    `${r.regs.map((v) => v.toString(16)).join(" ")} rflags=${r.rflags.toString(16)}`;
  console.log([...describeCase(c, disasm), show("soft", onSoft), show(name, onKvm)].join("\n"));
  const diffs = compareCase(c, onSoft, onKvm);
  for (const d of diffs) console.log(`  differs: ${d.field}: soft ${d.soft}, ${name} ${d.kvm}`);
  if (emulated.has(c.mode)) console.log(`  (${c.mode} runs in the host's KVM emulator)`);
  process.exit(diffs.length > 0 ? 1 : 0);
}

console.log(`differential run: seed ${seed}, ${cases} cases, modes ${modes.join(", ")}`);
for (const m of modes) {
  console.log(
    emulated.has(m)
      ? `  ${m}: the host runs this mode's user code in KVM's instruction emulator (DAA ` +
          `raises #UD there), not on the CPU: compared against that emulator`
      : `  ${m}: runs on the host CPU${name === "native" ? ", natively" : ""}`,
  );
}

const start = performance.now();
const report = runDifferential(host, soft, {
  seed,
  cases,
  modes,
  emulated,
  onBatch: (done) => process.stderr.isTTY && process.stderr.write(`\r${done} cases`),
});
if (process.stderr.isTTY) process.stderr.write("\r");
host.close();
const seconds = (performance.now() - start) / 1000;
const perCase = (ms: number) => ((ms * 1000) / report.cases).toFixed(0);
console.log(
  `time ${seconds.toFixed(1)} s, ${perCase(seconds * 1000)} us per case (${name} ` +
    `${perCase(report.ms.kvm)} us, soft ${perCase(report.ms.soft)} us, generation and ` +
    `comparison ${perCase(report.ms.other)} us)`,
);

// ---- tallies: a class-by-(mode/width) matrix, then totals
const add = (a: Tally | undefined, b: Tally): Tally => ({
  cases: (a?.cases ?? 0) + b.cases,
  mismatches: (a?.mismatches ?? 0) + b.mismatches,
  emulator: (a?.emulator ?? 0) + b.emulator,
});
const columns = new Map<string, Tally>();
const rows = new Map<string, Map<string, Tally>>();
for (const [key, t] of report.tallies) {
  const [mode, width, cls] = key.split("/");
  const col = `${mode}/${width}`;
  columns.set(col, add(columns.get(col), t));
  const row = rows.get(cls) ?? new Map<string, Tally>();
  row.set(col, add(row.get(col), t));
  rows.set(cls, row);
}
const cols = [...columns.keys()].sort(
  (a, b) =>
    MODES.indexOf(a.split("/")[0] as SnippetMode) - MODES.indexOf(b.split("/")[0] as SnippetMode) ||
    Number(a.split("/")[1]) - Number(b.split("/")[1]),
);
const cell = (t: Tally | undefined) =>
  (t === undefined
    ? "-"
    : `${t.cases}${t.mismatches ? `/${t.mismatches}!` : ""}${t.emulator ? `/${t.emulator}e` : ""}`
  ).padStart(13);
const sumRow = (m: Map<string, Tally>) => [...m.values()].reduce<Tally | undefined>(add, undefined);
console.log(
  `\ncases per class and mode/width (cases[/mismatches!][/explained by the host's emulator e]):`,
);
console.log(`${"".padEnd(10)}${cols.map((c) => c.padStart(13)).join("")}${"all".padStart(13)}`);
for (const cls of [...rows.keys()].sort()) {
  const row = rows.get(cls)!;
  console.log(`${cls.padEnd(10)}${cols.map((c) => cell(row.get(c))).join("")}${cell(sumRow(row))}`);
}
console.log(
  `${"all".padEnd(10)}${cols.map((c) => cell(columns.get(c))).join("")}${cell(sumRow(columns))}`,
);
const onCpu = [...columns].filter(([c]) => !emulated.has(c.split("/")[0] as SnippetMode));
const cpuTotal = onCpu.reduce<Tally | undefined>((a, [, t]) => add(a, t), undefined);
console.log(
  `\ntotal: ${report.cases} cases, ${report.mismatches.length} mismatches` +
    (report.emulatorMismatches.length
      ? `, and ${report.emulatorMismatches.length} explained by known defects of the host's KVM emulator`
      : "") +
    (cpuTotal
      ? `; on the host CPU itself: ${cpuTotal.cases} cases, ${cpuTotal.mismatches} mismatches`
      : ""),
);

// ---- mismatches grouped by instruction form
const groups = (ms: Mismatch[], key: (m: Mismatch) => string) => {
  const g = new Map<string, Mismatch[]>();
  for (const m of ms) g.set(key(m), [...(g.get(key(m)) ?? []), m]);
  return [...g].sort((a, b) => b[1].length - a[1].length);
};
for (const [form, ms] of groups(report.mismatches, (m) => m.c.form)) {
  const fields = [...new Set(ms.flatMap((m) => m.diffs.map((d) => d.field.split(" ")[0])))];
  console.log(`\n== ${form}: ${ms.length} mismatches (fields: ${fields.join(", ")})`);
  for (const m of ms.slice(0, show)) console.log(formatMismatch(m, disasm, name));
}
if (report.emulatorMismatches.length > 0) {
  console.log(
    "\nexplained by the host's KVM emulator (not the CPU; the soft CPU follows the SDM):",
  );
  for (const [what, ms] of groups(report.emulatorMismatches, (m) => m.emulatorDefect!)) {
    const forms = [...new Set(ms.map((m) => m.c.form))].join(", ");
    console.log(`  ${String(ms.length).padStart(6)}  ${what} [${forms}]`);
  }
}
process.exit(report.mismatches.length > 0 ? 1 : 0);
