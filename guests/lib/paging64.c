/* 4-level page-table construction for the amd64 kernels (see paging64.h). */
#include "paging64.h"
#include "kernel.h"

#define POOL_PAGES 40
static u8 pool[POOL_PAGES][PAGE_SIZE] __attribute__((aligned(4096)));
static int pool_used;
static pte_t *pml4;

/* Intermediate entries grant everything; the leaf entries decide (SDM Vol. 3A, 4.6). */
#define TABLE_FLAGS (PTE_P | PTE_W | PTE_U)

static pte_t *alloc_table(void) {
  if (pool_used == POOL_PAGES) {
    printf("FAIL page-table pool exhausted\n");
    exit(EXIT_UNEXPECTED);
  }
  pte_t *p = (pte_t *)pool[pool_used++];
  memset(p, 0, PAGE_SIZE);
  return p;
}

static unsigned index_at(u64 va, int shift) { return (unsigned)(va >> shift) & 511; }

/* The table an entry points to, creating it if the entry is not present. */
static volatile pte_t *next_table(volatile pte_t *entry) {
  if (!(*entry & PTE_P)) *entry = (pte_t)(uptr)alloc_table() | TABLE_FLAGS;
  return (volatile pte_t *)(uptr)PTE_ADDR(*entry);
}

volatile pte_t *pml4e_get(u64 va) { return &pml4[index_at(va, 39)]; }

volatile pte_t *pdpte_get(u64 va) { return &next_table(pml4e_get(va))[index_at(va, 30)]; }

volatile pte_t *pde_get(u64 va) {
  volatile pte_t *pdpte = pdpte_get(va);
  if ((*pdpte & (PTE_P | PTE_PS)) == (PTE_P | PTE_PS)) return NULL;
  return &next_table(pdpte)[index_at(va, 21)];
}

volatile pte_t *pte_get(u64 va) {
  volatile pte_t *pde = pde_get(va);
  if (!pde) return NULL;
  if ((*pde & (PTE_P | PTE_PS)) == (PTE_P | PTE_PS)) {
    /* Split the 2 MiB page: 512 PTEs with its flags (PS becomes the PTE's PAT bit, so it is
       dropped), then the PDE points at them. */
    pte_t *pt = alloc_table();
    pte_t base = PTE_ADDR(*pde), flags = *pde & ~PTE_ADDR(*pde) & ~PTE_PS;
    for (int i = 0; i < 512; i++) pt[i] = (base + (pte_t)i * PAGE_SIZE) | flags;
    *pde = (pte_t)(uptr)pt | TABLE_FLAGS;
  }
  return &next_table(pde)[index_at(va, 12)];
}

void map_page(u64 va, u64 pa, pte_t flags) { *pte_get(va) = pa | flags; }
void map_large(u64 va, u64 pa, pte_t flags) { *pde_get(va) = pa | flags | PTE_PS; }
void map_huge(u64 va, u64 pa, pte_t flags) { *pdpte_get(va) = pa | flags | PTE_PS; }

void paging_init(void) {
  pool_used = 0;
  pml4 = alloc_table();
  for (u64 va = SMALL_PAGE_LIMIT; va < IDENTITY_LIMIT; va += LARGE_PAGE_SIZE)
    map_large(va, va, PTE_P | PTE_W | PTE_U);
  for (u64 va = PAGE_SIZE; va < SMALL_PAGE_LIMIT; va += PAGE_SIZE)
    map_page(va, va, PTE_P | PTE_W | PTE_U);
}

u64 paging_cr3(void) { return (u64)pml4; }

void paging_enable(void) { write_cr3(paging_cr3()); }

void paging_disable(void) { write_cr3((u64)boot_pml4); }
