/**
 * The main-thread side of a vCPU thread (worker.ts). The two sides share a few words of a
 * SharedArrayBuffer and hand each exit over synchronously with Atomics:
 *
 *   main: CMD = RUN, notify ---> worker: KVM_RUN ... returns
 *   main: wakes on the VM's doorbell <--- worker: RESULT, DONE = 1, doorbell++, notify
 *   main: handles the exit in the device model, writes the reply into kvm_run, CMD = RUN
 *
 * kvm_run itself is shared memory (the vCPU fd's mmap), read and written by the main thread
 * in place. Both sides spin briefly before sleeping in Atomics.wait: an I/O exit is handled
 * in microseconds, faster than a futex wake-up. The doorbell is one word per VM, so the
 * main thread waits for whichever vCPU exits first.
 */
import { Worker } from "node:worker_threads";
import { SIG_KICK, errnoName, type Libc } from "./sys.js";

/** Word indices in the control block. */
export const CTL_CMD = 0;
export const CTL_DONE = 1;
export const CTL_RESULT = 2;
export const CTL_STATE = 3;
/** pthread_t of the worker, as two 32-bit halves. */
export const CTL_TID_LO = 4;
export const CTL_TID_HI = 5;
export const CTL_WORDS = 8;
/** A failure message (UTF-8) follows the control words. */
export const CTL_MESSAGE_BYTES = 1024;

export const CMD_NONE = 0;
export const CMD_RUN = 1;
export const CMD_QUIT = 2;
export const STATE_STARTING = 0;
export const STATE_READY = 1;
export const STATE_FAILED = 2;

/**
 * Spin iterations (an Atomics.load each, 5 to 20 ns) before sleeping in Atomics.wait: a
 * futex wake-up costs 10 to 20 us, a handed-over exit a few, and on hosts where one exit
 * takes 25 us (the bench's I/O-exit round trip) a shorter spin often ends just before it.
 * The main thread spins only while exits come close together (runner.ts).
 */
export const SPIN_ITERATIONS = 20_000;

/** What the worker gets (workerData). */
export interface VcpuThreadData {
  vcpuFd: number;
  ctl: SharedArrayBuffer;
  doorbell: SharedArrayBuffer;
}

/** How long a kicked vCPU may take to leave KVM_RUN before the thread counts as hung. */
const KICK_TIMEOUT_MS = 10_000;

/**
 * Spins (unless `spin` is false), then sleeps, until `a[i]` is no longer `value` or
 * `timeoutMs` passes.
 */
export function waitWhile(
  a: Int32Array,
  i: number,
  value: number,
  timeoutMs: number,
  spin = true,
): void {
  if (spin) for (let k = 0; k < SPIN_ITERATIONS; k++) if (Atomics.load(a, i) !== value) return;
  Atomics.wait(a, i, value, timeoutMs);
}

/**
 * Starts worker.js beside this module. Under tsx (the tests run the TypeScript sources)
 * it is worker.ts, and a worker thread does not inherit tsx's loader: a small bootstrap
 * registers it in the worker first.
 */
function startWorker(data: VcpuThreadData): Worker {
  if (!import.meta.url.endsWith(".ts")) {
    return new Worker(new URL("./worker.js", import.meta.url), { workerData: data });
  }
  const api = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const script = JSON.stringify(new URL("./worker.ts", import.meta.url).href);
  return new Worker(`import(${api}).then((t) => t.register()).then(() => import(${script}))`, {
    eval: true,
    workerData: data,
  });
}

export class VcpuThread {
  private readonly ctl: Int32Array;
  private readonly message: Uint8Array;
  private readonly worker: Worker;
  private tid = 0n;
  private started: Promise<void> | null;

  constructor(
    private readonly libc: Libc,
    readonly vcpuId: number,
    vcpuFd: number,
    doorbell: SharedArrayBuffer,
  ) {
    const sab = new SharedArrayBuffer(CTL_WORDS * 4 + CTL_MESSAGE_BYTES);
    this.ctl = new Int32Array(sab, 0, CTL_WORDS);
    this.message = new Uint8Array(sab, CTL_WORDS * 4);
    const data: VcpuThreadData = { vcpuFd, ctl: sab, doorbell };
    this.worker = startWorker(data);
    this.started = new Promise((resolve, reject) => {
      this.worker.once("message", () => resolve());
      this.worker.once("error", (e) => reject(this.failure(e.message)));
      this.worker.once("exit", (code) => reject(this.failure(`exited with code ${code}`)));
    });
    // Awaited by ready(); a machine that never runs must not leave an unhandled rejection.
    this.started.catch(() => {});
  }

  /** Resolves once the thread is ready to run the vCPU; rejects when it could not start. */
  async ready(): Promise<void> {
    if (this.started === null) return;
    await this.started;
    this.started = null;
    this.checkFailed();
    this.tid = BigInt(this.ctl[CTL_TID_LO] >>> 0) | (BigInt(this.ctl[CTL_TID_HI] >>> 0) << 32n);
    // An idle vCPU thread (asleep in Atomics.wait) must not keep the process alive.
    this.worker.unref();
  }

  get isReady(): boolean {
    return this.started === null;
  }

  /** Starts KVM_RUN on the thread. */
  start(): void {
    Atomics.store(this.ctl, CTL_CMD, CMD_RUN);
    Atomics.notify(this.ctl, CTL_CMD);
  }

  /** Whether KVM_RUN has returned (and its result is waiting to be taken). */
  get done(): boolean {
    return Atomics.load(this.ctl, CTL_DONE) === 1;
  }

  /** Takes the result of the finished KVM_RUN: 0, or minus errno. */
  take(): number {
    this.checkFailed();
    Atomics.store(this.ctl, CTL_DONE, 0);
    return this.ctl[CTL_RESULT];
  }

  /**
   * Makes a running KVM_RUN return with EINTR by sending the kick signal to the thread
   * (blocked outside KVM_RUN, so a kick that arrives between runs ends the next one at
   * once: it is never lost).
   */
  kick(): void {
    const r = this.libc.pthreadKill(this.tid, SIG_KICK);
    if (r !== 0) throw this.failure(`could not be signalled: ${errnoName(r)}`);
  }

  /** Waits up to `timeoutMs` for the running KVM_RUN to return; true when it has. */
  wait(timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.done) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      waitWhile(this.ctl, CTL_DONE, 0, left);
    }
  }

  /** Waits for a kicked KVM_RUN to return; throws when the thread does not answer. */
  waitDone(): void {
    if (!this.wait(KICK_TIMEOUT_MS)) {
      throw this.failure(`did not leave KVM_RUN within ${KICK_TIMEOUT_MS} ms`);
    }
  }

  /** Ends the thread (it must not be in KVM_RUN). */
  close(): void {
    Atomics.store(this.ctl, CTL_CMD, CMD_QUIT);
    Atomics.notify(this.ctl, CTL_CMD);
    this.worker.unref();
  }

  private checkFailed(): void {
    if (Atomics.load(this.ctl, CTL_STATE) !== STATE_FAILED) return;
    const end = this.message.indexOf(0);
    const text = new TextDecoder().decode(this.message.slice(0, end < 0 ? undefined : end));
    throw this.failure(text);
  }

  private failure(what: string): Error {
    return new Error(`kvm: the thread of vCPU ${this.vcpuId} failed: ${what}`);
  }
}
