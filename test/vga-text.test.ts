/**
 * The text-mode VGA (src/devices/vga-text.ts): the text buffer in the 0xA0000 window, the
 * CRTC's cursor and start address, the attribute flip-flop, the colour/mono port switch,
 * retrace timing on the virtual clock, and the rendering helpers.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cp437, screenText, TEXT_COLUMNS, VgaText } from "../src/devices/vga-text.js";
import { VirtualClock } from "../src/machine/clock.js";

const TEXT = 0x18000; // 0xB8000 in the window
const port = (p: number) => p - 0x3b0;

function setUp() {
  const clock = new VirtualClock();
  const vga = new VgaText(clock);
  const out = (p: number, v: number) => vga.ports.write(port(p), 1, v);
  const inb = (p: number) => vga.ports.read(port(p), 1);
  const crtc = (i: number, v?: number) => {
    out(0x3d4, i);
    if (v === undefined) return inb(0x3d5);
    out(0x3d5, v);
    return v;
  };
  return { clock, vga, out, inb, crtc };
}

describe("VGA text mode", () => {
  it("starts as BIOS mode 3: a blank grey-on-black screen, cursor at the top left", () => {
    const { vga, inb } = setUp();
    const s = vga.screen();
    assert.equal(s.chars.length, 2000);
    assert.ok(s.chars.every((c) => c === 0x20));
    assert.ok(s.attrs.every((a) => a === 0x07));
    assert.deepEqual(s.cursor, { row: 0, column: 0 });
    assert.equal(inb(0x3cc), 0x67, "misc output: colour, 0x3Dx");
  });

  it("shows what the guest writes at 0xB8000, with the CRTC's cursor and start address", () => {
    const { vga, crtc } = setUp();
    const g0 = vga.generation;
    vga.mmio.write(TEXT, 2, 0x1f48); // 'H', white on blue
    vga.mmio.write(TEXT + 2, 4, 0x1f211f69); // 'i', '!'
    assert.ok(vga.generation > g0);
    const s = vga.screen();
    assert.deepEqual([...s.chars.subarray(0, 3)], [0x48, 0x69, 0x21]);
    assert.equal(s.attrs[0], 0x1f);
    assert.equal(vga.mmio.read(TEXT, 4), 0x1f691f48, "the window reads back");
    crtc(0x0e, 0x00);
    crtc(0x0f, 83); // row 1, column 3
    assert.deepEqual(vga.screen().cursor, { row: 1, column: 3 });
    crtc(0x0a, 0x20); // cursor off
    assert.equal(vga.screen().cursor, null);
    crtc(0x0c, 0x00);
    crtc(0x0d, TEXT_COLUMNS); // scrolled by one line
    vga.mmio.write(TEXT + 2 * TEXT_COLUMNS, 1, 0x41);
    assert.equal(vga.screen().chars[0], 0x41);
    assert.equal(screenText(vga.screen())[0], "A");
  });

  it("write-protects CRTC registers 0-7 with bit 7 of register 0x11", () => {
    const { crtc } = setUp();
    crtc(0x11, 0x8e);
    crtc(0x01, 0x12);
    assert.equal(crtc(0x01), 0x4f);
    crtc(0x11, 0x0e);
    crtc(0x01, 0x12);
    assert.equal(crtc(0x01), 0x12);
  });

  it("moves the CRTC to 0x3Bx in mono mode", () => {
    const { out, inb } = setUp();
    out(0x3c2, 0x66);
    out(0x3b4, 0x0e);
    out(0x3b5, 0x07);
    assert.equal(inb(0x3b5), 0x07);
    assert.equal(inb(0x3d5), 0xff, "nothing at 0x3D5 now");
  });

  it("resets the attribute flip-flop on an input status 1 read", () => {
    const { out, inb } = setUp();
    out(0x3c0, 0x10); // index 0x10 (mode control)
    inb(0x3da);
    out(0x3c0, 0x12); // an index again, not data
    out(0x3c0, 0x05); // data for index 0x12
    assert.equal(inb(0x3c0), 0x12);
    assert.equal(inb(0x3c1), 0x05);
  });

  it("times vertical retrace and blanking on the virtual clock", () => {
    const { clock, inb } = setUp();
    clock.advanceTo(1e6);
    assert.equal(inb(0x3da) & 0x08, 0);
    clock.advanceTo(1e9 / 60 - 10_000);
    assert.equal(inb(0x3da) & 0x09, 0x09);
  });

  it("keeps the DAC palette, three components per entry", () => {
    const { out, inb } = setUp();
    out(0x3c8, 5);
    for (const v of [0x3f, 0x20, 0x41]) out(0x3c9, v);
    out(0x3c7, 5);
    assert.deepEqual([inb(0x3c9), inb(0x3c9), inb(0x3c9)], [0x3f, 0x20, 0x01]);
  });

  it("maps code page 437 to Unicode", () => {
    assert.equal(cp437(0x41), "A");
    assert.equal(cp437(0x01), "☺");
    assert.equal(cp437(0xb3), "│");
    assert.equal(cp437(0xdb), "█");
    assert.equal(cp437(0xff), "\u00a0");
    assert.equal(cp437(0x00), " ");
  });
});
