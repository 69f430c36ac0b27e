/**
 * The decoded-instruction cache (design.md, decision 4): instructions decoded once are
 * kept per physical page and reused until the page is written. A page with cached code
 * is "watched": CPU TLB entries lose their write permission for it, so every write goes
 * through the checked path, reaches PhysicalMemory.write and drops the page's cache.
 */
import { PAGE_SHIFT, type PhysicalMemory } from "../machine/memory.js";
import type { Instr } from "./decode.js";

export class CodeCache {
  /** Per RAM page: decoded instructions by page offset, or undefined. */
  private readonly pages: ((Instr | undefined)[] | undefined)[];
  /** Called when a page starts being watched, so TLBs can drop write permission. */
  private readonly watchers: ((page: number) => void)[] = [];

  constructor(private readonly mem: PhysicalMemory) {
    // Built element by element: V8 gives `new Array(n)` with a large n slow dictionary
    // elements, and this array is read for every instruction.
    this.pages = [];
    for (let p = 0; p < mem.ramSize >>> PAGE_SHIFT; p++) this.pages.push(undefined);
    mem.onWatchedWrite = (page) => this.invalidate(page);
  }

  /** The cached instruction at physical address `phys` (RAM only), or undefined. */
  lookup(phys: number): Instr | undefined {
    return this.pages[phys >>> PAGE_SHIFT]?.[phys & 0xfff];
  }

  /** Caches `instr`, decoded from physical address `phys` (within one page). */
  insert(phys: number, instr: Instr): void {
    const page = phys >>> PAGE_SHIFT;
    let entries = this.pages[page];
    if (entries === undefined) {
      entries = this.pages[page] = new Array<Instr | undefined>(4096).fill(undefined);
      this.mem.watched[page] = 1;
      for (const w of this.watchers) w(page);
    }
    entries[phys & 0xfff] = instr;
  }

  invalidate(page: number): void {
    this.pages[page] = undefined;
    this.mem.watched[page] = 0;
  }

  /** Registers a TLB owner to be told when a page becomes watched. */
  watch(onWatched: (page: number) => void): void {
    this.watchers.push(onWatched);
  }
}

/** The code cache of a PhysicalMemory, created on first use and shared by its vCPUs. */
const caches = new WeakMap<PhysicalMemory, CodeCache>();
export function codeCacheFor(mem: PhysicalMemory): CodeCache {
  let c = caches.get(mem);
  if (c === undefined) caches.set(mem, (c = new CodeCache(mem)));
  return c;
}
