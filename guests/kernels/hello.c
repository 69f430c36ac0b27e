/*
 * hello: prints what the boot loader passed (Multiboot Specification 0.6.96, 3.3): the
 * command line, memory sizes, memory map, boot loader name and modules. Passes when the
 * magic is right, the memory fields and map are present, the map has usable RAM at 1 MiB and
 * modules, if any, are page-aligned.
 */
#include "kernel.h"

static void print_modules(const struct multiboot_info *info) {
  printf("mods_count=%u\n", info->mods_count);
  const struct multiboot_module *mods = (const struct multiboot_module *)(uptr)info->mods_addr;
  int aligned = 1;
  for (u32 i = 0; i < info->mods_count; i++) {
    const struct multiboot_module *m = &mods[i];
    u32 size = m->mod_end - m->mod_start;
    printf("mod[%u]: start=0x%x end=0x%x string='%s' bytes=", i, m->mod_start, m->mod_end,
           m->string ? (const char *)(uptr)m->string : "");
    const u8 *data = (const u8 *)(uptr)m->mod_start;
    for (u32 j = 0; j < size && j < 16; j++) printf("%02x", data[j]);
    printf("\n");
    if (m->mod_start & 0xFFF) aligned = 0;
  }
  /* The header's flag bit 0 asks for modules aligned on 4 KiB boundaries (spec 3.1.2). */
  if (info->mods_count) check("mods_page_aligned", aligned, NULL);
}

int kmain(u32 magic, struct multiboot_info *info) {
  printf("hello from shv guest\n");
  check("magic", magic == MULTIBOOT_BOOTLOADER_MAGIC, "eax=0x%08x", magic);
  if (magic != MULTIBOOT_BOOTLOADER_MAGIC) return test_finish();
  printf("flags=0x%08x\n", info->flags);

  printf("cmdline: %s\n", (info->flags & MBI_CMDLINE) && info->cmdline ? (const char *)(uptr)info->cmdline : "");

  int has_mem = (info->flags & MBI_MEMORY) != 0;
  if (has_mem) printf("mem_lower=%u mem_upper=%u\n", info->mem_lower, info->mem_upper);
  check("meminfo", has_mem, "flags bit 0");

  int has_mmap = (info->flags & MBI_MMAP) != 0 && info->mmap_length > 0;
  int ram_at_1m = 0;
  if (has_mmap) {
    u32 p = info->mmap_addr, end = info->mmap_addr + info->mmap_length;
    while (p < end) {
      const struct multiboot_mmap_entry *e = (const struct multiboot_mmap_entry *)(uptr)p;
      printf("mmap: base=0x%llx len=0x%llx type=%u\n", e->base, e->length, e->type);
      if (e->type == 1 && e->base <= 0x100000 && e->base + e->length > 0x100000) ram_at_1m = 1;
      p += e->size + 4;
    }
  }
  check("mmap", has_mmap, "flags bit 6 and a nonempty map");
  check("mmap_ram_at_1m", ram_at_1m, "a type-1 entry contains 0x100000");

  if (info->flags & MBI_LOADER_NAME) printf("boot_loader_name: %s\n", (const char *)(uptr)info->boot_loader_name);
  else printf("boot_loader_name: (none)\n");

  if (info->flags & MBI_MODS) print_modules(info);
  else printf("mods_count=0\n");

  return test_finish();
}
