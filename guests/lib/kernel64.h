/*
 * The amd64 runtime (included by kernel.h when compiling for x86-64): the long-mode GDT,
 * IDT and TSS (desc64.c), exception recording (trap64.c) and user mode (user_entry64.S,
 * user64.c). The kernels run in 64-bit mode at CPL 0 on identity-mapped memory; see
 * entry64.S for the switch from the 32-bit multiboot entry.
 */
#ifndef SHV_KERNEL64_H
#define SHV_KERNEL64_H

/*
 * Segment selectors of the runtime's GDT (desc64.c). The order of 0x08-0x2B is the one
 * SYSCALL and SYSRET need (SDM Vol. 2, SYSCALL and SYSRET): with IA32_STAR[47:32] = 0x08,
 * SYSCALL loads CS = 0x08 and SS = 0x10; with IA32_STAR[63:48] = 0x18, SYSRET to 64-bit
 * mode loads CS = 0x28 | 3 and SS = 0x20 | 3, and SYSRET to compatibility mode CS = 0x18 | 3.
 * The TSS descriptor is 16 bytes and takes entries 7 and 8.
 */
#define SEL_KCODE 0x08   /* 64-bit code, DPL 0 */
#define SEL_KDATA 0x10   /* flat data, DPL 0 */
#define SEL_UCODE32 0x1B /* 32-bit code, DPL 3: compatibility mode at CPL 3 */
#define SEL_UDATA 0x23   /* flat data, DPL 3 */
#define SEL_UCODE 0x2B   /* 64-bit code, DPL 3 */
#define SEL_KCODE32 0x30 /* 32-bit code, DPL 0: compatibility mode at CPL 0 */
#define SEL_TSS 0x38
#define GDT_FIRST_FREE 9
#define GDT_ENTRIES 32
/* The last two entries: the TSS descriptor an application processor loads (desc_init_ap). */
#define SEL_AP_TSS 0xF0

/* Descriptor access bytes (P | DPL | S | type; SDM Vol. 3A, 3.4.5, 3.5 and 7.2.3). */
#define DESC_CODE 0x9A      /* present, DPL 0, execute/read code */
#define DESC_DATA 0x92      /* present, DPL 0, read/write data */
#define DESC_DATA_RO 0x90   /* present, DPL 0, read-only data */
#define DESC_TSS 0x89       /* present, DPL 0, available 64-bit TSS (type 9 in IA-32e mode) */
#define DESC_TSS_BUSY 0x8B  /* present, DPL 0, busy 64-bit TSS */
#define DESC_CALL_GATE 0x8C /* present, DPL 0, 64-bit call gate */
#define DESC_DPL3 0x60
#define DESC_PRESENT 0x80
/* Descriptor flags nibble (G, D/B, L, AVL): 64-bit code has L = 1 and D = 0. */
#define DESC_FLAGS_64 0xA    /* G, L */
#define DESC_FLAGS_32 0x4    /* D/B */
#define DESC_FLAGS_32_4K 0xC /* G, D/B */

/* IDT gate type/attribute bytes: 64-bit interrupt and trap gates (SDM Vol. 3A, 6.14.1). */
#define GATE_INT 0x8E
#define GATE_TRAP 0x8F
#define GATE_TASK 0x85 /* a task gate: not allowed in the IDT in IA-32e mode */

/* The 64-bit TSS (SDM Vol. 3A, 7.7, Figure 7-11): stack pointers and the I/O map base. */
struct tss64 {
  u32 reserved0;
  u64 rsp[3]; /* RSP0-RSP2: the stack for an interrupt or call to CPL 0-2 */
  u64 reserved1;
  u64 ist[7]; /* IST1-IST7 in ist[0..6]: stacks chosen by the gate's IST field */
  u64 reserved2;
  u16 reserved3, iomap_base;
} __attribute__((packed));

/* The runtime's TSS with an I/O permission bitmap for ports 0..IOMAP_PORTS-1, all denied at
   start, then the 0xFF terminator byte (SDM Vol. 1, 19.5.2). */
#define IOMAP_PORTS 0x400
struct main_tss {
  struct tss64 tss;
  u8 iomap[IOMAP_PORTS / 8 + 1];
} __attribute__((packed));
extern struct main_tss main_tss;

/* Interrupt stacks (IST1..IST_STACKS): IST1 takes #DF, IST2 NMI, the others are for tests. */
#define IST_STACKS 3
#define IST_STACK_SIZE 8192
extern u8 ist_stacks[IST_STACKS][IST_STACK_SIZE];
#define IST_TOP(n) ((u64)ist_stacks[(n) - 1] + IST_STACK_SIZE)

/*
 * An application processor's part of the descriptor tables (the smp kernel has one per AP):
 * its own TSS, whose IST1 (#DF) and IST2 (NMI) stacks are its own, so that NMIs on several
 * CPUs never share a stack. RSP0 stays 0: APs never leave ring 0. desc_init_ap, on the AP,
 * loads the runtime's GDT (with a 64-bit base) and IDT, writes the TSS's descriptor into
 * the GDT's SEL_AP_TSS entries and loads TR from them (LTR caches the base and limit, so the
 * next AP can reuse the entries: APs start one at a time).
 */
#define AP_IST_STACK_SIZE 4096
struct ap_desc {
  struct tss64 tss;
  u8 df_stack[AP_IST_STACK_SIZE] __attribute__((aligned(16)));
  u8 nmi_stack[AP_IST_STACK_SIZE] __attribute__((aligned(16)));
};
void desc_init_ap(struct ap_desc *d);
/* The stack an AP's NMI handler runs on: its IST2 stack. */
static inline u8 *ap_nmi_stack(struct ap_desc *d, size_t *size) {
  *size = sizeof d->nmi_stack;
  return d->nmi_stack;
}

/* The mode an AP takes from the BSP (struct cpu_mode in x86.h). */
#define RUNTIME_LONG_MODE 1
static inline void cpu_mode_read(struct cpu_mode *m) {
  m->cr0 = read_cr0();
  m->cr3 = read_cr3();
  m->cr4 = read_cr4();
  m->efer = rdmsr(MSR_EFER);
  m->cs_l = (lar(read_cs()) & LAR_L) != 0;
}
/* IA32_EFER first (LME and LMA as they already are; NXE before the tables are walked), then
   CR4 (PAE stays set), CR3 and CR0 (PG stays set): every step is legal in IA-32e mode. */
static inline void cpu_mode_load(const struct cpu_mode *m) {
  wrmsr(MSR_EFER, m->efer);
  write_cr4(m->cr4);
  write_cr3(m->cr3);
  write_cr0(m->cr0);
}

/* A 16-byte IDT gate (SDM Vol. 3A, Figure 6-8). */
struct idt_gate {
  u64 lo, hi;
};

void gdt_set(int index, u32 base, u32 limit, u8 access, u8 flags);
/* A 16-byte system descriptor (TSS or LDT) in entries index and index + 1. */
void gdt_set_system(int index, u64 base, u32 limit, u8 access);
/* A 16-byte 64-bit call gate in entries index and index + 1 (SDM Vol. 3A, 5.8.3.1). */
void gdt_set_call_gate(int index, u16 selector, u64 offset, u8 access);
u64 gdt_get(int index);
void gdt_put(int index, u64 desc);
void idt_set(int vector, u64 offset, u16 selector, u8 attr, int ist);
void idt_set_default(int vector); /* the runtime's stub for `vector`, as at start */
struct idt_gate idt_get(int vector);
void idt_put(int vector, struct idt_gate gate);
u64 isr_stub(int vector); /* address of the runtime's entry stub for `vector` */
void io_permit(u16 port, int allowed);

/* Register state pushed by the entry stubs (entry64.S), lowest address first. In 64-bit
   mode the processor always pushes SS:RSP, whatever the privilege levels (SDM 6.14.2). */
struct trapframe {
  u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  u64 vector, error; /* error is 0 for vectors without an error code */
  u64 rip, cs, rflags, rsp, ss;
};
/* The saved instruction pointer, which IRETQ returns to. */
static inline u64 *trapframe_ip(struct trapframe *f) { return &f->rip; }

/* What the default handler records about the last exception (trap64.c). */
struct trap_record {
  u32 count; /* exceptions recorded since trap_clear() */
  u32 vector, error;
  u64 rip, cs, rflags, cr2, rsp, ss;
  u64 frame;       /* where the processor put the saved RIP (the frame's lowest word) */
  u64 handler_rsp; /* the stack pointer the stub ran on, just below the frame */
};
extern volatile struct trap_record last_trap;

/*
 * Recovery, as in the i386 runtime: TRY_BEGIN / TRY_END around one faulting instruction in
 * inline asm record its address (trap_fault_rip) and the next one's (trap_next_rip); the
 * default handler resumes at trap_resume. The stores use 32-bit absolute addresses: the
 * kernels are linked below 2 GiB (gcc's small code model).
 */
extern volatile u64 trap_resume, trap_fault_rip, trap_next_rip;
#define TRY_SETUP                                                   \
  "movq $8887f, trap_resume\n\t"                                    \
  "movq $8886f, trap_fault_rip\n\t"                                 \
  "movq $8887f, trap_next_rip\n\t"
#define TRY_FAULT "\n8886:\n\t"
#define TRY_RESUME "\n8887:\n\t"
#define TRY_BEGIN TRY_SETUP TRY_FAULT
#define TRY_END TRY_RESUME "movq $0, trap_resume\n\t"

typedef int (*trap_handler_fn)(struct trapframe *f);
/* A handler runs after the exception is recorded; returning nonzero means "handled". */
void trap_set_handler(int vector, trap_handler_fn fn);
void trap_clear(void);

/*
 * User mode (user_entry64.S, user64.c). run_user calls fn in 64-bit mode at CPL 3 with the given
 * RFLAGS on the runtime's user stack and returns when fn returns; run_user_compat runs
 * 32-bit code (compatibility mode, CS = SEL_UCODE32), which must end with the SYS_EXIT
 * system call itself (`xorl %eax, %eax; int $0x80`). The way back is INT 0x80 through a
 * DPL-3 trap gate, on the TSS RSP0 stack.
 */
void run_user_at(u64 rip, u64 rflags, u64 cs);
static inline void run_user(void (*fn)(void), u64 rflags) { run_user_at((u64)fn, rflags, SEL_UCODE); }
static inline void run_user_compat(u64 rip, u64 rflags) { run_user_at(rip, rflags, SEL_UCODE32); }
#define SYS_EXIT 0
typedef u64 (*syscall_fn)(struct trapframe *f);
extern syscall_fn syscall_hook; /* called for INT 0x80 with RAX != SYS_EXIT */
static inline u64 syscall1(u64 nr, u64 arg) {
  u64 ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(arg) : "memory");
  return ret;
}
extern u8 user_stack_top[], kernel_intr_stack_top[], kernel_intr_stack[], boot_stack_top[];
extern u8 boot_pml4[]; /* the entry's page tables: 0-4 GiB identity-mapped, page 0 absent */

/*
 * SYSCALL and SYSRET (user_entry64.S, user64.c). syscall_setup sets EFER.SCE, IA32_STAR (the
 * selectors above), IA32_LSTAR = syscall_entry, IA32_FMASK = fmask and IA32_KERNEL_GS_BASE =
 * &percpu. syscall_entry runs SWAPGS, switches to the per-CPU kernel stack, calls
 * syscall_hook64 with the saved registers and returns with SYSRETQ, or with SYSRETL (to
 * compatibility mode at ECX) when the hook sets syscall_return_compat.
 */
struct syscall_frame {
  u64 r15, r14, r13, r12, rbp, rbx, r9, r8, r10, rdx, rsi, rdi, rax;
  u64 rip;    /* RCX at the SYSCALL: the return address */
  u64 rflags; /* R11 at the SYSCALL: the caller's RFLAGS */
  u64 rsp;    /* the caller's RSP */
};
struct percpu {
  u64 kernel_rsp; /* loaded by syscall_entry after SWAPGS */
  u64 user_rsp;
};
extern struct percpu percpu;
extern u8 syscall_stack[], syscall_stack_top[];
extern volatile u8 syscall_return_compat;
typedef void (*syscall64_fn)(struct syscall_frame *f);
extern syscall64_fn syscall_hook64;
void syscall_entry(void);
void syscall_setup(u64 fmask);

#endif
