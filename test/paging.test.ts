/**
 * The page walkers (src/cpu/mmu.ts: 32-bit paging, SDM Vol. 3A 4.3; PAE paging, 4.4), the
 * page-fault error code (4.7), accessed and dirty flags (4.8) and the software TLB with its
 * invalidation (4.10; cpu.ts flushTlb/flushTlbPage). Page tables are built by hand in guest
 * RAM and the CPU state is set directly, as MOV to CR0/CR3/CR4 would leave it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CR0_PG,
  CR0_WP,
  CR4_PAE,
  CR4_PGE,
  CR4_PSE,
  EFER_NXE,
  GP,
  PF_VEC,
  PFEC_I,
  PFEC_P,
  PFEC_RSVD,
  PFEC_U,
  PFEC_W,
  PTE_A,
  PTE_D,
  PTE_G,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
} from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { Fault } from "../src/cpu/fault.js";
import { PageFault, loadPdptes, translate } from "../src/cpu/mmu.js";
import type { PhysicalMemory } from "../src/machine/memory.js";
import { makeCpu } from "./helpers/cpu.js";

const MIB = 1 << 20;
const TWO32 = 2 ** 32;
const PRW = PTE_P | PTE_RW;
const PRWU = PTE_P | PTE_RW | PTE_US;

/** Where the paging structures live (physical): CR3's table, then tables on demand. */
const ROOT = 0x10000;
const TABLES = 0x20000;

interface Space {
  cpu: Cpu;
  mem: PhysicalMemory;
  /** Physical address of the PDE for `lin`. */
  pdeAt(lin: number): number;
  /** Maps the 4 KiB page at `lin` to `frame` (may be above 4 GiB with PAE) with `flags`
   * (low dword; `hi` is the PAE entry's high dword beyond the address bits); returns the
   * PTE's address. The PDE is created present, writable and user. */
  map(lin: number, frame: number, flags?: number, hi?: number): number;
  /** Writes the PDE for `lin` (low dword, and the high dword with PAE). */
  setPde(lin: number, lo: number, hi?: number): void;
  /** Sets CPL and recomputes what depends on it. */
  setCpl(cpl: number): void;
}

interface Options {
  pae?: boolean;
  cr4?: number;
  wp?: boolean;
  nxe?: boolean;
}

/**
 * A CPU with paging on: 32-bit paging, or PAE paging with four present PDPTEs whose page
 * directories follow the PDPT. RAM is 8 MiB so 4 MiB pages can be read back.
 */
function paging({ pae = false, cr4 = 0, wp = true, nxe = false }: Options = {}): Space {
  const { cpu, mem } = makeCpu(8 * MIB);
  const entry = pae ? 8 : 4;
  let next = TABLES;
  const pdeAt = pae
    ? (lin: number) => ROOT + 0x1000 * (1 + (lin >>> 30)) + ((lin >>> 21) & 0x1ff) * 8
    : (lin: number) => ROOT + (lin >>> 22) * 4;
  const pteIndex = (lin: number) => (pae ? (lin >>> 12) & 0x1ff : (lin >>> 12) & 0x3ff);
  const write64 = (addr: number, lo: number, hi: number) => {
    mem.write(addr, 4, lo >>> 0);
    if (pae) mem.write(addr + 4, 4, hi >>> 0);
  };
  if (pae) {
    for (let k = 0; k < 4; k++) write64(ROOT + 8 * k, (ROOT + 0x1000 * (k + 1)) | PTE_P, 0);
  }
  const space: Space = {
    cpu,
    mem,
    pdeAt,
    map(lin, frame, flags = PRWU, hi = 0) {
      let pde = mem.read(pdeAt(lin), 4);
      if (!(pde & PTE_P)) {
        pde = next | PRWU;
        next += 0x1000;
        write64(pdeAt(lin), pde, 0);
      }
      const at = (pde & 0xfffff000) + pteIndex(lin) * entry;
      write64(at, (frame % TWO32) | flags, Math.floor(frame / TWO32) | hi);
      return at;
    },
    setPde(lin, lo, hi = 0) {
      write64(pdeAt(lin), lo, hi);
    },
    setCpl(cpl) {
      cpu.cpl = cpl;
      cpu.modeChanged();
    },
  };
  cpu.cr3 = ROOT;
  cpu.cr4 = cr4 | (pae ? CR4_PAE : 0);
  cpu.msr.efer = nxe ? EFER_NXE : 0;
  if (pae) loadPdptes(cpu);
  cpu.cr0 = wp ? cpu.cr0 | CR0_PG | CR0_WP : (cpu.cr0 | CR0_PG) & ~CR0_WP;
  cpu.modeChanged();
  cpu.flushTlb(true);
  return space;
}

/** Runs `fn`, which must raise #PF; returns the fault. */
function pageFault(fn: () => unknown, what = ""): PageFault {
  try {
    fn();
  } catch (e) {
    if (e instanceof PageFault) {
      assert.equal(e.vector, PF_VEC);
      return e;
    }
    throw e;
  }
  assert.fail(`${what} no #PF`);
}

/** Asserts a #PF with error code `ec` (SDM Vol. 3A, Figure 4-12) for linear address `lin`. */
function expectPf(fn: () => unknown, ec: number, lin: number, what = ""): void {
  const f = pageFault(fn, what);
  assert.equal(
    f.errorCode,
    ec,
    `${what} error code 0x${f.errorCode.toString(16)}, want 0x${ec.toString(16)}`,
  );
  assert.equal(f.linear, lin >>> 0, `${what} linear address`);
}

const flag = (mem: PhysicalMemory, at: number, bit: number): boolean =>
  (mem.read(at, 4) & bit) !== 0;

// ---------------------------------------------------------------- 32-bit paging

describe("32-bit paging (SDM Vol. 3A, 4.3)", () => {
  it("translates a 4 KiB page through PDE and PTE, keeping the page offset", () => {
    const s = paging();
    s.map(0x00405000, 0x300000);
    assert.equal(translate(s.cpu, 0x00405abc, 0), 0x300abc);
    s.mem.write(0x300abc, 4, 0x11223344);
    assert.equal(s.cpu.rd(0x00405abc, 4), 0x11223344);
    s.cpu.wr(0x00405ff0, 2, 0xbeef);
    assert.equal(s.mem.read(0x300ff0, 2), 0xbeef);
  });

  it("sets A in PDE and PTE on any access, D in the PTE only on a write (4.8)", () => {
    const s = paging();
    const pte = s.map(0x00400000, 0x300000);
    const pde = s.pdeAt(0x00400000);
    s.cpu.rd(0x00400010, 4);
    assert.ok(flag(s.mem, pte, PTE_A) && flag(s.mem, pde, PTE_A), "A set by a read");
    assert.ok(!flag(s.mem, pte, PTE_D), "no D after a read");
    // The read cached the translation; the first write must still walk and set D.
    s.cpu.wr(0x00400010, 4, 1);
    assert.ok(flag(s.mem, pte, PTE_D), "D set by a write");
    assert.ok(!flag(s.mem, pde, PTE_D), "a PDE that references a page table gets no D");
  });

  it("maps 4 MiB pages when CR4.PSE = 1 and PDE.PS = 1 (Table 4-4)", () => {
    const s = paging({ cr4: CR4_PSE });
    s.setPde(0x00800000, 0x00400000 | PTE_PS | PRW);
    assert.equal(translate(s.cpu, 0x00812345, 0), 0x00412345);
    assert.equal(translate(s.cpu, 0x00bffffc, 0), 0x007ffffc);
    const pde = s.pdeAt(0x00800000);
    assert.ok(flag(s.mem, pde, PTE_A) && !flag(s.mem, pde, PTE_D), "A only, after reads");
    s.cpu.wr(0x00a00000, 4, 0x5a5a5a5a);
    assert.equal(s.mem.read(0x00600000, 4), 0x5a5a5a5a);
    assert.ok(flag(s.mem, pde, PTE_D), "a write sets D in a 4 MiB page's PDE");
  });

  it("ignores PDE.PS when CR4.PSE = 0: the PDE references a page table (Table 4-5)", () => {
    const s = paging();
    s.map(0x00401000, 0x300000);
    s.setPde(0x00400000, s.mem.read(s.pdeAt(0x00400000), 4) | PTE_PS);
    assert.equal(translate(s.cpu, 0x00401234, 0), 0x300234);
  });

  it("PSE-36: PDE bits 16:13 supply physical-address bits 35:32 (Table 4-4)", () => {
    const s = paging({ cr4: CR4_PSE });
    s.setPde(0x00c00000, 0x01c00000 | (0x5 << 13) | PTE_PS | PRW);
    assert.equal(translate(s.cpu, 0x00c12345, 0), 5 * TWO32 + 0x01c12345);
    assert.equal(s.cpu.rd(0x00c12345, 4), -1, "unbacked physical memory reads all-ones");
  });

  it("faults with RSVD for a 4 MiB PDE with bit 21 or bits 20:17 (above MAXPHYADDR 36) set", () => {
    const s = paging({ cr4: CR4_PSE });
    for (const bad of [1 << 21, 1 << 17, 1 << 20]) {
      s.setPde(0x00800000, 0x00400000 | bad | PTE_PS | PRWU);
      s.cpu.flushTlb(true);
      const what = `PDE bit ${Math.log2(bad)}:`;
      expectPf(() => translate(s.cpu, 0x00801000, 0), PFEC_P | PFEC_RSVD, 0x00801000, what);
      expectPf(() => s.cpu.wr(0x00801000, 4, 0), PFEC_P | PFEC_RSVD | PFEC_W, 0x00801000, what);
      s.setCpl(3);
      expectPf(() => s.cpu.rd(0x00801000, 4), PFEC_P | PFEC_RSVD | PFEC_U, 0x00801000, what);
      s.setCpl(0);
    }
  });

  it("reports a not-present PDE or PTE with P = 0 and the access's W and U bits (4.7)", () => {
    const s = paging();
    s.map(0x00400000, 0x300000, 0); // PTE not present
    for (const lin of [0x00400000, 0x40000000, 0xfffff123]) {
      expectPf(() => s.cpu.rd(lin, 4), 0, lin, "read");
      expectPf(() => s.cpu.wr(lin, 1, 0), PFEC_W, lin, "write");
      expectPf(() => translate(s.cpu, lin, PFEC_I), 0, lin, "fetch (no I/D without PAE+NXE)");
      s.setCpl(3);
      expectPf(() => s.cpu.rd(lin, 2), PFEC_U, lin, "user read");
      expectPf(() => s.cpu.wr(lin, 4, 0), PFEC_W | PFEC_U, lin, "user write");
      s.setCpl(0);
    }
  });

  it("denies user access to a page that is supervisor at either level (4.6)", () => {
    const s = paging();
    s.map(0x00400000, 0x300000, PRW); // PTE supervisor
    s.map(0x00800000, 0x301000, PRWU);
    s.setPde(0x00800000, s.mem.read(s.pdeAt(0x00800000), 4) & ~PTE_US); // PDE supervisor
    assert.equal(s.cpu.rd(0x00400000, 4), 0, "the supervisor may read it");
    s.setCpl(3);
    for (const lin of [0x00400004, 0x00800008]) {
      expectPf(() => s.cpu.rd(lin, 4), PFEC_P | PFEC_U, lin, "user read");
      expectPf(() => s.cpu.wr(lin, 4, 0), PFEC_P | PFEC_W | PFEC_U, lin, "user write");
      expectPf(() => translate(s.cpu, lin, PFEC_U | PFEC_I), PFEC_P | PFEC_U, lin, "user fetch");
    }
  });

  it("denies user writes to a page read-only at either level, whatever CR0.WP", () => {
    for (const wp of [true, false]) {
      const s = paging({ wp });
      s.map(0x00400000, 0x300000, PTE_P | PTE_US); // PTE read-only
      s.map(0x00800000, 0x301000, PRWU);
      s.setPde(0x00800000, s.mem.read(s.pdeAt(0x00800000), 4) & ~PTE_RW); // PDE read-only
      s.setCpl(3);
      for (const lin of [0x00400100, 0x00800200]) {
        assert.equal(s.cpu.rd(lin, 4), 0, "user reads are allowed");
        expectPf(() => s.cpu.wr(lin, 4, 0), PFEC_P | PFEC_W | PFEC_U, lin, `WP=${wp}`);
      }
    }
  });

  it("denies supervisor writes to read-only pages only when CR0.WP = 1", () => {
    const strict = paging({ wp: true });
    strict.map(0x00400000, 0x300000, PTE_P);
    expectPf(() => strict.cpu.wr(0x00400008, 4, 7), PFEC_P | PFEC_W, 0x00400008);
    const lax = paging({ wp: false });
    const pte = lax.map(0x00400000, 0x300000, PTE_P);
    lax.cpu.wr(0x00400008, 4, 7);
    assert.equal(lax.mem.read(0x300008, 4), 7);
    assert.ok(flag(lax.mem, pte, PTE_D), "the allowed write sets D");
    // The supervisor's write permission must not leak to CPL 3 through the TLB.
    lax.map(0x00401000, 0x301000, PTE_P | PTE_US);
    lax.cpu.wr(0x00401000, 4, 1);
    lax.setCpl(3);
    expectPf(() => lax.cpu.wr(0x00401000, 4, 7), PFEC_P | PFEC_W | PFEC_U, 0x00401000, "user");
    lax.setCpl(0);
    // Turning WP on (MOV CR0 flushes the TLB) makes the same write fault.
    lax.cpu.cr0 |= CR0_WP;
    lax.cpu.flushTlb(true);
    expectPf(() => lax.cpu.wr(0x00400008, 4, 7), PFEC_P | PFEC_W, 0x00400008);
  });

  it("splits accesses that cross a page boundary between the two frames", () => {
    const s = paging();
    s.map(0x00400000, 0x300000);
    s.map(0x00401000, 0x500000);
    s.cpu.wr(0x00400ffe, 4, 0x44332211);
    assert.equal(s.mem.read(0x300ffe, 2), 0x2211);
    assert.equal(s.mem.read(0x500000, 2), 0x4433);
    assert.equal(s.cpu.rd(0x00400fff, 4), 0x00443322);
  });

  it("makes a write that crosses into a faulting page change neither page", () => {
    // A faulting instruction has no effect (SDM Vol. 3A, 6.5: faults are restartable).
    const s = paging();
    s.map(0x00400000, 0x300000);
    s.map(0x00401000, 0x500000, PTE_P); // read-only
    s.mem.write(0x300ffc, 4, 0xaaaaaaaa);
    const f = pageFault(() => s.cpu.wr(0x00400ffe, 4, 0x44332211));
    assert.equal(f.errorCode, PFEC_P | PFEC_W);
    assert.equal(f.linear >>> 12, 0x00401, "the fault is reported in the second page");
    assert.equal(s.mem.read(0x300ffc, 4), 0xaaaaaaaa, "the first page is unchanged");
  });

  it("lets the supervisor read and write user pages (no SMAP)", () => {
    const s = paging();
    s.map(0x00400000, 0x300000, PRWU);
    s.cpu.wr(0x00400000, 4, 0x1234);
    assert.equal(s.cpu.rd(0x00400000, 4), 0x1234);
  });
});

// ---------------------------------------------------------------- PAE paging

describe("PAE paging (SDM Vol. 3A, 4.4)", () => {
  it("translates 4 KiB pages through PDPTE, PDE and PTE, to frames above 4 GiB too", () => {
    const s = paging({ pae: true });
    s.map(0x00405000, 0x300000);
    s.map(0xc0001000, 0x9_8765_4000);
    assert.equal(translate(s.cpu, 0x00405abc, 0), 0x300abc);
    assert.equal(translate(s.cpu, 0xc0001ffc, PFEC_W), 0x9_8765_4ffc);
    s.mem.write(0x300abc, 4, 0xcafef00d);
    assert.equal(s.cpu.rd(0x00405abc, 4) >>> 0, 0xcafef00d);
  });

  it("sets A in PDE and PTE, D in the PTE only on a write", () => {
    const s = paging({ pae: true });
    const pte = s.map(0x40000000, 0x300000);
    const pde = s.pdeAt(0x40000000);
    s.cpu.rd(0x40000000, 1);
    assert.ok(flag(s.mem, pte, PTE_A) && flag(s.mem, pde, PTE_A) && !flag(s.mem, pte, PTE_D));
    s.cpu.wr(0x40000000, 1, 1);
    assert.ok(flag(s.mem, pte, PTE_D) && !flag(s.mem, pde, PTE_D));
  });

  it("maps 2 MiB pages with PDE.PS = 1 (Table 4-9), setting A and D in the PDE", () => {
    const s = paging({ pae: true });
    s.setPde(0x80200000, 0x00400000 | PTE_PS | PRW);
    s.setPde(0x80400000, 0x00600000 | PTE_PS | PRW, 0x3); // physical 0x3_0060_0000
    assert.equal(translate(s.cpu, 0x802fedcb, 0), 0x004fedcb);
    assert.equal(translate(s.cpu, 0x80412345, 0), 3 * TWO32 + 0x00612345);
    const pde = s.pdeAt(0x80200000);
    assert.ok(flag(s.mem, pde, PTE_A) && !flag(s.mem, pde, PTE_D));
    s.cpu.wr(0x80200040, 4, 99);
    assert.equal(s.mem.read(0x00400040, 4), 99);
    assert.ok(flag(s.mem, pde, PTE_D));
  });

  it("uses the PDPTE registers: memory changes count only after they are reloaded (4.4.1)", () => {
    const s = paging({ pae: true });
    s.map(0x00400000, 0x300000);
    s.mem.write(ROOT, 4, 0); // PDPTE 0 not present in memory, still cached in the register
    assert.equal(translate(s.cpu, 0x00400000, 0), 0x300000);
    loadPdptes(s.cpu);
    s.cpu.flushTlb(true);
    expectPf(() => translate(s.cpu, 0x00400000, 0), 0, 0x00400000, "not-present PDPTE");
    expectPf(() => translate(s.cpu, 0x00400000, PFEC_W | PFEC_U), PFEC_W | PFEC_U, 0x00400000);
  });

  it("raises #GP(0) when loading a present PDPTE with reserved bits (2:1, 8:5, 63:36)", () => {
    const s = paging({ pae: true });
    const table = ROOT + 0x1000;
    for (const [lo, hi] of [
      [1 << 1, 0],
      [1 << 2, 0],
      [1 << 5, 0],
      [1 << 8, 0],
      [0, 1 << 4],
      [0, 1 << 31],
    ]) {
      s.mem.write(ROOT + 8, 4, (table | PTE_P | lo) >>> 0);
      s.mem.write(ROOT + 12, 4, hi >>> 0);
      assert.throws(
        () => loadPdptes(s.cpu),
        (e) => e instanceof Fault && e.vector === GP && e.errorCode === 0,
        `PDPTE lo=0x${lo.toString(16)} hi=0x${hi.toString(16)}`,
      );
    }
    // Not-present PDPTEs may hold anything; bits 35:32 are address bits.
    s.mem.write(ROOT + 8, 4, 0xfffffffe);
    s.mem.write(ROOT + 12, 4, 0xffffffff);
    s.mem.write(ROOT + 16, 4, table | PTE_P);
    s.mem.write(ROOT + 20, 4, 0xf);
    loadPdptes(s.cpu);
  });

  it("faults with RSVD for PDE/PTE address bits 51:36 beyond MAXPHYADDR and 2 MiB PDE bits 20:13", () => {
    const s = paging({ pae: true });
    for (const hi of [1 << 4, 1 << 19]) {
      s.map(0x00400000, 0x300000, PRWU, hi); // PTE
      s.cpu.flushTlb(true);
      expectPf(
        () => s.cpu.rd(0x00400000, 4),
        PFEC_P | PFEC_RSVD,
        0x00400000,
        `PTE hi 0x${hi.toString(16)}`,
      );
      s.setPde(0x00800000, 0x00400000 | PTE_PS | PRWU, hi); // 2 MiB PDE
      expectPf(() => s.cpu.wr(0x00800000, 4, 0), PFEC_P | PFEC_RSVD | PFEC_W, 0x00800000);
    }
    s.setPde(0x00800000, 0x00400000 | (1 << 13) | PTE_PS | PRWU);
    expectPf(() => translate(s.cpu, 0x00800000, 0), PFEC_P | PFEC_RSVD, 0x00800000, "PDE bit 13");
  });

  it("faults with RSVD for PDE/PTE bits 62:52, which are reserved too (4.4.2)", () => {
    // SDM Vol. 3A, 4.4.2: "If the P flag of a PDE or a PTE is 1, bits 62:MAXPHYADDR are
    // reserved" — not only 51:MAXPHYADDR.
    const s = paging({ pae: true, nxe: true });
    for (const hi of [1 << 20, 1 << 30]) {
      s.map(0x00400000, 0x300000, PRWU, hi);
      s.cpu.flushTlb(true);
      expectPf(
        () => s.cpu.rd(0x00400000, 4),
        PFEC_P | PFEC_RSVD,
        0x00400000,
        `PTE hi 0x${hi.toString(16)}`,
      );
      s.setPde(0x00800000, 0x00400000 | PTE_PS | PRWU, hi);
      expectPf(
        () => s.cpu.rd(0x00800000, 4),
        PFEC_P | PFEC_RSVD,
        0x00800000,
        `PDE hi 0x${hi.toString(16)}`,
      );
    }
  });

  it("treats XD (bit 63) as reserved while EFER.NXE = 0", () => {
    const s = paging({ pae: true, nxe: false });
    s.map(0x00400000, 0x300000, PRWU, 0x80000000);
    expectPf(() => s.cpu.rd(0x00400000, 4), PFEC_P | PFEC_RSVD, 0x00400000);
    // Without NXE an instruction fetch reports no I/D flag (4.7).
    expectPf(() => translate(s.cpu, 0x00400000, PFEC_I), PFEC_P | PFEC_RSVD, 0x00400000);
  });

  it("with EFER.NXE, forbids instruction fetches from XD pages only (4.6): P|I error code", () => {
    const s = paging({ pae: true, nxe: true });
    s.map(0x00400000, 0x300000, PRWU, 0x80000000); // XD in the PTE
    s.map(0x00800000, 0x301000, PRWU);
    s.setPde(0x00800000, s.mem.read(s.pdeAt(0x00800000), 4), 0x80000000); // XD in the PDE
    s.setPde(0x00c00000, 0x00400000 | PTE_PS | PRWU, 0x80000000); // XD 2 MiB page
    s.map(0x01000000, 0x302000, PRWU); // executable
    for (const lin of [0x00400010, 0x00800020, 0x00c00030]) {
      s.cpu.wr(lin, 4, 0xc3);
      assert.equal(s.cpu.rd(lin, 4), 0xc3, "data accesses are allowed");
      expectPf(() => s.cpu.fetchByte(lin), PFEC_P | PFEC_I, lin, "fetch");
      s.setCpl(3);
      expectPf(() => s.cpu.fetchByte(lin), PFEC_P | PFEC_I | PFEC_U, lin, "user fetch");
      s.setCpl(0);
    }
    s.mem.write(0x302000, 1, 0x90);
    assert.equal(s.cpu.fetchByte(0x01000000), 0x90);
    // A fetch from a not-present page reports I/D too, without P.
    expectPf(() => s.cpu.fetchByte(0x01400000), PFEC_I, 0x01400000, "not-present fetch");
  });

  it("applies the same U/S and R/W rules as 32-bit paging", () => {
    const s = paging({ pae: true });
    s.map(0x00400000, 0x300000, PRW); // supervisor
    s.map(0x00401000, 0x301000, PTE_P | PTE_US); // read-only user
    expectPf(
      () => s.cpu.wr(0x00401000, 4, 0),
      PFEC_P | PFEC_W,
      0x00401000,
      "WP=1 supervisor write",
    );
    s.setCpl(3);
    expectPf(
      () => s.cpu.rd(0x00400000, 4),
      PFEC_P | PFEC_U,
      0x00400000,
      "user read of supervisor page",
    );
    expectPf(() => s.cpu.wr(0x00401000, 4, 0), PFEC_P | PFEC_W | PFEC_U, 0x00401000, "user write");
  });
});

// ---------------------------------------------------------------- the TLB

describe("TLB and its invalidation (SDM Vol. 3A, 4.10)", () => {
  /** Two frames with recognizable contents: the page's translation says which is used. */
  const OLD = 0x300000;
  const NEW = 0x301000;
  const marks = (s: Space) => {
    s.mem.write(OLD, 4, 0x01d01d01);
    s.mem.write(NEW, 4, 0x0e0e0e0e);
  };

  for (const pae of [false, true]) {
    const mode = pae ? "PAE" : "32-bit";

    it(`${mode}: uses a cached translation until flushTlbPage drops it`, () => {
      const s = paging({ pae });
      marks(s);
      s.map(0x00400000, OLD);
      assert.equal(s.cpu.rd(0x00400000, 4), 0x01d01d01);
      s.map(0x00400000, NEW); // no invalidation: the stale entry is still used
      assert.equal(s.cpu.rd(0x00400000, 4), 0x01d01d01);
      s.cpu.flushTlbPage(0x00400abc);
      assert.equal(s.cpu.rd(0x00400000, 4), 0x0e0e0e0e);
    });

    it(`${mode}: flushTlb(false) keeps global pages (CR4.PGE and G), flushTlb(true) does not`, () => {
      const s = paging({ pae, cr4: CR4_PGE });
      marks(s);
      s.map(0x00400000, OLD, PRWU | PTE_G);
      s.map(0x00800000, OLD, PRWU);
      assert.equal(s.cpu.rd(0x00400000, 4), 0x01d01d01);
      assert.equal(s.cpu.rd(0x00800000, 4), 0x01d01d01);
      s.map(0x00400000, NEW, PRWU | PTE_G);
      s.map(0x00800000, NEW, PRWU);
      s.cpu.flushTlb(false); // as MOV to CR3 does
      assert.equal(s.cpu.rd(0x00400000, 4), 0x01d01d01, "the global page survives");
      assert.equal(s.cpu.rd(0x00800000, 4), 0x0e0e0e0e, "the non-global page is re-walked");
      s.cpu.flushTlb(true);
      assert.equal(s.cpu.rd(0x00400000, 4), 0x0e0e0e0e, "a global flush drops it");
      // INVLPG drops a global translation too (4.10.4.1).
      s.map(0x00400000, OLD, PRWU | PTE_G);
      s.cpu.flushTlbPage(0x00400000);
      assert.equal(s.cpu.rd(0x00400000, 4), 0x01d01d01, "flushTlbPage drops a global page");
    });

    it(`${mode}: G is ignored while CR4.PGE = 0`, () => {
      const s = paging({ pae });
      marks(s);
      s.map(0x00400000, OLD, PRWU | PTE_G);
      assert.equal(s.cpu.rd(0x00400000, 4), 0x01d01d01);
      s.map(0x00400000, NEW, PRWU | PTE_G);
      s.cpu.flushTlb(false);
      assert.equal(s.cpu.rd(0x00400000, 4), 0x0e0e0e0e);
    });

    it(`${mode}: flushTlbPage drops every cached piece of a large page`, () => {
      const s = paging({ pae, cr4: pae ? 0 : CR4_PSE });
      const size = pae ? 2 * MIB : 4 * MIB;
      const lin = pae ? 0x00c00000 : 0x00800000;
      s.setPde(lin, 0x00400000 | PTE_PS | PRWU);
      const pieces = [0, 0x1000, 0x7000, size - 0x1000];
      for (const off of pieces) s.mem.write(0x00400000 + off, 4, 0x0a0a0000 + off);
      for (const off of pieces) s.mem.write(0x00000000 + off, 4, 0x0b0b0000 + off);
      for (const off of pieces) assert.equal(s.cpu.rd(lin + off, 4), 0x0a0a0000 + off);
      s.setPde(lin, 0x00000000 | PTE_PS | PRWU); // remap the large page to frame 0
      s.cpu.flushTlbPage(lin + 0x3000); // any address in the page invalidates all of it
      for (const off of pieces) {
        assert.equal(s.cpu.rd(lin + off, 4), 0x0b0b0000 + off, `piece at +0x${off.toString(16)}`);
      }
    });

    it(`${mode}: a cached translation still enforces U/S and R/W on later accesses`, () => {
      const s = paging({ pae });
      s.map(0x00400000, OLD, PRW); // supervisor
      s.map(0x00401000, NEW, PTE_P | PTE_US); // read-only
      s.cpu.rd(0x00400000, 4);
      s.cpu.rd(0x00401000, 4);
      expectPf(() => s.cpu.wr(0x00401000, 4, 0), PFEC_P | PFEC_W, 0x00401000, "write after read");
      s.setCpl(3);
      expectPf(() => s.cpu.rd(0x00400000, 4), PFEC_P | PFEC_U, 0x00400000, "user after supervisor");
      assert.equal(s.cpu.rd(0x00401000, 4), 0);
    });
  }

  it("drops the cached instruction-fetch page with the TLB entries", () => {
    // The CPU keeps the last fetch page's translation apart from the TLB (cpu.ts).
    const s = paging();
    s.mem.write(OLD, 1, 0x90);
    s.mem.write(NEW, 1, 0xc3);
    s.map(0x00400000, OLD);
    assert.equal(s.cpu.fetchByte(0x00400000), 0x90);
    s.map(0x00400000, NEW);
    s.cpu.flushTlbPage(0x00400000);
    assert.equal(s.cpu.fetchByte(0x00400000), 0xc3, "after flushTlbPage");
    s.map(0x00400000, OLD);
    s.cpu.flushTlb(false);
    assert.equal(s.cpu.fetchByte(0x00400000), 0x90, "after flushTlb(false)");
    s.map(0x00400000, NEW, 0); // not present
    s.cpu.flushTlb(true);
    expectPf(() => s.cpu.fetchByte(0x00400000), 0, 0x00400000, "after flushTlb(true)");
  });

  it("flushTlbPage leaves the translations of other small pages alone", () => {
    // Not required by the SDM (a TLB may always drop more), but our TLB keeps them.
    const s = paging();
    marks(s);
    s.map(0x00400000, OLD);
    s.map(0x00401000, OLD);
    s.cpu.rd(0x00400000, 4);
    s.cpu.rd(0x00401000, 4);
    s.map(0x00400000, NEW);
    s.map(0x00401000, NEW);
    s.cpu.flushTlbPage(0x00400000);
    assert.equal(s.cpu.rd(0x00400000, 4), 0x0e0e0e0e);
    assert.equal(s.cpu.rd(0x00401000, 4), 0x01d01d01);
  });
});
