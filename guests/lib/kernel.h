/*
 * The runtime shared by all guest kernels: console, exit, string helpers, descriptor
 * tables, exception recording, user mode and the check/report helpers.
 */
#ifndef SHV_KERNEL_H
#define SHV_KERNEL_H

#include <stdarg.h>

#include "multiboot.h"
#include "types.h"
#include "x86.h"

/* Each kernel provides this; its return value is the exit code (0 = success). */
int kmain(u32 magic, struct multiboot_info *info);

/* Boot state saved by the runtime before kmain. */
extern u32 boot_magic;
extern struct multiboot_info *boot_info;
extern char boot_cmdline[512]; /* copy of the multiboot command line ("" if none) */

/* Looks up `key=value` in the command line; copies value (NUL-terminated) and returns 1. */
int cmdline_get(const char *key, char *value, size_t size);
u32 cmdline_get_u32(const char *key, u32 dflt);

/* Console on COM1 (serial.c, printf.c). Newlines are printed as a plain '\n'. */
void serial_init(void);
void serial_putc(char c);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int puts(const char *s); /* like C: appends '\n' */

/* Ends the run through isa-debug-exit (port 0xF4): the host exits with (code << 1) | 1. */
__attribute__((noreturn)) void exit(int code);

/* string.c */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);

#ifdef __x86_64__
/* The amd64 runtime: long-mode descriptor tables, traps and user mode. */
#include "kernel64.h"
#else

/* Segment selectors of the runtime's GDT (desc.c). Indices from GDT_FIRST_FREE up are free. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE 0x1B /* DPL 3, RPL 3 */
#define SEL_UDATA 0x23 /* DPL 3, RPL 3 */
#define SEL_TSS 0x28
#define GDT_FIRST_FREE 6
#define GDT_ENTRIES 32
/* The last entry: the TSS descriptor an application processor loads (desc_init_ap). */
#define SEL_AP_TSS 0xF8

/* Descriptor access bytes (P | DPL | S | type; SDM Vol. 3A, 3.4.5 and 3.5). */
#define DESC_CODE 0x9A      /* present, DPL 0, execute/read code */
#define DESC_DATA 0x92      /* present, DPL 0, read/write data */
#define DESC_DATA_RO 0x90   /* present, DPL 0, read-only data */
#define DESC_TSS 0x89       /* present, DPL 0, available 32-bit TSS */
#define DESC_TSS_BUSY 0x8B  /* present, DPL 0, busy 32-bit TSS */
#define DESC_CALL_GATE 0x8C /* present, DPL 0, 32-bit call gate */
#define DESC_DPL3 0x60
#define DESC_PRESENT 0x80
/* Descriptor flags nibble: G (4 KiB granularity) and D/B (32-bit). */
#define DESC_FLAGS_32 0x4
#define DESC_FLAGS_32_4K 0xC

/* IDT gate type/attribute bytes (SDM Vol. 3A, 6.11). */
#define GATE_INT 0x8E  /* present, DPL 0, 32-bit interrupt gate */
#define GATE_TRAP 0x8F /* present, DPL 0, 32-bit trap gate */
#define GATE_TASK 0x85 /* present, DPL 0, task gate */

/* 32-bit TSS (SDM Vol. 3A, 7.2.1, Figure 7-2). */
struct tss {
  u16 link, r0;
  u32 esp0;
  u16 ss0, r1;
  u32 esp1;
  u16 ss1, r2;
  u32 esp2;
  u16 ss2, r3;
  u32 cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
  u16 es, r4, cs, r5, ss, r6, ds, r7, fs, r8, gs, r9, ldt, r10;
  u16 trap, iomap_base;
} __attribute__((packed));

/* The runtime's TSS: the I/O permission bitmap covers ports 0..IOMAP_PORTS-1 (all denied at
   start); the byte after it is the required 0xFF terminator. Ports above are beyond the TSS
   limit and therefore always denied at CPL > IOPL (SDM Vol. 1, 19.5.2). */
#define IOMAP_PORTS 0x400
struct main_tss {
  struct tss tss;
  u8 iomap[IOMAP_PORTS / 8 + 1];
} __attribute__((packed));
extern struct main_tss main_tss;

void gdt_set(int index, u32 base, u32 limit, u8 access, u8 flags);
void gdt_set_gate(int index, u16 selector, u32 offset, u8 access, u8 params);
void gdt_set_tss(int index, struct tss *tss, u32 limit);
u64 gdt_get(int index);
void gdt_put(int index, u64 desc);
void idt_set(int vector, u32 offset, u16 selector, u8 attr);
void idt_set_default(int vector); /* the runtime's stub for `vector`, as at start */
u64 idt_get(int vector);
void idt_put(int vector, u64 gate);
u32 isr_stub(int vector); /* address of the runtime's entry stub for `vector` */
void tss_init(struct tss *t, u32 eip, u32 esp); /* a ring-0 task with the runtime's segments */
void io_permit(u16 port, int allowed);

/*
 * An application processor's part of the descriptor tables (the smp kernel has one per AP):
 * its own TSS (a busy TSS cannot be shared; ESP0 stays 0: APs never leave ring 0).
 * desc_init_ap, on the AP, loads the runtime's GDT and IDT, writes the TSS's descriptor into
 * the GDT's SEL_AP_TSS entry and loads TR from it (LTR caches the base and limit, so the next
 * AP can reuse the entry: APs start one at a time).
 */
struct ap_desc {
  struct tss tss;
};
void desc_init_ap(struct ap_desc *d);
/* The stack an AP's NMI handler runs on: NULL, the stack it interrupted (an interrupt gate to
   CPL 0 from CPL 0 switches no stack outside IA-32e mode). */
static inline u8 *ap_nmi_stack(struct ap_desc *d, size_t *size) {
  (void)d;
  *size = 0;
  return NULL;
}

/* The mode an AP takes from the BSP (struct cpu_mode in x86.h): the control registers. */
#define RUNTIME_LONG_MODE 0
static inline void cpu_mode_read(struct cpu_mode *m) {
  m->cr0 = read_cr0();
  m->cr3 = read_cr3();
  m->cr4 = read_cr4();
  m->efer = 0;
  m->cs_l = 0;
}
/* CR4 (PSE or PAE) and CR3 before CR0.PG turns paging on with them (SDM Vol. 3A, 10.9.1). */
static inline void cpu_mode_load(const struct cpu_mode *m) {
  write_cr4(m->cr4);
  write_cr3(m->cr3);
  write_cr0(m->cr0);
}

/* Register state pushed by the entry stubs (entry.S), lowest address first. */
struct trapframe {
  u32 edi, esi, ebp, esp_pushad, ebx, edx, ecx, eax; /* PUSHAD */
  u32 gs, fs, es, ds;
  u32 vector, error; /* error is 0 for vectors without an error code */
  u32 eip, cs, eflags; /* pushed by the processor */
  u32 user_esp, user_ss; /* only when the exception changed privilege level */
};
/* The saved instruction pointer, which IRET returns to. */
static inline u32 *trapframe_ip(struct trapframe *f) { return &f->eip; }

/* What the default handler records about the last exception (trap.c). */
struct trap_record {
  u32 count; /* exceptions recorded since trap_clear() */
  u32 vector, error, eip, cs, eflags, cr2, esp, ss;
};
extern volatile struct trap_record last_trap;

/*
 * Recovery: when `trap_resume` is nonzero, the default handler records the exception and
 * returns to that address (and clears it). Put TRY_BEGIN / TRY_END around one faulting
 * instruction in inline asm: TRY_BEGIN stores the instruction's address in trap_fault_eip
 * and the address after it in trap_next_eip, so checks can compare the saved EIP with the
 * faulting instruction (faults) or the next one (traps). TRY_SETUP, TRY_FAULT and
 * TRY_RESUME are the pieces, for tests that must run code between them (e.g. a test that
 * loads a null DS cannot store to memory after doing so). The asm statement must declare
 * everything the instruction would change if it did not fault.
 */
extern volatile u32 trap_resume, trap_fault_eip, trap_next_eip;
#define TRY_SETUP                                                   \
  "movl $8887f, trap_resume\n\t"                                    \
  "movl $8886f, trap_fault_eip\n\t"                                 \
  "movl $8887f, trap_next_eip\n\t"
#define TRY_FAULT "\n8886:\n\t"
#define TRY_RESUME "\n8887:\n\t"
#define TRY_BEGIN TRY_SETUP TRY_FAULT
#define TRY_END TRY_RESUME "movl $0, trap_resume\n\t"

typedef int (*trap_handler_fn)(struct trapframe *f);
/* A handler runs after the exception is recorded; returning nonzero means "handled". */
void trap_set_handler(int vector, trap_handler_fn fn);
void trap_clear(void);

/* User mode (user_entry.S, user.c). run_user calls fn at CPL 3 with the given EFLAGS on the
   runtime's user stack and returns when fn returns. Ring-3 code cannot print (no I/O). */
void run_user(void (*fn)(void), u32 eflags);
#define SYS_EXIT 0
typedef u32 (*syscall_fn)(struct trapframe *f);
extern syscall_fn syscall_hook; /* called for INT 0x80 with EAX != SYS_EXIT */
static inline u32 syscall1(u32 nr, u32 arg) {
  u32 ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(arg) : "memory");
  return ret;
}
extern u8 user_stack_top[], kernel_intr_stack_top[], kernel_intr_stack[], boot_stack_top[];

#endif /* __x86_64__ */

/* Checks (test.c): each prints one line; test_finish prints PASS or FAIL and returns the
   exit code (the number of the first failed check, 0 if all passed). */
int check(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Checks last_trap against an expected vector, error code and saved EIP (RIP on amd64, in
   trap64.c); the count must be 1. */
int check_trap(const char *name, u32 vector, u32 error, uptr ip);
int test_skipped(const char *name); /* listed in `skip=a,b*` on the command line */
/* A check that cannot run on this processor (CPUID does not advertise the feature): prints
   a `skip` line with the reason and counts nothing. */
void skip_check(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int test_finish(void);

#define EXIT_UNEXPECTED 126

#endif
