/**
 * QEMU's isa-debug-exit device: a guest write of value v ends the run with process exit
 * status (v << 1) | 1, so a test kernel can report success or failure and never be
 * mistaken for a clean QEMU exit (status 0). kvm-unit-tests place it at port 0xF4, four
 * ports wide, and write their result there with any access width.
 */
import { allOnes, type AccessSize, type BusDevice } from "../machine/bus.js";

export const DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_PORT_COUNT = 4;

/** The exit status for a written value: (v << 1) | 1, computed without 32-bit overflow. */
export function debugExitStatus(value: number): number {
  return (value >>> 0) * 2 + 1;
}

export class IsaDebugExit implements BusDevice {
  readonly name = "isa-debug-exit";

  /** `onExit` receives the exit status; the machine then stops the vCPU. */
  constructor(private readonly onExit: (status: number) => void) {}

  read(_offset: number, size: AccessSize): number {
    // Write-only: reads find nothing driving the bus.
    return allOnes(size);
  }

  write(_offset: number, _size: AccessSize, value: number): void {
    this.onExit(debugExitStatus(value));
  }
}
