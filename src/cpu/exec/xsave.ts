/**
 * FXSAVE/FXRSTOR (SDM Vol. 1, 10.5, Table 10-2 and 10-3), XGETBV/XSETBV and XSAVE/XRSTOR in
 * the standard format (SDM Vol. 1, chapter 13). The legacy region (bytes 0-511) is the
 * FXSAVE image for both; the XSAVE header follows at byte 512. The state components are
 * x87 (0) and SSE (1), both in the legacy region (fpu.ts, XCR0_SUPPORTED).
 */
import { CR0_EM, CR0_TS, CR4_OSXSAVE, EAX, ECX, EDX, GP, NM, UD } from "../arch.js";
import type { Cpu } from "../cpu.js";
import type { Instr } from "../decode.js";
import { fault } from "../fault.js";
import {
  FCW_INIT,
  MXCSR_MASK,
  XCR0_AVX,
  XCR0_SSE,
  XCR0_SUPPORTED,
  XCR0_X87,
  XSAVE_AREA_SIZE,
  type FpuState,
} from "../fpu.js";
import type { Handler } from "../opcodes.js";
import { memAddr } from "./operands.js";
import { read80, write80 } from "./x87-common.js";

/** Offsets in the legacy region (SDM Vol. 1, Table 10-2). */
const FCW = 0;
const FSW = 2;
const FTW = 4;
const FOP = 6;
const FIP = 8;
const FCS = 12;
const FDP = 16;
const FDS = 20;
const MXCSR = 24;
const MXCSR_MASK_AT = 28;
const ST0 = 32;
const XMM0 = 160;
/** The XSAVE header: XSTATE_BV, XCOMP_BV, then reserved bytes (SDM Vol. 1, 13.4.2). */
const XSTATE_BV = 512;
const XCOMP_BV = 520;

/** The XMM registers a save or restore covers: 16 in 64-bit mode, else 8. */
const xmmCount = (c: Cpu): number => (c.mode64 ? 16 : 8);

/** The x87 part of the legacy region; `wide` is the REX.W format with 64-bit FIP/FDP. */
function saveX87(c: Cpu, f: FpuState, lin: number, wide: boolean): void {
  c.wr(lin + FCW, 2, f.fcw);
  c.wr(lin + FSW, 2, f.statusWord);
  c.wr(lin + FTW, 2, f.abridgedTag); // and the reserved byte 5: zero
  c.wr(lin + FOP, 2, f.fop & 0x7ff);
  c.wr(lin + FIP, 4, f.fip);
  // FCS and FDS with two reserved bytes each, or in the REX.W format FIP/FDP bits 63:32.
  c.wr(lin + FCS, 4, wide ? f.fipHi : f.fcs & 0xffff);
  c.wr(lin + FDP, 4, f.fdp);
  c.wr(lin + FDS, 4, wide ? f.fdpHi : f.fds & 0xffff);
  for (let k = 0; k < 8; k++) {
    const at = lin + ST0 + 16 * k;
    write80(c, at, f, f.phys(k));
    c.wr(at + 10, 2, 0);
    c.wr(at + 12, 4, 0);
  }
}

function loadX87(c: Cpu, f: FpuState, lin: number, wide: boolean): void {
  // Read first, then change: a fault on the way leaves the state as it was.
  const fcw = c.rd(lin + FCW, 2);
  const fsw = c.rd(lin + FSW, 2);
  const ftw = c.rd(lin + FTW, 1);
  const fop = c.rd(lin + FOP, 2) & 0x7ff;
  const ip = [c.rd(lin + FIP, 4), c.rd(lin + FCS, 4)];
  const dp = [c.rd(lin + FDP, 4), c.rd(lin + FDS, 4)];
  const regs = Array.from({ length: 8 }, (_, k) => read80(c, lin + ST0 + 16 * k));
  f.setControlWord(fcw);
  f.statusWord = fsw;
  f.abridgedTag = ftw;
  f.fop = fop;
  f.fip = ip[0];
  f.fdp = dp[0];
  if (wide) {
    f.fipHi = ip[1];
    f.fdpHi = dp[1];
    f.fcs = f.fds = 0;
  } else {
    f.fipHi = f.fdpHi = 0;
    f.fcs = ip[1] & 0xffff;
    f.fds = dp[1] & 0xffff;
  }
  regs.forEach((r, k) => {
    const p = f.phys(k);
    f.sigLo[p] = r.lo;
    f.sigHi[p] = r.hi;
    f.se[p] = r.se;
  });
}

function saveMxcsr(c: Cpu, f: FpuState, lin: number): void {
  c.wr(lin + MXCSR, 4, f.mxcsr);
  c.wr(lin + MXCSR_MASK_AT, 4, MXCSR_MASK);
}

/** MXCSR from an image: reserved bits raise #GP(0) before anything changes. */
function checkMxcsr(c: Cpu, lin: number): number {
  const v = c.rd(lin + MXCSR, 4);
  if (v & ~MXCSR_MASK) fault(GP, 0);
  return v;
}

function saveXmm(c: Cpu, f: FpuState, lin: number): void {
  const n = xmmCount(c) * 16;
  for (let k = 0; k < n; k += 4) {
    const x = f.xmm;
    c.wr(lin + XMM0 + k, 4, x[k] | (x[k + 1] << 8) | (x[k + 2] << 16) | (x[k + 3] << 24));
  }
}

function readXmm(c: Cpu, lin: number): Uint8Array {
  const bytes = new Uint8Array(xmmCount(c) * 16);
  for (let k = 0; k < bytes.length; k++) bytes[k] = c.rd(lin + XMM0 + k, 1);
  return bytes;
}

/**
 * The memory operand of FXSAVE/FXRSTOR (512 bytes, 16-byte aligned) or XSAVE/XRSTOR (64):
 * #GP(0) when misaligned, whatever the segment (SDM Vol. 2, FXSAVE and XSAVE).
 */
function area(c: Cpu, i: Instr, size: number, align: number, write: boolean): number {
  const lin = memAddr(c, i, size, write);
  if (lin & (align - 1)) fault(GP, 0);
  if (write) c.probeWrite(lin, size);
  return lin;
}

/** FXSAVE/FXRSTOR: #UD with CR0.EM, #NM with CR0.TS (SDM Vol. 2, FXSAVE exceptions). */
function fxAvailable(c: Cpu): FpuState {
  if (c.cr0 & CR0_EM) fault(UD);
  if (c.cr0 & CR0_TS) fault(NM);
  return c.fpu;
}

/**
 * FXSAVE m512byte (0F AE /0), REX.W for the 64-bit format. It does not wait for pending
 * x87 exceptions. The XMM registers and MXCSR are saved whatever CR4.OSFXSR says: the SDM
 * leaves that to the implementation, and most save them. Bytes 464-511 are left alone.
 */
export const fxsave: Handler = (c, i) => {
  const f = fxAvailable(c);
  const lin = area(c, i, 512, 16, true);
  saveX87(c, f, lin, i.osize === 64);
  saveMxcsr(c, f, lin);
  saveXmm(c, f, lin);
};

/** FXRSTOR m512byte (0F AE /1). */
export const fxrstor: Handler = (c, i) => {
  const f = fxAvailable(c);
  const lin = area(c, i, 512, 16, false);
  const mxcsr = checkMxcsr(c, lin);
  const xmm = readXmm(c, lin);
  loadX87(c, f, lin, i.osize === 64);
  f.mxcsr = mxcsr;
  f.xmm.set(xmm);
};

// ---- XSAVE (SDM Vol. 1, chapter 13; Vol. 2, XSAVE, XRSTOR, XGETBV, XSETBV) ----

/** XSAVE-family instructions: #UD without CR4.OSXSAVE; the state ones #NM with CR0.TS. */
function xsaveEnabled(c: Cpu, state: boolean): FpuState {
  if (!(c.cr4 & CR4_OSXSAVE)) fault(UD);
  if (state && c.cr0 & CR0_TS) fault(NM);
  return c.fpu;
}

/**
 * XINUSE: the components not in their initial configuration (SDM Vol. 1, 13.6). x87: FCW
 * 037FH, FSW 0, all tags empty, pointers and opcode 0, registers 0. SSE: XMM registers 0
 * (MXCSR does not count).
 */
export function xinuse(f: FpuState): number {
  let use = 0;
  const x87Init =
    f.fcw === FCW_INIT &&
    f.statusWord === 0 &&
    f.empty === 0xff &&
    (f.fip | f.fipHi | f.fcs | f.fop | f.fdp | f.fdpHi | f.fds) === 0 &&
    f.sigLo.every((v) => v === 0) &&
    f.sigHi.every((v) => v === 0) &&
    f.se.every((v) => v === 0);
  if (!x87Init) use |= XCR0_X87;
  if (f.xmm.some((b) => b !== 0)) use |= XCR0_SSE;
  return use;
}

/** XGETBV (0F 01 D0): ECX 0 reads XCR0; ECX 1 reads XCR0 AND XINUSE. */
export const xgetbv: Handler = (c) => {
  const f = xsaveEnabled(c, false);
  const n = c.regs[ECX];
  if (n !== 0 && n !== 1) fault(GP, 0);
  c.regs[EAX] = n === 0 ? f.xcr0 : f.xcr0 & xinuse(f);
  c.regs[EDX] = 0;
  c.regsHi[EAX] = c.regsHi[EDX] = 0;
};

/**
 * XSETBV (0F 01 D1): CPL 0 only; ECX must be 0; XCR0 bit 0 must stay set, AVX needs SSE,
 * and only supported bits may be set (SDM Vol. 2, XSETBV).
 */
export const xsetbv: Handler = (c) => {
  const f = xsaveEnabled(c, false);
  if (c.cpl !== 0 || c.regs[ECX] !== 0) fault(GP, 0);
  const v = c.regs[EAX];
  if (c.regs[EDX] !== 0 || v & ~XCR0_SUPPORTED || !(v & XCR0_X87)) fault(GP, 0);
  if (v & XCR0_AVX && !(v & XCR0_SSE)) fault(GP, 0);
  f.xcr0 = v;
};

/** The requested-feature bitmap: XCR0 AND EDX:EAX (SDM Vol. 1, 13.7). */
const rfbm = (c: Cpu): number => c.fpu.xcr0 & c.regs[EAX];

/**
 * XSAVE mem (0F AE /4), REX.W for the 64-bit x87 pointer format. Saves each requested
 * component, MXCSR with SSE, and sets XSTATE_BV[i] to XINUSE[i] for the requested ones,
 * leaving its other bits and the rest of the header as they were (SDM Vol. 1, 13.7).
 */
export const xsave: Handler = (c, i) => {
  const f = xsaveEnabled(c, true);
  const lin = area(c, i, XSAVE_AREA_SIZE, 64, true);
  const rf = rfbm(c);
  if (rf & XCR0_X87) saveX87(c, f, lin, i.osize === 64);
  if (rf & (XCR0_SSE | XCR0_AVX)) saveMxcsr(c, f, lin);
  if (rf & XCR0_SSE) saveXmm(c, f, lin);
  const bv = c.rd(lin + XSTATE_BV, 1);
  c.wr(lin + XSTATE_BV, 1, (bv & ~rf) | (xinuse(f) & rf));
};

/**
 * XRSTOR mem (0F AE /5), standard format. #GP(0) for a compacted image (XCOMP_BV[63]: this
 * CPU has no XSAVEC), for XSTATE_BV bits outside XCR0, for nonzero header bytes 8-23, and
 * for reserved MXCSR bits. Each requested component is loaded when its XSTATE_BV bit is
 * set and put in its initial configuration otherwise; MXCSR is loaded whenever SSE is
 * requested (SDM Vol. 1, 13.8.1).
 */
export const xrstor: Handler = (c, i) => {
  const f = xsaveEnabled(c, true);
  const lin = area(c, i, XSAVE_AREA_SIZE, 64, false);
  const bv = c.rd(lin + XSTATE_BV, 4);
  const bvHi = c.rd(lin + XSTATE_BV + 4, 4);
  let header = 0;
  for (let k = XCOMP_BV; k < XSTATE_BV + 24; k += 4) header |= c.rd(lin + k, 4);
  if (bvHi !== 0 || bv & ~f.xcr0 || header !== 0) fault(GP, 0);
  const rf = rfbm(c);
  const mxcsr = rf & (XCR0_SSE | XCR0_AVX) ? checkMxcsr(c, lin) : f.mxcsr;
  const xmm = rf & XCR0_SSE && bv & XCR0_SSE ? readXmm(c, lin) : undefined;
  if (rf & XCR0_X87) {
    if (bv & XCR0_X87) loadX87(c, f, lin, i.osize === 64);
    else f.initX87();
  }
  if (rf & XCR0_SSE) {
    if (xmm) f.xmm.set(xmm);
    else f.xmm.fill(0, 0, xmmCount(c) * 16);
  }
  f.mxcsr = mxcsr;
};
