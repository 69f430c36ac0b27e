/*
 * Multiprocessor support for the guest kernels: the ACPI MADT walk (ACPI 6.5, 5.2.5 and
 * 5.2.12), the local APIC's registers (SDM Vol. 3A, chapter 11), PIT channel 2 delays
 * (Intel 8254 data sheet, mode 0) and the INIT-SIPI-SIPI start-up of an application
 * processor (SDM Vol. 3A, 10.4.4).
 */
#ifndef SHV_SMP_H
#define SHV_SMP_H

#include "types.h"

#define SMP_MAX_CPUS 64

/* Local APIC registers (SDM Vol. 3A, Table 11-1), as offsets in the xAPIC page. */
#define LAPIC_ID 0x020
#define LAPIC_VERSION 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ESR 0x280
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3E0

#define LAPIC_SVR_ENABLE (1u << 8)
#define LVT_MASKED (1u << 16)
#define LVT_TIMER_PERIODIC (1u << 17)
#define LAPIC_DIVIDE_BY_16 0x3u

/* ICR (SDM Vol. 3A, Figure 11-12). */
#define ICR_FIXED (0u << 8)
#define ICR_NMI (4u << 8)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_ASSERT (1u << 14)
#define ICR_LEVEL (1u << 15)

/* The APs' real-mode start-up code is copied to this page: startup vector 0x08. */
#define AP_TRAMPOLINE_ADDR 0x8000u

/* What the MADT says. */
struct madt_info {
  u32 lapic_address;
  int cpus;                  /* enabled processor local APIC entries */
  u8 apic_ids[SMP_MAX_CPUS]; /* in MADT order: the boot processor first */
  int ioapics;
  u32 ioapic_address;
  int irq0_gsi;               /* GSI of ISA IRQ 0 (an interrupt source override), or 0 */
  int lint1_nmi;              /* a local APIC NMI entry names LINT1 */
  u32 rsdp, rsdt, madt;       /* where they were found */
};

/* Finds the RSDP (EBDA, then the BIOS area), checks every checksum on the way to the MADT
   and reads it. Returns 0, or a message saying what is missing or wrong. */
const char *acpi_read_madt(struct madt_info *out);

extern u32 lapic_base;
static inline u32 lapic_read(u32 reg) { return *(volatile u32 *)(uptr)(lapic_base + reg); }
static inline void lapic_write(u32 reg, u32 v) { *(volatile u32 *)(uptr)(lapic_base + reg) = v; }
static inline u32 lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }
/* Writes the ICR (destination in ICR_HI first) and waits for the send to complete. */
void lapic_send_ipi(u32 apic_id, u32 icr_lo);

/* Busy-waits `us` microseconds on PIT channel 2 (port 0x61 gate and output). */
void pit_delay_us(u32 us);
/* How many times pit_delay_us has read port 0x61 so far: timing-dependent on hardware. */
extern u32 pit_polls;
/* PIT channel 2 as a stopwatch: starts a 50 ms count-down; pit_elapsed_us() reads it. */
void pit_stopwatch_start(void);
u32 pit_elapsed_us(void);

/* The AP start-up: the AP runs ap_main() (the kernel provides it) on `stack_top`, in
   32-bit protected mode with paging off (32-bit kernels) or in 64-bit mode on the BSP's
   page tables (amd64: CR3 as the BSP has it when it calls smp_start_ap, below 4 GiB). */
void ap_main(void);
/* INIT, INIT de-assert, 10 ms, SIPI, 200 us, SIPI if *started is still 0, then waits up
   to 100 ms for *started. Returns 1 when the AP set it. */
int smp_start_ap(u32 apic_id, void *stack_top, volatile u32 *started);

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

#endif
