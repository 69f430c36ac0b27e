/*
 * The native reference of the differential harness (src/diff/native-oracle.ts): runs
 * snippets on the host CPU in this ordinary Linux process at CPL 3, in 64-bit mode or in
 * compatibility mode (Linux's 32-bit user code segment), at the addresses of the KVM
 * oracle's user region (ORACLE_LAYOUT in src/engine/kvm/oracle.ts), and reports how each
 * one ended: the signal that stopped it with the exception Linux saw (trapno, error code,
 * CR2) and the registers from its ucontext, and the data region.
 *
 * Protocol on stdin/stdout, little-endian, fixed-size records (struct request and struct
 * response below): a hello (a response, kind OK or ERROR) when the memory is set up, then
 * per request its code and data bytes, and per response its data bytes (the data region
 * without its trailing zeros). The TypeScript side reads the end marker, error codes and
 * the result shape from this (native-oracle.ts).
 *
 * Memory: the user region 0x200000-0x3FFFFF is mapped read/write/execute at exactly that
 * address (this program is a PIE, so nothing of its own lives below 4 GiB), and the rest of
 * the low 4 GiB is reserved PROT_NONE, so that a wild address there faults (#PF, not
 * present) as it would in the oracle VM. Addresses above 4 GiB, reachable in 64-bit mode
 * only, are this process's own (native-oracle.ts lists what remains different).
 *
 * Build: make -C src/diff/native (gcc; -fcf-protection=none: no shadow stack, since the
 * snippet leaves through a rewritten signal context).
 */
#define _GNU_SOURCE
#include <asm/ldt.h>
#include <asm/prctl.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#define USER_BASE 0x200000UL
#define USER_END 0x400000UL
#define DATA 0x300000UL
#define DATA_SIZE 0x80000UL
#define LOW_4G 0x100000000UL
#define HLT 0xf4

/* Linux x86-64 GDT selectors (arch/x86/include/asm/segment.h). */
#define USER32_CS 0x23
#define USER_DS 0x2b
#define USER_CS 0x33

/* Syscall user dispatch (Linux 5.11, Documentation/admin-guide/syscall-user-dispatch.rst). */
#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_ON 1
#endif
#define DISPATCH_ALLOW 0
#define DISPATCH_BLOCK 1

enum mode { LONG64 = 0, COMPAT32 = 1 };
enum kind { OK = 0, FAULT = 1, TIMEOUT = 2, SYSCALL = 3, ERROR = 4 };

/* 16 general registers in x86 order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15). */
struct request {
  uint32_t mode, timeout_ms, code_len, data_len;
  uint64_t gpr[16], rip, rflags;
};

struct response {
  uint32_t kind, signo, trapno, err;
  uint64_t cr2;
  uint64_t gpr[16], rip, rflags;
  uint32_t cs, ss;
  /* Bytes of data region that follow (kind OK/FAULT/...), or of message (ERROR). */
  uint32_t len, pad;
};

/* What snippet_enter loads: the general registers, then an IRETQ frame (enter.S). */
struct entry {
  uint64_t gpr[16];
  uint64_t rip, cs, rflags, rsp, ss;
};

void snippet_enter(struct entry *e);
void snippet_return(void);
uint64_t runner_rsp; /* set by snippet_enter */

static uint64_t runner_fsbase;
static volatile sig_atomic_t running;
static volatile uint8_t dispatch_selector = DISPATCH_ALLOW;
static int dispatch_on;
static struct response result;
/* The 32-bit code selector that enters compatibility mode, 0 when none does (probe_compat). */
static uint16_t compat_cs;

/* ucontext greg order of the x86 register numbers. */
static const int GREG[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                             REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                             REG_R12, REG_R13, REG_R14, REG_R15};

static long raw_arch_prctl(int code, unsigned long addr) {
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "0"((long)SYS_arch_prctl), "D"((long)code), "S"(addr)
                   : "rcx", "r11", "memory");
  return ret;
}

/*
 * Ends a snippet: SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP for its exception, SIGALRM for the
 * time limit, SIGSYS for a system call it tried. It runs on the alternate stack (the
 * snippet's stack is its data), first gives back what the snippet changed that C code
 * relies on (syscalls allowed, the FS base of glibc's TLS), records the exception and the
 * registers (Linux ABI: uc_mcontext.gregs with REG_TRAPNO, REG_ERR and REG_CR2 from the
 * exception), then rewrites the context so that sigreturn resumes at snippet_return in
 * 64-bit mode on the runner's stack, with clean flags and a reset FPU.
 */
static void on_signal(int sig, siginfo_t *si, void *ctx) {
  (void)si;
  dispatch_selector = DISPATCH_ALLOW;
  raw_arch_prctl(ARCH_SET_FS, runner_fsbase);
  ucontext_t *uc = ctx;
  greg_t *g = uc->uc_mcontext.gregs;
  if (!running) {
    if (sig == SIGALRM) return; /* the limit of a snippet that has just ended */
    signal(sig, SIG_DFL);        /* a fault of the runner itself: crash as usual */
    return;
  }
  running = 0;
  result.kind = sig == SIGALRM ? TIMEOUT : sig == SIGSYS ? SYSCALL : FAULT;
  result.signo = sig;
  result.trapno = g[REG_TRAPNO];
  result.err = g[REG_ERR];
  result.cr2 = g[REG_CR2];
  for (int r = 0; r < 16; r++) result.gpr[r] = g[GREG[r]];
  result.rip = g[REG_RIP];
  result.rflags = g[REG_EFL];
  /* REG_CSGSFS: CS in bits 15:0, SS in 63:48 (UC_SIGCONTEXT_SS, Linux 4.6 and later). */
  uint64_t csgsfs = g[REG_CSGSFS];
  result.cs = csgsfs & 0xffff;
  result.ss = (csgsfs >> 48) & 0xffff;

  g[REG_RIP] = (greg_t)snippet_return;
  g[REG_RSP] = runner_rsp;
  g[REG_EFL] = 0x202; /* IF; DF, AC and TF clear as the C ABI and the runner need */
  g[REG_CSGSFS] = (greg_t)((uint64_t)USER_DS << 48 | USER_CS);
  if (uc->uc_mcontext.fpregs) {
    uc->uc_mcontext.fpregs->cwd = 0x37f;
    uc->uc_mcontext.fpregs->mxcsr = 0x1f80;
  }
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static int write_all(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = write(1, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

/* 1: read n bytes; 0: end of input before the first; exits on a short record. */
static int read_all(void *p, size_t n) {
  char *c = p;
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(0, c + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) exit(1);
    if (k == 0) {
      if (got == 0) return 0;
      exit(1);
    }
    got += (size_t)k;
  }
  return 1;
}

/* Reports an error as an ERROR response (the other side shows it), then exits. */
static void die(const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  struct response r = {.kind = ERROR, .len = (uint32_t)n};
  write_all(&r, sizeof r);
  write_all(msg, (size_t)n);
  exit(1);
}

/* A fixed mapping that must not replace anything (MAP_FIXED_NOREPLACE, Linux 4.17). */
static void map_fixed(unsigned long at, unsigned long len, int prot) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE;
  void *p = mmap((void *)at, len, prot, flags, -1, 0);
  if (p == MAP_FAILED || p != (void *)at)
    die("cannot map 0x%lx-0x%lx: %s", at, at + len - 1, p == MAP_FAILED ? strerror(errno) : "moved");
}

static unsigned long mmap_min_addr(void) {
  unsigned long v = 65536;
  FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");
  if (f) {
    if (fscanf(f, "%lu", &v) != 1) v = 65536;
    fclose(f);
  }
  return (v + 0xfff) & ~0xfffUL;
}

static void setup(void) {
  unsigned long low = mmap_min_addr();
  if (low < USER_BASE) map_fixed(low, USER_BASE - low, PROT_NONE);
  map_fixed(USER_BASE, USER_END - USER_BASE, PROT_READ | PROT_WRITE | PROT_EXEC);
  map_fixed(USER_END, LOW_4G - USER_END, PROT_NONE);

  static char altstack[1 << 16];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
  if (sigaltstack(&ss, NULL) != 0) die("sigaltstack: %s", strerror(errno));
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGALRM, SIGSYS};
  struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_ONSTACK};
  sigemptyset(&sa.sa_mask);
  for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) sigaddset(&sa.sa_mask, sigs[k]);
  for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++)
    if (sigaction(sigs[k], &sa, NULL) != 0) die("sigaction: %s", strerror(errno));

  if (syscall(SYS_arch_prctl, ARCH_GET_FS, &runner_fsbase) != 0)
    die("arch_prctl: %s", strerror(errno));
  /* A system call from a snippet raises SIGSYS instead of reaching the kernel; kernels
     before 5.11 lack this and let it through (documented). */
  dispatch_on = prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0,
                      &dispatch_selector) == 0;
}

static void run(const struct request *q) {
  struct entry e;
  memcpy(e.gpr, q->gpr, sizeof e.gpr);
  e.rip = q->rip;
  e.cs = q->mode == COMPAT32 ? compat_cs : USER_CS;
  /* RFLAGS bit 1 is always set; VM is not loadable by a 64-bit IRET (SDM Vol. 2A, IRET). */
  e.rflags = (q->rflags | 2) & ~(1UL << 17);
  e.rsp = q->gpr[4];
  e.ss = USER_DS;

  struct itimerval t = {.it_value = {q->timeout_ms / 1000, (q->timeout_ms % 1000) * 1000}};
  if (t.it_value.tv_sec == 0 && t.it_value.tv_usec == 0) t.it_value.tv_usec = 1000;
  memset(&result, 0, sizeof result);
  __asm__ volatile("fninit\n\tldmxcsr %0" ::"m"((uint32_t){0x1f80}));
  setitimer(ITIMER_REAL, &t, NULL);
  running = 1;
  if (dispatch_on) dispatch_selector = DISPATCH_BLOCK;
  snippet_enter(&e);
  struct itimerval off = {0};
  setitimer(ITIMER_REAL, &off, NULL);
}

/* Whether HLT at the user region's start, run with code selector cs, ends as #GP(0) there. */
static int enters_compat(uint16_t cs) {
  struct request q = {.mode = COMPAT32, .timeout_ms = 1000, .rip = USER_BASE, .rflags = 0x202};
  q.gpr[4] = USER_END - 0x1000;
  memset((void *)USER_BASE, 0, USER_END - USER_BASE);
  *(uint8_t *)USER_BASE = HLT;
  compat_cs = cs;
  run(&q);
  compat_cs = 0;
  return result.kind == FAULT && result.trapno == 13 && result.err == 0 && result.rip == USER_BASE &&
         result.cs == cs;
}

/*
 * Finds how to enter compatibility mode: Linux's __USER32_CS, else a 32-bit code segment
 * in an LDT (modify_ldt), for kernels whose IA-32 emulation is off. Some hosts (a
 * paravirtualized kernel running 64-bit user code only) have neither: the IRETQ to such a
 * selector raises #GP(selector). Returns why not, or NULL.
 */
static const char *probe_compat(void) {
  if (enters_compat(USER32_CS)) return compat_cs = USER32_CS, NULL;
  uint32_t gdt_trap = result.trapno, gdt_err = result.err;
  struct user_desc d = {.entry_number = 0, .limit = 0xfffff, .seg_32bit = 1,
                        .contents = MODIFY_LDT_CONTENTS_CODE, .limit_in_pages = 1, .useable = 1};
  if (syscall(SYS_modify_ldt, 1, &d, sizeof d) == 0 && enters_compat(0x7))
    return compat_cs = 0x7, NULL;
  static char why[160];
  snprintf(why, sizeof why,
           "this kernel runs no 32-bit user code: entering compatibility mode through "
           "__USER32_CS (0x23) raises #%s(0x%x), and through an LDT code segment too",
           gdt_trap == 11 ? "NP" : "GP", gdt_err);
  return why;
}

int main(void) {
  setup();
  const char *no_compat = probe_compat();
  /* The hello: signo is the mask of the modes that run (bit 0 64-bit, bit 1 compat), err
     whether a snippet's system calls are blocked. */
  struct response hello = {.kind = OK, .signo = no_compat ? 1 : 3, .err = dispatch_on};
  hello.len = no_compat ? (uint32_t)strlen(no_compat) : 0;
  if (write_all(&hello, sizeof hello) != 0) return 1;
  if (no_compat && write_all(no_compat, hello.len) != 0) return 1;
  struct request q;
  while (read_all(&q, sizeof q)) {
    if (q.mode > COMPAT32 || (q.mode == COMPAT32 && !compat_cs))
      die("mode %u does not run natively here", q.mode);
    if (q.code_len >= DATA - USER_BASE || q.data_len > DATA_SIZE) die("snippet too large");
    /* Reset the user region, as the other oracles do, then place code, end marker, data. */
    memset((void *)USER_BASE, 0, USER_END - USER_BASE);
    if (!read_all((void *)USER_BASE, q.code_len) && q.code_len) return 1;
    ((uint8_t *)USER_BASE)[q.code_len] = HLT;
    if (!read_all((void *)DATA, q.data_len) && q.data_len) return 1;
    run(&q);
    const uint8_t *d = (const uint8_t *)DATA;
    uint32_t len = DATA_SIZE;
    while (len > 0 && d[len - 1] == 0) len--;
    result.len = len;
    if (write_all(&result, sizeof result) != 0 || write_all(d, len) != 0) return 1;
  }
  return 0;
}
