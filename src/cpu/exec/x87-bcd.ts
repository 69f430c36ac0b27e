/**
 * FBLD and FBSTP: the 80-bit packed BCD integer (SDM Vol. 1, 4.7 and Figure 4-10; Vol. 2,
 * FBLD and FBSTP): 18 digits, two per byte with the low digit in the low nibble, in bytes
 * 0-8, and the sign in bit 7 of byte 9. Up to 10^18 - 1 the value needs 60 bits, so the
 * conversion uses BigInt (these are not hot-path instructions).
 */
import { conv, FSW_C1, FSW_IE, FSW_PE, integerToBits, roundToInteger } from "../fpu.js";
import type { Handler } from "../opcodes.js";
import { isSignalling, stBits } from "./x87.js";
import { begin, Kind, operand, push, underflow } from "./x87-common.js";

const MAX = 10n ** 18n - 1n;
/** The packed BCD integer indefinite (SDM Vol. 1, Table 4-3), bytes 0-9. */
const BCD_INDEFINITE = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];

/** FBLD m80bcd (DF /4): converts exactly and pushes (invalid digits give undefined results). */
export const fbld: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  const lin = operand(c, i, 10, false);
  let v = 0n;
  for (let k = 8; k >= 0; k--) {
    const b = c.rd(lin + k, 1);
    v = v * 100n + BigInt((b >> 4) * 10 + (b & 0xf));
  }
  const neg = (c.rd(lin + 9, 1) & 0x80) !== 0;
  integerToBits(Number(v & 0xffffffffn), Number(v >> 32n), neg);
  push(f, conv.lo, conv.hi, conv.se);
};

/**
 * FBSTP m80bcd (DF /6): rounds ST(0) by FCW.RC and stores it, then pops. NaN, infinity or
 * a magnitude beyond 10^18 - 1 is #IA, whose masked response stores the BCD indefinite.
 */
export const fbstp: Handler = (c, i) => {
  const f = begin(c, i, Kind.Numeric);
  const lin = operand(c, i, 10, true);
  f.fsw &= ~FSW_C1;
  let bytes: number[] | undefined;
  if (f.isEmpty(0)) {
    if (!underflow(f, 0)) return;
    bytes = BCD_INDEFINITE;
  } else {
    const v = stBits(f, 0);
    let value = -1n;
    if ((v.se & 0x7fff) !== 0x7fff && !isSignalling(v)) {
      const inexact = roundToInteger(v.lo, v.hi, v.se, f.roundingControl);
      if (conv.se === 0) value = (BigInt(conv.hi >>> 0) << 32n) | BigInt(conv.lo >>> 0);
      if (value >= 0n && value <= MAX && inexact) f.raise(FSW_PE);
    }
    if (value < 0n || value > MAX) {
      if (!f.raise(FSW_IE)) return;
      bytes = BCD_INDEFINITE;
    } else {
      bytes = [];
      for (let k = 0; k < 9; k++) {
        const two = Number(value % 100n);
        value /= 100n;
        bytes.push((Math.floor(two / 10) << 4) | (two % 10));
      }
      bytes.push(v.se & 0x8000 ? 0x80 : 0);
    }
  }
  bytes.forEach((b, k) => c.wr(lin + k, 1, b));
  f.pop();
};
