/*
 * paging: 32-bit paging (i386 build) or PAE paging (pae build): accessed and dirty flags,
 * CR0.WP, large pages, global pages, TLB invalidation by INVLPG, CR3 and CR4 writes, alias
 * mappings, reserved-bit faults, SMEP and SMAP when CPUID advertises them; with PAE also
 * execute-disable and PDPTE checks. Only architecturally guaranteed behaviour is checked:
 * after changing a paging-structure entry the test always invalidates before expecting the
 * new translation, and never expects a stale translation to survive (SDM Vol. 3A, 4.10.4).
 */
#include "kernel.h"
#include "paging.h"

#define TEST_VA 0x80000000u   /* mapped on demand with 4 KiB pages */
#define ALIAS_VA 0x80001000u
#define CODE_VA 0x80002000u
#define LARGE_VA 0x40000000u  /* a large page (and for PAE, a second PDPTE) */

static u8 page_a[4096] __attribute__((aligned(4096)));
static u8 page_b[4096] __attribute__((aligned(4096)));
#ifdef PAE
static u8 code_page[4096] __attribute__((aligned(4096)));
#endif
static volatile u32 large_target;

static volatile u32 *at(u32 va) { return (volatile u32 *)va; }

static int check_pf(const char *name, u32 error, u32 cr2) {
  int ok = check_trap(name, VEC_PF, error, trap_fault_eip);
  if (ok && last_trap.cr2 != cr2) return check(name, 0, "CR2=0x%08x, expected 0x%08x", last_trap.cr2, cr2);
  return ok;
}

static u32 try_read(u32 va) {
  u32 v = 0;
  __asm__ volatile(TRY_BEGIN "movl (%1), %0" TRY_END : "+r"(v) : "r"(va) : "memory");
  return v;
}

static void try_write(u32 va, u32 v) {
  __asm__ volatile(TRY_BEGIN "movl %0, (%1)" TRY_END ::"r"(v), "r"(va) : "memory");
}

static void set_pte(u32 va, pte_t value) {
  *pte_get(va) = value;
  invlpg(va);
}

static void test_basic(void) {
  u32 before = large_target = 0x5A5A1234;
  paging_init();
  paging_enable();
  check("paging_enabled", (read_cr0() & CR0_PG) && large_target == before, "CR0=0x%08x CR4=0x%08x",
        read_cr0(), read_cr4());
#ifdef PAE
  check("pae_enabled", (read_cr4() & CR4_PAE) != 0, "CR4=0x%08x", read_cr4());
#endif
}

static void test_accessed_dirty(void) {
  page_a[0] = 1;
  map_page(TEST_VA, (u32)page_a, PTE_P | PTE_W);
  volatile pte_t *pte = pte_get(TEST_VA), *pde = pde_get(TEST_VA);
  *pde &= ~(pte_t)PTE_A;
  invlpg(TEST_VA);
  u32 v = *at(TEST_VA);
  (void)v;
  check("accessed_on_read", (*pte & (PTE_A | PTE_D)) == PTE_A && (*pde & PTE_A),
        "PTE=0x%llx PDE=0x%llx", (u64)*pte, (u64)*pde);
  *at(TEST_VA) = 2;
  check("dirty_on_write", (*pte & (PTE_A | PTE_D)) == (PTE_A | PTE_D) && page_a[0] == 2,
        "PTE=0x%llx", (u64)*pte);
}

static void test_alias_and_invalidation(void) {
  map_page(ALIAS_VA, (u32)page_a, PTE_P | PTE_W);
  invlpg(ALIAS_VA);
  *at(TEST_VA + 0x40) = 0xA11A5;
  check("alias_same_data", *at(ALIAS_VA + 0x40) == 0xA11A5 && *(volatile u32 *)(page_a + 0x40) == 0xA11A5,
        "read 0x%x through the alias", *at(ALIAS_VA + 0x40));

  *(volatile u32 *)page_a = 0xAAAAAAAA;
  *(volatile u32 *)page_b = 0xBBBBBBBB;
  u32 first = *at(TEST_VA);
  *pte_get(TEST_VA) = (pte_t)(u32)page_b | PTE_P | PTE_W;
  invlpg(TEST_VA);
  u32 second = *at(TEST_VA);
  check("invlpg_remap", first == 0xAAAAAAAA && second == 0xBBBBBBBB, "read 0x%x then 0x%x", first,
        second);

  *pte_get(TEST_VA) = (pte_t)(u32)page_a | PTE_P | PTE_W;
  write_cr3(read_cr3()); /* flushes all non-global translations */
  check("cr3_reload_remap", *at(TEST_VA) == 0xAAAAAAAA, "read 0x%x", *at(TEST_VA));
}

static void test_write_protect(void) {
  set_pte(TEST_VA, (pte_t)(u32)page_a | PTE_P); /* read-only */
  write_cr0(read_cr0() & ~CR0_WP);
  trap_clear();
  try_write(TEST_VA + 8, 0x1111);
  check("wp0_supervisor_write_allowed", last_trap.count == 0 && *(volatile u32 *)(page_a + 8) == 0x1111,
        "%u exceptions", last_trap.count);

  write_cr0(read_cr0() | CR0_WP);
  invlpg(TEST_VA);
  trap_clear();
  try_write(TEST_VA + 8, 0x2222);
  check_pf("wp1_supervisor_write_faults", PFEC_P | PFEC_W, TEST_VA + 8);
  check("wp1_write_not_done", *(volatile u32 *)(page_a + 8) == 0x1111, "value 0x%x",
        *(volatile u32 *)(page_a + 8));

  /* Write access needs R/W = 1 at every level: a read-only PDE over a writable PTE. */
  set_pte(TEST_VA, (pte_t)(u32)page_a | PTE_P | PTE_W);
  volatile pte_t *pde = pde_get(TEST_VA);
  *pde &= ~(pte_t)PTE_W;
  invlpg(TEST_VA);
  trap_clear();
  try_write(TEST_VA + 12, 0x3333);
  check_pf("wp1_read_only_pde", PFEC_P | PFEC_W, TEST_VA + 12);
  *pde |= PTE_W;
  invlpg(TEST_VA);
  write_cr0(read_cr0() & ~CR0_WP);
}

static void test_not_present(void) {
  set_pte(TEST_VA, (pte_t)(u32)page_a | PTE_W); /* P = 0 */
  trap_clear();
  try_read(TEST_VA + 0x123);
  check_pf("not_present_read", 0, TEST_VA + 0x123);
  trap_clear();
  try_write(TEST_VA + 0x200, 5);
  check_pf("not_present_write", PFEC_W, TEST_VA + 0x200);
  set_pte(TEST_VA, (pte_t)(u32)page_a | PTE_P | PTE_W);
}

static void test_large_page(void) {
  u32 frame = (u32)&large_target & ~(LARGE_PAGE_SIZE - 1);
  u32 offset = (u32)&large_target - frame;
  map_large(LARGE_VA, frame, PTE_P | PTE_W);
  invlpg(LARGE_VA + offset);
  large_target = 0x1A46E;
  u32 through_large = *at(LARGE_VA + offset);
  *at(LARGE_VA + offset) = 0x2B57F;
  pte_t pde = *pde_get(LARGE_VA);
  check("large_page_read_write", through_large == 0x1A46E && large_target == 0x2B57F,
        "read 0x%x, identity now 0x%x (%u KiB page)", through_large, large_target, LARGE_PAGE_SIZE >> 10);
  check("large_page_accessed_dirty", (pde & (PTE_A | PTE_D)) == (PTE_A | PTE_D), "PDE=0x%llx", (u64)pde);

  /* A reserved bit in a paging-structure entry: #PF with P = 1 and RSVD = 1 (SDM 4.7). */
#ifdef PAE
  const char *name = "reserved_bit_nx_without_nxe"; /* XD is reserved while EFER.NXE = 0 */
  pte_t bad = PTE_NX;
#else
  const char *name = "reserved_bit_4mb_pde_bit21"; /* bit 21 of a 4-MByte PDE (Table 4-5) */
  pte_t bad = 1u << 21;
#endif
  *pde_get(LARGE_VA) |= bad;
  invlpg(LARGE_VA + offset);
  trap_clear();
  try_read(LARGE_VA + offset);
  check_pf(name, PFEC_P | PFEC_RSVD, LARGE_VA + offset);
  *pde_get(LARGE_VA) &= ~bad;
  invlpg(LARGE_VA + offset);
}

static void test_global(void) {
  u32 a, b, c;
  write_cr4(read_cr4() | CR4_PGE);
  set_pte(TEST_VA, (pte_t)(u32)page_a | PTE_P | PTE_W | PTE_G);
  a = *at(TEST_VA);
  /* Writing CR4 with PGE changed flushes every translation, global ones included. */
  *pte_get(TEST_VA) = (pte_t)(u32)page_b | PTE_P | PTE_W | PTE_G;
  write_cr4(read_cr4() & ~CR4_PGE);
  write_cr4(read_cr4() | CR4_PGE);
  b = *at(TEST_VA);
  /* INVLPG invalidates a global translation too. */
  *pte_get(TEST_VA) = (pte_t)(u32)page_a | PTE_P | PTE_W | PTE_G;
  invlpg(TEST_VA);
  c = *at(TEST_VA);
  check("global_page_cr4_pge_flush", a == 0xAAAAAAAA && b == 0xBBBBBBBB, "read 0x%x then 0x%x", a, b);
  check("global_page_invlpg", c == 0xAAAAAAAA, "read 0x%x", c);
  write_cr4(read_cr4() & ~CR4_PGE);
  set_pte(TEST_VA, (pte_t)(u32)page_a | PTE_P | PTE_W);
}

/* ---- SMEP and SMAP (SDM Vol. 3A, 4.6.1), only if CPUID.(EAX=7,ECX=0):EBX[7] / [20] ---- */

#define USER_VA 0xC0000000u /* a user page outside the identity map's page directory entries */
static u8 user_page[4096] __attribute__((aligned(4096)));

/*
 * The identity map is user-accessible (the ring-3 tests run kernel code), so while SMEP or
 * SMAP is on, its PDEs are made supervisor-only: every kernel page becomes a supervisor
 * page, and USER_VA is the one user page.
 */
static void supervisor_identity_map(int on) {
  for (u32 va = 0; va < IDENTITY_LIMIT; va += LARGE_PAGE_SIZE) {
    if (on) *pde_get(va) &= ~(pte_t)PTE_U;
    else *pde_get(va) |= PTE_U;
  }
  write_cr3(read_cr3());
}

static u32 leaf7_ebx(void) {
  u32 a, b, c, d;
  cpuid(0, &a, &b, &c, &d);
  if (a < 7) return 0;
  cpuid(7, &a, &b, &c, &d);
  return b;
}

static void test_smep_smap(void) {
  static const u8 stub[] = {0xB8, 0x34, 0x12, 0x00, 0x00, 0xC3}; /* mov $0x1234, %eax; ret */
  memcpy(user_page, stub, sizeof stub);
  *(volatile u32 *)(user_page + 0x100) = 0x5EA1;
  set_pte(USER_VA, (pte_t)(u32)user_page | PTE_P | PTE_W | PTE_U);
  u32 features = leaf7_ebx();

  if (features & (1u << 7)) {
    supervisor_identity_map(1);
    write_cr4(read_cr4() | CR4_SMEP);
    trap_clear();
    __asm__ volatile("movl $8887f, trap_resume\n\t"
                     "jmp *%0\n"
                     "8887:\n\t"
                     :
                     : "r"(USER_VA)
                     : "memory");
    write_cr4(read_cr4() & ~CR4_SMEP);
    supervisor_identity_map(0);
    /* A fetch fault is reported at the target; I/D is set for a fetch whenever CR4.SMEP =
       1, with any paging mode (SDM 4.7). */
    if (check_trap("smep_supervisor_fetch_user_page", VEC_PF, PFEC_P | PFEC_ID, USER_VA) &&
        last_trap.cr2 != USER_VA)
      check("smep_supervisor_fetch_user_page", 0, "CR2=0x%08x", last_trap.cr2);
    u32 r = ((u32(*)(void))USER_VA)();
    check("smep_off_fetch_allowed", r == 0x1234, "returned 0x%x", r);
  } else {
    skip_check("smep_supervisor_fetch_user_page", "CPUID.(EAX=7,ECX=0):EBX[7] = 0: no SMEP");
  }

  if (features & (1u << 20)) {
    supervisor_identity_map(1);
    write_cr4(read_cr4() | CR4_SMAP);
    trap_clear();
    u32 v = try_read(USER_VA + 0x100); /* EFLAGS.AC = 0: a violation */
    check_pf("smap_supervisor_read_user_page", PFEC_P, USER_VA + 0x100);
    trap_clear();
    try_write(USER_VA + 0x104, 1);
    check_pf("smap_supervisor_write_user_page", PFEC_P | PFEC_W, USER_VA + 0x104);
    trap_clear();
    __asm__ volatile("stac" ::: "memory", "cc"); /* AC = 1: explicit accesses allowed */
    v = try_read(USER_VA + 0x100);
    u32 flags = read_eflags();
    __asm__ volatile("clac" ::: "memory", "cc");
    u32 cleared = read_eflags();
    check("smap_stac_allows", last_trap.count == 0 && v == 0x5EA1 && (flags & EFLAGS_AC) && !(cleared & EFLAGS_AC),
          "%u exceptions, read 0x%x, EFLAGS 0x%x then 0x%x", last_trap.count, v, flags, cleared);
    trap_clear();
    try_read(USER_VA + 0x100);
    check_pf("smap_clac_forbids_again", PFEC_P, USER_VA + 0x100);
    write_cr4(read_cr4() & ~CR4_SMAP);
    supervisor_identity_map(0);
  } else {
    skip_check("smap_supervisor_read_user_page", "CPUID.(EAX=7,ECX=0):EBX[20] = 0: no SMAP");
  }
}

#ifdef PAE
static void test_nx(void) {
  u32 a, b, c, d;
  cpuid(0x80000000u, &a, &b, &c, &d);
  u32 max_ext = a;
  d = 0;
  if (max_ext >= 0x80000001u) cpuid(0x80000001u, &a, &b, &c, &d);
  if (!check("nx_cpuid", (d & (1u << 20)) != 0, "CPUID.80000001H:EDX=0x%08x", d)) return;
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);

  static const u8 stub[] = {0xB8, 0x34, 0x12, 0x00, 0x00, 0xC3}; /* mov $0x1234, %eax; ret */
  memcpy(code_page, stub, sizeof stub);
  set_pte(CODE_VA, (pte_t)(u32)code_page | PTE_P | PTE_W);
  u32 r = ((u32(*)(void))CODE_VA)();
  check("nx_clear_executes", r == 0x1234, "returned 0x%x", r);

  set_pte(CODE_VA, (pte_t)(u32)code_page | PTE_P | PTE_W | PTE_NX);
  trap_clear();
  __asm__ volatile("movl $8887f, trap_resume\n\t"
                   "jmp *%0\n"
                   "8887:\n\t"
                   :
                   : "r"(CODE_VA)
                   : "memory");
  int ok = check_trap("nx_fetch_faults", VEC_PF, PFEC_P | PFEC_ID, CODE_VA);
  if (ok && last_trap.cr2 != CODE_VA) check("nx_fetch_cr2", 0, "CR2=0x%08x", last_trap.cr2);
  trap_clear();
  u32 v = try_read(CODE_VA);
  check("nx_data_read_allowed", last_trap.count == 0 && v == 0x001234B8, "%u exceptions, read 0x%x",
        last_trap.count, v);

  /* XD in a PDE forbids execution of everything it maps. */
  set_pte(CODE_VA, (pte_t)(u32)code_page | PTE_P | PTE_W);
  *pde_get(CODE_VA) |= PTE_NX;
  invlpg(CODE_VA);
  trap_clear();
  __asm__ volatile("movl $8887f, trap_resume\n\t"
                   "jmp *%0\n"
                   "8887:\n\t"
                   :
                   : "r"(CODE_VA)
                   : "memory");
  check_trap("nx_in_pde_faults", VEC_PF, PFEC_P | PFEC_ID, CODE_VA);
  *pde_get(CODE_VA) &= ~PTE_NX;
  invlpg(CODE_VA);
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(u64)EFER_NXE);
}

static void test_pdpte(void) {
  /* A present PDPTE with a reserved bit (bit 1, R/W, is reserved in PDPTEs): MOV to CR3
     loads the PDPTEs and raises #GP(0) (SDM Vol. 3A, 4.4.1). PDPTE 3 is not used here. */
  u32 cr3 = read_cr3();
  pdpt[3] |= 2;
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movl %0, %%cr3" TRY_END ::"r"(cr3) : "memory");
  pdpt[3] &= ~2ull;
  write_cr3(cr3);
  check_trap("pdpte_reserved_bit_gp", VEC_GP, 0, trap_fault_eip);
  check("pdpte_second_directory", *at(LARGE_VA + ((u32)&large_target & (LARGE_PAGE_SIZE - 1))) == large_target,
        "linear 0x%x maps through PDPTE 1", LARGE_VA);
}
#endif

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
#ifdef PAE
  printf("paging: PAE paging\n");
#else
  printf("paging: 32-bit paging\n");
#endif
  test_basic();
  test_accessed_dirty();
  test_alias_and_invalidation();
  test_write_protect();
  test_not_present();
  test_large_page();
  test_global();
  test_smep_smap();
#ifdef PAE
  test_nx();
  test_pdpte();
#endif
  paging_disable();
  check("paging_disabled", !(read_cr0() & CR0_PG) && large_target == 0x2B57F, "CR0=0x%08x", read_cr0());
  return test_finish();
}
