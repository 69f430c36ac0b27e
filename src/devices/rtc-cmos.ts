/**
 * The PC's real-time clock and CMOS RAM: a Motorola MC146818A behind the index port 0x70
 * and the data port 0x71 (IBM PC AT Technical Reference, "CMOS RAM Address Map"). Bit 7 of
 * the index port disables NMIs (the chipset's NMI gate: parity and I/O channel errors).
 *
 * The clock runs on the machine's virtual clock from a start date chosen by the machine
 * (fixed unless time is paced to the wall clock, so runs are reproducible). Implemented:
 * time, date and alarm registers in BCD or binary and in 12- or 24-hour format, the update
 * cycle once a second with UIP 244 us before it, the SET bit, the divider reset, the
 * periodic, alarm and update-ended interrupts on IRQ8 with the flags in register C, and the
 * CMOS bytes a BIOS fills in: the memory sizes, the equipment byte, the century and the
 * CPU count, with the standard checksum over 0x10-0x2D. The square-wave output (SQWE) has
 * no pin to drive on a PC.
 */
import type { AccessSize, BusDevice } from "../machine/bus.js";
import { NS_PER_SECOND, type Timer, type VirtualClock } from "../machine/clock.js";
import { readBytes, writeBytes } from "./byte-registers.js";

export const RTC_PORT = 0x70;
export const RTC_PORT_COUNT = 2;
/** Port 0x70 bit 7: NMI disable. */
export const RTC_INDEX_NMI_DISABLE = 1 << 7;
const RTC_INDEX_MASK = 0x7f;
const CMOS_SIZE = 128;

// Clock registers (MC146818A data sheet, Figure 3 "Address Map").
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;

// Register A.
/** Bit 7 UIP: an update cycle is in progress or starts within 244 us (read-only). */
export const REG_A_UIP = 1 << 7;
/** Bits 6:4 DV: time base divider; 010 runs from a 32.768 kHz crystal, 11x holds it reset. */
const REG_A_DV_SHIFT = 4;
const REG_A_DV_MASK = 0x70;
const DV_32768 = 0b010;
const DV_RESET = 0b110;
/** Bits 3:0 RS: periodic interrupt rate. */
const REG_A_RS_MASK = 0x0f;

// Register B.
/** Bit 7 SET: updates halted so software can set the time. */
export const REG_B_SET = 1 << 7;
/** Bit 6 PIE: periodic interrupt enable. */
export const REG_B_PIE = 1 << 6;
/** Bit 5 AIE: alarm interrupt enable. */
export const REG_B_AIE = 1 << 5;
/** Bit 4 UIE: update-ended interrupt enable. */
export const REG_B_UIE = 1 << 4;
/** Bit 2 DM: binary (1) or BCD (0) data. */
export const REG_B_DM_BINARY = 1 << 2;
/** Bit 1 24/12: 24-hour (1) or 12-hour (0) format. */
export const REG_B_24H = 1 << 1;

// Register C (read-only; a read clears it).
/** Bit 7 IRQF: an enabled flag is set; the IRQ output is asserted. */
export const REG_C_IRQF = 1 << 7;
/** Bit 6 PF: a periodic interrupt period ended. */
export const REG_C_PF = 1 << 6;
/** Bit 5 AF: the time matched the alarm. */
export const REG_C_AF = 1 << 5;
/** Bit 4 UF: an update cycle ended. */
export const REG_C_UF = 1 << 4;

/** Register D bit 7 VRT: the RAM and time are valid (the battery is good). */
export const REG_D_VRT = 1 << 7;

/** 12-hour format: hours bit 7 marks PM. */
const HOURS_PM = 1 << 7;
/** Alarm bytes with both top bits set match any value. */
const ALARM_DONT_CARE = 0xc0;

// CMOS RAM bytes a BIOS fills in (IBM PC AT Technical Reference; QEMU and SeaBIOS for the
// ones past 0x33).
const CMOS_EQUIPMENT = 0x14;
export const CMOS_BASE_MEMORY_LO = 0x15;
export const CMOS_EXTENDED_MEMORY_LO = 0x17;
const CMOS_CHECKSUM_HI = 0x2e;
const CMOS_CHECKSUM_FIRST = 0x10;
const CMOS_CHECKSUM_LAST = 0x2d;
export const CMOS_EXTENDED_MEMORY2_LO = 0x30;
/** The century, BCD (or binary), kept with the clock; the ACPI FADT names this index. */
export const CMOS_CENTURY = 0x32;
export const CMOS_MEMORY_ABOVE_16M_LO = 0x34;
export const CMOS_MEMORY_ABOVE_4G = 0x5b;
export const CMOS_CPU_COUNT_MINUS_1 = 0x5f;

/** UIP goes high this long before each update (MC146818A, tBUC). */
const UIP_LEAD_NS = 244_000;
/** The first update after the divider leaves reset comes half a second later. */
const FIRST_UPDATE_NS = 500_000_000;
const CRYSTAL_HZ = 32_768;

export interface RtcTime {
  year: number; // full year, e.g. 2000
  month: number; // 1-12
  day: number; // 1-31
  hour: number; // 0-23
  minute: number;
  second: number;
  /** 1-7, Sunday = 1. */
  dayOfWeek: number;
}

export interface RtcOptions {
  /** The time and date the clock shows at power-on (UTC). */
  start: Date;
  ramBytes: number;
  cpus: number;
  /** IRQ8. */
  irq?: (level: boolean) => void;
}

export interface RtcSnapshot {
  index: number;
  nmiDisabled: boolean;
  cmos: number[];
  time: RtcTime;
  regC: number;
  /** When the divider chain last left reset. */
  dividerStart: number;
  /** The periodic tick whose flag register C last reported. */
  lastPeriodicTick: number;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const toBcd = (v: number) => ((Math.floor(v / 10) % 10) << 4) | (v % 10);
const fromBcd = (v: number) => (v >> 4) * 10 + (v & 0xf);

export class RtcCmos implements BusDevice {
  readonly name = "rtc-cmos";
  private s: RtcSnapshot;
  private readonly updateTimer: Timer;
  private readonly periodicTimer: Timer;
  /** The update (counted from the divider's start) and periodic tick the timers are armed for. */
  private armedUpdate = 0;
  private armedTick = 0;
  private irqLevel = false;
  private readonly irq: (level: boolean) => void;

  constructor(
    private readonly clock: VirtualClock,
    private readonly opts: RtcOptions,
  ) {
    this.irq = opts.irq ?? (() => {});
    this.updateTimer = clock.timer("rtc update", () => this.update());
    this.periodicTimer = clock.timer("rtc periodic", () => this.periodicTick());
    this.s = this.powerOn();
    this.schedule();
  }

  /** Power-on: the start time, the state a BIOS leaves (BCD, 24-hour, 1024 Hz rate). */
  private powerOn(): RtcSnapshot {
    const d = this.opts.start;
    const cmos = new Array<number>(CMOS_SIZE).fill(0);
    cmos[RTC_REG_A] = (DV_32768 << REG_A_DV_SHIFT) | 0x06;
    cmos[RTC_REG_B] = REG_B_24H;
    cmos[RTC_REG_D] = REG_D_VRT;
    // Equipment: no floppy, no x87, primary display EGA/VGA (bits 5:4 = 00).
    cmos[CMOS_EQUIPMENT] = 0x00;
    const put16 = (at: number, v: number) => {
      cmos[at] = v & 0xff;
      cmos[at + 1] = (v >>> 8) & 0xff;
    };
    const kib = Math.floor(this.opts.ramBytes / 1024);
    put16(CMOS_BASE_MEMORY_LO, 640);
    const extended = Math.min(Math.max(kib - 1024, 0), 0xffff);
    put16(CMOS_EXTENDED_MEMORY_LO, extended);
    put16(CMOS_EXTENDED_MEMORY2_LO, extended);
    const above16m = Math.max(this.opts.ramBytes - 16 * 1024 * 1024, 0) / 65536;
    put16(CMOS_MEMORY_ABOVE_16M_LO, Math.min(Math.floor(above16m), 0xffff));
    // 0x5B-0x5D: RAM above 4 GiB in 64 KiB units; SHV places all RAM below 4 GiB.
    cmos[CMOS_MEMORY_ABOVE_4G] =
      cmos[CMOS_MEMORY_ABOVE_4G + 1] =
      cmos[CMOS_MEMORY_ABOVE_4G + 2] =
        0;
    cmos[CMOS_CPU_COUNT_MINUS_1] = this.opts.cpus - 1;
    let sum = 0;
    for (let i = CMOS_CHECKSUM_FIRST; i <= CMOS_CHECKSUM_LAST; i++) sum += cmos[i];
    cmos[CMOS_CHECKSUM_HI] = (sum >>> 8) & 0xff;
    cmos[CMOS_CHECKSUM_HI + 1] = sum & 0xff;
    return {
      index: 0,
      nmiDisabled: false,
      cmos,
      time: {
        year: d.getUTCFullYear(),
        month: d.getUTCMonth() + 1,
        day: d.getUTCDate(),
        hour: d.getUTCHours(),
        minute: d.getUTCMinutes(),
        second: d.getUTCSeconds(),
        dayOfWeek: d.getUTCDay() + 1,
      },
      regC: 0,
      dividerStart: this.clock.now(),
      lastPeriodicTick: 0,
    };
  }

  reset(): void {
    // The clock and the CMOS RAM are battery-backed; a reset only clears the interrupt
    // enables and flags (MC146818A, "RESET": PIE, AIE, UIE and the IRQ flags).
    this.s.cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE);
    this.s.regC = 0;
    this.s.nmiDisabled = false;
    this.updateIrq();
    this.schedule();
  }

  /** NMIs from the chipset are gated off (port 0x70 bit 7). */
  get nmiDisabled(): boolean {
    return this.s.nmiDisabled;
  }

  /** The time the clock shows now. */
  get time(): RtcTime {
    return { ...this.s.time };
  }

  snapshot(): RtcSnapshot {
    return { ...this.s, cmos: [...this.s.cmos], time: { ...this.s.time } };
  }

  read(offset: number, size: AccessSize): number {
    // The index port is write-only: reads find nothing driving the bus.
    return readBytes(offset, size, RTC_PORT_COUNT, (r) =>
      r === 0 ? 0xff : this.readRegister(this.s.index),
    );
  }

  write(offset: number, size: AccessSize, value: number): void {
    writeBytes(offset, size, RTC_PORT_COUNT, value, (r, b) => {
      if (r === 0) {
        this.s.index = b & RTC_INDEX_MASK;
        this.s.nmiDisabled = (b & RTC_INDEX_NMI_DISABLE) !== 0;
      } else {
        this.writeRegister(this.s.index, b);
      }
    });
  }

  private get regA(): number {
    return this.s.cmos[RTC_REG_A];
  }
  private get regB(): number {
    return this.s.cmos[RTC_REG_B];
  }

  private dividerRunning(): boolean {
    return (this.regA & REG_A_DV_MASK) >>> REG_A_DV_SHIFT <= DV_32768;
  }

  private updateTime(k: number): number {
    return this.s.dividerStart + FIRST_UPDATE_NS + k * NS_PER_SECOND;
  }

  /** The first update cycle after now. */
  private nextUpdate(): number {
    const since = this.clock.now() - this.s.dividerStart - FIRST_UPDATE_NS;
    let k = since < 0 ? 0 : Math.floor(since / NS_PER_SECOND);
    while (this.updateTime(k) <= this.clock.now()) k++;
    return k;
  }

  private periodNs(): number {
    const rs = this.regA & REG_A_RS_MASK;
    if (rs === 0) return 0;
    const cycles = rs <= 2 ? 1 << (rs + 6) : 1 << (rs - 1);
    return (cycles * NS_PER_SECOND) / CRYSTAL_HZ;
  }

  private periodicTickIndex(): number {
    const p = this.periodNs();
    if (p === 0 || !this.dividerRunning()) return this.s.lastPeriodicTick;
    return Math.floor((this.clock.now() - this.s.dividerStart) / p);
  }

  private readRegister(index: number): number {
    switch (index) {
      case RTC_SECONDS:
        return this.encode(this.s.time.second);
      case RTC_MINUTES:
        return this.encode(this.s.time.minute);
      case RTC_HOURS:
        return this.encodeHour(this.s.time.hour);
      case RTC_DAY_OF_WEEK:
        return this.encode(this.s.time.dayOfWeek);
      case RTC_DAY_OF_MONTH:
        return this.encode(this.s.time.day);
      case RTC_MONTH:
        return this.encode(this.s.time.month);
      case RTC_YEAR:
        return this.encode(this.s.time.year % 100);
      case CMOS_CENTURY:
        return this.encode(Math.floor(this.s.time.year / 100) % 100);
      case RTC_REG_A: {
        const t = this.updateTime(this.nextUpdate()) - this.clock.now();
        const uip = this.dividerRunning() && !(this.regB & REG_B_SET) && t <= UIP_LEAD_NS;
        return (this.regA & ~REG_A_UIP) | (uip ? REG_A_UIP : 0);
      }
      case RTC_REG_C: {
        // Periodic flags are counted lazily: a period ended since the last read sets PF.
        const tick = this.periodicTickIndex();
        if (tick > this.s.lastPeriodicTick) this.s.regC |= REG_C_PF;
        this.s.lastPeriodicTick = tick;
        const v = this.s.regC | (this.irqFlag() ? REG_C_IRQF : 0);
        this.s.regC = 0;
        this.updateIrq();
        return v;
      }
      default:
        return this.s.cmos[index];
    }
  }

  private writeRegister(index: number, v: number): void {
    const t = this.s.time;
    switch (index) {
      case RTC_SECONDS:
        t.second = this.decode(v);
        break;
      case RTC_MINUTES:
        t.minute = this.decode(v);
        break;
      case RTC_HOURS:
        t.hour = this.decodeHour(v);
        break;
      case RTC_DAY_OF_WEEK:
        t.dayOfWeek = this.decode(v);
        break;
      case RTC_DAY_OF_MONTH:
        t.day = this.decode(v);
        break;
      case RTC_MONTH:
        t.month = this.decode(v);
        break;
      case RTC_YEAR:
        t.year = Math.floor(t.year / 100) * 100 + (this.decode(v) % 100);
        break;
      case CMOS_CENTURY:
        t.year = (this.decode(v) % 100) * 100 + (t.year % 100);
        break;
      case RTC_REG_A: {
        const wasReset = !this.dividerRunning() || this.dividerInReset();
        this.s.cmos[RTC_REG_A] = v & ~REG_A_UIP;
        // Leaving divider reset restarts the chain: the first update half a second later.
        if (wasReset && this.dividerRunning()) this.s.dividerStart = this.clock.now();
        this.s.lastPeriodicTick = this.periodicTickIndex();
        break;
      }
      case RTC_REG_B:
        this.s.cmos[RTC_REG_B] = v;
        this.updateIrq();
        break;
      case RTC_REG_C:
      case RTC_REG_D:
        break; // read-only
      default:
        this.s.cmos[index] = v;
    }
    this.schedule();
  }

  private dividerInReset(): boolean {
    return (this.regA & REG_A_DV_MASK) >>> REG_A_DV_SHIFT >= DV_RESET;
  }

  private encode(v: number): number {
    return this.regB & REG_B_DM_BINARY ? v : toBcd(v);
  }
  private decode(v: number): number {
    return this.regB & REG_B_DM_BINARY ? v : fromBcd(v);
  }

  private encodeHour(h: number): number {
    if (this.regB & REG_B_24H) return this.encode(h);
    const pm = h >= 12;
    const h12 = h % 12 === 0 ? 12 : h % 12;
    return this.encode(h12) | (pm ? HOURS_PM : 0);
  }

  private decodeHour(v: number): number {
    if (this.regB & REG_B_24H) return this.decode(v);
    const h12 = this.decode(v & ~HOURS_PM) % 12;
    return v & HOURS_PM ? h12 + 12 : h12;
  }

  private irqFlag(): boolean {
    const b = this.regB;
    const c = this.s.regC;
    return !!(
      (c & REG_C_PF && b & REG_B_PIE) ||
      (c & REG_C_AF && b & REG_B_AIE) ||
      (c & REG_C_UF && b & REG_B_UIE)
    );
  }

  private updateIrq(): void {
    const level = this.irqFlag();
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq(level);
    }
  }

  /** Arms the update-cycle and (when enabled) periodic-interrupt events. */
  private schedule(): void {
    if (this.dividerRunning()) this.armUpdate(this.nextUpdate());
    else this.updateTimer.disarm();
    const p = this.periodNs();
    if (p > 0 && this.dividerRunning() && this.regB & REG_B_PIE) {
      let j = this.periodicTickIndex() + 1;
      while (this.s.dividerStart + j * p <= this.clock.now()) j++;
      this.armTick(j);
    } else {
      this.periodicTimer.disarm();
    }
  }

  private armUpdate(k: number): void {
    this.armedUpdate = k;
    this.updateTimer.arm(this.updateTime(k));
  }

  private armTick(j: number): void {
    this.armedTick = j;
    this.periodicTimer.arm(this.s.dividerStart + j * this.periodNs());
  }

  /** The once-a-second update cycle: advance the time, check the alarm, set UF. */
  private update(): void {
    if (!(this.regB & REG_B_SET)) {
      this.tick();
      this.s.regC |= REG_C_UF;
      const cmos = this.s.cmos;
      const matches = (alarm: number, value: number) =>
        (alarm & ALARM_DONT_CARE) === ALARM_DONT_CARE || alarm === value;
      if (
        matches(cmos[RTC_SECONDS_ALARM], this.readRegister(RTC_SECONDS)) &&
        matches(cmos[RTC_MINUTES_ALARM], this.readRegister(RTC_MINUTES)) &&
        matches(cmos[RTC_HOURS_ALARM], this.readRegister(RTC_HOURS))
      ) {
        this.s.regC |= REG_C_AF;
      }
      this.updateIrq();
    }
    this.armUpdate(this.armedUpdate + 1);
  }

  private periodicTick(): void {
    this.s.regC |= REG_C_PF;
    this.s.lastPeriodicTick = Math.max(this.s.lastPeriodicTick, this.armedTick);
    this.updateIrq();
    this.armTick(this.armedTick + 1);
  }

  /** One second later, with the calendar's carries. */
  private tick(): void {
    const t = this.s.time;
    if (++t.second < 60) return;
    t.second = 0;
    if (++t.minute < 60) return;
    t.minute = 0;
    if (++t.hour < 24) return;
    t.hour = 0;
    t.dayOfWeek = (t.dayOfWeek % 7) + 1;
    if (++t.day <= daysInMonth(t.year, t.month)) return;
    t.day = 1;
    if (++t.month <= 12) return;
    t.month = 1;
    t.year = (t.year + 1) % 10000;
  }
}
