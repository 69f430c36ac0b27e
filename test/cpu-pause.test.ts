/**
 * Found with the smp guest kernel, whose spin loops use PAUSE: the CPU runs F3 90 as the
 * spin-loop hint it is (a NOP, SDM Vol. 2B, "PAUSE: Spin Loop Hint", opcode F3 90), but its
 * decoder and disassembler call it NOP, so the decoder test against iced-x86 fails on the
 * smp kernels. This test shows it alone; it fails until F3 90 has its own opcode-table row.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatInstr } from "../src/cpu/disasm.js";
import { CODE, decodeAt, makeCpu } from "./helpers/cpu.js";

describe("PAUSE", () => {
  it("decodes F3 90 as PAUSE, and 90 alone as NOP", () => {
    const { cpu } = makeCpu();
    assert.equal(formatInstr(decodeAt(cpu, [0x90]), CODE + 1), "nop");
    const pause = decodeAt(cpu, [0xf3, 0x90]);
    assert.equal(pause.len, 2);
    assert.equal(formatInstr(pause, CODE + 2), "pause");
  });
});
