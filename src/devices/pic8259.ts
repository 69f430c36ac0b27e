/**
 * The PC's two cascaded 8259A programmable interrupt controllers (Intel 8259A data sheet,
 * "Programming the 8259A"): the master at ports 0x20-0x21 with the slave on its IR2, the
 * slave at 0xA0-0xA1, and the edge/level control registers (ELCR) at 0x4D0-0x4D1 (Intel
 * 82371 PIIX data sheet, 4.1.9). Implemented: ICW1-ICW4, OCW1-OCW3 (specific and
 * non-specific EOI, automatic EOI, priority rotation, special mask mode, reading IRR/ISR,
 * poll mode), special fully nested mode and cascading. 8080/8085 call-address mode and
 * buffered mode change only the bus protocol and are accepted and ignored (an x86 reads
 * the vector as in 8086 mode).
 *
 * The master's INTR output goes to the bootstrap processor's LINT0 (virtual wire mode) and
 * to IOAPIC pin 0; the processor (through its local APIC) calls acknowledge() for the
 * vector, as the INTA cycles would.
 */
import type { AccessSize, BusDevice } from "../machine/bus.js";
import { readBytes, writeBytes } from "./byte-registers.js";

export const PIC_MASTER_PORT = 0x20;
export const PIC_SLAVE_PORT = 0xa0;
export const PIC_PORT_COUNT = 2;
export const ELCR_PORT = 0x4d0;
export const ELCR_PORT_COUNT = 2;
/** The master's input the slave's INTR is wired to. */
export const PIC_CASCADE_IRQ = 2;

// ICW1, written to the even port with bit 4 set.
/** Bit 0 IC4: an ICW4 follows. */
const ICW1_IC4 = 1 << 0;
/** Bit 1 SNGL: a single 8259A, no ICW3. */
const ICW1_SNGL = 1 << 1;
/** Bit 3 LTIM: every input is level-triggered. */
const ICW1_LTIM = 1 << 3;
/** Bit 4: this write is ICW1 (on the even port). */
const ICW1_SELECT = 1 << 4;

// ICW4.
/** Bit 1 AEOI: automatic end of interrupt on the second INTA pulse. */
const ICW4_AEOI = 1 << 1;
/** Bit 4 SFNM: special fully nested mode. */
const ICW4_SFNM = 1 << 4;

// OCW2: bits 7:5 R, SL, EOI select the command; bits 2:0 the level.
const OCW2_COMMAND_SHIFT = 5;
const OCW2_LEVEL_MASK = 0x07;
const OCW2_ROTATE_AEOI_CLEAR = 0b000;
const OCW2_NONSPECIFIC_EOI = 0b001;
const OCW2_NOP = 0b010;
const OCW2_SPECIFIC_EOI = 0b011;
const OCW2_ROTATE_AEOI_SET = 0b100;
const OCW2_ROTATE_NONSPECIFIC_EOI = 0b101;
const OCW2_SET_PRIORITY = 0b110;
const OCW2_ROTATE_SPECIFIC_EOI = 0b111;

// OCW3, written to the even port with bits 4:3 = 01.
/** Bit 3 (with bit 4 clear): this write is OCW3. */
const OCW3_SELECT = 1 << 3;
/** Bit 0 RIS: read the ISR (1) or the IRR (0) ... */
const OCW3_RIS = 1 << 0;
/** Bit 1 RR: ... when this bit is set. */
const OCW3_RR = 1 << 1;
/** Bit 2 P: poll command. */
const OCW3_POLL = 1 << 2;
/** Bit 5 SMM: set (1) or reset (0) special mask mode ... */
const OCW3_SMM = 1 << 5;
/** Bit 6 ESMM: ... when this bit is set. */
const OCW3_ESMM = 1 << 6;

/** Poll word bit 7: an interrupt was pending (bits 2:0 name it). */
const POLL_INTERRUPT = 1 << 7;

/** The lowest-priority input after initialization: IR7 (IR0 is the highest). */
const DEFAULT_LOWEST_PRIORITY = 7;
/** Where an initialization sequence stands: operational, or waiting for ICW2-4. */
const enum InitStep {
  Ready = 0,
  Icw2 = 2,
  Icw3 = 3,
  Icw4 = 4,
}

/** The state of one 8259A, as plain data. */
export interface Pic8259Snapshot {
  irr: number;
  isr: number;
  imr: number;
  /** Input levels, for edge detection. */
  lines: number;
  elcr: number;
  vectorBase: number;
  lowestPriority: number;
  icw1: number;
  icw3: number;
  icw4: number;
  initStep: number;
  readIsr: boolean;
  pollPending: boolean;
  specialMask: boolean;
  rotateOnAeoi: boolean;
}

/** One 8259A. Inputs are numbered 0-7. */
class Pic8259 {
  s: Pic8259Snapshot = Pic8259.powerOn();

  constructor(
    readonly isMaster: boolean,
    /** ELCR bits that can be set (inputs wired to edge-only sources stay edge-triggered). */
    readonly elcrWritable: number,
  ) {}

  static powerOn(): Pic8259Snapshot {
    return {
      irr: 0,
      isr: 0,
      imr: 0,
      lines: 0,
      elcr: 0,
      vectorBase: 0,
      lowestPriority: DEFAULT_LOWEST_PRIORITY,
      icw1: 0,
      icw3: 0,
      icw4: 0,
      initStep: InitStep.Ready,
      readIsr: false,
      pollPending: false,
      specialMask: false,
      rotateOnAeoi: false,
    };
  }

  /** Inputs that are level-triggered: all with ICW1.LTIM, else those the ELCR selects. */
  private levelMask(): number {
    return this.s.icw1 & ICW1_LTIM ? 0xff : this.s.elcr;
  }

  setInput(irq: number, level: boolean): void {
    const bit = 1 << irq;
    const s = this.s;
    if (this.levelMask() & bit) {
      // Level-triggered: the request follows the line.
      if (level) s.irr |= bit;
      else s.irr &= ~bit;
    } else if (level && !(s.lines & bit)) {
      // Edge-triggered: a rising edge latches a request, which stays until acknowledged.
      s.irr |= bit;
    }
    if (level) s.lines |= bit;
    else s.lines &= ~bit;
  }

  /** Rank of the highest-priority bit of `mask` (0 = highest), or 8 for none. */
  private rank(mask: number): number {
    if (mask === 0) return 8;
    const first = (this.s.lowestPriority + 1) & 7;
    let r = 0;
    while (!(mask & (1 << ((first + r) & 7)))) r++;
    return r;
  }

  /**
   * The input this chip would interrupt for: the highest-priority unmasked request above
   * every level in service (special mask mode leaves masked levels out; special fully
   * nested mode leaves the cascade input out, so the slave can nest), or -1.
   */
  pending(): number {
    const s = this.s;
    const request = this.rank(s.irr & ~s.imr);
    if (request === 8) return -1;
    let inService = s.isr;
    if (s.specialMask) inService &= ~s.imr;
    if (this.isMaster && s.icw4 & ICW4_SFNM) inService &= ~s.icw3;
    if (request >= this.rank(inService)) return -1;
    return (request + s.lowestPriority + 1) & 7;
  }

  /** The INTA cycle for input `irq`: in service (unless AEOI), edge request consumed. */
  acknowledge(irq: number): void {
    const s = this.s;
    const bit = 1 << irq;
    if (s.icw4 & ICW4_AEOI) {
      if (s.rotateOnAeoi) s.lowestPriority = irq;
    } else {
      s.isr |= bit;
    }
    if (!(this.levelMask() & bit)) s.irr &= ~bit;
  }

  /** Even port (A0 = 0): ICW1, OCW2 or OCW3. */
  writeCommand(v: number): void {
    const s = this.s;
    if (v & ICW1_SELECT) {
      // ICW1 starts initialization: edge detection reset, IMR cleared, IR7 lowest, special
      // mask mode off, IRR selected for reading; without IC4 the ICW4 bits are zero.
      // The input lines themselves keep their levels: a line that is high must go low and
      // high again to latch an edge-triggered request.
      const { elcr, lines } = s;
      this.s = { ...Pic8259.powerOn(), elcr, lines, icw1: v, initStep: InitStep.Icw2 };
      this.s.irr = lines & this.levelMask();
      return;
    }
    if (v & OCW3_SELECT) {
      if (v & OCW3_POLL) s.pollPending = true;
      if (v & OCW3_RR) s.readIsr = (v & OCW3_RIS) !== 0;
      if (v & OCW3_ESMM) s.specialMask = (v & OCW3_SMM) !== 0;
      return;
    }
    const level = v & OCW2_LEVEL_MASK;
    switch (v >>> OCW2_COMMAND_SHIFT) {
      case OCW2_ROTATE_AEOI_CLEAR:
        s.rotateOnAeoi = false;
        break;
      case OCW2_ROTATE_AEOI_SET:
        s.rotateOnAeoi = true;
        break;
      case OCW2_NONSPECIFIC_EOI:
      case OCW2_ROTATE_NONSPECIFIC_EOI: {
        const r = this.rank(s.isr);
        if (r === 8) break;
        const irq = (r + s.lowestPriority + 1) & 7;
        s.isr &= ~(1 << irq);
        if (v >>> OCW2_COMMAND_SHIFT === OCW2_ROTATE_NONSPECIFIC_EOI) s.lowestPriority = irq;
        break;
      }
      case OCW2_SPECIFIC_EOI:
        s.isr &= ~(1 << level);
        break;
      case OCW2_ROTATE_SPECIFIC_EOI:
        s.isr &= ~(1 << level);
        s.lowestPriority = level;
        break;
      case OCW2_SET_PRIORITY:
        s.lowestPriority = level;
        break;
      case OCW2_NOP:
        break;
    }
  }

  /** Odd port (A0 = 1): ICW2-ICW4 during initialization, else OCW1 (the IMR). */
  writeData(v: number): void {
    const s = this.s;
    switch (s.initStep) {
      case InitStep.Icw2:
        s.vectorBase = v & 0xf8;
        s.initStep = s.icw1 & ICW1_SNGL ? this.afterIcw3() : InitStep.Icw3;
        break;
      case InitStep.Icw3:
        s.icw3 = v;
        s.initStep = this.afterIcw3();
        break;
      case InitStep.Icw4:
        s.icw4 = v;
        s.initStep = InitStep.Ready;
        break;
      default:
        s.imr = v;
    }
  }

  private afterIcw3(): InitStep {
    return this.s.icw1 & ICW1_IC4 ? InitStep.Icw4 : InitStep.Ready;
  }

  /** Even-port read: the poll word after a poll command, else IRR or ISR (OCW3). */
  readCommand(pollAck: () => number): number {
    const s = this.s;
    if (s.pollPending) {
      s.pollPending = false;
      return pollAck();
    }
    return s.readIsr ? s.isr : s.irr;
  }
}

/** The master-slave pair, the ELCR and the INTR output. */
export class PicPair {
  private readonly master = new Pic8259(true, 0xf8); // IRQ0-2: timer, keyboard, cascade
  private readonly slave = new Pic8259(false, 0xde); // IRQ8 (RTC) and IRQ13 (FPU): edge
  private intr = false;

  /** Port 0x20-0x21. */
  readonly masterPorts: BusDevice;
  /** Port 0xA0-0xA1. */
  readonly slavePorts: BusDevice;
  /** Port 0x4D0-0x4D1. */
  readonly elcrPorts: BusDevice;

  /** `onIntr` receives the master's INTR output whenever it changes. */
  constructor(private readonly onIntr: (level: boolean) => void = () => {}) {
    this.masterPorts = this.ports("pic8259-master", this.master);
    this.slavePorts = this.ports("pic8259-slave", this.slave);
    this.elcrPorts = {
      name: "elcr",
      read: (offset: number, size: AccessSize) =>
        readBytes(
          offset,
          size,
          ELCR_PORT_COUNT,
          (r) => (r === 0 ? this.master : this.slave).s.elcr,
        ),
      write: (offset: number, size: AccessSize, value: number) =>
        writeBytes(offset, size, ELCR_PORT_COUNT, value, (r, b) => {
          const chip = r === 0 ? this.master : this.slave;
          chip.s.elcr = b & chip.elcrWritable;
          this.update();
        }),
    };
  }

  /** Power-on state: both chips uninitialized, all ELCR bits clear. */
  reset(): void {
    for (const chip of [this.master, this.slave]) {
      chip.s = { ...Pic8259.powerOn(), lines: chip.s.lines };
    }
    this.update();
  }

  /**
   * The state a PC BIOS leaves (as SeaBIOS does): initialized in 8086 mode, master vectors
   * 0x08-0x0F, slave 0x70-0x77 on the master's IR2. Unlike a BIOS, every input starts
   * masked (the cascade input excepted): no code runs to handle them before the kernel.
   */
  initializeAsBios(): void {
    for (const [port, bytes] of [
      [PIC_MASTER_PORT, [0x11, 0x08, 1 << PIC_CASCADE_IRQ, 0x01, 0xff & ~(1 << PIC_CASCADE_IRQ)]],
      [PIC_SLAVE_PORT, [0x11, 0x70, PIC_CASCADE_IRQ, 0x01, 0xff]],
    ] as const) {
      const dev = port === PIC_MASTER_PORT ? this.masterPorts : this.slavePorts;
      dev.write(0, 1, bytes[0]);
      for (const b of bytes.slice(1)) dev.write(1, 1, b);
    }
  }

  /** ISA interrupt request line `irq` (0-15) changed level. */
  setIrq(irq: number, level: boolean): void {
    if (irq < 8) this.master.setInput(irq, level);
    else this.slave.setInput(irq - 8, level);
    this.update();
  }

  /** The master's INTR output. */
  get interruptRequested(): boolean {
    return this.intr;
  }

  /**
   * The two INTA cycles: the vector of the highest-priority request, now in service. With
   * no request left (it went away before the acknowledge), the chip answers with its IR7
   * vector and sets no in-service bit: a spurious interrupt.
   */
  acknowledge(): number {
    const irq = this.master.pending();
    let vector: number;
    if (irq < 0) {
      vector = this.master.s.vectorBase + 7;
    } else {
      this.master.acknowledge(irq);
      if (this.isCascade(irq)) {
        const sirq = this.slave.pending();
        if (sirq < 0) {
          vector = this.slave.s.vectorBase + 7;
        } else {
          this.slave.acknowledge(sirq);
          vector = this.slave.s.vectorBase + sirq;
        }
      } else {
        vector = this.master.s.vectorBase + irq;
      }
    }
    this.update();
    return vector;
  }

  snapshot(): { master: Pic8259Snapshot; slave: Pic8259Snapshot } {
    return { master: { ...this.master.s }, slave: { ...this.slave.s } };
  }

  private isCascade(irq: number): boolean {
    return (this.master.s.icw1 & ICW1_SNGL) === 0 && (this.master.s.icw3 & (1 << irq)) !== 0;
  }

  /** Poll mode: the read acts as the acknowledge; the word names the input (8259A, "Poll"). */
  private poll(chip: Pic8259): number {
    const irq = chip.pending();
    if (irq < 0) return 0;
    // On the master, a cascade input is named like any other; the slave is polled on its
    // own ports.
    chip.acknowledge(irq);
    this.update();
    return POLL_INTERRUPT | irq;
  }

  private ports(name: string, chip: Pic8259): BusDevice {
    return {
      name,
      read: (offset: number, size: AccessSize) =>
        readBytes(offset, size, PIC_PORT_COUNT, (r) =>
          r === 0 ? chip.readCommand(() => this.poll(chip)) : chip.s.imr,
        ),
      write: (offset: number, size: AccessSize, value: number) =>
        writeBytes(offset, size, PIC_PORT_COUNT, value, (r, b) => {
          if (r === 0) chip.writeCommand(b);
          else chip.writeData(b);
          this.update();
        }),
    };
  }

  /** Propagates the slave's INTR to the master's cascade input and the master's to INTR. */
  private update(): void {
    const slaveIntr = this.slave.pending() >= 0;
    this.master.setInput(PIC_CASCADE_IRQ, slaveIntr);
    const intr = this.master.pending() >= 0;
    if (intr !== this.intr) {
      this.intr = intr;
      this.onIntr(intr);
    }
  }
}
