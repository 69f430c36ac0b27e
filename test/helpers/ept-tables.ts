/**
 * Builds EPT paging structures in guest RAM for the VMX tests: tables are taken from
 * consecutive pages after the PML4 as a walk needs them, and every non-leaf entry grants
 * read, write and execute, so a test controls access with the leaf alone (SDM Vol. 3C,
 * 29.3.2).
 */
import { EPT_R, EPT_W, EPT_X } from "../../src/cpu/vmx/ept.js";
import type { PhysicalMemory } from "../../src/machine/memory.js";

export const EPT_RWX = EPT_R | EPT_W | EPT_X;

/**
 * Returns entryAt(gpa, depth): the physical address of the entry at `depth` (0 = PML4E,
 * 3 = PTE) that translates `gpa` under the PML4 at `pml4`, creating the tables above it.
 */
export function eptTables(
  mem: PhysicalMemory,
  pml4: number,
): (gpa: number, depth: number) => number {
  let next = pml4 + 0x1000;
  return (gpa, depth) => {
    let table = pml4;
    for (let d = 0; ; d++) {
      const addr = table + (Math.floor(gpa / 2 ** (39 - 9 * d)) % 512) * 8;
      if (d === depth) return addr;
      let lo = mem.read(addr, 4);
      if ((lo & 7) === 0) {
        lo = next | EPT_RWX;
        next += 0x1000;
        mem.write(addr, 4, lo);
      }
      table = lo & ~0xfff;
    }
  };
}
