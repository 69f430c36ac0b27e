/**
 * The 8042 keyboard controller with its keyboard and mouse, and port 0x92
 * (src/devices/i8042.ts): controller commands, the command byte, device command sets,
 * interrupts, A20 and the reset lines.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { I8042, SystemControlPortA } from "../src/devices/i8042.js";

function setUp() {
  const log: string[] = [];
  const irq1: boolean[] = [];
  const irq12: boolean[] = [];
  const kbc = new I8042({
    irq1: (l) => irq1.push(l),
    irq12: (l) => irq12.push(l),
    reset: () => log.push("reset"),
    a20: (on) => log.push(`a20 ${on}`),
  });
  const cmd = (v: number) => kbc.commandPort.write(0, 1, v);
  const data = (v: number) => kbc.dataPort.write(0, 1, v);
  const status = () => kbc.commandPort.read(0, 1);
  /** Every byte waiting in the output buffer, in order. */
  const drain = () => {
    const out: number[] = [];
    while (status() & 0x01) out.push(kbc.dataPort.read(0, 1));
    return out;
  };
  return { kbc, cmd, data, status, drain, log, irq1, irq12 };
}

describe("8042 keyboard controller", () => {
  it("passes its self-tests and keeps the command byte", () => {
    const { cmd, data, status, drain } = setUp();
    assert.equal(status() & 0x14, 0x14, "system flag and not inhibited");
    cmd(0xaa);
    assert.deepEqual(drain(), [0x55]);
    cmd(0xab);
    cmd(0xa9);
    assert.deepEqual(drain(), [0x00], "one output buffer: the second answer replaced the first");
    cmd(0x20);
    assert.deepEqual(drain(), [0x65], "INT, SYS, mouse disabled, translation");
    cmd(0x60);
    data(0x47);
    cmd(0x20);
    assert.deepEqual(drain(), [0x47]);
    assert.equal(status() & 0x08, 0x08, "the last write was a command");
  });

  it("resets and identifies the keyboard, translating its ID to set 1", () => {
    const { cmd, data, drain, irq1 } = setUp();
    data(0xff);
    assert.deepEqual(irq1, [true], "IRQ1 while the keyboard's byte waits");
    assert.deepEqual(drain(), [0xfa, 0xaa]);
    assert.deepEqual(irq1, [true, false, true, false]);
    data(0xf2);
    assert.deepEqual(drain(), [0xfa, 0xab, 0x41]);
    cmd(0x60);
    data(0x05); // translation off, IRQ1 on
    data(0xf2);
    assert.deepEqual(drain(), [0xfa, 0xab, 0x83]);
    data(0xf0);
    data(0x00);
    assert.deepEqual(drain(), [0xfa, 0xfa, 0x02], "scan-code set 2");
    data(0xed);
    data(0x07);
    data(0xee);
    data(0x99);
    assert.deepEqual(drain(), [0xfa, 0xfa, 0xee, 0xfe]);
  });

  it("talks to the mouse through 0xD4, with IRQ12, and detects the wheel", () => {
    const { cmd, data, drain, status, irq12 } = setUp();
    cmd(0xa8); // enable the mouse port
    cmd(0x60);
    data(0x47); // INT, INT2, SYS, translation
    cmd(0xd4);
    data(0xff);
    assert.equal(status() & 0x20, 0x20, "mouse data");
    assert.deepEqual(irq12, [true]);
    assert.deepEqual(drain(), [0xfa, 0xaa, 0x00]);
    for (const rate of [200, 100, 80]) {
      cmd(0xd4);
      data(0xf3);
      cmd(0xd4);
      data(rate);
    }
    cmd(0xd4);
    data(0xf2);
    assert.deepEqual(drain(), [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0x03]);
    cmd(0xd4);
    data(0xe9);
    assert.deepEqual(drain(), [0xfa, 0x00, 0x02, 80]);
  });

  it("holds device bytes back while their port is disabled", () => {
    const { cmd, data, drain } = setUp();
    cmd(0xd4);
    data(0xf4);
    assert.deepEqual(drain(), [], "the mouse port is disabled");
    cmd(0xa8);
    assert.deepEqual(drain(), [0xfa]);
    cmd(0xd3);
    data(0x12); // as if from the mouse
    cmd(0xd2);
    data(0x34); // as if from the keyboard
    assert.deepEqual(drain(), [0x12, 0x34]);
  });

  it("switches A20 through the output port and resets through its reset line", () => {
    const { kbc, cmd, data, drain, log } = setUp();
    cmd(0xd0);
    assert.equal(drain()[0] & 0x03, 0x03, "reset line inactive, A20 on");
    cmd(0xd1);
    data(0x01);
    assert.equal(kbc.a20, false);
    cmd(0xdf);
    assert.equal(kbc.a20, true);
    cmd(0xfe);
    cmd(0xff); // pulses nothing
    cmd(0xd1);
    data(0x02); // bit 0 clear: reset
    assert.deepEqual(log, ["a20 false", "a20 true", "reset", "reset"]);
  });
});

describe("port 0x92", () => {
  it("gates A20 with bit 1 and resets on a rising bit 0", () => {
    const log: string[] = [];
    const p = new SystemControlPortA({
      reset: () => log.push("reset"),
      a20: (on) => log.push(`a20 ${on}`),
    });
    p.write(0, 1, 0x02);
    assert.equal(p.read(0, 1), 0x02);
    p.write(0, 1, 0x03);
    p.write(0, 1, 0x03);
    p.write(0, 1, 0x00);
    assert.deepEqual(log, ["a20 true", "reset", "a20 false"]);
  });
});
