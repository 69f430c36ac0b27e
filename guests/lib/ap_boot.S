/*
 * The application processors' first instructions (SDM Vol. 3A, 10.4.4 "MP Initialization
 * Example", 10.9.1 "Switching to Protected Mode", 10.8.5 "Initializing IA-32e Mode"). A
 * startup IPI with vector V starts an AP in real mode at CS = V * 256, IP = 0.
 * smp_start_ap() copies ap_trampoline to that page and fills in ap_trampoline_gdtr with the
 * BSP's GDT (its base below 4 GiB); the code loads it, sets CR0.PE and jumps to ap_entry32
 * at its link address (the kernel is identity-mapped), which loads the flat data segments.
 *
 * 32-bit kernels: paging stays off here; ap_entry32 takes the stack smp_start_ap() left in
 * ap_boot_stack and calls ap_main(), which brings the AP to the BSP's paging mode.
 *
 * amd64: ap_entry32 goes on to IA-32e mode as entry64.S does on the BSP: CR4.PAE, CR3 = the
 * BSP's page tables (ap_boot_cr3, below 4 GiB: a 32-bit MOV to CR3), IA32_EFER.LME, CR0.PG
 * (IA-32e mode active, in compatibility mode: this code and the GDT are identity-mapped in
 * those tables), and a far jump to the 64-bit code segment. ap_entry64 loads the data
 * segments and the stack and calls ap_main(), which loads the rest of the BSP's mode.
 */

#define SEL_KDATA 0x10
#ifdef __x86_64__
#define SEL_CODE32 0x30         /* kernel64.h SEL_KCODE32: 32-bit code, DPL 0 */
#define SEL_CODE64 0x08         /* kernel64.h SEL_KCODE: 64-bit code, DPL 0 */
#else
#define SEL_CODE32 0x08         /* kernel.h SEL_KCODE */
#endif
#define CR0_PE 0x1
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

        .text
        .code16
        .globl ap_trampoline, ap_trampoline_end, ap_trampoline_gdtr
ap_trampoline:
        cli
        cld
        movw %cs, %ax
        movw %ax, %ds
        lgdtl ap_trampoline_gdtr - ap_trampoline   /* DS-relative: the copy's own field */
        movl %cr0, %eax
        orl $CR0_PE, %eax
        movl %eax, %cr0
        ljmpl $SEL_CODE32, $ap_entry32
        .balign 8
ap_trampoline_gdtr:
        .word 0                 /* limit */
        .long 0                 /* linear base */
ap_trampoline_end:

        .code32
ap_entry32:
        movw $SEL_KDATA, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw %ax, %ss
#ifdef __x86_64__
        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl ap_boot_cr3, %eax  /* the low half: the tables are below 4 GiB */
        movl %eax, %cr3
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $CR0_PG, %eax
        movl %eax, %cr0         /* IA32_EFER.LMA = 1: compatibility mode */
        ljmp $SEL_CODE64, $ap_entry64

        .code64
ap_entry64:
        movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        xorl %eax, %eax         /* FS and GS null, as on the BSP (desc64.c) */
        movl %eax, %fs
        movl %eax, %gs
        movq ap_boot_stack, %rsp
        xorl %ebp, %ebp
        pushq $0                /* RFLAGS = 2 */
        popfq
        call ap_main
1:      cli
        hlt
        jmp 1b
#else
        movl ap_boot_stack, %esp
        xorl %ebp, %ebp
        pushl $0                /* EFLAGS = 2 */
        popfl
        call ap_main
1:      cli
        hlt
        jmp 1b
#endif

        .section .note.GNU-stack, "", @progbits
