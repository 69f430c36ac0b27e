/**
 * Found with the original SHV, whose entry code pushes before it loads its own stack (a far
 * return to reload CS after LGDT): the multiboot specification (3.2) leaves ESP undefined,
 * but QEMU's -kernel, which design.md's decision 6 says to match, enters the kernel with a
 * usable stack in low memory (ESP = 0x6F08 with QEMU 7.2 and SeaBIOS), and so does GRUB.
 * The soft CPU's setMultibootEntry leaves ESP at its reset value 0: the first push goes to
 * 0xFFFFFFFC, where nothing decodes it, and the original SHV triple-faults at its first far
 * return. This test fails until the multiboot entry state has a stack.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { softEngine } from "../src/engine/soft.js";
import { Machine } from "../src/machine/machine.js";
import { aoutImage } from "./helpers/kernel-images.js";

describe("multiboot entry state", () => {
  it("has a stack that works, as QEMU's -kernel gives", async () => {
    const code = [
      ...[0xe8, 0x00, 0x00, 0x00, 0x00], // call next (pushes 0x100025)
      0x58, // next: pop eax
      ...[0x2d, 0x25, 0x00, 0x10, 0x00], // sub eax, 0x100025
      ...[0xba, 0xf4, 0x00, 0x00, 0x00], // mov edx, 0xf4
      0xef, // out dx, eax: exit status 1 when the pop got the pushed address
    ];
    const machine = new Machine({
      memoryMiB: 16,
      smp: 1,
      kernel: aoutImage(0x100000, Uint8Array.from(code), 0, 0x100020),
      cmdline: "k",
      modules: [],
      serial: null,
      debugcon: null,
      noReboot: true,
      timeoutSeconds: 10,
      engine: softEngine,
    });
    assert.deepEqual(await machine.run(), { kind: "exit", status: 1 });
  });
});
