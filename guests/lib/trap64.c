/* The C side of exception handling on amd64: record, then resume, call a test's handler, or
   stop. The same protocol as the i386 runtime's trap.c, with 64-bit frames. */
#include "kernel.h"

volatile struct trap_record last_trap;
volatile u64 trap_resume, trap_fault_rip, trap_next_rip;
static trap_handler_fn handlers[256];

void trap_set_handler(int vector, trap_handler_fn fn) { handlers[vector] = fn; }

void trap_clear(void) { memset((void *)&last_trap, 0, sizeof last_trap); }

void syscall_dispatch(struct trapframe *f);

void trap_dispatch(struct trapframe *f) {
  if (f->vector == 0x80) {
    syscall_dispatch(f);
    return;
  }
  last_trap.count++;
  last_trap.vector = (u32)f->vector;
  last_trap.error = (u32)f->error;
  last_trap.rip = f->rip;
  last_trap.cs = f->cs & 0xFFFF;
  last_trap.rflags = f->rflags;
  last_trap.cr2 = read_cr2();
  last_trap.rsp = f->rsp;
  last_trap.ss = f->ss & 0xFFFF;
  last_trap.frame = (u64)&f->rip;
  last_trap.handler_rsp = (u64)f;

  if (handlers[f->vector] && handlers[f->vector](f)) return;

  if (trap_resume) {
    f->rip = trap_resume;
    trap_resume = 0;
    f->rflags &= ~(u64)EFLAGS_TF; /* a stray single-step must not follow us to the resume point */
    return;
  }

  printf("FAIL unexpected exception: vector=%llu error=0x%llx rip=0x%llx cs=0x%llx rflags=0x%llx "
         "cr2=0x%llx\n",
         f->vector, f->error, f->rip, f->cs & 0xFFFF, f->rflags, last_trap.cr2);
  printf("  rax=0x%llx rbx=0x%llx rcx=0x%llx rdx=0x%llx rsi=0x%llx rdi=0x%llx rbp=0x%llx\n",
         f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi, f->rbp);
  printf("  r8=0x%llx r9=0x%llx r10=0x%llx r11=0x%llx r12=0x%llx r13=0x%llx r14=0x%llx "
         "r15=0x%llx\n",
         f->r8, f->r9, f->r10, f->r11, f->r12, f->r13, f->r14, f->r15);
  printf("  ss:rsp=0x%llx:0x%llx cr3=0x%llx\n", f->ss & 0xFFFF, f->rsp, (u64)read_cr3());
  if (!(f->cs & 3) && f->rsp >= 0x1000 && f->rsp < (4ull << 30)) {
    /* same privilege: show the words above the interrupted stack pointer (return addresses) */
    const u64 *sp = (const u64 *)f->rsp;
    printf("  stack: %llx %llx %llx %llx\n", sp[0], sp[1], sp[2], sp[3]);
  }
  exit(EXIT_UNEXPECTED);
}

int check_trap(const char *name, u32 vector, u32 error, uptr rip) {
  trap_resume = 0; /* in case the expected exception did not happen */
  int ok = last_trap.count == 1 && last_trap.vector == vector && last_trap.error == error &&
           last_trap.rip == rip;
  if (ok) return check(name, 1, "vector %u error 0x%x", vector, error);
  return check(name, 0,
               "expected 1 exception, vector %u error 0x%x rip 0x%llx; got %u, vector %u error "
               "0x%x rip 0x%llx",
               vector, error, (u64)rip, last_trap.count, last_trap.vector, last_trap.error,
               last_trap.rip);
}
