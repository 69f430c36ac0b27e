/**
 * The CPUID model: a GenuineIntel family-6 processor that advertises only what this CPU
 * implements (SDM Vol. 2, CPUID). One declarative table of leaves; each feature bit that
 * is set names the code that implements it.
 */
import type { Cpu } from "./cpu.js";
import { CR4_OSXSAVE } from "./arch.js";
import { XCR0_SUPPORTED, XSAVE_AREA_SIZE } from "./fpu.js";

type Regs = [eax: number, ebx: number, ecx: number, edx: number];

// CPUID.1:EDX feature bits (SDM Vol. 2, Table 3-11) that this CPU implements.
const FEAT_FPU = 1 << 0; // the x87 FPU on chip (fpu.ts, exec/x87*.ts)
const FEAT_DE = 1 << 2; // CR4.DE: DR4/DR5 references raise #UD
const FEAT_PSE = 1 << 3; // 4 MiB pages (mmu.ts)
const FEAT_TSC = 1 << 4; // RDTSC, CR4.TSD
const FEAT_MSR = 1 << 5; // RDMSR/WRMSR (msr.ts)
const FEAT_PAE = 1 << 6; // PAE paging (mmu.ts)
const FEAT_CX8 = 1 << 8; // CMPXCHG8B
const FEAT_APIC = 1 << 9; // an on-chip local APIC (when the machine has one)
const FEAT_SEP = 1 << 11; // SYSENTER/SYSEXIT
const FEAT_MTRR = 1 << 12; // MTRR MSRs
const FEAT_PGE = 1 << 13; // global pages
const FEAT_CMOV = 1 << 15; // CMOVcc
const FEAT_PAT = 1 << 16; // IA32_PAT
const FEAT_PSE36 = 1 << 17; // 4 MiB pages above 4 GiB
const FEAT_FXSR = 1 << 24; // FXSAVE/FXRSTOR and CR4.OSFXSR (exec/xsave.ts)
// CPUID.1:ECX bits.
const FEAT2_VMX = 1 << 5; // VMX (vmx/: VMXON and the rest, SDM Vol. 3C, 24.6)
const FEAT2_X2APIC = 1 << 21; // x2APIC mode through IA32_APIC_BASE and MSRs 0x800+
const FEAT2_TSC_DEADLINE = 1 << 24; // the LAPIC timer's TSC-deadline mode
// CPUID.(EAX=7,ECX=0) bits.
const LEAF7_FSGSBASE = 1 << 0; // EBX: RDFSBASE/WRFSBASE and CR4.FSGSBASE
const LEAF7_TSC_ADJUST = 1 << 1; // EBX: IA32_TSC_ADJUST (msr.ts)
const LEAF7_SMEP = 1 << 7; // EBX: CR4.SMEP (mmu.ts)
const LEAF7_INVPCID = 1 << 10; // EBX: INVPCID
const LEAF7_SMAP = 1 << 20; // EBX: CR4.SMAP, STAC/CLAC
const LEAF7_UMIP = 1 << 2; // ECX: CR4.UMIP
// CPUID.80000001H:EDX bits.
const EXT_SYSCALL = 1 << 11; // SYSCALL/SYSRET in 64-bit mode
const EXT_NX = 1 << 20; // execute-disable (EFER.NXE)
const EXT_PAGE1GB = 1 << 26; // 1 GiB pages (mmu.ts)
const EXT_RDTSCP = 1 << 27; // RDTSCP and IA32_TSC_AUX
const EXT_LM = 1 << 29; // IA-32e mode
// CPUID.80000001H:ECX bits.
const EXT2_LAHF = 1 << 0; // LAHF/SAHF in 64-bit mode
// CPUID.1:ECX bits (continued).
const FEAT2_CX16 = 1 << 13; // CMPXCHG16B
const FEAT2_XSAVE = 1 << 26; // XSAVE/XRSTOR, XSETBV/XGETBV, XCR0 and CR4.OSXSAVE
const FEAT2_OSXSAVE = 1 << 27; // a copy of CR4.OSXSAVE
const FEAT2_PCID = 1 << 17; // CR4.PCIDE (the TLB is flushed on PCID changes, which is allowed)

// CPUID.(EAX=0DH,ECX=1):EAX bits.
const XSAVE_XGETBV1 = 1 << 2; // XGETBV with ECX = 1 reads XCR0 AND XINUSE

/** Family 6, model 0x3A (extended model 3, model 0xA), stepping 9. */
export const CPUID_SIGNATURE = 0x000306a9;
const MAX_BASIC = 0xd;
const MAX_EXTENDED = 0x80000008;

function ascii4(s: string): number {
  return (
    (s.charCodeAt(0) |
      (s.charCodeAt(1) << 8) |
      (s.charCodeAt(2) << 16) |
      (s.charCodeAt(3) << 24)) >>>
    0
  );
}
function str(s: string, n: number): number[] {
  const p = s.padEnd(n * 4, "\0");
  return Array.from({ length: n }, (_, k) => ascii4(p.slice(4 * k, 4 * k + 4)));
}
const BRAND = str("SHV software x86 CPU", 12);
const VENDOR = str("GenuineIntel", 3); // EBX, EDX, ECX order: "Genu" "ineI" "ntel"

const LEAVES: Record<number, (c: Cpu, subleaf: number) => Regs> = {
  0x0: () => [MAX_BASIC, VENDOR[0], VENDOR[2], VENDOR[1]],
  0x1: (c) => {
    const apic = c.host.apic !== undefined;
    const edx =
      FEAT_DE | FEAT_PSE | FEAT_TSC | FEAT_MSR | FEAT_PAE | FEAT_CX8 | FEAT_SEP | FEAT_MTRR;
    return [
      CPUID_SIGNATURE,
      // EBX: initial APIC ID (31:24), logical processors per package (23:16), CLFLUSH size/8.
      ((c.id << 24) | (1 << 16) | (8 << 8)) >>> 0,
      (FEAT2_VMX |
        FEAT2_CX16 |
        FEAT2_PCID |
        FEAT2_XSAVE |
        (c.cr4 & CR4_OSXSAVE ? FEAT2_OSXSAVE : 0) |
        (apic ? FEAT2_X2APIC | FEAT2_TSC_DEADLINE : 0)) >>>
        0,
      (edx |
        FEAT_FPU |
        FEAT_FXSR |
        FEAT_PGE |
        FEAT_CMOV |
        FEAT_PAT |
        FEAT_PSE36 |
        (apic ? FEAT_APIC : 0)) >>>
        0,
    ];
  },
  // Leaf 2: one iteration, no cache descriptors.
  0x2: () => [1, 0, 0, 0],
  // Leaf 7, subleaf 0: structured extended features (SDM Vol. 2, Table 3-8).
  0x7: (_c, sub) =>
    sub === 0
      ? [
          0,
          LEAF7_FSGSBASE | LEAF7_TSC_ADJUST | LEAF7_SMEP | LEAF7_INVPCID | LEAF7_SMAP,
          LEAF7_UMIP,
          0,
        ]
      : [0, 0, 0, 0],
  // Leaf 0DH: the XSAVE state components (SDM Vol. 2, Table 3-8; Vol. 1, 13.2). Sub-leaf 0:
  // the XCR0 bits supported (x87, SSE), the area size for the bits XCR0 enables and for all
  // supported ones (both in the 512-byte legacy region, plus the 64-byte header).
  // Sub-leaf 1: of XSAVEOPT (bit 0), XSAVEC (1), XGETBV with ECX = 1 (2) and XSAVES (3),
  // only XGETBV's XINUSE form exists.
  0xd: (_c, sub) =>
    sub === 0
      ? [XCR0_SUPPORTED, XSAVE_AREA_SIZE, XSAVE_AREA_SIZE, 0]
      : sub === 1
        ? [XSAVE_XGETBV1, 0, 0, 0]
        : [0, 0, 0, 0],
  0x80000000: () => [MAX_EXTENDED, 0, 0, 0],
  0x80000001: () => [
    0,
    0,
    EXT2_LAHF,
    (EXT_SYSCALL | EXT_NX | EXT_PAGE1GB | EXT_RDTSCP | EXT_LM) >>> 0,
  ],
  0x80000002: () => [BRAND[0], BRAND[1], BRAND[2], BRAND[3]],
  0x80000003: () => [BRAND[4], BRAND[5], BRAND[6], BRAND[7]],
  0x80000004: () => [BRAND[8], BRAND[9], BRAND[10], BRAND[11]],
  // Physical address bits 36, linear address bits 48.
  0x80000008: () => [0x3024, 0, 0, 0],
};

/** CPUID for leaf EAX, subleaf ECX. Leaves without data read as zeros. */
export function cpuid(c: Cpu, leaf: number, subleaf: number): Regs {
  leaf >>>= 0;
  // Beyond the maximum, Intel returns the highest basic leaf's data (SDM Vol. 2, CPUID).
  if (leaf > MAX_EXTENDED || (leaf > MAX_BASIC && leaf < 0x80000000)) leaf = MAX_BASIC;
  const f = LEAVES[leaf];
  return f ? f(c, subleaf) : [0, 0, 0, 0];
}
