/**
 * Integration tests: boot each guest kernel (guests/README.md) with `shv run` and check what
 * it prints on the serial console and its isa-debug-exit status. Every kernel is built for
 * three variants (i386 and pae: 32-bit protected mode with 32-bit or PAE paging; amd64: long
 * mode, entered from the 32-bit multiboot entry) and three optimisation levels; all must pass.
 * The realmode kernel (real mode and back) is built for i386 and amd64 only.
 *
 * The same tests run on both engines, soft and kvm. On kvm they skip visibly when /dev/kvm
 * cannot be used, and a failure that a probe shows to be a limitation of the host's KVM
 * (test/helpers/kvm-host.ts) becomes a skip that names it.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { before, describe, test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { kvmHostLimitation, kvmUnusable } from "./helpers/kvm-host.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const guestBuild = path.join(root, "guests", "build");

const VARIANTS = ["i386", "pae", "amd64"] as const;
const OPTS = ["O0", "O2", "Os"] as const;
const ENGINES = ["soft", "kvm"] as const;
type EngineName = (typeof ENGINES)[number];
/**
 * Iterations of the compute workload: a few million guest instructions on soft, one on kvm
 * (hosts with a software KVM run ring-0 guest code at about 1 us per instruction).
 */
const COMPUTE_ITERS: Record<EngineName, number> = { soft: 5, kvm: 1 };
/** The guest writes 0 to port 0xF4 on success: the process exits with (0 << 1) | 1. */
const EXIT_PASS = 1;

interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function kernelPath(variant: string, name: string, opt: string): string {
  return path.join(guestBuild, variant, `${name}-${opt}.elf`);
}

/** Runs `shv run` on a kernel, like `qemu-system-i386 -kernel ... -append ...`. */
function runGuest(
  kernel: string,
  append: string,
  extraArgs: string[] = [],
  noReboot = true,
  engine: EngineName = "soft",
): Promise<RunResult> {
  const args = [path.join(root, "bin", "shv.js"), "run", "--kernel", kernel, "--engine", engine];
  if (append !== "") args.push("--append", append);
  args.push("--timeout", "60", ...(noReboot ? ["--no-reboot"] : []), ...extraArgs);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/** Why the kvm engine cannot run on this host, or null; asked once. */
let kvmReason: string | null | undefined;

/**
 * runGuest on `engine`, or null after a visible skip: on kvm when /dev/kvm is unusable, or
 * when the kernel failed because of a limitation of the host's KVM that a probe confirms.
 */
async function runOn(
  t: TestContext,
  engine: EngineName,
  kernel: string,
  append: string,
  extraArgs: string[] = [],
  noReboot = true,
): Promise<RunResult | null> {
  if (engine === "kvm") {
    kvmReason ??= kvmUnusable();
    if (kvmReason !== null) {
      t.skip(`kvm engine not usable on this host: ${kvmReason}`);
      return null;
    }
  }
  const r = await runGuest(kernel, append, extraArgs, noReboot, engine);
  if (engine === "kvm" && r.status !== EXIT_PASS) {
    const limitation = await kvmHostLimitation(r, kernel);
    if (limitation !== null) {
      t.skip(limitation);
      return null;
    }
  }
  return r;
}

/**
 * The VMX test kernels (guests/README.md): VMX operation and basic exits, EPT and VPID,
 * events, VMX instruction and VM-entry failures, unrestricted guests. They need a CPU with VMX: the soft
 * engine's, or on the kvm engine a host whose KVM offers nested VMX.
 */
const VMX_KERNELS = ["vmx_basic", "vmx_ept", "vmx_events", "vmx_fail", "vmx_unrestricted"] as const;

/**
 * runOn for a VMX kernel: on the kvm engine, a failed run whose stderr carries the kvm
 * engine's hint that the host offers no nested VMX becomes a skip that quotes the hint.
 */
async function runVmx(
  t: TestContext,
  engine: EngineName,
  kernel: string,
  extraArgs: string[] = [],
): Promise<RunResult | null> {
  const r = await runOn(t, engine, kernel, "", extraArgs);
  if (r === null || engine !== "kvm" || r.status === EXIT_PASS) return r;
  const hint = lines(r.stderr).find((l) => l.includes("offers no nested VMX"));
  if (hint !== undefined) {
    t.skip(`no VMX on this host's KVM: ${hint}`);
    return null;
  }
  return r;
}

function lines(text: string): string[] {
  return text.split("\n").map((line) => line.replace(/\r$/, ""));
}

/** The end of the guest's output and of shv's diagnostics, for assertion messages. */
function describeRun(r: RunResult): string {
  const tail = (s: string) => lines(s).slice(-25).join("\n");
  return `exit status ${r.status} (signal ${r.signal})\n--- stdout (end)\n${tail(r.stdout)}\n--- stderr (end)\n${tail(r.stderr)}`;
}

/** Every kernel ends with PASS (exit code 0, status 1) and prints no FAIL line. */
function assertPassed(r: RunResult): void {
  const out = lines(r.stdout);
  assert.ok(out.includes("PASS"), `no PASS line\n${describeRun(r)}`);
  assert.ok(!out.some((l) => l.startsWith("FAIL")), `a check failed\n${describeRun(r)}`);
  assert.equal(r.status, EXIT_PASS, `exit status is not ${EXIT_PASS}\n${describeRun(r)}`);
}

before(() => {
  const make = spawnSync("make", ["-s", "-C", path.join(root, "guests")], { encoding: "utf8" });
  assert.equal(make.status, 0, `building the guest kernels failed:\n${make.stdout}${make.stderr}`);
});

function hostCompute(iters: number): string[] {
  const host = path.join(guestBuild, "host", "compute");
  assert.ok(existsSync(host), `${host} is missing`);
  const r = spawnSync(host, [`iters=${iters}`], { encoding: "utf8" });
  assert.equal(r.status, 0, `the host compute program failed: ${r.stderr}`);
  const out = lines(r.stdout);
  while (out.length && out[out.length - 1] === "") out.pop();
  return out;
}

for (const engine of ENGINES) {
  for (const variant of VARIANTS) {
    describe(`guest kernels (${variant}, ${engine})`, { concurrency: 2 }, () => {
      for (const opt of OPTS) {
        test(`hello-${opt}: multiboot command line, memory sizes and map`, async (t) => {
          const kernel = kernelPath(variant, "hello", opt);
          const r = await runOn(t, engine, kernel, "a b=c");
          if (r === null) return;
          assertPassed(r);
          const out = lines(r.stdout);
          assert.ok(out.includes("hello from shv guest"), describeRun(r));
          // As with QEMU's -kernel, the multiboot command line is the kernel file name, a
          // space, then the --append string.
          assert.ok(
            out.includes(`cmdline: ${kernel} a b=c`),
            `command line not echoed\n${describeRun(r)}`,
          );
          // 512 MiB by default: 639 KiB of conventional memory, then 512 MiB - 1 MiB from 1 MiB.
          assert.ok(out.includes("mem_lower=639 mem_upper=523264"), describeRun(r));
          assert.ok(
            out.some((l) => /^mmap: base=0x[0-9a-f]+ len=0x[0-9a-f]+ type=\d+$/.test(l)),
            `no memory map entries\n${describeRun(r)}`,
          );
        });

        test(`compute-${opt}: output equals the host build's`, async (t) => {
          const iters = COMPUTE_ITERS[engine];
          const expected = hostCompute(iters);
          const r = await runOn(t, engine, kernelPath(variant, "compute", opt), `iters=${iters}`);
          if (r === null) return;
          assertPassed(r);
          const out = lines(r.stdout);
          const start = out.indexOf(expected[0]);
          assert.ok(start >= 0, `no "${expected[0]}" line\n${describeRun(r)}`);
          assert.deepEqual(out.slice(start, start + expected.length), expected);
        });

        for (const name of ["exceptions", "paging", "usermode", "debug", "fpu"]) {
          test(`${name}-${opt}`, async (t) => {
            const r = await runOn(t, engine, kernelPath(variant, name, opt), "");
            if (r !== null) assertPassed(r);
          });
        }

        for (const name of VMX_KERNELS) {
          test(`${name}-${opt} (VMX)`, async (t) => {
            const r = await runVmx(t, engine, kernelPath(variant, name, opt));
            if (r !== null) assertPassed(r);
          });
        }

        if (variant !== "pae") {
          test(`realmode-${opt}: to real mode and back, printing at each stage`, async (t) => {
            const r = await runOn(t, engine, kernelPath(variant, "realmode", opt), "");
            if (r === null) return;
            assertPassed(r);
            const stages = lines(r.stdout).filter((l) => l.startsWith("realmode: "));
            assert.deepEqual(
              stages,
              [
                "realmode: 32-bit protected mode (multiboot entry)",
                "realmode: 16-bit protected mode",
                "realmode: real mode, CS=0800",
                "realmode: INT 30h through the real-mode IVT",
                "realmode: back to protected mode",
                "realmode: 32-bit protected mode again",
                variant === "amd64"
                  ? "realmode: on to long mode"
                  : "realmode: on to the runtime, in protected mode",
                variant === "amd64"
                  ? "realmode: checks, in 64-bit mode"
                  : "realmode: checks, in 32-bit protected mode",
              ],
              describeRun(r),
            );
          });
        }
      }
    });
  }

  test(`hello with -m 64 reports 63 MiB of upper memory (${engine})`, async (t) => {
    const r = await runOn(t, engine, kernelPath("i386", "hello", "O2"), "a b=c", ["-m", "64"]);
    if (r === null) return;
    assertPassed(r);
    assert.ok(lines(r.stdout).includes("mem_lower=639 mem_upper=64512"), describeRun(r));
  });
}

test("hello lists multiboot modules (--initrd) with their strings and contents", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "shv-guests-"));
  try {
    const first = path.join(dir, "first.bin");
    const second = path.join(dir, "second.bin");
    const firstData = Buffer.from("SHV module data\x00\x01\x02", "latin1");
    writeFileSync(first, firstData);
    writeFileSync(second, "second");
    const r = await runGuest(kernelPath("pae", "hello", "Os"), "x", [
      "--initrd",
      `${first} modarg=1,${second}`,
    ]);
    assertPassed(r);
    const out = lines(r.stdout);
    assert.ok(out.includes("mods_count=2"), describeRun(r));
    const modLine =
      /^mod\[\d+\]: start=0x([0-9a-f]+) end=0x([0-9a-f]+) string='(.*)' bytes=([0-9a-f]*)$/;
    const mods = out.flatMap((l) => {
      const m = modLine.exec(l);
      return m
        ? [{ start: parseInt(m[1], 16), end: parseInt(m[2], 16), text: m[3], bytes: m[4] }]
        : [];
    });
    // The kernel's header asks for page-aligned modules; it prints up to 16 bytes of each.
    assert.deepEqual(
      mods.map((m) => [m.text, m.bytes, m.end - m.start, m.start % 4096]),
      [
        [`${first} modarg=1`, firstData.subarray(0, 16).toString("hex"), firstData.length, 0],
        [second, Buffer.from("second").toString("hex"), 6, 0],
      ],
      describeRun(r),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const engine of ENGINES) {
  describe(`triple fault (${engine})`, () => {
    const kernel = kernelPath("i386", "triple", "O2");

    test("with --no-reboot: exit status 3, the fault chain and the registers on stderr", async (t) => {
      const r = await runOn(t, engine, kernel, "");
      if (r === null) return;
      assert.equal(r.status, 3, describeRun(r));
      assert.ok(lines(r.stdout).includes("triple: boot 0"), describeRun(r));
      const err = lines(r.stderr);
      if (engine === "kvm") {
        // KVM reports the shutdown, not the faults that led to it.
        assert.match(err[0], /^shv: triple fault.*: shutdown \(KVM_EXIT_SHUTDOWN\)$/);
        assert.ok(
          err.some((l) => /^EIP=[0-9a-f]{8} EFLAGS=/.test(l)),
          describeRun(r),
        );
        assert.ok(
          err.some((l) => l.startsWith("code: cc ")),
          describeRun(r),
        );
        return;
      }
      // INT3 through an IDT with limit 0: #GP(3*8+2), whose delivery raises #GP(13*8+2+EXT),
      // which makes a #DF, whose delivery raises #GP(8*8+2+EXT): shutdown (SDM Vol. 3A, 6.15).
      assert.match(
        err[0],
        /^shv: triple fault.*#GP\(0x1a\) at 0008:[0-9a-f]{8} -> #GP\(0x6b\).* -> #DF\(0x0\) -> #GP\(0x43\)/,
      );
      assert.ok(
        err.some((l) => /^EIP=[0-9a-f]{8} EFLAGS=/.test(l)),
        describeRun(r),
      );
      assert.ok(err.includes("code: int3"), describeRun(r));
    });

    test("without --no-reboot: the machine resets and runs the kernel again", async (t) => {
      const r = await runOn(t, engine, kernel, "", [], false);
      if (r === null) return;
      assertPassed(r);
      const boots = lines(r.stdout).filter((l) => l.startsWith("triple: boot "));
      assert.deepEqual(boots, ["triple: boot 0", "triple: boot 1", "triple: boot 2"]);
    });
  });
}

describe("VMX trace (soft)", () => {
  for (const variant of VARIANTS) {
    test(`vmx_fail-O2 (${variant}) with --trace vmx: the failed VM-entry check, its SDM section and field`, async () => {
      const r = await runGuest(kernelPath(variant, "vmx_fail", "O2"), "", ["--trace", "vmx"]);
      assertPassed(r);
      const err = lines(r.stderr);
      // The bad guest CS (a data-segment type): SDM 27.3.1.2, the field and its value, and
      // the outcome, a VM-entry failure exit (reason 33).
      const cs = variant === "amd64" ? "0xa093" : "0xc093";
      const failed = new RegExp(
        `^vmx cpu0: VM-entry check failed: 27\\.3\\.1\\.2 CS .*: guest CS access rights = ${cs} \\(exit reason 33`,
      );
      assert.ok(
        err.some((l) => failed.test(l)),
        describeRun(r),
      );
      // The VMfailValid cases name their VM-instruction error, and guest VM exits appear.
      assert.ok(
        err.includes("vmx cpu0: VMfailValid(4: VMLAUNCH with non-clear VMCS)"),
        describeRun(r),
      );
      assert.ok(
        err.some((l) => /^vmx cpu0: VM exit VMCALL rip=0x[0-9a-f]+$/.test(l)),
        describeRun(r),
      );
      // Trace lines never reach the guest's serial output.
      assert.ok(!lines(r.stdout).some((l) => l.startsWith("vmx cpu")), describeRun(r));
    });
  }
});

/**
 * Per-CPU lines of the smp kernel: "cpu N: apic_id=N started=1 cr0=... cr3=... cr4=...
 * timer_ticks=T nmis=M", with "efer=... cs.l=L" before timer_ticks on amd64.
 */
const SMP_CPU_LINE =
  /^cpu (\d+): apic_id=(\d+) started=1 cr0=(0x[0-9a-f]+) cr3=(0x[0-9a-f]+) cr4=(0x[0-9a-f]+)(?: efer=(0x[0-9a-f]+) cs\.l=(\d))? timer_ticks=(\d+) nmis=(\d+)$/;
const CR4_PAE = 0x20;
/** IA32_EFER.LME and LMA: IA-32e mode enabled and active. */
const EFER_LME_LMA = 0x500;

describe("smp (soft)", { concurrency: 2 }, () => {
  for (const variant of VARIANTS) {
    for (const cpus of [1, 2, 4, 8]) {
      test(`smp-O2 (${variant}), ${cpus} CPU(s): MADT, INIT-SIPI-SIPI, per-CPU timers, NMI IPIs`, async () => {
        const r = await runGuest(kernelPath(variant, "smp", "O2"), `cpus=${cpus}`, [
          "--smp",
          String(cpus),
        ]);
        assertPassed(r);
        const out = lines(r.stdout);
        assert.ok(
          out.some((l) =>
            l.startsWith(`madt: ${cpus} CPUs, local APICs at 0xfee00000, 1 I/O APIC`),
          ),
          describeRun(r),
        );
        const perCpu = out.flatMap((l) => {
          const m = SMP_CPU_LINE.exec(l);
          return m
            ? [
                {
                  cpu: +m[1],
                  apic: +m[2],
                  cr0: m[3],
                  cr3: m[4],
                  cr4: Number(m[5]),
                  efer: m[6] === undefined ? undefined : Number(m[6]),
                  csL: m[7] === undefined ? undefined : +m[7],
                  ticks: +m[8],
                  nmis: +m[9],
                },
              ]
            : [];
        });
        assert.equal(perCpu.length, cpus, describeRun(r));
        const bsp = perCpu[0];
        for (const c of perCpu) {
          assert.equal(c.apic, c.cpu);
          assert.equal(c.cr0, "0x80000011", "paging on every CPU, as on the BSP");
          assert.equal(c.cr3, bsp.cr3, `CPU ${c.cpu} on the BSP's page tables`);
          assert.equal(c.cr4, bsp.cr4, `CPU ${c.cpu}'s CR4`);
          assert.equal(c.efer, bsp.efer, `CPU ${c.cpu}'s IA32_EFER`);
          // 32-bit paging in i386; PAE paging in pae; 4-level paging in amd64, in 64-bit mode.
          assert.equal((c.cr4 & CR4_PAE) !== 0, variant !== "i386", `CPU ${c.cpu}'s CR4.PAE`);
          if (variant === "amd64") {
            assert.equal((c.efer ?? 0) & EFER_LME_LMA, EFER_LME_LMA, `CPU ${c.cpu} in IA-32e mode`);
            assert.equal(c.csL, 1, `CPU ${c.cpu} in 64-bit mode`);
          } else {
            assert.equal(c.efer, undefined, "no IA32_EFER in the 32-bit kernels' lines");
          }
          assert.ok(c.ticks >= 10, `CPU ${c.cpu}: ${c.ticks} timer interrupts`);
          assert.equal(c.nmis, c.cpu === 0 ? 0 : 1, `CPU ${c.cpu}'s NMIs`);
        }
      });
    }
  }

  test("two runs of the same kernel and options print byte-identical output", async () => {
    const run = () => runGuest(kernelPath("i386", "smp", "O0"), "cpus=4", ["--smp", "4"]);
    const [first, second] = await Promise.all([run(), run()]);
    assertPassed(first);
    // The output holds timing-dependent numbers (timer calibration, PIT polls, the TSC).
    assert.ok(
      lines(first.stdout).some((l) => /^bsp: \d+ PIT polls, TSC 0x[0-9a-f]+ at the end$/.test(l)),
    );
    assert.equal(second.stdout, first.stdout);
  });
});
