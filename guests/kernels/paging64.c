/*
 * paging (amd64): 4-level paging (SDM Vol. 3A, 4.5). The walk through all four levels with
 * their accessed flags, the dirty flag, both halves of the canonical address space, alias
 * mappings, INVLPG and CR3 reloads, CR0.WP and read-only entries at every level, not-present
 * entries at every level, 2 MiB pages and, when CPUID.80000001H:EDX[26] says they exist,
 * 1 GiB pages (else PS in a PDPTE is a reserved bit), execute-disable at three levels,
 * reserved bits, global pages, user/supervisor protection at every level, and the optional
 * SMEP, SMAP and PCID/INVPCID, each only when CPUID advertises it (a `skip` line otherwise).
 * Only architecturally guaranteed behaviour is checked: after changing an entry the test
 * always invalidates before expecting the new translation, and never expects a stale one
 * to survive (SDM Vol. 3A, 4.10.4).
 */
#include "kernel.h"
#include "paging64.h"

/* Test addresses, each in its own PML4 entry so that every level is walked afresh. */
#define TEST_VA 0x0000008000000000ull  /* PML4 entry 1 */
#define ALIAS_VA (TEST_VA + 0x1000)
#define CODE_VA (TEST_VA + 0x200000)   /* another page table, for XD in a PDE */
#define HIGH_VA 0xFFFF800000000000ull  /* PML4 entry 256: the upper half */
#define LARGE_VA 0x0000010000000000ull /* PML4 entry 2: a 2 MiB page */
#define HUGE_VA 0xFFFFFFFFC0000000ull  /* PML4 entry 511, PDPTE 511: a 1 GiB page */
#define USER_VA 0x0000018000000000ull  /* PML4 entry 3: a user page for SMEP and SMAP */
#define ABSENT_VA 0x0000020000000000ull /* PML4 entry 4: the not-present levels */

static u8 page_a[4096] __attribute__((aligned(4096)));
static u8 page_b[4096] __attribute__((aligned(4096)));
static u8 code_page[4096] __attribute__((aligned(4096)));
static u8 user_page[4096] __attribute__((aligned(4096)));
static volatile u64 large_target;

static volatile u64 *at(u64 va) { return (volatile u64 *)va; }

static int check_pf(const char *name, u32 error, u64 cr2) {
  int ok = check_trap(name, VEC_PF, error, trap_fault_rip);
  if (ok && last_trap.cr2 != cr2) return check(name, 0, "CR2=0x%llx, expected 0x%llx", last_trap.cr2, cr2);
  return ok;
}

static u64 try_read(u64 va) {
  u64 v = 0;
  __asm__ volatile(TRY_BEGIN "movq (%1), %0" TRY_END : "+r"(v) : "r"(va) : "memory");
  return v;
}

static void try_write(u64 va, u64 v) {
  __asm__ volatile(TRY_BEGIN "movq %0, (%1)" TRY_END ::"r"(v), "r"(va) : "memory");
}

/* Calls code at va (a `mov $0x1234, %eax; ret` stub); 0 if fetching it faulted. A fetch
   fault is reported at the target (saved RIP = va) after the CALL pushed its return
   address, so the resume point restores RSP from RBX. */
static u64 try_call(u64 va) {
  u64 r = 0;
  __asm__ volatile("movq $8887f, trap_resume\n\t"
                   "movq %%rsp, %%rbx\n\t"
                   "call *%1\n"
                   "8887:\n\t"
                   "movq %%rbx, %%rsp\n\t"
                   "movq $0, trap_resume\n\t"
                   : "+a"(r)
                   : "r"(va)
                   : "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
  return r;
}

/* A #PF on fetching the instruction at va: saved RIP = CR2 = va. */
static int check_fetch_pf(const char *name, u32 error, u64 va) {
  int ok = check_trap(name, VEC_PF, error, va);
  if (ok && last_trap.cr2 != va) return check(name, 0, "CR2=0x%llx, expected 0x%llx", last_trap.cr2, va);
  return ok;
}

static void set_pte(u64 va, pte_t value) {
  *pte_get(va) = value;
  invlpg(va);
}

static u32 cpuid_reg(u32 leaf, u32 subleaf, int reg) {
  u32 r[4];
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(subleaf));
  return r[reg];
}
enum { EAX, EBX, ECX, EDX };
static u32 max_basic, max_ext;

static int has_feature(u32 leaf, int reg, int bit) {
  if (leaf >= 0x80000000u ? leaf > max_ext : leaf > max_basic) return 0;
  return (cpuid_reg(leaf, 0, reg) >> bit) & 1;
}

static void test_basic(void) {
  large_target = 0x5A5A1234;
  paging_init();
  paging_enable();
  check("paging_4level", read_cr3() == paging_cr3() && (rdmsr(MSR_EFER) & EFER_LMA) && large_target == 0x5A5A1234,
        "CR3=0x%llx CR4=0x%llx", (u64)read_cr3(), (u64)read_cr4());
}

/* ---- the walk: accessed flags at every level, dirty flag on write ---- */

static void test_accessed_dirty(void) {
  page_a[0] = 1;
  map_page(TEST_VA, (u64)page_a, PTE_P | PTE_W);
  volatile pte_t *e[4] = {pml4e_get(TEST_VA), pdpte_get(TEST_VA), pde_get(TEST_VA), pte_get(TEST_VA)};
  for (int i = 0; i < 4; i++) *e[i] &= ~PTE_A;
  invlpg(TEST_VA);
  (void)*at(TEST_VA);
  check("accessed_on_read_all_levels",
        (*e[0] & PTE_A) && (*e[1] & PTE_A) && (*e[2] & PTE_A) && (*e[3] & (PTE_A | PTE_D)) == PTE_A,
        "PML4E=0x%llx PDPTE=0x%llx PDE=0x%llx PTE=0x%llx", (u64)*e[0], (u64)*e[1], (u64)*e[2], (u64)*e[3]);
  *at(TEST_VA) = 2;
  check("dirty_on_write", (*e[3] & (PTE_A | PTE_D)) == (PTE_A | PTE_D) && page_a[0] == 2, "PTE=0x%llx",
        (u64)*e[3]);

  /* The upper half: bits 63:48 copy bit 47, and PML4 entry 256 maps it. */
  map_page(HIGH_VA, (u64)page_b, PTE_P | PTE_W);
  invlpg(HIGH_VA);
  *at(HIGH_VA + 0x18) = 0x8888;
  check("upper_half_mapping", *(volatile u64 *)(page_b + 0x18) == 0x8888 && (*pml4e_get(HIGH_VA) & PTE_A),
        "read 0x%llx", *(volatile u64 *)(page_b + 0x18));
}

static void test_alias_and_invalidation(void) {
  map_page(ALIAS_VA, (u64)page_a, PTE_P | PTE_W);
  invlpg(ALIAS_VA);
  *at(TEST_VA + 0x40) = 0xA11A5;
  check("alias_same_data", *at(ALIAS_VA + 0x40) == 0xA11A5, "read 0x%llx through the alias",
        *at(ALIAS_VA + 0x40));

  *(volatile u64 *)page_a = 0xAAAAAAAA;
  *(volatile u64 *)page_b = 0xBBBBBBBB;
  u64 first = *at(TEST_VA);
  *pte_get(TEST_VA) = (u64)page_b | PTE_P | PTE_W;
  invlpg(TEST_VA);
  u64 second = *at(TEST_VA);
  check("invlpg_remap", first == 0xAAAAAAAA && second == 0xBBBBBBBB, "read 0x%llx then 0x%llx", first, second);

  *pte_get(TEST_VA) = (u64)page_a | PTE_P | PTE_W;
  write_cr3(read_cr3()); /* flushes all non-global translations */
  check("cr3_reload_remap", *at(TEST_VA) == 0xAAAAAAAA, "read 0x%llx", *at(TEST_VA));
}

/* ---- write protection: CR0.WP and R/W = 0 at each level ---- */

static void test_write_protect(void) {
  set_pte(TEST_VA, (u64)page_a | PTE_P); /* read-only PTE */
  write_cr0(read_cr0() & ~(u64)CR0_WP);
  trap_clear();
  try_write(TEST_VA + 8, 0x1111);
  check("wp0_supervisor_write_allowed", last_trap.count == 0 && *(volatile u64 *)(page_a + 8) == 0x1111,
        "%u exceptions", last_trap.count);

  write_cr0(read_cr0() | CR0_WP);
  invlpg(TEST_VA);
  trap_clear();
  try_write(TEST_VA + 8, 0x2222);
  check_pf("wp1_read_only_pte", PFEC_P | PFEC_W, TEST_VA + 8);
  check("wp1_write_not_done", *(volatile u64 *)(page_a + 8) == 0x1111, "value 0x%llx",
        *(volatile u64 *)(page_a + 8));
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W);

  /* A write needs R/W = 1 at every level (SDM Vol. 3A, 4.6.1). */
  static const char *const names[3] = {"wp1_read_only_pml4e", "wp1_read_only_pdpte", "wp1_read_only_pde"};
  volatile pte_t *levels[3] = {pml4e_get(TEST_VA), pdpte_get(TEST_VA), pde_get(TEST_VA)};
  for (int i = 0; i < 3; i++) {
    *levels[i] &= ~PTE_W;
    invlpg(TEST_VA);
    trap_clear();
    try_write(TEST_VA + 16, 0x3333);
    check_pf(names[i], PFEC_P | PFEC_W, TEST_VA + 16);
    *levels[i] |= PTE_W;
    invlpg(TEST_VA);
  }
  write_cr0(read_cr0() & ~(u64)CR0_WP);
}

/* ---- not-present entries at every level ---- */

static void test_not_present(void) {
  set_pte(TEST_VA, (u64)page_a | PTE_W); /* P = 0 */
  trap_clear();
  try_read(TEST_VA + 0x123);
  check_pf("not_present_pte_read", 0, TEST_VA + 0x123);
  trap_clear();
  try_write(TEST_VA + 0x200, 5);
  check_pf("not_present_pte_write", PFEC_W, TEST_VA + 0x200);
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W);

  /* ABSENT_VA: a PML4 entry that is not present; then one level deeper at a time. */
  trap_clear();
  try_read(ABSENT_VA + 8);
  check_pf("not_present_pml4e", 0, ABSENT_VA + 8);
  (void)pdpte_get(ABSENT_VA); /* creates the PDPT: its entries are not present */
  invlpg(ABSENT_VA);
  trap_clear();
  try_read(ABSENT_VA + 16);
  check_pf("not_present_pdpte", 0, ABSENT_VA + 16);
  (void)pde_get(ABSENT_VA);
  invlpg(ABSENT_VA);
  trap_clear();
  try_write(ABSENT_VA + 24, 1);
  check_pf("not_present_pde", PFEC_W, ABSENT_VA + 24);
}

/* ---- 2 MiB and 1 GiB pages ---- */

static void test_large_pages(void) {
  u64 frame = (u64)&large_target & ~(LARGE_PAGE_SIZE - 1), offset = (u64)&large_target - frame;
  map_large(LARGE_VA, frame, PTE_P | PTE_W);
  volatile pte_t *pde = pde_get(LARGE_VA);
  invlpg(LARGE_VA + offset);
  large_target = 0x1A46E;
  u64 through = *at(LARGE_VA + offset);
  *at(LARGE_VA + offset) = 0x2B57F;
  check("large_2m_read_write", through == 0x1A46E && large_target == 0x2B57F, "read 0x%llx, identity now 0x%llx",
        through, large_target);
  check("large_2m_accessed_dirty", (*pde & (PTE_A | PTE_D)) == (PTE_A | PTE_D), "PDE=0x%llx", (u64)*pde);

  /* A 2 MiB page's address must be 2 MiB aligned: bits 20:13 are reserved (Table 4-18). */
  *pde |= 1ull << 13;
  invlpg(LARGE_VA + offset);
  trap_clear();
  try_read(LARGE_VA + offset);
  check_pf("reserved_bit_2m_pde_bit13", PFEC_P | PFEC_RSVD, LARGE_VA + offset);
  *pde &= ~(1ull << 13);
  invlpg(LARGE_VA + offset);

  volatile pte_t *pdpte = pdpte_get(HUGE_VA);
  if (has_feature(0x80000001u, EDX, 26)) {
    /* A 1 GiB page at the very top of the address space maps physical 0-1 GiB. */
    map_huge(HUGE_VA, 0, PTE_P | PTE_W);
    invlpg(HUGE_VA + (u64)&large_target);
    large_target = 0x3C680;
    u64 v = *at(HUGE_VA + (u64)&large_target);
    *at(HUGE_VA + (u64)&large_target) = 0x4D791;
    check("huge_1g_read_write", v == 0x3C680 && large_target == 0x4D791, "read 0x%llx, identity now 0x%llx", v,
          large_target);
    check("huge_1g_accessed_dirty", (*pdpte & (PTE_A | PTE_D)) == (PTE_A | PTE_D), "PDPTE=0x%llx", (u64)*pdpte);
    *pdpte = 0;
    invlpg(HUGE_VA + (u64)&large_target);
  } else {
    skip_check("huge_1g_read_write", "CPUID.80000001H:EDX[26] = 0: no 1-GByte pages");
    /* Without 1 GiB pages, PS in a PDPTE is a reserved bit (SDM Vol. 3A, 4.5.4, Table 4-17). */
    *pdpte = PTE_P | PTE_W | PTE_PS;
    invlpg(HUGE_VA);
    trap_clear();
    try_read(HUGE_VA + 0x40);
    check_pf("reserved_bit_pdpte_ps_without_1g", PFEC_P | PFEC_RSVD, HUGE_VA + 0x40);
    *pdpte = 0;
    invlpg(HUGE_VA);
  }
}

/* ---- reserved bits (SDM Vol. 3A, 4.5.4 and Table 4-20; error code P | RSVD) ---- */

static void test_reserved_bits(void) {
  /* PS (bit 7) is reserved in a PML4E. */
  volatile pte_t *pml4e = pml4e_get(TEST_VA);
  *pml4e |= PTE_PS;
  invlpg(TEST_VA);
  trap_clear();
  try_read(TEST_VA + 0x50);
  check_pf("reserved_bit_pml4e_ps", PFEC_P | PFEC_RSVD, TEST_VA + 0x50);
  *pml4e &= ~PTE_PS;
  invlpg(TEST_VA);

  /* Address bits at and above MAXPHYADDR (CPUID.80000008H:EAX[7:0]) are reserved. */
  u32 maxphy = max_ext >= 0x80000008u ? cpuid_reg(0x80000008u, 0, EAX) & 0xFF : 36;
  if (maxphy < 52) {
    set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W | (1ull << maxphy));
    trap_clear();
    try_read(TEST_VA + 0x58);
    check_pf("reserved_bit_pte_above_maxphyaddr", PFEC_P | PFEC_RSVD, TEST_VA + 0x58);
    set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W);
  } else {
    skip_check("reserved_bit_pte_above_maxphyaddr", "MAXPHYADDR is 52: no such bit");
  }
}

/* ---- execute-disable (SDM Vol. 3A, 4.6.2) ---- */

static void test_nx(void) {
  if (!has_feature(0x80000001u, EDX, 20)) {
    skip_check("nx_pte_fetch_faults", "CPUID.80000001H:EDX[20] = 0: no execute-disable");
    return;
  }
  static const u8 stub[] = {0xB8, 0x34, 0x12, 0x00, 0x00, 0xC3}; /* mov $0x1234, %eax; ret */
  memcpy(code_page, stub, sizeof stub);
  set_pte(CODE_VA, (u64)code_page | PTE_P | PTE_W | PTE_NX);

  /* XD while EFER.NXE = 0 is a reserved bit. */
  trap_clear();
  try_read(CODE_VA);
  check_pf("reserved_bit_xd_without_nxe", PFEC_P | PFEC_RSVD, CODE_VA);

  wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
  set_pte(CODE_VA, (u64)code_page | PTE_P | PTE_W);
  u64 r = try_call(CODE_VA);
  check("nx_clear_executes", r == 0x1234, "returned 0x%llx", r);

  set_pte(CODE_VA, (u64)code_page | PTE_P | PTE_W | PTE_NX);
  trap_clear();
  try_call(CODE_VA);
  check_fetch_pf("nx_pte_fetch_faults", PFEC_P | PFEC_ID, CODE_VA);
  trap_clear();
  u64 v = try_read(CODE_VA);
  check("nx_data_read_allowed", last_trap.count == 0 && (v & 0xFFFFFFFFFFFFull) == 0xC300001234B8ull,
        "%u exceptions, read 0x%llx", last_trap.count, v);

  static const char *const names[3] = {"nx_pml4e_fetch_faults", "nx_pdpte_fetch_faults", "nx_pde_fetch_faults"};
  set_pte(CODE_VA, (u64)code_page | PTE_P | PTE_W);
  volatile pte_t *levels[3] = {pml4e_get(CODE_VA), pdpte_get(CODE_VA), pde_get(CODE_VA)};
  for (int i = 0; i < 3; i++) {
    *levels[i] |= PTE_NX;
    invlpg(CODE_VA);
    trap_clear();
    try_call(CODE_VA);
    check_fetch_pf(names[i], PFEC_P | PFEC_ID, CODE_VA);
    *levels[i] &= ~PTE_NX;
    invlpg(CODE_VA);
  }
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(u64)EFER_NXE);
}

/* ---- global pages (SDM Vol. 3A, 4.10.2.4 and 4.10.4.1) ---- */

static void test_global(void) {
  *(volatile u64 *)page_a = 0xAAAAAAAA;
  *(volatile u64 *)page_b = 0xBBBBBBBB;
  write_cr4(read_cr4() | CR4_PGE);
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W | PTE_G);
  u64 a = *at(TEST_VA);
  /* Writing CR4 with PGE changed flushes every translation, global ones included. */
  *pte_get(TEST_VA) = (u64)page_b | PTE_P | PTE_W | PTE_G;
  write_cr4(read_cr4() & ~(u64)CR4_PGE);
  write_cr4(read_cr4() | CR4_PGE);
  u64 b = *at(TEST_VA);
  /* INVLPG invalidates a global translation too. */
  *pte_get(TEST_VA) = (u64)page_a | PTE_P | PTE_W | PTE_G;
  invlpg(TEST_VA);
  u64 c = *at(TEST_VA);
  check("global_page_cr4_pge_flush", a == 0xAAAAAAAA && b == 0xBBBBBBBB, "read 0x%llx then 0x%llx", a, b);
  check("global_page_invlpg", c == 0xAAAAAAAA, "read 0x%llx", c);
  write_cr4(read_cr4() & ~(u64)CR4_PGE);
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W);
}

/* ---- user/supervisor protection at every level (SDM Vol. 3A, 4.6.1) ---- */

static volatile u64 user_va, user_value;
static void user_read(void) {
  u64 v = 0;
  __asm__ volatile(TRY_BEGIN "movq (%1), %0" TRY_END : "+r"(v) : "r"(user_va) : "memory");
  user_value = v;
}
static void user_write(void) { __asm__ volatile(TRY_BEGIN "movq %0, (%1)" TRY_END ::"r"(7ull), "r"(user_va) : "memory"); }

static void expect_user_pf(const char *name, void (*fn)(void), u64 va, u32 error) {
  user_va = va;
  trap_clear();
  run_user(fn, EFLAGS_FIXED);
  check_pf(name, error, va);
}

static void test_user_supervisor(void) {
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W | PTE_U);
  *(volatile u64 *)(page_a + 0x60) = 0x600D;
  user_va = TEST_VA + 0x60;
  trap_clear();
  run_user(user_read, EFLAGS_FIXED);
  check("user_read_user_page", last_trap.count == 0 && user_value == 0x600D, "%u exceptions, read 0x%llx",
        last_trap.count, user_value);

  static const char *const names[4] = {"user_read_supervisor_pml4e", "user_read_supervisor_pdpte",
                                       "user_read_supervisor_pde", "user_read_supervisor_pte"};
  volatile pte_t *levels[4] = {pml4e_get(TEST_VA), pdpte_get(TEST_VA), pde_get(TEST_VA), pte_get(TEST_VA)};
  for (int i = 0; i < 4; i++) {
    *levels[i] &= ~PTE_U;
    invlpg(TEST_VA);
    expect_user_pf(names[i], user_read, TEST_VA + 0x68, PFEC_P | PFEC_U);
    *levels[i] |= PTE_U;
    invlpg(TEST_VA);
  }
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_U); /* user read-only */
  expect_user_pf("user_write_read_only", user_write, TEST_VA + 0x70, PFEC_P | PFEC_W | PFEC_U);
  set_pte(TEST_VA, (u64)page_a | PTE_W | PTE_U); /* not present */
  expect_user_pf("user_read_not_present", user_read, TEST_VA + 0x78, PFEC_U);
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W);
}

/* ---- SMEP and SMAP (SDM Vol. 3A, 4.6.1), only if CPUID.(EAX=7,ECX=0):EBX[7] / [20] ---- */

/*
 * The kernel's identity map is user-accessible (the ring-3 tests run kernel code), so while
 * SMEP or SMAP is on, PML4 entry 0 is made supervisor-only: the whole identity map becomes
 * supervisor pages, and USER_VA (PML4 entry 3) is the one user page.
 */
static void supervisor_identity_map(int on) {
  if (on) *pml4e_get(0) &= ~PTE_U;
  else *pml4e_get(0) |= PTE_U;
  write_cr3(read_cr3());
}

static void test_smep_smap(void) {
  static const u8 stub[] = {0xB8, 0x34, 0x12, 0x00, 0x00, 0xC3}; /* mov $0x1234, %eax; ret */
  memcpy(user_page, stub, sizeof stub);
  *(volatile u64 *)(user_page + 0x100) = 0x5EA1;
  map_page(USER_VA, (u64)user_page, PTE_P | PTE_W | PTE_U);
  invlpg(USER_VA);
  int smep = has_feature(7, EBX, 7), smap = has_feature(7, EBX, 20);

  if (smep) {
    supervisor_identity_map(1);
    write_cr4(read_cr4() | CR4_SMEP);
    trap_clear();
    try_call(USER_VA);
    write_cr4(read_cr4() & ~(u64)CR4_SMEP);
    supervisor_identity_map(0);
    check_fetch_pf("smep_supervisor_fetch_user_page", PFEC_P | PFEC_ID, USER_VA);
    u64 r = try_call(USER_VA);
    check("smep_off_fetch_allowed", r == 0x1234, "returned 0x%llx", r);
  } else {
    skip_check("smep_supervisor_fetch_user_page", "CPUID.(EAX=7,ECX=0):EBX[7] = 0: no SMEP");
  }

  if (smap) {
    supervisor_identity_map(1);
    write_cr4(read_cr4() | CR4_SMAP);
    trap_clear();
    u64 v = try_read(USER_VA + 0x100); /* RFLAGS.AC = 0: a violation */
    check_pf("smap_supervisor_read_user_page", PFEC_P, USER_VA + 0x100);
    trap_clear();
    try_write(USER_VA + 0x108, 1);
    check_pf("smap_supervisor_write_user_page", PFEC_P | PFEC_W, USER_VA + 0x108);
    trap_clear();
    __asm__ volatile("stac" ::: "memory", "cc"); /* AC = 1: explicit accesses allowed */
    v = try_read(USER_VA + 0x100);
    u64 flags = read_eflags();
    __asm__ volatile("clac" ::: "memory", "cc");
    u64 cleared = read_eflags();
    check("smap_stac_allows", last_trap.count == 0 && v == 0x5EA1 && (flags & EFLAGS_AC) && !(cleared & EFLAGS_AC),
          "%u exceptions, read 0x%llx, RFLAGS 0x%llx then 0x%llx", last_trap.count, v, flags, cleared);
    trap_clear();
    try_read(USER_VA + 0x100);
    check_pf("smap_clac_forbids_again", PFEC_P, USER_VA + 0x100);
    write_cr4(read_cr4() & ~(u64)CR4_SMAP);
    supervisor_identity_map(0);
  } else {
    skip_check("smap_supervisor_read_user_page", "CPUID.(EAX=7,ECX=0):EBX[20] = 0: no SMAP");
  }
}

/* ---- PCIDs and INVPCID (SDM Vol. 3A, 4.10.1 and 4.10.4.1), only if CPUID says so ---- */

static void invpcid(u64 type, u64 pcid, u64 addr) {
  struct {
    u64 pcid, addr;
  } desc = {pcid, addr};
  __asm__ volatile("invpcid %0, %1" ::"m"(desc), "r"(type) : "memory");
}

static void test_pcid(void) {
  if (!has_feature(1, ECX, 17)) {
    skip_check("pcid_cr3_low_bits", "CPUID.1:ECX[17] = 0: no PCIDs");
    return;
  }
  u64 cr3 = read_cr3();
  /* CR4.PCIDE may be set only with CR3[11:0] = 0 (SDM Vol. 2, MOV CR). */
  write_cr3(cr3 | 1);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movq %0, %%cr4" TRY_END ::"r"(read_cr4() | CR4_PCIDE) : "memory");
  check_trap("pcid_enable_needs_pcid_0", VEC_GP, 0, trap_fault_rip);
  write_cr3(cr3);
  trap_clear();
  __asm__ volatile(TRY_BEGIN "movq %0, %%cr4" TRY_END ::"r"(read_cr4() | CR4_PCIDE) : "memory");
  if (!check("pcid_enable", last_trap.count == 0 && (read_cr4() & CR4_PCIDE), "%u exceptions (vector %u), CR4=0x%llx",
             last_trap.count, last_trap.vector, (u64)read_cr4())) {
    trap_resume = 0;
    return;
  }
  write_cr3(cr3 | 5);
  u64 with_pcid = read_cr3();
  write_cr3(cr3 | 5 | (1ull << 63)); /* bit 63: don't flush; it is not stored */
  u64 no_flush = read_cr3();
  check("pcid_cr3_low_bits", with_pcid == (cr3 | 5) && no_flush == (cr3 | 5), "CR3 0x%llx, then 0x%llx",
        with_pcid, no_flush);

  /* MOV to CR3 without bit 63 flushes the new PCID's translations. */
  *(volatile u64 *)page_a = 0xAAAAAAAA;
  *(volatile u64 *)page_b = 0xBBBBBBBB;
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W);
  u64 a = *at(TEST_VA);
  *pte_get(TEST_VA) = (u64)page_b | PTE_P | PTE_W;
  write_cr3(cr3 | 5);
  u64 b = *at(TEST_VA);
  check("pcid_cr3_write_flushes", a == 0xAAAAAAAA && b == 0xBBBBBBBB, "read 0x%llx then 0x%llx", a, b);

  if (has_feature(7, EBX, 10)) {
    static const char *const names[4] = {"invpcid_individual_address", "invpcid_single_context",
                                         "invpcid_all_with_global", "invpcid_all_non_global"};
    for (u64 type = 0; type < 4; type++) {
      u64 before = *at(TEST_VA);
      u8 *next = before == 0xAAAAAAAA ? page_b : page_a;
      *pte_get(TEST_VA) = (u64)next | PTE_P | PTE_W;
      invpcid(type, 5, TEST_VA);
      u64 after = *at(TEST_VA);
      check(names[type], after == *(volatile u64 *)next, "read 0x%llx then 0x%llx", before, after);
    }
    trap_clear();
    __asm__ volatile(TRY_BEGIN "invpcid %0, %1" TRY_END ::"m"(page_a), "r"(4ull) : "memory");
    check_trap("invpcid_bad_type_gp", VEC_GP, 0, trap_fault_rip);
  } else {
    skip_check("invpcid_individual_address", "CPUID.(EAX=7,ECX=0):EBX[10] = 0: no INVPCID");
  }
  write_cr3(cr3);
  write_cr4(read_cr4() & ~(u64)CR4_PCIDE);
  set_pte(TEST_VA, (u64)page_a | PTE_P | PTE_W);
}

int kmain(u32 magic, struct multiboot_info *info) {
  (void)magic;
  (void)info;
  printf("paging: 4-level paging\n");
  max_basic = cpuid_reg(0, 0, EAX);
  max_ext = cpuid_reg(0x80000000u, 0, EAX);
  test_basic();
  test_accessed_dirty();
  test_alias_and_invalidation();
  test_write_protect();
  test_not_present();
  test_large_pages();
  test_reserved_bits();
  test_nx();
  test_global();
  test_user_supervisor();
  test_smep_smap();
  test_pcid();
  paging_disable();
  check("boot_tables_again", read_cr3() == (u64)boot_pml4, "CR3=0x%llx", (u64)read_cr3());
  return test_finish();
}
