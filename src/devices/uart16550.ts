/**
 * A 16550A UART (PC16550D datasheet): the PC's serial port. Eight registers at offsets 0-7;
 * 16-byte receive FIFO; interrupts with the datasheet's four priority levels on an `irq`
 * output. The line is not timed: a byte written to THR reaches the sink at once, so the
 * transmitter (and its FIFO) is always empty; received bytes are timed only for the FIFO
 * character timeout, against the machine's virtual clock.
 */
import { allOnes, type AccessSize, type BusDevice } from "../machine/bus.js";

/** Register offsets. With LCR.DLAB set, offsets 0 and 1 are the divisor latch. */
const REG_RBR_THR_DLL = 0;
const REG_IER_DLM = 1;
const REG_IIR_FCR = 2;
const REG_LCR = 3;
const REG_MCR = 4;
const REG_LSR = 5;
const REG_MSR = 6;
const REG_SCR = 7;
export const UART_PORT_COUNT = 8;

// Interrupt Enable Register.
/** ERBFI: received data available (and, in FIFO mode, character timeout). */
export const IER_ERBFI = 1 << 0;
/** ETBEI: transmitter holding register empty. */
export const IER_ETBEI = 1 << 1;
/** ELSI: receiver line status. */
export const IER_ELSI = 1 << 2;
/** EDSSI: modem status. */
export const IER_EDSSI = 1 << 3;
const IER_MASK = 0x0f;

// Interrupt Identification Register: bit 0 clear means an interrupt is pending; bits 3:1
// name the highest-priority one; bits 7:6 are set when the FIFOs are enabled.
/** Bit 0 set: no interrupt pending. */
export const IIR_NO_INTERRUPT = 0x01;
/** Priority 1: overrun, parity or framing error, or break. Cleared by reading LSR. */
export const IIR_LINE_STATUS = 0x06;
/** Priority 2: received data available (FIFO at its trigger level). Cleared by reading it. */
export const IIR_RX_DATA = 0x04;
/** Priority 2: FIFO character timeout. Cleared by reading RBR. */
export const IIR_RX_TIMEOUT = 0x0c;
/** Priority 3: THR empty. Cleared by reading IIR (when it is the reported source) or writing THR. */
export const IIR_THR_EMPTY = 0x02;
/** Priority 4: a modem status input changed. Cleared by reading MSR. */
export const IIR_MODEM_STATUS = 0x00;
/** Bits 7:6: both set while FCR bit 0 enables the FIFOs. */
export const IIR_FIFOS_ENABLED = 0xc0;

// FIFO Control Register (write only).
/** Enables both FIFOs; changing it clears them. Other bits are only written while it is set. */
export const FCR_FIFO_ENABLE = 1 << 0;
/** Clears the receive FIFO; self-clearing. */
export const FCR_RX_RESET = 1 << 1;
/** Clears the transmit FIFO; self-clearing (ours is always empty). */
export const FCR_TX_RESET = 1 << 2;
/** Bits 7:6: the receive FIFO level that raises the received-data interrupt. */
const FCR_TRIGGER_SHIFT = 6;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14];

// Line Control Register.
/** Bits 1:0: word length minus 5. */
const LCR_WORD_LENGTH_MASK = 0x03;
/** STB: two stop bits (1.5 with 5-bit words). */
const LCR_STOP_BITS = 1 << 2;
/** PEN: a parity bit follows the data bits. */
const LCR_PARITY_ENABLE = 1 << 3;
/** DLAB: offsets 0 and 1 access the divisor latch. */
export const LCR_DLAB = 1 << 7;

// Modem Control Register: outputs to the modem (in loopback, to the MSR inputs).
/** DTR: data terminal ready (loopback: DSR). */
export const MCR_DTR = 1 << 0;
/** RTS: request to send (loopback: CTS). */
export const MCR_RTS = 1 << 1;
/** OUT1: user output 1 (loopback: RI). */
export const MCR_OUT1 = 1 << 2;
/** OUT2: user output 2 (loopback: DCD); PC boards use it to gate the IRQ line. */
export const MCR_OUT2 = 1 << 3;
/** LOOP: transmitter output feeds the receiver; MCR bits 3:0 drive the modem inputs. */
export const MCR_LOOP = 1 << 4;
const MCR_MASK = 0x1f;

// Line Status Register.
/** DR: at least one byte waits in RBR or the receive FIFO. */
export const LSR_DR = 1 << 0;
/** OE: a received byte was lost because RBR or the FIFO was full. Cleared by reading LSR. */
export const LSR_OE = 1 << 1;
/** THRE: THR (transmit FIFO) empty. */
export const LSR_THRE = 1 << 5;
/** TEMT: THR and the transmit shift register empty. */
export const LSR_TEMT = 1 << 6;
// PE, FE, BI (bits 2-4) and the FIFO error bit 7 stay clear: bytes from the host carry no
// parity, framing or break conditions.

// Modem Status Register: bits 3:0 are change indicators, cleared by reading MSR; bits 7:4
// are the input lines.
/** DCTS: CTS changed. */
export const MSR_DCTS = 1 << 0;
/** DDSR: DSR changed. */
export const MSR_DDSR = 1 << 1;
/** TERI: trailing edge of RI (it went from on to off). */
export const MSR_TERI = 1 << 2;
/** DDCD: DCD changed. */
export const MSR_DDCD = 1 << 3;
/** CTS: clear to send. */
export const MSR_CTS = 1 << 4;
/** DSR: data set ready. */
export const MSR_DSR = 1 << 5;
/** RI: ring indicator. */
export const MSR_RI = 1 << 6;
/** DCD: data carrier detect. */
export const MSR_DCD = 1 << 7;
const MSR_DELTAS = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD;
/** The host side looks like a connected terminal: CTS, DSR and DCD on, no ring. */
const MSR_LINES_CONNECTED = MSR_CTS | MSR_DSR | MSR_DCD;

const FIFO_SIZE = 16;
/** The 1.8432 MHz crystal divided by 16: the baud rate with divisor 1. */
const BAUD_BASE = 115200;
/** The divisor latch is undefined at power-on; start at 9600 baud, a common default. */
const POWER_ON_DIVISOR = 12;
/** The character timeout fires after four character times without receiver activity. */
const TIMEOUT_CHARACTERS = 4;

export interface Uart16550Options {
  name: string;
  /** Virtual time in nanoseconds, for the receiver's character timeout. */
  now: () => number;
  /** Bytes written to THR; without it they go nowhere (nothing is attached to the port). */
  transmit?: (byte: number) => void;
  /** The INTR output; without it, nothing is wired to it. */
  irq?: (level: boolean) => void;
}

export class Uart16550 implements BusDevice {
  readonly name: string;
  private readonly now: () => number;
  private readonly transmit: (byte: number) => void;
  private readonly irq: (level: boolean) => void;

  private divisor = POWER_ON_DIVISOR;
  private scr = 0;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  /** MSR bits 7:4 (the lines) and the latched change bits 3:0. */
  private msr = MSR_LINES_CONNECTED;
  private overrun = false;
  private fifoEnabled = false;
  private rxTrigger = 1;
  /** The THRE interrupt latch: set when THR empties, cleared by IIR reads and THR writes. */
  private thrEmptyPending = false;
  /** RBR and the receive FIFO (capacity 1 with the FIFO disabled), as a ring buffer. */
  private readonly rx = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  /** The last byte read from RBR: an empty RBR still holds it. */
  private rbr = 0;
  /** Virtual time of the last byte into or out of the receiver. */
  private lastRxActivity = 0;
  /** Host bytes waiting for room in the receiver (the host side sends no faster). */
  private input: number[] = [];
  private inputHead = 0;
  private irqLevel = false;

  constructor(opts: Uart16550Options) {
    this.name = opts.name;
    this.now = opts.now;
    this.transmit = opts.transmit ?? (() => {});
    this.irq = opts.irq ?? (() => {});
  }

  /** Master reset (MR pin): everything but the divisor latch, SCR and RBR. */
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.msr = MSR_LINES_CONNECTED;
    this.overrun = false;
    this.fifoEnabled = false;
    this.rxTrigger = 1;
    this.thrEmptyPending = false;
    this.clearRx();
    this.update();
  }

  /** Bytes arriving from the host side of the line. */
  receive(bytes: Iterable<number>): void {
    for (const b of bytes) this.input.push(b & 0xff);
    this.pumpInput();
    this.update();
  }

  /** Re-evaluates time-dependent state (the character timeout); call as time passes. */
  poll(): void {
    this.update();
  }

  read(offset: number, size: AccessSize): number {
    // A wider access reaches the following registers byte by byte, as on the ISA bus.
    let value = 0;
    for (let i = 0; i < size; i++) {
      const byte = offset + i < UART_PORT_COUNT ? this.readRegister(offset + i) : 0xff;
      value |= byte << (8 * i);
    }
    this.update();
    return size === 4 ? value >>> 0 : value & allOnes(size);
  }

  write(offset: number, size: AccessSize, value: number): void {
    for (let i = 0; i < size && offset + i < UART_PORT_COUNT; i++) {
      this.writeRegister(offset + i, (value >>> (8 * i)) & 0xff);
    }
    this.update();
  }

  private readRegister(reg: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (reg) {
      case REG_RBR_THR_DLL:
        return dlab ? this.divisor & 0xff : this.readRbr();
      case REG_IER_DLM:
        return dlab ? this.divisor >>> 8 : this.ier;
      case REG_IIR_FCR: {
        const id = this.interruptId();
        if (id === IIR_THR_EMPTY) this.thrEmptyPending = false;
        return id | (this.fifoEnabled ? IIR_FIFOS_ENABLED : 0);
      }
      case REG_LCR:
        return this.lcr;
      case REG_MCR:
        return this.mcr;
      case REG_LSR: {
        const lsr = this.lsr();
        this.overrun = false;
        return lsr;
      }
      case REG_MSR: {
        const msr = this.msr;
        this.msr &= ~MSR_DELTAS;
        return msr;
      }
      case REG_SCR:
      default: // read() passes offsets 0-7 only
        return this.scr;
    }
  }

  private writeRegister(reg: number, value: number): void {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (reg) {
      case REG_RBR_THR_DLL:
        if (dlab) this.divisor = (this.divisor & 0xff00) | value;
        else this.writeThr(value);
        break;
      case REG_IER_DLM:
        if (dlab) {
          this.divisor = (this.divisor & 0xff) | (value << 8);
        } else {
          // Enabling ETBEI while THR is empty raises the THRE interrupt at once.
          if (value & IER_ETBEI && !(this.ier & IER_ETBEI)) this.thrEmptyPending = true;
          this.ier = value & IER_MASK;
        }
        break;
      case REG_IIR_FCR:
        this.writeFcr(value);
        break;
      case REG_LCR:
        this.lcr = value;
        break;
      case REG_MCR:
        this.mcr = value & MCR_MASK;
        this.setModemLines(this.modemLines());
        // Leaving loopback reconnects the receiver to the host side.
        this.pumpInput();
        break;
      case REG_LSR:
      case REG_MSR:
        // Status registers: writes are for factory testing only, and are ignored.
        break;
      case REG_SCR:
      default: // write() passes offsets 0-7 only
        this.scr = value;
    }
  }

  private writeThr(byte: number): void {
    // The byte leaves at once, so THR is empty again right after the write: the THRE
    // interrupt cleared by this write is raised again.
    if (this.mcr & MCR_LOOP) this.loopBack(byte);
    else this.transmit(byte);
    this.thrEmptyPending = true;
  }

  private writeFcr(value: number): void {
    const enable = (value & FCR_FIFO_ENABLE) !== 0;
    if (enable !== this.fifoEnabled) {
      this.fifoEnabled = enable;
      this.clearRx();
    }
    if (!enable) return;
    if (value & FCR_RX_RESET) this.clearRx();
    // FCR_TX_RESET: the transmit FIFO is always empty here, so there is nothing to clear.
    // Bit 3 (DMA mode) only changes the RXRDY/TXRDY pins, which nothing is wired to.
    this.rxTrigger = RX_TRIGGER_LEVELS[value >>> FCR_TRIGGER_SHIFT];
    this.pumpInput();
  }

  private readRbr(): number {
    if (this.rxCount > 0) {
      this.rbr = this.rx[this.rxHead];
      this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
      this.rxCount--;
      this.lastRxActivity = this.now();
      this.pumpInput();
    }
    return this.rbr;
  }

  private lsr(): number {
    return (this.rxCount > 0 ? LSR_DR : 0) | (this.overrun ? LSR_OE : 0) | LSR_THRE | LSR_TEMT;
  }

  /** The highest-priority pending interrupt that IER enables, as an IIR bits 3:0 value. */
  private interruptId(): number {
    if (this.ier & IER_ELSI && this.overrun) return IIR_LINE_STATUS;
    if (this.ier & IER_ERBFI) {
      if (this.rxCount >= (this.fifoEnabled ? this.rxTrigger : 1)) return IIR_RX_DATA;
      if (this.fifoEnabled && this.rxCount > 0 && this.rxTimedOut()) return IIR_RX_TIMEOUT;
    }
    if (this.ier & IER_ETBEI && this.thrEmptyPending) return IIR_THR_EMPTY;
    if (this.ier & IER_EDSSI && this.msr & MSR_DELTAS) {
      return IIR_MODEM_STATUS;
    }
    return IIR_NO_INTERRUPT;
  }

  /** No byte into or out of the receive FIFO for four character times. */
  private rxTimedOut(): boolean {
    // A zero divisor stops the baud generator, and with it the timeout counter.
    if (this.divisor === 0) return false;
    const wordBits = 5 + (this.lcr & LCR_WORD_LENGTH_MASK);
    const parityBits = this.lcr & LCR_PARITY_ENABLE ? 1 : 0;
    const stopBits = this.lcr & LCR_STOP_BITS ? (wordBits === 5 ? 1.5 : 2) : 1;
    const frameBits = 1 + wordBits + parityBits + stopBits; // the 1 is the start bit
    const characterNs = (frameBits * 1e9 * this.divisor) / BAUD_BASE;
    return this.now() - this.lastRxActivity >= TIMEOUT_CHARACTERS * characterNs;
  }

  /** The byte written in loopback mode arrives at the receiver. */
  private loopBack(byte: number): void {
    if (this.rxCount < this.rxCapacity()) {
      this.pushRx(byte);
    } else if (this.fifoEnabled) {
      // The FIFO keeps its bytes; the new one is lost in the shift register.
      this.overrun = true;
    } else {
      // Without a FIFO the new byte overwrites the unread one in RBR.
      this.rx[this.rxHead] = byte;
      this.overrun = true;
      this.lastRxActivity = this.now();
    }
  }

  /** Moves waiting host bytes into the receiver while it has room and is connected. */
  private pumpInput(): void {
    if (this.mcr & MCR_LOOP) return;
    while (this.inputHead < this.input.length && this.rxCount < this.rxCapacity()) {
      this.pushRx(this.input[this.inputHead++]);
    }
    if (this.inputHead === this.input.length) {
      this.input = [];
      this.inputHead = 0;
    }
  }

  private pushRx(byte: number): void {
    this.rx[(this.rxHead + this.rxCount) % FIFO_SIZE] = byte;
    this.rxCount++;
    this.lastRxActivity = this.now();
  }

  private rxCapacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  private clearRx(): void {
    this.rxHead = 0;
    this.rxCount = 0;
    this.pumpInput();
  }

  /** The modem input lines: the host side's, or in loopback the MCR outputs. */
  private modemLines(): number {
    if (!(this.mcr & MCR_LOOP)) return MSR_LINES_CONNECTED;
    return (
      (this.mcr & MCR_RTS ? MSR_CTS : 0) |
      (this.mcr & MCR_DTR ? MSR_DSR : 0) |
      (this.mcr & MCR_OUT1 ? MSR_RI : 0) |
      (this.mcr & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  /** Sets MSR bits 7:4 and latches the change indicators in bits 3:0. */
  private setModemLines(lines: number): void {
    const changed = (this.msr ^ lines) & ~MSR_DELTAS;
    let deltas = this.msr & MSR_DELTAS;
    if (changed & MSR_CTS) deltas |= MSR_DCTS;
    if (changed & MSR_DSR) deltas |= MSR_DDSR;
    if (changed & MSR_RI && !(lines & MSR_RI)) deltas |= MSR_TERI;
    if (changed & MSR_DCD) deltas |= MSR_DDCD;
    this.msr = lines | deltas;
  }

  /** Drives the INTR output from the pending interrupts. */
  private update(): void {
    const level = this.interruptId() !== IIR_NO_INTERRUPT;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq(level);
    }
  }
}
