/**
 * The 8254 programmable interval timer (Intel 8254 data sheet) at ports 0x40-0x43, and the
 * PC's system control port B at 0x61 (IBM PC AT Technical Reference; Intel 82371 PIIX,
 * "NMI Status and Control Register"), which holds the channel 2 gate and reads back its
 * output, as kernels use for calibration delays.
 *
 * The counters are clocked at 1.193182 MHz (the 14.31818 MHz crystal divided by 12) from
 * the machine's virtual clock and evaluated lazily: a channel keeps the time counting
 * started and derives its count and OUT from the elapsed clock pulses. Channel 0's OUT
 * drives IRQ0 through a timer event at each rising edge (the edge-triggered PIC and IOAPIC
 * only see rising edges); channel 1 (DRAM refresh on old PCs) counts but drives nothing;
 * channel 2's OUT is port 0x61 bit 5. All six modes, binary and BCD counting, counter
 * latch, read-back (count and status) and the gate's effect in each mode are implemented.
 * As in most PC emulators, a count takes effect at the write rather than one clock pulse
 * later.
 */
import type { AccessSize, BusDevice } from "../machine/bus.js";
import { NS_PER_SECOND, type Timer, type VirtualClock } from "../machine/clock.js";
import { readBytes, writeBytes } from "./byte-registers.js";

export const PIT_PORT = 0x40;
export const PIT_PORT_COUNT = 4;
export const SYSTEM_CONTROL_B_PORT = 0x61;
/** Counter input clock: 14.31818 MHz / 12. */
export const PIT_HZ = 1_193_182;
const NS_PER_TICK = NS_PER_SECOND / PIT_HZ;
const CONTROL_REGISTER = 3;

// Control word (port 0x43).
/** Bits 7:6 SC: counter 0-2, or 3 for the read-back command. */
const CW_SC_SHIFT = 6;
const SC_READ_BACK = 3;
/** Bits 5:4 RW: 0 counter latch command, 1 LSB only, 2 MSB only, 3 LSB then MSB. */
const CW_RW_SHIFT = 4;
const RW_LATCH = 0;
const RW_LSB = 1;
const RW_MSB = 2;
const RW_BOTH = 3;
/** Bits 3:1 M: the mode; 6 and 7 are modes 2 and 3. */
const CW_MODE_SHIFT = 1;
/** Bit 0 BCD: count in four BCD decades instead of 16 bits binary. */
const CW_BCD = 1 << 0;

// Read-back command: bits 5 and 4 are active low, bits 3:1 select counters 2, 1, 0.
/** Bit 5 COUNT: when clear, latch the selected counters' counts. */
const RB_NO_COUNT = 1 << 5;
/** Bit 4 STATUS: when clear, latch their status. */
const RB_NO_STATUS = 1 << 4;
const RB_COUNTER_SHIFT = 1;

// Status byte (read-back).
/** Bit 7: the OUT pin. */
const STATUS_OUTPUT = 1 << 7;
/** Bit 6: a count was written and has not been loaded into the counting element yet. */
const STATUS_NULL_COUNT = 1 << 6;

// System control port B (0x61).
/** Bit 0: channel 2 gate. */
export const PORTB_TIMER2_GATE = 1 << 0;
/** Bit 1: speaker data enable (the speaker is channel 2 OUT AND this bit). */
export const PORTB_SPEAKER_DATA = 1 << 1;
/** Bits 3:2: parity and I/O channel check disables (NMI sources a PC emulator lacks). */
const PORTB_WRITABLE = 0x0f;
/** Bit 4 (read): toggles with every DRAM refresh request, every 15.085 us. */
export const PORTB_REFRESH_TOGGLE = 1 << 4;
/** Bit 5 (read): channel 2 OUT. */
export const PORTB_TIMER2_OUT = 1 << 5;
const REFRESH_PERIOD_NS = 15_085;

/** One counter's state, as plain data. */
export interface PitChannelSnapshot {
  mode: number;
  rw: number;
  bcd: boolean;
  /** The count in the counting element's reload register: 1-65536 (binary) or 1-10000. */
  count: number;
  /** A count written while a mode 2 or 3 period runs, loaded at the period's end. */
  pendingCount: number | null;
  /** The elapsed pulse count at which pendingCount is loaded (the end of that period). */
  pendingAt: number;
  /** Set by a count write, cleared when the count is loaded. */
  nullCount: boolean;
  /** Counting: a count is loaded and the gate (or trigger) lets it run. */
  running: boolean;
  /** A count has been loaded since the control word (modes 1 and 5 then wait for a trigger). */
  loaded: boolean;
  /** Virtual time (ns) from which the running counter counts. */
  start: number;
  /** Clock pulses counted before `start` (mode 0 and 4 gate pauses). */
  ticksBefore: number;
  gate: boolean;
  /** The first byte of an LSB-then-MSB count, while the second is awaited. */
  writeLsb: number | null;
  /** LSB-then-MSB reads: the MSB is next. */
  readMsbNext: boolean;
  latchedCount: number | null;
  latchedStatus: number | null;
}

function toBcd(v: number): number {
  return (
    (v % 10) |
    ((Math.floor(v / 10) % 10) << 4) |
    ((Math.floor(v / 100) % 10) << 8) |
    ((Math.floor(v / 1000) % 10) << 12)
  );
}

function fromBcd(v: number): number {
  return (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000;
}

class PitChannel {
  s: PitChannelSnapshot;

  constructor(
    private readonly now: () => number,
    /** Called when OUT may have changed (channel 0: IRQ0). */
    private readonly outputChanged: () => void,
    gate: boolean,
  ) {
    this.s = PitChannel.powerOn(gate);
  }

  /**
   * After power-up the 8254's modes, counts and outputs are undefined (data sheet,
   * "Initialization"); SHV starts each counter idle in mode 3 with OUT high, as a BIOS
   * leaves them, so the first control word does not make an IRQ0 edge.
   */
  static powerOn(gate: boolean): PitChannelSnapshot {
    return {
      mode: 3,
      rw: RW_BOTH,
      bcd: false,
      count: 0x10000,
      pendingCount: null,
      pendingAt: 0,
      nullCount: false,
      running: false,
      loaded: false,
      start: 0,
      ticksBefore: 0,
      gate,
      writeLsb: null,
      readMsbNext: false,
      latchedCount: null,
      latchedStatus: null,
    };
  }

  /** Clock pulses counted so far in this count (since it was loaded or triggered). */
  elapsed(t = this.now()): number {
    const s = this.s;
    if (!s.running) return s.ticksBefore;
    return s.ticksBefore + Math.max(0, Math.floor((t - s.start) / NS_PER_TICK));
  }

  /** Virtual time of elapsed pulse `d` of the running count. */
  timeOf(d: number): number {
    return this.s.start + (d - this.s.ticksBefore) * NS_PER_TICK;
  }

  /** Loads a pending mode 2/3 count when the period it waited for has ended. */
  private catchUp(t: number): void {
    const s = this.s;
    if (s.pendingCount !== null && s.running && this.elapsed(t) >= s.pendingAt) {
      this.loadPending();
    }
  }

  private loadPending(): void {
    const s = this.s;
    if (s.pendingCount === null) return;
    s.start = this.timeOf(s.pendingAt);
    s.ticksBefore = 0;
    s.count = s.pendingCount;
    s.pendingCount = null;
    s.nullCount = false;
  }

  /**
   * The rising edge at elapsed pulse `edge` has fired: the next one, counted in the frame
   * of the count that runs after it (a pending mode 2/3 count loads at a period's end,
   * which is always an edge).
   */
  edgeAfter(edge: number): number | null {
    const s = this.s;
    if (s.pendingCount !== null && edge >= s.pendingAt) {
      edge -= s.pendingAt;
      this.loadPending();
    }
    return this.nextRisingEdge(edge);
  }

  /** The counting element (CE) as a read would see it. */
  counter(t = this.now()): number {
    this.catchUp(t);
    const s = this.s;
    const d = this.elapsed(t);
    const n = s.count;
    const modulus = s.bcd ? 10000 : 0x10000;
    let v: number;
    if (!s.loaded) v = n;
    else if (s.mode === 2) v = n - (d % n);
    else if (s.mode === 3) v = n - ((2 * d) % n);
    else v = (((n - d) % modulus) + modulus) % modulus;
    v %= modulus;
    return s.bcd ? toBcd(v) : v;
  }

  /** The OUT pin. */
  output(t = this.now()): boolean {
    this.catchUp(t);
    const s = this.s;
    const d = this.elapsed(t);
    const n = s.count;
    switch (s.mode) {
      case 0: // interrupt on terminal count: low until the count reaches zero
        return s.loaded && d >= n;
      case 1: // hardware-retriggerable one-shot: low from the trigger until zero
        return !s.running || d >= n;
      case 2: // rate generator: low for the one pulse in which the count is 1
        return !s.running || d % n !== n - 1;
      case 3: // square wave: high for the first half of each period (rounded up)
        return !s.running || d % n < Math.ceil(n / 2);
      default: // 4 and 5, strobes: low for the one pulse after the count reaches zero
        return !s.running || d !== n;
    }
  }

  /**
   * Elapsed pulse count of OUT's next rising edge after `d`, or null: modes 0 and 1 rise at
   * terminal count, modes 2 and 3 at the end of every period, modes 4 and 5 one pulse
   * after terminal count.
   */
  nextRisingEdge(d: number): number | null {
    const s = this.s;
    if (!s.running || !s.loaded) return null;
    const n = s.count;
    switch (s.mode) {
      case 0:
      case 1:
        return d < n ? n : null;
      case 2:
      case 3:
        return (Math.floor(d / n) + 1) * n;
      default:
        return d < n + 1 ? n + 1 : null;
    }
  }

  writeControl(cw: number): void {
    const rw = (cw >>> CW_RW_SHIFT) & 3;
    const s = this.s;
    if (rw === RW_LATCH) {
      // Counter latch command: the count is held until read (a second latch is ignored).
      if (s.latchedCount === null) s.latchedCount = this.counter();
      return;
    }
    let mode = (cw >>> CW_MODE_SHIFT) & 7;
    if (mode > 5) mode -= 4;
    // A control word resets the counter's logic: OUT to its initial state (low in mode 0,
    // high otherwise), counting stops until a count is written.
    this.s = {
      ...PitChannel.powerOn(s.gate),
      mode,
      rw,
      bcd: (cw & CW_BCD) !== 0,
      count: s.count,
    };
    this.outputChanged();
  }

  /** Read-back: latches the count and/or the status byte. */
  readBack(count: boolean, status: boolean): void {
    const s = this.s;
    if (status && s.latchedStatus === null) {
      s.latchedStatus =
        (this.output() ? STATUS_OUTPUT : 0) |
        (s.nullCount ? STATUS_NULL_COUNT : 0) |
        (s.rw << CW_RW_SHIFT) |
        (s.mode << CW_MODE_SHIFT) |
        (s.bcd ? CW_BCD : 0);
    }
    if (count && s.latchedCount === null) s.latchedCount = this.counter();
  }

  writeCount(byte: number): void {
    const s = this.s;
    let raw: number;
    if (s.rw === RW_LSB) raw = byte;
    else if (s.rw === RW_MSB) raw = byte << 8;
    else if (s.writeLsb === null) {
      s.writeLsb = byte;
      // Mode 0: writing the first byte stops the count (8254 data sheet, mode 0).
      if (s.mode === 0 && s.running) {
        s.ticksBefore = this.elapsed();
        s.running = false;
      }
      return;
    } else {
      raw = s.writeLsb | (byte << 8);
      s.writeLsb = null;
    }
    const n = s.bcd ? fromBcd(raw) || 10000 : raw || 0x10000;
    this.load(n);
  }

  private load(n: number): void {
    const s = this.s;
    const t = this.now();
    s.nullCount = true;
    const periodic = s.mode === 2 || s.mode === 3;
    if (periodic && s.loaded && s.running) {
      // Modes 2 and 3: the running period finishes with the old count.
      this.catchUp(t);
      s.pendingCount = n;
      s.pendingAt = (Math.floor(this.elapsed(t) / s.count) + 1) * s.count;
      this.outputChanged();
      return;
    }
    s.count = n;
    s.loaded = true;
    s.ticksBefore = 0;
    s.start = t;
    if (s.mode === 1 || s.mode === 5) {
      // Hardware-triggered modes wait for a rising gate edge.
      s.running = false;
    } else {
      s.running = s.gate;
      s.nullCount = false;
    }
    this.outputChanged();
  }

  setGate(gate: boolean): void {
    const s = this.s;
    if (gate === s.gate) return;
    const t = this.now();
    this.catchUp(t);
    s.gate = gate;
    switch (s.mode) {
      case 0:
      case 4:
        // The gate enables counting: low pauses it, high resumes.
        if (!s.loaded) break;
        if (gate) {
          s.start = t;
          s.running = true;
        } else {
          s.ticksBefore = this.elapsed(t);
          s.running = false;
        }
        s.nullCount = false;
        break;
      case 1:
      case 5:
        // A rising edge (re)triggers the count.
        if (gate && s.loaded) this.restart(t);
        break;
      default:
        // Modes 2 and 3: low stops counting with OUT high; a rising edge reloads.
        if (!s.loaded) break;
        if (gate) this.restart(t);
        else {
          s.running = false;
          s.ticksBefore = 0;
        }
    }
    this.outputChanged();
  }

  private restart(t: number): void {
    const s = this.s;
    if (s.pendingCount !== null) {
      s.count = s.pendingCount;
      s.pendingCount = null;
    }
    s.start = t;
    s.ticksBefore = 0;
    s.running = true;
    s.nullCount = false;
  }

  readByte(): number {
    const s = this.s;
    if (s.latchedStatus !== null) {
      const v = s.latchedStatus;
      s.latchedStatus = null;
      return v;
    }
    const value = s.latchedCount ?? this.counter();
    let byte: number;
    if (s.rw === RW_LSB) byte = value & 0xff;
    else if (s.rw === RW_MSB) byte = value >>> 8;
    else {
      byte = s.readMsbNext ? value >>> 8 : value & 0xff;
      s.readMsbNext = !s.readMsbNext;
      if (s.readMsbNext) return byte; // the latch holds until its MSB is read too
    }
    s.latchedCount = null;
    return byte & 0xff;
  }
}

/** The three counters and the control register at 0x40-0x43. */
export class Pit8254 implements BusDevice {
  readonly name = "pit8254";
  private readonly channels: PitChannel[];
  private readonly irqTimer: Timer;
  /** Channel 0's elapsed pulse count at the rising edge irqTimer is armed for. */
  private armedEdge = 0;
  private irqLevel = false;

  /** `irq0` receives channel 0's OUT (rising edges are what the interrupt controllers see). */
  constructor(
    private readonly clock: VirtualClock,
    private readonly irq0: (level: boolean) => void = () => {},
  ) {
    const now = () => clock.now();
    this.irqTimer = clock.timer("pit ch0", () => this.channel0Edge());
    this.channels = [
      new PitChannel(now, () => this.scheduleIrq0(), true),
      new PitChannel(now, () => {}, true),
      new PitChannel(now, () => {}, false),
    ];
    this.scheduleIrq0(); // IRQ0 follows channel 0's OUT from the start
  }

  reset(): void {
    for (const [i, ch] of this.channels.entries()) ch.s = PitChannel.powerOn(i !== 2);
    this.scheduleIrq0();
  }

  /** Channel 2's gate (port 0x61 bit 0). */
  setGate2(gate: boolean): void {
    this.channels[2].setGate(gate);
  }

  output(channel: number): boolean {
    return this.channels[channel].output();
  }

  snapshot(): PitChannelSnapshot[] {
    return this.channels.map((c) => ({ ...c.s }));
  }

  read(offset: number, size: AccessSize): number {
    return readBytes(offset, size, PIT_PORT_COUNT, (r) =>
      // The control register is write-only: nothing drives the bus.
      r === CONTROL_REGISTER ? 0xff : this.channels[r].readByte(),
    );
  }

  write(offset: number, size: AccessSize, value: number): void {
    writeBytes(offset, size, PIT_PORT_COUNT, value, (r, b) => {
      if (r !== CONTROL_REGISTER) {
        this.channels[r].writeCount(b);
        return;
      }
      const sc = b >>> CW_SC_SHIFT;
      if (sc !== SC_READ_BACK) {
        this.channels[sc].writeControl(b);
        return;
      }
      for (let c = 0; c < 3; c++) {
        if (b & (1 << (RB_COUNTER_SHIFT + c))) {
          this.channels[c].readBack(!(b & RB_NO_COUNT), !(b & RB_NO_STATUS));
        }
      }
    });
  }

  /** Channel 0's OUT changed state or timing: drive IRQ0 and plan its next rising edge. */
  private scheduleIrq0(): void {
    const ch = this.channels[0];
    this.setIrq0(ch.output());
    this.armIrq0(ch.nextRisingEdge(ch.elapsed()));
  }

  private armIrq0(edge: number | null): void {
    if (edge === null) {
      this.irqTimer.disarm();
      return;
    }
    this.armedEdge = edge;
    this.irqTimer.arm(this.channels[0].timeOf(edge));
  }

  /**
   * A rising edge of channel 0's OUT: a pulse on IRQ0 (low, then high). The line then
   * stays high until the next edge: the interrupt controllers only act on rising edges.
   */
  private channel0Edge(): void {
    this.setIrq0(false);
    this.setIrq0(true);
    this.armIrq0(this.channels[0].edgeAfter(this.armedEdge));
  }

  private setIrq0(level: boolean): void {
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    this.irq0(level);
  }
}

/**
 * System control port B (0x61): channel 2's gate and speaker enable, the refresh toggle
 * and channel 2's OUT. The NMI status bits (6, 7) read zero: no parity or I/O channel
 * errors happen here.
 */
export class SystemControlPortB implements BusDevice {
  readonly name = "system-control-b";
  private value = 0;

  constructor(
    private readonly pit: Pit8254,
    private readonly clock: VirtualClock,
  ) {}

  reset(): void {
    this.value = 0;
    this.pit.setGate2(false);
  }

  read(offset: number, size: AccessSize): number {
    return readBytes(offset, size, 1, () => {
      const refresh = Math.floor(this.clock.now() / REFRESH_PERIOD_NS) & 1;
      return (
        this.value |
        (refresh ? PORTB_REFRESH_TOGGLE : 0) |
        (this.pit.output(2) ? PORTB_TIMER2_OUT : 0)
      );
    });
  }

  write(offset: number, size: AccessSize, value: number): void {
    writeBytes(offset, size, 1, value, (_r, b) => {
      this.value = b & PORTB_WRITABLE;
      this.pit.setGate2((b & PORTB_TIMER2_GATE) !== 0);
    });
  }
}
