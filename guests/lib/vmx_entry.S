/*
 * VM entry and exit for the VMX library (vmx.h): int vmx_enter(struct vmx_regs *regs,
 * int resume) and vmx_exit_stub, the host RIP of every VM exit; amd64 and 32-bit versions.
 *
 * vmx_enter saves the callee-saved registers and the regs pointer on the stack, writes
 * HOST_RSP (SDM Vol. 3C, 25.5.1: a VM exit loads RSP from it), loads the guest's general
 * registers and executes VMLAUNCH or VMRESUME. If the instruction fails (VMfailInvalid:
 * CF = 1; VMfailValid: ZF = 1; SDM 31.2) it returns VM_FAIL_INVALID (1) or VM_FAIL_VALID
 * (2). A VM exit arrives at vmx_exit_stub on the same stack: it stores the guest registers
 * through the saved pointer, restores the host's and returns VM_SUCCEED (0) from
 * vmx_enter. RFLAGS after a VM exit is 2 (SDM 28.5.3): interrupts stay off in the host.
 */
#define HOST_RSP 0x6C14

#ifdef __x86_64__

#define R_AX 0
#define R_BX 8
#define R_CX 16
#define R_DX 24
#define R_SI 32
#define R_DI 40
#define R_BP 48
#define R_R8 56
#define R_R9 64
#define R_R10 72
#define R_R11 80
#define R_R12 88
#define R_R13 96
#define R_R14 104
#define R_R15 112

        .text
        .code64
        .globl vmx_enter
vmx_enter:
        pushq %rbx
        pushq %rbp
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        pushq %rdi                      /* the regs pointer, for vmx_exit_stub */
        movl $HOST_RSP, %eax
        vmwrite %rsp, %rax
        movl %esi, %eax                 /* resume? (tested after the loads, which keep flags) */
        testl %eax, %eax
        movq R_AX(%rdi), %rax
        movq R_BX(%rdi), %rbx
        movq R_CX(%rdi), %rcx
        movq R_DX(%rdi), %rdx
        movq R_SI(%rdi), %rsi
        movq R_BP(%rdi), %rbp
        movq R_R8(%rdi), %r8
        movq R_R9(%rdi), %r9
        movq R_R10(%rdi), %r10
        movq R_R11(%rdi), %r11
        movq R_R12(%rdi), %r12
        movq R_R13(%rdi), %r13
        movq R_R14(%rdi), %r14
        movq R_R15(%rdi), %r15
        movq R_DI(%rdi), %rdi
        jnz 1f
        vmlaunch
        jmp 2f
1:      vmresume
2:      /* The instruction failed: CF or ZF tells which. */
        movl $1, %eax
        jc 3f
        movl $2, %eax
3:      popq %rdi
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbp
        popq %rbx
        ret

        .globl vmx_exit_stub
vmx_exit_stub:
        pushq %rdi                      /* the guest's RDI; the regs pointer is above it */
        movq 8(%rsp), %rdi
        movq %rax, R_AX(%rdi)
        movq %rbx, R_BX(%rdi)
        movq %rcx, R_CX(%rdi)
        movq %rdx, R_DX(%rdi)
        movq %rsi, R_SI(%rdi)
        movq %rbp, R_BP(%rdi)
        movq %r8, R_R8(%rdi)
        movq %r9, R_R9(%rdi)
        movq %r10, R_R10(%rdi)
        movq %r11, R_R11(%rdi)
        movq %r12, R_R12(%rdi)
        movq %r13, R_R13(%rdi)
        movq %r14, R_R14(%rdi)
        movq %r15, R_R15(%rdi)
        popq %rax
        movq %rax, R_DI(%rdi)
        xorl %eax, %eax
        jmp 3b

#else /* 32-bit: cdecl arguments on the stack, struct vmx_regs of 32-bit words */

#define R_AX 0
#define R_BX 4
#define R_CX 8
#define R_DX 12
#define R_SI 16
#define R_DI 20
#define R_BP 24

        .text
        .code32
        .globl vmx_enter
vmx_enter:
        pushl %ebp
        pushl %ebx
        pushl %esi
        pushl %edi
        movl 20(%esp), %edi             /* regs */
        movl 24(%esp), %ecx             /* resume */
        pushl %edi                      /* the regs pointer, for vmx_exit_stub */
        movl $HOST_RSP, %eax
        vmwrite %esp, %eax
        testl %ecx, %ecx
        movl R_AX(%edi), %eax
        movl R_BX(%edi), %ebx
        movl R_CX(%edi), %ecx
        movl R_DX(%edi), %edx
        movl R_SI(%edi), %esi
        movl R_BP(%edi), %ebp
        movl R_DI(%edi), %edi
        jnz 1f
        vmlaunch
        jmp 2f
1:      vmresume
2:      movl $1, %eax
        jc 3f
        movl $2, %eax
3:      popl %edi
        popl %edi
        popl %esi
        popl %ebx
        popl %ebp
        ret

        .globl vmx_exit_stub
vmx_exit_stub:
        pushl %edi
        movl 4(%esp), %edi
        movl %eax, R_AX(%edi)
        movl %ebx, R_BX(%edi)
        movl %ecx, R_CX(%edi)
        movl %edx, R_DX(%edi)
        movl %esi, R_SI(%edi)
        movl %ebp, R_BP(%edi)
        popl %eax
        movl %eax, R_DI(%edi)
        xorl %eax, %eax
        jmp 3b

#endif

        .section .note.GNU-stack, "", @progbits
