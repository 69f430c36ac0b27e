/**
 * The `shv` command. `shv run --kernel FILE ...` boots a multiboot kernel with QEMU's option
 * names (QEMU's single-dash spellings work too). Exit statuses: the guest's isa-debug-exit
 * status (v << 1) | 1; 124 on timeout; 3 for a triple fault with --no-reboot; 2 for a
 * usage or input error (one line on stderr); 70 for an internal error.
 */
import { Command, CommanderError } from "commander";
import { Cpu } from "../cpu/cpu.js";
import { UserError } from "../errors.js";
import { Machine, type RunResult } from "../machine/machine.js";
import { attachConsole } from "./console.js";
import { VgaDisplay } from "./vga-display.js";
import { Outputs, readInputFile } from "./host-io.js";
import {
  parseCpuCount,
  parseEngine,
  parseInitrd,
  parseMemoryMiB,
  parseMips,
  parseOutputSpec,
  parseScreen,
  parseTimeoutSeconds,
  parseTrace,
  rewriteQemuSpellings,
} from "./options.js";

export const EXIT_USAGE = 2;
export const EXIT_TRIPLE_FAULT = 3;
/** As coreutils `timeout`. */
export const EXIT_TIMEOUT = 124;
/** EX_SOFTWARE from sysexits.h: an internal error. */
export const EXIT_INTERNAL = 70;

interface RunOptions {
  kernel: string;
  append: string;
  initrd?: string;
  memory: string;
  smp: string;
  engine: string;
  serial: string;
  debugcon: string;
  reboot: boolean;
  timeout?: string;
  mips?: string;
  realtime?: boolean;
  vga?: string | boolean;
  vgaType?: string;
  display?: string;
  trace?: string;
  traceFile?: string;
}

/** Runs the command line `argv` (without node and the script) and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  try {
    return await parseAndRun(rewriteQemuSpellings(argv));
  } catch (e) {
    if (e instanceof UserError) {
      printError(e.message);
      return EXIT_USAGE;
    }
    printError(`internal error: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.SHV_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return EXIT_INTERNAL;
  }
}

async function parseAndRun(argv: string[]): Promise<number> {
  if (argv.length === 0) throw new UserError("no command given; try 'shv run --kernel FILE'");
  let status = 0;
  const program = new Command("shv")
    .description("A small hypervisor: a virtual x86 PC running a multiboot kernel.")
    .exitOverride()
    .showSuggestionAfterError(false)
    // Usage errors are reported by main() as one line; help goes to stdout as usual.
    .configureOutput({ outputError: () => {} });
  program
    .command("run")
    .description("boot a multiboot kernel (QEMU spellings such as -kernel and -smp work too)")
    .requiredOption("--kernel <file>", "multiboot kernel: ELF32, ELF64 or a.out kludge")
    .option("--append <cmdline>", "kernel command line", "")
    .option("--initrd <modules>", "modules: 'file args' entries separated by ',' (',,' = ',')")
    .option("-m, --memory <MiB>", "guest RAM in MiB (M or G suffix accepted)", "512")
    .option("--smp <cpus>", "number of vCPUs, 1 to 64 (QEMU's cpus=N accepted)", "1")
    .option("--engine <name>", "CPU engine: soft or kvm (-enable-kvm, -accel kvm)", "soft")
    .option("--serial <dev>", "COM1 console: stdio, file:PATH or none", "stdio")
    .option("--debugcon <dev>", "port 0xE9 console: stdio, file:PATH or none", "none")
    .option("--no-reboot", "stop on a triple fault instead of resetting (exit status 3)")
    .option("--timeout <seconds>", "stop after this many seconds (exit status 124)")
    .option("--mips <speed>", "virtual CPU speed: million instructions per second (default 100)")
    .option("--realtime", "pace virtual time to the wall clock (the RTC starts at the host's time)")
    .option("--vga [file]", "show the VGA text screen: on the terminal, or rewritten into FILE")
    .option("--display <type>", "QEMU's -display: none (the default) or curses (as --vga)")
    .option(
      "--vga-type <type>",
      "QEMU's -vga: std, cirrus, vmware, qxl or virtio (text mode), none",
    )
    .option("--trace <topics>", "trace to stderr (or --trace-file): vmx = every VM entry and exit")
    .option("--trace-file <file>", "write the --trace lines to FILE instead of stderr")
    .action(async (opts: RunOptions) => {
      status = await runCommand(opts);
    });

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // --help: commander has printed the help and asks for exit status 0.
    if (e.exitCode === 0) return 0;
    throw new UserError(e.message.split("\n")[0].replace(/^error: /, ""));
  }
  return status;
}

async function runCommand(opts: RunOptions): Promise<number> {
  const memoryMiB = parseMemoryMiB(opts.memory);
  const smp = parseCpuCount(opts.smp);
  const engine = parseEngine(opts.engine);
  const timeoutSeconds = opts.timeout === undefined ? null : parseTimeoutSeconds(opts.timeout);
  const serialSpec = parseOutputSpec("--serial", opts.serial);
  const debugconSpec = parseOutputSpec("--debugcon", opts.debugcon);
  const mips = opts.mips === undefined ? undefined : parseMips(opts.mips);
  const { vga, screen } = parseScreen(opts);
  const trace = opts.trace === undefined ? new Set() : parseTrace(opts.trace);
  if (trace.has("vmx") && engine.name !== "soft") {
    throw new UserError("--trace vmx needs --engine soft (VMX is the soft CPU's)");
  }
  if (
    screen.kind === "terminal" &&
    (serialSpec.kind === "stdio" || debugconSpec.kind === "stdio")
  ) {
    throw new UserError(
      "--vga on the terminal needs --serial and --debugcon off stdio (file:PATH or none)",
    );
  }
  const kernel = readInputFile("kernel file", opts.kernel);
  const note = engine.kernelNote?.(kernel);
  if (note) printError(`note: ${note}`);
  const modules = (opts.initrd === undefined ? [] : parseInitrd(opts.initrd)).map((m) => ({
    data: readInputFile("module file", m.path),
    cmdline: m.cmdline,
  }));

  const outputs = new Outputs();
  let display: VgaDisplay | null = null;
  try {
    const machine = new Machine({
      memoryMiB,
      smp,
      kernel,
      // QEMU passes the kernel's file name first; kvm-unit-tests read it as argv[0].
      cmdline: `${opts.kernel} ${opts.append}`,
      modules,
      serial: outputs.open(serialSpec, "serial"),
      debugcon: outputs.open(debugconSpec, "debugcon"),
      noReboot: !opts.reboot,
      timeoutSeconds,
      engine,
      mips,
      realtime: opts.realtime === true,
      vga,
    });
    if (trace.has("vmx")) {
      const line = traceLines(outputs, opts.traceFile);
      for (const vcpu of machine.vcpus) if (vcpu instanceof Cpu) vcpu.vmx.trace = line;
    }
    // Like a process killed by SIGPIPE: when the output's reader is gone, stop.
    outputs.onStdoutClosed = () => machine.quit();
    const vgaScreen = machine.platform.vga;
    display =
      screen.kind === "none" || vgaScreen === null ? null : new VgaDisplay(vgaScreen, screen);
    if (display) display.onClosed = () => machine.quit();
    display?.start();
    return report(await runWithConsole(machine, serialSpec.kind === "stdio"));
  } finally {
    display?.stop();
    outputs.close();
  }
}

/** Where trace lines go: stderr, or a file (never the serial stream on stdout). */
function traceLines(outputs: Outputs, file: string | undefined): (line: string) => void {
  if (file === undefined) return (line) => process.stderr.write(`${line}\n`);
  const sink = outputs.open({ kind: "file", path: file }, "trace");
  if (sink === null) throw new Error("no trace sink");
  return (line) => {
    for (let k = 0; k < line.length; k++) sink.write(line.charCodeAt(k) & 0xff);
    sink.write(10);
  };
}

/** Runs the machine with stdin as COM1's input (when COM1 is on stdio) and signals handled. */
async function runWithConsole(machine: Machine, consoleInput: boolean): Promise<RunResult> {
  const detach = consoleInput ? attachConsole(machine) : null;
  // A signal ends the run cleanly (as QEMU does), so the terminal is restored and the
  // output flushed.
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((signal) => {
    const handler = () => {
      printError(`terminating on ${signal}`);
      machine.quit();
    };
    process.on(signal, handler);
    return () => process.off(signal, handler);
  });
  try {
    return await machine.run();
  } finally {
    for (const remove of handlers) remove();
    detach?.();
  }
}

/** Prints what the user needs to know about how the run ended; returns the exit status. */
function report(result: RunResult): number {
  switch (result.kind) {
    case "exit":
      // A process exit status has 8 bits, as QEMU's exit() delivers them too.
      return result.status & 0xff;
    case "timeout":
      printError(`timeout after ${result.seconds} s`);
      return EXIT_TIMEOUT;
    case "shutdown":
      printError(`triple fault, guest shut down (--no-reboot): ${result.chain}`);
      if (result.registers !== "") process.stderr.write(result.registers.replace(/\n?$/, "\n"));
      return EXIT_TRIPLE_FAULT;
    case "reset":
      printError(`the guest reset the machine (${result.cause}); stopped (--no-reboot)`);
      return 0;
    case "poweroff":
    case "quit":
      return 0;
  }
}

function printError(message: string): void {
  process.stderr.write(`shv: ${message}\n`);
}
