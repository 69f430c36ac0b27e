/*
 * smp: multiprocessor start-up and per-CPU interrupts. The BSP finds the RSDP, walks the
 * RSDT to the MADT and counts the processors; turns paging on (32-bit or PAE paging, per
 * variant); calibrates the local APIC timer against PIT channel 2; starts every AP with
 * INIT-SIPI-SIPI (real mode -> protected mode in lib/ap_boot.S), each AP then taking the
 * BSP's paging mode (CR0, CR3, CR4); every CPU takes LAPIC_TICKS periodic timer interrupts
 * from its own local APIC; the BSP sends each AP an NMI IPI. The BSP prints one line per
 * CPU and the checks.
 *
 * Command line: cpus=N checks the MADT's count (the tests pass --smp N and cpus=N).
 */
#include "kernel.h"
#include "paging.h"
#include "smp.h"

#define LAPIC_TICKS 10
#define TIMER_VECTOR 0x40
#define SPURIOUS_VECTOR 0xFF
#define CALIBRATION_US 10000u
#define AP_STACK_SIZE 8192
#define WAIT_TIMEOUT_MS 2000
#define PTE_PCD 0x010u /* page-level cache disable: the APICs' registers */

struct cpu {
  u32 apic_id;
  volatile u32 started;
  volatile u32 ticks;
  volatile u32 nmis;
  volatile u32 timer_done;
  volatile u32 parked;
  uptr cr0, cr3, cr4;
};

static struct cpu cpus[SMP_MAX_CPUS];
static int ncpus;
static u8 ap_stacks[SMP_MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static uptr bsp_cr0, bsp_cr3, bsp_cr4;
static u32 timer_period; /* LAPIC counts per millisecond at divide 16 */
static struct __attribute__((packed)) {
  u16 limit;
  u32 base;
} bsp_idtr;

static struct cpu *this_cpu(void) {
  u32 id = lapic_id();
  for (int i = 0; i < ncpus; i++)
    if (cpus[i].apic_id == id) return &cpus[i];
  return 0;
}

static int timer_interrupt(struct trapframe *f) {
  (void)f;
  struct cpu *c = this_cpu();
  if (c && ++c->ticks >= LAPIC_TICKS) lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
  lapic_write(LAPIC_EOI, 0);
  return 1;
}

static int nmi(struct trapframe *f) {
  (void)f;
  struct cpu *c = this_cpu();
  if (c) c->nmis++;
  return 1;
}

/* Spurious interrupts need no EOI (SDM Vol. 3A, 11.9). */
static int spurious(struct trapframe *f) {
  (void)f;
  return 1;
}

/* This CPU's LAPIC_TICKS timer interrupts: a 1 ms periodic timer, halting in between. */
static void run_timer(struct cpu *c) {
  lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | SPURIOUS_VECTOR);
  lapic_write(LAPIC_TPR, 0);
  lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_BY_16);
  lapic_write(LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | TIMER_VECTOR);
  lapic_write(LAPIC_TIMER_INITIAL, timer_period);
  __asm__ volatile("sti");
  while (c->ticks < LAPIC_TICKS) __asm__ volatile("hlt");
  lapic_write(LAPIC_TIMER_INITIAL, 0);
  c->timer_done = 1;
}

void ap_main(void) {
  __asm__ volatile("lidt %0" ::"m"(bsp_idtr));
  /* The BSP's mode: its page tables, then its paging bits. */
  write_cr4(bsp_cr4);
  write_cr3(bsp_cr3);
  write_cr0(bsp_cr0);
  struct cpu *c = this_cpu();
  if (!c) return; /* not in the MADT: nothing to report to */
  c->cr0 = read_cr0();
  c->cr3 = read_cr3();
  c->cr4 = read_cr4();
  c->started = 1;
  run_timer(c);
  /* Wait for the BSP's NMI with interrupts on, then park. */
  while (!c->nmis) __asm__ volatile("hlt");
  __asm__ volatile("cli");
  c->parked = 1;
  for (;;) __asm__ volatile("hlt");
}

/* Waits until *flag is set, for up to WAIT_TIMEOUT_MS of PIT time. */
static int wait_for(volatile u32 *flag) {
  for (int ms = 0; !*flag && ms < WAIT_TIMEOUT_MS; ms++) pit_delay_us(1000);
  return *flag != 0;
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  trap_set_handler(TIMER_VECTOR, timer_interrupt);
  trap_set_handler(VEC_NMI, nmi);
  trap_set_handler(SPURIOUS_VECTOR, spurious);

  struct madt_info madt;
  const char *err = acpi_read_madt(&madt);
  if (!check("acpi_madt", err == 0, "%s", err ? err : "RSDP, RSDT and MADT checksums good")) return test_finish();
  printf("acpi: RSDP at 0x%x, RSDT at 0x%x, MADT at 0x%x\n", madt.rsdp, madt.rsdt, madt.madt);
  printf("madt: %d CPUs, local APICs at 0x%x, %d I/O APIC at 0x%x, IRQ0 -> GSI %d\n", madt.cpus,
         madt.lapic_address, madt.ioapics, madt.ioapic_address, madt.irq0_gsi);
  u32 expected = cmdline_get_u32("cpus", 0);
  if (expected) check("madt_cpu_count", madt.cpus == (int)expected, "%d, expected %u", madt.cpus, expected);
  check("madt_ioapic", madt.ioapics == 1, "%d I/O APIC", madt.ioapics);
  check("madt_irq0_override", madt.irq0_gsi == 2, "IRQ0 -> GSI %d", madt.irq0_gsi);
  check("madt_lint1_nmi", madt.lint1_nmi, "LINT1 is NMI");

  lapic_base = madt.lapic_address;
  ncpus = madt.cpus;
  for (int i = 0; i < ncpus; i++) cpus[i].apic_id = madt.apic_ids[i];
  check("bsp_first", ncpus > 0 && cpus[0].apic_id == lapic_id(), "BSP APIC ID %u", lapic_id());
  printf("lapic: version 0x%x\n", lapic_read(LAPIC_VERSION));

  /* Paging on the BSP; the local APIC and I/O APIC pages uncached, identity-mapped. */
  paging_init();
  map_page(lapic_base, lapic_base, PTE_P | PTE_W | PTE_PCD);
  map_page(madt.ioapic_address, madt.ioapic_address, PTE_P | PTE_W | PTE_PCD);
  paging_enable();
  bsp_cr0 = read_cr0();
  bsp_cr3 = read_cr3();
  bsp_cr4 = read_cr4();
  __asm__ volatile("sidt %0" : "=m"(bsp_idtr));
  printf("bsp: cr0=0x%x cr3=0x%x cr4=0x%x\n", (u32)bsp_cr0, (u32)bsp_cr3, (u32)bsp_cr4);

  /* The timer against PIT channel 2: counts in CALIBRATION_US at divide 16. */
  lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | SPURIOUS_VECTOR);
  lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_BY_16);
  lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
  lapic_write(LAPIC_TIMER_INITIAL, 0xFFFFFFFFu);
  u64 tsc0 = rdtsc();
  pit_delay_us(CALIBRATION_US);
  u32 counted = 0xFFFFFFFFu - lapic_read(LAPIC_TIMER_CURRENT);
  u64 tsc1 = rdtsc();
  lapic_write(LAPIC_TIMER_INITIAL, 0);
  timer_period = counted / (CALIBRATION_US / 1000);
  printf("calibration: %u LAPIC counts and %u TSC ticks per ms\n", timer_period,
         (u32)((tsc1 - tsc0) / (CALIBRATION_US / 1000)));
  if (!check("lapic_timer_calibrated", timer_period > 0, "%u counts per ms", timer_period)) return test_finish();

  cpus[0].started = 1;
  cpus[0].cr0 = bsp_cr0;
  cpus[0].cr3 = bsp_cr3;
  cpus[0].cr4 = bsp_cr4;
  for (int i = 1; i < ncpus; i++) {
    int ok = smp_start_ap(cpus[i].apic_id, ap_stacks[i] + AP_STACK_SIZE, &cpus[i].started);
    check("ap_started", ok, "CPU %d (APIC ID %u) started", i, cpus[i].apic_id);
  }

  run_timer(&cpus[0]);
  for (int i = 1; i < ncpus; i++) {
    if (!cpus[i].started) continue;
    wait_for(&cpus[i].timer_done);
    lapic_send_ipi(cpus[i].apic_id, ICR_NMI);
    wait_for(&cpus[i].parked);
  }

  for (int i = 0; i < ncpus; i++) {
    struct cpu *c = &cpus[i];
    printf("cpu %d: apic_id=%u started=%u cr0=0x%x cr3=0x%x cr4=0x%x timer_ticks=%u nmis=%u\n", i,
           c->apic_id, c->started, (u32)c->cr0, (u32)c->cr3, (u32)c->cr4, c->ticks, c->nmis);
    check("cpu_mode", c->cr0 == bsp_cr0 && c->cr3 == bsp_cr3 && c->cr4 == bsp_cr4, "CPU %d in the BSP's mode", i);
    check("cpu_timer", c->ticks >= LAPIC_TICKS, "CPU %d took %u timer interrupts", i, c->ticks);
    if (i > 0) check("cpu_nmi", c->nmis == 1 && c->parked, "CPU %d took %u NMI", i, c->nmis);
  }
  /* Numbers that vary from run to run on hardware; on SHV every run prints the same. */
  printf("bsp: %u PIT polls, TSC 0x%llx at the end\n", pit_polls, rdtsc());
  return test_finish();
}
