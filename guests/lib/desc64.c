/*
 * The long-mode GDT, IDT and TSS (SDM Vol. 3A, 3.4.5 segment descriptors, 7.2.3 and 7.7 the
 * 64-bit TSS and its 16-byte descriptor, 6.14.1 the 64-bit IDT with 16-byte gates).
 *
 * GDT: see the selectors in kernel64.h (the last two entries, SEL_AP_TSS, take an
 * application processor's TSS: desc_init_ap). IDT: every vector points at its entry stub
 * through a DPL-0 interrupt gate, except #BP and #OF (DPL 3, for INT3 and for INTO in
 * compatibility mode at CPL 3) and 0x80, the system call (a DPL-3 trap gate). #DF runs on
 * IST1 and NMI on IST2, as 64-bit kernels usually arrange, so they always get a known-good
 * stack.
 */
#include "kernel.h"

static u64 gdt[GDT_ENTRIES] __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
struct main_tss main_tss __attribute__((aligned(256))); /* within one page */
u8 ist_stacks[IST_STACKS][IST_STACK_SIZE] __attribute__((aligned(16)));

extern u8 isr_stubs[];

/* The operand of LGDT and LIDT in 64-bit mode: a 2-byte limit and an 8-byte base. */
struct __attribute__((packed)) table_register {
  u16 limit;
  u64 base;
};

void gdt_set(int index, u32 base, u32 limit, u8 access, u8 flags) {
  gdt[index] = (u64)(limit & 0xFFFF) | (u64)(base & 0xFFFFFF) << 16 | (u64)access << 40 |
               (u64)((limit >> 16) & 0xF) << 48 | (u64)(flags & 0xF) << 52 | (u64)(base >> 24) << 56;
}

/* 16-byte system descriptors: the low 8 bytes as in legacy mode, then base 63:32 and a
   reserved dword whose type field (bits 12:8) must be 0 (SDM Vol. 3A, Figure 7-4). */
void gdt_set_system(int index, u64 base, u32 limit, u8 access) {
  gdt_set(index, (u32)base, limit, access, 0);
  gdt[index + 1] = base >> 32;
}

void gdt_set_call_gate(int index, u16 selector, u64 offset, u8 access) {
  gdt[index] = (offset & 0xFFFF) | (u64)selector << 16 | (u64)access << 40 |
               ((offset >> 16) & 0xFFFF) << 48;
  gdt[index + 1] = offset >> 32;
}

u64 gdt_get(int index) { return gdt[index]; }
void gdt_put(int index, u64 desc) { gdt[index] = desc; }

void idt_set(int vector, u64 offset, u16 selector, u8 attr, int ist) {
  idt[vector].lo = (offset & 0xFFFF) | (u64)selector << 16 | (u64)(ist & 7) << 32 |
                   (u64)attr << 40 | ((offset >> 16) & 0xFFFF) << 48;
  idt[vector].hi = offset >> 32;
}

u64 isr_stub(int vector) { return (u64)isr_stubs + 16u * (u64)vector; }

void idt_set_default(int vector) {
  u8 attr = GATE_INT;
  int ist = 0;
  if (vector == VEC_BP || vector == VEC_OF) attr |= DESC_DPL3;
  if (vector == 0x80) attr = GATE_TRAP | DESC_DPL3;
  if (vector == VEC_DF) ist = 1;
  if (vector == VEC_NMI) ist = 2;
  idt_set(vector, isr_stub(vector), SEL_KCODE, attr, ist);
}

struct idt_gate idt_get(int vector) { return idt[vector]; }
void idt_put(int vector, struct idt_gate gate) { idt[vector] = gate; }

void io_permit(u16 port, int allowed) {
  if (allowed) main_tss.iomap[port / 8] &= (u8) ~(1u << (port % 8));
  else main_tss.iomap[port / 8] |= (u8)(1u << (port % 8));
}

/* LGDT, then reload CS with a far return (64-bit mode has no far JMP with an immediate
   pointer) and the data segments. FS and GS stay null: their bases come from MSRs. */
static void load_gdt(void) {
  struct table_register gdtr = {sizeof gdt - 1, (u64)gdt};
  __asm__ volatile("lgdt %0\n\t"
                   "pushq %1\n\t"
                   "leaq 1f(%%rip), %%rax\n\t"
                   "pushq %%rax\n\t"
                   "lretq\n"
                   "1:\n\t"
                   "movl %k2, %%ds\n\t"
                   "movl %k2, %%es\n\t"
                   "movl %k2, %%ss\n\t"
                   "movl %k3, %%fs\n\t"
                   "movl %k3, %%gs"
                   :
                   : "m"(gdtr), "i"(SEL_KCODE), "r"((u64)SEL_KDATA), "r"(0ull)
                   : "rax", "memory");
}

static void load_idt(void) {
  struct table_register idtr = {sizeof idt - 1, (u64)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));
}

void desc_init(void) {
  gdt_set(1, 0, 0xFFFFF, DESC_CODE, DESC_FLAGS_64);
  gdt_set(2, 0, 0xFFFFF, DESC_DATA, DESC_FLAGS_32_4K);
  gdt_set(3, 0, 0xFFFFF, DESC_CODE | DESC_DPL3, DESC_FLAGS_32_4K);
  gdt_set(4, 0, 0xFFFFF, DESC_DATA | DESC_DPL3, DESC_FLAGS_32_4K);
  gdt_set(5, 0, 0xFFFFF, DESC_CODE | DESC_DPL3, DESC_FLAGS_64);
  gdt_set(6, 0, 0xFFFFF, DESC_CODE, DESC_FLAGS_32_4K);

  memset(&main_tss, 0, sizeof main_tss);
  main_tss.tss.rsp[0] = (u64)kernel_intr_stack_top;
  for (int i = 1; i <= IST_STACKS; i++) main_tss.tss.ist[i - 1] = IST_TOP(i);
  main_tss.tss.iomap_base = (u16)((u64)main_tss.iomap - (u64)&main_tss);
  memset(main_tss.iomap, 0xFF, sizeof main_tss.iomap); /* all ports denied; 0xFF terminator */
  gdt_set_system(SEL_TSS >> 3, (u64)&main_tss, sizeof main_tss - 1, DESC_TSS);

  load_gdt();
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));

  for (int v = 0; v < 256; v++) idt_set_default(v);
  load_idt();
}

void desc_init_ap(struct ap_desc *d) {
  load_gdt();
  memset(&d->tss, 0, sizeof d->tss);
  d->tss.ist[0] = (u64)d->df_stack + sizeof d->df_stack;
  d->tss.ist[1] = (u64)d->nmi_stack + sizeof d->nmi_stack;
  d->tss.iomap_base = sizeof d->tss; /* beyond the limit: no I/O bitmap */
  gdt_set_system(SEL_AP_TSS >> 3, (u64)&d->tss, sizeof d->tss - 1, DESC_TSS);
  __asm__ volatile("ltr %w0" ::"r"(SEL_AP_TSS));
  load_idt();
}
