/**
 * The EPT walker (SDM Vol. 3C, 29.3: extended page tables): guest-physical to host-physical
 * translation over 4-level EPT paging structures with 2 MiB and 1 GiB leaves, read / write
 * / execute permissions (execute-only included), EPT misconfigurations (29.3.3.1) and
 * violations (29.3.3.2) with the exit-qualification bits they report (Table 28-7), and
 * the accessed and dirty flags of EPTP bit 6 (29.3.4). Also the EPTP check used at VM
 * entry (27.2.1.1) and the facts IA32_VMX_EPT_VPID_CAP reports (Appendix A.10).
 *
 * This module knows nothing of the CPU: it reads and writes physical memory through
 * `PhysicalAccess`, so it is tested on its own. ept-mmu.ts joins it to the MMU.
 */
import { MAXPHYADDR } from "../arch.js";

/** What the walker needs from physical memory: 32-bit little-endian reads and writes. */
export interface PhysicalAccess {
  read(addr: number, size: 4): number;
  write(addr: number, size: 4, value: number): void;
}

// ---- IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D, A.10): one constant per bit, low dword ----
export const CAP_EXECUTE_ONLY = 1 << 0; // EPT entries may allow execute without read
export const CAP_PWL4 = 1 << 6; // page-walk length 4
export const CAP_MEMTYPE_UC = 1 << 8; // EPTP memory type UC allowed
export const CAP_MEMTYPE_WB = 1 << 14; // EPTP memory type WB allowed
export const CAP_PDE_2MB = 1 << 16; // EPT PDEs may map 2 MiB pages
export const CAP_PDPTE_1GB = 1 << 17; // EPT PDPTEs may map 1 GiB pages
export const CAP_INVEPT = 1 << 20; // INVEPT is supported
export const CAP_EPT_AD = 1 << 21; // accessed and dirty flags for EPT (EPTP bit 6)
export const CAP_INVEPT_SINGLE = 1 << 25; // INVEPT single-context type
export const CAP_INVEPT_ALL = 1 << 26; // INVEPT all-context type
// ---- high dword (MSR bits 63:32) ----
export const CAP_HI_INVVPID = 1 << 0; // bit 32: INVVPID is supported
export const CAP_HI_INVVPID_ADDRESS = 1 << 8; // bit 40: individual-address type
export const CAP_HI_INVVPID_SINGLE = 1 << 9; // bit 41: single-context type
export const CAP_HI_INVVPID_ALL = 1 << 10; // bit 42: all-context type
export const CAP_HI_INVVPID_SINGLE_GLOBALS = 1 << 11; // bit 43: single-context-retaining-globals

/**
 * What this implementation offers, as IA32_VMX_EPT_VPID_CAP's two dwords. Every bit is
 * implemented here or in tlb.ts. Not offered: page-walk length 5, advanced VM-exit
 * information for EPT violations (bit 22), supervisor shadow-stack control (bit 23).
 */
export const EPT_VPID_CAP_LO =
  CAP_EXECUTE_ONLY |
  CAP_PWL4 |
  CAP_MEMTYPE_UC |
  CAP_MEMTYPE_WB |
  CAP_PDE_2MB |
  CAP_PDPTE_1GB |
  CAP_INVEPT |
  CAP_EPT_AD |
  CAP_INVEPT_SINGLE |
  CAP_INVEPT_ALL;
export const EPT_VPID_CAP_HI =
  CAP_HI_INVVPID |
  CAP_HI_INVVPID_ADDRESS |
  CAP_HI_INVVPID_SINGLE |
  CAP_HI_INVVPID_ALL |
  CAP_HI_INVVPID_SINGLE_GLOBALS;

/** INVEPT types (SDM Vol. 3C, 29.4.3 and the INVEPT reference in chapter 31). */
export const enum InveptType {
  SingleContext = 1,
  AllContext = 2,
}
/** INVVPID types (SDM Vol. 3C, 29.4.3 and the INVVPID reference in chapter 31). */
export const enum InvvpidType {
  IndividualAddress = 0,
  SingleContext = 1,
  AllContext = 2,
  SingleContextRetainingGlobals = 3,
}
/** The INVEPT types IA32_VMX_EPT_VPID_CAP advertises. */
export function inveptTypeSupported(type: number): boolean {
  return type === InveptType.SingleContext || type === InveptType.AllContext;
}
/** The INVVPID types IA32_VMX_EPT_VPID_CAP advertises (all four). */
export function invvpidTypeSupported(type: number): boolean {
  return type >= 0 && type <= 3 && (EPT_VPID_CAP_HI & (1 << (8 + type))) !== 0;
}

// ---- the EPT pointer (SDM Vol. 3C, 25.6.11) ----
export const EPTP_MEMTYPE_MASK = 0x7; // bits 2:0: memory type of the EPT paging structures
export const EPTP_PWL_MASK = 0x38; // bits 5:3: page-walk length minus 1
export const EPTP_PWL4 = 3 << 3; // a 4-level walk
export const EPTP_AD = 1 << 6; // enable accessed and dirty flags for EPT
export const EPTP_RSVD_LO = 0xf80; // bits 11:7 (bit 7, supervisor shadow stack, not offered)
/** EPTP bits 63:MAXPHYADDR in the high dword. */
const RSVD_HI = ~((1 << (MAXPHYADDR - 32)) - 1);

/** Memory types (SDM Vol. 3A, 12.3 and 12.11): the EPT encodings allowed for a leaf. */
export const MEMTYPE_UC = 0;
export const MEMTYPE_WC = 1;
export const MEMTYPE_WT = 4;
export const MEMTYPE_WP = 5;
export const MEMTYPE_WB = 6;
/** EPT memory types 2, 3 and 7 are reserved: a leaf with one is misconfigured. */
const RESERVED_MEMTYPES = (1 << 2) | (1 << 3) | (1 << 7);

/**
 * Why an EPTP value may not be used for VM entry (SDM Vol. 3C, 27.2.1.1, "enable EPT"), or
 * null when it is valid: the memory type must be one the capability MSR allows, the walk
 * length 4, bit 6 only with EPT A/D support, bits 11:7 and 63:MAXPHYADDR zero.
 */
export function eptpProblem(lo: number, hi: number): string | null {
  const type = lo & EPTP_MEMTYPE_MASK;
  const allowed =
    (type === MEMTYPE_UC && (EPT_VPID_CAP_LO & CAP_MEMTYPE_UC) !== 0) ||
    (type === MEMTYPE_WB && (EPT_VPID_CAP_LO & CAP_MEMTYPE_WB) !== 0);
  if (!allowed) return `memory type ${type} is neither UC (0) nor WB (6)`;
  if ((lo & EPTP_PWL_MASK) !== EPTP_PWL4) {
    return `page-walk length ${((lo & EPTP_PWL_MASK) >>> 3) + 1} is not 4`;
  }
  if (lo & EPTP_AD && !(EPT_VPID_CAP_LO & CAP_EPT_AD)) return "bit 6 (A/D) without EPT A/D support";
  if (lo & EPTP_RSVD_LO) return "reserved bits 11:7 are set";
  if (hi & RSVD_HI) return `reserved bits 63:${MAXPHYADDR} are set`;
  return null;
}

/** The EPT PML4 table's physical address from an EPTP (bits MAXPHYADDR-1:12). */
export function eptRoot(lo: number, hi: number): number {
  return (hi & ~RSVD_HI) * 2 ** 32 + ((lo & 0xfffff000) >>> 0);
}

// ---- EPT paging-structure entries (SDM Vol. 3C, 29.3.2, Tables 29-1 to 29-6) ----
export const EPT_R = 1 << 0; // reads allowed
export const EPT_W = 1 << 1; // writes allowed
export const EPT_X = 1 << 2; // instruction fetches allowed
export const EPT_MEMTYPE_SHIFT = 3; // bits 5:3 of a leaf: memory type
export const EPT_IGNORE_PAT = 1 << 6; // leaf: ignore the guest's PAT type
export const EPT_PS = 1 << 7; // PDPTE/PDE: maps a page (1 GiB / 2 MiB)
export const EPT_A = 1 << 8; // accessed (with EPTP bit 6)
export const EPT_D = 1 << 9; // dirty, in an entry that maps a page (with EPTP bit 6)
/** Bits 7:3 of a PML4E, and of a PDPTE or PDE that references a table, are reserved. */
const RSVD_TABLE = 0xf8;
/** Bits 51:MAXPHYADDR of any entry, in its high dword (bits 63:52 are ignored). */
const RSVD_ENTRY_HI = 0xfffff & ~((1 << (MAXPHYADDR - 32)) - 1);

// ---- access kinds: the same bits as qualification bits 2:0 and entry bits 2:0 ----
export const ACCESS_READ = EPT_R;
export const ACCESS_WRITE = EPT_W;
export const ACCESS_FETCH = EPT_X;

// ---- exit qualification for EPT violations (SDM Vol. 3C, 28.2.1, Table 28-7) ----
export const QUAL_READ = 1 << 0; // the access was a data read
export const QUAL_WRITE = 1 << 1; // the access was a data write
export const QUAL_FETCH = 1 << 2; // the access was an instruction fetch
export const QUAL_READABLE = 1 << 3; // AND of bit 0 over the entries used
export const QUAL_WRITABLE = 1 << 4; // AND of bit 1 over the entries used
export const QUAL_EXECUTABLE = 1 << 5; // AND of bit 2 over the entries used
export const QUAL_LINEAR_VALID = 1 << 7; // the guest-linear-address field is valid
export const QUAL_FINAL = 1 << 8; // (with bit 7) the access was to the final translation
export const QUAL_NMI_UNBLOCKING = 1 << 12; // NMI unblocking due to IRET

/** What became of a walk. */
export const enum EptOutcome {
  Ok = 0,
  Violation = 1,
  Misconfig = 2,
}

/** The result of one walk; reused by its owner so walks do not allocate. */
export class EptWalk {
  outcome = EptOutcome.Ok;
  /** Host-physical address of the guest-physical address walked (outcome Ok). */
  hpa = 0;
  /** EPT_R | EPT_W | EPT_X allowed by every entry used (all of them, when Ok). */
  perm = 0;
  /**
   * The leaf's dirty flag is set (writes can skip the walk), or A/D flags are off. False
   * for a read through a clean leaf with EPTP bit 6 set.
   */
  dirty = false;
  /** Exit-qualification bits 5:0 of a violation (the rest is the caller's). */
  qualification = 0;
  /** Physical address of the entry that is misconfigured or not present (diagnostics). */
  entryAddr = 0;
  /** Level of that entry: 4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE. */
  level = 0;
  /** The entries used so far (addresses, low dwords), for the accessed flags. */
  readonly used = new Float64Array(4);
  readonly usedLo = new Int32Array(4);
}

/**
 * A present entry is misconfigured (SDM Vol. 3C, 29.3.3.1): write without read, reserved
 * bits, a reserved memory type in a leaf, or a page size this CPU does not offer. `depth`:
 * 0 = PML4E, 1 = PDPTE, 2 = PDE, 3 = PTE.
 */
function misconfigured(lo: number, hi: number, depth: number, leaf: boolean): boolean {
  const rwx = lo & 7;
  if ((rwx & (EPT_R | EPT_W)) === EPT_W) return true; // write without read
  if (rwx === EPT_X && !(EPT_VPID_CAP_LO & CAP_EXECUTE_ONLY)) return true;
  if (hi & RSVD_ENTRY_HI) return true;
  if (!leaf) return (lo & RSVD_TABLE) !== 0;
  if (RESERVED_MEMTYPES & (1 << ((lo >>> EPT_MEMTYPE_SHIFT) & 7))) return true;
  if (depth === 1) return !(EPT_VPID_CAP_LO & CAP_PDPTE_1GB) || (lo & 0x3ffff000) !== 0; // 29:12
  if (depth === 2) return !(EPT_VPID_CAP_LO & CAP_PDE_2MB) || (lo & 0x1ff000) !== 0; // 20:12
  return false;
}

/**
 * Translates guest-physical address `gpa` (a number below 2^48) through the EPT paging
 * structures named by the EPTP halves, for an access of kind `access` (ACCESS_* bits; a
 * write may be combined with a read). Fills `out`. With EPTP bit 6 the walk sets the accessed flag of every entry it
 * uses and, for writes, the dirty flag of the leaf, once the access is allowed.
 */
export function eptWalk(
  mem: PhysicalAccess,
  eptpLo: number,
  eptpHi: number,
  gpa: number,
  access: number,
  out: EptWalk,
): EptWalk {
  const ad = (eptpLo & EPTP_AD) !== 0;
  let table = eptRoot(eptpLo, eptpHi);
  let perm = EPT_R | EPT_W | EPT_X;
  let depth = 0;
  let lo = 0;
  let hpa = 0;
  for (; depth < 4; depth++) {
    const shift = 39 - 9 * depth; // 39, 30, 21, 12
    const addr = table + (Math.floor(gpa / 2 ** shift) % 512) * 8;
    lo = mem.read(addr, 4);
    const hi = mem.read(addr + 4, 4);
    out.entryAddr = addr;
    out.level = 4 - depth;
    if ((lo & 7) === 0) {
      // Not present: a violation, whose permission bits are those of this entry (none).
      out.outcome = EptOutcome.Violation;
      out.perm = 0;
      out.qualification = access;
      return out;
    }
    // Bit 7 maps a page in a PDPTE or PDE; in a PML4E it is reserved (misconfigured()).
    const leaf = depth === 3 || (depth > 0 && (lo & EPT_PS) !== 0);
    if (misconfigured(lo, hi, depth, leaf)) {
      out.outcome = EptOutcome.Misconfig;
      return out;
    }
    perm &= lo;
    out.used[depth] = addr;
    out.usedLo[depth] = lo;
    const base = (hi & 0xfffff) * 2 ** 32;
    if (leaf) {
      const size = 2 ** shift;
      hpa = base + ((lo & 0xfffff000 & ~(size - 1)) >>> 0) + (gpa % size);
      break;
    }
    table = base + ((lo & 0xfffff000) >>> 0);
  }
  perm &= EPT_R | EPT_W | EPT_X;
  out.perm = perm;
  if (access & ~perm) {
    out.outcome = EptOutcome.Violation;
    out.qualification = access | (perm << 3);
    return out;
  }
  out.outcome = EptOutcome.Ok;
  out.hpa = hpa;
  out.dirty = true;
  if (ad) {
    // Accessed flags in every entry used, the dirty flag in the leaf for writes (29.3.4).
    const write = (access & ACCESS_WRITE) !== 0;
    for (let k = 0; k <= depth; k++) {
      const bits = k === depth && write ? EPT_A | EPT_D : EPT_A;
      const e = out.usedLo[k];
      if ((e & bits) !== bits) mem.write(out.used[k], 4, (e | bits) >>> 0);
    }
    out.dirty = write || (lo & EPT_D) !== 0;
  }
  return out;
}

/** Entries of an EptContext's cache of guest-physical mappings. */
export const GPA_CACHE_SIZE = 256;
/** Bit of a cached mapping's rights: the leaf's dirty flag is set (or A/D flags are off). */
const GPA_DIRTY = 1 << 3;

/**
 * The EPT a guest runs on: its EPTP, the walk result reused by every translation, and a
 * cache of guest-physical mappings (SDM 29.4.1: guest-physical page to host-physical page
 * with the rights of the walk, tagged by EPT root). Only successful walks are cached, and
 * a cached mapping that does not allow an access is walked again, so a hypervisor that
 * loosens an entry without INVEPT never sees a stale violation; INVEPT (tlb.ts) empties
 * the caches of the contexts it names.
 */
export class EptContext {
  /** The last walk: mmu.ts reads the final translation's permissions from it. */
  readonly walk = new EptWalk();
  /** Guest paging-structure accesses are writes for EPT (EPTP bit 6, SDM 29.3.3.2). */
  readonly pagingAccess: number;
  /** The EPT root's page number (the tag INVEPT single-context names). */
  readonly rootPage: number;
  private readonly tag = new Float64Array(GPA_CACHE_SIZE).fill(-1);
  private readonly hpa = new Float64Array(GPA_CACHE_SIZE);
  private readonly rights = new Int32Array(GPA_CACHE_SIZE);

  constructor(
    readonly eptpLo: number,
    readonly eptpHi: number,
  ) {
    this.pagingAccess = eptpLo & EPTP_AD ? ACCESS_WRITE : ACCESS_READ;
    this.rootPage = Math.floor(eptRoot(eptpLo, eptpHi) / 4096);
  }

  /**
   * eptWalk through the cache: a cached mapping that allows `access` (a write only once
   * the leaf is dirty) answers without reading memory; anything else walks and caches
   * the walk if it succeeded.
   */
  translate(mem: PhysicalAccess, gpa: number, access: number): EptWalk {
    const page = Math.floor(gpa / 4096);
    const i = page & (GPA_CACHE_SIZE - 1);
    const w = this.walk;
    if (this.tag[i] === page) {
      const r = this.rights[i];
      if ((access & ~r & 7) === 0 && (!(access & ACCESS_WRITE) || r & GPA_DIRTY)) {
        w.outcome = EptOutcome.Ok;
        w.hpa = this.hpa[i] + (gpa % 4096);
        w.perm = r & 7;
        w.dirty = (r & GPA_DIRTY) !== 0;
        return w;
      }
    }
    eptWalk(mem, this.eptpLo, this.eptpHi, gpa, access, w);
    if (w.outcome === EptOutcome.Ok) {
      this.tag[i] = page;
      this.hpa[i] = w.hpa - (gpa % 4096);
      this.rights[i] = w.perm | (w.dirty ? GPA_DIRTY : 0);
    }
    return w;
  }

  /** Forgets every cached guest-physical mapping (INVEPT). */
  flush(): void {
    this.tag.fill(-1);
  }
}
