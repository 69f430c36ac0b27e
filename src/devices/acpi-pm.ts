/**
 * ACPI fixed power-management hardware (ACPI 6.5, 4.8 "ACPI Hardware Features"), at the
 * I/O addresses QEMU's PIIX4 uses and the FADT reports: the PM1a event block at 0x600
 * (PM1_STS, PM1_EN), the PM1a control block at 0x604 (PM1_CNT) and the PM timer at 0x608.
 *
 * The PM timer is the 24-bit, 3.579545 MHz counter of 4.8.2.1, read from the machine's
 * virtual clock; TMR_STS is set each time its bit 23 changes and, with TMR_EN, raises the
 * SCI (IRQ9, level-triggered, active high). SCI_EN reads 1: the FADT has no SMI command
 * port, so the platform is always in ACPI mode (4.8.2.5). Writing SLP_EN with SLP_TYP 0,
 * which the DSDT's \_S5 object names, turns the machine off.
 */
import type { AccessSize, BusDevice } from "../machine/bus.js";
import { NS_PER_SECOND, type Timer, type VirtualClock } from "../machine/clock.js";
import { readBytes } from "./byte-registers.js";

export const ACPI_PM_PORT = 0x600;
export const ACPI_PM_PORT_COUNT = 12;
export const PM1A_EVT_BLK = ACPI_PM_PORT;
export const PM1_EVT_LEN = 4;
export const PM1A_CNT_BLK = ACPI_PM_PORT + 4;
export const PM1_CNT_LEN = 2;
export const PM_TMR_BLK = ACPI_PM_PORT + 8;
export const PM_TMR_LEN = 4;
/** The SCI's ISA interrupt (FADT SCI_INT). */
export const SCI_IRQ = 9;
/** SLP_TYP for the soft-off state S5, as the DSDT's \_S5 package says. */
export const SLP_TYP_S5 = 0;

/** ACPI 4.8.2.1: the PM timer runs at 3.579545 MHz. */
export const PM_TIMER_HZ = 3_579_545;
const PM_TIMER_MASK = 0xffffff;
/** TMR_STS is set when bit 23 of the counter changes. */
const PM_TIMER_CARRY_TICKS = 1 << 23;

// Register offsets within the device.
const OFF_PM1_STS = 0;
const OFF_PM1_EN = 2;
const OFF_PM1_CNT = 4;
const OFF_PM_TMR = 8;

// PM1 status and enable bits (ACPI 6.5, Tables 4.16 and 4.17).
/** Bit 0 TMR_STS / TMR_EN: the PM timer's bit 23 changed. */
export const PM1_TMR = 1 << 0;
/** Bit 5 GBL_STS / GBL_EN: the BIOS released the global lock (no BIOS code here). */
export const PM1_GBL = 1 << 5;
/** Bit 8 PWRBTN_STS / PWRBTN_EN: the power button. */
export const PM1_PWRBTN = 1 << 8;
/** Bit 10 RTC_STS / RTC_EN: the RTC alarm woke the system. */
export const PM1_RTC = 1 << 10;
/** Bit 15 WAK_STS: the system woke from a sleeping state. */
export const PM1_WAK = 1 << 15;
const PM1_EN_WRITABLE = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_RTC;

// PM1 control bits (ACPI 6.5, Table 4.18).
/** Bit 0 SCI_EN: power-management events raise the SCI (always 1 here). */
export const PM1_CNT_SCI_EN = 1 << 0;
/** Bit 1 BM_RLD: bus-master requests take the processor out of C3. */
const PM1_CNT_BM_RLD = 1 << 1;
/** Bits 12:10 SLP_TYP: the sleeping state SLP_EN enters. */
const PM1_CNT_SLP_TYP_SHIFT = 10;
const PM1_CNT_SLP_TYP_MASK = 7 << PM1_CNT_SLP_TYP_SHIFT;
/** Bit 13 SLP_EN (write-only): enter the SLP_TYP state. */
export const PM1_CNT_SLP_EN = 1 << 13;
const PM1_CNT_STORED = PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP_MASK;

export interface AcpiPmSnapshot {
  status: number;
  enable: number;
  control: number;
  /** The carry count (counter value >> 23, not masked) TMR_STS last accounted for. */
  lastCarry: number;
}

export class AcpiPm implements BusDevice {
  readonly name = "acpi-pm";
  private s: AcpiPmSnapshot;
  private readonly carryTimer: Timer;
  /** The carry count the timer is armed for. */
  private armedCarry = 0;
  private sciLevel = false;

  constructor(
    private readonly clock: VirtualClock,
    /** The SCI line (IRQ9). */
    private readonly sci: (level: boolean) => void = () => {},
    /** SLP_EN with SLP_TYP S5: power off. Other sleeping states are not supported. */
    private readonly powerOff: () => void = () => {},
  ) {
    this.carryTimer = clock.timer("pm timer carry", () => this.carry());
    this.s = { status: 0, enable: 0, control: 0, lastCarry: this.carries() };
  }

  reset(): void {
    this.s = { status: 0, enable: 0, control: 0, lastCarry: this.carries() };
    this.schedule();
    this.updateSci();
  }

  snapshot(): AcpiPmSnapshot {
    return { ...this.s };
  }

  /** Counter ticks since virtual time 0 (the counter runs from power-on, never reset). */
  private ticks(): number {
    return Math.floor((this.clock.now() * PM_TIMER_HZ) / NS_PER_SECOND);
  }

  private carries(): number {
    return Math.floor(this.ticks() / PM_TIMER_CARRY_TICKS);
  }

  /** The 24-bit counter value. */
  timerValue(): number {
    return this.ticks() & PM_TIMER_MASK;
  }

  read(offset: number, size: AccessSize): number {
    if (offset === OFF_PM_TMR)
      return size === 4 ? this.timerValue() : this.timerValue() & (size === 2 ? 0xffff : 0xff);
    return readBytes(offset, size, ACPI_PM_PORT_COUNT, (r) => {
      const word = (value: number) => (r & 1 ? value >>> 8 : value) & 0xff;
      switch (r & ~1) {
        case OFF_PM1_STS:
          return word(this.status());
        case OFF_PM1_EN:
          return word(this.s.enable);
        case OFF_PM1_CNT:
          return word(this.s.control | PM1_CNT_SCI_EN);
        default:
          // The timer read byte by byte from its own offsets.
          return (this.timerValue() >>> (8 * (r - OFF_PM_TMR))) & 0xff;
      }
    });
  }

  write(offset: number, size: AccessSize, value: number): void {
    // Registers are 16 bits wide; assemble them from byte writes so each write sees its word.
    if (offset >= OFF_PM_TMR) return; // the timer is read-only
    const reg = offset & ~1;
    let word = value;
    let mask = size === 1 ? 0xff : 0xffff;
    if (offset & 1) {
      word <<= 8;
      mask = 0xff00;
    }
    switch (reg) {
      case OFF_PM1_STS:
        // Write 1 to clear.
        this.status();
        this.s.status &= ~(word & mask);
        break;
      case OFF_PM1_EN:
        this.s.enable = (this.s.enable & ~mask) | (word & mask & PM1_EN_WRITABLE);
        this.schedule();
        break;
      case OFF_PM1_CNT: {
        const v = (this.s.control & ~mask) | (word & mask);
        this.s.control = v & PM1_CNT_STORED;
        if (v & mask & PM1_CNT_SLP_EN) {
          const type = (v & PM1_CNT_SLP_TYP_MASK) >>> PM1_CNT_SLP_TYP_SHIFT;
          if (type === SLP_TYP_S5) this.powerOff();
        }
        break;
      }
    }
    if (size === 4 && reg === OFF_PM1_STS) this.write(OFF_PM1_EN, 2, value >>> 16);
    this.updateSci();
  }

  /** PM1_STS, with TMR_STS caught up with the counter. */
  private status(): number {
    const c = this.carries();
    if (c > this.s.lastCarry) {
      this.s.status |= PM1_TMR;
      this.s.lastCarry = c;
    }
    return this.s.status;
  }

  private carry(): void {
    if (this.armedCarry > this.s.lastCarry) {
      this.s.status |= PM1_TMR;
      this.s.lastCarry = this.armedCarry;
    }
    this.updateSci();
    this.arm(this.armedCarry + 1);
  }

  /** With TMR_EN, an event at the next carry, to raise the SCI on time. */
  private schedule(): void {
    if (!(this.s.enable & PM1_TMR)) {
      this.carryTimer.disarm();
      return;
    }
    let next = this.carries() + 1;
    while (this.carryTime(next) <= this.clock.now()) next++;
    this.arm(next);
  }

  private carryTime(carry: number): number {
    return Math.ceil((carry * PM_TIMER_CARRY_TICKS * NS_PER_SECOND) / PM_TIMER_HZ);
  }

  private arm(carry: number): void {
    this.armedCarry = carry;
    this.carryTimer.arm(this.carryTime(carry));
  }

  private updateSci(): void {
    const level = (this.status() & this.s.enable) !== 0;
    if (level !== this.sciLevel) {
      this.sciLevel = level;
      this.sci(level);
    }
  }
}
