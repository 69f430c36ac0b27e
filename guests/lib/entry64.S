/*
 * amd64 runtime: multiboot v1 header, the 32-bit entry that switches to long mode, and the
 * 64-bit exception entry stubs.
 *
 * The boot loader enters _start in 32-bit flat protected mode with paging off, EAX =
 * 0x2BADB002 and EBX = the multiboot information (Multiboot Specification 0.6.96, 3.2).
 * _start builds 4-level page tables that identity-map the low 4 GiB, then follows SDM
 * Vol. 3A, 10.8.5 "Initializing IA-32e Mode": CR4.PAE = 1, CR3 = the PML4, IA32_EFER.LME = 1,
 * CR0.PG = 1 (IA-32e mode is now active, in compatibility mode), and a far jump to a code
 * segment with L = 1 enters 64-bit mode. crt_main then installs the runtime's own GDT, IDT
 * and TSS (desc64.c).
 */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules; bit 1: provide memory info */

#define COM1 0x3F8
#define EXIT_PORT 0xF4
#define EXIT_UNEXPECTED 126

#define MSR_EFER 0xC0000080
#define EFER_LME 0x100
#define CR0_PG 0x80000000
#define CR4_PAE 0x20

/* Paging-structure entry bits (SDM Vol. 3A, 4.5, Tables 4-15 to 4-20). User-accessible like
   the i386 runtime's identity map, so ring-3 tests can run code of the kernel image. */
#define PTE_PWU 0x7  /* present, writable, user */
#define PTE_PS 0x80  /* in a PDE: a 2 MiB page */

        .section .multiboot, "a"
        .align 4
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

        .section .bss
        .align 4096
        .globl boot_pml4
boot_pml4:                      /* PML4[0] -> boot_pdpt */
        .skip 4096
boot_pdpt:                      /* PDPT[0..3] -> the four page directories */
        .skip 4096
boot_pd:                        /* 4 x 512 PDEs: 2 MiB pages up to 4 GiB */
        .skip 4 * 4096
boot_pt0:                       /* the first 2 MiB in 4 KiB pages; page 0 not present */
        .skip 4096
        .align 16
        .globl boot_stack_top
boot_stack:
        .skip 16384
boot_stack_top:

        .section .rodata
        .align 16
/* A minimal GDT for the switch; desc64.c's GDT has the same selectors 0x08 and 0x10. */
boot_gdt:
        .quad 0
        .quad 0x00AF9A000000FFFF  /* 0x08: code, DPL 0, L = 1 (64-bit), D = 0 */
        .quad 0x00CF92000000FFFF  /* 0x10: data, DPL 0, flat */
boot_gdt_end:
boot_gdtr:
        .word boot_gdt_end - boot_gdt - 1
        .long boot_gdt
no_long_mode_msg:
        .asciz "FAIL long mode is not available (CPUID.80000001H:EDX.LM[bit 29] = 0)\n"

        .text
        .code32
        .globl _start
_start:
        cli
        cld
        movl $boot_stack_top, %esp
        movl %eax, %ebp         /* magic and info, for crt_main (CPUID clobbers EBX) */
        movl %ebx, %esi
        pushl $0                /* EFLAGS = 2: IF, DF, NT, AC, IOPL all clear */
        popfl

        /* Long mode must exist: CPUID.80000001H:EDX.LM (SDM Vol. 3A, 10.8.5). */
        movl $0x80000000, %eax
        cpuid
        cmpl $0x80000001, %eax
        jb no_long_mode
        movl $0x80000001, %eax
        cpuid
        btl $29, %edx
        jnc no_long_mode

        /* Clear the PML4 and PDPT: only the entries set below may be present. */
        xorl %eax, %eax
        movl $boot_pml4, %edi
        movl $(2 * 4096 / 4), %ecx
        rep stosl

        movl $boot_pdpt + PTE_PWU, boot_pml4
        movl $boot_pd + PTE_PWU, boot_pdpt
        movl $boot_pd + 4096 + PTE_PWU, boot_pdpt + 8
        movl $boot_pd + 2 * 4096 + PTE_PWU, boot_pdpt + 16
        movl $boot_pd + 3 * 4096 + PTE_PWU, boot_pdpt + 24

        /* 2048 PDEs: PDE n maps the 2 MiB page at n << 21 (the high dword is 0 below 4 GiB). */
        xorl %ecx, %ecx
1:      movl %ecx, %eax
        shll $21, %eax
        orl $PTE_PWU + PTE_PS, %eax
        movl %eax, boot_pd(, %ecx, 8)
        movl $0, boot_pd + 4(, %ecx, 8)
        incl %ecx
        cmpl $2048, %ecx
        jb 1b

        /* The first 2 MiB through a page table, so that page 0 (NULL) is not mapped. */
        movl $0, boot_pt0
        movl $0, boot_pt0 + 4
        movl $1, %ecx
2:      movl %ecx, %eax
        shll $12, %eax
        orl $PTE_PWU, %eax
        movl %eax, boot_pt0(, %ecx, 8)
        movl $0, boot_pt0 + 4(, %ecx, 8)
        incl %ecx
        cmpl $512, %ecx
        jb 2b
        movl $boot_pt0 + PTE_PWU, boot_pd

        /* SDM Vol. 3A, 10.8.5: PAE, CR3, EFER.LME, then paging activates IA-32e mode. */
        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl $boot_pml4, %eax
        movl %eax, %cr3
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $CR0_PG, %eax
        movl %eax, %cr0         /* IA32_EFER.LMA = 1: compatibility mode */
        lgdt boot_gdtr
        ljmp $0x08, $long_mode  /* CS.L = 1: 64-bit mode */

/* No long mode: say so on COM1 (set up as serial.c does: 115200 baud, 8N1) and end the run
   with EXIT_UNEXPECTED. */
no_long_mode:
        movw $COM1 + 3, %dx
        movb $0x80, %al                 /* LCR: DLAB = 1 */
        outb %al, %dx
        movw $COM1, %dx
        movb $0x01, %al                 /* divisor 1 */
        outb %al, %dx
        movw $COM1 + 1, %dx
        movb $0x00, %al
        outb %al, %dx
        movw $COM1 + 3, %dx
        movb $0x03, %al                 /* LCR: 8N1, DLAB = 0 */
        outb %al, %dx
        movl $no_long_mode_msg, %esi
3:      movb (%esi), %bl
        testb %bl, %bl
        jz 5f
        movw $COM1 + 5, %dx     /* LSR: wait for THR empty (bit 5) */
4:      inb %dx, %al
        testb $0x20, %al
        jz 4b
        movw $COM1, %dx
        movb %bl, %al
        outb %al, %dx
        incl %esi
        jmp 3b
5:      movl $EXIT_UNEXPECTED, %eax
        movw $EXIT_PORT, %dx
        outl %eax, %dx
6:      cli
        hlt
        jmp 6b

        .code64
long_mode:
        movl $0x10, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        xorl %eax, %eax
        movl %eax, %fs
        movl %eax, %gs
        movl $boot_stack_top, %esp  /* writing ESP zero-extends into RSP */
        /* The upper halves of registers are undefined after a mode switch (SDM Vol. 1,
           3.4.1.1): the 32-bit moves zero-extend crt_main's arguments. */
        movl %ebp, %edi
        movl %esi, %esi
        xorl %ebp, %ebp
        call crt_main           /* never returns: it calls exit() */
7:      cli
        hlt
        jmp 7b

/*
 * One 16-byte entry stub per vector, so stub(v) = isr_stubs + 16 * v. Vectors for which the
 * processor pushes an error code (SDM Vol. 3A, 6.13 and Table 6-1: 8, 10-14, 17, 21, 29, 30)
 * don't push the dummy 0.
 */
        .macro stub vec
        .balign 16, 0xcc
        .if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
        .else
        pushq $0
        .endif
        pushq $\vec
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
 * Common path: save the general registers (struct trapframe in kernel64.h), call
 * trap_dispatch(frame), restore and IRETQ. The processor aligned RSP to 16 bytes before
 * pushing its 5-word frame (SDM Vol. 3A, 6.14.2); with the error code, the vector and 15
 * registers the stack is 16-byte aligned again at the call, as the ABI requires. Segment
 * registers are left alone: 64-bit code does not use DS, ES or SS bases.
 */
isr_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        cld
        movq %rsp, %rdi
        call trap_dispatch
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp          /* vector and error code */
        iretq

        .section .note.GNU-stack, "", @progbits
