/** The soft engine: SHV's own software x86 CPU. */
import { Cpu } from "../cpu/cpu.js";
import type { CpuHost, Engine, Vcpu } from "./engine.js";

export const softEngine: Engine = {
  name: "soft",
  createVcpu(host: CpuHost, id: number): Vcpu {
    return new Cpu(host, id);
  },
};
