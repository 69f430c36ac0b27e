/*
 * realmode: checks what realmode_entry.S recorded on its way from the 32-bit multiboot entry
 * through real mode and back to protected mode (SDM Vol. 3A, 10.9 and chapter 20), then, on
 * amd64, that the runtime went on into long mode from there.
 */
#include "kernel.h"
#include "realmode.h"

extern u8 rm_tramp_start[], rm_tramp_end[];
extern u8 rm_cr0[], rm_cs[], rm_int_expect_ip[], rm_int_ip[], rm_int_cs[], rm_int_flags[];
extern u8 rm_handler_flags[], rm_flags_after[], rm_int_ax[], rm_int31_count[], rm_decoy_count[];
extern u8 rm_ud_expect_ip[], rm_ud_ip[], rm_ud_count[], rm_seg_readback[], rm_eax32[];
extern u8 rm_addr32_value[], rm_unreal_value[], rm_farcall_expect_ip[], rm_farcall_ip[];
extern u8 rm_farcall_cs[], rm_farcall_ret[];
extern u32 rm_unreal_probe, rm_pm_again_cr0;
extern u16 rm_pm_again_cs;

/* The copy below 1 MiB that real mode wrote to (the linked one is the pristine original). */
#define RM16(sym) (*(volatile u16 *)(uptr)(RM_BASE + (u32)((uptr)(sym) - (uptr)rm_tramp_start)))
#define RM32(sym) (*(volatile u32 *)(uptr)(RM_BASE + (u32)((uptr)(sym) - (uptr)rm_tramp_start)))

#define FLAGS_CF 0x0001u
#define FLAGS_TF 0x0100u
#define FLAGS_IF 0x0200u
#define RM_CS (RM_BASE >> 4)

int kmain(u32 magic, struct multiboot_info *info) {
  (void)info;
#ifdef __x86_64__
  printf("realmode: checks, in 64-bit mode\n");
#else
  printf("realmode: checks, in 32-bit protected mode\n");
#endif
  check("multiboot_magic_kept", magic == MULTIBOOT_BOOTLOADER_MAGIC, "EAX=0x%08x", magic);
  check("trampoline_size", (u32)(rm_tramp_end - rm_tramp_start) <= RM_LIMIT - RM_BASE, "%u bytes",
        (u32)(rm_tramp_end - rm_tramp_start));

  u32 cr0 = RM32(rm_cr0);
  check("real_mode_cr0_pe_clear", (cr0 & CR0_PE) == 0 && (cr0 & CR0_PG) == 0, "CR0=0x%08x", cr0);
  check("real_mode_cs", RM16(rm_cs) == RM_CS, "CS=0x%04x", RM16(rm_cs));

  /* INT n in real mode (SDM Vol. 3A, 20.1.4): push FLAGS, CS, IP; clear IF, TF, AC. */
  u16 pushed = RM16(rm_int_flags), inside = RM16(rm_handler_flags), after = RM16(rm_flags_after);
  check("int_n_ivt_frame",
        RM16(rm_int_ip) == RM16(rm_int_expect_ip) && RM16(rm_int_cs) == RM_CS &&
            (pushed & (FLAGS_CF | FLAGS_IF)) == (FLAGS_CF | FLAGS_IF),
        "pushed IP=0x%04x (expected 0x%04x) CS=0x%04x FLAGS=0x%04x", RM16(rm_int_ip),
        RM16(rm_int_expect_ip), RM16(rm_int_cs), pushed);
  check("int_n_clears_if_tf", (inside & (FLAGS_IF | FLAGS_TF)) == 0, "FLAGS in the handler 0x%04x", inside);
  check("iret_restores_flags", (after & (FLAGS_CF | FLAGS_IF)) == (FLAGS_CF | FLAGS_IF) && RM16(rm_int_ax) == 0x2222,
        "FLAGS after IRET 0x%04x, AX=0x%04x", after, RM16(rm_int_ax));
  check("lidt_relocates_ivt", RM16(rm_int31_count) == 1 && RM16(rm_decoy_count) == 0,
        "handler at the relocated table ran %u times, the one at linear 0 %u times", RM16(rm_int31_count),
        RM16(rm_decoy_count));
  check("ud_through_ivt", RM16(rm_ud_count) == 1 && RM16(rm_ud_ip) == RM16(rm_ud_expect_ip),
        "%u #UD, IP=0x%04x (expected 0x%04x)", RM16(rm_ud_count), RM16(rm_ud_ip), RM16(rm_ud_expect_ip));

  /* Linear address = segment * 16 + offset (SDM Vol. 3A, 20.1.1). */
  u16 linear = *(volatile u16 *)(uptr)RM_SEG_LINEAR;
  check("segment_arithmetic", linear == 0xBEEF && RM16(rm_seg_readback) == 0xBEEF,
        "linear 0x%x holds 0x%04x, read back through the alias 0x%04x", RM_SEG_LINEAR, linear,
        RM16(rm_seg_readback));
  check("operand_address_size_prefixes", RM32(rm_eax32) == 0x89ABCDEFu && RM32(rm_addr32_value) == 0x13579BDFu,
        "EAX=0x%08x, [ESI]=0x%08x", RM32(rm_eax32), RM32(rm_addr32_value));
  check("segment_cache_kept_in_real_mode", RM32(rm_unreal_value) == rm_unreal_probe,
        "FS:0x%x read 0x%08x, expected 0x%08x", (u32)(uptr)&rm_unreal_probe, RM32(rm_unreal_value), rm_unreal_probe);
  check("far_call_retf",
        RM16(rm_farcall_ip) == RM16(rm_farcall_expect_ip) && RM16(rm_farcall_cs) == RM_CS &&
            RM16(rm_farcall_ret) == 0x3333,
        "pushed CS:IP %04x:%04x (expected %04x:%04x), AX=0x%04x", RM16(rm_farcall_cs), RM16(rm_farcall_ip), RM_CS,
        RM16(rm_farcall_expect_ip), RM16(rm_farcall_ret));

  check("protected_mode_again", (rm_pm_again_cr0 & CR0_PE) && rm_pm_again_cs == 0x08, "CR0=0x%08x CS=0x%x",
        rm_pm_again_cr0, rm_pm_again_cs);
#ifdef __x86_64__
  u64 efer = rdmsr(MSR_EFER);
  check("long_mode_after_real_mode", (efer & EFER_LMA) && read_cs() == SEL_KCODE, "EFER=0x%llx CS=0x%x", efer,
        read_cs());
#else
  check("runtime_in_protected_mode", (read_cr0() & CR0_PE) && read_cs() == SEL_KCODE, "CR0=0x%08x CS=0x%x",
        read_cr0(), read_cs());
#endif
  return test_finish();
}
