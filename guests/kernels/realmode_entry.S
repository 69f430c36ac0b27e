/*
 * realmode: the kernel's entry (linked with -e realmode_start). From the multiboot entry in
 * 32-bit protected mode it drops to real mode and comes back, printing at each stage, then
 * jumps to the runtime's _start: on amd64 that goes on to long mode (entry64.S), on i386 it
 * stays in protected mode. realmode.c checks what the stages recorded.
 *
 * Protected mode to real mode follows SDM Vol. 3A, 10.9.2 "Switching Back to Real-Address
 * Mode": a 16-bit code segment with a 64 KiB limit, data segments with real-mode-like
 * attributes, LIDT of a real-mode interrupt vector table, CR0.PE = 0, then a far jump that
 * loads CS with a real-mode segment. Real mode to protected mode is 10.9.1: CR0.PE = 1 and a
 * far jump to a 32-bit code segment. The 16-bit code runs below 1 MiB (realmode.h): it is
 * assembled here as position-independent code whose data is addressed relative to its
 * start (T(x)), and copied to RM_BASE, where real-mode CS and DS = RM_BASE >> 4.
 *
 * In real mode it checks (recording into its own data, read by realmode.c):
 *   - CR0.PE = 0 and CS = 0800H after the far jump;
 *   - INT n through the IVT at linear 0 (the pushed FLAGS, CS and IP; IF and TF clear in the
 *     handler; IRET restores FLAGS) and through a second table selected by LIDT;
 *   - #UD (UD2) delivered through the IVT with IP = the faulting instruction;
 *   - segment arithmetic: linear = segment * 16 + offset, two aliases of one address;
 *   - operand-size and address-size prefixes (32-bit registers and addressing);
 *   - the segment cache: FS was loaded in protected mode with a 4 GiB limit and is not
 *     reloaded, so a 32-bit offset above 1 MiB works ("if the segment registers are not
 *     reloaded, execution continues using the descriptor attributes loaded during
 *     protected mode", 10.9.2 step 4);
 *   - a far CALL and RETF.
 */
#include "realmode.h"

#define COM1 0x3F8
/* An address in the copied 16-bit code: an offset from CS and DS = RM_BASE >> 4. */
#define T(x) ((x) - rm_tramp_start)
#define LINEAR(x) (RM_BASE + T(x))

/* This stage's GDT (rm_gdt). */
#define SEL_CODE32 0x08 /* flat 32-bit code */
#define SEL_DATA32 0x10 /* flat data */
#define SEL_CODE16 0x18 /* 16-bit code based at RM_BASE, limit FFFFH */
#define SEL_DATA16 0x20 /* base 0, limit FFFFH, byte granular, writable: like real mode */
#define SEL_FLAT16 0x28 /* base 0, limit 4 GiB: stays in FS through real mode */

        .text
        .code32
        .globl realmode_start
realmode_start:
        cli
        cld
        movl %eax, rm_saved_magic
        movl %ebx, rm_saved_info
        lgdt rm_gdtr                    /* the loader's GDT may be anywhere */
        ljmp $SEL_CODE32, $1f
1:      movl $SEL_DATA32, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        movl $rm_stack32_top, %esp
        /* Mask both 8259 PICs: real mode runs INT n with IF = 1 (no stray IRQs). */
        movb $0xFF, %al
        outb %al, $0x21
        outb %al, $0xA1
        call serial_init32
        movl $msg_pm32, %esi
        call print32

        /* Copy the 16-bit code below 1 MiB, and clear the segment-arithmetic target. */
        movl $rm_tramp_start, %esi
        movl $RM_BASE, %edi
        movl $(rm_tramp_end - rm_tramp_start), %ecx
        rep movsb
        movw $0, RM_SEG_LINEAR

        /* 16-bit protected mode: CS is a 16-bit segment with the real-mode CS base. */
        ljmp $SEL_CODE16, $T(rm_pm16)

/* Back from real mode (a far jump from 16-bit code with a 32-bit offset). */
rm_pm32_back:
        movl $SEL_DATA32, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        movl $rm_stack32_top, %esp
        movl %cr0, %eax
        movl %eax, rm_pm_again_cr0
        movw %cs, rm_pm_again_cs
        movl $msg_pm_again, %esi
        call print32
        movl $msg_next, %esi
        call print32
        /* Into the runtime as if from the boot loader. */
        movl rm_saved_magic, %eax
        movl rm_saved_info, %ebx
        jmp _start

/* COM1 as serial.c sets it up (115200 baud, 8 data bits, no parity, 1 stop bit): the C
   runtime has not run yet, and a BIOS may have left another line format. */
serial_init32:
        movw $COM1 + 1, %dx             /* IER: no interrupts */
        movb $0x00, %al
        outb %al, %dx
        movw $COM1 + 3, %dx             /* LCR: DLAB = 1 */
        movb $0x80, %al
        outb %al, %dx
        movw $COM1, %dx                 /* divisor 1 */
        movb $0x01, %al
        outb %al, %dx
        movw $COM1 + 1, %dx
        movb $0x00, %al
        outb %al, %dx
        movw $COM1 + 3, %dx             /* LCR: 8N1, DLAB = 0 */
        movb $0x03, %al
        outb %al, %dx
        movw $COM1 + 2, %dx             /* FCR: enable and clear the FIFOs */
        movb $0x07, %al
        outb %al, %dx
        movw $COM1 + 4, %dx             /* MCR: DTR, RTS */
        movb $0x03, %al
        outb %al, %dx
        ret

/* Prints the NUL-terminated string at ESI on COM1. */
print32:
        pushl %eax
        pushl %ebx
        pushl %edx
        pushl %esi
1:      movb (%esi), %bl
        testb %bl, %bl
        jz 3f
        movw $COM1 + 5, %dx             /* LSR: wait for THR empty (bit 5) */
2:      inb %dx, %al
        testb $0x20, %al
        jz 2b
        movw $COM1, %dx
        movb %bl, %al
        outb %al, %dx
        incl %esi
        jmp 1b
3:      popl %esi
        popl %edx
        popl %ebx
        popl %eax
        ret

/* ------------------------------------------------------------------------------------- */
/* The 16-bit code, copied to RM_BASE. */

        .code16
        .balign 16
        .globl rm_tramp_start
rm_tramp_start:

rm_pm16:                                /* 16-bit protected mode, CS base = RM_BASE */
        movw $SEL_DATA16, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %gs
        movw %ax, %ss
        movl $RM_STACK_TOP, %esp
        movw $SEL_FLAT16, %ax
        movw %ax, %fs
        movw $LINEAR(msg_pm16), %si     /* DS base is 0 here */
        call print16
        lidt LINEAR(rm_ivt0_desc)       /* the real-mode IVT: linear 0, 256 vectors */
        movl %cr0, %eax
        andl $~1, %eax
        movl %eax, %cr0                 /* CR0.PE = 0 */
        ljmp $(RM_BASE >> 4), $T(rm_real)

rm_real:                                /* real mode */
        movw %cs, %ax
        movw %ax, %ds
        movw %ax, %es
        xorw %ax, %ax
        movw %ax, %ss
        movw $RM_STACK_TOP, %sp
        movw %cs, T(rm_cs)
        movl %cr0, %eax
        movl %eax, T(rm_cr0)
        movw $T(msg_real), %si
        call print16
        movw %cs, %ax
        call hex16
        movw $T(msg_newline), %si
        call print16

        /* IVT entries (offset, then segment): INT 30H, a decoy for INT 31H, #UD. */
        xorw %ax, %ax
        movw %ax, %es
        movw $T(rm_int30), %es:(RM_INT_VECTOR * 4)
        movw %cs, %es:(RM_INT_VECTOR * 4 + 2)
        movw $T(rm_decoy), %es:(RM_INT2_VECTOR * 4)
        movw %cs, %es:(RM_INT2_VECTOR * 4 + 2)
        movw $T(rm_ud), %es:(6 * 4)
        movw %cs, %es:(6 * 4 + 2)
        movw $T(rm_int31), %es:(RM_IVT2 + RM_INT2_VECTOR * 4)
        movw %cs, %es:(RM_IVT2 + RM_INT2_VECTOR * 4 + 2)
        movw %cs, %ax
        movw %ax, %es

        /* INT 30H with CF = 1 and IF = 1: both pushed, IF cleared in the handler. */
        movw $T(1f), T(rm_int_expect_ip)
        movw $0x1111, %ax
        stc
        sti
        int $RM_INT_VECTOR
1:      pushfw
        popw T(rm_flags_after)
        cli
        movw %ax, T(rm_int_ax)

        /* INT 31H through the table at RM_IVT2 (LIDT in real mode), then back to linear 0. */
        lidt T(rm_ivt2_desc)
        int $RM_INT2_VECTOR
        lidt T(rm_ivt0_desc)

        /* #UD: a fault, so the pushed IP is the UD2; the handler skips it. */
        movw $T(2f), T(rm_ud_expect_ip)
2:      ud2

        /* Segment arithmetic: write through 1234:5678, read through 179B:0008. */
        movw $RM_SEG_A, %ax
        movw %ax, %es
        movw $0xBEEF, %es:RM_OFF_A
        movw $RM_SEG_B, %ax
        movw %ax, %es
        movw %es:RM_OFF_B, %ax
        movw %ax, T(rm_seg_readback)
        movw %cs, %ax
        movw %ax, %es

        /* Operand-size and address-size prefixes (66H, 67H). */
        movl $0x89ABCDEF, %eax
        movl %eax, T(rm_eax32)
        movl $T(rm_addr32_probe), %esi
        movl (%esi), %eax
        movl %eax, T(rm_addr32_value)

        /* FS still has its protected-mode limit (4 GiB): read above 1 MiB. */
        movl $rm_unreal_probe, %esi
        movl %fs:(%esi), %eax
        movl %eax, T(rm_unreal_value)

        /* A far CALL and RETF. */
        movw $T(3f), T(rm_farcall_expect_ip)
        lcall $(RM_BASE >> 4), $T(rm_farproc)
3:      movw %ax, T(rm_farcall_ret)

        movw $T(msg_leaving), %si
        call print16

        /* Back to protected mode: CR0.PE = 1, far jump to 32-bit code (GDTR is unchanged). */
        cli
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl $SEL_CODE32, $rm_pm32_back

/* INT 30H: record the frame (IP, CS, FLAGS at SS:SP) and FLAGS in the handler. */
rm_int30:
        pushw %bp
        movw %sp, %bp
        pushfw
        popw T(rm_handler_flags)
        movw 2(%bp), %ax
        movw %ax, T(rm_int_ip)
        movw 4(%bp), %ax
        movw %ax, T(rm_int_cs)
        movw 6(%bp), %ax
        movw %ax, T(rm_int_flags)
        movw $T(msg_int), %si
        call print16
        popw %bp
        movw $0x2222, %ax
        iret

rm_int31:
        incw T(rm_int31_count)
        iret

rm_decoy:                               /* INT 31H through the IVT at 0: must not happen */
        incw T(rm_decoy_count)
        iret

rm_ud:
        pushw %bp
        movw %sp, %bp
        movw 2(%bp), %ax
        movw %ax, T(rm_ud_ip)
        addw $2, 2(%bp)                 /* resume after the 2-byte UD2 */
        incw T(rm_ud_count)
        popw %bp
        iret

rm_farproc:
        pushw %bp
        movw %sp, %bp
        movw 2(%bp), %ax
        movw %ax, T(rm_farcall_ip)
        movw 4(%bp), %ax
        movw %ax, T(rm_farcall_cs)
        popw %bp
        movw $0x3333, %ax
        lret

/* COM1 output: putc16 (AL), print16 (DS:SI, NUL-terminated), hex16 (AX, 4 digits). */
putc16:
        pushw %dx
        pushw %ax
        movw $COM1 + 5, %dx
1:      inb %dx, %al
        testb $0x20, %al
        jz 1b
        popw %ax
        movw $COM1, %dx
        outb %al, %dx
        popw %dx
        ret

print16:
        pushw %ax
        pushw %si
1:      lodsb
        testb %al, %al
        jz 2f
        call putc16
        jmp 1b
2:      popw %si
        popw %ax
        ret

hex16:
        pushw %ax
        pushw %bx
        pushw %cx
        movw %ax, %bx
        movw $4, %cx
1:      rolw $4, %bx
        movb %bl, %al
        andb $0xF, %al
        addb $'0', %al
        cmpb $'9', %al
        jbe 2f
        addb $('A' - '9' - 1), %al
2:      call putc16
        loop 1b
        popw %cx
        popw %bx
        popw %ax
        ret

msg_pm16:
        .asciz "realmode: 16-bit protected mode\n"
msg_real:
        .asciz "realmode: real mode, CS="
msg_newline:
        .asciz "\n"
msg_int:
        .asciz "realmode: INT 30h through the real-mode IVT\n"
msg_leaving:
        .asciz "realmode: back to protected mode\n"

/* What the 16-bit code records; realmode.c reads it at RM_BASE + T(x). */
        .balign 4
        .globl rm_cr0, rm_cs, rm_int_expect_ip, rm_int_ip, rm_int_cs, rm_int_flags
        .globl rm_handler_flags, rm_flags_after, rm_int_ax, rm_int31_count, rm_decoy_count
        .globl rm_ud_expect_ip, rm_ud_ip, rm_ud_count, rm_seg_readback, rm_eax32
        .globl rm_addr32_value, rm_unreal_value, rm_farcall_expect_ip, rm_farcall_ip
        .globl rm_farcall_cs, rm_farcall_ret
rm_cr0:                 .long 0xFFFFFFFF
rm_eax32:               .long 0
rm_addr32_probe:        .long 0x13579BDF
rm_addr32_value:        .long 0
rm_unreal_value:        .long 0
rm_cs:                  .word 0
rm_int_expect_ip:       .word 0
rm_int_ip:              .word 0
rm_int_cs:              .word 0
rm_int_flags:           .word 0
rm_handler_flags:       .word 0xFFFF
rm_flags_after:         .word 0
rm_int_ax:              .word 0
rm_int31_count:         .word 0
rm_decoy_count:         .word 0
rm_ud_expect_ip:        .word 0
rm_ud_ip:               .word 0
rm_ud_count:            .word 0
rm_seg_readback:        .word 0
rm_farcall_expect_ip:   .word 0
rm_farcall_ip:          .word 0
rm_farcall_cs:          .word 0
rm_farcall_ret:         .word 0
/* LIDT operands: the IVT at linear 0 and the second one. */
rm_ivt0_desc:
        .word 0x3FF
        .long 0
rm_ivt2_desc:
        .word 0x3FF
        .long RM_IVT2

        .globl rm_tramp_end
rm_tramp_end:                           /* realmode.c checks that it ends below RM_LIMIT */

/* ------------------------------------------------------------------------------------- */

        .section .rodata
        .align 8
rm_gdt:
        .quad 0
        .quad 0x00CF9A000000FFFF                /* 0x08: 32-bit code, flat */
        .quad 0x00CF92000000FFFF                /* 0x10: data, flat */
        .quad 0x00009A000000FFFF | (RM_BASE << 16) /* 0x18: 16-bit code, base RM_BASE */
        .quad 0x000092000000FFFF                /* 0x20: 16-bit data, base 0, limit FFFFH */
        .quad 0x008F92000000FFFF                /* 0x28: data, base 0, limit 4 GiB, G = 1 */
rm_gdt_end:
rm_gdtr:
        .word rm_gdt_end - rm_gdt - 1
        .long rm_gdt
msg_pm32:
        .asciz "realmode: 32-bit protected mode (multiboot entry)\n"
msg_pm_again:
        .asciz "realmode: 32-bit protected mode again\n"
msg_next:
#ifdef __x86_64__
        .asciz "realmode: on to long mode\n"
#else
        .asciz "realmode: on to the runtime, in protected mode\n"
#endif

        .data
        .align 4
        .globl rm_unreal_probe, rm_pm_again_cr0, rm_pm_again_cs
rm_unreal_probe:        .long 0x5AFEC0DE /* above 1 MiB: read through FS in real mode */
rm_pm_again_cr0:        .long 0
rm_pm_again_cs:         .word 0
rm_saved_magic:         .long 0
rm_saved_info:          .long 0

        .section .bss
        .align 16
rm_stack32:
        .skip 1024
rm_stack32_top:

#ifdef __x86_64__
        .code64
#else
        .code32
#endif
        .section .note.GNU-stack, "", @progbits
