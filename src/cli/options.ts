/**
 * Parsing of `shv run` option values, and QEMU's single-dash option spellings. Each parser
 * throws a UserError that names the option and the bad value.
 */
import type { Engine } from "../engine/engine.js";
import { softEngine } from "../engine/soft.js";
import { UserError } from "../errors.js";
import { MAX_MEMORY_MIB, MIN_MEMORY_MIB } from "../machine/machine.js";

/** QEMU's spellings of the options SHV shares with it, so QEMU command lines carry over. */
const QEMU_SPELLINGS = new Map([
  ["-kernel", "--kernel"],
  ["-append", "--append"],
  ["-initrd", "--initrd"],
  ["-smp", "--smp"],
  ["-serial", "--serial"],
  ["-debugcon", "--debugcon"],
  ["-no-reboot", "--no-reboot"],
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
]);

/** Rewrites QEMU spellings (`-kernel FILE`) to SHV's (`--kernel FILE`) before parsing. */
export function rewriteQemuSpellings(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") return out.concat(argv.slice(i));
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

/** `--smp`: the number of vCPUs, a positive integer. */
export function parseCpuCount(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1)) throw new UserError(`invalid CPU count '${value}' for --smp (expected 1 or more)`);
  return n;
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

/** `--engine`: the CPU engine. Only the software CPU exists so far. */
export function parseEngine(value: string): Engine {
  if (value === softEngine.name) return softEngine;
  if (value === "kvm")
    throw new UserError("the kvm engine is not available yet; use --engine soft");
  throw new UserError(`unknown engine '${value}' (expected soft or kvm)`);
}
