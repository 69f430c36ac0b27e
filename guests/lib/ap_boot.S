/*
 * The application processors' first instructions (SDM Vol. 3A, 9.4.4 "MP Initialization
 * Example", 9.9.1 "Switching to Protected Mode"). A startup IPI with vector V starts an AP
 * in real mode at CS = V * 256, IP = 0. smp_start_ap() copies ap_trampoline to that page
 * and fills in ap_trampoline_gdtr with the BSP's GDT; the code loads it, sets CR0.PE and
 * jumps to ap_entry32 at its link address, which loads the flat data segments, takes the
 * stack smp_start_ap() left in ap_boot_stack and calls ap_main(). Paging stays off here:
 * ap_main() brings the AP to the BSP's mode.
 */

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define CR0_PE 0x1

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
        ljmpl $SEL_KCODE, $ap_entry32
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
        movl ap_boot_stack, %esp
        xorl %ebp, %ebp
        pushl $0                /* EFLAGS = 2 */
        popfl
        call ap_main
1:      cli
        hlt
        jmp 1b

        .section .note.GNU-stack, "", @progbits
