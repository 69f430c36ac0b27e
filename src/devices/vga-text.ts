/**
 * A VGA in text mode 3 (80x25, 16 colours), as the IBM VGA Technical Reference describes
 * the registers: the 128 KiB memory window at 0xA0000-0xBFFFF with the text buffer at
 * 0xB8000, and the ports 0x3B0-0x3DF: the sequencer, the graphics controller, the
 * attribute controller (with its address/data flip-flop, reset by reading input status 1),
 * the CRT controller (cursor shape and location, start address, the write protection of
 * registers 0-7), the DAC, the miscellaneous output register (which moves the CRTC
 * between 0x3Bx and 0x3Dx) and input status 1, whose vertical-retrace and display-enable
 * bits follow a 60 Hz, 31.5 kHz timing on the virtual clock.
 *
 * Only text mode is displayed: the screen() snapshot reads the 80x25 cells from the
 * graphics controller's memory map at the CRTC start address. Graphics modes and planar
 * memory are not implemented; the window is plain memory.
 */
import type { AccessSize, BusDevice } from "../machine/bus.js";
import type { VirtualClock } from "../machine/clock.js";
import { readBytes, writeBytes } from "./byte-registers.js";

export const VGA_MEMORY_BASE = 0xa0000;
export const VGA_MEMORY_SIZE = 0x20000;
export const VGA_TEXT_BASE = 0xb8000;
export const VGA_PORT = 0x3b0;
export const VGA_PORT_COUNT = 0x30;
export const TEXT_COLUMNS = 80;
export const TEXT_ROWS = 25;

// Port offsets from 0x3B0.
const P_CRTC_INDEX_MONO = 0x04; // 0x3B4
const P_CRTC_DATA_MONO = 0x05; // 0x3B5
const P_STATUS1_MONO = 0x0a; // 0x3BA
const P_ATTR = 0x10; // 0x3C0: address/data (write), address (read)
const P_ATTR_READ = 0x11; // 0x3C1
const P_MISC_WRITE = 0x12; // 0x3C2 (reads: input status 0)
const P_SEQ_INDEX = 0x14; // 0x3C4
const P_SEQ_DATA = 0x15;
const P_DAC_MASK = 0x16; // 0x3C6
const P_DAC_READ_INDEX = 0x17; // 0x3C7 (reads: DAC state)
const P_DAC_WRITE_INDEX = 0x18; // 0x3C8
const P_DAC_DATA = 0x19; // 0x3C9
const P_FEATURE_READ = 0x1a; // 0x3CA
const P_MISC_READ = 0x1c; // 0x3CC
const P_GC_INDEX = 0x1e; // 0x3CE
const P_GC_DATA = 0x1f;
const P_CRTC_INDEX_COLOR = 0x24; // 0x3D4
const P_CRTC_DATA_COLOR = 0x25; // 0x3D5
const P_STATUS1_COLOR = 0x2a; // 0x3DA

/** Miscellaneous output bit 0: CRTC at 0x3Dx (colour) rather than 0x3Bx. */
export const MISC_IO_COLOR = 1 << 0;

// Input status 1.
/** Bit 0: display disabled (horizontal or vertical blanking). */
export const STATUS1_DISPLAY_DISABLED = 1 << 0;
/** Bit 3: vertical retrace. */
export const STATUS1_VERTICAL_RETRACE = 1 << 3;

// CRTC registers.
export const CRTC_CURSOR_START = 0x0a;
export const CRTC_CURSOR_END = 0x0b;
export const CRTC_START_HIGH = 0x0c;
export const CRTC_START_LOW = 0x0d;
export const CRTC_CURSOR_HIGH = 0x0e;
export const CRTC_CURSOR_LOW = 0x0f;
const CRTC_VRETRACE_END = 0x11;
/** Cursor start bit 5: the cursor is off. */
export const CURSOR_DISABLE = 1 << 5;
/** Vertical retrace end bit 7: registers 0-7 are write-protected. */
const VRETRACE_END_PROTECT = 1 << 7;
const CRTC_PROTECTED_LAST = 7;

/** Graphics controller register 6 bits 3:2: the memory map (A0000, A0000, B0000, B8000). */
const GC_MISC = 6;
const GC_MEMORY_MAP_SHIFT = 2;
const MEMORY_MAP_BASES = [0xa0000, 0xa0000, 0xb0000, 0xb8000];

/** Attribute address bit 5: palette address source (video enabled). */
const ATTR_PAS = 1 << 5;

// Display timing (IBM VGA, 640x400 text at 70 Hz is mode 3's; the 60 Hz frame keeps the
// numbers round): a frame, its vertical retrace, a scan line and its blanking.
const FRAME_NS = 1e9 / 60;
const VRETRACE_NS = 64 * 1e3;
const LINE_NS = 1e9 / 31_469;
const HBLANK_NS = 6_000;

// Mode 3's register values (IBM VGA Technical Reference, BIOS mode tables).
const MODE3_SEQ = [0x03, 0x00, 0x03, 0x00, 0x02];
const MODE3_CRTC = [
  0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x00,
  0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff,
];
const MODE3_GC = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x00, 0xff];
const MODE3_ATTR = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
  0x0c, 0x00, 0x0f, 0x08, 0x00,
];
const MODE3_MISC = 0x67;

/** What a text screen shows: 25 rows of 80 cells. */
export interface TextScreen {
  /** Character codes (code page 437) and attributes, row by row: 2000 of each. */
  chars: Uint8Array;
  attrs: Uint8Array;
  /** The hardware cursor, or null when it is off or outside the screen. */
  cursor: { row: number; column: number } | null;
}

export interface VgaSnapshot {
  misc: number;
  seqIndex: number;
  seq: number[];
  gcIndex: number;
  gc: number[];
  crtcIndex: number;
  crtc: number[];
  attrIndex: number;
  attrFlipFlop: boolean;
  attr: number[];
  dacMask: number;
  dacReadIndex: number;
  dacWriteIndex: number;
  /** The DAC component (0-2) the next data access reaches. */
  dacComponent: number;
  dacReading: boolean;
  palette: number[];
}

export class VgaText {
  private readonly memory = new Uint8Array(VGA_MEMORY_SIZE);
  private s!: VgaSnapshot;
  /** Changes whenever what the screen shows may have changed. */
  generation = 0;

  /** 0xA0000-0xBFFFF. */
  readonly mmio: BusDevice;
  /** Ports 0x3B0-0x3DF. */
  readonly ports: BusDevice;

  constructor(private readonly clock: VirtualClock) {
    this.reset();
    this.mmio = {
      name: "vga-memory",
      read: (offset: number, size: AccessSize) => {
        let v = 0;
        for (let i = 0; i < size; i++) v |= this.memory[(offset + i) % VGA_MEMORY_SIZE] << (8 * i);
        return v >>> 0;
      },
      write: (offset: number, size: AccessSize, value: number) => {
        for (let i = 0; i < size; i++)
          this.memory[(offset + i) % VGA_MEMORY_SIZE] = (value >>> (8 * i)) & 0xff;
        this.generation++;
      },
    };
    this.ports = {
      name: "vga-ports",
      read: (offset: number, size: AccessSize) =>
        readBytes(offset, size, VGA_PORT_COUNT, (r) => this.readPort(r)),
      write: (offset: number, size: AccessSize, value: number) =>
        writeBytes(offset, size, VGA_PORT_COUNT, value, (r, b) => this.writePort(r, b)),
    };
  }

  /** Mode 3 with a blank screen (grey on black), as the BIOS leaves it. */
  reset(): void {
    this.s = {
      misc: MODE3_MISC,
      seqIndex: 0,
      seq: [...MODE3_SEQ],
      gcIndex: 0,
      gc: [...MODE3_GC],
      crtcIndex: 0,
      crtc: [...MODE3_CRTC],
      attrIndex: ATTR_PAS,
      attrFlipFlop: false,
      attr: [...MODE3_ATTR],
      dacMask: 0xff,
      dacReadIndex: 0,
      dacWriteIndex: 0,
      dacComponent: 0,
      dacReading: false,
      palette: new Array<number>(256 * 3).fill(0),
    };
    this.memory.fill(0);
    const text = VGA_TEXT_BASE - VGA_MEMORY_BASE;
    for (let i = 0; i < TEXT_ROWS * TEXT_COLUMNS; i++) {
      this.memory[text + 2 * i] = 0x20;
      this.memory[text + 2 * i + 1] = 0x07;
    }
    this.generation++;
  }

  snapshot(): VgaSnapshot {
    const s = this.s;
    return {
      ...s,
      seq: [...s.seq],
      gc: [...s.gc],
      crtc: [...s.crtc],
      attr: [...s.attr],
      palette: [...s.palette],
    };
  }

  /** The text screen as the CRTC scans it out. */
  screen(): TextScreen {
    const crtc = this.s.crtc;
    const map =
      MEMORY_MAP_BASES[(this.s.gc[GC_MISC] >>> GC_MEMORY_MAP_SHIFT) & 3] - VGA_MEMORY_BASE;
    const start = (crtc[CRTC_START_HIGH] << 8) | crtc[CRTC_START_LOW];
    const cells = TEXT_ROWS * TEXT_COLUMNS;
    const chars = new Uint8Array(cells);
    const attrs = new Uint8Array(cells);
    for (let i = 0; i < cells; i++) {
      const at = (map + 2 * (start + i)) % VGA_MEMORY_SIZE;
      chars[i] = this.memory[at];
      attrs[i] = this.memory[at + 1];
    }
    const location = ((crtc[CRTC_CURSOR_HIGH] << 8) | crtc[CRTC_CURSOR_LOW]) - start;
    const visible =
      !(crtc[CRTC_CURSOR_START] & CURSOR_DISABLE) && location >= 0 && location < cells;
    return {
      chars,
      attrs,
      cursor: visible
        ? { row: Math.floor(location / TEXT_COLUMNS), column: location % TEXT_COLUMNS }
        : null,
    };
  }

  private crtcPort(r: number): "index" | "data" | null {
    const color = (this.s.misc & MISC_IO_COLOR) !== 0;
    if (r === (color ? P_CRTC_INDEX_COLOR : P_CRTC_INDEX_MONO)) return "index";
    if (r === (color ? P_CRTC_DATA_COLOR : P_CRTC_DATA_MONO)) return "data";
    return null;
  }

  private status1(): number {
    const t = this.clock.now();
    const inFrame = t % FRAME_NS;
    const vretrace = inFrame >= FRAME_NS - VRETRACE_NS;
    const hblank = t % LINE_NS >= LINE_NS - HBLANK_NS;
    return (
      (vretrace ? STATUS1_VERTICAL_RETRACE : 0) |
      (vretrace || hblank ? STATUS1_DISPLAY_DISABLED : 0)
    );
  }

  private readPort(r: number): number {
    const s = this.s;
    const crtc = this.crtcPort(r);
    if (crtc === "index") return s.crtcIndex;
    if (crtc === "data") return s.crtc[s.crtcIndex] ?? 0xff;
    switch (r) {
      case P_STATUS1_MONO:
      case P_STATUS1_COLOR:
        if ((r === P_STATUS1_COLOR) !== ((s.misc & MISC_IO_COLOR) !== 0)) return 0xff;
        s.attrFlipFlop = false; // reading input status 1 resets the attribute flip-flop
        return this.status1();
      case P_ATTR:
        return s.attrIndex;
      case P_ATTR_READ:
        return s.attr[s.attrIndex & 0x1f] ?? 0xff;
      case P_MISC_WRITE:
        return 0x10; // input status 0: switch sense (a colour monitor), no CRT interrupt
      case P_SEQ_INDEX:
        return s.seqIndex;
      case P_SEQ_DATA:
        return s.seq[s.seqIndex] ?? 0xff;
      case P_DAC_MASK:
        return s.dacMask;
      case P_DAC_READ_INDEX:
        return s.dacReading ? 0x03 : 0x00;
      case P_DAC_WRITE_INDEX:
        return s.dacWriteIndex;
      case P_DAC_DATA: {
        const v = s.palette[s.dacReadIndex * 3 + s.dacComponent];
        if (++s.dacComponent === 3) {
          s.dacComponent = 0;
          s.dacReadIndex = (s.dacReadIndex + 1) & 0xff;
        }
        return v;
      }
      case P_FEATURE_READ:
        return 0;
      case P_MISC_READ:
        return s.misc;
      case P_GC_INDEX:
        return s.gcIndex;
      case P_GC_DATA:
        return s.gc[s.gcIndex] ?? 0xff;
      default:
        return 0xff;
    }
  }

  private writePort(r: number, b: number): void {
    const s = this.s;
    const crtc = this.crtcPort(r);
    if (crtc === "index") {
      s.crtcIndex = b;
      return;
    }
    if (crtc === "data") {
      const i = s.crtcIndex;
      if (i >= s.crtc.length) return;
      if (i <= CRTC_PROTECTED_LAST && s.crtc[CRTC_VRETRACE_END] & VRETRACE_END_PROTECT) return;
      s.crtc[i] = b;
      this.generation++;
      return;
    }
    switch (r) {
      case P_ATTR:
        // One port for address and data, alternating: the flip-flop says which.
        if (!s.attrFlipFlop) s.attrIndex = b & 0x3f;
        else if ((s.attrIndex & 0x1f) < s.attr.length) s.attr[s.attrIndex & 0x1f] = b;
        s.attrFlipFlop = !s.attrFlipFlop;
        break;
      case P_MISC_WRITE:
        s.misc = b;
        break;
      case P_SEQ_INDEX:
        s.seqIndex = b;
        break;
      case P_SEQ_DATA:
        if (s.seqIndex < s.seq.length) s.seq[s.seqIndex] = b;
        break;
      case P_DAC_MASK:
        s.dacMask = b;
        break;
      case P_DAC_READ_INDEX:
        s.dacReadIndex = b;
        s.dacComponent = 0;
        s.dacReading = true;
        break;
      case P_DAC_WRITE_INDEX:
        s.dacWriteIndex = b;
        s.dacComponent = 0;
        s.dacReading = false;
        break;
      case P_DAC_DATA:
        s.palette[s.dacWriteIndex * 3 + s.dacComponent] = b & 0x3f;
        if (++s.dacComponent === 3) {
          s.dacComponent = 0;
          s.dacWriteIndex = (s.dacWriteIndex + 1) & 0xff;
        }
        break;
      case P_GC_INDEX:
        s.gcIndex = b;
        break;
      case P_GC_DATA:
        if (s.gcIndex < s.gc.length) s.gc[s.gcIndex] = b;
        this.generation++;
        break;
      default:
        break; // feature control (0x3BA/0x3DA writes) and unused ports
    }
  }
}

/** Code page 437 as Unicode, for rendering the screen on a terminal or into a file. */
const CP437_LOW = " ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼";
const CP437_HIGH =
  "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0";

/** The character a code-page-437 cell shows. */
export function cp437(code: number): string {
  if (code < 0x20) return CP437_LOW[code];
  if (code < 0x7f) return String.fromCharCode(code);
  if (code === 0x7f) return "⌂";
  return CP437_HIGH[code - 0x80];
}

/** The screen as 25 lines of text, trailing blanks removed. */
export function screenText(screen: TextScreen): string[] {
  const lines: string[] = [];
  for (let row = 0; row < TEXT_ROWS; row++) {
    let line = "";
    for (let col = 0; col < TEXT_COLUMNS; col++)
      line += cp437(screen.chars[row * TEXT_COLUMNS + col]);
    lines.push(line.replace(/[ \u00a0]+$/, ""));
  }
  return lines;
}
