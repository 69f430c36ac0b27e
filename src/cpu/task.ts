/**
 * Hardware task switching with 32-bit TSSs (SDM Vol. 3A, 9.3): far JMP/CALL to a TSS or
 * task gate, interrupts through task gates, and IRET with EFLAGS.NT.
 */
import {
  AR_DPL_SHIFT,
  AR_P,
  AR_S,
  AR_TYPE_CODE,
  AR_TYPE_EC,
  AR_TYPE_RW,
  CR0_PG,
  CR0_TS,
  CR4_PAE,
  CS,
  DS,
  ES,
  FS,
  GP,
  GS,
  NP,
  SS,
  SYS_LDT,
  SYS_TSS32_AVAIL,
  SYS_TSS32_BUSY,
  TS,
} from "./arch.js";
import { fault } from "./fault.js";
import { NT, VM } from "./flags.js";
import { loadPdptes } from "./mmu.js";
import { descriptorAr, descriptorBase, descriptorLimit } from "./segreg.js";
import { checkStackSegment, commitSegment, readDescriptor } from "./segment.js";
import type { Cpu } from "./cpu.js";
import { taskSwitchExit } from "./vmx/events.js";

export const enum TaskSwitchReason {
  Call,
  Iret,
  Jump,
  InterruptOrException,
}

// 32-bit TSS layout (SDM Vol. 3A, Figure 9-2).
const TSS_LINK = 0x00;
const TSS_CR3 = 0x1c;
const TSS_EIP = 0x20;
const TSS_EFLAGS = 0x24;
const TSS_EAX = 0x28; // then ECX, EDX, EBX, ESP, EBP, ESI, EDI
const TSS_ES = 0x48; // then CS, SS, DS, FS, GS
const TSS_LDT = 0x60;
/** Minimum limit of a 32-bit TSS. */
const TSS32_MIN_LIMIT = 0x67;
const BUSY_BIT = 1 << 9; // bit 1 of the type field in the descriptor's high dword

/** Switches to the task whose TSS selector is `sel`; `returnEip` is saved in the old TSS. */
export function taskSwitch(c: Cpu, sel: number, reason: TaskSwitchReason, returnEip: number): void {
  // In VMX non-root operation a task switch is a VM exit (vmx/events.ts).
  if (c.vmx.nonRoot) taskSwitchExit(c, sel, reason, returnEip);
  if (sel & 4) fault(GP, sel & 0xfffc); // a TSS descriptor must be in the GDT
  const [lo, hi] = readDescriptor(c, sel, GP);
  const type = (hi >> 8) & 0x1f;
  if (reason === TaskSwitchReason.Iret) {
    if (type !== SYS_TSS32_BUSY) fault(TS, sel & 0xfffc);
  } else if (type !== SYS_TSS32_AVAIL) {
    fault(GP, sel & 0xfffc);
  }
  if (!(hi & (AR_P << 8))) fault(NP, sel & 0xfffc);
  const newBase = descriptorBase(lo, hi);
  const newLimit = descriptorLimit(lo, hi);
  if (newLimit < TSS32_MIN_LIMIT) fault(TS, sel & 0xfffc);
  if (c.tr.limit < TSS32_MIN_LIMIT) fault(TS, c.tr.selector & 0xfffc);

  // Read the whole new state first, so a fault here leaves the old task intact.
  const rd = (off: number, size: 2 | 4 = 4): number => c.rdSys((newBase + off) | 0, size);
  const newCr3 = rd(TSS_CR3);
  const newEip = rd(TSS_EIP);
  let newFlags = rd(TSS_EFLAGS);
  const newRegs = Array.from({ length: 8 }, (_, k) => rd(TSS_EAX + 4 * k));
  const newSegs = Array.from({ length: 6 }, (_, k) => rd(TSS_ES + 4 * k, 2));
  const newLdt = rd(TSS_LDT, 2);

  // Save the outgoing task (9.3, step 8).
  const oldBase = c.tr.base;
  const wr = (off: number, v: number, size: 2 | 4 = 4): void =>
    c.wrSys((oldBase + off) | 0, size, v);
  let oldFlags = c.flags.get();
  if (reason === TaskSwitchReason.Iret) oldFlags &= ~NT;
  wr(TSS_EIP, returnEip);
  wr(TSS_EFLAGS, oldFlags);
  for (let k = 0; k < 8; k++) wr(TSS_EAX + 4 * k, c.regs[k]);
  for (let k = 0; k < 6; k++) wr(TSS_ES + 4 * k, c.segs[k].selector, 2);

  // Busy flags: the old task stays busy only when it is nested (CALL, interrupt).
  if (reason === TaskSwitchReason.Jump || reason === TaskSwitchReason.Iret) {
    const [, ohi] = readDescriptor(c, c.tr.selector, GP);
    c.wrSys((c.gdtrBase + (c.tr.selector & 0xfff8) + 4) | 0, 4, ohi & ~BUSY_BIT);
  }
  if (reason === TaskSwitchReason.Call || reason === TaskSwitchReason.InterruptOrException) {
    c.wrSys((newBase + TSS_LINK) | 0, 2, c.tr.selector);
    newFlags |= NT;
  }
  if (reason !== TaskSwitchReason.Iret) {
    c.wrSys((c.gdtrBase + (sel & 0xfff8) + 4) | 0, 4, hi | BUSY_BIT);
  }

  // Load the new task: from here on faults belong to the new task (9.3, step 13).
  c.tr.set(sel, newBase, newLimit, descriptorAr(hi) | (BUSY_BIT >> 8));
  c.cr0 |= CR0_TS;
  if (c.cr0 & CR0_PG) {
    c.cr3 = newCr3;
    if (c.cr4 & CR4_PAE) loadPdptes(c);
    c.flushTlb(false);
  }
  c.flags.load(newFlags);
  c.eip = c.nextEip = newEip >>> 0;
  for (let k = 0; k < 8; k++) c.regs[k] = newRegs[k];
  // Selectors first, with unusable caches, so a fault below reports the new task's state.
  for (let k = 0; k < 6; k++) c.segs[k].set(newSegs[k], 0, 0, 0x10000);
  c.ldtr.set(newLdt, 0, 0, 0x10000);

  if (newFlags & VM) {
    for (let k = 0; k < 6; k++) {
      c.segs[k].set(
        newSegs[k],
        newSegs[k] << 4,
        0xffff,
        AR_P | AR_S | AR_TYPE_RW | (3 << AR_DPL_SHIFT),
      );
    }
    const cs = c.segs[CS];
    cs.set(cs.selector, cs.base, cs.limit, cs.ar | AR_TYPE_CODE);
    c.cpl = 3;
    c.modeChanged();
    return;
  }
  loadTaskLdt(c, newLdt);
  const cpl = newSegs[CS] & 3;
  c.cpl = cpl;
  c.modeChanged();
  loadTaskCode(c, newSegs[CS], cpl);
  loadTaskStack(c, newSegs[SS], cpl);
  for (const s of [ES, DS, FS, GS]) loadTaskData(c, s, newSegs[s], cpl);
}

function loadTaskLdt(c: Cpu, sel: number): void {
  if ((sel & 0xfffc) === 0) return;
  if (sel & 4) fault(TS, sel & 0xfffc);
  const [lo, hi] = readDescriptor(c, sel, TS);
  if (((hi >> 8) & 0x1f) !== SYS_LDT) fault(TS, sel & 0xfffc);
  if (!(hi & (AR_P << 8))) fault(TS, sel & 0xfffc);
  c.ldtr.set(sel, descriptorBase(lo, hi), descriptorLimit(lo, hi), descriptorAr(hi));
}

function loadTaskCode(c: Cpu, sel: number, cpl: number): void {
  if ((sel & 0xfffc) === 0) fault(TS, 0);
  const [lo, hi] = readDescriptor(c, sel, TS);
  const ar = descriptorAr(hi);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  if ((ar & (AR_S | AR_TYPE_CODE)) !== (AR_S | AR_TYPE_CODE)) fault(TS, sel & 0xfffc);
  const conforming = (ar & AR_TYPE_EC) !== 0;
  if (conforming ? dpl > cpl : dpl !== cpl) fault(TS, sel & 0xfffc);
  if (!(ar & AR_P)) fault(NP, sel & 0xfffc);
  commitSegment(c, c.segs[CS], sel, lo, hi);
}

function loadTaskStack(c: Cpu, sel: number, cpl: number): void {
  const [lo, hi] = checkStackSegment(c, sel, cpl, TS);
  commitSegment(c, c.segs[SS], sel, lo, hi);
}

function loadTaskData(c: Cpu, seg: number, sel: number, cpl: number): void {
  if ((sel & 0xfffc) === 0) {
    c.segs[seg].set(sel, 0, 0, 0x10000);
    return;
  }
  const [lo, hi] = readDescriptor(c, sel, TS);
  const ar = descriptorAr(hi);
  const code = (ar & AR_TYPE_CODE) !== 0;
  if (!(ar & AR_S) || (code && !(ar & AR_TYPE_RW))) fault(TS, sel & 0xfffc);
  const dpl = (ar >> AR_DPL_SHIFT) & 3;
  if (!(code && ar & AR_TYPE_EC) && (dpl < cpl || dpl < (sel & 3))) fault(TS, sel & 0xfffc);
  if (!(ar & AR_P)) fault(NP, sel & 0xfffc);
  commitSegment(c, c.segs[seg], sel, lo, hi);
}
