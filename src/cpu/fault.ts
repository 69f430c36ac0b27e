/**
 * A processor exception raised while executing an instruction. Instruction code throws
 * it; the run loop catches it and hands it to the one event-delivery path (interrupt.ts).
 */
import { EXCEPTION_NAMES } from "./arch.js";

export class Fault {
  constructor(
    /** Exception vector (SDM Vol. 3A, Table 6-1). */
    readonly vector: number,
    /** Error code pushed by the exception, or -1 when it has none. */
    readonly errorCode: number = -1,
  ) {}

  toString(): string {
    const name = EXCEPTION_NAMES[this.vector] ?? `vector ${this.vector}`;
    return this.errorCode < 0 ? name : `${name}(0x${this.errorCode.toString(16)})`;
  }
}

/** Throws exception `vector` with optional error code. */
export function fault(vector: number, errorCode = -1): never {
  throw new Fault(vector, errorCode);
}
