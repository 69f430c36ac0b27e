/*
 * Multiboot v1 header, kernel entry and the exception entry stubs.
 *
 * The boot loader enters _start in 32-bit flat protected mode with paging and interrupts
 * off, EAX = 0x2BADB002 and EBX = the multiboot information address (Multiboot
 * Specification 0.6.96, 3.2). Its GDT may be gone, so crt_main installs our own before
 * anything reloads a segment register.
 */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules; bit 1: provide memory info */

        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .section .bss
        .align 16
        .globl boot_stack_top
boot_stack:
        .skip 16384
boot_stack_top:

        .text
        .globl _start
_start:
        cli
        cld
        movl $boot_stack_top, %esp
        xorl %ebp, %ebp
        pushl $0                /* EFLAGS = 2: IF, DF, NT, AC, IOPL all clear */
        popfl
        pushl %ebx
        pushl %eax
        call crt_main           /* never returns: it calls exit() */
1:      cli
        hlt
        jmp 1b

/*
 * One 16-byte entry stub per vector, so stub(v) = isr_stubs + 16 * v. Vectors for which the
 * processor pushes an error code (SDM Vol. 3A, 6.13 and Table 6-1: 8, 10-14, 17, 21, 29, 30)
 * don't push the dummy 0. A software INT n to those vectors pushes no error code, so tests
 * only raise them as real exceptions.
 */
        .macro stub vec
        .balign 16, 0xcc
        .if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
        .else
        pushl $0
        .endif
        pushl $\vec
        jmp isr_common
        .endm

        .balign 16, 0xcc
        .globl isr_stubs
isr_stubs:
        .altmacro
        .set vec, 0
        .rept 256
        stub %vec
        .set vec, vec + 1
        .endr
        .noaltmacro

/*
 * Common path: save the segment and general registers (struct trapframe in kernel.h), load
 * the kernel data segments, call trap_dispatch(frame), then restore and IRET. The handler
 * may change any saved field, e.g. EIP to resume elsewhere.
 */
isr_common:
        pushl %ds
        pushl %es
        pushl %fs
        pushl %gs
        pushal
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        cld
        movl %esp, %eax
        pushl %eax
        call trap_dispatch
        addl $4, %esp
        popal
        popl %gs
        popl %fs
        popl %es
        popl %ds
        addl $8, %esp           /* vector and error code */
        iret

        .section .note.GNU-stack, "", @progbits
