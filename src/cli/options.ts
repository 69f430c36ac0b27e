/**
 * Parsing of `shv run` option values, and QEMU's single-dash option spellings. Each parser
 * throws a UserError that names the option and the bad value.
 */
import type { Engine } from "../engine/engine.js";
import { kvmEngine } from "../engine/kvm/index.js";
import { softEngine } from "../engine/soft.js";
import { UserError } from "../errors.js";
import { MAX_CPUS, MAX_MEMORY_MIB, MAX_MIPS, MIN_MEMORY_MIB } from "../machine/machine.js";

/** QEMU's spellings of the options SHV shares with it, so QEMU command lines carry over. */
const QEMU_SPELLINGS = new Map([
  ["-kernel", "--kernel"],
  ["-append", "--append"],
  ["-initrd", "--initrd"],
  ["-smp", "--smp"],
  ["-serial", "--serial"],
  ["-debugcon", "--debugcon"],
  ["-no-reboot", "--no-reboot"],
  ["-display", "--display"],
  // QEMU's -vga picks a display adapter, SHV's --vga shows the screen: see --vga-type.
  ["-vga", "--vga-type"],
]);

/** The options that take a value: the next argument is their value, never rewritten. */
const VALUE_OPTIONS = new Set([
  "--kernel",
  "--append",
  "--initrd",
  "-m",
  "--memory",
  "--smp",
  "--engine",
  "--serial",
  "--debugcon",
  "--timeout",
  "--mips",
  "--display",
  "--vga-type",
]);

/** QEMU's accelerator names (`-accel NAME`) and the SHV engine each one means. */
const QEMU_ACCELERATORS = new Map([
  ["kvm", "kvm"],
  ["tcg", "soft"], // QEMU's software emulation
]);

/**
 * Rewrites QEMU spellings (`-kernel FILE`) to SHV's (`--kernel FILE`) before parsing, and
 * QEMU's accelerator options to SHV's engine: `-enable-kvm` and `-accel kvm` are
 * `--engine kvm`, `-accel tcg` is `--engine soft`.
 */
export function rewriteQemuSpellings(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") return out.concat(argv.slice(i));
    if (argv[i] === "-enable-kvm" || argv[i] === "--enable-kvm") {
      out.push("--engine", "kvm");
      continue;
    }
    if ((argv[i] === "-accel" || argv[i] === "--accel") && i + 1 < argv.length) {
      const accel = argv[++i];
      // QEMU accepts properties after the name (kvm,kernel-irqchip=on); SHV has none.
      const engine = QEMU_ACCELERATORS.get(accel);
      if (engine === undefined) {
        throw new UserError(`unknown accelerator '${accel}' for -accel (expected kvm or tcg)`);
      }
      out.push("--engine", engine);
      continue;
    }
    const arg = QEMU_SPELLINGS.get(argv[i]) ?? argv[i];
    out.push(arg);
    if (VALUE_OPTIONS.has(arg) && i + 1 < argv.length) out.push(argv[++i]);
  }
  return out;
}

/** `-m`: MiB as a plain number, or with QEMU's M or G suffix. */
export function parseMemoryMiB(value: string): number {
  const m = /^(\d+)([MG]?)$/i.exec(value);
  const mib = m === null ? NaN : Number(m[1]) * (m[2].toUpperCase() === "G" ? 1024 : 1);
  if (!(mib >= MIN_MEMORY_MIB && mib <= MAX_MEMORY_MIB)) {
    throw new UserError(
      `invalid memory size '${value}' (expected ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB} MiB)`,
    );
  }
  return mib;
}

/** `--smp`: the number of vCPUs, `N` or QEMU's `cpus=N`, from 1 to MAX_CPUS. */
export function parseCpuCount(value: string): number {
  const m = /^(?:cpus=)?(\d+)$/.exec(value);
  const n = m === null ? NaN : Number(m[1]);
  if (!(n >= 1 && n <= MAX_CPUS)) {
    throw new UserError(`invalid CPU count '${value}' for --smp (expected 1 to ${MAX_CPUS})`);
  }
  return n;
}

/** `--mips`: virtual instructions per virtual microsecond, per vCPU. */
export function parseMips(value: string): number {
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(n > 0 && n <= MAX_MIPS)) {
    throw new UserError(`invalid --mips '${value}' (expected a speed above 0, up to ${MAX_MIPS})`);
  }
  return n;
}

/** Where the VGA text screen is shown: nowhere, on the terminal, or rewritten into a file. */
export type ScreenSpec = { kind: "none" } | { kind: "terminal" } | { kind: "file"; path: string };

/** QEMU's display adapters: all of them show text mode the same way; `none` has no VGA. */
const VGA_TYPES = new Set(["std", "cirrus", "vmware", "qxl", "virtio", "none"]);

/**
 * `--vga [FILE]`, `--display none|curses` and `--vga-type TYPE` (QEMU's `-vga`): whether the
 * machine has a VGA and where its screen goes. `--vga` alone and `--display curses` draw it
 * on the terminal.
 */
export function parseScreen(opts: { vga?: string | boolean; display?: string; vgaType?: string }): {
  vga: boolean;
  screen: ScreenSpec;
} {
  if (opts.vgaType !== undefined && !VGA_TYPES.has(opts.vgaType)) {
    throw new UserError(`invalid -vga '${opts.vgaType}' (expected ${[...VGA_TYPES].join(", ")})`);
  }
  if (opts.display !== undefined && opts.display !== "none" && opts.display !== "curses") {
    throw new UserError(`invalid --display '${opts.display}' (expected none or curses)`);
  }
  const vga = opts.vgaType !== "none";
  let screen: ScreenSpec = { kind: "none" };
  if (typeof opts.vga === "string") screen = { kind: "file", path: opts.vga };
  else if (opts.vga === true || opts.display === "curses") screen = { kind: "terminal" };
  if (screen.kind !== "none" && !vga) throw new UserError("-vga none leaves no screen to show");
  return { vga, screen };
}

/** `--timeout`: positive seconds, fractions allowed. */
export function parseTimeoutSeconds(value: string): number {
  const s = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(s > 0)) throw new UserError(`invalid --timeout '${value}' (expected seconds above 0)`);
  return s;
}

/** Where a character device's output goes (QEMU's -serial and -debugcon values). */
export type OutputSpec = { kind: "stdio" } | { kind: "file"; path: string } | { kind: "none" };

export function parseOutputSpec(option: string, value: string): OutputSpec {
  if (value === "stdio" || value === "none") return { kind: value };
  if (value.startsWith("file:") && value.length > "file:".length) {
    return { kind: "file", path: value.slice("file:".length) };
  }
  throw new UserError(`invalid ${option} '${value}' (expected stdio, file:PATH or none)`);
}

export interface ModuleSpec {
  /** The file to load: the entry up to its first space. */
  path: string;
  /** The module's string: the whole entry, file name included, as QEMU passes it. */
  cmdline: string;
}

/**
 * `--initrd 'mod1 arg1 arg2,mod2'`: comma-separated entries, each a file name and optional
 * arguments; ",," stands for a comma inside an entry, as in QEMU's option syntax.
 */
export function parseInitrd(value: string): ModuleSpec[] {
  const entries: string[] = [];
  let current = "";
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== ",") {
      current += value[i];
    } else if (value[i + 1] === ",") {
      current += ",";
      i++;
    } else {
      entries.push(current);
      current = "";
    }
  }
  entries.push(current);
  return entries.map((cmdline) => {
    const path = cmdline.split(" ")[0];
    if (path === "") throw new UserError(`--initrd entry '${cmdline}' has no file name`);
    return { path, cmdline };
  });
}

/** `--engine`: the CPU engine, SHV's software CPU or Linux KVM. */
export function parseEngine(value: string): Engine {
  if (value === softEngine.name) return softEngine;
  if (value === kvmEngine.name) return kvmEngine;
  throw new UserError(`unknown engine '${value}' (expected soft or kvm)`);
}

/** What `--trace` can show. */
export type TraceTopic = "vmx";
const TRACE_TOPICS: readonly TraceTopic[] = ["vmx"];

/** `--trace TOPIC[,TOPIC...]`: the topics to trace (today only vmx). */
export function parseTrace(value: string): Set<TraceTopic> {
  const topics = new Set<TraceTopic>();
  for (const t of value.split(",")) {
    if (!TRACE_TOPICS.includes(t as TraceTopic)) {
      throw new UserError(`invalid --trace '${t}' (expected ${TRACE_TOPICS.join(", ")})`);
    }
    topics.add(t as TraceTopic);
  }
  return topics;
}
