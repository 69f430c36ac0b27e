/**
 * Host files and output streams for the `shv` command: input files read with errors a user
 * can act on, and buffered output sinks on stdout or files.
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { UserError } from "../errors.js";
import type { OutputSink } from "../machine/machine.js";
import type { OutputSpec } from "./options.js";

/** Reads a whole input file; `what` names it in errors ("kernel file", "module file"). */
export function readInputFile(what: string, path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UserError(`${what} '${path}' not found`);
    if (code === "EISDIR") throw new UserError(`${what} '${path}' is a directory`);
    throw new UserError(`cannot read ${what} '${path}': ${reason(e)}`);
  }
}

/** Collects bytes and hands them out in one write per flush. */
class BufferedSink implements OutputSink {
  private readonly buffer = new Uint8Array(4096);
  private length = 0;

  constructor(private readonly out: (bytes: Uint8Array) => void) {}

  write(byte: number): void {
    if (this.length === this.buffer.length) this.flush();
    this.buffer[this.length++] = byte;
  }

  flush(): void {
    if (this.length === 0) return;
    this.out(this.buffer.slice(0, this.length));
    this.length = 0;
  }
}

/** The output sinks of one run: one for stdout, one per file path; close() at the end. */
export class Outputs {
  /** Called when stdout's reader has gone away (EPIPE): nobody sees the output any more. */
  onStdoutClosed: (() => void) | null = null;
  private stdout: BufferedSink | null = null;
  private stdoutClosed = false;
  private readonly files = new Map<string, { fd: number; sink: BufferedSink }>();
  private readonly onStdoutError = () => {
    this.stdoutClosed = true;
    this.onStdoutClosed?.();
  };

  /** `what` names the device in errors ("serial", "debugcon"). */
  open(spec: OutputSpec, what: string): OutputSink | null {
    switch (spec.kind) {
      case "none":
        return null;
      case "stdio":
        if (this.stdout === null) {
          process.stdout.on("error", this.onStdoutError);
          this.stdout = new BufferedSink((bytes) => {
            if (!this.stdoutClosed) process.stdout.write(bytes);
          });
        }
        return this.stdout;
      case "file": {
        const open = this.files.get(spec.path);
        if (open !== undefined) return open.sink;
        let fd: number;
        try {
          fd = openSync(spec.path, "w");
        } catch (e) {
          throw new UserError(`cannot open ${what} output file '${spec.path}': ${reason(e)}`);
        }
        const sink = new BufferedSink((bytes) => writeAll(fd, bytes));
        this.files.set(spec.path, { fd, sink });
        return sink;
      }
    }
  }

  close(): void {
    this.stdout?.flush();
    process.stdout.off("error", this.onStdoutError);
    for (const { fd, sink } of this.files.values()) {
      sink.flush();
      closeSync(fd);
    }
    this.files.clear();
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done);
}

/** A file system error's reason, without Node's "ENOENT: ..., open 'path'" decoration. */
function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return err.code ?? String(err.message);
  }
}
