/**
 * Paging: the 32-bit and PAE page walkers (SDM Vol. 3A, 4.3 and 4.4) and the software TLB
 * they fill. A TLB entry caches one 4 KiB linear page with the permissions every kind of
 * access has on it, so the fast paths in cpu.ts test one bit. Write permission is cached
 * only once the dirty bit is set, so the first write still walks and sets D.
 */
import {
  CR4_SMAP,
  CR4_SMEP,
  EFER_LMA,
  CR0_WP,
  CR4_PAE,
  CR4_PGE,
  CR4_PSE,
  EFER_NXE,
  GP,
  MAXPHYADDR,
  PFEC_I,
  PFEC_P,
  PFEC_RSVD,
  PFEC_U,
  PFEC_W,
  PF_VEC,
  PTE_A,
  PTE_D,
  PTE_G,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
} from "./arch.js";
import { Fault, fault } from "./fault.js";
import { AC } from "./flags.js";
import { PageKind } from "../machine/memory.js";
import type { Cpu } from "./cpu.js";
import { EPT_R, EPT_W, EPT_X, type EptWalk } from "./vmx/ept.js";
import { eptFinal, eptPaging, eptPdpte } from "./vmx/ept-mmu.js";

export const TLB_SIZE = 4096;
// TLB permission bits: which accesses the cached translation allows without a walk.
export const P_RS = 1 << 0; // supervisor read
export const P_WS = 1 << 1; // supervisor write
export const P_RU = 1 << 2; // user read
export const P_WU = 1 << 3; // user write
export const P_XS = 1 << 4; // supervisor instruction fetch
export const P_XU = 1 << 5; // user instruction fetch
export const P_G = 1 << 6; // global page: survives CR3 loads
export const P_RAM = 1 << 7; // the physical page is RAM (direct access)
export const P_LARGE = 1 << 8; // piece of a 2/4 MiB page (INVLPG drops the whole page)
export const P_NEVER = 1 << 9; // no entry has it: forces the checked slow path
export const P_RS_AC = 1 << 10; // supervisor read of a user page under SMAP, with EFLAGS.AC
export const P_WS_AC = 1 << 11; // supervisor write of a user page under SMAP, with EFLAGS.AC
/** Access flag (beside the PFEC bits): an implicit supervisor access, which SMAP always checks. */
export const ACC_IMPLICIT = 1 << 8;

/**
 * The page number of a linear address. Linear addresses are numbers of two forms: in
 * legacy modes a 32-bit value that may be stored as a negative int32, and in IA-32e mode a
 * canonical address folded to its 48 significant bits, [0, 2^48). Both give the same page
 * for the same address below 4 GiB.
 */
export function linearPage(lin: number): number {
  return lin < 0x100000000 ? lin >>> 12 : Math.floor(lin / 4096);
}

export { MAXPHYADDR };
const TWO32 = 0x100000000;

/** A #PF: the faulting linear address becomes CR2 when the fault is delivered. */
export class PageFault extends Fault {
  constructor(
    errorCode: number,
    readonly linear: number,
  ) {
    super(PF_VEC, errorCode);
  }
}

/**
 * Translates linear address `lin` for an access described by `access` (PFEC_W, PFEC_U,
 * PFEC_I bits), filling the TLB; raises #PF when paging forbids it. Returns the physical
 * address.
 */
export function translate(cpu: Cpu, lin: number, access: number): number {
  const page = linearPage(lin);
  const off = lin & 0xfff;
  let phys: number; // physical base of the 4 KiB frame
  let perm: number;
  if (!cpu.paging) {
    phys = page * 4096;
    perm = P_RS | P_WS | P_RU | P_WU | P_XS | P_XU;
  } else {
    const w =
      cpu.msr.efer & EFER_LMA
        ? walk4(cpu, lin, access)
        : cpu.cr4 & CR4_PAE
          ? walkPae(cpu, lin, access)
          : walk32(cpu, lin, access);
    phys = w.frame;
    perm = w.perm;
  }
  // In a guest with EPT, the guest-physical frame is translated too (vmx/ept-mmu.ts), and
  // the TLB entry keeps only the rights both translations give.
  const ept = cpu.ept;
  if (ept !== null) {
    phys = eptFinal(cpu, ept, phys + off, lin, access) - off;
    perm &= eptRights(ept.walk);
  }
  if (phys < TWO32 && cpu.mem.pageKind[phys / 4096] === PageKind.Ram) {
    perm |= P_RAM;
    // Pages holding cached code are written only through the checked path (code-cache.ts).
    if (cpu.mem.watched[phys / 4096]) perm &= ~(P_WS | P_WU | P_WS_AC);
  }
  const i = page & (TLB_SIZE - 1);
  cpu.tlbTag[i] = page;
  cpu.tlbPhys[i] = phys;
  cpu.tlbPerm[i] = perm;
  return phys + off;
}

/** The TLB permission bits the EPT permissions of a translation leave (vmx/ept.ts). */
function eptRights(w: EptWalk): number {
  let mask = ~0;
  if (!(w.perm & EPT_R)) mask &= ~(P_RS | P_RU | P_RS_AC);
  // Write permission is cached only once the EPT dirty flag is set (with EPTP bit 6).
  if (!(w.perm & EPT_W) || !w.dirty) mask &= ~(P_WS | P_WU | P_WS_AC);
  if (!(w.perm & EPT_X)) mask &= ~(P_XS | P_XU);
  return mask;
}

interface Walk {
  frame: number;
  perm: number;
}
const result: Walk = { frame: 0, perm: 0 };

function pageFault(cpu: Cpu, lin: number, access: number, present: boolean, rsvd = false): never {
  let ec = access & (PFEC_W | PFEC_U);
  // I/D is reported only where execute-disable or SMEP exists (SDM Vol. 3A, 4.7).
  if (access & PFEC_I && ((cpu.cr4 & CR4_PAE && cpu.msr.efer & EFER_NXE) || cpu.cr4 & CR4_SMEP)) {
    ec |= PFEC_I;
  }
  if (present) ec |= PFEC_P;
  if (rsvd) ec |= PFEC_RSVD | PFEC_P;
  throw new PageFault(ec, lin < 0x100000000 ? lin >>> 0 : lin);
}

/**
 * Checks the combined rights of a translation against the access and returns the TLB
 * permission bits (SDM Vol. 3A, 4.6). `rw`, `us` and `nx` are the combined flags over all
 * levels; `dirty` says whether the final entry's D bit is (now) set.
 */
function rights(
  cpu: Cpu,
  lin: number,
  access: number,
  rw: boolean,
  us: boolean,
  nx: boolean,
  dirty: boolean,
): number {
  const write = (access & PFEC_W) !== 0;
  const user = (access & PFEC_U) !== 0;
  const fetch = (access & PFEC_I) !== 0;
  const wp = (cpu.cr0 & CR0_WP) !== 0;
  const smep = (cpu.cr4 & CR4_SMEP) !== 0;
  const smap = (cpu.cr4 & CR4_SMAP) !== 0;
  if (user && !us) pageFault(cpu, lin, access, true);
  if (write && !rw && (user || wp)) pageFault(cpu, lin, access, true);
  if (fetch && nx) pageFault(cpu, lin, access, true);
  if (!user && us) {
    // SMEP: no supervisor fetches from user pages; SMAP: no supervisor data accesses to
    // them, unless EFLAGS.AC is set for an explicit access (SDM Vol. 3A, 4.6.1).
    if (fetch && smep) pageFault(cpu, lin, access, true);
    const implicit = (access & ACC_IMPLICIT) !== 0;
    if (!fetch && smap && (implicit || !(cpu.flags.word & AC))) pageFault(cpu, lin, access, true);
  }
  let perm = P_RS;
  if (dirty && (rw || !wp)) perm |= P_WS;
  if (!nx) perm |= P_XS;
  if (us) {
    perm |= P_RU;
    if (dirty && rw) perm |= P_WU;
    if (!nx) perm |= P_XU;
    if (smep) perm &= ~P_XS;
    // Under SMAP, supervisor data access to a user page needs EFLAGS.AC: keep it under the
    // bits that only the AC=1 masks of Cpu.modeChanged ask for.
    if (smap)
      perm = (perm & ~(P_RS | P_WS)) | (perm & P_RS ? P_RS_AC : 0) | (perm & P_WS ? P_WS_AC : 0);
  }
  return perm;
}

/**
 * Host-physical address of the paging-structure entry at physical address `addr`, used
 * to translate `lin`: the same address, or in a guest with EPT its translation (a write
 * for `write`, an accessed/dirty update).
 */
function entryAddr(cpu: Cpu, addr: number, lin: number, write: boolean): number {
  const ept = cpu.ept;
  return ept === null ? addr : eptPaging(cpu, ept, addr, lin, write);
}

/** Reads the (low) dword of the paging-structure entry at `addr`, for translating `lin`. */
function readEntry(cpu: Cpu, addr: number, lin: number): number {
  return cpu.mem.read(entryAddr(cpu, addr, lin, false), 4);
}

/** Sets the accessed bit (and dirty, for writes to the final entry) of a 32-bit entry. */
function touch(cpu: Cpu, addr: number, entry: number, bits: number, lin: number): number {
  if ((entry & bits) !== bits) {
    entry |= bits;
    cpu.mem.write(entryAddr(cpu, addr, lin, true), 4, entry >>> 0);
  }
  return entry;
}

/** 32-bit paging (SDM Vol. 3A, 4.3). */
function walk32(cpu: Cpu, lin: number, access: number): Walk {
  const write = (access & PFEC_W) !== 0;
  const pdeAddr = ((cpu.cr3 & 0xfffff000) >>> 0) + ((lin >>> 22) << 2);
  let pde = readEntry(cpu, pdeAddr, lin);
  if (!(pde & PTE_P)) pageFault(cpu, lin, access, false);
  if (pde & PTE_PS && cpu.cr4 & CR4_PSE) {
    // 4 MiB page; PDE bits 16:13 hold physical-address bits 35:32 (PSE-36) and bit 21 is
    // reserved (SDM Vol. 3A, Table 4-5).
    if (pde & (1 << 21) || (pde >>> 13) & ~((1 << (MAXPHYADDR - 32)) - 1) & 0xff) {
      pageFault(cpu, lin, access, true, true);
    }
    const rw = (pde & PTE_RW) !== 0;
    const us = (pde & PTE_US) !== 0;
    const perm = rights(cpu, lin, access, rw, us, false, write || (pde & PTE_D) !== 0);
    pde = touch(cpu, pdeAddr, pde, write ? PTE_A | PTE_D : PTE_A, lin);
    const hi = (pde >>> 13) & 0xff;
    result.frame = hi * TWO32 + ((pde & 0xffc00000) >>> 0) + (lin & 0x3ff000);
    result.perm = perm | P_LARGE | (pde & PTE_G && cpu.cr4 & CR4_PGE ? P_G : 0);
    return result;
  }
  const pteAddr = ((pde & 0xfffff000) >>> 0) + (((lin >>> 12) & 0x3ff) << 2);
  let pte = readEntry(cpu, pteAddr, lin);
  if (!(pte & PTE_P)) pageFault(cpu, lin, access, false);
  const rw = (pde & pte & PTE_RW) !== 0;
  const us = (pde & pte & PTE_US) !== 0;
  const perm = rights(cpu, lin, access, rw, us, false, write || (pte & PTE_D) !== 0);
  touch(cpu, pdeAddr, pde, PTE_A, lin);
  pte = touch(cpu, pteAddr, pte, write ? PTE_A | PTE_D : PTE_A, lin);
  result.frame = (pte & 0xfffff000) >>> 0;
  result.perm = perm | (pte & PTE_G && cpu.cr4 & CR4_PGE ? P_G : 0);
  return result;
}

/**
 * Reserved bits 62:MAXPHYADDR of a present PAE PDE or PTE, in its high dword (SDM Vol. 3A,
 * 4.4.2); bit 63 is XD, reserved only while EFER.NXE is clear.
 */
const PAE_RSVD_HI = 0x7fffffff & ~((1 << (MAXPHYADDR - 32)) - 1);

/** Both dwords of the 8-byte entry at `addr`, for translating `lin` (entryAddr). */
function paeEntry(cpu: Cpu, addr: number, lin: number): [number, number] {
  const a = entryAddr(cpu, addr, lin, false);
  return [cpu.mem.read(a, 4), cpu.mem.read(a + 4, 4)];
}

/** PAE paging (SDM Vol. 3A, 4.4): PDPTEs come from the registers loaded with CR3. */
function walkPae(cpu: Cpu, lin: number, access: number): Walk {
  const write = (access & PFEC_W) !== 0;
  const nxe = (cpu.msr.efer & EFER_NXE) !== 0;
  const rsvdHi = PAE_RSVD_HI | (nxe ? 0 : 0x80000000);
  const pdpte = cpu.pdpte[lin >>> 30];
  if (!(pdpte % 2)) pageFault(cpu, lin, access, false);
  const pdBase = (Math.floor(pdpte / 4096) * 4096) % 2 ** MAXPHYADDR; // bits 35:12
  const pdeAddr = pdBase + ((lin >>> 21) & 0x1ff) * 8;
  const [pdeLo, pdeHi] = paeEntry(cpu, pdeAddr, lin);
  let pde = pdeLo;
  if (!(pde & PTE_P)) pageFault(cpu, lin, access, false);
  if (pdeHi & rsvdHi) pageFault(cpu, lin, access, true, true);
  if (pde & PTE_PS) {
    if (pde & 0x1fe000) pageFault(cpu, lin, access, true, true); // bits 20:13 reserved
    const nx = nxe && (pdeHi & 0x80000000) !== 0;
    const rw = (pde & PTE_RW) !== 0;
    const us = (pde & PTE_US) !== 0;
    const perm = rights(cpu, lin, access, rw, us, nx, write || (pde & PTE_D) !== 0);
    pde = touch(cpu, pdeAddr, pde, write ? PTE_A | PTE_D : PTE_A, lin);
    result.frame = (pdeHi & 0xfffff) * TWO32 + ((pde & 0xffe00000) >>> 0) + (lin & 0x1ff000);
    result.perm = perm | P_LARGE | (pde & PTE_G && cpu.cr4 & CR4_PGE ? P_G : 0);
    return result;
  }
  const ptAddr = (pdeHi & 0xfffff) * TWO32 + ((pde & 0xfffff000) >>> 0);
  const pteAddr = ptAddr + ((lin >>> 12) & 0x1ff) * 8;
  const [pteLo, pteHi] = paeEntry(cpu, pteAddr, lin);
  let pte = pteLo;
  if (!(pte & PTE_P)) pageFault(cpu, lin, access, false);
  if (pteHi & rsvdHi) pageFault(cpu, lin, access, true, true);
  const nx = nxe && ((pdeHi | pteHi) & 0x80000000) !== 0;
  const rw = (pde & pte & PTE_RW) !== 0;
  const us = (pde & pte & PTE_US) !== 0;
  const perm = rights(cpu, lin, access, rw, us, nx, write || (pte & PTE_D) !== 0);
  touch(cpu, pdeAddr, pde, PTE_A, lin);
  pte = touch(cpu, pteAddr, pte, write ? PTE_A | PTE_D : PTE_A, lin);
  result.frame = (pteHi & 0xfffff) * TWO32 + ((pte & 0xfffff000) >>> 0);
  result.perm = perm | (pte & PTE_G && cpu.cr4 & CR4_PGE ? P_G : 0);
  return result;
}

/** 1 GiB pages exist (CPUID.80000001H:EDX.Page1GB[26]). */
export const PAGE_1GB = true;

/**
 * IA-32e (4-level) paging (SDM Vol. 3A, 4.5): PML4E, PDPTE (a 1 GiB page with PS), PDE
 * (a 2 MiB page with PS), PTE. `lin` is a canonical address folded to 48 bits. Rights
 * combine over all four levels; accessed flags are set once the access is allowed.
 */
function walk4(cpu: Cpu, lin: number, access: number): Walk {
  const write = (access & PFEC_W) !== 0;
  const nxe = (cpu.msr.efer & EFER_NXE) !== 0;
  const rsvdHi = PAE_RSVD_HI | (nxe ? 0 : 0x80000000);
  let table = cpu.cr3Hi * TWO32 + ((cpu.cr3 & 0xfffff000) >>> 0);
  let rw = true;
  let us = true;
  let nx = false;
  // The entries above the last one (PML4E, PDPTE, PDE), for their accessed flags: no
  // allocation on this path, which every TLB miss in IA-32e mode takes.
  let a0 = -1;
  let a1 = -1;
  let a2 = -1;
  let e0 = 0;
  let e1 = 0;
  let e2 = 0;
  let lo = 0;
  let addr = 0;
  let frame = 0;
  let large = false;
  for (let level = 0; level < 4; level++) {
    const shift = 39 - 9 * level; // 39, 30, 21, 12
    addr = table + (Math.floor(lin / 2 ** shift) % 512) * 8;
    const at = entryAddr(cpu, addr, lin, false);
    lo = cpu.mem.read(at, 4);
    const hi = cpu.mem.read(at + 4, 4);
    if (!(lo & PTE_P)) pageFault(cpu, lin, access, false);
    if (hi & rsvdHi) pageFault(cpu, lin, access, true, true);
    rw &&= (lo & PTE_RW) !== 0;
    us &&= (lo & PTE_US) !== 0;
    nx ||= nxe && (hi & 0x80000000) !== 0;
    const base = (hi & 0xfffff) * TWO32;
    if (level < 3 && lo & PTE_PS) {
      // PS is reserved in a PML4E; it maps 1 GiB in a PDPTE and 2 MiB in a PDE, whose
      // address bits below the page size (but above the PAT bit, 12) are reserved.
      const size = 2 ** shift;
      if (level === 0 || (level === 1 && !PAGE_1GB)) pageFault(cpu, lin, access, true, true);
      if ((lo >>> 13) & (size / 8192 - 1)) pageFault(cpu, lin, access, true, true);
      frame =
        base + ((lo & 0xfffff000 & ~(size - 1)) >>> 0) + Math.floor((lin % size) / 4096) * 4096;
      large = true;
      break;
    }
    if (level === 3) frame = base + ((lo & 0xfffff000) >>> 0);
    else {
      if (level === 0) {
        a0 = addr;
        e0 = lo;
      } else if (level === 1) {
        a1 = addr;
        e1 = lo;
      } else {
        a2 = addr;
        e2 = lo;
      }
      table = base + ((lo & 0xfffff000) >>> 0);
    }
  }
  const perm = rights(cpu, lin, access, rw, us, nx, write || (lo & PTE_D) !== 0);
  if (a0 >= 0) touch(cpu, a0, e0, PTE_A, lin);
  if (a1 >= 0) touch(cpu, a1, e1, PTE_A, lin);
  if (a2 >= 0) touch(cpu, a2, e2, PTE_A, lin);
  lo = touch(cpu, addr, lo, write ? PTE_A | PTE_D : PTE_A, lin);
  result.frame = frame;
  result.perm = perm | (large ? P_LARGE : 0) | (lo & PTE_G && cpu.cr4 & CR4_PGE ? P_G : 0);
  return result;
}

/**
 * Loads the four PDPTEs from CR3 for PAE paging (SDM Vol. 3A, 4.4.1): on MOV to CR3 and
 * when paging with PAE is enabled. A reserved bit set in a present PDPTE raises #GP(0).
 * In a guest with EPT, CR3 is a guest-physical address (vmx/ept-mmu.ts).
 */
export function loadPdptes(cpu: Cpu): void {
  const base = (cpu.cr3 & 0xffffffe0) >>> 0;
  const ept = cpu.ept;
  const table = ept === null ? base : eptPdpte(cpu, ept, base);
  const next = new Float64Array(4);
  for (let k = 0; k < 4; k++) {
    const lo = cpu.mem.read(table + k * 8, 4);
    const hi = cpu.mem.read(table + k * 8 + 4, 4);
    // Bits 2:1, 8:5 and 63:MAXPHYADDR are reserved in a PDPTE.
    if (lo & PTE_P && (lo & 0x1e6 || hi & (0xffffffff << (MAXPHYADDR - 32)))) fault(GP, 0);
    next[k] = (hi & 0xfffff) * TWO32 + (lo >>> 0);
  }
  cpu.pdpte.set(next);
}
