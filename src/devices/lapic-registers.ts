/**
 * The local APIC's register map (SDM Vol. 3A, chapter 11): IA32_APIC_BASE, the register
 * offsets of the xAPIC page (whose x2APIC MSR is 0x800 + offset / 16), and the fields of
 * the LVT entries, the spurious-interrupt vector register, the ESR, the ICR and the DFR.
 * The device is lapic.ts.
 */
import { LVT_TIMER_MODE } from "./lapic-timer.js";

/** IA32_APIC_BASE's power-on base (SDM 11.4.1). */
export const XAPIC_DEFAULT_BASE = 0xfee00000;
export const XAPIC_PAGE_SIZE = 0x1000;
/** Version 0x14 (an integrated APIC), highest LVT entry 5 (bits 23:16), no EOI suppression. */
export const LAPIC_VERSION = 0x00050014;
// IA32_APIC_BASE (SDM 11.4.4, Figure 11-5).
/** Bit 8 BSP: the bootstrap processor. */
export const APIC_BASE_BSP = 1 << 8;
/** Bit 10 EXTD: x2APIC mode (with EN). */
export const APIC_BASE_EXTD = 1 << 10;
/** Bit 11 EN: the APIC is globally enabled. */
export const APIC_BASE_EN = 1 << 11;
export const APIC_BASE_ADDRESS_MASK = 0xfffff000;

// Register offsets in the xAPIC page (SDM Table 11-1); the x2APIC MSR is 0x800 + offset/16.
export const REG_ID = 0x020;
export const REG_VERSION = 0x030;
export const REG_TPR = 0x080;
export const REG_APR = 0x090;
export const REG_PPR = 0x0a0;
export const REG_EOI = 0x0b0;
export const REG_RRD = 0x0c0;
export const REG_LDR = 0x0d0;
export const REG_DFR = 0x0e0;
export const REG_SVR = 0x0f0;
export const REG_ISR = 0x100;
export const REG_TMR = 0x180;
export const REG_IRR = 0x200;
export const REG_ESR = 0x280;
export const REG_ICR_LO = 0x300;
export const REG_ICR_HI = 0x310;
export const REG_LVT_TIMER = 0x320;
export const REG_LVT_THERMAL = 0x330;
export const REG_LVT_PMC = 0x340;
export const REG_LVT_LINT0 = 0x350;
export const REG_LVT_LINT1 = 0x360;
export const REG_LVT_ERROR = 0x370;
export const REG_TIMER_INITIAL = 0x380;
export const REG_TIMER_CURRENT = 0x390;
export const REG_TIMER_DIVIDE = 0x3e0;
/** x2APIC only: SELF IPI (MSR 0x83F). */
export const REG_SELF_IPI = 0x3f0;
export const X2APIC_MSR_BASE = 0x800;
export const IA32_TSC_DEADLINE = 0x6e0;

// LVT entries (SDM Figure 11-8), in register order.
export const LVT_TIMER = 0;
export const LVT_THERMAL = 1;
export const LVT_PMC = 2;
export const LVT_LINT0 = 3;
export const LVT_LINT1 = 4;
export const LVT_ERROR = 5;
export const LVT_COUNT = 6;
/** Bits 7:0: vector. */
export const LVT_VECTOR = 0xff;
/** Bits 10:8: delivery mode (thermal, PMC, LINT0, LINT1). */
export const LVT_DELIVERY_MODE_SHIFT = 8;
export const LVT_DELIVERY_MODE = 7 << LVT_DELIVERY_MODE_SHIFT;
/** Bit 13: input pin polarity, active low (LINT0, LINT1). */
export const LVT_POLARITY_LOW = 1 << 13;
/** Bit 14: remote IRR, a level-triggered fixed interrupt is in service (read-only). */
export const LVT_REMOTE_IRR = 1 << 14;
/** Bit 15: level-triggered (LINT0, LINT1). */
export const LVT_LEVEL = 1 << 15;
/** Bit 16: masked. */
export const LVT_MASKED = 1 << 16;
// Bits 18:17, the timer mode, are the timer's (lapic-timer.ts).
/** The bits software may write in each LVT entry (SDM Figure 11-8). */
export const LVT_WRITABLE: number[] = [];
LVT_WRITABLE[LVT_TIMER] = LVT_VECTOR | LVT_MASKED | LVT_TIMER_MODE;
LVT_WRITABLE[LVT_THERMAL] = LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED;
LVT_WRITABLE[LVT_PMC] = LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED;
LVT_WRITABLE[LVT_LINT0] =
  LVT_VECTOR | LVT_DELIVERY_MODE | LVT_POLARITY_LOW | LVT_LEVEL | LVT_MASKED;
LVT_WRITABLE[LVT_LINT1] = LVT_WRITABLE[LVT_LINT0];
LVT_WRITABLE[LVT_ERROR] = LVT_VECTOR | LVT_MASKED;

// Spurious-interrupt vector register (SDM Figure 11-23).
/** Bit 8: APIC software enable. */
export const SVR_APIC_ENABLED = 1 << 8;
/** Bit 9: focus processor checking disabled. */
export const SVR_FOCUS_DISABLED = 1 << 9;
export const SVR_WRITABLE = 0xff | SVR_APIC_ENABLED | SVR_FOCUS_DISABLED;

// Error status register (SDM Figure 11-9).
/** Bit 5: send illegal vector. */
export const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
/** Bit 6: receive illegal vector. */
export const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
/** Bit 7: illegal register address. */
export const ESR_ILLEGAL_REGISTER = 1 << 7;

// Interrupt command register (SDM Figure 11-12).
/** Bit 11: logical destination mode. */
export const ICR_LOGICAL = 1 << 11;
/** Bits 10:8: delivery mode. */
export const ICR_DELIVERY_MODE_SHIFT = 8;
// Bit 12, the delivery status, always reads idle: IPIs go out at once.
/** Bit 14: level assert (0 with level trigger: INIT level de-assert). */
export const ICR_ASSERT = 1 << 14;
/** Bit 15: level-triggered. */
export const ICR_LEVEL = 1 << 15;
/** Bits 19:18: destination shorthand. */
export const ICR_SHORTHAND_SHIFT = 18;
export const ICR_LO_WRITABLE =
  0xff |
  (7 << ICR_DELIVERY_MODE_SHIFT) |
  ICR_LOGICAL |
  ICR_ASSERT |
  ICR_LEVEL |
  (3 << ICR_SHORTHAND_SHIFT);

/** DFR bits 31:28: flat model (0xF) or cluster model (0x0); bits 27:0 read as ones. */
export const DFR_FLAT = 0xffffffff;
export const DFR_MODEL_MASK = 0xf0000000;
