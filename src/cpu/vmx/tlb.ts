/**
 * TLBs tagged by VPID and EPT (SDM Vol. 3C, 29.4: caching translation information, and
 * 29.4.3 / the INVEPT and INVVPID references).
 *
 * The software TLB caches combined mappings only: linear page to host-physical frame, with
 * the rights of guest paging and EPT together (mmu.ts). The SDM tags such a mapping with
 * the VPID, the PCID and the EPT root (EPTRTA: EPTP bits 51:12). Here every (VPID, EPTRTA)
 * pair in use has its own bank of TLB arrays, and the CPU's fast paths use the current
 * bank's arrays directly; a VM entry or exit switches banks instead of flushing, which is
 * what VPIDs are for. Root operation is VPID 0 without EPT. PCIDs are not part of the tag:
 * every PCID switch flushes the current bank, which the SDM allows.
 *
 * INVEPT and INVVPID (instructions.ts) call the flush functions below; losing more than
 * they ask (a whole bank, when banks are evicted) is allowed, losing less never.
 */
import { P_G, P_LARGE, TLB_SIZE, linearPage } from "../mmu.js";
import type { Cpu } from "../cpu.js";
import { EptContext, eptRoot } from "./ept.js";
import { Proc, Proc2 } from "./controls.js";
import { F } from "./fields.js";
import type { Vmcs } from "./vmcs.js";

/** EPTRTA of mappings made without EPT. */
export const NO_EPT = -1;

/** One TLB: linear page tags (-1: empty), physical frames and permission bits (mmu.ts). */
export class TlbBank {
  readonly tag = new Float64Array(TLB_SIZE).fill(-1);
  readonly phys = new Float64Array(TLB_SIZE);
  readonly perm = new Int32Array(TLB_SIZE);
  /** Round of the last switch to this bank, for eviction. */
  used = 0;

  constructor(
    /** VPID of the mappings (0: root operation, or a guest without "enable VPID"). */
    readonly vpid: number,
    /** EPT root (EPTP bits 51:12, as a page number) of the mappings, or NO_EPT. */
    readonly eptRoot: number,
  ) {}

  /** Drops every mapping; global ones survive unless `global` (SDM Vol. 3A, 4.10.4). */
  flush(global: boolean): void {
    if (global) this.tag.fill(-1);
    else {
      for (let i = 0; i < TLB_SIZE; i++) if ((this.perm[i] & P_G) === 0) this.tag[i] = -1;
    }
  }

  /**
   * Drops the mapping of one linear page. Large pages are cached as 4 KiB pieces, up to
   * 2^18 of them for a 1 GiB page: every large-page piece goes, rather than working out
   * which belong to the page (invalidating more than asked is allowed, SDM Vol. 3A,
   * 4.10.4.1).
   */
  flushPage(lin: number): void {
    const page = linearPage(lin);
    const i = page & (TLB_SIZE - 1);
    if (this.tag[i] === page) this.tag[i] = -1;
    for (let k = 0; k < TLB_SIZE; k++) if (this.perm[k] & P_LARGE) this.tag[k] = -1;
  }

  /** Takes `mask` away from every mapping of physical frame `base` (code-cache.ts). */
  dropPermission(base: number, mask: number): void {
    for (let k = 0; k < TLB_SIZE; k++) if (this.phys[k] === base) this.perm[k] &= ~mask;
  }
}

/** Banks kept per logical processor; the least recently used one goes first. */
const MAX_BANKS = 8;

/** The TLB banks of one logical processor, and which one is current. */
export class TlbSet {
  private readonly banks: TlbBank[] = [new TlbBank(0, NO_EPT)];
  private round = 0;
  current: TlbBank = this.banks[0];
  /** The EPT context of the last VM entry with EPT, reused while the EPTP stays the same. */
  lastEpt: EptContext | null = null;

  /** Every bank, for flushes that reach beyond the current one. */
  all(): readonly TlbBank[] {
    return this.banks;
  }

  /** The bank for (vpid, eptRoot), created (evicting the least recently used) if needed. */
  bank(vpid: number, eptRoot: number): TlbBank {
    let b = this.banks.find((x) => x.vpid === vpid && x.eptRoot === eptRoot);
    if (b === undefined) {
      b = new TlbBank(vpid, eptRoot);
      if (this.banks.length >= MAX_BANKS) {
        // The least recently used bank other than the current one goes.
        let victim = -1;
        for (let k = 0; k < this.banks.length; k++) {
          const b = this.banks[k];
          if (b === this.current) continue;
          if (victim < 0 || b.used < this.banks[victim].used) victim = k;
        }
        this.banks.splice(victim, 1);
      }
      this.banks.push(b);
    }
    b.used = ++this.round;
    return b;
  }

  /** Power-on, RESET and INIT: one empty root bank. */
  reset(): TlbBank {
    this.lastEpt = null;
    this.banks.length = 0;
    this.current = new TlbBank(0, NO_EPT);
    this.banks.push(this.current);
    return this.current;
  }
}

/** The tag of mappings made through EPTP `lo`/`hi`: its EPT root's page number. */
export function eptRootPage(lo: number, hi: number): number {
  return Math.floor(eptRoot(lo, hi) / 4096);
}

/** Makes the bank for (vpid, eptRoot) the CPU's TLB. */
export function selectTlb(cpu: Cpu, vpid: number, eptRoot: number): void {
  cpu.useTlb(cpu.tlbs.bank(vpid, eptRoot));
}

// ---- INVVPID (SDM Vol. 3C, 29.4.3 and the INVVPID reference) ----

/** Individual-address: the mappings of linear address `lin` tagged with `vpid`. */
export function invvpidAddress(cpu: Cpu, vpid: number, lin: number): void {
  for (const b of cpu.tlbs.all()) if (b.vpid === vpid) b.flushPage(lin);
  cpu.useTlb(cpu.tlbs.current);
}

/**
 * Single-context: every mapping tagged with `vpid` (all PCIDs, all EPT roots); with
 * `keepGlobal`, the single-context-retaining-globals type, global translations survive.
 */
export function invvpidContext(cpu: Cpu, vpid: number, keepGlobal: boolean): void {
  for (const b of cpu.tlbs.all()) if (b.vpid === vpid) b.flush(!keepGlobal);
  cpu.useTlb(cpu.tlbs.current);
}

/** All-context: every mapping tagged with a VPID other than 0000H. */
export function invvpidAll(cpu: Cpu): void {
  for (const b of cpu.tlbs.all()) if (b.vpid !== 0) b.flush(true);
  cpu.useTlb(cpu.tlbs.current);
}

// ---- INVEPT (SDM Vol. 3C, 29.4.3 and the INVEPT reference) ----

/**
 * Single-context: the guest-physical and combined mappings derived from EPT root
 * `eptRoot` (eptRootPage of the INVEPT descriptor's EPTP), for every VPID.
 */
export function inveptContext(cpu: Cpu, eptRoot: number): void {
  for (const b of cpu.tlbs.all()) if (b.eptRoot === eptRoot) b.flush(true);
  for (const e of [cpu.ept, cpu.tlbs.lastEpt]) if (e !== null && e.rootPage === eptRoot) e.flush();
  cpu.useTlb(cpu.tlbs.current);
}

/** All-context: the mappings derived from every EPT root. */
export function inveptAll(cpu: Cpu): void {
  for (const b of cpu.tlbs.all()) if (b.eptRoot !== NO_EPT) b.flush(true);
  cpu.ept?.flush();
  cpu.tlbs.lastEpt?.flush();
  cpu.useTlb(cpu.tlbs.current);
}

/**
 * Without "enable VPID", VM entries and VM exits invalidate the linear and combined
 * mappings of VPID 0000H, for every PCID and EPT root (SDM Vol. 3C, 29.4.3.1).
 */
export function flushVpidZero(cpu: Cpu): void {
  for (const b of cpu.tlbs.all()) if (b.vpid === 0) b.flush(true);
  cpu.useTlb(cpu.tlbs.current);
}

// ---- VM entries and exits ----

/** The secondary processor-based controls in effect (0 without "activate secondary"). */
function secondaryControls(v: Vmcs): number {
  const proc = v.read(F.ProcBasedControls);
  return proc & Proc.ActivateSecondaryControls ? v.read(F.ProcBasedControls2) : 0;
}

/**
 * VM entry, once the guest state is loaded and before anything touches guest memory
 * (event injection): the guest's EPT (cpu.ept, with "enable EPT") and the TLB bank of its
 * VPID ("enable VPID", else 0) and EPT root. Without VPIDs the entry invalidates the
 * mappings of VPID 0000H (SDM Vol. 3C, 29.4.3.1).
 */
export function enterGuestTlb(cpu: Cpu, v: Vmcs): void {
  const c2 = secondaryControls(v);
  const vpid = c2 & Proc2.EnableVpid ? v.read(F.Vpid) : 0;
  let root = NO_EPT;
  if (c2 & Proc2.EnableEpt) {
    const lo = v.read(F.EptPointer);
    const hi = v.readHi(F.EptPointer);
    const ept = cpu.tlbs.lastEpt;
    cpu.ept = ept !== null && ept.eptpLo === lo && ept.eptpHi === hi ? ept : new EptContext(lo, hi);
    cpu.tlbs.lastEpt = cpu.ept;
    root = eptRootPage(lo, hi);
  } else cpu.ept = null;
  if (vpid === 0) flushVpidZero(cpu);
  selectTlb(cpu, vpid, root);
}

/**
 * VM exit (and VM-entry failure after the guest state was loaded), before the host state
 * is loaded: no EPT, the host's TLB bank (VPID 0, no EPT root), and without VPIDs the
 * mappings of VPID 0000H invalidated (SDM Vol. 3C, 29.4.3.1).
 */
export function exitToHostTlb(cpu: Cpu, v: Vmcs): void {
  cpu.ept = null;
  if (!(secondaryControls(v) & Proc2.EnableVpid)) flushVpidZero(cpu);
  selectTlb(cpu, 0, NO_EPT);
}
