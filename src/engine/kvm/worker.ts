/**
 * A vCPU thread: runs KVM_RUN when the main thread asks and reports when it returns
 * (protocol in thread.ts). It decides nothing: every exit is handled on the main thread,
 * where the device model lives. KVM_RUN blocks this thread, never the event loop.
 */
import { parentPort, workerData } from "node:worker_threads";
import { KVM } from "./abi.js";
import { EINTR } from "./exits.js";
import {
  KERNEL_SIGSET_BYTES,
  SIGSET_BYTES,
  SIG_BLOCK,
  SIG_KICK,
  errnoName,
  sigset,
  sys,
} from "./sys.js";
import {
  CMD_NONE,
  CMD_QUIT,
  CTL_CMD,
  CTL_DONE,
  CTL_MESSAGE_BYTES,
  CTL_RESULT,
  CTL_STATE,
  CTL_TID_HI,
  CTL_TID_LO,
  CTL_WORDS,
  STATE_FAILED,
  STATE_READY,
  waitWhile,
  type VcpuThreadData,
} from "./thread.js";

const { vcpuFd, ctl: ctlBuffer, doorbell: doorbellBuffer } = workerData as VcpuThreadData;
const ctl = new Int32Array(ctlBuffer, 0, CTL_WORDS);
const doorbell = new Int32Array(doorbellBuffer);

/** Tells the main thread that KVM_RUN returned (or that this thread failed). */
function ring(): void {
  Atomics.store(ctl, CTL_DONE, 1);
  Atomics.notify(ctl, CTL_DONE); // for a main thread waiting on this vCPU alone
  Atomics.add(doorbell, 0, 1);
  Atomics.notify(doorbell, 0);
}

try {
  const libc = sys();
  // Block the kick signal in this thread; KVM_RUN runs with it unblocked, so a kick makes
  // KVM_RUN return EINTR and no handler ever runs (api.rst 4.21, KVM_SET_SIGNAL_MASK).
  const kick = sigset(SIG_KICK);
  const old = new Uint8Array(SIGSET_BYTES);
  const r = libc.pthreadSigmask(SIG_BLOCK, kick, old);
  if (r !== 0) throw new Error(`pthread_sigmask failed: ${errnoName(r)}`);
  const mask = new Uint8Array(4 + KERNEL_SIGSET_BYTES);
  new DataView(mask.buffer).setUint32(0, KERNEL_SIGSET_BYTES, true);
  for (let k = 0; k < KERNEL_SIGSET_BYTES; k++) mask[4 + k] = old[k] & ~kick[k];
  if (libc.ioctl(vcpuFd, KVM.SET_SIGNAL_MASK, mask) < 0) {
    throw new Error(`KVM_SET_SIGNAL_MASK failed: ${errnoName(libc.errno())}`);
  }
  const tid = libc.pthreadSelf();
  ctl[CTL_TID_LO] = Number(tid & 0xffffffffn) | 0;
  ctl[CTL_TID_HI] = Number(tid >> 32n) | 0;
  Atomics.store(ctl, CTL_STATE, STATE_READY);
  parentPort?.postMessage("ready");

  const noWait = new Uint8Array(16); // struct timespec { 0, 0 }
  for (;;) {
    while (Atomics.load(ctl, CTL_CMD) === CMD_NONE) waitWhile(ctl, CTL_CMD, CMD_NONE, 1000);
    if (Atomics.exchange(ctl, CTL_CMD, CMD_NONE) === CMD_QUIT) break;
    const result = libc.ioctlInt(vcpuFd, KVM.RUN, 0);
    const errno = result < 0 ? libc.errno() : 0;
    // A kick ends KVM_RUN with EINTR and stays pending (blocked); take it now.
    if (errno === EINTR) libc.sigtimedwait(kick, noWait);
    ctl[CTL_RESULT] = -errno;
    ring();
  }
} catch (e) {
  const text = new TextEncoder().encode(e instanceof Error ? e.message : String(e));
  new Uint8Array(ctlBuffer, CTL_WORDS * 4, CTL_MESSAGE_BYTES).set(
    text.subarray(0, CTL_MESSAGE_BYTES - 1),
  );
  Atomics.store(ctl, CTL_STATE, STATE_FAILED);
  parentPort?.postMessage("failed");
  ring();
}
