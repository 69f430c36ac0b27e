/**
 * Architectural constants of the x86 CPU, named as in the Intel SDM, one per bit.
 */

// ---- general-purpose register numbers (ModRM encoding order) ----
export const EAX = 0;
export const ECX = 1;
export const EDX = 2;
export const EBX = 3;
export const ESP = 4;
export const EBP = 5;
export const ESI = 6;
export const EDI = 7;
export const REG32_NAMES = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
export const REG64_NAMES = [
  ...["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"],
  ...["r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"],
] as const;

// ---- segment registers (the Sreg encoding of SDM Vol. 2, 3.1.1.3) ----
export const ES = 0;
export const CS = 1;
export const SS = 2;
export const DS = 3;
export const FS = 4;
export const GS = 5;
export const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs"];

// ---- CR0 (SDM Vol. 3A, 2.5) ----
export const CR0_PE = 1 << 0; // protection enable
export const CR0_MP = 1 << 1; // monitor coprocessor: WAIT honours TS
export const CR0_EM = 1 << 2; // x87 emulation: x87 instructions raise #NM
export const CR0_TS = 1 << 3; // task switched: x87 use raises #NM
export const CR0_ET = 1 << 4; // extension type, hard-wired to 1
export const CR0_NE = 1 << 5; // numeric error reporting
export const CR0_WP = 1 << 16; // write protect: supervisor writes honour read-only pages
export const CR0_AM = 1 << 18; // alignment mask: enables #AC with EFLAGS.AC at CPL 3
export const CR0_NW = 1 << 29; // not write-through
export const CR0_CD = 1 << 30; // cache disable
export const CR0_PG = 1 << 31; // paging
/** CR0 bits this CPU implements; writing any other bit raises #GP(0). */
export const CR0_VALID =
  CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG;

// ---- CR4 (SDM Vol. 3A, 2.5) ----
export const CR4_VME = 1 << 0; // virtual-8086 mode extensions
export const CR4_PVI = 1 << 1; // protected-mode virtual interrupts
export const CR4_TSD = 1 << 2; // RDTSC is privileged
export const CR4_DE = 1 << 3; // debugging extensions: DR4/DR5 are reserved, I/O breakpoints
export const CR4_PSE = 1 << 4; // 4 MiB pages with 32-bit paging
export const CR4_PAE = 1 << 5; // physical address extension
export const CR4_MCE = 1 << 6; // machine-check enable
export const CR4_PGE = 1 << 7; // global pages
export const CR4_PCE = 1 << 8; // RDPMC at any CPL
export const CR4_OSFXSR = 1 << 9; // OS supports FXSAVE/FXRSTOR
export const CR4_OSXMMEXCPT = 1 << 10; // OS supports SIMD exceptions
export const CR4_UMIP = 1 << 11; // SGDT, SIDT, SLDT, SMSW, STR are CPL-0 only
export const CR4_VMXE = 1 << 13; // VMX enable: VMXON is allowed (SDM Vol. 3C, 24.7)
export const CR4_FSGSBASE = 1 << 16; // RDFSBASE and friends at any CPL
export const CR4_PCIDE = 1 << 17; // process-context identifiers in CR3[11:0]
export const CR4_OSXSAVE = 1 << 18; // XSAVE feature set and XCR0 enabled (fpu.ts, exec/xsave.ts)
export const CR4_SMEP = 1 << 20; // supervisor-mode execution prevention
export const CR4_SMAP = 1 << 21; // supervisor-mode access prevention
/**
 * CR4 bits this CPU implements, matching what CPUID advertises; setting any other bit
 * raises #GP(0). VME and the rest arrive with their features.
 */
export const CR4_VALID =
  CR4_TSD |
  CR4_DE |
  CR4_PSE |
  CR4_PAE |
  CR4_PGE |
  CR4_OSFXSR |
  CR4_OSXMMEXCPT |
  CR4_UMIP |
  CR4_VMXE |
  CR4_FSGSBASE |
  CR4_PCIDE |
  CR4_OSXSAVE |
  CR4_SMEP |
  CR4_SMAP;

// ---- DR6 and DR7 (SDM Vol. 3B, 18.2) ----
export const DR6_FIXED1 = 0xffff0ff0; // reserved bits that read as 1
export const DR6_BS = 1 << 14; // single step
export const DR6_BD = 1 << 13; // debug-register access detected
export const DR6_BT = 1 << 15; // task switch
export const DR7_FIXED1 = 1 << 10;
export const DR7_GD = 1 << 13; // general detect: MOV DR raises #DB

// ---- EFER, MSR 0xC0000080 (SDM Vol. 3A, 2.2.1) ----
export const EFER_SCE = 1 << 0; // SYSCALL enable
export const EFER_LME = 1 << 8; // IA-32e mode enable
export const EFER_LMA = 1 << 10; // IA-32e mode active (read-only)
export const EFER_NXE = 1 << 11; // execute-disable bit enable

// ---- exception vectors (SDM Vol. 3A, Table 6-1) ----
export const DE = 0; // divide error
export const DB = 1; // debug
export const NMI = 2;
export const BP = 3; // breakpoint (INT3)
export const OF_VEC = 4; // overflow (INTO)
export const BR = 5; // BOUND range exceeded
export const UD = 6; // invalid opcode
export const NM = 7; // device not available
export const DF_VEC = 8; // double fault
export const TS = 10; // invalid TSS
export const NP = 11; // segment not present
export const SS_VEC = 12; // stack-segment fault
export const GP = 13; // general protection
export const PF_VEC = 14; // page fault
export const MF = 16; // x87 floating-point error
export const AC_VEC = 17; // alignment check
export const MC = 18; // machine check
export const XM = 19; // SIMD floating-point
export const EXCEPTION_NAMES = [
  "#DE",
  "#DB",
  "NMI",
  "#BP",
  "#OF",
  "#BR",
  "#UD",
  "#NM",
  "#DF",
  "#CSO",
  "#TS",
  "#NP",
  "#SS",
  "#GP",
  "#PF",
  "#15",
  "#MF",
  "#AC",
  "#MC",
  "#XM",
  "#VE",
  "#CP",
];
/** Exceptions that push an error code (SDM Vol. 3A, Table 6-1). */
export const HAS_ERROR_CODE = (v: number): boolean =>
  v === DF_VEC || (v >= TS && v <= PF_VEC) || v === AC_VEC || v === 21;

/** Physical-address width reported by CPUID.80000008H:EAX[7:0]. */
export const MAXPHYADDR = 36;

// ---- page-fault error code (SDM Vol. 3A, 4.7) ----
export const PFEC_P = 1 << 0; // the fault was a protection violation (page was present)
export const PFEC_W = 1 << 1; // the access was a write
export const PFEC_U = 1 << 2; // the access was at CPL 3
export const PFEC_RSVD = 1 << 3; // a reserved bit was set in a paging-structure entry
export const PFEC_I = 1 << 4; // the access was an instruction fetch (with NX enabled)

// ---- paging-structure entry bits (SDM Vol. 3A, 4.3 and 4.4) ----
export const PTE_P = 1 << 0; // present
export const PTE_RW = 1 << 1; // writable
export const PTE_US = 1 << 2; // user
export const PTE_PWT = 1 << 3;
export const PTE_PCD = 1 << 4;
export const PTE_A = 1 << 5; // accessed
export const PTE_D = 1 << 6; // dirty
export const PTE_PS = 1 << 7; // page size (in a PDE: a large page)
export const PTE_G = 1 << 8; // global
export const PTE_PAT_LARGE = 1 << 12; // PAT bit of a large-page PDE

// ---- segment descriptor access rights, in the VMCS access-rights format ----
// (SDM Vol. 3C, 25.4.1, Table 25-2): bits 3:0 type, 4 S, 6:5 DPL, 7 P, 12 AVL, 13 L,
// 14 D/B, 15 G, 16 unusable. Keeping this format from day one lets VMX load and save
// segment registers directly.
export const AR_TYPE_ACCESSED = 1 << 0;
export const AR_TYPE_RW = 1 << 1; // data: writable; code: readable
export const AR_TYPE_EC = 1 << 2; // data: expand-down; code: conforming
export const AR_TYPE_CODE = 1 << 3;
export const AR_S = 1 << 4; // code or data (not system)
export const AR_DPL_SHIFT = 5;
export const AR_P = 1 << 7;
export const AR_AVL = 1 << 12;
export const AR_L = 1 << 13;
export const AR_DB = 1 << 14;
export const AR_G = 1 << 15;
export const AR_UNUSABLE = 1 << 16;

// ---- system descriptor types (SDM Vol. 3A, Table 3-2) ----
export const SYS_TSS16_AVAIL = 1;
export const SYS_LDT = 2;
export const SYS_TSS16_BUSY = 3;
export const SYS_CALL_GATE16 = 4;
export const SYS_TASK_GATE = 5;
export const SYS_INT_GATE16 = 6;
export const SYS_TRAP_GATE16 = 7;
export const SYS_TSS32_AVAIL = 9;
export const SYS_TSS32_BUSY = 11;
export const SYS_CALL_GATE32 = 12;
export const SYS_INT_GATE32 = 14;
export const SYS_TRAP_GATE32 = 15;

// ---- interruptibility state (SDM Vol. 3C, Table 25-3) ----
export const BLOCKING_STI = 1 << 0; // the instruction after an STI that set IF
export const BLOCKING_MOV_SS = 1 << 1; // the instruction after MOV SS or POP SS
