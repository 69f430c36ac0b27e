/*
 * Entering and leaving ring 3 (SDM Vol. 3A, 6.12.1 and the IRET pseudo-code in Vol. 2).
 *
 * run_user(fn, eflags) saves the callee-saved registers and its stack pointer, then IRETs
 * to fn at CPL 3 with SS:ESP = the user stack. fn's return address is user_return, which
 * makes the SYS_EXIT system call; the INT 0x80 handler then calls user_resume_kernel, which
 * drops the interrupt frame (it lives on the TSS ESP0 stack, not on this one) and returns
 * from run_user.
 */
        .text
        .globl run_user
run_user:
        pushl %ebp
        pushl %ebx
        pushl %esi
        pushl %edi
        movl %esp, saved_kernel_esp
        movl 20(%esp), %eax     /* fn */
        movl 24(%esp), %ecx     /* EFLAGS for ring 3 */
        movl $user_stack_top, %edx
        subl $4, %edx
        movl $user_return, (%edx)
        movw $0x23, %bx         /* user data segment, RPL 3 */
        movw %bx, %ds
        movw %bx, %es
        movw %bx, %fs
        movw %bx, %gs
        pushl $0x23             /* SS */
        pushl %edx              /* ESP */
        pushl %ecx              /* EFLAGS */
        pushl $0x1B             /* CS: user code, RPL 3 */
        pushl %eax              /* EIP */
        iret

user_return:                    /* CPL 3: fn returned */
        movl $0, %eax           /* SYS_EXIT */
        int $0x80
        ud2                     /* not reached */

        .globl user_resume_kernel
user_resume_kernel:             /* CPL 0, called from the INT 0x80 handler */
        pushl $2                /* a clean EFLAGS: IOPL 0, AC, TF, NT clear */
        popfl
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movl saved_kernel_esp, %esp
        popl %edi
        popl %esi
        popl %ebx
        popl %ebp
        ret

        .section .bss
        .align 4
saved_kernel_esp:
        .skip 4
        .align 16
        .globl user_stack, user_stack_top
user_stack:
        .skip 8192
user_stack_top:
        .globl kernel_intr_stack, kernel_intr_stack_top
kernel_intr_stack:              /* TSS ESP0: exceptions and system calls from ring 3 */
        .skip 8192
kernel_intr_stack_top:

        .section .note.GNU-stack, "", @progbits
