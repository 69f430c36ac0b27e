/* Runtime start-up: descriptor tables, console, command line, then kmain and exit. */
#include "kernel.h"

void desc_init(void);

u32 boot_magic;
struct multiboot_info *boot_info;
char boot_cmdline[512];

/*
 * Mask both legacy 8259 PICs (OCW1, all IRQs masked). A machine without PICs ignores the
 * writes; on one with PICs (a BIOS typically leaves the timer IRQ enabled) this keeps the
 * tests that run with EFLAGS.IF = 1 from taking stray external interrupts.
 */
static void mask_legacy_pics(void) {
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
}

__attribute__((noreturn)) void crt_main(u32 magic, struct multiboot_info *info) {
  desc_init();
  serial_init();
  mask_legacy_pics();
  boot_magic = magic;
  boot_info = info;
  /* Copy the command line now: kernels that enable paging may not map the loader's data. */
  if (magic == MULTIBOOT_BOOTLOADER_MAGIC && (info->flags & MBI_CMDLINE) && info->cmdline) {
    const char *s = (const char *)(uptr)info->cmdline;
    size_t i = 0;
    for (; s[i] && i < sizeof boot_cmdline - 1; i++) boot_cmdline[i] = s[i];
    boot_cmdline[i] = 0;
  }
  exit(kmain(magic, info));
}

int cmdline_get(const char *key, char *value, size_t size) {
  size_t klen = strlen(key);
  const char *p = boot_cmdline;
  while (*p) {
    while (*p == ' ') p++;
    const char *word = p;
    while (*p && *p != ' ') p++;
    if ((size_t)(p - word) > klen && strncmp(word, key, klen) == 0 && word[klen] == '=') {
      const char *v = word + klen + 1;
      size_t n = 0;
      while (v + n < p && n + 1 < size) {
        value[n] = v[n];
        n++;
      }
      value[n] = 0;
      return 1;
    }
  }
  return 0;
}

u32 cmdline_get_u32(const char *key, u32 dflt) {
  char buf[16];
  if (!cmdline_get(key, buf, sizeof buf) || !buf[0]) return dflt;
  u32 v = 0;
  for (const char *p = buf; *p; p++) {
    if (*p < '0' || *p > '9') return dflt;
    v = v * 10 + (u32)(*p - '0');
  }
  return v;
}

__attribute__((noreturn)) void exit(int code) {
  /* isa-debug-exit: a 32-bit write ends the run with status (code << 1) | 1. */
  outl(0xF4, (u32)code);
  for (;;) __asm__ volatile("cli; hlt");
}
