/**
 * A bare software CPU on a small RAM, for tests that drive the CPU's parts (decoder, ALU
 * handlers, page walker) directly rather than through a machine.
 */
import { Cpu } from "../../src/cpu/cpu.js";
import { Instr, decode } from "../../src/cpu/decode.js";
import { Bus } from "../../src/machine/bus.js";
import { PhysicalMemory } from "../../src/machine/memory.js";

/** Where test code is placed in RAM. */
export const CODE = 0x1000;

/**
 * A CPU in the multiboot entry state (flat 32-bit protected mode, CPL 0, paging off) on
 * `ramBytes` of RAM, with EIP = CODE.
 */
export function makeCpu(ramBytes = 1 << 20): { cpu: Cpu; mem: PhysicalMemory } {
  const mem = new PhysicalMemory(ramBytes);
  const cpu = new Cpu({ mem, io: new Bus("io") }, 0);
  cpu.setMultibootEntry({ eip: CODE, eax: 0, ebx: 0, esp: 0x8000 });
  return { cpu, mem };
}

/**
 * Copies `bytes` to CODE (followed by `pad` filler bytes, so a decoder that reads too far
 * reads filler rather than stale bytes) and decodes the instruction there.
 */
export function decodeAt(cpu: Cpu, bytes: ArrayLike<number>, pad = 0x90): Instr {
  const ram = cpu.mem.ram;
  ram.fill(pad, CODE, CODE + 32);
  ram.set(bytes, CODE);
  cpu.eip = CODE;
  const i = new Instr();
  decode(cpu, i);
  return i;
}
