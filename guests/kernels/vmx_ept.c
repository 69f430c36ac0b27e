/*
 * vmx_ept: EPT and VPID (SDM Vol. 3C, 29.1 and 29.3 to 29.4).
 *
 * The guest runs with "enable EPT" on an identity map of 0-4 GiB (2 MiB pages, vmx.c) and
 * VPID 1. The host changes the map as the test goes:
 *   - a hole (not present): a read violates, qualification read + linear address valid +
 *     final translation, with the guest-physical and guest-linear addresses; the host maps
 *     the page elsewhere and the read, retried, sees the other page;
 *   - a read-only page: reads work, a write violates (readable reported);
 *   - a page without execute: a CALL into it violates on the fetch;
 *   - a 2 MiB page and (if offered) a 1 GiB page mapped to other host-physical addresses;
 *   - a write-only entry: an EPT misconfiguration (exit 49);
 *   - the guest's own page table made not present: a violation on the page walk
 *     (qualification bit 8 clear) whose guest-physical address is the guest PTE's;
 *   - EPT accessed and dirty flags (EPTP bit 6, if offered): A after a read, D after a
 *     write, and D on the guest's page-table page (paging-structure accesses are writes);
 *   - INVEPT making a changed mapping visible, and INVVPID (individual address and single
 *     context) making changed guest page tables visible;
 *   - a violation while an injected interrupt pushes onto a guest stack missing from EPT:
 *     IDT-vectoring information names the interrupt, and injecting it again delivers it.
 */
#include "vmx.h"
#include "paging.h"

#define PAGE 4096
static u8 guest_stack[8192] __attribute__((aligned(16)));
/* Test pages: each its own 4 KiB page (the EPT and guest entries are per page). */
u8 hole_page[PAGE] __attribute__((aligned(PAGE)));
u8 alias_page[PAGE] __attribute__((aligned(PAGE)));
u8 ro_page[PAGE] __attribute__((aligned(PAGE)));
u8 nx_page[PAGE] __attribute__((aligned(PAGE)));
u8 mc_page[PAGE] __attribute__((aligned(PAGE)));
u8 ad_page[PAGE] __attribute__((aligned(PAGE)));
u8 remap_page[PAGE] __attribute__((aligned(PAGE)));
u8 remap_other[PAGE] __attribute__((aligned(PAGE)));
u8 vpid_page_a[PAGE] __attribute__((aligned(PAGE)));
u8 vpid_page_b[PAGE] __attribute__((aligned(PAGE)));

/* A linear page whose guest page table the host takes away (its walk, not the page). */
#define WALK_LINEAR 0x00800000u
/* A guest-physical 2 MiB page the EPT sends elsewhere, and where. */
#define GPA_2M 0x40000000u
#define HPA_2M 0x02000000u
/* A guest-physical 1 GiB page the EPT sends to host-physical 0. */
#define GPA_1G 0x80000000u
/* A linear page whose guest PTE the host switches between vpid_page_a and vpid_page_b. */
#define VPID_LINEAR 0x00C00000u

volatile u32 g_hole_value, g_ro_value, g_nx_value, g_2m_value, g_1g_value, g_remap1, g_remap2,
    g_vpid1, g_vpid2, g_vpid3;
volatile uptr g_1g_linear;
/* A guest stack page taken out of EPT while an injected interrupt is delivered. */
u8 stack_hole[PAGE] __attribute__((aligned(PAGE)));
volatile u32 g_count_40;
volatile uptr g_rip_40;
static int on_vector_40(struct trapframe *f) {
  g_count_40++;
#ifdef __x86_64__
  g_rip_40 = f->rip;
#else
  g_rip_40 = f->eip;
#endif
  return 1;
}

#ifdef __x86_64__
#define BX "%rbx"
#else
#define BX "%ebx"
#endif

extern char g_read_hole[], g_write_ro[], g_vmcall1[], g_read_mc[], g_read_walk[], g_vmcall2[],
    g_vmcall3[], g_vmcall4[], g_vmcall5[], g_vmcall6[], g_vmcall7[], g_done[], g_done_jmp[];
void guest_ept(void);
__asm__(".text\n"
        "guest_ept:\n"
        "g_read_hole: movl hole_page + 0x10, %eax\n"
        "  movl %eax, g_hole_value\n"
        "  movl ro_page, %eax\n"
        "  movl %eax, g_ro_value\n"
        "g_write_ro: movl $0x77, ro_page + 8\n"
        "  call nx_page\n"
        "  movl %eax, g_nx_value\n"
        "  movl " "0x40001234" ", %eax\n" /* GPA_2M + 0x1234 */
        "  movl %eax, g_2m_value\n"
        "g_vmcall1: vmcall\n"
        "  mov g_1g_linear, " BX "\n"
        "  movl (" BX "), %eax\n"
        "  movl %eax, g_1g_value\n"
        "g_read_mc: movl mc_page, %eax\n"
        "g_read_walk: movl 0x00800010, %eax\n" /* WALK_LINEAR + 0x10 */
        "g_vmcall2: vmcall\n"
        "  movl ad_page, %eax\n"
        "g_vmcall3: vmcall\n"
        "  movl $1, ad_page\n"
        "g_vmcall4: vmcall\n"
        "  movl remap_page, %eax\n"
        "  movl %eax, g_remap1\n"
        "g_vmcall5: vmcall\n"
        "  movl remap_page, %eax\n"
        "  movl %eax, g_remap2\n"
        "  movl 0x00C00000, %eax\n" /* VPID_LINEAR */
        "  movl %eax, g_vpid1\n"
        "g_vmcall6: vmcall\n"
        "  movl 0x00C00000, %eax\n"
        "  movl %eax, g_vpid2\n"
        "g_vmcall7: vmcall\n"
        "  movl 0x00C00000, %eax\n"
        "  movl %eax, g_vpid3\n"
        "g_done: vmcall\n"
        "g_done_jmp: jmp g_done\n");

/* EPT-violation qualification bits (SDM Vol. 3C, Table 28-7). */
#define Q_READ 0x1u
#define Q_WRITE 0x2u
#define Q_FETCH 0x4u
#define Q_READABLE 0x8u
#define Q_WRITABLE 0x10u
#define Q_EXECUTABLE 0x20u
#define Q_LINEAR 0x80u
#define Q_FINAL 0x100u

static u64 eptp;
static int ad_offered, gb_offered;

/* Runs the guest to its next exit; the check `name` wants `reason` at `rip`. */
static int run_expect(const char *name, u32 reason, const void *rip) {
  int r = vmx_run();
  if (r != VM_SUCCEED) {
    check(name, 0, "VM entry failed: %d, VM-instruction error %u", r,
          (u32)vmread(VMCS_INSTRUCTION_ERROR));
    return 0;
  }
  uptr at = vmread(VMCS_GUEST_RIP);
  int ok = vmx_guest.exit_reason == reason && at == (uptr)rip;
  if (!ok) {
    check(name, 0, "exit %u (%s) at 0x%llx, want %u at 0x%llx, qualification 0x%llx",
          vmx_guest.exit_reason, vmx_exit_name(vmx_guest.exit_reason), (u64)at, reason,
          (u64)(uptr)rip, (u64)vmx_guest.qualification);
  }
  return ok;
}

/* An EPT violation with the given qualification and addresses. */
static int check_violation(const char *name, const void *rip, u32 qual, u64 gpa, uptr gla) {
  if (!run_expect(name, EXIT_EPT_VIOLATION, rip)) return 0;
  u64 got_gpa = vmread64(VMCS_GUEST_PHYSICAL_ADDRESS);
  uptr got_gla = vmread(VMCS_GUEST_LINEAR_ADDRESS);
  u32 q = (u32)vmx_guest.qualification & 0x1FFF;
  return check(name, q == qual && got_gpa == gpa && got_gla == gla,
               "qualification 0x%x (want 0x%x) gpa 0x%llx (want 0x%llx) gla 0x%llx (want 0x%llx)",
               q, qual, got_gpa, gpa, (u64)got_gla, (u64)gla);
}

static void invept_single(void) { invept(INVEPT_SINGLE, eptp); }

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  if (!check("cpuid_vmx", vmx_available(), "CPUID.1:ECX[5]")) return test_finish();
  /* Guest and host share these page tables: identity maps, with large pages for the
     addresses beyond the runtime's 4 KiB pages (the amd64 runtime maps them already). */
  paging_init();
  map_large(GPA_2M, GPA_2M, PTE_P | PTE_W);
  map_large(HPA_2M, HPA_2M, PTE_P | PTE_W);
  map_large(GPA_1G, GPA_1G, PTE_P | PTE_W);
  paging_enable();
  u64 cap = rdmsr(MSR_VMX_EPT_VPID_CAP);
  u32 proc2_allowed = vmx_ctl_allowed1(MSR_VMX_PROCBASED_CTLS2);
  check("ept_vpid_offered",
        (proc2_allowed & (PROC2_ENABLE_EPT | PROC2_ENABLE_VPID)) ==
                (PROC2_ENABLE_EPT | PROC2_ENABLE_VPID) &&
            (cap & (EPT_CAP_PWL4 | EPT_CAP_WB | EPT_CAP_2MB | EPT_CAP_INVEPT |
                    EPT_CAP_INVEPT_SINGLE | EPT_CAP_INVVPID | EPT_CAP_INVVPID_ADDRESS |
                    EPT_CAP_INVVPID_SINGLE)) ==
                (EPT_CAP_PWL4 | EPT_CAP_WB | EPT_CAP_2MB | EPT_CAP_INVEPT |
                 EPT_CAP_INVEPT_SINGLE | EPT_CAP_INVVPID | EPT_CAP_INVVPID_ADDRESS |
                 EPT_CAP_INVVPID_SINGLE),
        "secondary controls allowed-1 0x%08x, IA32_VMX_EPT_VPID_CAP 0x%llx", proc2_allowed, cap);
  ad_offered = (cap & EPT_CAP_AD) != 0;
  gb_offered = (cap & EPT_CAP_1GB) != 0;

  /* Contents the guest must see. */
  memset(alias_page, 0, PAGE);
  *(u32 *)(alias_page + 0x10) = 0xA11A5;
  *(u32 *)ro_page = 0x0DDBA11;
  static const u8 code[] = {0xB8, 0x34, 0x12, 0x00, 0x00, 0xC3}; /* mov $0x1234, %eax; ret */
  memcpy(nx_page, code, sizeof code);
  *(volatile u32 *)(uptr)(HPA_2M + 0x1234) = 0x2222222;
  *(u32 *)remap_page = 0x1111;
  *(u32 *)remap_other = 0x2222;
  *(u32 *)vpid_page_a = 0xAAAA;
  *(u32 *)vpid_page_b = 0xBBBB;
  static volatile u32 magic_1g = 0x16161616;
  g_1g_linear = GPA_1G + (uptr)&magic_1g;
  map_page(VPID_LINEAR, (uptr)vpid_page_a, PTE_P | PTE_W);
  volatile pte_t *walk_pte = pte_get(WALK_LINEAR);

  eptp = ept_identity();
  *ept_pte((uptr)hole_page) = 0;
  *ept_pte((uptr)ro_page) = (uptr)ro_page | EPT_R | EPT_WB;
  *ept_pte((uptr)nx_page) = (uptr)nx_page | EPT_R | EPT_W | EPT_WB;
  *ept_pde(GPA_2M) = HPA_2M | EPT_PS | EPT_WB | EPT_RWX;

  if (!check("vmxon", vmx_enable() == VM_SUCCEED, NULL)) return test_finish();
  int r = vmx_setup(guest_ept, guest_stack + sizeof guest_stack, 0, 0,
                    PROC2_ENABLE_EPT | PROC2_ENABLE_VPID, 0, 0);
  if (!check("vmcs_setup", r == VM_SUCCEED, "%d", r)) return test_finish();
  vmwrite64(VMCS_EPTP, eptp);
  vmwrite(VMCS_VPID, 1);

  /* The hole: then mapped to alias_page. */
  check_violation("ept_violation_read_not_present", g_read_hole, Q_READ | Q_LINEAR | Q_FINAL,
                  (uptr)hole_page + 0x10, (uptr)hole_page + 0x10);
  *ept_pte((uptr)hole_page) = (uptr)alias_page | EPT_RWX | EPT_WB;
  invept_single();
  /* The read-only page: the read before the write passes. */
  check_violation("ept_violation_write_read_only", g_write_ro,
                  Q_WRITE | Q_READABLE | Q_LINEAR | Q_FINAL, (uptr)ro_page + 8, (uptr)ro_page + 8);
  *ept_pte((uptr)ro_page) |= EPT_W;
  invept_single();
  /* The fetch from a page without execute permission, at the CALL's target. */
  check_violation("ept_violation_fetch_not_executable", nx_page,
                  Q_FETCH | Q_READABLE | Q_WRITABLE | Q_LINEAR | Q_FINAL, (uptr)nx_page,
                  (uptr)nx_page);
  *ept_pte((uptr)nx_page) |= EPT_X;
  invept_single();

  if (run_expect("vmcall1", EXIT_VMCALL, g_vmcall1)) vmx_skip_instruction();
  check("ept_hole_remapped", g_hole_value == 0xA11A5, "0x%x", g_hole_value);
  check("ept_read_only_page_readable", g_ro_value == 0x0DDBA11, "0x%x", g_ro_value);
  check("ept_write_after_fix", *(volatile u32 *)(ro_page + 8) == 0x77, NULL);
  check("ept_fetch_after_fix", g_nx_value == 0x1234, "0x%x", g_nx_value);
  check("ept_2mb_page", g_2m_value == 0x2222222, "0x%x", g_2m_value);

  /* A 1 GiB page, a misconfigured entry, and the guest's own page table taken away. */
  if (gb_offered) *ept_pdpte(GPA_1G) = 0 | EPT_PS | EPT_WB | EPT_RWX;
  else g_1g_linear = (uptr)&magic_1g;
  *ept_pte((uptr)mc_page) = (uptr)mc_page | EPT_W | EPT_WB;
  u64 walk_table = (uptr)walk_pte & ~0xFFFull;
  *ept_pte(walk_table) = 0;
  invept_single();
  if (run_expect("ept_misconfig_write_only", EXIT_EPT_MISCONFIG, g_read_mc)) {
    u64 gpa = vmread64(VMCS_GUEST_PHYSICAL_ADDRESS);
    check("ept_misconfig_write_only", gpa == (uptr)mc_page, "gpa 0x%llx", gpa);
  }
  if (gb_offered) check("ept_1gb_page", g_1g_value == 0x16161616, "0x%x", g_1g_value);
  else skip_check("ept_1gb_page", "IA32_VMX_EPT_VPID_CAP[17] = 0");
  *ept_pte((uptr)mc_page) = (uptr)mc_page | EPT_RWX | EPT_WB;
  invept(INVEPT_ALL, 0);
  check_violation("ept_violation_guest_page_walk", g_read_walk, Q_READ | Q_LINEAR, (uptr)walk_pte,
                  WALK_LINEAR + 0x10);
  *ept_pte(walk_table) = walk_table | EPT_RWX | EPT_WB;
  invept_single();

  /* Accessed and dirty flags (EPTP bit 6). */
  volatile u64 *ad = ept_pte((uptr)ad_page);
  volatile u64 *ad_walk = ept_pte((uptr)pte_get((uptr)ad_page) & ~0xFFFull);
  if (run_expect("vmcall2", EXIT_VMCALL, g_vmcall2)) vmx_skip_instruction();
  if (ad_offered) {
    eptp |= EPTP_AD;
    vmwrite64(VMCS_EPTP, eptp);
    *ad &= ~(EPT_A | EPT_D);
    *ad_walk &= ~(EPT_A | EPT_D);
    invept_single();
  }
  if (run_expect("vmcall3", EXIT_VMCALL, g_vmcall3)) vmx_skip_instruction();
  if (ad_offered) {
    check("ept_accessed_on_read", (*ad & (EPT_A | EPT_D)) == EPT_A, "entry 0x%llx", *ad);
    check("ept_dirty_on_guest_paging_structure", (*ad_walk & EPT_D) != 0, "entry 0x%llx",
          *ad_walk);
  } else {
    skip_check("ept_accessed_on_read", "IA32_VMX_EPT_VPID_CAP[21] = 0");
  }
  if (run_expect("vmcall4", EXIT_VMCALL, g_vmcall4)) vmx_skip_instruction();
  if (ad_offered) check("ept_dirty_on_write", (*ad & EPT_D) != 0, "entry 0x%llx", *ad);

  /* INVEPT: a changed mapping is seen after it. */
  if (run_expect("vmcall5", EXIT_VMCALL, g_vmcall5)) vmx_skip_instruction();
  *ept_pte((uptr)remap_page) = (uptr)remap_other | EPT_RWX | EPT_WB;
  invept_single();
  /* INVVPID: changed guest page tables are seen after it (VPID 1 keeps its TLB entries
     across VM exits and entries). */
  if (run_expect("vmcall6", EXIT_VMCALL, g_vmcall6)) vmx_skip_instruction();
  *pte_get(VPID_LINEAR) = (uptr)vpid_page_b | PTE_P | PTE_W;
  check("invvpid_individual_address", invvpid(INVVPID_ADDRESS, 1, VPID_LINEAR) == VM_SUCCEED, NULL);
  if (run_expect("vmcall7", EXIT_VMCALL, g_vmcall7)) vmx_skip_instruction();
  *pte_get(VPID_LINEAR) = (uptr)vpid_page_a | PTE_P | PTE_W;
  check("invvpid_single_context", invvpid(INVVPID_SINGLE, 1, 0) == VM_SUCCEED, NULL);
  if (run_expect("final_vmcall", EXIT_VMCALL, g_done)) vmx_skip_instruction();
  check("invept_remapped", g_remap1 == 0x1111 && g_remap2 == 0x2222, "0x%x then 0x%x", g_remap1,
        g_remap2);
  check("invvpid_guest_page_tables", g_vpid1 == 0xAAAA && g_vpid2 == 0xBBBB && g_vpid3 == 0xAAAA,
        "0x%x, 0x%x, 0x%x", g_vpid1, g_vpid2, g_vpid3);

  /* An EPT violation during event delivery: an injected interrupt pushes its frame onto a
     guest stack that is not present in EPT. The exit reports the event as IDT-vectoring
     information (SDM 28.2.4); the host maps the page and injects the event again. */
  trap_set_handler(0x40, on_vector_40);
  *ept_pte((uptr)stack_hole) = 0;
  invept_single();
  vmwrite(VMCS_GUEST_RSP, (uptr)stack_hole + 0x800);
  vmwrite(VMCS_GUEST_RFLAGS, vmread(VMCS_GUEST_RFLAGS) | EFLAGS_IF);
  vmwrite(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | INTR_TYPE_EXTERNAL | 0x40);
  if (run_expect("ept_violation_during_delivery", EXIT_EPT_VIOLATION, g_done_jmp)) {
    u64 gpa = vmread64(VMCS_GUEST_PHYSICAL_ADDRESS);
    u32 q = (u32)vmx_guest.qualification & 0x1FFF;
    u32 vectoring = (u32)vmread(VMCS_IDT_VECTORING_INFO);
    uptr rsp = vmread(VMCS_GUEST_RSP);
    check("ept_violation_during_delivery",
          q == (Q_WRITE | Q_LINEAR | Q_FINAL) && gpa >= (uptr)stack_hole + 0x700 &&
              gpa < (uptr)stack_hole + 0x800 &&
              vectoring == (INTR_INFO_VALID | INTR_TYPE_EXTERNAL | 0x40),
          "qualification 0x%x gpa 0x%llx IDT-vectoring information 0x%x", q, gpa, vectoring);
    /* The guest state is from before the delivery began (SDM 28.3): nothing pushed. */
    check("guest_rsp_before_delivery", rsp == (uptr)stack_hole + 0x800, "RSP 0x%llx", (u64)rsp);
    *ept_pte((uptr)stack_hole) = (uptr)stack_hole | EPT_RWX | EPT_WB;
    invept_single();
    vmwrite(VMCS_ENTRY_INTR_INFO, vectoring);
  }
  if (run_expect("delivery_after_reinjection", EXIT_VMCALL, g_done)) vmx_skip_instruction();
  check("reinjected_interrupt_delivered", g_count_40 == 1 && g_rip_40 == (uptr)g_done_jmp,
        "%u deliveries at 0x%llx", g_count_40, (u64)g_rip_40);
  check("vmxoff", vmxoff() == VM_SUCCEED, NULL);
  return test_finish();
}
