/**
 * The opcode table: one row per instruction form, in the operand notation of the SDM
 * (Vol. 2, Appendix A.2: E = ModRM r/m, G = ModRM reg, I = immediate, J = relative
 * offset, M = memory only, S = segment register, C/D = control/debug register, O = moffs;
 * b = byte, w = word, v/z = operand size, p = far pointer). The decoder, the disassembler
 * and the decoder tests are all derived from this table. `Ibs` marks an imm8 that is
 * sign-extended to the operand size.
 */
import { CS, DS, ES, FS, GS, SS } from "./arch.js";
import type { Cpu } from "./cpu.js";
import type { Instr } from "./decode.js";
import * as A from "./exec/arith.js";
import { BitOp, Count } from "./exec/arith.js";
import * as C from "./exec/control.js";
import * as D from "./exec/data.js";
import * as IO from "./exec/io.js";
import * as Sy from "./exec/system.js";
import * as S64 from "./exec/system64.js";
import { Str, stringOp } from "./exec/string.js";
import * as V from "./vmx/instructions.js";
import { ExitReason } from "./vmx/exit-reasons.js";
import { FPU_ROWS } from "./opcodes-fpu.js";

export type Handler = (cpu: Cpu, i: Instr) => void;

export interface OpDef {
  /** 0x00-0xFF: one-byte map; 0x0F00-0x0FFF: two-byte map (0F xx); 0x0F3800-: 0F 38 xx. */
  op: number;
  /** ModRM.reg for group opcodes (the "/digit" of the SDM). */
  reg?: number;
  /** true: register (mod = 3) form only; false: memory form only. */
  mod3?: boolean;
  /** ModRM.rm, for opcodes spelled out to the last ModRM bit (0F 01 F9 = RDTSCP). */
  rm?: number;
  /** Mnemonic (Intel syntax), with "/w" suffixes resolved by the disassembler. */
  m: string;
  /** Operands, SDM notation, comma-separated. */
  o: string;
  exec: Handler;
  /** The LOCK prefix is allowed (with a memory destination). */
  lock?: boolean;
  /** i64: invalid in 64-bit mode; o64: exists only in 64-bit mode (SDM Vol. 2, A.2.5). */
  mode64?: "i64" | "o64";
  /** d64: 64-bit operand size by default in 64-bit mode; f64: always 64-bit there. */
  size64?: "d64" | "f64";
  /** A 66, F2 or F3 prefix makes the encoding invalid (#UD), as for STAC/CLAC. */
  noPrefix?: boolean;
  /** A mandatory prefix: with it the opcode is this row; without it, the row without one. */
  mandatory?: 0x66 | 0xf3;
  /**
   * The VM exit this instruction can cause in VMX non-root operation, unconditionally or
   * under a VM-execution control (SDM Vol. 3C, 26.1 and 26.2).
   */
  exit?: ExitReason;
}

const ALU_NAMES = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
const SHIFT_NAMES = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"];
const CC = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];
const REGS = [0, 1, 2, 3, 4, 5, 6, 7];
const I64 = "i64" as const;
const D64 = "d64" as const;
const F64 = "f64" as const;

/** The ALU block 00-3F: six forms per operation (SDM Table A-2, rows 0-3). */
function aluRows(): OpDef[] {
  return ALU_NAMES.flatMap((m, k) => {
    const b = k * 8;
    const lock = m !== "cmp";
    return [
      { op: b + 0, m, o: "Eb,Gb", exec: A.aluEG(k, true), lock },
      { op: b + 1, m, o: "Ev,Gv", exec: A.aluEG(k, false), lock },
      { op: b + 2, m, o: "Gb,Eb", exec: A.aluGE(k, true) },
      { op: b + 3, m, o: "Gv,Ev", exec: A.aluGE(k, false) },
      { op: b + 4, m, o: "AL,Ib", exec: A.aluAI(k, true) },
      { op: b + 5, m, o: "eAX,Iz", exec: A.aluAI(k, false) },
    ];
  });
}

/** Group 1 (80, 81, 83): ALU operation in ModRM.reg (82 is an alias of 80 outside 64-bit mode). */
function group1(): OpDef[] {
  return ALU_NAMES.flatMap((m, reg) => {
    const lock = m !== "cmp";
    return [
      { op: 0x80, reg, m, o: "Eb,Ib", exec: A.aluEI(reg, true), lock },
      { op: 0x81, reg, m, o: "Ev,Iz", exec: A.aluEI(reg, false), lock },
      { op: 0x82, reg, m, o: "Eb,Ib", exec: A.aluEI(reg, true), lock, mode64: I64 },
      { op: 0x83, reg, m, o: "Ev,Ibs", exec: A.aluEI(reg, false), lock },
    ];
  });
}

/** Group 2 shifts and rotates: C0/C1 by imm8, D0/D1 by 1, D2/D3 by CL. */
function group2(): OpDef[] {
  return SHIFT_NAMES.flatMap((m, reg) => [
    { op: 0xc0, reg, m, o: "Eb,Ib", exec: A.shiftE(true, Count.Imm) },
    { op: 0xc1, reg, m, o: "Ev,Ib", exec: A.shiftE(false, Count.Imm) },
    { op: 0xd0, reg, m, o: "Eb,1", exec: A.shiftE(true, Count.One) },
    { op: 0xd1, reg, m, o: "Ev,1", exec: A.shiftE(false, Count.One) },
    { op: 0xd2, reg, m, o: "Eb,CL", exec: A.shiftE(true, Count.Cl) },
    { op: 0xd3, reg, m, o: "Ev,CL", exec: A.shiftE(false, Count.Cl) },
  ]);
}

/** Group 3 (F6/F7) for both widths. */
function group3(): OpDef[] {
  return [true, false].flatMap((byte) => {
    const op = byte ? 0xf6 : 0xf7;
    const E = byte ? "Eb" : "Ev";
    return [
      { op, reg: 0, m: "test", o: `${E},${byte ? "Ib" : "Iz"}`, exec: A.testEI(byte) },
      { op, reg: 1, m: "test", o: `${E},${byte ? "Ib" : "Iz"}`, exec: A.testEI(byte) },
      { op, reg: 2, m: "not", o: E, exec: A.notE(byte), lock: true },
      { op, reg: 3, m: "neg", o: E, exec: A.negE(byte), lock: true },
      { op, reg: 4, m: "mul", o: E, exec: A.mulE(byte) },
      { op, reg: 5, m: "imul", o: E, exec: A.imulE(byte) },
      { op, reg: 6, m: "div", o: E, exec: A.divE(byte) },
      { op, reg: 7, m: "idiv", o: E, exec: A.idivE(byte) },
    ];
  });
}

/**
 * The VMX instructions (SDM Vol. 3C, chapter 31; vmx/instructions.ts). Each names its exit:
 * in VMX non-root operation they all exit (SDM 26.1.2), through vmx/nonroot.ts.
 */
function vmxRows(): OpDef[] {
  const f64 = "f64" as const;
  return [
    {
      op: 0x0fc7,
      reg: 6,
      mod3: false,
      m: "vmptrld",
      o: "Mq",
      exec: V.vmptrld,
      exit: ExitReason.Vmptrld,
    },
    {
      op: 0x0fc7,
      reg: 6,
      mod3: false,
      m: "vmclear",
      o: "Mq",
      exec: V.vmclear,
      mandatory: 0x66,
      exit: ExitReason.Vmclear,
    },
    {
      op: 0x0fc7,
      reg: 6,
      mod3: false,
      m: "vmxon",
      o: "Mq",
      exec: V.vmxon,
      mandatory: 0xf3,
      exit: ExitReason.Vmxon,
    },
    {
      op: 0x0fc7,
      reg: 7,
      mod3: false,
      m: "vmptrst",
      o: "Mq",
      exec: V.vmptrst,
      noPrefix: true,
      exit: ExitReason.Vmptrst,
    },
    {
      op: 0x0f78,
      m: "vmread",
      o: "Ey,Gy",
      exec: V.vmread,
      size64: f64,
      noPrefix: true,
      exit: ExitReason.Vmread,
    },
    {
      op: 0x0f79,
      m: "vmwrite",
      o: "Gy,Ey",
      exec: V.vmwrite,
      size64: f64,
      noPrefix: true,
      exit: ExitReason.Vmwrite,
    },
    {
      op: 0x0f01,
      reg: 0,
      mod3: true,
      rm: 1,
      m: "vmcall",
      o: "",
      exec: V.vmcall,
      noPrefix: true,
      exit: ExitReason.Vmcall,
    },
    {
      op: 0x0f01,
      reg: 0,
      mod3: true,
      rm: 2,
      m: "vmlaunch",
      o: "",
      exec: V.vmlaunchVmresume(true),
      noPrefix: true,
      exit: ExitReason.Vmlaunch,
    },
    {
      op: 0x0f01,
      reg: 0,
      mod3: true,
      rm: 3,
      m: "vmresume",
      o: "",
      exec: V.vmlaunchVmresume(false),
      noPrefix: true,
      exit: ExitReason.Vmresume,
    },
    {
      op: 0x0f01,
      reg: 0,
      mod3: true,
      rm: 4,
      m: "vmxoff",
      o: "",
      exec: V.vmxoff,
      noPrefix: true,
      exit: ExitReason.Vmxoff,
    },
    {
      op: 0x0f3880,
      mod3: false,
      m: "invept",
      o: "Gy,Mdq",
      exec: V.invept,
      size64: f64,
      mandatory: 0x66,
      exit: ExitReason.Invept,
    },
    {
      op: 0x0f3881,
      mod3: false,
      m: "invvpid",
      o: "Gy,Mdq",
      exec: V.invvpid,
      size64: f64,
      mandatory: 0x66,
      exit: ExitReason.Invvpid,
    },
  ];
}

/** INS and OUTS are I/O instructions for VMX; the other string operations never exit. */
function ioExit(kind: Str): ExitReason | undefined {
  return kind === Str.Ins || kind === Str.Outs ? ExitReason.IoInstruction : undefined;
}

/** The string instructions and their byte/word pairs. */
function strings(): OpDef[] {
  const rows: [number, string, Str, string][] = [
    [0x6c, "ins", Str.Ins, "Yb,DX"],
    [0xa4, "movs", Str.Movs, "Yb,Xb"],
    [0xa6, "cmps", Str.Cmps, "Xb,Yb"],
    [0xaa, "stos", Str.Stos, "Yb,AL"],
    [0xac, "lods", Str.Lods, "AL,Xb"],
    [0xae, "scas", Str.Scas, "AL,Yb"],
    [0x6e, "outs", Str.Outs, "DX,Xb"],
  ];
  return rows.flatMap(([op, m, kind, o]) => [
    { op, m: `${m}b`, o, exec: stringOp(kind, true), exit: ioExit(kind) },
    {
      op: op + 1,
      m: `${m}v`,
      o: o.replace(/b/g, "v").replace("AL", "eAX"),
      exec: stringOp(kind, false),
      exit: ioExit(kind),
    },
  ]);
}

export const OPCODES: readonly OpDef[] = [
  ...aluRows(),
  { op: 0x06, m: "push", o: "ES", exec: D.pushSeg(ES), mode64: "i64" },
  { op: 0x07, m: "pop", o: "ES", exec: D.popSeg(ES), mode64: "i64" },
  { op: 0x0e, m: "push", o: "CS", exec: D.pushSeg(CS), mode64: "i64" },
  { op: 0x16, m: "push", o: "SS", exec: D.pushSeg(SS), mode64: "i64" },
  { op: 0x17, m: "pop", o: "SS", exec: D.popSeg(SS), mode64: "i64" },
  { op: 0x1e, m: "push", o: "DS", exec: D.pushSeg(DS), mode64: "i64" },
  { op: 0x1f, m: "pop", o: "DS", exec: D.popSeg(DS), mode64: "i64" },
  { op: 0x27, m: "daa", o: "", exec: A.decimalAdjust(false), mode64: "i64" },
  { op: 0x2f, m: "das", o: "", exec: A.decimalAdjust(true), mode64: "i64" },
  { op: 0x37, m: "aaa", o: "", exec: A.aaaAas(false), mode64: "i64" },
  { op: 0x3f, m: "aas", o: "", exec: A.aaaAas(true), mode64: "i64" },
  ...REGS.map((r) => ({ op: 0x40 + r, m: "inc", o: "Zv", exec: A.incDecReg, mode64: I64 })),
  ...REGS.map((r) => ({ op: 0x48 + r, m: "dec", o: "Zv", exec: A.incDecReg, mode64: I64 })),
  ...REGS.map((r) => ({ op: 0x50 + r, m: "push", o: "Zv", exec: D.pushR, size64: D64 })),
  ...REGS.map((r) => ({ op: 0x58 + r, m: "pop", o: "Zv", exec: D.popR, size64: D64 })),
  { op: 0x60, m: "pusha", o: "", exec: D.pusha, mode64: "i64" },
  { op: 0x61, m: "popa", o: "", exec: D.popa, mode64: "i64" },
  { op: 0x62, m: "bound", o: "Gv,Ma", exec: C.bound, mode64: "i64" },
  { op: 0x63, m: "arpl", o: "Ew,Gw", exec: Sy.arpl, mode64: "i64" },
  { op: 0x63, m: "movsxd", o: "Gv,Ed", exec: D.movsxd, mode64: "o64" },
  { op: 0x68, m: "push", o: "Iz", exec: D.pushI, size64: "d64" },
  { op: 0x69, m: "imul", o: "Gv,Ev,Iz", exec: A.imulGEI(true) },
  { op: 0x6a, m: "push", o: "Ibs", exec: D.pushI, size64: "d64" },
  { op: 0x6b, m: "imul", o: "Gv,Ev,Ibs", exec: A.imulGEI(true) },
  ...strings(),
  ...CC.map((cc, k) => ({ op: 0x70 + k, m: `j${cc}`, o: "Jb", exec: C.jccRel8, size64: F64 })),
  ...group1(),
  { op: 0x84, m: "test", o: "Eb,Gb", exec: A.testEG(true) },
  { op: 0x85, m: "test", o: "Ev,Gv", exec: A.testEG(false) },
  { op: 0x86, m: "xchg", o: "Eb,Gb", exec: D.xchgEG(true), lock: true },
  { op: 0x87, m: "xchg", o: "Ev,Gv", exec: D.xchgEG(false), lock: true },
  { op: 0x88, m: "mov", o: "Eb,Gb", exec: D.movEG(true) },
  { op: 0x89, m: "mov", o: "Ev,Gv", exec: D.movEG(false) },
  { op: 0x8a, m: "mov", o: "Gb,Eb", exec: D.movGE(true) },
  { op: 0x8b, m: "mov", o: "Gv,Ev", exec: D.movGE(false) },
  { op: 0x8c, m: "mov", o: "Ev,Sw", exec: D.movESreg },
  { op: 0x8d, mod3: false, m: "lea", o: "Gv,M", exec: D.lea },
  { op: 0x8e, m: "mov", o: "Sw,Ew", exec: D.movSregE },
  { op: 0x8f, reg: 0, m: "pop", o: "Ev", exec: D.popE, size64: "d64" },
  { op: 0x90, m: "nop", o: "", exec: D.nop },
  // PAUSE, a spin-loop hint: no architectural effect (SDM Vol. 2, PAUSE).
  { op: 0x90, m: "pause", o: "", exec: D.nop, mandatory: 0xf3, exit: ExitReason.Pause },
  ...REGS.slice(1).map((r) => ({ op: 0x90 + r, m: "xchg", o: "Zv,eAX", exec: D.xchgAR })),
  { op: 0x98, m: "cbw", o: "", exec: A.cbw },
  { op: 0x99, m: "cwd", o: "", exec: A.cwd },
  { op: 0x9a, m: "call", o: "Ap", exec: C.callFarImm, mode64: "i64" },
  { op: 0x9c, m: "pushf", o: "", exec: D.pushf, size64: "d64" },
  { op: 0x9d, m: "popf", o: "", exec: D.popf, size64: "d64" },
  { op: 0x9e, m: "sahf", o: "", exec: D.sahf },
  { op: 0x9f, m: "lahf", o: "", exec: D.lahf },
  { op: 0xa0, m: "mov", o: "AL,Ob", exec: D.movMoffs(true, false) },
  { op: 0xa1, m: "mov", o: "eAX,Ov", exec: D.movMoffs(false, false) },
  { op: 0xa2, m: "mov", o: "Ob,AL", exec: D.movMoffs(true, true) },
  { op: 0xa3, m: "mov", o: "Ov,eAX", exec: D.movMoffs(false, true) },
  { op: 0xa8, m: "test", o: "AL,Ib", exec: A.testAI(true) },
  { op: 0xa9, m: "test", o: "eAX,Iz", exec: A.testAI(false) },
  ...REGS.map((r) => ({ op: 0xb0 + r, m: "mov", o: "Zb,Ib", exec: D.movRI(true) })),
  ...REGS.map((r) => ({ op: 0xb8 + r, m: "mov", o: "Zv,Iv", exec: D.movRI(false) })),
  ...group2(),
  { op: 0xc2, m: "ret", o: "Iw", exec: C.retNear(true), size64: "f64" },
  { op: 0xc3, m: "ret", o: "", exec: C.retNear(false), size64: "f64" },
  { op: 0xc4, m: "les", o: "Gv,Mp", exec: D.loadFarPointer(ES), mode64: "i64" },
  { op: 0xc5, m: "lds", o: "Gv,Mp", exec: D.loadFarPointer(DS), mode64: "i64" },
  { op: 0xc6, reg: 0, m: "mov", o: "Eb,Ib", exec: D.movEI(true) },
  { op: 0xc7, reg: 0, m: "mov", o: "Ev,Iz", exec: D.movEI(false) },
  { op: 0xc8, m: "enter", o: "Iw,Ib", exec: D.enter, size64: "d64" },
  { op: 0xc9, m: "leave", o: "", exec: D.leave, size64: "d64" },
  { op: 0xca, m: "retf", o: "Iw", exec: C.retFar(true) },
  { op: 0xcb, m: "retf", o: "", exec: C.retFar(false) },
  { op: 0xcc, m: "int3", o: "", exec: C.int3 },
  { op: 0xcd, m: "int", o: "Ib", exec: C.intN },
  { op: 0xce, m: "into", o: "", exec: C.into, mode64: "i64" },
  { op: 0xcf, m: "iret", o: "", exec: C.iret },
  { op: 0xd4, m: "aam", o: "Ib", exec: A.aam, mode64: "i64" },
  { op: 0xd5, m: "aad", o: "Ib", exec: A.aad, mode64: "i64" },
  { op: 0xd7, m: "xlat", o: "", exec: D.xlat },
  ...FPU_ROWS, // WAIT, D8-DF, FXSAVE/FXRSTOR and the XSAVE family (opcodes-fpu.ts)
  { op: 0xe0, m: "loopne", o: "Jb", exec: C.loop, size64: "f64" },
  { op: 0xe1, m: "loope", o: "Jb", exec: C.loop, size64: "f64" },
  { op: 0xe2, m: "loop", o: "Jb", exec: C.loop, size64: "f64" },
  { op: 0xe3, m: "jecxz", o: "Jb", exec: C.loop, size64: "f64" },
  { op: 0xe4, m: "in", o: "AL,Ib", exec: IO.inPort(true, false), exit: ExitReason.IoInstruction },
  { op: 0xe5, m: "in", o: "eAX,Ib", exec: IO.inPort(false, false), exit: ExitReason.IoInstruction },
  { op: 0xe6, m: "out", o: "Ib,AL", exec: IO.outPort(true, false), exit: ExitReason.IoInstruction },
  {
    op: 0xe7,
    m: "out",
    o: "Ib,eAX",
    exec: IO.outPort(false, false),
    exit: ExitReason.IoInstruction,
  },
  { op: 0xe8, m: "call", o: "Jz", exec: C.callRel, size64: "f64" },
  { op: 0xe9, m: "jmp", o: "Jz", exec: C.jmpRel, size64: "f64" },
  { op: 0xea, m: "jmp", o: "Ap", exec: C.jmpFarImm, mode64: "i64" },
  { op: 0xeb, m: "jmp", o: "Jb", exec: C.jmpRel8, size64: "f64" },
  { op: 0xec, m: "in", o: "AL,DX", exec: IO.inPort(true, true), exit: ExitReason.IoInstruction },
  { op: 0xed, m: "in", o: "eAX,DX", exec: IO.inPort(false, true), exit: ExitReason.IoInstruction },
  { op: 0xee, m: "out", o: "DX,AL", exec: IO.outPort(true, true), exit: ExitReason.IoInstruction },
  {
    op: 0xef,
    m: "out",
    o: "DX,eAX",
    exec: IO.outPort(false, true),
    exit: ExitReason.IoInstruction,
  },
  { op: 0xf1, m: "int1", o: "", exec: C.int1 },
  { op: 0xf4, m: "hlt", o: "", exec: Sy.hlt, exit: ExitReason.Hlt },
  { op: 0xf5, m: "cmc", o: "", exec: Sy.cmc },
  ...group3(),
  { op: 0xf8, m: "clc", o: "", exec: Sy.clc },
  { op: 0xf9, m: "stc", o: "", exec: Sy.stc },
  { op: 0xfa, m: "cli", o: "", exec: Sy.cliSti(false) },
  { op: 0xfb, m: "sti", o: "", exec: Sy.cliSti(true) },
  { op: 0xfc, m: "cld", o: "", exec: Sy.cld },
  { op: 0xfd, m: "std", o: "", exec: Sy.std },
  { op: 0xfe, reg: 0, m: "inc", o: "Eb", exec: A.incDecE(true), lock: true },
  { op: 0xfe, reg: 1, m: "dec", o: "Eb", exec: A.incDecE(true), lock: true },
  { op: 0xff, reg: 0, m: "inc", o: "Ev", exec: A.incDecE(false), lock: true },
  { op: 0xff, reg: 1, m: "dec", o: "Ev", exec: A.incDecE(false), lock: true },
  { op: 0xff, reg: 2, m: "call", o: "Ev", exec: C.callE, size64: "f64" },
  { op: 0xff, reg: 3, m: "callf", o: "Mp", exec: C.callFarMem },
  { op: 0xff, reg: 4, m: "jmp", o: "Ev", exec: C.jmpE, size64: "f64" },
  { op: 0xff, reg: 5, m: "jmpf", o: "Mp", exec: C.jmpFarMem },
  { op: 0xff, reg: 6, m: "push", o: "Ev", exec: D.pushE, size64: "d64" },

  // ---- two-byte map (SDM Table A-3) ----
  { op: 0x0f00, reg: 0, m: "sldt", o: "Ew", exec: Sy.sldt, exit: ExitReason.LdtrTrAccess },
  { op: 0x0f00, reg: 1, m: "str", o: "Ew", exec: Sy.str, exit: ExitReason.LdtrTrAccess },
  { op: 0x0f00, reg: 2, m: "lldt", o: "Ew", exec: Sy.lldt, exit: ExitReason.LdtrTrAccess },
  { op: 0x0f00, reg: 3, m: "ltr", o: "Ew", exec: Sy.ltr, exit: ExitReason.LdtrTrAccess },
  { op: 0x0f00, reg: 4, m: "verr", o: "Ew", exec: Sy.verrVerw(false) },
  { op: 0x0f00, reg: 5, m: "verw", o: "Ew", exec: Sy.verrVerw(true) },
  {
    op: 0x0f01,
    reg: 0,
    mod3: false,
    m: "sgdt",
    o: "Ms",
    exec: Sy.sgdtSidt(false),
    exit: ExitReason.GdtrIdtrAccess,
  },
  {
    op: 0x0f01,
    reg: 1,
    mod3: false,
    m: "sidt",
    o: "Ms",
    exec: Sy.sgdtSidt(true),
    exit: ExitReason.GdtrIdtrAccess,
  },
  {
    op: 0x0f01,
    reg: 2,
    mod3: false,
    m: "lgdt",
    o: "Ms",
    exec: Sy.lgdtLidt(false),
    exit: ExitReason.GdtrIdtrAccess,
  },
  {
    op: 0x0f01,
    reg: 3,
    mod3: false,
    m: "lidt",
    o: "Ms",
    exec: Sy.lgdtLidt(true),
    exit: ExitReason.GdtrIdtrAccess,
  },
  { op: 0x0f01, reg: 4, m: "smsw", o: "Ew", exec: Sy.smsw },
  { op: 0x0f01, reg: 6, m: "lmsw", o: "Ew", exec: Sy.lmsw, exit: ExitReason.CrAccess },
  {
    op: 0x0f01,
    reg: 7,
    mod3: false,
    m: "invlpg",
    o: "M",
    exec: Sy.invlpg,
    exit: ExitReason.Invlpg,
  },
  {
    op: 0x0f01,
    reg: 1,
    mod3: true,
    rm: 2,
    m: "clac",
    o: "",
    exec: Sy.stacClac(false),
    noPrefix: true,
  },
  {
    op: 0x0f01,
    reg: 1,
    mod3: true,
    rm: 3,
    m: "stac",
    o: "",
    exec: Sy.stacClac(true),
    noPrefix: true,
  },
  {
    op: 0x0f01,
    reg: 7,
    mod3: true,
    rm: 1,
    m: "rdtscp",
    o: "",
    exec: Sy.rdtscp,
    exit: ExitReason.Rdtscp,
  },
  ...["rdfsbase", "rdgsbase", "wrfsbase", "wrgsbase"].map((m, reg) => ({
    op: 0x0fae,
    reg,
    mod3: true,
    m,
    o: "Ry",
    exec: S64.fsgsBase(reg >= 2, reg & 1 ? GS : FS),
    mode64: "o64" as const,
    mandatory: 0xf3 as const,
  })),
  {
    op: 0x0f3882,
    mod3: false,
    m: "invpcid",
    o: "Gy,M",
    exec: Sy.invpcid,
    mandatory: 0x66,
    exit: ExitReason.Invpcid,
  },
  { op: 0x0f01, reg: 7, mod3: true, rm: 0, m: "swapgs", o: "", exec: S64.swapgs, mode64: "o64" },
  { op: 0x0f05, m: "syscall", o: "", exec: S64.syscall, mode64: "o64" },
  { op: 0x0f07, m: "sysret", o: "", exec: S64.sysret, mode64: "o64" },
  { op: 0x0f02, m: "lar", o: "Gv,Ew", exec: Sy.larLsl(false) },
  { op: 0x0f03, m: "lsl", o: "Gv,Ew", exec: Sy.larLsl(true) },
  { op: 0x0f06, m: "clts", o: "", exec: Sy.clts, exit: ExitReason.CrAccess },
  { op: 0x0f08, m: "invd", o: "", exec: Sy.wbinvd, exit: ExitReason.Invd },
  { op: 0x0f09, m: "wbinvd", o: "", exec: Sy.wbinvd, exit: ExitReason.Wbinvd },
  { op: 0x0f0b, m: "ud2", o: "", exec: Sy.ud },
  { op: 0x0f0d, m: "nop", o: "Ev", exec: D.nop }, // prefetch hints
  ...[0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f].map((b) => ({
    op: 0x0f00 | b,
    m: "nop",
    o: "Ev",
    exec: D.nop,
  })),
  {
    op: 0x0f20,
    m: "mov",
    o: "Rd,Cd",
    exec: Sy.movCr(false),
    exit: ExitReason.CrAccess,
    size64: "f64",
  },
  {
    op: 0x0f21,
    m: "mov",
    o: "Rd,Dd",
    exec: Sy.movDr(false),
    exit: ExitReason.DrAccess,
    size64: "f64",
  },
  {
    op: 0x0f22,
    m: "mov",
    o: "Cd,Rd",
    exec: Sy.movCr(true),
    exit: ExitReason.CrAccess,
    size64: "f64",
  },
  {
    op: 0x0f23,
    m: "mov",
    o: "Dd,Rd",
    exec: Sy.movDr(true),
    exit: ExitReason.DrAccess,
    size64: "f64",
  },
  { op: 0x0f30, m: "wrmsr", o: "", exec: Sy.wrmsr, exit: ExitReason.Wrmsr },
  { op: 0x0f31, m: "rdtsc", o: "", exec: Sy.rdtsc, exit: ExitReason.Rdtsc },
  { op: 0x0f32, m: "rdmsr", o: "", exec: Sy.rdmsr, exit: ExitReason.Rdmsr },
  { op: 0x0f33, m: "rdpmc", o: "", exec: Sy.rdpmc, exit: ExitReason.Rdpmc },
  { op: 0x0f34, m: "sysenter", o: "", exec: Sy.sysenter },
  { op: 0x0f35, m: "sysexit", o: "", exec: Sy.sysexit },
  ...CC.map((cc, k) => ({ op: 0x0f40 + k, m: `cmov${cc}`, o: "Gv,Ev", exec: A.cmovcc })),
  ...CC.map((cc, k) => ({ op: 0x0f80 + k, m: `j${cc}`, o: "Jz", exec: C.jccRel, size64: F64 })),
  ...CC.map((cc, k) => ({ op: 0x0f90 + k, m: `set${cc}`, o: "Eb", exec: A.setcc })),
  { op: 0x0fa0, m: "push", o: "FS", exec: D.pushSeg(FS), size64: "d64" },
  { op: 0x0fa1, m: "pop", o: "FS", exec: D.popSeg(FS), size64: "d64" },
  { op: 0x0fa2, m: "cpuid", o: "", exec: Sy.cpuidOp, exit: ExitReason.Cpuid },
  { op: 0x0fa3, m: "bt", o: "Ev,Gv", exec: A.bitEG(BitOp.Test) },
  { op: 0x0fa4, m: "shld", o: "Ev,Gv,Ib", exec: A.shiftDouble(false, Count.Imm) },
  { op: 0x0fa5, m: "shld", o: "Ev,Gv,CL", exec: A.shiftDouble(false, Count.Cl) },
  { op: 0x0fa8, m: "push", o: "GS", exec: D.pushSeg(GS), size64: "d64" },
  { op: 0x0fa9, m: "pop", o: "GS", exec: D.popSeg(GS), size64: "d64" },
  { op: 0x0fab, m: "bts", o: "Ev,Gv", exec: A.bitEG(BitOp.Set), lock: true },
  { op: 0x0fac, m: "shrd", o: "Ev,Gv,Ib", exec: A.shiftDouble(true, Count.Imm) },
  { op: 0x0fad, m: "shrd", o: "Ev,Gv,CL", exec: A.shiftDouble(true, Count.Cl) },
  { op: 0x0faf, m: "imul", o: "Gv,Ev", exec: A.imulGEI(false) },
  { op: 0x0fb0, m: "cmpxchg", o: "Eb,Gb", exec: A.cmpxchg(true), lock: true },
  { op: 0x0fb1, m: "cmpxchg", o: "Ev,Gv", exec: A.cmpxchg(false), lock: true },
  { op: 0x0fb2, m: "lss", o: "Gv,Mp", exec: D.loadFarPointer(SS) },
  { op: 0x0fb3, m: "btr", o: "Ev,Gv", exec: A.bitEG(BitOp.Reset), lock: true },
  { op: 0x0fb4, m: "lfs", o: "Gv,Mp", exec: D.loadFarPointer(FS) },
  { op: 0x0fb5, m: "lgs", o: "Gv,Mp", exec: D.loadFarPointer(GS) },
  { op: 0x0fb6, m: "movzx", o: "Gv,Eb", exec: D.movExtend(8, false) },
  { op: 0x0fb7, m: "movzx", o: "Gv,Ew", exec: D.movExtend(16, false) },
  { op: 0x0fba, reg: 4, m: "bt", o: "Ev,Ib", exec: A.bitEI },
  { op: 0x0fba, reg: 5, m: "bts", o: "Ev,Ib", exec: A.bitEI, lock: true },
  { op: 0x0fba, reg: 6, m: "btr", o: "Ev,Ib", exec: A.bitEI, lock: true },
  { op: 0x0fba, reg: 7, m: "btc", o: "Ev,Ib", exec: A.bitEI, lock: true },
  { op: 0x0fbb, m: "btc", o: "Ev,Gv", exec: A.bitEG(BitOp.Complement), lock: true },
  { op: 0x0fbc, m: "bsf", o: "Gv,Ev", exec: A.bitScan(false) },
  { op: 0x0fbd, m: "bsr", o: "Gv,Ev", exec: A.bitScan(true) },
  { op: 0x0fbe, m: "movsx", o: "Gv,Eb", exec: D.movExtend(8, true) },
  { op: 0x0fbf, m: "movsx", o: "Gv,Ew", exec: D.movExtend(16, true) },
  { op: 0x0fc0, m: "xadd", o: "Eb,Gb", exec: A.xadd(true), lock: true },
  { op: 0x0fc1, m: "xadd", o: "Ev,Gv", exec: A.xadd(false), lock: true },
  { op: 0x0fc7, reg: 1, mod3: false, m: "cmpxchg8b", o: "Mq", exec: A.cmpxchg8b, lock: true },
  ...vmxRows(),
  ...REGS.map((r) => ({ op: 0x0fc8 + r, m: "bswap", o: "Zd", exec: A.bswap })),
];
