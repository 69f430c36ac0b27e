/**
 * `npm run bench`: the soft engine's speed on a named compute workload, in millions of
 * guest instructions per second (MIPS). Speed is measured here, never asserted in tests.
 *
 * Then the kvm engine beside QEMU with KVM (bench/kvm.ts).
 *
 * Usage: npm run bench [-- --iters N] [--runs R] [--variant i386,amd64] [--opt O2|O0|Os]
 *                      [--kvm-runs R]
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { Machine, type OutputSink } from "../src/machine/machine.js";
import { softEngine } from "../src/engine/soft.js";
import { benchKvm } from "./kvm.js";

// Runs from dist/bench/ after the build; the guests live in the source tree.
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function arg(name: string, fallback: string): string {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 && process.argv[k + 1] ? process.argv[k + 1] : fallback;
}

const iters = Number(arg("iters", "20"));
const runs = Number(arg("runs", "3"));
/** The builds to measure: 32-bit protected mode and 64-bit (IA-32e) code. */
const variants = arg("variant", "i386,amd64").split(",");
const opt = arg("opt", "O2");
const kernelPath = (variant: string): string =>
  join(root, "guests", "build", variant, `compute-${opt}.elf`);
if (!variants.every((v) => existsSync(kernelPath(v))))
  execFileSync("make", ["-s", "-C", join(root, "guests")], { stdio: "inherit" });

/** Collects the guest's serial output so the run can be checked, not just timed. */
class Capture implements OutputSink {
  bytes: number[] = [];
  write(b: number): void {
    this.bytes.push(b);
  }
  flush(): void {}
  text(): string {
    return Buffer.from(this.bytes).toString("latin1");
  }
}

async function once(
  variant: string,
): Promise<{ instructions: number; seconds: number; output: string }> {
  const serial = new Capture();
  const m = new Machine({
    memoryMiB: 64,
    smp: 1,
    kernel: new Uint8Array(readFileSync(kernelPath(variant))),
    cmdline: `compute iters=${iters}`,
    modules: [],
    serial,
    debugcon: null,
    noReboot: true,
    timeoutSeconds: 600,
    engine: softEngine,
  });
  const t0 = process.hrtime.bigint();
  const result = await m.run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (result.kind !== "exit" || result.status !== 1) {
    throw new Error(`compute kernel did not pass: ${JSON.stringify(result)}\n${serial.text()}`);
  }
  return { instructions: m.vcpus[0].instructionsRetired, seconds, output: serial.text() };
}

const host = join(root, "guests", "build", "host", "compute");
const expected = existsSync(host) ? execFileSync(host, [`iters=${iters}`]).toString() : null;

for (const variant of variants) {
  console.log(
    `workload: compute kernel (guests/compute), ${variant} -O${opt.slice(1)}, iters=${iters}`,
  );
  const mips: number[] = [];
  for (let r = 0; r < runs; r++) {
    const { instructions, seconds, output } = await once(variant);
    if (expected !== null && !output.endsWith(expected))
      throw new Error("guest output differs from the host build");
    mips.push(instructions / seconds / 1e6);
    console.log(
      `  run ${r + 1}: ${(instructions / 1e6).toFixed(1)} M instructions in ${seconds.toFixed(2)} s` +
        ` = ${mips[r].toFixed(1)} MIPS`,
    );
  }
  mips.sort((a, b) => a - b);
  console.log(
    `soft engine (${variant}): ${mips[Math.floor(mips.length / 2)].toFixed(1)} MIPS` +
      ` (median of ${runs})`,
  );
}

console.log();
await benchKvm(root, Number(arg("kvm-runs", "3")));
