/*
 * Thin wrappers around privileged and system instructions, plus the architectural bit
 * definitions the kernels use. References are to the Intel SDM (Vol. 2 for instructions,
 * Vol. 3A for system state).
 */
#ifndef SHV_X86_H
#define SHV_X86_H

#include "types.h"

/* EFLAGS (SDM Vol. 1, 3.4.3). */
#define EFLAGS_CF 0x00000001u
#define EFLAGS_FIXED 0x00000002u /* bit 1 always reads as 1 */
#define EFLAGS_ZF 0x00000040u
#define EFLAGS_TF 0x00000100u
#define EFLAGS_IF 0x00000200u
#define EFLAGS_DF 0x00000400u
#define EFLAGS_OF 0x00000800u
#define EFLAGS_IOPL3 0x00003000u
#define EFLAGS_NT 0x00004000u
#define EFLAGS_RF 0x00010000u
#define EFLAGS_AC 0x00040000u

/* Control registers (SDM Vol. 3A, 2.5). */
#define CR0_PE 0x00000001u
#define CR0_MP 0x00000002u
#define CR0_EM 0x00000004u
#define CR0_TS 0x00000008u
#define CR0_WP 0x00010000u
#define CR0_AM 0x00040000u
#define CR0_PG 0x80000000u
#define CR4_DE 0x00000008u /* debugging extensions: I/O breakpoints; DR4/DR5 are #UD */
#define CR4_PSE 0x00000010u
#define CR4_PAE 0x00000020u
#define CR4_PGE 0x00000080u
#define CR4_UMIP 0x00000800u     /* SGDT, SIDT, SLDT, SMSW, STR are CPL 0 only */
#define CR4_FSGSBASE 0x00010000u /* RDFSBASE, WRFSBASE, RDGSBASE, WRGSBASE */
#define CR4_PCIDE 0x00020000u
#define CR4_SMEP 0x00100000u
#define CR4_SMAP 0x00200000u

/* Model-specific registers (SDM Vol. 4) and the EFER bits (Vol. 3A, 2.2.1). */
#define MSR_EFER 0xC0000080u
#define MSR_STAR 0xC0000081u           /* SYSCALL/SYSRET selectors */
#define MSR_LSTAR 0xC0000082u          /* SYSCALL target RIP in 64-bit mode */
#define MSR_FMASK 0xC0000084u          /* RFLAGS bits SYSCALL clears */
#define MSR_FS_BASE 0xC0000100u
#define MSR_GS_BASE 0xC0000101u
#define MSR_KERNEL_GS_BASE 0xC0000102u /* swapped with GS.base by SWAPGS */
#define EFER_SCE (1u << 0)             /* SYSCALL enable */
#define EFER_LME (1u << 8)             /* IA-32e mode enable */
#define EFER_LMA (1u << 10)            /* IA-32e mode active (read-only) */
#define EFER_NXE (1u << 11)

/* Exception vectors (SDM Vol. 3A, Table 6-1). */
enum {
  VEC_DE = 0, VEC_DB = 1, VEC_NMI = 2, VEC_BP = 3, VEC_OF = 4, VEC_BR = 5, VEC_UD = 6,
  VEC_NM = 7, VEC_DF = 8, VEC_TS = 10, VEC_NP = 11, VEC_SS = 12, VEC_GP = 13, VEC_PF = 14,
  VEC_MF = 16, VEC_AC = 17,
};

/* #PF error code bits (SDM Vol. 3A, 4.7). */
#define PFEC_P 0x01u
#define PFEC_W 0x02u
#define PFEC_U 0x04u
#define PFEC_RSVD 0x08u
#define PFEC_ID 0x10u

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u16 inw(u16 port) {
  u16 v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u32 inl(u16 port) {
  u32 v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

/* Control and debug registers are as wide as the mode: 32 bits on i386, 64 on amd64. */
#define DEFINE_CR(n)                                                        \
  static inline uptr read_cr##n(void) {                                     \
    uptr v;                                                                 \
    __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));                       \
    return v;                                                               \
  }                                                                         \
  static inline void write_cr##n(uptr v) {                                  \
    __asm__ volatile("mov %0, %%cr" #n ::"r"(v) : "memory");                \
  }
DEFINE_CR(0)
DEFINE_CR(2)
DEFINE_CR(3)
DEFINE_CR(4)
#undef DEFINE_CR

static inline uptr read_dr6(void) {
  uptr v;
  __asm__ volatile("mov %%dr6, %0" : "=r"(v));
  return v;
}
static inline void write_dr6(uptr v) { __asm__ volatile("mov %0, %%dr6" ::"r"(v)); }
/* DR0-DR3 (breakpoint addresses) and DR7 (their control), SDM Vol. 3B, 18.2. */
#define DEFINE_DR(n)                                                        \
  static inline uptr read_dr##n(void) {                                     \
    uptr v;                                                                 \
    __asm__ volatile("mov %%dr" #n ", %0" : "=r"(v));                       \
    return v;                                                               \
  }                                                                         \
  static inline void write_dr##n(uptr v) {                                  \
    __asm__ volatile("mov %0, %%dr" #n ::"r"(v) : "memory");                \
  }
DEFINE_DR(0)
DEFINE_DR(1)
DEFINE_DR(2)
DEFINE_DR(3)
DEFINE_DR(7)
#undef DEFINE_DR

static inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

static inline void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* EFLAGS, or RFLAGS on amd64 (PUSHF and POPF take the mode's stack width). */
static inline uptr read_eflags(void) {
  uptr v;
  __asm__ volatile("pushf; pop %0" : "=r"(v));
  return v;
}
static inline void write_eflags(uptr v) { __asm__ volatile("push %0; popf" ::"r"(v) : "memory", "cc"); }

static inline void invlpg(uptr va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline void clts(void) { __asm__ volatile("clts"); }

static inline u16 read_cs(void) {
  u16 v;
  __asm__ volatile("movw %%cs, %0" : "=r"(v));
  return v;
}
static inline u16 read_ss(void) {
  u16 v;
  __asm__ volatile("movw %%ss, %0" : "=r"(v));
  return v;
}
static inline u16 read_ds(void) {
  u16 v;
  __asm__ volatile("movw %%ds, %0" : "=r"(v));
  return v;
}
static inline u16 read_tr(void) {
  u16 v;
  __asm__ volatile("str %0" : "=r"(v));
  return v;
}
static inline void load_ds(u16 sel) { __asm__ volatile("movw %0, %%ds" ::"r"(sel) : "memory"); }
static inline void load_es(u16 sel) { __asm__ volatile("movw %0, %%es" ::"r"(sel) : "memory"); }

/* The operand of SGDT/SIDT/LGDT/LIDT: a limit and a base as wide as the mode (6 bytes in
   32-bit code, 10 in 64-bit mode; SDM Vol. 2, LGDT/LIDT). */
struct __attribute__((packed)) pseudo_descriptor {
  u16 limit;
  uptr base;
};
static inline void sgdt(struct pseudo_descriptor *d) { __asm__ volatile("sgdt %0" : "=m"(*d)); }
static inline void sidt(struct pseudo_descriptor *d) { __asm__ volatile("sidt %0" : "=m"(*d)); }

/* LAR: the access rights of a descriptor (dword 2 masked with 00FxFF00H; SDM Vol. 2, LAR), or 0
   when the selector is not accessible. */
#define LAR_L (1u << 21) /* the L flag of a code segment: 64-bit code */
static inline u32 lar(u16 selector) {
  u32 ar = 0;
  __asm__ volatile("lar %1, %0" : "+r"(ar) : "rm"((u32)selector) : "cc");
  return ar;
}

/* A processor's operating mode as the smp kernel compares it between CPUs: the control
   registers and, in IA-32e mode, IA32_EFER and the L flag of CS (0 in the 32-bit runtime,
   which does not use IA32_EFER: an i686 need not have it). kernel.h and kernel64.h read and
   load it (cpu_mode_read, cpu_mode_load). */
struct cpu_mode {
  uptr cr0, cr3, cr4;
  u64 efer;
  u32 cs_l;
};

#endif
