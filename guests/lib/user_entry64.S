/*
 * Entering and leaving ring 3 in long mode, and the SYSCALL entry point (SDM Vol. 3A, 6.14
 * and Vol. 2: IRET/IRETQ, SYSCALL, SYSRET, SWAPGS).
 *
 * run_user_at(rip, rflags, cs) saves the callee-saved registers and its stack pointer, then
 * IRETQs to rip at CPL 3 (CS = SEL_UCODE for 64-bit code, SEL_UCODE32 for compatibility
 * mode) with SS:RSP = the user stack, whose top word is the address of user_return: a
 * 64-bit function that returns makes the SYS_EXIT system call there. The INT 0x80 handler
 * then calls user_resume_kernel, which drops the interrupt frame (it lives on the TSS RSP0
 * stack, not on this one) and returns from run_user_at.
 */
#define SEL_KDATA 0x10
#define SEL_UDATA 0x23

        .text
        .code64
        .globl run_user_at
run_user_at:                    /* RDI = RIP, RSI = RFLAGS, RDX = CS */
        pushq %rbp
        pushq %rbx
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, saved_kernel_rsp
        movl $user_stack_top - 8, %eax
        movq $user_return, (%rax)
        /* DS and ES matter in compatibility mode. FS and GS are left alone: their bases may
           have been set through the MSRs, and loading a selector would replace them. */
        movl $SEL_UDATA, %ecx
        movl %ecx, %ds
        movl %ecx, %es
        pushq $SEL_UDATA        /* SS */
        pushq %rax              /* RSP */
        pushq %rsi              /* RFLAGS */
        pushq %rdx              /* CS */
        pushq %rdi              /* RIP */
        iretq

user_return:                    /* CPL 3: a 64-bit fn returned */
        movl $0, %eax           /* SYS_EXIT */
        int $0x80
        ud2                     /* not reached */

        .globl user_resume_kernel
user_resume_kernel:             /* CPL 0, called from the INT 0x80 handler */
        pushq $2                /* a clean RFLAGS: IOPL 0, AC, TF, NT clear */
        popfq
        movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss          /* the interrupt from CPL 3 loaded a null SS (SDM 6.14.4) */
        movq saved_kernel_rsp, %rsp
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbx
        popq %rbp
        ret

/*
 * SYSCALL lands here (IA32_LSTAR) at CPL 0 with RCX = the return RIP, R11 = the caller's
 * RFLAGS, RFLAGS masked by IA32_FMASK, CS and SS from IA32_STAR[47:32], and the caller's
 * RSP: SYSCALL does not switch stacks. SWAPGS exchanges GS.base with IA32_KERNEL_GS_BASE,
 * which points at `percpu`, where the kernel stack pointer is. The frame is struct
 * syscall_frame (kernel64.h); syscall_hook64 may change it. The return is SYSRETQ, or
 * SYSRETL (to compatibility mode at ECX) when the hook set syscall_return_compat.
 */
#define PERCPU_KERNEL_RSP 0
#define PERCPU_USER_RSP 8
        .globl syscall_entry
syscall_entry:
        swapgs
        movq %rsp, %gs:PERCPU_USER_RSP
        movq %gs:PERCPU_KERNEL_RSP, %rsp
        pushq %gs:PERCPU_USER_RSP
        pushq %r11
        pushq %rcx
        pushq %rax
        pushq %rdi
        pushq %rsi
        pushq %rdx
        pushq %r10
        pushq %r8
        pushq %r9
        pushq %rbx
        pushq %rbp
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        cld
        movq %rsp, %rdi         /* 16 words pushed on a 16-byte aligned stack: still aligned */
        call syscall_dispatch64
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbp
        popq %rbx
        popq %r9
        popq %r8
        popq %r10
        popq %rdx
        popq %rsi
        popq %rdi
        popq %rax
        popq %rcx               /* RIP for SYSRET */
        popq %r11               /* RFLAGS for SYSRET */
        popq %rsp               /* the caller's stack, until SYSRET */
        swapgs
        cmpb $0, syscall_return_compat
        jne 1f
        sysretq                 /* to 64-bit mode: CS = STAR[63:48] + 16, SS = STAR[63:48] + 8 */
1:      movb $0, syscall_return_compat
        sysretl                 /* to compatibility mode: CS = STAR[63:48], EIP = ECX */

        .data
        .align 16
        .globl percpu
percpu:
        .quad syscall_stack_top /* kernel_rsp */
        .quad 0                 /* user_rsp */
        .globl syscall_return_compat
syscall_return_compat:
        .byte 0

        .section .bss
        .align 8
saved_kernel_rsp:
        .skip 8
        .align 16
        .globl user_stack, user_stack_top
user_stack:
        .skip 8192
user_stack_top:
        .globl kernel_intr_stack, kernel_intr_stack_top
kernel_intr_stack:              /* TSS RSP0: exceptions and system calls from ring 3 */
        .skip 8192
kernel_intr_stack_top:
        .globl syscall_stack, syscall_stack_top
syscall_stack:                  /* the SYSCALL handler's stack (percpu.kernel_rsp) */
        .skip 8192
syscall_stack_top:

        .section .note.GNU-stack, "", @progbits
