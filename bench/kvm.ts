/**
 * The kvm engine's part of `npm run bench`, each figure next to QEMU with KVM on the same
 * kernel and host (the issue asks for ratios: a host with a software KVM is far from
 * native speed, for QEMU as for SHV):
 *
 * - process start to the guest's first serial byte (hello, i386 -O2);
 * - guest compute speed in MIPS (compute, i386 -O2): the wall time between two iteration
 *   counts, so start-up cancels out, over the instructions the soft engine counts for the
 *   same difference;
 * - the I/O-exit round trip in microseconds (bench/iobench.S: OUT at CPL 3, where KVM runs
 *   the guest natively), again from the difference between two loop counts.
 *
 * Every run is a separate process (`shv run --engine kvm` against `qemu-system-*
 * -enable-kvm`); figures are medians.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { softEngine } from "../src/engine/soft.js";
import { KvmSystem } from "../src/engine/kvm/system.js";
import { Machine } from "../src/machine/machine.js";

interface Timed {
  /** Seconds from spawning the process to its first byte on stdout. */
  firstByte: number;
  /** Seconds from spawning to exit. */
  total: number;
  status: number | null;
  stdout: string;
}

/** Runs a command, timing its first stdout byte and its exit. */
function timed(cmd: string, args: string[], cwd: string): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let firstByte = -1;
    let stdout = "";
    const child = spawn(cmd, args, { cwd, stdio: ["pipe", "pipe", "pipe"] });
    child.stdout.setEncoding("latin1").on("data", (chunk: string) => {
      if (firstByte < 0) firstByte = (performance.now() - t0) / 1000;
      stdout += chunk;
    });
    child.stderr.resume();
    child.on("error", reject);
    child.on("close", (status) =>
      resolve({ firstByte, total: (performance.now() - t0) / 1000, status, stdout }),
    );
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** A QEMU that can run `kernel`: qemu-system-i386 for 32-bit code, x86_64 for long mode. */
function qemu(system: "i386" | "x86_64"): string | null {
  const bin = `qemu-system-${system}`;
  return spawnSync(bin, ["--version"]).status === 0 ? bin : null;
}

const QEMU_ARGS = [
  "-enable-kvm",
  "-device",
  "isa-debug-exit,iobase=0xf4,iosize=0x04",
  "-serial",
  "stdio",
  "-display",
  "none",
  "-no-reboot",
  "-m",
  "512",
];

/** Builds bench/iobench.S into an ELF32 multiboot kernel (QEMU loads ELF32 only). */
function buildIoBench(root: string): string {
  const out = join(root, "dist", "bench");
  mkdirSync(out, { recursive: true });
  const obj = join(out, "iobench.o");
  const elf = join(out, "iobench.elf");
  execFileSync("gcc", ["-m32", "-c", join(root, "bench", "iobench.S"), "-o", obj]);
  execFileSync("ld", [
    ...["-m", "elf_i386", "-N", "-Ttext=0x100000", "-e", "_start", "--build-id=none"],
    ...["--no-warn-rwx-segments", "-o", elf, obj],
  ]);
  return elf;
}

/** Guest instructions of the compute kernel with `iters` iterations, counted by the soft engine. */
async function softInstructions(kernel: string, iters: number): Promise<number> {
  const m = new Machine({
    memoryMiB: 64,
    smp: 1,
    kernel: new Uint8Array(readFileSync(kernel)),
    cmdline: `compute iters=${iters}`,
    modules: [],
    serial: null,
    debugcon: null,
    noReboot: true,
    timeoutSeconds: 600,
    engine: softEngine,
  });
  const result = await m.run();
  if (result.kind !== "exit" || result.status !== 1) {
    throw new Error(`compute kernel did not pass on the soft engine: ${JSON.stringify(result)}`);
  }
  return m.vcpus[0].instructionsRetired;
}

type Vmm = { name: string; run: (kernel: string, append: string) => Promise<Timed> };

export async function benchKvm(root: string, runs: number): Promise<void> {
  console.log("kvm engine, each figure beside QEMU with -enable-kvm on the same kernel:");
  let unusable: string | null = null;
  try {
    KvmSystem.open();
  } catch (e) {
    unusable = (e as Error).message;
  }
  if (unusable !== null) {
    console.log(`  skipped: the kvm engine cannot run here: ${unusable}`);
    return;
  }
  const shv: Vmm = {
    name: "SHV",
    run: (kernel, append) =>
      timed(
        process.execPath,
        ["bin/shv.js", "run", "--engine", "kvm", "--kernel", kernel, "--append", append],
        root,
      ),
  };
  const qemuFor = (system: "i386" | "x86_64"): Vmm | null => {
    const bin = qemu(system);
    if (bin === null) return null;
    return {
      name: "QEMU",
      run: (kernel, append) =>
        timed(bin, ["-kernel", kernel, "-append", append, ...QEMU_ARGS], root),
    };
  };
  const q32 = qemuFor("i386");
  const q64 = qemuFor("x86_64");
  if (q32 === null || q64 === null) {
    console.log(
      "  (QEMU comparison skipped: qemu-system-i386 or qemu-system-x86_64 not installed)",
    );
  }

  /** Medians of `runs` runs of f for each VMM; prints them and the ratio. */
  const compare = async (
    what: string,
    unit: string,
    vmms: (Vmm | null)[],
    f: (vmm: Vmm) => Promise<number>,
    digits: number,
  ) => {
    const values: number[] = [];
    for (const vmm of vmms) {
      if (vmm === null) continue;
      const xs: number[] = [];
      for (let r = 0; r < runs; r++) xs.push(await f(vmm));
      values.push(median(xs));
    }
    const fmt = (v: number) => `${v.toFixed(digits)} ${unit}`;
    let line = `  ${what}: SHV ${fmt(values[0])}`;
    if (values.length > 1)
      line += `, QEMU ${fmt(values[1])}, SHV/QEMU ${(values[0] / values[1]).toFixed(2)}`;
    console.log(`${line} (median of ${runs})`);
  };
  const check = (t: Timed, what: string) => {
    if (t.status !== 1) throw new Error(`${what} did not pass (exit status ${t.status})`);
    return t;
  };

  const hello = join(root, "guests", "build", "i386", "hello-O2.elf");
  await compare(
    "process start to first serial byte (hello, i386)",
    "s",
    [shv, q32],
    async (vmm) => {
      return check(await vmm.run(hello, ""), `hello on ${vmm.name}`).firstByte;
    },
    3,
  );

  const compute = join(root, "guests", "build", "i386", "compute-O2.elf");
  const [lo, hi] = [2, 6];
  const instructions =
    (await softInstructions(compute, hi)) - (await softInstructions(compute, lo));
  await compare(
    `compute (i386 -O2, iters ${lo} -> ${hi}: ${(instructions / 1e6).toFixed(2)} M instructions)`,
    "MIPS",
    [shv, q32],
    async (vmm) => {
      const a = check(await vmm.run(compute, `iters=${lo}`), `compute on ${vmm.name}`);
      const b = check(await vmm.run(compute, `iters=${hi}`), `compute on ${vmm.name}`);
      return instructions / (b.total - a.total) / 1e6;
    },
    2,
  );

  const io = buildIoBench(root);
  const [n0, n1] = [10_000, 210_000];
  await compare(
    `I/O-exit round trip (OUT at CPL 3, ${n0} -> ${n1} exits)`,
    "us",
    [shv, q64],
    async (vmm) => {
      const a = check(await vmm.run(io, `n=${n0}`), `iobench on ${vmm.name}`);
      const b = check(await vmm.run(io, `n=${n1}`), `iobench on ${vmm.name}`);
      return ((b.total - a.total) / (n1 - n0)) * 1e6;
    },
    1,
  );
  if (!existsSync(join(root, "bin", "shv.js"))) throw new Error("bin/shv.js is missing");
}
