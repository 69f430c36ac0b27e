/**
 * Runs a kernel built from the original SHV (github lxylxy123456/shv; build it yourself
 * from its README, outside this repository) on the soft engine and judges the serial
 * output by that project's own CI criteria (design.md, "Compatibility targets"):
 *
 *   shv  (--append 'shv_opt=0xdfd'): every CPU prints more than 20 lines
 *        "CPU(0x..): SHV test iter N";
 *   nmi  (--append 'nmi_opt=0x4f'): "Sequential experiments pass", then 10 lines
 *        "Experiment: N";
 *
 * and in both, no line starting "Error: ASSERT" or "TEST_ASSERT" that says "failed".
 * The run stops as soon as the verdict is known.
 *
 *   npm run build && npx tsx scripts/compat.ts --kernel shv.bin --test shv|nmi
 *       [--smp 4] [--timeout 300] [--append STR] [--log FILE]
 *
 * Prints the verdict and the seconds the run took; exits 0 on a pass, 1 otherwise.
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    kernel: { type: "string" },
    test: { type: "string", default: "shv" },
    smp: { type: "string", default: "4" },
    timeout: { type: "string", default: "300" },
    append: { type: "string" },
    log: { type: "string" },
  },
});

const DEFAULT_APPEND: Record<string, string> = { shv: "shv_opt=0xdfd", nmi: "nmi_opt=0x4f" };
const ITERATIONS_NEEDED = 20; // "more than 20"
const EXPERIMENTS_NEEDED = 10;
const ITER_LINE = /^CPU\((0x[0-9a-f]+)\): SHV test iter \d+$/;
const EXPERIMENT_LINE = /^Experiment: \d+$/;

function usage(message: string): never {
  process.stderr.write(`compat: ${message}\n`);
  process.exit(2);
}

const kernel = values.kernel ?? usage("--kernel FILE is required");
const kind = values.test;
if (!(kind in DEFAULT_APPEND)) usage(`--test must be shv or nmi, not '${kind}'`);
const smp = Number(values.smp);
if (!Number.isInteger(smp) || smp < 1) usage(`invalid --smp '${values.smp}'`);
const append = values.append ?? DEFAULT_APPEND[kind];

/** Judges one serial line at a time: "pass", "fail" or undefined while undecided. */
function judge(): (line: string) => "pass" | "fail" | undefined {
  const iterations = new Map<string, number>();
  let sequentialPassed = false;
  let experiments = 0;
  return (line) => {
    if ((line.startsWith("Error: ASSERT") || line.startsWith("TEST_ASSERT")) && /failed/.test(line))
      return "fail";
    if (kind === "shv") {
      const m = ITER_LINE.exec(line);
      if (m) iterations.set(m[1], (iterations.get(m[1]) ?? 0) + 1);
      const counts = [...iterations.values()];
      if (counts.length === smp && Math.min(...counts) > ITERATIONS_NEEDED) return "pass";
    } else if (!sequentialPassed) {
      sequentialPassed = line === "Sequential experiments pass";
    } else if (EXPERIMENT_LINE.test(line) && ++experiments >= EXPERIMENTS_NEEDED) {
      return "pass";
    }
    return undefined;
  };
}

const shv = fileURLToPath(new URL("../bin/shv.js", import.meta.url));
const args = [shv, "run", "--kernel", kernel, "--smp", String(smp), "--append", append];
args.push("--timeout", values.timeout, "--serial", "stdio");
const started = process.hrtime.bigint();
const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
const log = values.log === undefined ? null : createWriteStream(values.log);
const verdictOf = judge();
let verdict: "pass" | "fail" | undefined;
let pending = "";

child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
  log?.write(chunk);
  pending += chunk;
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const raw of lines) {
    if (verdict !== undefined) break;
    const line = raw.replace(/\r$/, "");
    verdict = verdictOf(line);
    if (verdict === "fail") process.stdout.write(`failed line: ${line}\n`);
    if (verdict !== undefined) child.kill();
  }
});

child.on("close", (status) => {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const what = `${kind} test (--smp ${smp} --append '${append}')`;
  const outcome = verdict ?? `no verdict: shv exited with status ${status}`;
  process.stdout.write(`${what}: ${outcome} after ${seconds.toFixed(1)} s\n`);
  log?.end();
  process.exitCode = verdict === "pass" ? 0 : 1;
});
