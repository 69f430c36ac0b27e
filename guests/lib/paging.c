/* Page-table construction for 32-bit and PAE paging (see paging.h). */
#include "paging.h"
#include "kernel.h"

#define POOL_PAGES 24
static u8 pool[POOL_PAGES][PAGE_SIZE] __attribute__((aligned(4096)));
static int pool_used;

#ifdef PAE
/* The PDPT: four 8-byte PDPTEs, 32-byte aligned (SDM Vol. 3A, 4.4.1). Only P and the address
   may be set in a PDPTE: R/W and U/S are reserved there, so PDPTEs are just "present". */
u64 pdpt[4] __attribute__((aligned(32)));
static pte_t *pd[4];
#else
static pte_t *pd;
#endif

static void *alloc_table(void) {
  if (pool_used == POOL_PAGES) {
    printf("FAIL page-table pool exhausted\n");
    exit(EXIT_UNEXPECTED);
  }
  void *p = pool[pool_used++];
  memset(p, 0, PAGE_SIZE);
  return p;
}

volatile pte_t *pde_get(u32 va) {
#ifdef PAE
  return &pd[va >> 30][(va >> 21) & 511];
#else
  return &pd[va >> 22];
#endif
}

volatile pte_t *pte_get(u32 va) {
  volatile pte_t *pde = pde_get(va);
  if (!(*pde & PTE_P)) *pde = (pte_t)(u32)alloc_table() | PTE_P | PTE_W | PTE_U;
  if (*pde & PTE_PS) return NULL;
  volatile pte_t *pt = (volatile pte_t *)PTE_ADDR(*pde);
#ifdef PAE
  return &pt[(va >> 12) & 511];
#else
  return &pt[(va >> 12) & 1023];
#endif
}

void map_page(u32 va, u32 pa, pte_t flags) { *pte_get(va) = (pte_t)pa | flags; }

void map_large(u32 va, u32 pa, pte_t flags) { *pde_get(va) = (pte_t)pa | flags | PTE_PS; }

void paging_init(void) {
#ifdef PAE
  for (int i = 0; i < 4; i++) {
    pd[i] = alloc_table();
    pdpt[i] = (u32)pd[i] | PTE_P;
  }
#else
  pd = alloc_table();
#endif
  for (u32 va = PAGE_SIZE; va < IDENTITY_LIMIT; va += PAGE_SIZE) map_page(va, va, PTE_P | PTE_W | PTE_U);
}

u32 paging_cr3(void) {
#ifdef PAE
  return (u32)pdpt;
#else
  return (u32)pd;
#endif
}

void paging_enable(void) {
#ifdef PAE
  write_cr4(read_cr4() | CR4_PAE);
#else
  write_cr4(read_cr4() | CR4_PSE);
#endif
  write_cr3(paging_cr3());
  main_tss.tss.cr3 = paging_cr3(); /* a task switch loads CR3 from the new TSS */
  write_cr0(read_cr0() | CR0_PG);
}

void paging_disable(void) {
  write_cr0(read_cr0() & ~CR0_PG);
  write_cr4(read_cr4() & ~(CR4_PAE | CR4_PSE | CR4_PGE));
}
