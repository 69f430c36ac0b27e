/*
 * GDT, IDT and TSS (SDM Vol. 3A, 3.4.5 segment descriptors, 6.11 IDT descriptors, 7.2
 * task management data structures).
 *
 * GDT: 0 null, 0x08 ring-0 code, 0x10 ring-0 data, 0x1B ring-3 code, 0x23 ring-3 data (all
 * flat 4 GiB), 0x28 the runtime's TSS; indices from GDT_FIRST_FREE are free for tests, but
 * for the last one, SEL_AP_TSS, where an application processor's TSS goes (desc_init_ap).
 * IDT: every vector points at its entry stub through a DPL-0 interrupt gate, except #BP and
 * #OF (DPL 3, so INT3 and INTO work at CPL 3) and 0x80, the system call (DPL-3 trap gate).
 */
#include "kernel.h"

static u64 gdt[GDT_ENTRIES] __attribute__((aligned(8)));
static u64 idt[256] __attribute__((aligned(8)));
struct main_tss main_tss __attribute__((aligned(256))); /* within one page */

extern u8 isr_stubs[];

struct __attribute__((packed)) table_register {
  u16 limit;
  u32 base;
};

void gdt_set(int index, u32 base, u32 limit, u8 access, u8 flags) {
  gdt[index] = (u64)(limit & 0xFFFF) | (u64)(base & 0xFFFFFF) << 16 | (u64)access << 40 |
               (u64)((limit >> 16) & 0xF) << 48 | (u64)(flags & 0xF) << 52 | (u64)(base >> 24) << 56;
}

void gdt_set_gate(int index, u16 selector, u32 offset, u8 access, u8 params) {
  gdt[index] = (u64)(offset & 0xFFFF) | (u64)selector << 16 | (u64)(params & 0x1F) << 32 |
               (u64)access << 40 | (u64)(offset >> 16) << 48;
}

void gdt_set_tss(int index, struct tss *tss, u32 limit) {
  gdt_set(index, (u32)tss, limit, DESC_TSS, 0);
}

u64 gdt_get(int index) { return gdt[index]; }
void gdt_put(int index, u64 desc) { gdt[index] = desc; }

void idt_set(int vector, u32 offset, u16 selector, u8 attr) {
  idt[vector] = (u64)(offset & 0xFFFF) | (u64)selector << 16 | (u64)attr << 40 |
                (u64)(offset >> 16) << 48;
}

u32 isr_stub(int vector) { return (u32)isr_stubs + 16u * (u32)vector; }

void idt_set_default(int vector) {
  u8 attr = GATE_INT;
  if (vector == VEC_BP || vector == VEC_OF) attr |= DESC_DPL3;
  if (vector == 0x80) attr = GATE_TRAP | DESC_DPL3;
  idt_set(vector, isr_stub(vector), SEL_KCODE, attr);
}

u64 idt_get(int vector) { return idt[vector]; }
void idt_put(int vector, u64 gate) { idt[vector] = gate; }

void tss_init(struct tss *t, u32 eip, u32 esp) {
  memset(t, 0, sizeof *t);
  t->eip = eip;
  t->esp = esp;
  t->eflags = EFLAGS_FIXED;
  t->cs = SEL_KCODE;
  t->ss = t->ds = t->es = t->fs = t->gs = SEL_KDATA;
  t->ss0 = SEL_KDATA;
  t->esp0 = esp;
  t->cr3 = read_cr3();
  t->iomap_base = sizeof(struct tss); /* no I/O bitmap unless the limit covers one */
}

void io_permit(u16 port, int allowed) {
  if (allowed) main_tss.iomap[port / 8] &= (u8) ~(1u << (port % 8));
  else main_tss.iomap[port / 8] |= (u8)(1u << (port % 8));
}

/* LGDT, then reload CS with a far jump and the data segments. */
static void load_gdt(void) {
  struct table_register gdtr = {sizeof gdt - 1, (u32)gdt};
  __asm__ volatile("lgdt %0\n\t"
                   "ljmp %1, $1f\n"
                   "1:\n\t"
                   "movw %w2, %%ds\n\t"
                   "movw %w2, %%es\n\t"
                   "movw %w2, %%fs\n\t"
                   "movw %w2, %%gs\n\t"
                   "movw %w2, %%ss"
                   :
                   : "m"(gdtr), "i"(SEL_KCODE), "r"(SEL_KDATA)
                   : "memory");
}

static void load_idt(void) {
  struct table_register idtr = {sizeof idt - 1, (u32)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));
}

void desc_init(void) {
  gdt_set(1, 0, 0xFFFFF, DESC_CODE, DESC_FLAGS_32_4K);
  gdt_set(2, 0, 0xFFFFF, DESC_DATA, DESC_FLAGS_32_4K);
  gdt_set(3, 0, 0xFFFFF, DESC_CODE | DESC_DPL3, DESC_FLAGS_32_4K);
  gdt_set(4, 0, 0xFFFFF, DESC_DATA | DESC_DPL3, DESC_FLAGS_32_4K);

  tss_init(&main_tss.tss, 0, (u32)kernel_intr_stack_top);
  main_tss.tss.iomap_base = (u16)((u32)main_tss.iomap - (u32)&main_tss);
  memset(main_tss.iomap, 0xFF, sizeof main_tss.iomap); /* all ports denied; 0xFF terminator */
  gdt_set_tss(5, &main_tss.tss, sizeof main_tss - 1);

  load_gdt();
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));

  for (int v = 0; v < 256; v++) idt_set_default(v);
  load_idt();
}

void desc_init_ap(struct ap_desc *d) {
  load_gdt();
  tss_init(&d->tss, 0, 0);
  gdt_set_tss(SEL_AP_TSS >> 3, &d->tss, sizeof d->tss - 1);
  __asm__ volatile("ltr %w0" ::"r"(SEL_AP_TSS));
  load_idt();
}
