/* ACPI MADT discovery, local APIC IPIs, PIT delays and AP start-up (see smp.h). */
#include "smp.h"
#include "kernel.h"

u32 lapic_base = 0xFEE00000u;
u32 pit_polls;
/* The stack the next AP starts on, and (amd64) the page tables it enters IA-32e mode with
   (ap_boot.S reads them). */
void *volatile ap_boot_stack;
volatile uptr ap_boot_cr3;

extern u8 ap_trampoline[], ap_trampoline_end[], ap_trampoline_gdtr[];

/* ------------------------------------------------------------------- ACPI (5.2) */

#define EBDA_SEGMENT_PTR 0x40E
#define BIOS_AREA 0xE0000u
#define BIOS_AREA_END 0x100000u
#define RSDP_V1_LENGTH 20
#define ACPI_HEADER_LENGTH 36
#define MADT_ENTRIES 44 /* header, local APIC address, flags */

static u8 sum8(const u8 *p, u32 n) {
  u8 s = 0;
  while (n--) s = (u8)(s + *p++);
  return s;
}
static u32 get32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }

static u32 find_rsdp_in(u32 from, u32 to) {
  for (u32 a = from; a + RSDP_V1_LENGTH <= to; a += 16) {
    const u8 *p = (const u8 *)(uptr)a;
    if (memcmp(p, "RSD PTR ", 8) == 0 && sum8(p, RSDP_V1_LENGTH) == 0) return a;
  }
  return 0;
}

const char *acpi_read_madt(struct madt_info *out) {
  memset(out, 0, sizeof *out);
  /* The BDA's EBDA pointer, read through a register so gcc sees no fixed-address object. */
  uptr bda = EBDA_SEGMENT_PTR;
  __asm__("" : "+r"(bda));
  u32 ebda = (u32) * (volatile u16 *)bda << 4;
  u32 rsdp = ebda ? find_rsdp_in(ebda, ebda + 1024) : 0;
  if (!rsdp) rsdp = find_rsdp_in(BIOS_AREA, BIOS_AREA_END);
  if (!rsdp) return "no RSDP with a good checksum in the EBDA or 0xE0000-0xFFFFF";
  out->rsdp = rsdp;
  const u8 *r = (const u8 *)(uptr)rsdp;
  if (r[15] >= 2 && sum8(r, get32(r + 20)) != 0) return "RSDP extended checksum is wrong";
  u32 rsdt = get32(r + 16);
  out->rsdt = rsdt;
  const u8 *t = (const u8 *)(uptr)rsdt;
  if (memcmp(t, "RSDT", 4) != 0) return "RSDP does not point at an RSDT";
  u32 rsdt_len = get32(t + 4);
  if (sum8(t, rsdt_len) != 0) return "RSDT checksum is wrong";
  for (u32 off = ACPI_HEADER_LENGTH; off + 4 <= rsdt_len; off += 4) {
    const u8 *h = (const u8 *)(uptr)get32(t + off);
    if (memcmp(h, "APIC", 4) == 0) {
      out->madt = (u32)(uptr)h;
      break;
    }
  }
  if (!out->madt) return "no MADT in the RSDT";
  const u8 *m = (const u8 *)(uptr)out->madt;
  u32 len = get32(m + 4);
  if (sum8(m, len) != 0) return "MADT checksum is wrong";
  out->lapic_address = get32(m + 36);
  for (u32 off = MADT_ENTRIES; off + 2 <= len && m[off + 1] >= 2; off += m[off + 1]) {
    const u8 *e = m + off;
    switch (e[0]) {
    case 0: /* processor local APIC: UID, APIC ID, flags (bit 0 enabled) */
      if ((get32(e + 4) & 1) && out->cpus < SMP_MAX_CPUS) out->apic_ids[out->cpus++] = e[3];
      break;
    case 1: /* I/O APIC: ID, reserved, address, GSI base */
      if (!out->ioapics++) out->ioapic_address = get32(e + 4);
      break;
    case 2: /* interrupt source override: bus, source, GSI, flags */
      if (e[2] == 0 && e[3] == 0) out->irq0_gsi = (int)get32(e + 4);
      break;
    case 4: /* local APIC NMI: UID, flags, LINT# */
      if (e[5] == 1) out->lint1_nmi = 1;
      break;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------- local APIC IPIs */

void lapic_send_ipi(u32 apic_id, u32 icr_lo) {
  lapic_write(LAPIC_ICR_HI, apic_id << 24);
  lapic_write(LAPIC_ICR_LO, icr_lo);
  while (lapic_read(LAPIC_ICR_LO) & ICR_DELIVERY_PENDING) cpu_relax();
}

/* ------------------------------------------------------------------- PIT channel 2 */

#define PIT_HZ 1193182u
#define PIT_CH2 0x42
#define PIT_CONTROL 0x43
#define PIT_CH2_MODE0_LOHI 0xB0 /* channel 2, LSB then MSB, mode 0, binary */
#define PIT_LATCH_CH2 0x80      /* counter latch command for channel 2 */
#define PORT_B 0x61
#define PORT_B_GATE2 0x01
#define PORT_B_SPEAKER 0x02
#define PORT_B_OUT2 0x20
#define PIT_MAX_US 50000u

static void pit_start(u32 count) {
  outb(PORT_B, (u8)((inb(PORT_B) & ~PORT_B_SPEAKER) | PORT_B_GATE2));
  outb(PIT_CONTROL, PIT_CH2_MODE0_LOHI);
  outb(PIT_CH2, (u8)count);
  outb(PIT_CH2, (u8)(count >> 8));
}

void pit_delay_us(u32 us) {
  while (us) {
    u32 step = us > PIT_MAX_US ? PIT_MAX_US : us;
    us -= step;
    pit_start((u32)((u64)PIT_HZ * step / 1000000u));
    while (!(inb(PORT_B) & PORT_B_OUT2)) {
      pit_polls++;
      cpu_relax();
    }
  }
}

void pit_stopwatch_start(void) { pit_start(0xFFFF); }

u32 pit_elapsed_us(void) {
  outb(PIT_CONTROL, PIT_LATCH_CH2);
  u32 count = inb(PIT_CH2);
  count |= (u32)inb(PIT_CH2) << 8;
  return (u32)((u64)(0xFFFFu - count) * 1000000u / PIT_HZ);
}

/* ------------------------------------------------------------------- AP start-up */

#define INIT_DELAY_US 10000u /* MP Specification B.4: 10 ms after INIT */
#define SIPI_DELAY_US 200u   /* 200 us after each startup IPI */
#define START_TIMEOUT_US 100000u

/* The trampoline's LGDT operand: real mode with a 32-bit operand size takes a 32-bit base. */
struct __attribute__((packed)) trampoline_gdtr {
  u16 limit;
  u32 base;
};

int smp_start_ap(u32 apic_id, void *stack_top, volatile u32 *started) {
  struct pseudo_descriptor gdtr;
  sgdt(&gdtr);
  struct trampoline_gdtr tgdtr = {gdtr.limit, (u32)gdtr.base};
  u8 *page = (u8 *)(uptr)AP_TRAMPOLINE_ADDR;
  memcpy(page, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
  memcpy(page + (ap_trampoline_gdtr - ap_trampoline), &tgdtr, sizeof tgdtr);
  ap_boot_stack = stack_top;
  ap_boot_cr3 = read_cr3();

  lapic_write(LAPIC_ESR, 0);
  lapic_send_ipi(apic_id, ICR_INIT | ICR_LEVEL | ICR_ASSERT);
  lapic_send_ipi(apic_id, ICR_INIT | ICR_LEVEL); /* INIT level de-assert */
  pit_delay_us(INIT_DELAY_US);
  for (int i = 0; i < 2 && !*started; i++) {
    lapic_send_ipi(apic_id, ICR_STARTUP | (AP_TRAMPOLINE_ADDR >> 12));
    pit_delay_us(SIPI_DELAY_US);
  }
  for (u32 waited = 0; !*started && waited < START_TIMEOUT_US; waited += 1000) pit_delay_us(1000);
  return *started != 0;
}
