/*
 * System calls on amd64: INT 0x80 through the DPL-3 trap gate (RAX = number, RBX =
 * argument), and SYSCALL/SYSRET (SDM Vol. 2, SYSCALL and SYSRET; Vol. 3A, 5.8.8).
 */
#include "kernel.h"

void user_resume_kernel(void) __attribute__((noreturn));

syscall_fn syscall_hook;
syscall64_fn syscall_hook64;

/* Called by trap_dispatch for vector 0x80; system calls are not recorded in last_trap. */
void syscall_dispatch(struct trapframe *f) {
  if (f->rax == SYS_EXIT) user_resume_kernel();
  f->rax = syscall_hook ? syscall_hook(f) : (u64)-1;
}

/* Called by syscall_entry (user_entry64.S) on the per-CPU kernel stack. */
void syscall_dispatch64(struct syscall_frame *f) {
  if (syscall_hook64) syscall_hook64(f);
  else f->rax = (u64)-1;
}

void syscall_setup(u64 fmask) {
  /* STAR[47:32]: SYSCALL's CS (SS is 8 above); STAR[63:48]: the base SYSRET adds 16 (64-bit
     CS), 8 (SS) or 0 (compatibility-mode CS) to, with RPL 3. */
  wrmsr(MSR_STAR, (u64)(SEL_UCODE32 & ~3) << 48 | (u64)SEL_KCODE << 32);
  wrmsr(MSR_LSTAR, (u64)syscall_entry);
  wrmsr(MSR_FMASK, fmask);
  wrmsr(MSR_KERNEL_GS_BASE, (u64)&percpu);
  percpu.kernel_rsp = (u64)syscall_stack_top;
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
}
