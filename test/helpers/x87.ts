/**
 * Running hand-assembled x87, FXSAVE and XSAVE snippets on a bare soft CPU (helpers/cpu.ts)
 * one instruction at a time, so a test sees the exception an instruction raises rather
 * than its delivery.
 */
import type { Cpu } from "../../src/cpu/cpu.js";
import { Instr, decode } from "../../src/cpu/decode.js";
import { Fault } from "../../src/cpu/fault.js";
import { CODE } from "./cpu.js";

/** A 32-bit absolute address as the four bytes of a disp32. */
export const at = (a: number): number[] => [a & 0xff, (a >> 8) & 0xff, (a >> 16) & 0xff, a >>> 24];

/**
 * Places `bytes` at CODE and executes them until EIP leaves them; returns the first fault
 * (EIP then still names the faulting instruction) or undefined.
 */
export function exec(cpu: Cpu, bytes: number[]): Fault | undefined {
  cpu.mem.ram.fill(0x90, CODE, CODE + bytes.length + 16);
  cpu.mem.ram.set(bytes, CODE);
  cpu.eip = CODE;
  try {
    while (cpu.eip < CODE + bytes.length) {
      const i = new Instr();
      decode(cpu, i);
      i.exec(cpu, i);
      cpu.eip = cpu.nextEip;
    }
  } catch (e) {
    if (!(e instanceof Fault)) throw e;
    return e;
  }
  return undefined;
}

/** The vector of the fault `bytes` raise, or -1. */
export function vectorOf(cpu: Cpu, bytes: number[]): number {
  return exec(cpu, bytes)?.vector ?? -1;
}

export const dv = (cpu: Cpu): DataView => new DataView(cpu.mem.ram.buffer);

/** Bytes of guest RAM as hex, for byte-by-byte comparisons. */
export function hexAt(cpu: Cpu, addr: number, n: number): string {
  return Array.from(cpu.mem.ram.subarray(addr, addr + n), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join(" ");
}
