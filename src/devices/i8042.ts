/**
 * The 8042 keyboard controller with a PS/2 keyboard and mouse (IBM PC AT Technical
 * Reference, "Keyboard Controller"; IBM PS/2 Hardware Interface Technical Reference,
 * "Keyboard/Auxiliary Device Controller"), and the PS/2 system control port A at 0x92.
 *
 * The controller: data port 0x60, status and command port 0x64, the command byte
 * (interrupt enables, system flag, port disables, scan-code translation), self-tests, the
 * output port (A20 gate and the reset line), and the pulse command that resets the
 * machine. The keyboard and mouse answer their command sets (reset, identify, enable,
 * rates, LEDs, scan-code set, status request, the IntelliMouse wheel detection); with
 * translation on, the keyboard's bytes pass through the 8042's set 2 to set 1 table for
 * the values they can take. No host keys or mouse movements reach them yet: SHV's console
 * is the serial port.
 *
 * Port 0x92: bit 1 is the fast A20 gate, a rising edge on bit 0 resets the machine. The
 * A20 state is kept and reported (the gate is the OR of the two controls); the CPU does
 * not yet mask address bit 20 when it is off.
 */
import type { AccessSize, BusDevice } from "../machine/bus.js";
import { readBytes, writeBytes } from "./byte-registers.js";

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
export const SYSTEM_CONTROL_A_PORT = 0x92;
export const KEYBOARD_IRQ = 1;
export const MOUSE_IRQ = 12;

// Status register (port 0x64 reads).
/** Bit 0 OBF: the output buffer holds a byte for port 0x60. */
export const STATUS_OBF = 1 << 0;
/** Bit 1 IBF: the input buffer is full (never: commands are taken at once). */
export const STATUS_IBF = 1 << 1;
/** Bit 2 SYS: the system flag, set by a passed self-test (and the command byte). */
export const STATUS_SYS = 1 << 2;
/** Bit 3 A2: the last write was to the command port. */
export const STATUS_CMD = 1 << 3;
/** Bit 4: the keyboard is not inhibited by the key lock. */
export const STATUS_UNLOCKED = 1 << 4;
/** Bit 5 AUX_OBF: the output buffer's byte comes from the mouse. */
export const STATUS_AUX_OBF = 1 << 5;

// Command byte (controller RAM byte 0).
/** Bit 0: keyboard interrupt (IRQ1) when its byte is in the output buffer. */
export const CMD_KBD_INT = 1 << 0;
/** Bit 1: mouse interrupt (IRQ12). */
export const CMD_AUX_INT = 1 << 1;
/** Bit 2: the system flag. */
export const CMD_SYS = 1 << 2;
/** Bit 4: keyboard interface disabled. */
export const CMD_KBD_DISABLE = 1 << 4;
/** Bit 5: mouse interface disabled. */
export const CMD_AUX_DISABLE = 1 << 5;
/** Bit 6: translate keyboard scan codes from set 2 to set 1. */
export const CMD_XLATE = 1 << 6;

// Controller commands (port 0x64 writes).
const CTL_READ_RAM = 0x20; // 0x20-0x3F: RAM byte 0-31 (byte 0 is the command byte)
const CTL_WRITE_RAM = 0x60; // 0x60-0x7F
const CTL_AUX_DISABLE = 0xa7;
const CTL_AUX_ENABLE = 0xa8;
const CTL_AUX_TEST = 0xa9;
const CTL_SELF_TEST = 0xaa;
const CTL_KBD_TEST = 0xab;
const CTL_KBD_DISABLE = 0xad;
const CTL_KBD_ENABLE = 0xae;
const CTL_READ_INPUT_PORT = 0xc0;
const CTL_READ_OUTPUT_PORT = 0xd0;
const CTL_WRITE_OUTPUT_PORT = 0xd1;
const CTL_WRITE_KBD_BUFFER = 0xd2;
const CTL_WRITE_AUX_BUFFER = 0xd3;
const CTL_WRITE_AUX = 0xd4;
const CTL_A20_DISABLE = 0xdd;
const CTL_A20_ENABLE = 0xdf;
const CTL_READ_TEST_INPUTS = 0xe0;
const CTL_PULSE_FIRST = 0xf0; // 0xF0-0xFF: pulse output-port bits 3:0 low

/** Self-test passed; interface tests found no fault. */
const SELF_TEST_OK = 0x55;
const INTERFACE_TEST_OK = 0x00;

// Output port (commands 0xD0/0xD1).
/** Bit 0: the system reset line (active low). */
export const OUTPUT_RESET = 1 << 0;
/** Bit 1: the A20 gate. */
export const OUTPUT_A20 = 1 << 1;
/** Bit 4: the keyboard's byte is in the output buffer (IRQ1). */
const OUTPUT_KBD_OBF = 1 << 4;
/** Bit 5: the mouse's byte is in the output buffer (IRQ12). */
const OUTPUT_AUX_OBF = 1 << 5;
/** Input port bit 7: the key lock does not inhibit the keyboard. */
const INPUT_UNLOCKED = 1 << 7;

// Device responses (keyboard and mouse).
export const ACK = 0xfa;
export const RESEND = 0xfe;
/** Basic assurance test passed (after a reset). */
export const BAT_OK = 0xaa;
const ECHO = 0xee;
/** A keyboard's identification: MF2 keyboard. */
const KBD_ID = [0xab, 0x83];

// The 8042's set 2 to set 1 translation for the bytes our keyboard sends that change:
// the ID byte 0x83 and the scan-code set numbers 1-3 (the other responses, 0xFA, 0xAA,
// 0xAB, 0xEE and 0xFE, are left as they are).
const XLATE: Record<number, number> = { 0x01: 0x43, 0x02: 0x41, 0x03: 0x3f, 0x83: 0x41 };

// Port 0x92.
/** Bit 0: fast reset (a rising edge resets the machine). */
export const PORT92_RESET = 1 << 0;
/** Bit 1: fast A20 gate. */
export const PORT92_A20 = 1 << 1;

export interface I8042Snapshot {
  commandByte: number;
  ram: number[];
  outputPort: number;
  status: number;
  /** The output buffer: its byte and whether it came from the mouse. */
  output: { byte: number; aux: boolean } | null;
  /** A controller command awaiting its data byte on port 0x60. */
  pendingCommand: number | null;
  /** The last byte read from port 0x60: an empty output buffer still holds it. */
  lastRead: number;
  keyboard: {
    queue: number[];
    /** A command awaiting its argument byte. */
    pending: number | null;
    /** The last byte sent, for the resend command. */
    lastSent: number;
    scanning: boolean;
    scanSet: number;
    leds: number;
  };
  mouse: {
    queue: number[];
    pending: number | null;
    reporting: boolean;
    remote: boolean;
    sampleRate: number;
    resolution: number;
    scaling21: boolean;
    /** The last three sample rates set: 200, 100, 80 turns the wheel on (ID 3). */
    rates: number[];
    id: number;
  };
}

export interface I8042Options {
  irq1?: (level: boolean) => void;
  irq12?: (level: boolean) => void;
  /** The reset line was pulsed: reset the machine. */
  reset?: () => void;
  /** The A20 gate changed. */
  a20?: (enabled: boolean) => void;
}

export class I8042 {
  private s!: I8042Snapshot;
  private irq1Level = false;
  private irq12Level = false;

  /** Port 0x60. */
  readonly dataPort: BusDevice;
  /** Port 0x64. */
  readonly commandPort: BusDevice;

  constructor(private readonly o: I8042Options = {}) {
    this.powerOn();
    this.dataPort = {
      name: "i8042-data",
      read: (off: number, size: AccessSize) => readBytes(off, size, 1, () => this.readData()),
      write: (off: number, size: AccessSize, v: number) =>
        writeBytes(off, size, 1, v, (_r, b) => this.writeData(b)),
    };
    this.commandPort = {
      name: "i8042-command",
      read: (off: number, size: AccessSize) => readBytes(off, size, 1, () => this.status()),
      write: (off: number, size: AccessSize, v: number) =>
        writeBytes(off, size, 1, v, (_r, b) => this.writeCommand(b)),
    };
  }

  /**
   * The state a BIOS leaves: self-test passed (SYS), keyboard interrupt and translation on,
   * the mouse port disabled, A20 on (multiboot kernels start with it on).
   */
  powerOn(): void {
    const commandByte = CMD_KBD_INT | CMD_SYS | CMD_XLATE | CMD_AUX_DISABLE;
    const ram = new Array<number>(32).fill(0);
    ram[0] = commandByte;
    this.s = {
      commandByte,
      ram,
      outputPort: OUTPUT_RESET | OUTPUT_A20,
      status: STATUS_SYS | STATUS_UNLOCKED,
      output: null,
      pendingCommand: null,
      lastRead: 0,
      keyboard: { queue: [], pending: null, lastSent: 0, scanning: true, scanSet: 2, leds: 0 },
      mouse: {
        queue: [],
        pending: null,
        reporting: false,
        remote: false,
        sampleRate: 100,
        resolution: 2,
        scaling21: false,
        rates: [],
        id: 0,
      },
    };
    this.update();
  }

  snapshot(): I8042Snapshot {
    const s = this.s;
    return {
      ...s,
      ram: [...s.ram],
      keyboard: { ...s.keyboard, queue: [...s.keyboard.queue] },
      mouse: { ...s.mouse, queue: [...s.mouse.queue], rates: [...s.mouse.rates] },
    };
  }

  /** The controller's A20 output (port 0x92's fast gate is ORed with it by the machine). */
  get a20(): boolean {
    return (this.s.outputPort & OUTPUT_A20) !== 0;
  }

  private status(): number {
    const s = this.s;
    return (
      (s.status & ~(STATUS_OBF | STATUS_AUX_OBF | STATUS_SYS)) |
      (s.output ? STATUS_OBF : 0) |
      (s.output?.aux ? STATUS_AUX_OBF : 0) |
      (s.commandByte & CMD_SYS ? STATUS_SYS : 0)
    );
  }

  private readData(): number {
    const out = this.s.output;
    if (out === null) return this.s.lastRead;
    this.s.lastRead = out.byte;
    this.s.output = null;
    // The interrupt line drops with OBF before the next byte comes in: one edge per byte.
    this.driveIrqs();
    this.update();
    return out.byte;
  }

  /** A byte the controller itself answers with (as if from the keyboard side). */
  private reply(byte: number): void {
    this.s.output = { byte, aux: false };
    this.update();
  }

  private writeCommand(cmd: number): void {
    const s = this.s;
    s.status |= STATUS_CMD;
    s.pendingCommand = null;
    if (cmd >= CTL_READ_RAM && cmd < CTL_READ_RAM + 0x20) {
      this.reply(s.ram[cmd - CTL_READ_RAM]);
      return;
    }
    if (cmd >= CTL_WRITE_RAM && cmd < CTL_WRITE_RAM + 0x20) {
      s.pendingCommand = cmd;
      return;
    }
    if (cmd >= CTL_PULSE_FIRST) {
      // Bits 3:0 clear pulse the output-port lines; bit 0 is the reset line.
      if (!(cmd & OUTPUT_RESET)) this.o.reset?.();
      return;
    }
    switch (cmd) {
      case CTL_AUX_DISABLE:
        this.setCommandByte(s.commandByte | CMD_AUX_DISABLE);
        break;
      case CTL_AUX_ENABLE:
        this.setCommandByte(s.commandByte & ~CMD_AUX_DISABLE);
        break;
      case CTL_AUX_TEST:
      case CTL_KBD_TEST:
        this.reply(INTERFACE_TEST_OK);
        break;
      case CTL_SELF_TEST:
        this.setCommandByte(s.commandByte | CMD_SYS);
        this.reply(SELF_TEST_OK);
        break;
      case CTL_KBD_DISABLE:
        this.setCommandByte(s.commandByte | CMD_KBD_DISABLE);
        break;
      case CTL_KBD_ENABLE:
        this.setCommandByte(s.commandByte & ~CMD_KBD_DISABLE);
        break;
      case CTL_READ_INPUT_PORT:
        this.reply(INPUT_UNLOCKED);
        break;
      case CTL_READ_OUTPUT_PORT:
        this.reply(
          (s.outputPort & (OUTPUT_RESET | OUTPUT_A20)) |
            (s.output && !s.output.aux ? OUTPUT_KBD_OBF : 0) |
            (s.output?.aux ? OUTPUT_AUX_OBF : 0),
        );
        break;
      case CTL_WRITE_OUTPUT_PORT:
      case CTL_WRITE_KBD_BUFFER:
      case CTL_WRITE_AUX_BUFFER:
      case CTL_WRITE_AUX:
        s.pendingCommand = cmd;
        break;
      case CTL_A20_DISABLE:
        this.writeOutputPort(s.outputPort & ~OUTPUT_A20);
        break;
      case CTL_A20_ENABLE:
        this.writeOutputPort(s.outputPort | OUTPUT_A20);
        break;
      case CTL_READ_TEST_INPUTS:
        this.reply(0);
        break;
      default:
        break; // unknown commands are ignored
    }
  }

  private writeData(byte: number): void {
    const s = this.s;
    s.status &= ~STATUS_CMD;
    const cmd = s.pendingCommand;
    s.pendingCommand = null;
    if (cmd === null) {
      // Without a controller command, data goes to the keyboard (and enables its interface).
      if (s.commandByte & CMD_KBD_DISABLE) this.setCommandByte(s.commandByte & ~CMD_KBD_DISABLE);
      this.keyboardCommand(byte);
    } else if (cmd >= CTL_WRITE_RAM && cmd < CTL_WRITE_RAM + 0x20) {
      if (cmd === CTL_WRITE_RAM) this.setCommandByte(byte);
      else s.ram[cmd - CTL_WRITE_RAM] = byte;
    } else if (cmd === CTL_WRITE_OUTPUT_PORT) {
      this.writeOutputPort(byte);
    } else if (cmd === CTL_WRITE_KBD_BUFFER) {
      this.s.keyboard.queue.push(byte);
    } else if (cmd === CTL_WRITE_AUX_BUFFER) {
      this.s.mouse.queue.push(byte);
    } else if (cmd === CTL_WRITE_AUX) {
      this.mouseCommand(byte);
    }
    this.update();
  }

  private setCommandByte(v: number): void {
    this.s.commandByte = v;
    this.s.ram[0] = v;
    this.update();
  }

  private writeOutputPort(v: number): void {
    const was = this.s.outputPort;
    this.s.outputPort = v;
    if ((was ^ v) & OUTPUT_A20) this.o.a20?.((v & OUTPUT_A20) !== 0);
    // The reset line is active low: writing 0 to bit 0 resets the machine.
    if (!(v & OUTPUT_RESET)) {
      this.s.outputPort |= OUTPUT_RESET;
      this.o.reset?.();
    }
  }

  // ---------------------------------------------------------------- keyboard

  private kbdSend(...bytes: number[]): void {
    this.s.keyboard.queue.push(...bytes);
    this.s.keyboard.lastSent = bytes[bytes.length - 1];
  }

  private keyboardCommand(b: number): void {
    const k = this.s.keyboard;
    const arg = k.pending;
    if (arg !== null) {
      k.pending = null;
      if (arg === 0xf0) {
        // Scan-code set: 0 asks for the current one.
        if (b === 0) this.kbdSend(ACK, k.scanSet);
        else if (b >= 1 && b <= 3) {
          k.scanSet = b;
          this.kbdSend(ACK);
        } else this.kbdSend(RESEND);
        return;
      }
      if (arg === 0xed) k.leds = b & 7;
      this.kbdSend(ACK); // 0xED LEDs, 0xF3 typematic rate and delay
      return;
    }
    switch (b) {
      case 0xff: // reset: ACK, then the basic assurance test
        Object.assign(k, { scanning: true, scanSet: 2, leds: 0, queue: [] });
        this.kbdSend(ACK, BAT_OK);
        break;
      case 0xfe: // resend: the last byte again
        this.kbdSend(k.lastSent);
        break;
      case 0xf6: // set defaults
        Object.assign(k, { scanSet: 2, leds: 0 });
        this.kbdSend(ACK);
        break;
      case 0xf5: // disable scanning (and set defaults)
        k.scanning = false;
        this.kbdSend(ACK);
        break;
      case 0xf4: // enable scanning
        k.scanning = true;
        this.kbdSend(ACK);
        break;
      case 0xf2: // identify
        this.kbdSend(ACK, ...KBD_ID);
        break;
      case 0xf3: // typematic rate and delay: an argument follows
      case 0xf0: // scan-code set: an argument follows
      case 0xed: // LEDs: an argument follows
        k.pending = b;
        this.kbdSend(ACK);
        break;
      case 0xee:
        this.kbdSend(ECHO);
        break;
      default:
        this.kbdSend(RESEND);
    }
  }

  // ---------------------------------------------------------------- mouse

  private mouseSend(...bytes: number[]): void {
    this.s.mouse.queue.push(...bytes);
  }

  private mouseCommand(b: number): void {
    const m = this.s.mouse;
    const arg = m.pending;
    if (arg !== null) {
      m.pending = null;
      if (arg === 0xf3) {
        m.sampleRate = b;
        m.rates = [...m.rates, b].slice(-3);
        if (m.rates.join() === "200,100,80") m.id = 3; // IntelliMouse: a wheel
      } else if (arg === 0xe8) {
        m.resolution = b & 3;
      }
      this.mouseSend(ACK);
      return;
    }
    switch (b) {
      case 0xff: // reset: ACK, the basic assurance test, the ID
        Object.assign(m, {
          reporting: false,
          remote: false,
          sampleRate: 100,
          resolution: 2,
          scaling21: false,
          rates: [],
          id: 0,
          queue: [],
        });
        this.mouseSend(ACK, BAT_OK, 0);
        break;
      case 0xf6: // set defaults
        Object.assign(m, { reporting: false, sampleRate: 100, resolution: 2, scaling21: false });
        this.mouseSend(ACK);
        break;
      case 0xf5: // disable data reporting
        m.reporting = false;
        this.mouseSend(ACK);
        break;
      case 0xf4: // enable data reporting
        m.reporting = true;
        this.mouseSend(ACK);
        break;
      case 0xf3: // sample rate: an argument follows
      case 0xe8: // resolution: an argument follows
        m.pending = b;
        this.mouseSend(ACK);
        break;
      case 0xf2: // get device ID
        this.mouseSend(ACK, m.id);
        break;
      case 0xf0: // remote mode
        m.remote = true;
        this.mouseSend(ACK);
        break;
      case 0xea: // stream mode
        m.remote = false;
        this.mouseSend(ACK);
        break;
      case 0xeb: // read data: a packet with no movement and no buttons
        this.mouseSend(ACK, 0x08, 0, 0);
        break;
      case 0xe9: // status request
        this.mouseSend(
          ACK,
          (m.remote ? 0x40 : 0) | (m.reporting ? 0x20 : 0) | (m.scaling21 ? 0x10 : 0),
          m.resolution,
          m.sampleRate,
        );
        break;
      case 0xe7: // scaling 2:1
      case 0xe6: // scaling 1:1
        m.scaling21 = b === 0xe7;
        this.mouseSend(ACK);
        break;
      default:
        this.mouseSend(RESEND);
    }
  }

  // ---------------------------------------------------------------- output buffer

  /** Fills an empty output buffer from the keyboard, then the mouse; drives IRQ1/IRQ12. */
  private update(): void {
    const s = this.s;
    if (s.output === null) {
      if (s.keyboard.queue.length > 0 && !(s.commandByte & CMD_KBD_DISABLE)) {
        let byte = s.keyboard.queue.shift()!;
        if (s.commandByte & CMD_XLATE) byte = XLATE[byte] ?? byte;
        s.output = { byte, aux: false };
      } else if (s.mouse.queue.length > 0 && !(s.commandByte & CMD_AUX_DISABLE)) {
        s.output = { byte: s.mouse.queue.shift()!, aux: true };
      }
    }
    this.driveIrqs();
  }

  /** IRQ1 and IRQ12 follow OBF for their device's byte, when the command byte enables them. */
  private driveIrqs(): void {
    const s = this.s;
    const irq1 = s.output !== null && !s.output.aux && (s.commandByte & CMD_KBD_INT) !== 0;
    const irq12 = s.output !== null && s.output.aux && (s.commandByte & CMD_AUX_INT) !== 0;
    if (irq1 !== this.irq1Level) {
      this.irq1Level = irq1;
      this.o.irq1?.(irq1);
    }
    if (irq12 !== this.irq12Level) {
      this.irq12Level = irq12;
      this.o.irq12?.(irq12);
    }
  }
}

/** PS/2 system control port A (0x92): fast A20 and fast reset. */
export class SystemControlPortA implements BusDevice {
  readonly name = "system-control-a";
  private value = 0;

  constructor(private readonly o: { reset?: () => void; a20?: (enabled: boolean) => void } = {}) {}

  get a20(): boolean {
    return (this.value & PORT92_A20) !== 0;
  }

  /** After a reset the fast A20 gate is off (the 8042's gate holds A20 on). */
  reset(): void {
    this.value = 0;
  }

  read(offset: number, size: AccessSize): number {
    return readBytes(offset, size, 1, () => this.value);
  }

  write(offset: number, size: AccessSize, v: number): void {
    writeBytes(offset, size, 1, v, (_r, b) => {
      const was = this.value;
      this.value = b & (PORT92_A20 | PORT92_RESET);
      if ((was ^ b) & PORT92_A20) this.o.a20?.((b & PORT92_A20) !== 0);
      if (b & PORT92_RESET && !(was & PORT92_RESET)) this.o.reset?.();
    });
  }
}
