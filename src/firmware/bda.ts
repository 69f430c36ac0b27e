/**
 * The BIOS data area at 0x400 and the extended BIOS data area below 640 KiB (IBM PC AT
 * Technical Reference, "BIOS Data Area"; the fields kernels read: the serial port
 * addresses, the equipment word, the base memory size, the EBDA segment and the video
 * state of text mode 3).
 */
import { EBDA_END, EBDA_START } from "../machine/layout.js";
import { TableWriter, type Placed } from "./table-writer.js";

export const BDA_ADDRESS = 0x400;
/** BDA offset 0x0E: the EBDA's segment (the MP and ACPI specifications search its first KiB). */
export const BDA_EBDA_SEGMENT = 0x0e;
/** BDA offset 0x13: conventional memory below the EBDA, in KiB. */
export const BDA_BASE_MEMORY_KIB = 0x13;
const BDA_SIZE = 0x100;

// Equipment word (BDA offset 0x10).
/** Bits 5:4: initial video mode, 10 = 80x25 colour. */
const EQUIPMENT_VIDEO_80X25_COLOR = 0b10 << 4;
/** Bits 11:9: the number of serial ports. */
const EQUIPMENT_SERIAL_SHIFT = 9;

export interface BdaPlatform {
  serialPorts: readonly number[];
  vga: boolean;
}

export function buildBiosDataAreas(p: BdaPlatform): Placed[] {
  const w = new TableWriter(BDA_SIZE).zeros(BDA_SIZE);
  p.serialPorts.slice(0, 4).forEach((port, i) => w.setU16(2 * i, port));
  w.setU16(BDA_EBDA_SEGMENT, EBDA_START >>> 4);
  w.setU16(
    0x10,
    (p.serialPorts.length << EQUIPMENT_SERIAL_SHIFT) | (p.vga ? EQUIPMENT_VIDEO_80X25_COLOR : 0),
  );
  w.setU16(BDA_BASE_MEMORY_KIB, EBDA_START >>> 10);
  if (p.vga) {
    w.setU8(0x49, 0x03); // video mode 3
    w.setU16(0x4a, 80); // columns
    w.setU16(0x4c, 0x1000); // bytes per page
    w.setU16(0x60, 0x0d0e); // cursor shape: scan lines 13 (start) to 14 (end)
    w.setU16(0x63, 0x3d4); // CRT controller base port
    w.setU8(0x65, 0x29); // mode control register value
    w.setU8(0x66, 0x30); // palette register value
    w.setU8(0x84, 24); // rows minus one
    w.setU16(0x85, 16); // character height in scan lines
  }
  // The EBDA starts with its own size in KiB.
  const ebda = new TableWriter().u8((EBDA_END - EBDA_START) >>> 10);
  return [
    { address: BDA_ADDRESS, bytes: w.finish() },
    { address: EBDA_START, bytes: ebda.finish() },
  ];
}
