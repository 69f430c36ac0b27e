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

/**
 * A debug exception (#DB) with the DR6 bits it reports (B0-B3, BD, BS). They are written
 * into DR6 when the exception is delivered, not when it is raised: a #DB that causes a VM
 * exit leaves DR6 alone and reports them in the exit qualification (SDM Vol. 3C, 27.1).
 * `clearGd`: the general-detect fault, which also clears DR7.GD at delivery.
 */
export class DebugException extends Fault {
  constructor(
    readonly dr6: number,
    readonly clearGd = false,
  ) {
    super(1);
  }
}
