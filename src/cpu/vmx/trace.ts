/**
 * `--trace vmx`: one line per VM entry and VM exit, with the exit reason by its SDM name
 * (exit-reasons.ts), the exit qualification decoded where it has structure (I/O, CR and
 * DR access, EPT violations, exceptions), and the guest RIP; on a failed VM entry, the
 * check that failed with its SDM section, the field and its value. Lines go to the sink
 * in `cpu.vmx.trace` (the CLI sends them to stderr or a file, never to the serial output).
 */
import type { Cpu } from "../cpu.js";
import { EXCEPTION_NAMES, REG64_NAMES } from "../arch.js";
import { EXIT_REASON_NAMES, ExitReason } from "./exit-reasons.js";
import type { ExitInfo } from "./exit.js";
import { F } from "./fields.js";

const hex = (v: number): string => `0x${v.toString(16)}`;

/** A 64-bit value from its halves, in hex. */
export function hex64(lo: number, hi: number): string {
  if (hi >>> 0 === 0) return hex(lo >>> 0);
  return `0x${(hi >>> 0).toString(16)}${(lo >>> 0).toString(16).padStart(8, "0")}`;
}

/** Name of a basic exit reason (low 16 bits of the exit-reason field). */
export function exitReasonName(reason: number): string {
  const basic = reason & 0xffff;
  const name = EXIT_REASON_NAMES[basic] ?? `reason ${basic}`;
  return reason & 0x80000000 ? `${name} (VM-entry failure)` : name;
}

/** Interruption information (SDM Vol. 3C, Table 25-18) in words. */
export function describeInterruption(info: number): string {
  if (!(info & 0x80000000)) return "none";
  const vector = info & 0xff;
  const type = (info >>> 8) & 7;
  const types = ["external interrupt", "?", "NMI", "hardware exception", "software interrupt"];
  const more = ["privileged software exception", "software exception", "other event"];
  const t = [...types, ...more][type];
  const what = type === 3 || type === 6 ? (EXCEPTION_NAMES[vector] ?? hex(vector)) : hex(vector);
  return `${t} ${what}${info & 0x800 ? " with error code" : ""}`;
}

/**
 * The exit qualification of `reason` in words where the SDM gives it structure
 * (SDM Vol. 3C, 28.2.1: Tables 28-3 CR access, 28-4 MOV DR, 28-5 I/O, 28-7 EPT violation).
 */
export function describeQualification(reason: number, q: number, info: ExitInfo = {}): string {
  switch (reason & 0xffff) {
    case ExitReason.IoInstruction: {
      const size = (q & 7) + 1;
      const dir = q & 8 ? "in" : "out";
      const str = q & 0x10 ? (q & 0x20 ? " rep string" : " string") : "";
      const how = q & 0x40 ? "imm" : "dx";
      return `${dir} port=${hex((q >>> 16) & 0xffff)} size=${size}${str} (${how})`;
    }
    case ExitReason.CrAccess: {
      const cr = q & 0xf;
      const type = (q >>> 4) & 3;
      const reg = REG64_NAMES[(q >>> 8) & 0xf];
      if (type === 0) return `mov to cr${cr} from ${reg}`;
      if (type === 1) return `mov from cr${cr} to ${reg}`;
      if (type === 2) return "clts";
      return `lmsw ${hex((q >>> 16) & 0xffff)} (${q & 0x40 ? "memory" : "register"})`;
    }
    case ExitReason.DrAccess: {
      const dir = q & 0x10 ? "from" : "to";
      const reg = REG64_NAMES[(q >>> 8) & 0xf];
      return `mov ${dir} dr${q & 7} ${dir === "to" ? "from" : "to"} ${reg}`;
    }
    case ExitReason.EptViolation: {
      const acc = ["read", "write", "fetch"].filter((_, k) => q & (1 << k)).join("+");
      const perm = ["r", "w", "x"].map((p, k) => (q & (8 << k) ? p : "-")).join("");
      const gpa = info.guestPhysical !== undefined ? ` gpa=${hex(info.guestPhysical)}` : "";
      const gla = q & 0x80 && info.guestLinear !== undefined ? ` gla=${hex(info.guestLinear)}` : "";
      return `${acc || "access"} entry=${perm}${gpa}${gla}${q & 0x100 ? "" : " (paging structure)"}`;
    }
    case ExitReason.EptMisconfig:
      return info.guestPhysical !== undefined ? `gpa=${hex(info.guestPhysical)}` : "";
    case ExitReason.ExceptionOrNmi:
      return describeInterruption(info.interruptionInfo ?? 0);
    default:
      return q === 0 ? "" : `qualification=${hex(q)}`;
  }
}

/** Prefix of every line: the vCPU. */
const who = (c: Cpu): string => `vmx cpu${c.id}:`;

/** The guest or host RIP as the CPU keeps it (folded 48 bits in IA-32e mode). */
const rip = (c: Cpu): string => hex(c.eip < 0 ? c.eip >>> 0 : c.eip);

/** A VM exit, traced before the guest state is saved (c is still the guest). */
export function traceExit(c: Cpu, reason: number, q: number, info: ExitInfo): void {
  const t = c.vmx.trace;
  if (t === null) return;
  const detail = describeQualification(reason, q, info);
  t(`${who(c)} VM exit ${exitReasonName(reason)}${detail ? ` ${detail}` : ""} rip=${rip(c)}`);
}

/** A successful VM entry (after the guest state is loaded). */
export function traceEntry(c: Cpu, launch: boolean): void {
  const t = c.vmx.trace;
  if (t === null) return;
  const v = c.vmx.vmcs;
  const inj = v.read(F.EntryInterruptionInfo);
  const ev = inj & 0x80000000 ? ` inject ${describeInterruption(inj)}` : "";
  t(`${who(c)} VM entry (${launch ? "VMLAUNCH" : "VMRESUME"}) rip=${rip(c)}${ev}`);
}

/**
 * A VM entry that failed a check (entry-checks.ts): "VM-entry check failed: <SDM section>
 * <description>: <field name> = <value>", then the outcome (VM-instruction error or
 * VM-entry failure exit).
 */
export function traceEntryFailure(c: Cpu, message: string, outcome: string): void {
  const t = c.vmx.trace;
  if (t === null) return;
  t(`${who(c)} VM-entry check failed: ${message} (${outcome})`);
}

/** Any other VMX event worth a line: VMXON, VMXOFF, VMX aborts. */
export function traceNote(c: Cpu, text: string): void {
  c.vmx.trace?.(`${who(c)} ${text}`);
}
