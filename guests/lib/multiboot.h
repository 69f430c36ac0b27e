/* The multiboot information structure (Multiboot Specification 0.6.96, section 3.3). */
#ifndef SHV_MULTIBOOT_H
#define SHV_MULTIBOOT_H

#include "types.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u

/* Bits of multiboot_info.flags: which fields are valid. */
#define MBI_MEMORY (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS (1u << 3)
#define MBI_MMAP (1u << 6)
#define MBI_LOADER_NAME (1u << 9)

struct multiboot_info {
  u32 flags;
  u32 mem_lower; /* KiB of memory below 1 MiB */
  u32 mem_upper; /* KiB of memory from 1 MiB to the first hole */
  u32 boot_device;
  u32 cmdline; /* physical address of a NUL-terminated string */
  u32 mods_count;
  u32 mods_addr;
  u32 syms[4];
  u32 mmap_length;
  u32 mmap_addr;
  u32 drives_length;
  u32 drives_addr;
  u32 config_table;
  u32 boot_loader_name;
};

struct multiboot_module {
  u32 mod_start;
  u32 mod_end;
  u32 string;
  u32 reserved;
};

/* One memory map entry. `size` does not count itself: the next entry is at +size+4. */
struct multiboot_mmap_entry {
  u32 size;
  u64 base;
  u64 length;
  u32 type; /* 1 = available RAM */
} __attribute__((packed));

#endif
