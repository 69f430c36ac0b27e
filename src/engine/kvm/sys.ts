/**
 * The few C library calls the kvm engine needs, through koffi (a maintained FFI library with
 * prebuilt binaries: no native addon to compile). koffi is loaded on first use, so runs on
 * the soft engine never load it.
 *
 * ioctl(2) is variadic in C. It is declared here with a fixed third argument, once as a
 * pointer and once as an integer: on x86-64 (System V ABI, 3.5.7) a variadic call passes
 * integer and pointer arguments exactly like a fixed one, and glibc's ioctl is a plain
 * system call wrapper that never looks at %al (the vector-register count of variadic calls).
 */
import { createRequire } from "node:module";
import { getSystemErrorMap } from "node:util";

type Koffi = typeof import("koffi");

/** Linux x86-64 values from <fcntl.h>, <sys/mman.h> and <signal.h>. */
export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const SIG_BLOCK = 0;
/**
 * The signal that kicks a vCPU thread out of KVM_RUN. The thread keeps it blocked, except
 * inside KVM_RUN (KVM_SET_SIGNAL_MASK), so it never runs a handler: it only makes KVM_RUN
 * return with EINTR, and the thread then takes it with sigtimedwait. Node uses SIGUSR1 (the
 * inspector) but not SIGUSR2.
 */
export const SIG_KICK = 12; // SIGUSR2
/** glibc's sigset_t is 1024 bits; the kernel's (and KVM_SET_SIGNAL_MASK's) is 64. */
export const SIGSET_BYTES = 128;
export const KERNEL_SIGSET_BYTES = 8;

/** (void *) -1, mmap's failure value. */
const MAP_FAILED = 0xffffffffffffffffn;

export interface Libc {
  readonly koffi: Koffi;
  open(path: string, flags: number): number;
  close(fd: number): number;
  /** ioctl with a pointer argument (a buffer the kernel reads or fills), or none. */
  ioctl(fd: number, request: number, arg: Uint8Array | null): number;
  /** ioctl with an integer argument. */
  ioctlInt(fd: number, request: number, arg: number): number;
  /** Maps memory; returns the host address, or throws an error naming errno. */
  mmap(length: number, prot: number, flags: number, fd: number): bigint;
  munmap(addr: bigint, length: number): number;
  /** The host memory at `addr` as an ArrayBuffer, without a copy. */
  view(addr: bigint, length: number): ArrayBuffer;
  /** errno of the last call that failed. */
  errno(): number;
  pthreadSelf(): bigint;
  pthreadKill(thread: bigint, signal: number): number;
  pthreadSigmask(how: number, set: Uint8Array, old: Uint8Array): number;
  /** sigtimedwait with no siginfo. */
  sigtimedwait(set: Uint8Array, timeout: Uint8Array): number;
}

let libc: Libc | null = null;

/** The bindings, loaded once per thread; throws when koffi or the C library is unusable. */
export function sys(): Libc {
  libc ??= load();
  return libc;
}

function load(): Libc {
  const koffi = createRequire(import.meta.url)("koffi") as Koffi;
  const lib = koffi.load("libc.so.6");
  const open = lib.func("int open(const char *path, int flags, int mode)");
  const close = lib.func("int close(int fd)");
  const ioctlPtr = lib.func("ioctl", "int", ["int", "unsigned long", "void *"]);
  const ioctlInt = lib.func("ioctl", "int", ["int", "unsigned long", "unsigned long"]);
  const mmap = lib.func(
    "void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)",
  );
  const munmap = lib.func("int munmap(void *addr, size_t length)");
  const pthreadSelf = lib.func("uint64_t pthread_self(void)");
  const pthreadKill = lib.func("int pthread_kill(uint64_t thread, int sig)");
  const pthreadSigmask = lib.func("int pthread_sigmask(int how, void *set, void *oldset)");
  const sigtimedwait = lib.func("int sigtimedwait(void *set, void *info, void *timeout)");
  return {
    koffi,
    open: (path, flags) => open(path, flags, 0) as number,
    close: (fd) => close(fd) as number,
    ioctl: (fd, request, arg) => ioctlPtr(fd, request, arg) as number,
    ioctlInt: (fd, request, arg) => ioctlInt(fd, request, arg) as number,
    mmap(length, prot, flags, fd) {
      const p = mmap(null, length, prot, flags, fd, 0);
      const addr = p === null ? 0n : koffi.address(p);
      if (addr === MAP_FAILED || addr === 0n) {
        throw new Error(`mmap of ${length} bytes failed: ${errnoName(koffi.errno())}`);
      }
      return addr;
    },
    munmap: (addr, length) => munmap(addr, length) as number,
    view: (addr, length) => koffi.view(addr, length),
    errno: () => koffi.errno(),
    pthreadSelf: () => BigInt(pthreadSelf() as number | bigint),
    pthreadKill: (thread, signal) => pthreadKill(thread, signal) as number,
    pthreadSigmask: (how, set, old) => pthreadSigmask(how, set, old) as number,
    sigtimedwait: (set, timeout) => sigtimedwait(set, null, timeout) as number,
  };
}

/** "EACCES (permission denied)" for an errno value. */
export function errnoName(errno: number): string {
  const entry = getSystemErrorMap().get(-errno);
  return entry === undefined ? `errno ${errno}` : `${entry[0]} (${entry[1]})`;
}

/** A sigset_t with just `signal` in it (glibc: bit signal-1 of the first word). */
export function sigset(signal: number): Uint8Array {
  const set = new Uint8Array(SIGSET_BYTES);
  set[(signal - 1) >> 3] |= 1 << ((signal - 1) & 7);
  return set;
}
