/* The C side of exception handling: record, then resume, call a test's handler, or stop. */
#include "kernel.h"

volatile struct trap_record last_trap;
volatile u32 trap_resume, trap_fault_eip, trap_next_eip;
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
  last_trap.vector = f->vector;
  last_trap.error = f->error;
  last_trap.eip = f->eip;
  last_trap.cs = f->cs;
  last_trap.eflags = f->eflags;
  last_trap.cr2 = read_cr2();
  if (f->cs & 3) { /* from an outer ring: the processor pushed SS:ESP (SDM Vol. 3A, 6.12.1) */
    last_trap.esp = f->user_esp;
    last_trap.ss = f->user_ss;
  } else {
    last_trap.esp = (u32)&f->user_esp; /* the stack pointer before the exception */
    last_trap.ss = read_ss();
  }

  if (handlers[f->vector] && handlers[f->vector](f)) return;

  if (trap_resume) {
    f->eip = trap_resume;
    trap_resume = 0;
    f->eflags &= ~EFLAGS_TF; /* a stray single-step must not follow us to the resume point */
    return;
  }

  printf("FAIL unexpected exception: vector=%u error=0x%x eip=0x%08x cs=0x%x eflags=0x%08x "
         "cr2=0x%08x\n",
         f->vector, f->error, f->eip, f->cs & 0xFFFF, f->eflags, last_trap.cr2);
  printf("  eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x esi=0x%08x edi=0x%08x ebp=0x%08x\n",
         f->eax, f->ebx, f->ecx, f->edx, f->esi, f->edi, f->ebp);
  printf("  ds=0x%x es=0x%x fs=0x%x gs=0x%x ss:esp=0x%x:0x%08x\n", f->ds & 0xFFFF, f->es & 0xFFFF,
         f->fs & 0xFFFF, f->gs & 0xFFFF, last_trap.ss & 0xFFFF, last_trap.esp);
  if (!(f->cs & 3)) { /* same stack: show the words above the frame (return addresses) */
    const u32 *sp = (const u32 *)last_trap.esp;
    printf("  stack: %08x %08x %08x %08x %08x %08x\n", sp[0], sp[1], sp[2], sp[3], sp[4], sp[5]);
  }
  exit(EXIT_UNEXPECTED);
}
