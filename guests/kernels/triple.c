/*
 * triple: shuts the processor down with a triple fault, on purpose (SDM Vol. 3A, 6.15,
 * "Interrupt 8—Double Fault Exception": a fault while delivering #DF shuts down). With an
 * IDT whose limit is 0, INT3 cannot be delivered (#GP), neither can that #GP (#DF), nor the
 * #DF. A machine that resets on shutdown reloads the kernel and runs it again: a counter
 * kept in low memory, which the loader does not touch, counts the boots. On the third boot
 * the kernel ends the run normally, so a test sees both the reset and the re-run.
 */
#include "kernel.h"

/* Below the multiboot information structure, in RAM the loader never writes. */
#define BOOT_COUNTER ((volatile u32 *)0x7000)
#define COUNTER_MAGIC 0x5348560u /* "SHV" */
#define BOOTS_BEFORE_PASS 2

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  volatile u32 *c = BOOT_COUNTER;
  if (c[0] != COUNTER_MAGIC) {
    c[0] = COUNTER_MAGIC;
    c[1] = 0;
  }
  u32 boot = c[1]++;
  printf("triple: boot %u\n", boot);
  if (boot >= BOOTS_BEFORE_PASS) {
    printf("PASS\n");
    return 0;
  }
  static const struct __attribute__((packed)) {
    u16 limit;
    u32 base;
  } empty_idt = {0, 0};
  __asm__ volatile("lidt %0\n\tint3" ::"m"(empty_idt));
  printf("FAIL the triple fault did not happen\n");
  return 1;
}
