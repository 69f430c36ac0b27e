/**
 * The Bochs/QEMU debug console at port 0xE9: every byte written goes straight to a sink,
 * with no UART to program. Reading the port returns 0xE9, which is how a guest detects
 * that the console is present (Bochs "port e9 hack", QEMU's isa-debugcon readback).
 */
import { allOnes, type AccessSize, type BusDevice } from "../machine/bus.js";

export const DEBUGCON_PORT = 0xe9;
/** The value a read returns: the port number, as Bochs and QEMU answer. */
const READBACK = 0xe9;

export class DebugCon implements BusDevice {
  readonly name = "debugcon";

  /** `sink` receives each byte written; without one they go nowhere. */
  constructor(private readonly sink: ((byte: number) => void) | null) {}

  read(_offset: number, size: AccessSize): number {
    // The device is one byte wide: the rest of a wider read is unassigned.
    return ((allOnes(size) & ~0xff) | READBACK) >>> 0;
  }

  write(_offset: number, _size: AccessSize, value: number): void {
    // One byte wide: only the low byte of a wider write reaches the device.
    this.sink?.(value & 0xff);
  }
}
