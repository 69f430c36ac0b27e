/**
 * EPT in the MMU and the VPID/EPT-tagged TLB (src/cpu/vmx/ept-mmu.ts, tlb.ts; SDM Vol. 3C,
 * 29.3 and 29.4): a CPU in VMX non-root operation with an EPT context translates unpaged
 * accesses, its own page walks, PDPTE loads and final addresses through EPT; TLB entries
 * keep only the rights both translations give; failed translations end in EPT-violation
 * and EPT-misconfiguration VM exits with the right information; the TLB banks survive VM
 * entries and exits and INVEPT / INVVPID flush what the SDM says.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CR0_PG, CR4_PAE, CR4_PGE, ESP, PTE_A, PTE_G, PTE_P, PTE_RW } from "../src/cpu/arch.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { Instr } from "../src/cpu/decode.js";
import { loadPdptes, P_WS, P_WU } from "../src/cpu/mmu.js";
import {
  EPT_A,
  EPT_D,
  EPT_R,
  EPT_W,
  EPT_X,
  EPTP_AD,
  EptContext,
  eptRoot,
} from "../src/cpu/vmx/ept.js";
import { ExitReason } from "../src/cpu/vmx/exit-reasons.js";
import { EptExitSignal } from "../src/cpu/vmx/ept-mmu.js";
import { VmExitSignal } from "../src/cpu/vmx/exit.js";
import { F } from "../src/cpu/vmx/fields.js";
import {
  eptRootPage,
  flushVpidZero,
  inveptAll,
  inveptContext,
  invvpidAddress,
  invvpidAll,
  invvpidContext,
  NO_EPT,
  selectTlb,
} from "../src/cpu/vmx/tlb.js";
import { Vmcs } from "../src/cpu/vmx/vmcs.js";
import type { PhysicalMemory } from "../src/machine/memory.js";
import { CODE, decodeAt, makeCpu } from "./helpers/cpu.js";
import { Pin } from "../src/cpu/vmx/controls.js";
import { BLOCKING_NMI } from "../src/cpu/vmx/exit.js";
import { eptTables } from "./helpers/ept-tables.js";

const RWX = EPT_R | EPT_W | EPT_X;
const WB = 6 << 3;
const EPT_PML4 = 0x100000;
const EPTP = EPT_PML4 | 0x1e;
const VMCS_AT = 0x1f0000;

interface Guest {
  cpu: Cpu;
  mem: PhysicalMemory;
  /** Maps guest-physical page `gpa` to host-physical `hpa` (flags: EPT PTE low bits). */
  map(gpa: number, hpa: number, flags?: number): number;
  /** Address of the EPT PTE of `gpa` (after map). */
  pte(gpa: number): number;
  /** Runs `fn`, which must end in a VM exit; returns the VMCS's exit information. */
  exit(fn: () => unknown): { reason: number; qual: number; gpa: number; gla: number };
}

/** A CPU in non-root operation with an EPT (`eptp`), VPID 1, paging off. */
function guest(eptp = EPTP): Guest {
  const { cpu, mem } = makeCpu(4 << 20);
  const entryAt = eptTables(mem, EPT_PML4);
  cpu.vmx.on = true;
  cpu.vmx.nonRoot = true;
  const vmcs = new Vmcs(VMCS_AT);
  cpu.vmx.current = vmcs;
  cpu.vmx.currentPointer = VMCS_AT;
  cpu.ept = new EptContext(eptp, 0);
  selectTlb(cpu, 1, eptRootPage(eptp, 0));
  return {
    cpu,
    mem,
    map(gpa, hpa, flags = RWX | WB) {
      const a = entryAt(gpa, 3);
      mem.write(a, 4, (hpa | flags) >>> 0);
      mem.write(a + 4, 4, 0);
      return a;
    },
    pte: (gpa) => entryAt(gpa, 3),
    exit(fn) {
      // The walk throws an EptExitSignal; the run loop would then take the VM exit.
      let signal: unknown = null;
      try {
        fn();
      } catch (e) {
        signal = e;
      }
      assert.ok(signal instanceof EptExitSignal, `no EPT exit: ${String(signal)}`);
      assert.throws(
        () => signal.exit(cpu),
        (e) => e instanceof VmExitSignal,
      );
      return {
        reason: vmcs.read(F.ExitReason),
        qual: vmcs.read(F.ExitQualification),
        gpa: vmcs.read64(F.GuestPhysicalAddress),
        gla: vmcs.read64(F.GuestLinearAddress),
      };
    },
  };
}

/** 32-bit paging in the guest: CR3 (guest-physical), the PDE and the PTE of `lin`. */
function guestPaging(g: Guest, cr3Gpa: number, ptGpa: number, lin: number, frameGpa: number) {
  const pdHpa = 0x60000;
  const ptHpa = 0x61000;
  g.map(cr3Gpa, pdHpa);
  g.map(ptGpa, ptHpa);
  g.mem.write(pdHpa + (lin >>> 22) * 4, 4, ptGpa | PTE_P | PTE_RW);
  g.mem.write(ptHpa + ((lin >>> 12) & 0x3ff) * 4, 4, frameGpa | PTE_P | PTE_RW);
  g.cpu.cr3 = cr3Gpa;
  g.cpu.cr0 |= CR0_PG;
  g.cpu.modeChanged();
  g.cpu.flushTlb(true);
  return { pde: pdHpa + (lin >>> 22) * 4, pte: ptHpa + ((lin >>> 12) & 0x3ff) * 4 };
}

describe("EPT in the MMU (SDM Vol. 3C, 29.3.2)", () => {
  it("an unpaged guest (CR0.PG = 0, unrestricted) reads and writes through EPT", () => {
    const g = guest();
    g.map(0x5000, 0x9000);
    g.mem.write(0x9010, 4, 0x11223344);
    assert.equal(g.cpu.rd(0x5010, 4), 0x11223344);
    g.cpu.wr(0x5020, 4, 0x55667788);
    assert.equal(g.mem.read(0x9020, 4), 0x55667788);
    assert.equal(g.mem.read(0x5020, 4), 0, "nothing lands at the guest-physical address");
  });

  it("the guest's page walk reads its paging structures through EPT and sets A there", () => {
    const g = guest();
    const lin = 0x00403000;
    const { pde, pte } = guestPaging(g, 0x20000, 0x21000, lin, 0x30000);
    g.map(0x30000, 0x70000);
    g.mem.write(0x70008, 4, 0xcafe);
    assert.equal(g.cpu.rd(lin + 8, 4), 0xcafe);
    assert.ok(g.mem.read(pde, 4) & PTE_A, "the PDE at its host-physical address has A");
    assert.ok(g.mem.read(pte, 4) & PTE_A);
  });

  it("TLB entries keep only the rights EPT gives (a read-only EPT page is not writable)", () => {
    const g = guest();
    g.map(0x6000, 0xa000, EPT_R | EPT_X | WB);
    assert.equal(g.cpu.rd(0x6000, 4), 0);
    const i = 6; // linear page 6, TLB slot 6
    assert.equal(g.cpu.tlbTag[i], 6);
    assert.equal(g.cpu.tlbPerm[i] & (P_WS | P_WU), 0);
    const x = g.exit(() => g.cpu.wr(0x6004, 4, 1));
    assert.equal(x.reason, ExitReason.EptViolation);
    // write, readable and executable, guest-linear address valid, final translation
    assert.equal(x.qual, 0x2 | 0x8 | 0x20 | 0x80 | 0x100);
    assert.equal(x.gpa, 0x6004);
    assert.equal(x.gla, 0x6004);
  });

  it("a violation on a guest paging-structure entry: bit 8 clear, the entry's address", () => {
    const g = guest();
    const lin = 0x00403000;
    guestPaging(g, 0x20000, 0x21000, lin, 0x30000);
    g.mem.write(g.pte(0x21000), 4, 0); // the guest's page table is not present in EPT
    const x = g.exit(() => g.cpu.rd(lin + 4, 4));
    assert.equal(x.reason, ExitReason.EptViolation);
    assert.equal(x.qual, 0x1 | 0x80, "read, linear address valid, not the final translation");
    assert.equal(x.gpa, 0x21000 + ((lin >>> 12) & 0x3ff) * 4);
    assert.equal(x.gla, lin + 4);
  });

  it("an EPT misconfiguration: exit 49 with the guest-physical address", () => {
    const g = guest();
    g.map(0x7000, 0xb000, EPT_W | WB);
    const x = g.exit(() => g.cpu.rd(0x7abc, 1));
    assert.equal(x.reason, ExitReason.EptMisconfig);
    assert.equal(x.gpa, 0x7abc);
  });

  for (const blocked of [true, false]) {
    it(`an IRET that ${blocked ? "ends" : "finds no"} virtual-NMI blocking and violates on its stack: bit 12 ${blocked ? "set" : "clear"}`, () => {
      const g = guest();
      const v = g.cpu.vmx.vmcs;
      v.write(F.PinBasedControls, Pin.NmiExiting | Pin.VirtualNmis);
      v.write(F.GuestInterruptibilityState, blocked ? BLOCKING_NMI : 0);
      g.map(CODE & ~0xfff, CODE & ~0xfff);
      g.cpu.regs[ESP] = 0x7ff0; // the stack page, 0x7000, is not mapped in EPT
      const i = decodeAt(g.cpu, [0xcf]); // iret
      const x = g.exit(() => i.exec(g.cpu, i));
      assert.equal(x.reason, ExitReason.EptViolation);
      assert.equal(x.qual & 0x1000, blocked ? 0x1000 : 0);
      assert.equal(x.gpa, 0x7ff0);
      assert.equal(v.read(F.GuestInterruptibilityState) & BLOCKING_NMI, 0, "blocking ended");
    });
  }

  it("an exception whose delivery violates on the guest stack: the exit after unwinding", () => {
    const g = guest();
    for (const page of [0x1000, 0x2000, 0x3000]) g.map(page, page);
    // GDT at 0x2000 (a flat 32-bit code segment at 08H), IDT at 0x3000 (#UD: 08H:0x1800).
    g.mem.write(0x2008, 4, 0x0000ffff);
    g.mem.write(0x200c, 4, 0x00cf9a00);
    g.mem.write(0x3000 + 6 * 8, 4, 0x00081800);
    g.mem.write(0x3000 + 6 * 8 + 4, 4, 0x00008e00);
    g.cpu.gdtrBase = 0x2000;
    g.cpu.gdtrLimit = 0x17;
    g.cpu.idtrBase = 0x3000;
    g.cpu.idtrLimit = 0x7ff;
    g.mem.write(CODE, 2, 0x0b0f); // ud2
    g.cpu.eip = g.cpu.nextEip = CODE;
    g.cpu.regs[ESP] = 0x7ff0; // the stack page is not mapped in EPT
    const v = g.cpu.vmx.vmcs;
    v.write(F.HostRsp, 0x9000);
    g.cpu.run(1);
    assert.equal(g.cpu.regs[ESP], 0x9000, "the host's ESP, not the guest's restored over it");
    assert.equal(v.read(F.ExitReason), ExitReason.EptViolation);
    assert.equal(v.read(F.ExitQualification), 0x2 | 0x80 | 0x100);
    assert.equal(v.read(F.IdtVectoringInfo), 0x80000306, "#UD was being delivered");
    assert.equal(v.read(F.GuestRsp), 0x7ff0, "the guest's ESP from before the delivery");
    assert.equal(v.read(F.GuestRip), CODE, "the guest's EIP at the UD2");
    assert.equal(g.cpu.vmx.nonRoot, false);
  });

  it("with EPTP bit 6: paging-structure reads are writes (D on the table pages)", () => {
    const g = guest(EPTP | EPTP_AD);
    const lin = 0x00403000;
    const { pde, pte } = guestPaging(g, 0x20000, 0x21000, lin, 0x30000);
    // Guest A flags already set: the walk itself writes nothing to the guest's tables.
    for (const a of [pde, pte]) g.mem.write(a, 4, g.mem.read(a, 4) | PTE_A);
    const frame = g.map(0x30000, 0x70000);
    g.cpu.rd(lin, 4);
    for (const gpa of [0x20000, 0x21000]) {
      assert.equal(g.mem.read(g.pte(gpa), 4) & (EPT_A | EPT_D), EPT_A | EPT_D, `gpa ${gpa}`);
    }
    assert.equal(g.mem.read(frame, 4) & (EPT_A | EPT_D), EPT_A, "the data page: read only");
    // The first write walks again (no write permission cached before D) and sets D.
    assert.equal(g.cpu.tlbPerm[(lin >>> 12) & 0xfff] & P_WS, 0);
    g.cpu.wr(lin, 4, 5);
    assert.ok(g.mem.read(frame, 4) & EPT_D);
  });

  it("PAE PDPTE loads read CR3's guest-physical address through EPT, without bit 7", () => {
    const g = guest();
    g.map(0x40000, 0x80000);
    g.mem.write(0x80000, 4, 0x41000 | PTE_P);
    g.cpu.cr4 |= CR4_PAE;
    g.cpu.cr3 = 0x40000;
    loadPdptes(g.cpu);
    assert.equal(g.cpu.pdpte[0], 0x41000 | PTE_P);
    g.mem.write(g.pte(0x40000), 4, 0);
    inveptAll(g.cpu); // the mapping may be cached until INVEPT
    const x = g.exit(() => loadPdptes(g.cpu));
    assert.equal(x.reason, ExitReason.EptViolation);
    assert.equal(x.qual, 0x1, "a read, no guest-linear address");
    assert.equal(x.gpa, 0x40000);
  });
});

describe("guest-physical mappings cached by the EPT context (SDM Vol. 3C, 29.4.1)", () => {
  it("are used until INVEPT, which makes a changed EPT entry visible", () => {
    const g = guest();
    g.map(0x5000, 0x9000);
    g.mem.write(0x9000, 4, 0x1111);
    g.mem.write(0xa000, 4, 0x2222);
    assert.equal(g.cpu.rd(0x5000, 4), 0x1111);
    g.map(0x5000, 0xa000);
    g.cpu.flushTlb(true); // the combined mapping goes; the guest-physical one stays
    assert.equal(g.cpu.rd(0x5000, 4), 0x1111, "still the cached guest-physical mapping");
    inveptContext(g.cpu, eptRootPage(EPTP, 0));
    assert.equal(g.cpu.rd(0x5000, 4), 0x2222);
  });

  it("never answer with a stale restriction: an entry loosened without INVEPT is walked again", () => {
    const g = guest();
    g.map(0x6000, 0x6000, EPT_R | WB);
    g.cpu.rd(0x6000, 4);
    g.map(0x6000, 0x6000, RWX | WB);
    g.cpu.flushTlb(true);
    g.cpu.wr(0x6000, 4, 7); // no violation
    assert.equal(g.mem.read(0x6000, 4), 7);
  });
});

describe("TLB banks tagged by VPID and EPT root (SDM Vol. 3C, 29.4)", () => {
  /** Fills the current bank's entry for linear page `page` by a read. */
  function fill(cpu: Cpu, page: number): void {
    cpu.rd(page * 4096, 1);
  }
  const cached = (cpu: Cpu, page: number) => cpu.tlbTag[page & 0xfff] === page;

  it("each (VPID, EPT root) has its own entries, kept across switches", () => {
    const g = guest();
    g.map(0x3000, 0x3000);
    fill(g.cpu, 3);
    selectTlb(g.cpu, 0, NO_EPT);
    assert.ok(!cached(g.cpu, 3), "the root bank does not see the guest's entry");
    fill(g.cpu, 3);
    selectTlb(g.cpu, 1, eptRootPage(EPTP, 0));
    assert.ok(cached(g.cpu, 3), "the guest's entry survived the switch");
  });

  it("INVVPID: individual address and single context for one VPID, all-context spares VPID 0", () => {
    const g = guest();
    for (let p = 1; p < 4; p++) g.map(p * 4096, p * 4096);
    const root = eptRootPage(EPTP, 0);
    const banks = [1, 2, 0].map((vpid) => {
      selectTlb(g.cpu, vpid, root);
      fill(g.cpu, 1);
      fill(g.cpu, 2);
      return g.cpu.tlbs.current;
    });
    invvpidAddress(g.cpu, 1, 0x1abc);
    assert.deepEqual(
      banks.map((b) => [b.tag[1], b.tag[2]]),
      [
        [-1, 2],
        [1, 2],
        [1, 2],
      ],
    );
    invvpidContext(g.cpu, 2, false);
    assert.equal(banks[1].tag[2], -1);
    assert.equal(banks[0].tag[2], 2);
    invvpidAll(g.cpu);
    assert.equal(banks[0].tag[2], -1);
    assert.equal(banks[2].tag[1], 1, "VPID 0 is left alone");
  });

  it("INVVPID single-context-retaining-globals keeps global translations", () => {
    const g = guest();
    guestPaging(g, 0x20000, 0x21000, 0x00403000, 0x30000);
    g.map(0x30000, 0x30000);
    g.cpu.cr4 |= CR4_PGE;
    g.mem.write(0x61000 + 3 * 4, 4, 0x30000 | PTE_P | PTE_RW | PTE_G);
    g.cpu.rd(0x00403000, 4);
    invvpidContext(g.cpu, 1, true);
    assert.ok(cached(g.cpu, 0x403), "a global translation survives");
    invvpidContext(g.cpu, 1, false);
    assert.ok(!cached(g.cpu, 0x403));
  });

  it("INVEPT: single-context drops one EPT root's mappings, all-context every EPT root's", () => {
    const g = guest();
    g.map(0x1000, 0x1000);
    const other = 0x180000 | 0x1e;
    const rootA = eptRootPage(EPTP, 0);
    const rootB = eptRootPage(other, 0);
    assert.equal(rootA * 4096, eptRoot(EPTP, 0));
    selectTlb(g.cpu, 1, rootA);
    fill(g.cpu, 1);
    const a = g.cpu.tlbs.current;
    selectTlb(g.cpu, 1, rootB);
    fill(g.cpu, 1); // through the same EPT context: only the tag matters here
    const b = g.cpu.tlbs.current;
    selectTlb(g.cpu, 0, NO_EPT);
    g.cpu.ept = null;
    fill(g.cpu, 1);
    const host = g.cpu.tlbs.current;
    inveptContext(g.cpu, rootA);
    assert.deepEqual([a.tag[1], b.tag[1], host.tag[1]], [-1, 1, 1]);
    inveptAll(g.cpu);
    assert.deepEqual([b.tag[1], host.tag[1]], [-1, 1], "mappings without EPT stay");
  });

  it("without VPIDs, entries and exits flush every VPID-0 bank, whatever its EPT root", () => {
    const g = guest();
    g.map(0x1000, 0x1000);
    selectTlb(g.cpu, 0, eptRootPage(EPTP, 0));
    fill(g.cpu, 1);
    const guest0 = g.cpu.tlbs.current;
    selectTlb(g.cpu, 1, eptRootPage(EPTP, 0));
    fill(g.cpu, 1);
    const guest1 = g.cpu.tlbs.current;
    flushVpidZero(g.cpu);
    assert.deepEqual([guest0.tag[1], guest1.tag[1]], [-1, 1]);
  });

  it("at most 8 banks: the least recently used one goes, never the current one", () => {
    const g = guest();
    g.map(0x1000, 0x1000);
    selectTlb(g.cpu, 0, NO_EPT); // the host's bank, current while guests come and go
    const host = g.cpu.tlbs.current;
    const root = eptRootPage(EPTP, 0);
    for (let vpid = 1; vpid <= 12; vpid++) g.cpu.tlbs.bank(vpid, root);
    const banks = g.cpu.tlbs.all();
    assert.equal(banks.length, 8);
    assert.ok(banks.includes(host));
    assert.deepEqual(
      banks.filter((b) => b !== host).map((b) => b.vpid),
      [6, 7, 8, 9, 10, 11, 12],
    );
  });

  it("a page that comes to hold cached code loses write permission in every bank", () => {
    const g = guest();
    g.map(0x2000, 0x2000);
    g.cpu.wr(0x2000, 1, 0x90);
    const guestBank = g.cpu.tlbs.current;
    assert.ok(guestBank.perm[2] & P_WS);
    selectTlb(g.cpu, 0, NO_EPT);
    g.cpu.ept = null;
    // Code on that page is decoded and cached: the code cache watches the page.
    g.cpu.code.insert(0x2000, new Instr());
    assert.equal(guestBank.perm[2] & P_WS, 0, "the guest's bank lost it too");
  });
});
