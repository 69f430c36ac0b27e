/* System calls: INT 0x80 through the DPL-3 trap gate (EAX = number, EBX = argument). */
#include "kernel.h"

void user_resume_kernel(void) __attribute__((noreturn));

syscall_fn syscall_hook;

/* Called by trap_dispatch for vector 0x80; system calls are not recorded in last_trap. */
void syscall_dispatch(struct trapframe *f) {
  if (f->eax == SYS_EXIT) user_resume_kernel();
  f->eax = syscall_hook ? syscall_hook(f) : (u32)-1;
}
