/**
 * The host CPU as the differential harness's reference without KVM: the same snippets run
 * natively at CPL 3 in an ordinary Linux process, the runner in `native/` (runner.c), in
 * the modes a 64-bit Linux process can enter: 64-bit mode, and compatibility mode through
 * Linux's 32-bit user code segment (__USER32_CS). 32-bit protected mode needs a VM: only
 * the KVM oracle runs it (`NATIVE_MODES`).
 *
 * The runner maps the oracle's user region (ORACLE_LAYOUT) at its very addresses, resets it
 * before each snippet, ends a snippet at the HLT after it (HLT at CPL 3 is #GP(0)) as
 * KvmOracle does, and reports the exception from the signal's ucontext (Linux ABI:
 * REG_TRAPNO, REG_ERR, REG_CR2) with the registers. What differs from the oracle VM:
 *
 * - Memory: the low 4 GiB outside the user region is reserved PROT_NONE, so a stray access
 *   is a not-present #PF as in the VM. Below 2 MiB the VM has supervisor pages (present),
 *   so the error code's P bit is set there to match. Above 4 GiB (64-bit mode only) is
 *   the runner's own memory: a snippet that reaches it is not contained.
 * - RFLAGS: IOPL and IF cannot be changed at CPL 3 (the VM's RFLAGS are loaded by KVM), and
 *   Linux runs user code with CR0.AM set, so RFLAGS.AC enables alignment checks (#AC); the
 *   generator never sets AC (builder.ts) for the same reason on KVM hosts.
 * - Interrupts and system calls: Linux's IDT gates for INT n are DPL 0 but for INT3, INTO
 *   and INT 0x80, so INT n raises #GP(n*8+2) where the VM delivers vector n; SYSCALL,
 *   SYSENTER and INT 0x80 end the snippet as an "exit" (syscall user dispatch, Linux 5.11;
 *   older kernels run them, `blocksSystemCalls`) where the VM raises #UD or vector 0x80.
 *   The generator emits none of these.
 * - Selectors: `cs` and `ss` in the result are Linux's (0x33, or 0x23 or an LDT selector
 *   for compatibility mode; 0x2B), not the VM's.
 * - x87 and SSE state: reset before each snippet and not returned, as by KvmOracle.
 * - UMIP: where the CPU has it, Linux emulates SGDT, SIDT, SLDT, SMSW and STR at CPL 3 with
 *   dummy values (the VM has no UMIP, so they report its tables); the generator emits none.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, readSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ERROR_CODE_VECTORS,
  ORACLE_LAYOUT,
  snippetRegs,
  zeroRegs,
  type SnippetInput,
  type SnippetMode,
  type SnippetResult,
} from "../engine/kvm/oracle.js";
import { GPR_NAMES, type SnippetRunner } from "./soft-oracle.js";

/** The modes a 64-bit Linux process runs at CPL 3. */
export const NATIVE_MODES: readonly SnippetMode[] = ["long64", "compat32"];

const L = ORACLE_LAYOUT;
const GP = 13;
const PF = 14;
const RF = 1n << 16n;
/** runner.c's struct request and struct response. */
const REQUEST_BYTES = 16 + 18 * 8;
const RESPONSE_BYTES = 24 + 18 * 8 + 16;
const KIND = { ok: 0, fault: 1, timeout: 2, syscall: 3, error: 4 } as const;

/** Where `make -C src/diff/native` puts the runner, from this file in src/ or dist/src/. */
export function nativeRunnerPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, "src", "diff", "native", "build", "runner");
}

/** Why the native reference cannot run here, or null when it can. */
export function nativeUnusable(): string | null {
  if (process.platform !== "linux" || process.arch !== "x64") {
    return `the native reference needs x86-64 Linux (this is ${process.platform}/${process.arch})`;
  }
  if (!existsSync(nativeRunnerPath())) {
    return "the native runner is not built: run `make -C src/diff/native` (needs gcc)";
  }
  return null;
}

/** pipe2(2) through koffi: Node has no call for a pipe whose ends block. */
function pipe(): [number, number] {
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
  const pipe2 = koffi.load("libc.so.6").func("int pipe2(void *fds, int flags)");
  const fds = new Int32Array(2);
  const O_CLOEXEC = 0o2000000;
  if (pipe2(fds, O_CLOEXEC) !== 0) throw new Error("pipe2 failed");
  return [fds[0], fds[1]];
}

export class NativeOracle implements SnippetRunner {
  /** The modes that run natively on this host (NATIVE_MODES, less what the kernel lacks). */
  modes: readonly SnippetMode[] = [];
  /** Why a mode does not run on this host: prot32 never, compat32 where the kernel lacks it. */
  readonly missing = new Map<SnippetMode, string>();
  /** Whether a snippet's system calls end it as an "exit" (syscall user dispatch). */
  blocksSystemCalls = false;
  private readonly header = Buffer.alloc(RESPONSE_BYTES);

  private constructor(
    private readonly child: ChildProcess,
    private readonly toRunner: number,
    private readonly fromRunner: number,
  ) {}

  /** Starts the runner; throws a one-line Error when it cannot run here. */
  static create(): NativeOracle {
    const why = nativeUnusable();
    if (why !== null) throw new Error(why);
    const [reqRead, reqWrite] = pipe();
    const [respRead, respWrite] = pipe();
    const child = spawn(nativeRunnerPath(), [], { stdio: [reqRead, respWrite, "inherit"] });
    closeSync(reqRead);
    closeSync(respWrite);
    child.unref(); // the runner ends at the end of its input, when this process exits
    const oracle = new NativeOracle(child, reqWrite, respRead);
    // The hello: memory mapped, handlers installed, the modes that run (a mask) and why
    // compatibility mode does not, if it does not.
    const hello = oracle.readResponse();
    oracle.modes = NATIVE_MODES.filter((_, k) => hello.signo & (1 << k));
    oracle.missing.set("prot32", "a 64-bit Linux process cannot enter it");
    if (!oracle.modes.includes("compat32")) oracle.missing.set("compat32", hello.text);
    oracle.blocksSystemCalls = hello.err !== 0;
    return oracle;
  }

  run(input: SnippetInput): SnippetResult {
    if (!this.modes.includes(input.mode)) {
      throw new Error(`${input.mode} does not run natively: ${this.missing.get(input.mode)}`);
    }
    if (input.code.length >= L.data - L.code) throw new RangeError("snippet too long");
    const data = input.data ?? new Uint8Array(0);
    if (data.length > L.dataSize) throw new RangeError(`data longer than ${L.dataSize} bytes`);
    const regs = snippetRegs(input);

    const req = Buffer.alloc(REQUEST_BYTES + input.code.length + data.length);
    req.writeUInt32LE(input.mode === "long64" ? 0 : 1, 0);
    req.writeUInt32LE(input.timeoutMs ?? 1000, 4);
    req.writeUInt32LE(input.code.length, 8);
    req.writeUInt32LE(data.length, 12);
    [...GPR_NAMES, "rip" as const, "rflags" as const].forEach((n, k) =>
      req.writeBigUInt64LE(BigInt.asUintN(64, regs[n]), 16 + 8 * k),
    );
    req.set(input.code, REQUEST_BYTES);
    req.set(data, REQUEST_BYTES + input.code.length);
    for (let at = 0; at < req.length;) at += writeSync(this.toRunner, req, at);

    const r = this.readResponse();
    return this.result(r, BigInt(L.code + input.code.length));
  }

  close(): void {
    closeSync(this.toRunner);
    closeSync(this.fromRunner);
    this.child.kill();
  }

  private readExactly(buf: Uint8Array, length: number): void {
    for (let at = 0; at < length;) {
      const n = readSync(this.fromRunner, buf, at, length - at, null);
      if (n === 0) throw new Error("the native runner exited unexpectedly");
      at += n;
    }
  }

  /** One response: its fields, and the bytes that follow it. */
  private readResponse() {
    const h = this.header;
    this.readExactly(h, RESPONSE_BYTES);
    const len = h.readUInt32LE(176);
    const tail = new Uint8Array(Math.max(len, L.dataSize));
    this.readExactly(tail, len);
    const kind = h.readUInt32LE(0);
    const text = Buffer.from(tail.subarray(0, len)).toString();
    if (kind === KIND.error) throw new Error(`native runner: ${text}`);
    const regs = zeroRegs();
    GPR_NAMES.forEach((n, k) => (regs[n] = h.readBigUInt64LE(24 + 8 * k)));
    regs.rip = h.readBigUInt64LE(152);
    regs.rflags = h.readBigUInt64LE(160);
    return {
      kind,
      text,
      signo: h.readUInt32LE(4),
      trapno: h.readUInt32LE(8),
      err: h.readUInt32LE(12),
      cr2: h.readBigUInt64LE(16),
      regs,
      cs: h.readUInt32LE(168),
      ss: h.readUInt32LE(172),
      data: tail,
    };
  }

  /** The runner's report as KvmOracle.run would give it. */
  private result(r: ReturnType<NativeOracle["readResponse"]>, endMarker: bigint): SnippetResult {
    // CR2 as the VM reports it: reset for each snippet, so 0 unless the snippet ended in #PF.
    const cr2 = r.kind === KIND.fault && r.trapno === PF ? r.cr2 : 0n;
    const base = { regs: r.regs, cs: r.cs, ss: r.ss, cr2, data: r.data };
    if (r.kind === KIND.timeout) return { outcome: "timeout", exit: "timeout", ...base };
    if (r.kind === KIND.syscall) {
      return { outcome: "exit", exit: `system call at 0x${r.regs.rip.toString(16)}`, ...base };
    }
    const vector = r.trapno;
    if (vector === GP && r.err === 0 && r.regs.rip === endMarker) {
      // The end marker. Its #GP set RFLAGS.RF in the saved image (SDM Vol. 3A, 17.3.1.1).
      return { outcome: "completed", ...base, regs: { ...r.regs, rflags: r.regs.rflags & ~RF } };
    }
    let errorCode = ERROR_CODE_VECTORS.has(vector) ? r.err : undefined;
    // The VM's first 2 MiB are present supervisor pages: P set (SDM Vol. 3A, 4.7).
    if (vector === PF && r.cr2 < BigInt(L.userBase)) errorCode = (errorCode ?? 0) | 1;
    return { outcome: "exception", vector, errorCode, ...base };
  }
}
