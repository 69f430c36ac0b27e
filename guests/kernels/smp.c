/*
 * smp: multiprocessor start-up and per-CPU interrupts. The BSP finds the RSDP, walks the
 * RSDT to the MADT and counts the processors; turns paging on (32-bit, PAE or 4-level
 * paging, per variant); calibrates the local APIC timer against PIT channel 2; starts every
 * AP with INIT-SIPI-SIPI (real mode -> protected mode, and on amd64 -> IA-32e mode, in
 * lib/ap_boot.S), each AP then loading the runtime's GDT and IDT with a TSS of its own and
 * taking the BSP's mode (CR0, CR3, CR4; on amd64 also IA32_EFER, and CS is 64-bit code);
 * every CPU takes LAPIC_TICKS periodic timer interrupts from its own local APIC; the BSP
 * sends each AP an NMI IPI. The BSP prints one line per CPU and the checks.
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
  volatile uptr nmi_frame; /* where the NMI handler's frame was */
  struct cpu_mode mode;
};

static struct cpu cpus[SMP_MAX_CPUS];
static int ncpus;
static u8 ap_stacks[SMP_MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static struct ap_desc ap_descs[SMP_MAX_CPUS];
static struct cpu_mode bsp_mode;
static u32 timer_period; /* LAPIC counts per millisecond at divide 16 */

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

/* The HLT in wait_for_nmi(). */
extern u8 ap_nmi_hlt[];

static int nmi(struct trapframe *f) {
  struct cpu *c = this_cpu();
  if (c) {
    c->nmis++;
    c->nmi_frame = (uptr)f;
  }
  /* Taken after wait_for_nmi()'s check but before its HLT: step over the HLT (one byte),
     which nothing would end now. */
  if (*trapframe_ip(f) == (uptr)ap_nmi_hlt) *trapframe_ip(f) += 1;
  return 1;
}

/* An AP's NMI ran on its own stack: the IST2 stack of its own TSS (amd64), else the stack it
   was interrupted on, its own (ap_stacks). */
static int nmi_on_own_stack(int i) {
  size_t size;
  const u8 *stack = ap_nmi_stack(&ap_descs[i], &size);
  if (!stack) {
    stack = ap_stacks[i];
    size = AP_STACK_SIZE;
  }
  uptr frame = cpus[i].nmi_frame;
  return frame >= (uptr)stack && frame < (uptr)stack + size;
}

/* Spurious interrupts need no EOI (SDM Vol. 3A, 11.9). */
static int spurious(struct trapframe *f) {
  (void)f;
  return 1;
}

/*
 * Halts until *count reaches target, then returns with interrupts enabled. The check runs
 * with interrupts disabled and "sti; hlt" follows it: no interrupt is taken in STI's shadow
 * (SDM Vol. 3A, 6.8.3), so none can slip in between the check and the HLT, where the HLT
 * would miss it.
 */
static void halt_until(volatile u32 *count, u32 target) {
  __asm__ volatile("cli");
  while (*count < target) __asm__ volatile("sti; hlt; cli" ::: "memory");
  __asm__ volatile("sti");
}

/* Halts until the BSP's NMI. NMIs ignore IF and STI's shadow, so the NMI handler itself
   steps over the HLT (ap_nmi_hlt) when the NMI comes between the check and the HLT. */
static void __attribute__((noinline)) wait_for_nmi(volatile u32 *nmis) {
  __asm__ volatile("1: cmpl $0, %0\n\t"
                   "jne 2f\n\t"
                   ".globl ap_nmi_hlt\n"
                   "ap_nmi_hlt: hlt\n\t"
                   "jmp 1b\n"
                   "2:"
                   :
                   : "m"(*nmis)
                   : "memory", "cc");
}

/* This CPU's LAPIC_TICKS timer interrupts: a 1 ms periodic timer, halting in between. */
static void run_timer(struct cpu *c) {
  lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | SPURIOUS_VECTOR);
  lapic_write(LAPIC_TPR, 0);
  lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_BY_16);
  lapic_write(LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | TIMER_VECTOR);
  lapic_write(LAPIC_TIMER_INITIAL, timer_period);
  halt_until(&c->ticks, LAPIC_TICKS);
  lapic_write(LAPIC_TIMER_INITIAL, 0);
  c->timer_done = 1;
}

static int mode_equal(const struct cpu_mode *a, const struct cpu_mode *b) {
  return a->cr0 == b->cr0 && a->cr3 == b->cr3 && a->cr4 == b->cr4 && a->efer == b->efer &&
         a->cs_l == b->cs_l;
}

/* The local APIC's page is mapped on every path here: identity with paging off (32-bit
   kernels), or in the BSP's tables that ap_boot.S loaded (amd64). */
void ap_main(void) {
  struct cpu *c = this_cpu();
  if (!c) return; /* not in the MADT: nothing to report to */
  desc_init_ap(&ap_descs[c - cpus]);
  cpu_mode_load(&bsp_mode);
  cpu_mode_read(&c->mode);
  c->started = 1;
  run_timer(c);
  /* Wait for the BSP's NMI with interrupts on, then park. */
  wait_for_nmi(&c->nmis);
  __asm__ volatile("cli");
  c->parked = 1;
  for (;;) __asm__ volatile("hlt");
}

/* `prefix`, then the mode: CR0, CR3, CR4 and, in IA-32e mode, IA32_EFER and CS.L. */
static void print_mode(const char *prefix, const struct cpu_mode *m) {
  printf("%s cr0=0x%llx cr3=0x%llx cr4=0x%llx", prefix, (u64)m->cr0, (u64)m->cr3, (u64)m->cr4);
  if (RUNTIME_LONG_MODE) printf(" efer=0x%llx cs.l=%u", m->efer, m->cs_l);
}

/*
 * The MADT walk reads the BDA's EBDA pointer in page 0, which the kernels' page tables leave
 * out (to catch NULL), and ACPI tables wherever the firmware put them (QEMU: near the top of
 * RAM, above what the 32-bit kernels map). The 32-bit kernels walk before paging is on;
 * amd64, always paging, walks on the kernel's tables (0-4 GiB identity-mapped) with page 0
 * mapped read-only for the walk only.
 */
static const char *read_madt(struct madt_info *madt) {
  if (!RUNTIME_LONG_MODE) return acpi_read_madt(madt);
  map_page(0, 0, PTE_P);
  paging_enable();
  const char *err = acpi_read_madt(madt);
  map_page(0, 0, 0);
  invlpg(0);
  return err;
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

  paging_init();
  struct madt_info madt;
  const char *err = read_madt(&madt);
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

  /* The local APIC and I/O APIC pages uncached, identity-mapped; then paging on (32-bit
     kernels), or the tables reloaded to drop the translations they replace (amd64). */
  map_page(lapic_base, lapic_base, PTE_P | PTE_W | PTE_PCD);
  map_page(madt.ioapic_address, madt.ioapic_address, PTE_P | PTE_W | PTE_PCD);
  paging_enable();
  cpu_mode_read(&bsp_mode);
  print_mode("bsp:", &bsp_mode);
  printf("\n");

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
  cpus[0].mode = bsp_mode;
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
    printf("cpu %d: apic_id=%u started=%u", i, c->apic_id, c->started);
    print_mode("", &c->mode);
    printf(" timer_ticks=%u nmis=%u\n", c->ticks, c->nmis);
    check("cpu_mode", mode_equal(&c->mode, &bsp_mode), "CPU %d in the BSP's mode", i);
    check("cpu_timer", c->ticks >= LAPIC_TICKS, "CPU %d took %u timer interrupts", i, c->ticks);
    if (i > 0) {
      check("cpu_nmi", c->nmis == 1 && c->parked, "CPU %d took %u NMI", i, c->nmis);
      check("cpu_nmi_stack", nmi_on_own_stack(i), "CPU %d's NMI frame at 0x%llx", i, (u64)c->nmi_frame);
    }
  }
  /* Numbers that vary from run to run on hardware; on SHV every run prints the same. */
  printf("bsp: %u PIT polls, TSC 0x%llx at the end\n", pit_polls, rdtsc());
  return test_finish();
}
