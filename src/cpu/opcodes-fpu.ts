/**
 * The opcode table's rows for the x87 FPU (escape opcodes D8-DF, SDM Vol. 2, Appendix A.5,
 * Tables ), WAIT, FXSAVE/FXRSTOR and the XSAVE family. opcodes.ts includes
 * them; the notation is its own, plus ST (= ST(0)) and STi (ST(i) from ModRM.rm), and
 * memory operands by size: Mw m16, Md m32, Mq m64, Mt m80; M for the environment and
 * save areas.
 *
 * Not implemented, so without a row and #UD (decode.ts): FISTTP (SSE3), the undocumented
 * aliases (DC D0-DF, DD C8-CF, DE D0-D7, DF C0-DF but FNSTSW AX), and the SSE instructions
 * LDMXCSR/STMXCSR and XSAVEOPT: CPUID does not report SSE or XSAVEOPT, for which the SDM
 * makes them #UD.
 */
import type { OpDef } from "./opcodes.js";
import * as X from "./exec/x87.js";
import { Fmt, Op } from "./exec/x87.js";
import * as XC from "./exec/x87-control.js";
import * as XS from "./exec/xsave.js";
import * as XE from "./exec/x87-scale.js";
import * as XT from "./exec/x87-trans.js";
import * as XB from "./exec/x87-bcd.js";
import { ExitReason } from "./vmx/exit-reasons.js";

const ARITH = ["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"];
const M = false; // memory forms
const R = true; // register forms

/** D8/DA/DC/DE memory forms: the eight operations on m32fp, m32int, m64fp, m16int. */
function memoryArith(): OpDef[] {
  const forms: [number, Fmt, string, boolean][] = [
    [0xd8, Fmt.F32, "Md", false],
    [0xda, Fmt.I32, "Md", true],
    [0xdc, Fmt.F64, "Mq", false],
    [0xde, Fmt.I16, "Mw", true],
  ];
  return forms.flatMap(([op, fmt, o, int]) =>
    ARITH.map((m, reg) => ({
      op,
      reg,
      mod3: M,
      m: int ? m.replace(/^f/, "fi") : m,
      o,
      exec: X.arithM(reg as Op, fmt),
    })),
  );
}

/**
 * Register forms: D8 ST(0) op ST(i); DC and DE ST(i) op ST(0), where ModRM.reg 4-7 name
 * FSUBR, FSUB, FDIVR, FDIV (SDM Vol. 2, Table ); DE pops.
 */
function registerArith(): OpDef[] {
  const d8: OpDef[] = ARITH.map((m, reg) => ({
    op: 0xd8,
    reg,
    mod3: R,
    m,
    o: reg === 2 || reg === 3 ? "STi" : "ST,STi",
    exec: reg === 2 || reg === 3 ? X.fcomSt(reg - 2, false) : X.arithSt(reg as Op, false, false),
  }));
  const toSti: [number, Op, string][] = [
    [0, Op.Add, "fadd"],
    [1, Op.Mul, "fmul"],
    [4, Op.Subr, "fsubr"],
    [5, Op.Sub, "fsub"],
    [6, Op.Divr, "fdivr"],
    [7, Op.Div, "fdiv"],
  ];
  const dcde = toSti.flatMap(([reg, op, m]) => [
    { op: 0xdc, reg, mod3: R, m, o: "STi,ST", exec: X.arithSt(op, true, false) },
    { op: 0xde, reg, mod3: R, m: `${m}p`, o: "STi,ST", exec: X.arithSt(op, true, true) },
  ]);
  return [...d8, ...dcde];
}

/** D9 E8-EE: FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ. */
const CONSTANTS = ["fld1", "fldl2t", "fldl2e", "fldpi", "fldlg2", "fldln2", "fldz"];
/** FCMOVcc: DA /0-3 B, E, BE, U; DB /0-3 NB, NE, NBE, NU (Jcc condition numbers). */
const FCMOV: [number, number, string, number][] = [
  [0xda, 0, "fcmovb", 2],
  [0xda, 1, "fcmove", 4],
  [0xda, 2, "fcmovbe", 6],
  [0xda, 3, "fcmovu", 10],
  [0xdb, 0, "fcmovnb", 3],
  [0xdb, 1, "fcmovne", 5],
  [0xdb, 2, "fcmovnbe", 7],
  [0xdb, 3, "fcmovnu", 11],
];

export const FPU_ROWS: readonly OpDef[] = [
  { op: 0x9b, m: "fwait", o: "", exec: XC.fwait },
  ...memoryArith(),
  ...registerArith(),
  // D9
  { op: 0xd9, reg: 0, mod3: M, m: "fld", o: "Md", exec: X.fldM(Fmt.F32) },
  { op: 0xd9, reg: 2, mod3: M, m: "fst", o: "Md", exec: X.fstM(Fmt.F32, false) },
  { op: 0xd9, reg: 3, mod3: M, m: "fstp", o: "Md", exec: X.fstM(Fmt.F32, true) },
  { op: 0xd9, reg: 4, mod3: M, m: "fldenv", o: "M", exec: XC.fldenv },
  { op: 0xd9, reg: 5, mod3: M, m: "fldcw", o: "Mw", exec: XC.fldcw },
  { op: 0xd9, reg: 6, mod3: M, m: "fnstenv", o: "M", exec: XC.fnstenv },
  { op: 0xd9, reg: 7, mod3: M, m: "fnstcw", o: "Mw", exec: XC.fnstcw },
  { op: 0xd9, reg: 0, mod3: R, m: "fld", o: "STi", exec: X.fldSt },
  { op: 0xd9, reg: 1, mod3: R, m: "fxch", o: "STi", exec: X.fxch },
  { op: 0xd9, reg: 2, mod3: R, rm: 0, m: "fnop", o: "", exec: XC.fnop },
  { op: 0xd9, reg: 4, mod3: R, rm: 0, m: "fchs", o: "", exec: X.fchs },
  { op: 0xd9, reg: 4, mod3: R, rm: 1, m: "fabs", o: "", exec: X.fabs },
  { op: 0xd9, reg: 4, mod3: R, rm: 4, m: "ftst", o: "", exec: X.ftst },
  { op: 0xd9, reg: 4, mod3: R, rm: 5, m: "fxam", o: "", exec: X.fxam },
  ...CONSTANTS.map((m, rm) => ({ op: 0xd9, reg: 5, mod3: R, rm, m, o: "", exec: X.fldConst(rm) })),
  { op: 0xd9, reg: 6, mod3: R, rm: 6, m: "fdecstp", o: "", exec: XC.fincdecstp(-1) },
  { op: 0xd9, reg: 6, mod3: R, rm: 7, m: "fincstp", o: "", exec: XC.fincdecstp(1) },
  { op: 0xd9, reg: 6, mod3: R, rm: 0, m: "f2xm1", o: "", exec: XT.f2xm1 },
  { op: 0xd9, reg: 6, mod3: R, rm: 1, m: "fyl2x", o: "", exec: XT.fyl2x },
  { op: 0xd9, reg: 6, mod3: R, rm: 2, m: "fptan", o: "", exec: XT.fptan },
  { op: 0xd9, reg: 6, mod3: R, rm: 3, m: "fpatan", o: "", exec: XT.fpatan },
  { op: 0xd9, reg: 6, mod3: R, rm: 4, m: "fxtract", o: "", exec: XE.fxtract },
  { op: 0xd9, reg: 6, mod3: R, rm: 5, m: "fprem1", o: "", exec: XE.fprem(true) },
  { op: 0xd9, reg: 7, mod3: R, rm: 0, m: "fprem", o: "", exec: XE.fprem(false) },
  { op: 0xd9, reg: 7, mod3: R, rm: 1, m: "fyl2xp1", o: "", exec: XT.fyl2xp1 },
  { op: 0xd9, reg: 7, mod3: R, rm: 2, m: "fsqrt", o: "", exec: X.fsqrt },
  { op: 0xd9, reg: 7, mod3: R, rm: 3, m: "fsincos", o: "", exec: XT.fsincos },
  { op: 0xd9, reg: 7, mod3: R, rm: 5, m: "fscale", o: "", exec: XE.fscale },
  { op: 0xd9, reg: 7, mod3: R, rm: 6, m: "fsin", o: "", exec: XT.fsin },
  { op: 0xd9, reg: 7, mod3: R, rm: 7, m: "fcos", o: "", exec: XT.fcos },
  { op: 0xd9, reg: 7, mod3: R, rm: 4, m: "frndint", o: "", exec: X.frndint },
  // DA, DB
  ...FCMOV.map(([op, reg, m, cc]) => ({ op, reg, mod3: R, m, o: "ST,STi", exec: X.fcmov(cc) })),
  { op: 0xda, reg: 5, mod3: R, rm: 1, m: "fucompp", o: "", exec: X.fcompp(true) },
  { op: 0xdb, reg: 0, mod3: M, m: "fild", o: "Md", exec: X.fldM(Fmt.I32) },
  { op: 0xdb, reg: 2, mod3: M, m: "fist", o: "Md", exec: X.fstM(Fmt.I32, false) },
  { op: 0xdb, reg: 3, mod3: M, m: "fistp", o: "Md", exec: X.fstM(Fmt.I32, true) },
  { op: 0xdb, reg: 5, mod3: M, m: "fld", o: "Mt", exec: X.fldM(Fmt.F80) },
  { op: 0xdb, reg: 7, mod3: M, m: "fstp", o: "Mt", exec: X.fstM(Fmt.F80, true) },
  { op: 0xdb, reg: 4, mod3: R, rm: 0, m: "fneni", o: "", exec: XC.fnop },
  { op: 0xdb, reg: 4, mod3: R, rm: 1, m: "fndisi", o: "", exec: XC.fnop },
  { op: 0xdb, reg: 4, mod3: R, rm: 2, m: "fnclex", o: "", exec: XC.fnclex },
  { op: 0xdb, reg: 4, mod3: R, rm: 3, m: "fninit", o: "", exec: XC.fninit },
  { op: 0xdb, reg: 4, mod3: R, rm: 4, m: "fnsetpm", o: "", exec: XC.fnop },
  { op: 0xdb, reg: 5, mod3: R, m: "fucomi", o: "ST,STi", exec: X.fcomi(false, true) },
  { op: 0xdb, reg: 6, mod3: R, m: "fcomi", o: "ST,STi", exec: X.fcomi(false, false) },
  // DD
  { op: 0xdd, reg: 0, mod3: M, m: "fld", o: "Mq", exec: X.fldM(Fmt.F64) },
  { op: 0xdd, reg: 2, mod3: M, m: "fst", o: "Mq", exec: X.fstM(Fmt.F64, false) },
  { op: 0xdd, reg: 3, mod3: M, m: "fstp", o: "Mq", exec: X.fstM(Fmt.F64, true) },
  { op: 0xdd, reg: 4, mod3: M, m: "frstor", o: "M", exec: XC.frstor },
  { op: 0xdd, reg: 6, mod3: M, m: "fnsave", o: "M", exec: XC.fnsave },
  { op: 0xdd, reg: 7, mod3: M, m: "fnstsw", o: "Mw", exec: XC.fnstswM },
  { op: 0xdd, reg: 0, mod3: R, m: "ffree", o: "STi", exec: XC.ffree },
  { op: 0xdd, reg: 2, mod3: R, m: "fst", o: "STi", exec: X.fstSt(false) },
  { op: 0xdd, reg: 3, mod3: R, m: "fstp", o: "STi", exec: X.fstSt(true) },
  { op: 0xdd, reg: 4, mod3: R, m: "fucom", o: "STi", exec: X.fcomSt(0, true) },
  { op: 0xdd, reg: 5, mod3: R, m: "fucomp", o: "STi", exec: X.fcomSt(1, true) },
  // DE, DF
  { op: 0xde, reg: 3, mod3: R, rm: 1, m: "fcompp", o: "", exec: X.fcompp(false) },
  { op: 0xdf, reg: 0, mod3: M, m: "fild", o: "Mw", exec: X.fldM(Fmt.I16) },
  { op: 0xdf, reg: 2, mod3: M, m: "fist", o: "Mw", exec: X.fstM(Fmt.I16, false) },
  { op: 0xdf, reg: 3, mod3: M, m: "fistp", o: "Mw", exec: X.fstM(Fmt.I16, true) },
  { op: 0xdf, reg: 4, mod3: M, m: "fbld", o: "Mt", exec: XB.fbld },
  { op: 0xdf, reg: 5, mod3: M, m: "fild", o: "Mq", exec: X.fldM(Fmt.I64) },
  { op: 0xdf, reg: 6, mod3: M, m: "fbstp", o: "Mt", exec: XB.fbstp },
  { op: 0xdf, reg: 7, mod3: M, m: "fistp", o: "Mq", exec: X.fstM(Fmt.I64, true) },
  { op: 0xdf, reg: 4, mod3: R, rm: 0, m: "fnstsw", o: "AX", exec: XC.fnstswAx },
  { op: 0xdf, reg: 5, mod3: R, m: "fucomip", o: "ST,STi", exec: X.fcomi(true, true) },
  { op: 0xdf, reg: 6, mod3: R, m: "fcomip", o: "ST,STi", exec: X.fcomi(true, false) },

  // ---- 0F AE group 15 and 0F 01 (SDM Vol. 2, Table A-6): "NP", no 66/F2/F3 prefix ----
  { op: 0x0fae, reg: 0, mod3: M, m: "fxsave", o: "M", exec: XS.fxsave, noPrefix: true },
  { op: 0x0fae, reg: 1, mod3: M, m: "fxrstor", o: "M", exec: XS.fxrstor, noPrefix: true },
  { op: 0x0fae, reg: 4, mod3: M, m: "xsave", o: "M", exec: XS.xsave, noPrefix: true },
  { op: 0x0fae, reg: 5, mod3: M, m: "xrstor", o: "M", exec: XS.xrstor, noPrefix: true },
  { op: 0x0f01, reg: 2, mod3: R, rm: 0, m: "xgetbv", o: "", exec: XS.xgetbv, noPrefix: true },
  {
    op: 0x0f01,
    reg: 2,
    mod3: R,
    rm: 1,
    m: "xsetbv",
    o: "",
    exec: XS.xsetbv,
    noPrefix: true,
    exit: ExitReason.Xsetbv,
  },
];
