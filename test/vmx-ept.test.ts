/**
 * The EPT walker on its own (src/cpu/vmx/ept.ts; SDM Vol. 3C, 29.3): EPTP validation,
 * 4-level walks with 4 KiB, 2 MiB and 1 GiB leaves, permissions and execute-only pages,
 * misconfigurations, violations with their qualification bits, and the accessed and dirty
 * flags of EPTP bit 6. The EPT paging structures are built by hand in physical memory.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ACCESS_FETCH,
  ACCESS_READ,
  ACCESS_WRITE,
  CAP_EPT_AD,
  CAP_PDE_2MB,
  CAP_PDPTE_1GB,
  CAP_PWL4,
  EPT_A,
  EPT_D,
  EPT_PS,
  EPT_R,
  EPT_VPID_CAP_HI,
  EPT_VPID_CAP_LO,
  EPT_W,
  EPT_X,
  EPTP_AD,
  EptOutcome,
  EptWalk,
  eptWalk,
  eptpProblem,
  invvpidTypeSupported,
  inveptTypeSupported,
  QUAL_EXECUTABLE,
  QUAL_READ,
  QUAL_READABLE,
  QUAL_WRITABLE,
  QUAL_WRITE,
} from "../src/cpu/vmx/ept.js";
import { PhysicalMemory } from "../src/machine/memory.js";
import { eptTables } from "./helpers/ept-tables.js";

const RWX = EPT_R | EPT_W | EPT_X;
const WB = 6 << 3; // leaf memory type WB
const PML4 = 0x10000;
/** EPTP: WB, 4-level walk, the PML4 at PML4. */
const EPTP = PML4 | 0x1e;

interface Ept {
  mem: PhysicalMemory;
  /** Physical address of the entry at `depth` (0 = PML4E) for `gpa`, creating tables. */
  entryAt(gpa: number, depth: number): number;
  set(addr: number, lo: number, hi?: number): void;
  get(addr: number): number;
  /** Maps the 4 KiB page at `gpa` to `hpa` with `flags`; upper levels RWX. */
  map4k(gpa: number, hpa: number, flags?: number): number;
  walk(gpa: number, access: number, eptp?: number): EptWalk;
}

function ept(): Ept {
  const mem = new PhysicalMemory(4 << 20);
  const entryAt = eptTables(mem, PML4);
  const set = (addr: number, lo: number, hi = 0) => {
    mem.write(addr, 4, lo >>> 0);
    mem.write(addr + 4, 4, hi >>> 0);
  };
  const out = new EptWalk();
  return {
    mem,
    entryAt,
    set,
    get: (addr) => mem.read(addr, 4),
    map4k(gpa, hpa, flags = RWX | WB) {
      const a = entryAt(gpa, 3);
      set(a, (hpa % 2 ** 32) + flags, Math.floor(hpa / 2 ** 32));
      return a;
    },
    walk: (gpa, access, eptp = EPTP) => eptWalk(mem, eptp, 0, gpa, access, out),
  };
}

describe("EPTP validation (SDM Vol. 3C, 27.2.1.1)", () => {
  it("accepts WB and UC with a 4-level walk, and bit 6 with EPT A/D support", () => {
    assert.equal(eptpProblem(0x12345000 | 0x1e, 0), null);
    assert.equal(eptpProblem(0x12345000 | 0x18, 0), null);
    assert.equal(eptpProblem(0x12345000 | 0x5e, 0x0000000f), null);
    assert.ok(EPT_VPID_CAP_LO & CAP_EPT_AD);
  });
  it("rejects other memory types, other walk lengths and reserved bits", () => {
    for (const type of [1, 2, 3, 4, 5, 7])
      assert.match(eptpProblem(0x18 | type, 0)!, /memory type/);
    assert.match(eptpProblem(0x16, 0)!, /page-walk length 3/);
    assert.match(eptpProblem(0x26, 0)!, /page-walk length 5/);
    assert.match(eptpProblem(0x1e | 0x80, 0)!, /11:7/);
    assert.match(eptpProblem(0x1e | 0x800, 0)!, /11:7/);
    assert.match(eptpProblem(0x1e, 0x10)!, /63:36/);
    assert.match(eptpProblem(0x1e, 0x80000000)!, /63:36/);
  });
  it("advertises what is implemented: 4-level walks, 2 MiB and 1 GiB pages, INVEPT/INVVPID types", () => {
    assert.ok(EPT_VPID_CAP_LO & CAP_PWL4 && EPT_VPID_CAP_LO & CAP_PDE_2MB);
    assert.ok(EPT_VPID_CAP_LO & CAP_PDPTE_1GB);
    assert.deepEqual([0, 1, 2, 3].map(inveptTypeSupported), [false, true, true, false]);
    assert.deepEqual([0, 1, 2, 3, 4].map(invvpidTypeSupported), [true, true, true, true, false]);
    assert.equal(EPT_VPID_CAP_HI & 1, 1);
  });
});

describe("EPT walks (SDM Vol. 3C, 29.3.2)", () => {
  it("translates through four levels to a 4 KiB page, keeping the page offset", () => {
    const e = ept();
    e.map4k(0x12345000, 0x2a7000);
    const w = e.walk(0x12345abc, ACCESS_READ);
    assert.equal(w.outcome, EptOutcome.Ok);
    assert.equal(w.hpa, 0x2a7abc);
    assert.equal(w.perm, RWX);
  });
  it("translates guest-physical addresses above 4 GiB and to host-physical ones above 4 GiB", () => {
    const e = ept();
    e.map4k(0x5_0000_1000, 0xa_8765_4000);
    const w = e.walk(0x5_0000_1ff8, ACCESS_WRITE);
    assert.equal(w.outcome, EptOutcome.Ok);
    assert.equal(w.hpa, 0xa_8765_4ff8);
  });
  it("maps 2 MiB pages with a PDE and 1 GiB pages with a PDPTE", () => {
    const e = ept();
    e.set(e.entryAt(0x4060_0000, 2), 0x0aa0_0000 | EPT_PS | RWX | WB, 0x1);
    const w2 = e.walk(0x4071_2345, ACCESS_FETCH);
    assert.equal(w2.outcome, EptOutcome.Ok);
    assert.equal(w2.hpa, 0x1_0ab1_2345);
    e.set(e.entryAt(0x8000_0000, 1), 0xc000_0000 | EPT_PS | RWX | WB, 0x2);
    const w1 = e.walk(0xbfed_cba9, ACCESS_READ);
    assert.equal(w1.outcome, EptOutcome.Ok);
    assert.equal(w1.hpa, 0x2_ffed_cba9);
  });
  it("combines permissions over all levels", () => {
    const e = ept();
    e.map4k(0x3000, 0x9000);
    const pdpte = e.entryAt(0x3000, 1);
    e.set(pdpte, (e.get(pdpte) & ~7) | EPT_R | EPT_X);
    const w = e.walk(0x3000, ACCESS_READ);
    assert.equal(w.outcome, EptOutcome.Ok);
    assert.equal(w.perm, EPT_R | EPT_X);
    const v = e.walk(0x3000, ACCESS_WRITE);
    assert.equal(v.outcome, EptOutcome.Violation);
    assert.equal(v.qualification, QUAL_WRITE | QUAL_READABLE | QUAL_EXECUTABLE);
  });
});

describe("EPT violations (SDM Vol. 3C, 29.3.3.2 and Table 28-7)", () => {
  it("a not-present entry: the access bits, no permission bits, and where the walk stopped", () => {
    const e = ept();
    e.map4k(0x200000, 0x9000);
    const pde = e.entryAt(0x400000, 2);
    const v = e.walk(0x400123, ACCESS_READ);
    assert.equal(v.outcome, EptOutcome.Violation);
    assert.equal(v.qualification, QUAL_READ);
    assert.equal(v.entryAddr, pde);
    assert.equal(v.level, 2);
  });
  it("a read-only page: writes violate (readable and executable reported), reads do not", () => {
    const e = ept();
    e.map4k(0x5000, 0x6000, EPT_R | EPT_X | WB);
    assert.equal(e.walk(0x5010, ACCESS_READ).outcome, EptOutcome.Ok);
    const v = e.walk(0x5010, ACCESS_WRITE);
    assert.equal(v.outcome, EptOutcome.Violation);
    assert.equal(v.qualification, QUAL_WRITE | QUAL_READABLE | QUAL_EXECUTABLE);
    // A read-modify-write asks for both.
    const rmw = e.walk(0x5010, ACCESS_READ | ACCESS_WRITE);
    assert.equal(rmw.qualification, QUAL_READ | QUAL_WRITE | QUAL_READABLE | QUAL_EXECUTABLE);
  });
  it("a non-executable page: fetches violate", () => {
    const e = ept();
    e.map4k(0x5000, 0x6000, EPT_R | EPT_W | WB);
    const v = e.walk(0x5000, ACCESS_FETCH);
    assert.equal(v.outcome, EptOutcome.Violation);
    assert.equal(v.qualification, ACCESS_FETCH | QUAL_READABLE | QUAL_WRITABLE);
  });
  it("an execute-only page (advertised): fetches work, reads violate", () => {
    const e = ept();
    e.map4k(0x5000, 0x6000, EPT_X | WB);
    assert.equal(e.walk(0x5000, ACCESS_FETCH).outcome, EptOutcome.Ok);
    const v = e.walk(0x5000, ACCESS_READ);
    assert.equal(v.outcome, EptOutcome.Violation);
    assert.equal(v.qualification, QUAL_READ | QUAL_EXECUTABLE);
  });
});

describe("EPT misconfigurations (SDM Vol. 3C, 29.3.3.1)", () => {
  const cases: [string, (e: Ept) => void][] = [
    ["write-only leaf (010b)", (e) => e.map4k(0x7000, 0x8000, EPT_W | WB)],
    ["write+execute leaf (110b)", (e) => e.map4k(0x7000, 0x8000, EPT_W | EPT_X | WB)],
    [
      "write-only PDE referencing a table",
      (e) => {
        e.map4k(0x7000, 0x8000);
        const pde = e.entryAt(0x7000, 2);
        e.set(pde, (e.get(pde) & ~7) | EPT_W);
      },
    ],
    ["memory type 2", (e) => e.map4k(0x7000, 0x8000, RWX | (2 << 3))],
    ["memory type 3", (e) => e.map4k(0x7000, 0x8000, RWX | (3 << 3))],
    ["memory type 7", (e) => e.map4k(0x7000, 0x8000, RWX | (7 << 3))],
    [
      "bit 7 (large page) in a PML4E",
      (e) => {
        e.map4k(0x7000, 0x8000);
        const pml4e = e.entryAt(0x7000, 0);
        e.set(pml4e, e.get(pml4e) | EPT_PS);
      },
    ],
    [
      "reserved bits 6:3 in a PDPTE that references a table",
      (e) => {
        e.map4k(0x7000, 0x8000);
        const pdpte = e.entryAt(0x7000, 1);
        e.set(pdpte, e.get(pdpte) | (6 << 3));
      },
    ],
    [
      "reserved bits 20:12 of a 2 MiB leaf",
      (e) => e.set(e.entryAt(0x7000, 2), 0x0020_1000 | EPT_PS | RWX | WB),
    ],
    [
      "reserved bits 29:12 of a 1 GiB leaf",
      (e) => e.set(e.entryAt(0x7000, 1), 0x0020_0000 | EPT_PS | RWX | WB),
    ],
    [
      "an address bit beyond MAXPHYADDR (36)",
      (e) => {
        const a = e.map4k(0x7000, 0x8000);
        e.set(a, e.get(a), 0x10);
      },
    ],
  ];
  for (const [name, build] of cases) {
    it(name, () => {
      const e = ept();
      build(e);
      assert.equal(e.walk(0x7000, ACCESS_READ).outcome, EptOutcome.Misconfig);
    });
  }
  it("takes priority over a permission violation found higher up", () => {
    const e = ept();
    e.map4k(0x7000, 0x8000, RWX | (7 << 3));
    const pml4e = e.entryAt(0x7000, 0);
    e.set(pml4e, (e.get(pml4e) & ~7) | EPT_R);
    assert.equal(e.walk(0x7000, ACCESS_WRITE).outcome, EptOutcome.Misconfig);
  });
  it("is not looked for below a not-present entry, nor in bits 63:52 (ignored)", () => {
    const e = ept();
    e.map4k(0x7000, 0x8000, RWX | (7 << 3));
    const pde = e.entryAt(0x7000, 2);
    e.set(pde, e.get(pde) & ~7);
    assert.equal(e.walk(0x7000, ACCESS_READ).outcome, EptOutcome.Violation);
    const f = ept();
    const a = f.map4k(0x7000, 0x8000);
    f.set(a, f.get(a), 0xfff00000);
    assert.equal(f.walk(0x7000, ACCESS_READ).outcome, EptOutcome.Ok);
  });
});

describe("EPT accessed and dirty flags (SDM Vol. 3C, 29.3.4)", () => {
  it("with EPTP bit 6: a read sets A in every entry used; a write sets D in the leaf", () => {
    const e = ept();
    const pte = e.map4k(0x7000, 0x8000);
    const entries = [0, 1, 2].map((d) => e.entryAt(0x7000, d));
    const r = e.walk(0x7000, ACCESS_READ, EPTP | EPTP_AD);
    assert.equal(r.outcome, EptOutcome.Ok);
    assert.equal(r.dirty, false, "a clean leaf: writes must walk again");
    for (const a of [...entries, pte]) assert.ok(e.get(a) & EPT_A, `A at ${a.toString(16)}`);
    for (const a of [...entries, pte]) assert.equal(e.get(a) & EPT_D, 0);
    const w = e.walk(0x7000, ACCESS_WRITE, EPTP | EPTP_AD);
    assert.equal(w.dirty, true);
    assert.ok(e.get(pte) & EPT_D);
    for (const a of entries) assert.equal(e.get(a) & EPT_D, 0, "D only in the leaf");
  });
  it("D goes into a 2 MiB leaf", () => {
    const e = ept();
    const pde = e.entryAt(0x600000, 2);
    e.set(pde, 0x200000 | EPT_PS | RWX | WB);
    e.walk(0x600010, ACCESS_WRITE, EPTP | EPTP_AD);
    assert.equal(e.get(pde) & (EPT_A | EPT_D), EPT_A | EPT_D);
  });
  it("without bit 6 nothing is written, and a violation sets no flag", () => {
    const e = ept();
    const pte = e.map4k(0x7000, 0x8000);
    e.walk(0x7000, ACCESS_WRITE);
    assert.equal(e.get(pte) & (EPT_A | EPT_D), 0);
    assert.equal(e.walk(0x7000, ACCESS_READ).dirty, true);
    const ro = e.map4k(0x9000, 0xa000, EPT_R | WB);
    e.walk(0x9000, ACCESS_WRITE, EPTP | EPTP_AD);
    assert.equal(e.get(ro) & (EPT_A | EPT_D), 0);
  });
});
