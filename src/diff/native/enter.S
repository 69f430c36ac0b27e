/*
 * Entering a snippet and coming back (runner.c). snippet_enter(struct entry *e) saves the
 * runner's callee-saved registers and stack pointer, loads DS, ES, FS and GS with Linux's
 * flat user data selector (__USER_DS, 0x2B: base 0, as the KVM oracle's flat data segments;
 * compatibility mode needs usable DS and ES, and FS/GS overrides must reach base 0), loads
 * every general register from *e and ends with IRETQ, which loads RIP, CS (0x33: 64-bit
 * mode, 0x23: __USER32_CS, compatibility mode), RFLAGS, RSP and SS at once (SDM Vol. 2A,
 * IRET: a return to the same privilege level, which may enter compatibility mode). RFLAGS
 * is loaded by the IRETQ itself, so a TF in it traps after the snippet's first instruction
 * as it would in the oracle VM.
 *
 * The snippet never returns here by itself: the signal handler that ends it rewrites its
 * context to resume at snippet_return in 64-bit mode on the saved runner stack.
 */
	.text
	.globl snippet_enter
	.type snippet_enter, @function
snippet_enter:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, runner_rsp(%rip)
	mov $0x2b, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %fs
	mov %eax, %gs
	mov %rdi, %rsp
	/* struct entry: the 16 general registers in x86 order, then the IRETQ frame. */
	pop %rax
	pop %rcx
	pop %rdx
	pop %rbx
	add $8, %rsp /* RSP comes from the IRETQ frame */
	pop %rbp
	pop %rsi
	pop %rdi
	pop %r8
	pop %r9
	pop %r10
	pop %r11
	pop %r12
	pop %r13
	pop %r14
	pop %r15
	iretq
	.size snippet_enter, . - snippet_enter

	.globl snippet_return
	.type snippet_return, @function
snippet_return:
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	ret
	.size snippet_return, . - snippet_return

	.section .note.GNU-stack, "", @progbits
