/** Placeholder until the software CPU lands: same public shape as the real class. */
import type { CpuHost, MultibootEntry, Vcpu, VcpuExit } from "../engine/engine.js";

export class Cpu implements Vcpu {
  instructionsRetired = 0;
  constructor(
    readonly host: CpuHost,
    readonly id: number,
  ) {}
  reset(): void {}
  setMultibootEntry(_entry: MultibootEntry): void {}
  run(_budget: number): VcpuExit {
    throw new Error("software CPU not implemented yet");
  }
  requestStop(): void {}
  describeState(): string {
    return "";
  }
}
