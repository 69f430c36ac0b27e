/**
 * Port 0x80, the POST code port: firmware and kernels write progress codes there, and
 * Linux uses it as an I/O delay. On a PC a diagnostic card may latch the byte; here it is
 * accepted and dropped, so it is not an unassigned port.
 */
import { allOnes, type AccessSize, type BusDevice } from "../machine/bus.js";

export const POST_CODE_PORT = 0x80;

export class PostCode implements BusDevice {
  readonly name = "post-code";

  read(_offset: number, size: AccessSize): number {
    return allOnes(size);
  }

  write(_offset: number, _size: AccessSize, _value: number): void {
    // Nothing latches the code: the write is dropped.
  }
}
