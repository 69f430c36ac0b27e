/**
 * ISA devices with 8-bit registers: a 16- or 32-bit port access reaches consecutive
 * registers one byte at a time, low byte first, as the ISA bus splits it. Bytes beyond the
 * device's range read as all-ones and drop writes.
 */
import type { AccessSize } from "../machine/bus.js";

/** Reads `size` bytes from 8-bit registers `offset`, `offset + 1`, ... of `count`. */
export function readBytes(
  offset: number,
  size: AccessSize,
  count: number,
  readByte: (reg: number) => number,
): number {
  let value = 0;
  for (let i = 0; i < size; i++) {
    const byte = offset + i < count ? readByte(offset + i) & 0xff : 0xff;
    value |= byte << (8 * i);
  }
  return value >>> 0;
}

/** Writes the low `size` bytes of `value` to 8-bit registers from `offset` on. */
export function writeBytes(
  offset: number,
  size: AccessSize,
  count: number,
  value: number,
  writeByte: (reg: number, byte: number) => void,
): void {
  for (let i = 0; i < size && offset + i < count; i++) {
    writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }
}
