/**
 * A hint for kernels that need VMX on a host whose KVM cannot give it to them: KVM offers
 * VMX to a guest only with nested virtualization (an Intel host, kvm_intel nested=1), so
 * such a kernel would find no VMX in CPUID, or fault on its first VMX instruction.
 */
import { isElf, parseElf } from "../../boot/elf.js";
import { hasVmx } from "./cpuid.js";
import { KvmSystem } from "./system.js";

/**
 * The first instruction in `code` that only a VMX-capable processor runs, by its encoding
 * (SDM Vol. 2C, chapter 6 "VMX Instruction Reference"): VMXON (F3 0F C7 /6 with a memory
 * operand), VMLAUNCH (0F 01 C2) or VMRESUME (0F 01 C3). A byte scan: it can be fooled by
 * data that happens to look like these, which is why it only gives a hint.
 */
export function findVmxInstruction(code: Uint8Array): { offset: number; name: string } | null {
  for (let i = 0; i + 3 <= code.length; i++) {
    if (
      code[i] === 0x0f &&
      code[i + 1] === 0x01 &&
      (code[i + 2] === 0xc2 || code[i + 2] === 0xc3)
    ) {
      return { offset: i, name: code[i + 2] === 0xc2 ? "VMLAUNCH" : "VMRESUME" };
    }
    if (i + 4 <= code.length && code[i] === 0xf3 && code[i + 1] === 0x0f && code[i + 2] === 0xc7) {
      const modrm = code[i + 3];
      if (((modrm >> 3) & 7) === 6 && modrm >> 6 !== 3) return { offset: i, name: "VMXON" };
    }
  }
  return null;
}

/**
 * One line for the user when the kernel uses VMX and the host's KVM offers no nested VMX,
 * or null. Only ELF kernels are scanned (their executable segments).
 */
export function vmxHint(kernel: Uint8Array): string | null {
  if (!isElf(kernel)) return null;
  let image;
  try {
    image = parseElf(kernel);
  } catch {
    return null; // the loader reports a malformed kernel itself
  }
  if (hasVmx(KvmSystem.open().supportedCpuid)) return null;
  for (const s of image.segments) {
    if (!s.executable) continue;
    const found = findVmxInstruction(kernel.subarray(s.offset, s.offset + s.fileSize));
    if (found !== null) {
      const at = `0x${(s.paddr + found.offset).toString(16)}`;
      return (
        `the kernel uses VMX (${found.name} at ${at}) but this host's KVM offers no nested VMX, ` +
        "so the guest has none; use --engine soft, whose CPU implements VMX"
      );
    }
  }
  return null;
}
