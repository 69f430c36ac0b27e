/**
 * Port I/O instructions IN and OUT, and the I/O permission checks shared with INS/OUTS:
 * IOPL, then the TSS I/O permission bitmap (SDM Vol. 1, 19.5).
 */
import { EAX, EDX, GP } from "../arch.js";
import { fault } from "../fault.js";
import { IOPL, IOPL_SHIFT } from "../flags.js";
import type { Cpu } from "../cpu.js";
import type { Handler } from "../opcodes.js";
import { getReg, setReg, type Size } from "./operands.js";

/**
 * Raises #GP(0) unless the access to `size` ports from `port` is allowed: always in real
 * mode, when CPL <= IOPL in protected mode, and otherwise (or in V86 mode) when every
 * port's bit in the TSS I/O bitmap is clear.
 */
export function checkIoPermission(c: Cpu, port: number, size: number): void {
  if (!c.protectedMode) return;
  if (!c.v86 && c.cpl <= (c.flags.word & IOPL) >> IOPL_SHIFT) return;
  const tss32 = (c.tr.ar & 8) !== 0; // only a 32-bit TSS has a bitmap
  if (!tss32 || c.tr.limit < 0x67) fault(GP, 0);
  const mapBase = c.rdSys((c.tr.base + 0x66) | 0, 2);
  const at = mapBase + (port >> 3);
  if (at + 1 > c.tr.limit) fault(GP, 0); // both bytes that may hold the bits
  const bits = c.rdSys((c.tr.base + at) | 0, 2);
  if ((bits >> (port & 7)) & ((1 << size) - 1)) fault(GP, 0);
}

/** IN AL/eAX, imm8 (E4/E5) and IN AL/eAX, DX (EC/ED). */
export const inPort =
  (byte: boolean, dx: boolean): Handler =>
  (c, i) => {
    const bits = byte ? 8 : i.osize;
    const port = dx ? c.regs[EDX] & 0xffff : i.imm & 0xff;
    checkIoPermission(c, port, bits >> 3);
    setReg(c, EAX, bits, c.portIn(port, (bits >> 3) as Size));
  };

/** OUT imm8, AL/eAX (E6/E7) and OUT DX, AL/eAX (EE/EF). */
export const outPort =
  (byte: boolean, dx: boolean): Handler =>
  (c, i) => {
    const bits = byte ? 8 : i.osize;
    const port = dx ? c.regs[EDX] & 0xffff : i.imm & 0xff;
    checkIoPermission(c, port, bits >> 3);
    c.portOut(port, (bits >> 3) as Size, getReg(c, EAX, bits));
  };
