/**
 * The `shv` command as users run it: `node bin/shv.js`, built from src/ into dist/. Bad
 * options and unusable kernels must give exit status 2 and one line on stderr, never a
 * stack trace.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { aoutImage, elfImage, multibootHeader, pattern } from "./helpers/kernel-images.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
let dir: string;
let kernel: string;
let badChecksum: string;
let garbage: string;

/** Newest modification time of the files under `path`, or 0 when it does not exist. */
function newest(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

/** Builds dist/ unless it is newer than src/ (the test command has just built it). */
function ensureBuilt(): void {
  if (newest(join(ROOT, "dist")) > newest(join(ROOT, "src"))) return;
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "inherit" });
}

function shv(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/shv.js", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs shv and expects exit status 2 with exactly one "shv: ..." line on stderr. */
function assertUsageError(args: string[], message: RegExp): void {
  const r = shv(...args);
  assert.equal(r.status, 2, `exit status for ${args.join(" ")}: stderr ${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(lines[0], /^shv: /);
  assert.match(lines[0], message);
  assert.doesNotMatch(r.stderr, /\bat .*:\d+:\d+|Error:/, "no stack trace");
}

before(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), "shv-cli-"));
  const segments = [{ paddr: 0x100000, data: pattern(64) }];
  kernel = join(dir, "kernel.elf");
  writeFileSync(kernel, elfImage({ bits: 32, entry: 0x100000, segments }));
  badChecksum = join(dir, "bad-checksum.elf");
  const header = multibootHeader(0, undefined, 0x12345678);
  writeFileSync(badChecksum, elfImage({ bits: 32, entry: 0x100000, segments, header }));
  garbage = join(dir, "garbage.bin");
  writeFileSync(garbage, pattern(5000, 3));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("shv run: usage errors", () => {
  it("needs a command and a kernel", () => {
    assertUsageError([], /no command given/);
    assertUsageError(["run"], /required option '--kernel <file>' not specified/);
    assertUsageError(["run", "--kernel"], /option '--kernel <file>' argument missing/);
    assertUsageError(["bogus"], /unknown command 'bogus'/);
  });

  it("refuses unknown options and stray arguments", () => {
    assertUsageError(["run", "--kernel", kernel, "--bogus"], /unknown option '--bogus'/);
    assertUsageError(["run", "--kernel", kernel, "extra"], /too many arguments/);
  });

  it("names a missing or unreadable kernel file", () => {
    const missing = join(dir, "missing.elf");
    assertUsageError(["run", "--kernel", missing], /kernel file '.*missing\.elf' not found/);
    assertUsageError(["run", "--kernel", dir], /kernel file '.*' is a directory/);
  });

  it("refuses kernels that are not multiboot images", () => {
    assertUsageError(["run", "--kernel", garbage], /no multiboot header/);
    assertUsageError(["run", "--kernel", badChecksum], /bad checksum/);
  });

  it("validates memory, CPUs, engine, timeout and serial values", () => {
    const run = (...more: string[]) => ["run", "--kernel", kernel, ...more];
    assertUsageError(run("-m", "0"), /invalid memory size '0' \(expected 2 to 3072 MiB\)/);
    assertUsageError(run("-m", "4096"), /invalid memory size '4096'/);
    assertUsageError(run("--memory", "lots"), /invalid memory size 'lots'/);
    assertUsageError(
      run("--smp", "65"),
      /^shv: invalid CPU count '65' for --smp \(expected 1 to 64\)$/,
    );
    assertUsageError(run("--smp", "0"), /invalid CPU count '0'/);
    assertUsageError(run("--smp", "two"), /invalid CPU count 'two'/);
    assertUsageError(run("--mips", "0"), /invalid --mips '0'/);
    assertUsageError(
      run("--display", "vnc"),
      /invalid --display 'vnc' \(expected none or curses\)/,
    );
    assertUsageError(run("-vga", "bogus"), /invalid -vga 'bogus'/);
    assertUsageError(run("-vga", "none", "--vga"), /-vga none leaves no screen to show/);
    assertUsageError(run("--vga"), /--vga on the terminal needs --serial and --debugcon off stdio/);
    assertUsageError(run("--engine", "bogus"), /unknown engine 'bogus'/);
    assertUsageError(run("-accel", "hax"), /unknown accelerator 'hax' for -accel/);
    assertUsageError(run("--timeout", "-1"), /invalid --timeout '-1'/);
    assertUsageError(run("--serial", "tcp:1234"), /invalid --serial 'tcp:1234'/);
    assertUsageError(run("--initrd", join(dir, "nope.bin")), /module file '.*nope\.bin' not found/);
  });
});

describe("shv run: QEMU spellings", () => {
  it("accepts -kernel, -append, -initrd, -smp and -m", () => {
    const missing = join(dir, "missing.elf");
    // Parsing succeeds: the run gets as far as reading the kernel file.
    assertUsageError(
      ["run", "-kernel", missing, "-append", "a b", "-initrd", "m x", "-smp", "1", "-m", "64"],
      /kernel file '.*missing\.elf' not found/,
    );
    assertUsageError(["run", "-kernel", kernel, "-smp", "cpus=65"], /invalid CPU count 'cpus=65'/);
    // -display none and -vga std are accepted: the run gets as far as the kernel file.
    assertUsageError(
      ["run", "-kernel", missing, "-smp", "cpus=4", "-display", "none", "-vga", "std"],
      /kernel file '.*missing\.elf' not found/,
    );
    assertUsageError(["run", "-kernel", kernel, "-m", "0"], /invalid memory size '0'/);
    const module = join(dir, "mod.bin");
    assertUsageError(["run", "-kernel", kernel, "-initrd", `${module} arg`], /module file/);
  });

  it("keeps option values that look like QEMU options", () => {
    const missing = join(dir, "missing.elf");
    assertUsageError(["run", "--kernel", missing, "--append", "-kernel"], /kernel file/);
  });
});

/** A flat kernel whose code (32-bit, at 0x100020) is `code`. */
function codeKernel(name: string, code: number[]): string {
  const file = join(dir, name);
  writeFileSync(file, aoutImage(0x100000, Uint8Array.from(code), 0, 0x100020));
  return file;
}

describe("shv run: how runs end", () => {
  it("prints COM1 output and exits with the isa-debug-exit status", () => {
    const kernel = codeKernel("exit.bin", [
      ...[0x66, 0xba, 0xf8, 0x03], // mov dx, 0x3f8
      ...[0xb0, 0x53], // mov al, 'S'
      0xee, // out dx, al
      ...[0x66, 0xba, 0xf4, 0x00], // mov dx, 0xf4
      ...[0xb8, 0x07, 0x00, 0x00, 0x00], // mov eax, 7
      0xef, // out dx, eax
    ]);
    const r = shv("run", "--kernel", kernel, "--timeout", "30");
    assert.equal(r.status, 15, r.stderr);
    assert.equal(r.stdout, "S");
    assert.equal(r.stderr, "");
  });

  it("exits 124 with a message when the timeout expires, spinning or halted", () => {
    const spin = codeKernel("spin.bin", [0xeb, 0xfe]); // jmp $
    const halt = codeKernel("halt.bin", [0xfa, 0xf4]); // cli; hlt
    for (const kernel of [spin, halt]) {
      const r = shv("run", "--kernel", kernel, "--timeout", "0.3");
      assert.equal(r.status, 124);
      assert.equal(r.stderr, "shv: timeout after 0.3 s\n");
    }
  });

  it("reports a triple fault with --no-reboot: exit 3, the fault chain and registers", () => {
    const kernel = codeKernel("triple-fault.bin", [
      ...[0x0f, 0x01, 0x1d, 0x29, 0x00, 0x10, 0x00], // lidt [0x100029]: limit 0
      ...[0x0f, 0x0b], // ud2: #UD, no IDT entry -> #GP -> #DF -> triple fault
      ...[0, 0, 0, 0, 0, 0], // at 0x100029: the IDTR image
    ]);
    const r = shv("run", "--kernel", kernel, "--no-reboot", "--timeout", "30");
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /^shv: triple fault, guest shut down \(--no-reboot\): .*#UD/);
    assert.match(r.stderr, /EIP=/);
    // Without --no-reboot the machine resets and runs the kernel again, until the timeout.
    const again = shv("run", "--kernel", kernel, "--timeout", "0.3");
    assert.equal(again.status, 124);
  });
});

describe("shv run: the PC platform", () => {
  it("stops with status 0 and a message when the guest resets the machine under --no-reboot", () => {
    const kernel = codeKernel("reset.bin", [
      ...[0xb0, 0xfe], // mov al, 0xfe
      ...[0xe6, 0x64], // out 0x64, al: pulse the 8042's reset line
      ...[0xeb, 0xfe], // jmp $
    ]);
    const r = shv("run", "--kernel", kernel, "--no-reboot", "--timeout", "30");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stderr,
      "shv: the guest reset the machine (keyboard controller reset line); stopped (--no-reboot)\n",
    );
  });

  it("writes the VGA text screen to the --vga file", () => {
    const kernel = codeKernel("vga.bin", [
      ...[0xc7, 0x05, 0x00, 0x80, 0x0b, 0x00, 0x48, 0x1f, 0x69, 0x1f], // mov dword [0xb8000], "Hi"
      ...[0x66, 0xba, 0xf4, 0x00], // mov dx, 0xf4
      ...[0xb8, 0x00, 0x00, 0x00, 0x00], // mov eax, 0
      0xef, // out dx, eax
    ]);
    const screen = join(dir, "screen.txt");
    const r = shv("run", "--kernel", kernel, "--vga", screen, "--timeout", "30");
    assert.equal(r.status, 1, r.stderr);
    const lines = readFileSync(screen, "utf8").split("\n");
    assert.equal(lines[0], "Hi");
    assert.equal(lines.length, 26, "25 lines, each ending in a newline");
  });

  it("runs 64 CPUs", () => {
    const kernel = codeKernel("smp.bin", [
      ...[0x66, 0xba, 0xf4, 0x00], // mov dx, 0xf4
      ...[0xb8, 0x02, 0x00, 0x00, 0x00], // mov eax, 2
      0xef, // out dx, eax
    ]);
    assert.equal(shv("run", "--kernel", kernel, "--smp", "64").status, 5);
  });

  it("keeps virtual time behind the wall clock with --realtime", () => {
    // Waits for the RTC's seconds to change twice: its updates come 0.5 and 1.5 s after
    // power-on. At 1 MIPS that is 1.5 million instructions, a blink for the host.
    const kernel = codeKernel("rtc-wait.bin", [
      ...[0xb0, 0x00, 0xe6, 0x70, 0xe4, 0x71], // mov al, 0; out 0x70, al; in al, 0x71
      ...[0x88, 0xc3], // mov bl, al
      ...[0xb9, 0x02, 0x00, 0x00, 0x00], // mov ecx, 2
      ...[0xb0, 0x00, 0xe6, 0x70, 0xe4, 0x71], // again: read the seconds
      ...[0x38, 0xd8, 0x74, 0xf6], // cmp al, bl; je again
      ...[0x88, 0xc3, 0xe2, 0xf2], // mov bl, al; loop again
      ...[0x66, 0xba, 0xf4, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x00, 0xef], // exit 0
    ]);
    const start = performance.now();
    const r = shv("run", "--kernel", kernel, "--mips", "1", "--realtime", "--timeout", "30");
    const took = performance.now() - start;
    assert.equal(r.status, 1, r.stderr);
    assert.ok(took >= 1400, `1.5 s of virtual time passed in ${took} ms`);
  });
});

describe("shv --help", () => {
  it("prints usage on stdout and exits 0", () => {
    const r = shv("run", "--help");
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--kernel <file>/);
    assert.match(r.stdout, /--no-reboot/);
    assert.equal(r.stderr, "");
  });
});
