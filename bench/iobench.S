/*
 * The I/O-exit benchmark kernel (npm run bench): a multiboot kernel that enters 64-bit mode,
 * drops to CPL 3 with IOPL 3 and writes port 0x80 (the POST-code port: a device in user
 * space in both SHV and QEMU) n times, n from the command line ("n=NUMBER"), then writes 0
 * to isa-debug-exit (port 0xF4). At CPL 3 even a software KVM runs the loop natively, so
 * each OUT costs one exit to the VMM and back. ELF32, so QEMU's -kernel loads it too.
 */
#define PORT_POST 0x80
#define PORT_DEBUG_EXIT 0xf4
#define MB_MAGIC 0x1badb002
#define MB_INFO_CMDLINE 4
#define IA32_EFER 0xc0000080
#define EFER_LME 0x100

        .section .text
        .code32
        .align 4
mb_header:                      /* Multiboot Specification 0.6.96, 3.1.1 (ELF: no address fields) */
        .long MB_MAGIC, 0, -MB_MAGIC

        .globl _start
_start:
        cli
        movl $stack_top, %esp
        xorl %edi, %edi                 /* n */
        testl $MB_INFO_CMDLINE, (%ebx)
        jz parsed
        movl 16(%ebx), %esi             /* the command line */
find:   movb (%esi), %al
        testb %al, %al
        jz parsed
        incl %esi
        cmpb $'n', %al
        jne find
        cmpb $'=', (%esi)
        jne find
        incl %esi
digit:  movzbl (%esi), %eax
        subl $'0', %eax
        cmpl $9, %eax
        ja parsed
        imull $10, %edi, %edi
        addl %eax, %edi
        incl %esi
        jmp digit
parsed:
        /* Identity map the first 4 MiB with two user-accessible 2 MiB pages (SDM Vol. 3A, 4.5). */
        movl $pdpt + 7, pml4
        movl $pd + 7, pdpt
        movl $0x000087, pd
        movl $0x200087, pd + 8
        movl $pml4, %eax
        movl %eax, %cr3
        movl %cr4, %eax
        orl $0x20, %eax                 /* CR4.PAE */
        movl %eax, %cr4
        movl $IA32_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax           /* CR0.PG | CR0.PE: IA-32e mode (SDM Vol. 3A, 10.8.5) */
        movl %eax, %cr0
        lgdt gdtr
        ljmp $0x08, $long_mode

        .code64
long_mode:
        movl $0x10, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %edi, %ecx
        /* An ELF32 object has no sign-extended 32-bit relocation: addresses go through EAX. */
        pushq $0x23                     /* SS: user data */
        movl $user_stack_top, %eax
        pushq %rax                      /* RSP */
        pushq $0x3002                   /* RFLAGS: IOPL 3, IF clear */
        pushq $0x1b                     /* CS: 64-bit user code */
        movl $user, %eax
        pushq %rax                      /* RIP */
        iretq

user:                                   /* CPL 3 */
        movw $PORT_POST, %dx
        testl %ecx, %ecx
        jz done
loop:   outb %al, %dx
        decl %ecx
        jnz loop
done:   xorl %eax, %eax
        outl %eax, $PORT_DEBUG_EXIT
        ud2                             /* not reached: the VMM stops at the exit port */

        .align 8
gdt:    .quad 0
        .quad 0x00209a0000000000        /* 0x08: ring-0 64-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: ring-0 data */
        .quad 0x0020fa0000000000        /* 0x18: ring-3 64-bit code */
        .quad 0x00cff2000000ffff        /* 0x20: ring-3 data */
gdtr:   .word gdtr - gdt - 1
        .long gdt

        .section .bss
        .align 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
        .skip 4096
stack_top:
        .skip 4096
user_stack_top:
