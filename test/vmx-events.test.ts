/**
 * VMX non-root events (src/cpu/vmx/events.ts): event injection at VM entry, the exception
 * bitmap and #PF error-code mask/match, IDT-vectoring information, external-interrupt
 * exiting with acknowledge-on-exit, NMI exiting and virtual NMIs, interrupt and NMI
 * windows, the VMX-preemption timer, the monitor trap flag, triple fault, INIT and SIPI.
 * Each runs a small hand-assembled guest on the soft CPU (helpers/vmx-guest.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ActivityState, type InterruptLines } from "../src/engine/engine.js";
import { BP, CR4_PSE, DB, DR6_FIXED1, ESP, GP, NP, PF_VEC, UD } from "../src/cpu/arch.js";
import { TF } from "../src/cpu/flags.js";
import { ExitCtl, Pin, Proc } from "../src/cpu/vmx/controls.js";
import { ExitReason } from "../src/cpu/vmx/exit-reasons.js";
import { F } from "../src/cpu/vmx/fields.js";
import { exceptionExits } from "../src/cpu/vmx/events.js";
import { Vmcs } from "../src/cpu/vmx/vmcs.js";
import {
  CODE,
  GDT,
  HANDLERS,
  IDT,
  descriptorTables,
  dword,
  guest,
  inHost,
} from "./helpers/vmx-guest.js";

const tables = descriptorTables;
/** VM-entry interruption information: valid, vector, type, error code. */
const inject = (vector: number, type: number, err = false) =>
  0x80000000 | vector | (type << 8) | (err ? 1 << 11 : 0) | 0;
const NOPS = [0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xf4];

// ---------------------------------------------------------------- injection

test("injection: an external interrupt goes through the guest's IDT", () => {
  const g = guest(NOPS, { before: tables, fields: [[F.EntryInterruptionInfo, inject(0x40, 0)]] });
  assert.equal(g.cpu.eip, HANDLERS + 0x40 * 16);
  const esp = g.cpu.regs[ESP] >>> 0;
  assert.equal(dword(g.mem, esp), CODE); // return address: the guest RIP
  g.cpu.run(10);
  assert.ok(g.cpu.vmx.nonRoot);
  assert.equal(g.cpu.eip, HANDLERS + 0x40 * 16 + 1); // halted in the handler
});

test("injection: a hardware exception pushes its error code; CR2 is untouched", () => {
  const g = guest(NOPS, {
    before: tables,
    fields: [
      [F.EntryInterruptionInfo, inject(PF_VEC, 3, true)],
      [F.EntryExceptionErrorCode, 0x6],
    ],
  });
  const esp = g.cpu.regs[ESP] >>> 0;
  assert.equal(dword(g.mem, esp), 6);
  assert.equal(dword(g.mem, esp + 4), CODE);
  assert.equal(g.cpu.cr2, 0);
  assert.equal(g.cpu.eip, HANDLERS + PF_VEC * 16);
});

test("injection: a software interrupt returns past the instruction length", () => {
  const g = guest(NOPS, {
    before: tables,
    fields: [
      [F.EntryInterruptionInfo, inject(0x80, 4)],
      [F.EntryInstructionLength, 2],
    ],
  });
  assert.equal(dword(g.mem, g.cpu.regs[ESP] >>> 0), CODE + 2);
});

test("injection: an NMI with virtual NMIs sets virtual-NMI blocking; IRET ends it", () => {
  const g = guest(NOPS, {
    pin: Pin.NmiExiting | Pin.VirtualNmis,
    before: tables,
    fields: [[F.EntryInterruptionInfo, inject(2, 2)]],
  });
  assert.equal(g.v.read(F.GuestInterruptibilityState) & 8, 8);
  assert.equal(g.cpu.nmiBlocked, false);
  g.cpu.run(5); // HLT in the NMI handler
  g.cpu.activity = ActivityState.Active; // as if woken
  g.cpu.run(1); // IRET
  assert.equal(g.v.read(F.GuestInterruptibilityState) & 8, 0);
});

test("injection: type 7 vector 0 is a pending MTF VM exit before the first instruction", () => {
  const g = guest(NOPS, { fields: [[F.EntryInterruptionInfo, inject(0, 7)]] });
  assert.equal(g.runToExit(), ExitReason.MonitorTrapFlag);
  assert.equal(g.v.read(F.GuestRip), CODE);
});

test("a fault delivering an injected event exits with IDT-vectoring information", () => {
  const g = guest(NOPS, {
    exceptionBitmap: 1 << GP,
    before: (cpu, mem) => {
      tables(cpu, mem);
      cpu.idtrLimit = 0x40 * 8 - 1; // vector 0x40 lies beyond the limit: #GP
    },
    fields: [[F.EntryInterruptionInfo, inject(0x40, 0)]],
  });
  // The exit happened during the entry's delivery.
  assert.equal(g.cpu.vmx.nonRoot, false);
  assert.equal(g.v.read(F.ExitReason), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000b0d);
  assert.equal(g.v.read(F.ExitInterruptionErrorCode), 0x40 * 8 + 2 + 1); // IDT, EXT
  assert.equal(g.v.read(F.IdtVectoringInfo) >>> 0, 0x80000040);
  assert.equal(g.v.read(F.GuestRip), CODE);
  // Every VM exit clears the valid bit of the VM-entry interruption information.
  assert.equal(g.v.read(F.EntryInterruptionInfo) >>> 31, 0);
});

// ---------------------------------------------------------------- exceptions

test("exception bitmap: #PF follows the error-code mask/match rule", () => {
  const v = new Vmcs(0);
  v.write(F.ExceptionBitmap, 1 << PF_VEC);
  v.write(F.PageFaultErrorCodeMask, 0x1);
  v.write(F.PageFaultErrorCodeMatch, 0x1);
  assert.equal(exceptionExits(v, PF_VEC, 0x3), true); // matches, bit set: exit
  assert.equal(exceptionExits(v, PF_VEC, 0x2), false); // no match, bit set: no exit
  v.write(F.ExceptionBitmap, 0);
  assert.equal(exceptionExits(v, PF_VEC, 0x2), true); // no match, bit clear: exit
  assert.equal(exceptionExits(v, PF_VEC, 0x3), false);
  assert.equal(exceptionExits(v, GP, 0), false);
  v.write(F.ExceptionBitmap, 1 << GP);
  assert.equal(exceptionExits(v, GP, 0), true);
});

test("#PF exit: qualification is the linear address, CR2 is not written", () => {
  // 32-bit paging with one 4-MiB page at 0: reading 0x00800010 faults (not present).
  const code = [0xa1, 0x10, 0x00, 0x80, 0x00]; // mov eax, [0x00800010]
  const g = guest(code, {
    exceptionBitmap: 1 << PF_VEC,
    before: (cpu, mem) => {
      new DataView(mem.ram.buffer).setUint32(0xb000, 0x83, true); // PDE 0: P, RW, PS
      cpu.cr3 = 0xb000;
      cpu.cr4 |= CR4_PSE;
      cpu.cr0 |= 0x80000000;
      cpu.flushTlb(true);
    },
  });
  g.cpu.cr2 = 0x1234;
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitQualification), 0x00800010);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000b0e);
  assert.equal(g.v.read(F.ExitInterruptionErrorCode), 0);
  assert.equal(g.cpu.cr2, 0x1234);
});

test("#UD exit and INT3 exit (software exception with its length)", () => {
  let g = guest([0x0f, 0x0b], { exceptionBitmap: 1 << UD });
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000306);
  g = guest([0x90, 0xcc], { exceptionBitmap: 1 << BP, before: tables });
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000603);
  assert.equal(g.v.read(F.ExitInstructionLength), 1);
  assert.equal(g.v.read(F.GuestRip), CODE + 1);
});

test("#DB exit from single-stepping: qualification BS, DR6 untouched", () => {
  const g = guest(NOPS, { exceptionBitmap: 1 << DB, before: tables });
  g.cpu.flags.word |= TF;
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitQualification), 1 << 14);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000301);
  assert.equal(g.v.read(F.GuestRip), CODE + 1); // a trap: after the NOP
  assert.equal(g.cpu.dr[6] >>> 0, DR6_FIXED1 >>> 0);
});

test("INT n through a not-present gate: #NP exit during delivery of the software interrupt", () => {
  const g = guest([0xcd, 0x21], {
    exceptionBitmap: 1 << NP,
    before: (cpu, mem) => {
      tables(cpu, mem);
      mem.ram[IDT + 0x21 * 8 + 5] &= 0x7f; // clear P
    },
  });
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) & 0xff, NP);
  assert.equal(g.v.read(F.ExitInterruptionErrorCode), 0x21 * 8 + 2);
  assert.equal(g.v.read(F.IdtVectoringInfo) >>> 0, 0x80000421);
  assert.equal(g.v.read(F.ExitInstructionLength), 2);
});

test("a task switch is a VM exit: selector, source and instruction length", () => {
  const g = guest([0xea, 0, 0, 0, 0, 0x20, 0], { before: tables }); // JMP 20:0
  assert.equal(g.runToExit(), ExitReason.TaskSwitch);
  assert.equal(g.v.read(F.ExitQualification) >>> 0, 0x80000020); // source 2: JMP
  assert.equal(g.v.read(F.ExitInstructionLength), 7);
  assert.equal(g.v.read(F.GuestRip), CODE);
});

test("a triple fault in non-root operation is a VM exit", () => {
  const g = guest([0x0f, 0x0b], {
    before: (cpu) => {
      cpu.idtrLimit = 0; // every delivery faults: #UD -> #GP -> #DF -> triple fault
    },
  });
  assert.equal(g.runToExit(), ExitReason.TripleFault);
  assert.equal(g.v.read(F.IdtVectoringInfo) >>> 31, 0);
  assert.ok(inHost(g.cpu));
});

// ---------------------------------------------------------------- external interrupts, NMIs

/** Interrupt lines with one pending vector. */
function lines(vector: number): InterruptLines & { pending: boolean } {
  return {
    pending: true,
    hasInterrupt() {
      return this.pending;
    },
    acknowledge() {
      this.pending = false;
      return vector;
    },
  };
}

test("external-interrupt exiting with acknowledge: the vector in the exit information", () => {
  const g = guest(NOPS, {
    pin: Pin.ExternalInterruptExiting,
    exit: ExitCtl.AcknowledgeInterruptOnExit,
  });
  const l = lines(0x31);
  g.cpu.attachInterrupts(l);
  g.cpu.flags.word &= ~(1 << 9); // IF = 0 does not block it
  assert.equal(g.runToExit(), ExitReason.ExternalInterrupt);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000031);
  assert.equal(l.pending, false);
});

test("external-interrupt exiting without acknowledge leaves the interrupt pending", () => {
  const g = guest(NOPS, { pin: Pin.ExternalInterruptExiting });
  const l = lines(0x31);
  g.cpu.attachInterrupts(l);
  assert.equal(g.runToExit(), ExitReason.ExternalInterrupt);
  assert.equal(g.v.read(F.ExitInterruptionInfo), 0);
  assert.equal(l.pending, true);
});

test("without external-interrupt exiting the guest takes it through its IDT", () => {
  const g = guest(NOPS, { before: tables });
  g.cpu.flags.word |= 1 << 9;
  g.cpu.attachInterrupts(lines(0x41));
  g.cpu.run(3);
  assert.ok(g.cpu.vmx.nonRoot);
  assert.equal(g.cpu.eip, HANDLERS + 0x41 * 16 + 1);
});

test("NMI exiting: an NMI exits from HLT, saving the HLT activity state", () => {
  const g = guest(NOPS, {
    pin: Pin.NmiExiting,
    fields: [[F.GuestActivityState, ActivityState.Hlt]],
  });
  g.cpu.nmi();
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000202);
  assert.equal(g.v.read(F.GuestActivityState), ActivityState.Hlt);
  // An NMI exit leaves NMIs blocked in the host (without virtual NMIs).
  assert.equal(g.cpu.nmiBlocked, true);
});

test("NMI exiting without virtual NMIs: blocking by NMI holds the NMI in the guest", () => {
  const g = guest(NOPS, { pin: Pin.NmiExiting, before: (cpu) => (cpu.nmiBlocked = true) });
  g.cpu.nmi();
  g.cpu.run(20);
  assert.ok(g.cpu.vmx.nonRoot); // still in the guest, halted at the end of the NOPs
  assert.equal(g.cpu.nmiPending, true);
});

test("NMI exiting with virtual NMIs: virtual-NMI blocking does not hold physical NMIs", () => {
  const g = guest(NOPS, {
    pin: Pin.NmiExiting | Pin.VirtualNmis,
    fields: [[F.GuestInterruptibilityState, 8]],
  });
  g.cpu.nmi();
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.GuestInterruptibilityState) & 8, 8); // saved as it was
  // A VM exit caused by an NMI blocks NMIs in the host (28.5, "Updating Non-Register State").
  assert.equal(g.cpu.nmiBlocked, true);
});

test("without NMI exiting the guest takes the NMI through its IDT", () => {
  const g = guest(NOPS, { before: tables });
  g.cpu.nmi();
  g.cpu.run(2);
  assert.equal(g.cpu.eip, HANDLERS + 2 * 16 + 1);
  assert.equal(g.cpu.nmiBlocked, true);
});

// ---------------------------------------------------------------- windows

test("interrupt window: opens after the instruction that follows STI", () => {
  const g = guest([0xfb, 0x90, 0x90, 0xf4], { proc: Proc.InterruptWindowExiting });
  g.cpu.flags.word &= ~(1 << 9);
  assert.equal(g.runToExit(), ExitReason.InterruptWindow);
  assert.equal(g.v.read(F.GuestRip), CODE + 2); // STI, then one more instruction
  assert.equal(g.v.read(F.GuestInterruptibilityState) & 3, 0);
});

test("interrupt window with IF = 1 exits before the first instruction", () => {
  const g = guest(NOPS, { proc: Proc.InterruptWindowExiting });
  g.cpu.flags.word |= 1 << 9;
  assert.equal(g.runToExit(), ExitReason.InterruptWindow);
  assert.equal(g.v.read(F.GuestRip), CODE);
});

test("NMI window: opens when IRET ends virtual-NMI blocking", () => {
  // PUSHFD; PUSH CS; PUSH target; IRET; target: NOP ...
  const target = CODE + 8;
  const code = [0x9c, 0x0e, 0x68, target & 0xff, target >> 8, 0, 0, 0xcf, ...NOPS];
  const g = guest(code, {
    pin: Pin.NmiExiting | Pin.VirtualNmis,
    proc: Proc.NmiWindowExiting,
    before: tables,
    fields: [[F.GuestInterruptibilityState, 8]],
  });
  assert.equal(g.runToExit(), ExitReason.NmiWindow);
  assert.equal(g.v.read(F.GuestRip), target);
  assert.equal(g.v.read(F.GuestInterruptibilityState) & 8, 0);
});

// ---------------------------------------------------------------- timer, MTF, INIT, SIPI

test("VMX-preemption timer: exits once the TSC has counted value << rate ticks", () => {
  const loop = [0xeb, 0xfe]; // jmp $
  const g = guest(loop, {
    pin: Pin.ActivatePreemptionTimer,
    exit: ExitCtl.SavePreemptionTimer,
    fields: [[F.PreemptionTimerValue, 3]],
  });
  const start = g.cpu.msr.tsc();
  assert.equal(g.runToExit(10_000), ExitReason.PreemptionTimer);
  const ticks = g.cpu.msr.tsc() - start;
  // Between 2 and 3 full periods of 32 TSC ticks (the count starts mid-period).
  assert.ok(ticks > 2 * 32 && ticks <= 3 * 32 + 2, `ticks ${ticks}`);
  assert.equal(g.v.read(F.PreemptionTimerValue), 0);
});

test("VMX-preemption timer with value 0 exits before the first instruction", () => {
  const g = guest(NOPS, { pin: Pin.ActivatePreemptionTimer });
  assert.equal(g.runToExit(), ExitReason.PreemptionTimer);
  assert.equal(g.v.read(F.GuestRip), CODE);
});

test("VMX-preemption timer wakes a halted guest", () => {
  const g = guest(NOPS, {
    pin: Pin.ActivatePreemptionTimer,
    fields: [
      [F.PreemptionTimerValue, 1],
      [F.GuestActivityState, ActivityState.Hlt],
    ],
  });
  assert.equal(g.cpu.run(10).kind, "halt");
  assert.ok(g.cpu.vmx.nonRoot);
  g.cpu.instructionsRetired += 64; // the machine's time passes while the guest halts
  assert.equal(g.runToExit(), ExitReason.PreemptionTimer);
  assert.equal(g.v.read(F.GuestActivityState), ActivityState.Hlt);
});

test("monitor trap flag: an exit after each instruction, ahead of the single-step trap", () => {
  let g = guest([0x90, 0x90], { proc: Proc.MonitorTrapFlag });
  assert.equal(g.runToExit(), ExitReason.MonitorTrapFlag);
  assert.equal(g.v.read(F.GuestRip), CODE + 1);
  g = guest([0x90, 0x90], { proc: Proc.MonitorTrapFlag, exceptionBitmap: 1 << DB });
  g.cpu.flags.word |= TF;
  assert.equal(g.runToExit(), ExitReason.MonitorTrapFlag);
  assert.equal(g.v.read(F.GuestPendingDebugExceptions), 1 << 14); // BS pending
});

test("INIT exits (the vCPU is not reset); SIPI exits from wait-for-SIPI with its vector", () => {
  let g = guest(NOPS);
  g.cpu.regs[0] = 0x1234;
  g.cpu.init();
  assert.equal(g.runToExit(), ExitReason.Init);
  assert.equal(g.v.read(F.GuestRip), CODE);
  g = guest(NOPS, { fields: [[F.GuestActivityState, ActivityState.WaitForSipi]] });
  g.cpu.init(); // blocked in wait-for-SIPI
  assert.equal(g.cpu.run(10).kind, "halt");
  assert.ok(g.cpu.vmx.nonRoot);
  g.cpu.sipi(0x9a);
  assert.equal(g.runToExit(), ExitReason.Sipi);
  assert.equal(g.v.read(F.ExitQualification), 0x9a);
});

test("INIT is held in VMX root operation", () => {
  const g = guest([0x0f, 0xa2]);
  assert.equal(g.runToExit(), ExitReason.Cpuid); // back in the host, still in VMX operation
  g.cpu.eip = g.cpu.nextEip = 0x3000;
  g.cpu.activity = ActivityState.Active;
  g.cpu.init();
  g.cpu.run(1);
  assert.ok(g.cpu.vmx.on);
  assert.equal(g.cpu.initPending, true);
});

test("an NMI held while the guest ran reaches the host right after an NMI-window exit", () => {
  // Virtual NMIs: physical NMIs are unblocked in the guest; the NMI window has priority
  // over the NMI, and the host (not blocking NMIs after this exit) then takes the NMI.
  const g = guest(NOPS, {
    pin: Pin.NmiExiting | Pin.VirtualNmis,
    proc: Proc.NmiWindowExiting,
    before: tables,
    fields: [
      [F.HostIdtrBase, IDT],
      [F.HostGdtrBase, GDT],
    ],
  });
  g.cpu.nmi();
  g.cpu.run(10);
  assert.equal(g.v.read(F.ExitReason), ExitReason.NmiWindow);
  assert.equal(g.cpu.vmx.nonRoot, false);
  assert.equal(g.cpu.eip, HANDLERS + 2 * 16 + 1); // the host's NMI handler, halted
  assert.equal(g.cpu.nmiBlocked, true);
});

test("a fault on an IRET that ended virtual-NMI blocking sets bit 12 of the exit information", () => {
  // PUSH 202H; PUSH 0 (a null CS); PUSH target; IRET: #GP(0) after unblocking.
  const code = [0x68, 0x02, 0x02, 0, 0, 0x6a, 0x00, 0x68, 0, 0x10, 0, 0, 0xcf];
  const g = guest(code, {
    pin: Pin.NmiExiting | Pin.VirtualNmis,
    exceptionBitmap: 1 << GP,
    before: tables,
    fields: [[F.GuestInterruptibilityState, 8]],
  });
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitInterruptionInfo) >>> 0, 0x80001b0d);
  assert.equal(g.v.read(F.GuestInterruptibilityState) & 8, 0);
  // Without blocking before the IRET, bit 12 stays clear.
  const h = guest(code, {
    pin: Pin.NmiExiting | Pin.VirtualNmis,
    exceptionBitmap: 1 << GP,
    before: tables,
  });
  assert.equal(h.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(h.v.read(F.ExitInterruptionInfo) >>> 0, 0x80000b0d);
});

test("pending debug exceptions after VM entry: a #DB trap before the first instruction", () => {
  let g = guest(NOPS, {
    before: tables,
    fields: [[F.GuestPendingDebugExceptions, (1 << 14) | 1]], // BS, B0
  });
  assert.equal(g.cpu.eip, HANDLERS + DB * 16);
  assert.equal(dword(g.mem, g.cpu.regs[ESP] >>> 0), CODE);
  assert.equal(g.cpu.dr[6] & 0x4001, 0x4001);
  // With #DB in the exception bitmap it exits, DR6 untouched.
  g = guest(NOPS, {
    exceptionBitmap: 1 << DB,
    before: tables,
    fields: [[F.GuestPendingDebugExceptions, 1 << 14]],
  });
  assert.equal(g.cpu.vmx.nonRoot, false);
  assert.equal(g.v.read(F.ExitReason), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitQualification), 1 << 14);
  assert.equal(g.v.read(F.GuestRip), CODE);
});

test("#DB for general detect exits with BD; DR6 and DR7.GD stay as they were", () => {
  const g = guest([0x0f, 0x21, 0xc0], {
    exceptionBitmap: 1 << DB,
    exit: ExitCtl.SaveDebugControls,
    before: tables,
  }); // MOV EAX, DR0
  g.cpu.dr[7] |= 1 << 13; // GD
  assert.equal(g.runToExit(), ExitReason.ExceptionOrNmi);
  assert.equal(g.v.read(F.ExitQualification), 1 << 13);
  assert.equal(g.v.read(F.GuestRip), CODE); // a fault: on the MOV
  assert.equal(g.v.read(F.GuestDr7) & (1 << 13), 1 << 13); // GD still set
  assert.equal(g.cpu.dr[6] >>> 0, DR6_FIXED1 >>> 0);
});
