/*
 * 4-level paging for the amd64 kernels (SDM Vol. 3A, 4.5). paging_init builds a new set of
 * tables that identity-map 0..IDENTITY_LIMIT, read/write and user-accessible: 4 KiB pages
 * below SMALL_PAGE_LIMIT (page 0 left out, to catch NULL) and 2 MiB pages above. Unlike the
 * i386 kernels, the amd64 ones cannot turn paging off (long mode requires it):
 * paging_enable and paging_disable switch CR3 between these tables and the entry's.
 */
#ifndef SHV_PAGING64_H
#define SHV_PAGING64_H

#include "types.h"

typedef u64 pte_t;

#define PTE_P 0x001ull
#define PTE_W 0x002ull
#define PTE_U 0x004ull
#define PTE_A 0x020ull
#define PTE_D 0x040ull
#define PTE_PS 0x080ull /* in a PDE: a 2 MiB page; in a PDPTE: a 1 GiB page */
#define PTE_G 0x100ull
#define PTE_NX (1ull << 63) /* XD: reserved unless IA32_EFER.NXE = 1 */
#define PTE_ADDR(e) ((e) & 0x000FFFFFFFFFF000ull)

#define PAGE_SIZE 4096u
#define LARGE_PAGE_SIZE (2ull << 20)
#define HUGE_PAGE_SIZE (1ull << 30)
#define IDENTITY_LIMIT (4ull << 30)
#define SMALL_PAGE_LIMIT (16ull << 20)

void paging_init(void);
/* The entry at each level for va; missing tables below the PML4 are created (present,
   writable, user). pde_get returns NULL if a 1 GiB page maps va; pte_get splits a 2 MiB
   page into 4 KiB pages with the same flags. Entries are volatile: the processor writes the
   accessed and dirty flags behind our back. */
volatile pte_t *pml4e_get(u64 va);
volatile pte_t *pdpte_get(u64 va);
volatile pte_t *pde_get(u64 va);
volatile pte_t *pte_get(u64 va);
void map_page(u64 va, u64 pa, pte_t flags);
void map_large(u64 va, u64 pa, pte_t flags); /* 2 MiB */
void map_huge(u64 va, u64 pa, pte_t flags);  /* 1 GiB: only if CPUID.80000001H:EDX[26] */
void paging_enable(void);  /* CR3 = the tables built by paging_init */
void paging_disable(void); /* CR3 = the entry's tables (boot_pml4) */
u64 paging_cr3(void);

#endif
