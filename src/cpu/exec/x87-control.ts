/**
 * x87 control instructions (SDM Vol. 1, 8.3.11 and 8.1.10): FNINIT, FNCLEX, the status and
 * control words, the environment and the whole state (FNSTENV/FLDENV, FNSAVE/FRSTOR) in
 * their 16- and 32-bit, real- and protected-mode layouts, WAIT, and the stack-management
 * instructions FFREE, FINCSTP, FDECSTP and FNOP.
 */
import { CR0_MP, CR0_NE, CR0_TS, EAX, MF, NM } from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { fault } from "../fault.js";
import { FSW_C1, FSW_EXCEPTIONS, FSW_B, FSW_ES, FSW_SF, type FpuState } from "../fpu.js";
import type { Handler } from "../opcodes.js";
import { begin, Kind, operand, read80, write80 } from "./x87-common.js";
import { setReg } from "./operands.js";

/** FNINIT (DB E3). */
export const fninit: Handler = (c, i) => begin(c, i, Kind.NoWait).fninit();

/** FNCLEX (DB E2): clears the exception flags, SF, ES and B. */
export const fnclex: Handler = (c, i) => {
  const f = begin(c, i, Kind.NoWait);
  f.fsw &= ~(FSW_EXCEPTIONS | FSW_SF | FSW_ES | FSW_B);
};

/** FNSTSW AX (DF E0). */
export const fnstswAx: Handler = (c, i) => {
  const f = begin(c, i, Kind.NoWait);
  setReg(c, EAX, 16, f.statusWord);
};

/** FNSTSW m2byte (DD /7). */
export const fnstswM: Handler = (c, i) => {
  const f = begin(c, i, Kind.NoWait);
  c.wr(operand(c, i, 2, true), 2, f.statusWord);
};

/** FNSTCW m2byte (D9 /7). */
export const fnstcw: Handler = (c, i) => {
  const f = begin(c, i, Kind.NoWait);
  c.wr(operand(c, i, 2, true), 2, f.fcw);
};

/** FLDCW m2byte (D9 /5): unmasking a raised exception makes it pending (ES). */
export const fldcw: Handler = (c, i) => {
  const f = begin(c, i, Kind.WaitingControl);
  f.setControlWord(c.rd(operand(c, i, 2, false), 2));
};

/**
 * WAIT/FWAIT (9B): #NM when CR0.MP and CR0.TS are both set (SDM Vol. 3A, Table 2-2), else
 * a pending unmasked x87 exception is reported (#MF with CR0.NE).
 */
export const fwait: Handler = (c) => {
  if ((c.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) fault(NM);
  if (c.fpu.pending && c.cr0 & CR0_NE) fault(MF);
};

/** FNOP (D9 D0), and FNENI, FNDISI, FNSETPM (DB E0, E1, E4), which do nothing since the 387. */
export const fnop: Handler = (c, i) => {
  begin(c, i, Kind.Numeric);
};

/** FFREE ST(i) (DD C0+i): tags ST(i) empty; TOP does not move. */
export const ffree: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  f.empty |= 1 << f.phys(i.rm & 7);
};

/** FINCSTP (D9 F7) and FDECSTP (D9 F6): rotate TOP; the tags stay; C1 cleared. */
export const fincdecstp =
  (delta: number): Handler =>
  (c, i) => {
    const f = begin(c, i, Kind.Numeric);
    f.top = (f.top + delta) & 7;
    f.fsw &= ~FSW_C1;
  };

// ---- the environment (SDM Vol. 1, 8.1.10, Figures 8-9 to 8-12) ----

/** Real-address and virtual-8086 mode use the real-mode layouts. */
const realLayout = (c: Cpu): boolean => !c.protectedMode || c.v86;

/** Bytes of the environment: 14 with a 16-bit operand size, else 28. */
const envSize = (i: Instr): number => (i.osize === 16 ? 14 : 28);

/** The 20/32-bit linear form of a pointer that real-mode layouts store. */
const realPointer = (sel: number, off: number): number => ((sel << 4) + (off >>> 0)) >>> 0;

function storeEnv(c: Cpu, i: Instr, f: FpuState, lin: number): void {
  const ip = realPointer(f.fcs, f.fip);
  const dp = realPointer(f.fds, f.fdp);
  const fop = f.fop & 0x7ff;
  if (i.osize === 16) {
    const w = [f.fcw, f.statusWord, f.tagWord];
    if (realLayout(c)) {
      w.push(ip & 0xffff, ((ip >>> 4) & 0xf000) | fop, dp & 0xffff, (dp >>> 4) & 0xf000);
    } else w.push(f.fip & 0xffff, f.fcs, f.fdp & 0xffff, f.fds);
    w.forEach((v, k) => c.wr(lin + 2 * k, 2, v));
    return;
  }
  // 32-bit layouts: the upper halves of the word fields are reserved and stored as ones.
  const d = [f.fcw, f.statusWord, f.tagWord].map((v) => v | 0xffff0000);
  if (realLayout(c)) {
    d.push(
      (ip & 0xffff) | 0xffff0000,
      ((ip >>> 16) << 12) | fop,
      (dp & 0xffff) | 0xffff0000,
      (dp >>> 16) << 12,
    );
  } else d.push(f.fip, f.fcs | (fop << 16), f.fdp, f.fds | 0xffff0000);
  d.forEach((v, k) => c.wr(lin + 4 * k, 4, v | 0));
}

function loadEnv(c: Cpu, i: Instr, f: FpuState, lin: number): void {
  const wide = i.osize !== 16;
  const at = (k: number): number => (wide ? c.rd(lin + 4 * k, 4) : c.rd(lin + 2 * k, 2));
  const [cw, sw, tw, a, b, d, e] = [0, 1, 2, 3, 4, 5, 6].map(at);
  f.setControlWord(cw);
  f.statusWord = sw;
  f.tagWord = tw & 0xffff;
  f.fipHi = f.fdpHi = 0;
  if (realLayout(c)) {
    f.fcs = f.fds = 0;
    f.fop = b & 0x7ff;
    f.fip = wide ? (a & 0xffff) | ((b >>> 12) << 16) : (a & 0xffff) | ((b & 0xf000) << 4);
    f.fdp = wide ? (d & 0xffff) | ((e >>> 12) << 16) : (d & 0xffff) | ((e & 0xf000) << 4);
  } else {
    f.fip = wide ? a : a & 0xffff;
    f.fcs = b & 0xffff;
    f.fop = wide ? (b >>> 16) & 0x7ff : f.fop;
    f.fdp = wide ? d : d & 0xffff;
    f.fds = e & 0xffff;
  }
}

/** FNSTENV m14/28byte (D9 /6): then masks every exception (SDM Vol. 2, FSTENV). */
export const fnstenv: Handler = (c, i) => {
  const f = begin(c, i, Kind.NoWait);
  const lin = operand(c, i, envSize(i), true);
  storeEnv(c, i, f, lin);
  f.fcw |= FSW_EXCEPTIONS;
};

/** FLDENV m14/28byte (D9 /4). */
export const fldenv: Handler = (c, i) => {
  const f = begin(c, i, Kind.WaitingControl);
  loadEnv(c, i, f, operand(c, i, envSize(i), false));
};

/** FNSAVE m94/108byte (DD /6): the environment, ST(0)..ST(7), then FNINIT. */
export const fnsave: Handler = (c, i) => {
  const f = begin(c, i, Kind.NoWait);
  const env = envSize(i);
  const lin = operand(c, i, env + 80, true);
  storeEnv(c, i, f, lin);
  for (let k = 0; k < 8; k++) write80(c, lin + env + 10 * k, f, f.phys(k));
  f.fninit();
};

/** FRSTOR m94/108byte (DD /4). */
export const frstor: Handler = (c, i) => {
  const f = begin(c, i, Kind.WaitingControl);
  const env = envSize(i);
  const lin = operand(c, i, env + 80, false);
  // Every read comes before any change, so a fault leaves the state as it was.
  const regs = Array.from({ length: 8 }, (_, k) => read80(c, lin + env + 10 * k));
  loadEnv(c, i, f, lin);
  regs.forEach((r, k) => {
    const p = f.phys(k);
    f.sigLo[p] = r.lo;
    f.sigHi[p] = r.hi;
    f.se[p] = r.se;
  });
};
