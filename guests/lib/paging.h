/*
 * Page tables for the kernels that enable paging: 32-bit paging (SDM Vol. 3A, 4.3) or, when
 * built with -DPAE, PAE paging (4.4). paging_init identity-maps 4 KiB pages from 4 KiB to
 * IDENTITY_LIMIT, read/write and user-accessible; page 0 stays unmapped to catch NULL.
 */
#ifndef SHV_PAGING_H
#define SHV_PAGING_H

#ifdef __x86_64__
/* Kernels shared with amd64 (smp) page there with the 4-level tables of paging64.h. */
#include "paging64.h"
#else

#include "types.h"

#ifdef PAE
typedef u64 pte_t;
#define PTES_PER_TABLE 512
#define LARGE_PAGE_SIZE (2u << 20)
#define PTE_NX ((pte_t)1 << 63) /* XD: reserved unless IA32_EFER.NXE = 1 */
#else
typedef u32 pte_t;
#define PTES_PER_TABLE 1024
#define LARGE_PAGE_SIZE (4u << 20)
#endif

#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_U 0x004u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PTE_PS 0x080u /* in a PDE: maps a large page */
#define PTE_G 0x100u
#define PTE_ADDR(e) ((u32)(e) & ~0xFFFu)

#define PAGE_SIZE 4096u
#define IDENTITY_LIMIT (16u << 20)

void paging_init(void);
/* The 4 KiB PTE that maps va, creating its page table if needed (not for large pages).
   Entries are volatile: the processor writes the accessed and dirty flags behind our back. */
volatile pte_t *pte_get(u32 va);
/* The PDE that maps va. */
volatile pte_t *pde_get(u32 va);
void map_page(u32 va, u32 pa, pte_t flags);
void map_large(u32 va, u32 pa, pte_t flags); /* 4 MiB (32-bit, needs CR4.PSE) or 2 MiB (PAE) */
/* Enables paging: CR4.PSE (32-bit) or CR4.PAE, CR3, then CR0.PG. */
void paging_enable(void);
void paging_disable(void);
u32 paging_cr3(void);
#ifdef PAE
extern u64 pdpt[4];
#endif

#endif /* __x86_64__ */

#endif
