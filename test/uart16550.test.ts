import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import {
  FCR_FIFO_ENABLE,
  FCR_RX_RESET,
  IER_EDSSI,
  IER_ELSI,
  IER_ERBFI,
  IER_ETBEI,
  IIR_FIFOS_ENABLED,
  IIR_LINE_STATUS,
  IIR_MODEM_STATUS,
  IIR_NO_INTERRUPT,
  IIR_RX_DATA,
  IIR_RX_TIMEOUT,
  IIR_THR_EMPTY,
  LCR_DLAB,
  LSR_DR,
  LSR_OE,
  LSR_TEMT,
  LSR_THRE,
  MCR_DTR,
  MCR_LOOP,
  MCR_OUT1,
  MCR_OUT2,
  MCR_RTS,
  MSR_CTS,
  MSR_DCD,
  MSR_DCTS,
  MSR_DDCD,
  MSR_DDSR,
  MSR_DSR,
  MSR_RI,
  MSR_TERI,
  Uart16550,
} from "../src/devices/uart16550.js";

const THR = 0;
const RBR = 0;
const DLL = 0;
const IER = 1;
const DLM = 1;
const IIR = 2;
const FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;
/** Four character times at the power-on 9600 baud with 8N1 frames (10 bits): 4.17 ms. */
const TIMEOUT_NS = Math.ceil((4 * 10 * 1e9 * 12) / 115200);

let uart: Uart16550;
let sent: number[];
let irqLevels: boolean[];
let now: number;

const get = (reg: number) => uart.read(reg, 1);
const set = (reg: number, value: number) => uart.write(reg, 1, value);
const drain = (n: number) => Array.from({ length: n }, () => get(RBR));

beforeEach(() => {
  sent = [];
  irqLevels = [];
  now = 0;
  uart = new Uart16550({
    name: "com1",
    now: () => now,
    transmit: (b) => sent.push(b),
    irq: (level) => irqLevels.push(level),
  });
});

describe("16550A registers", () => {
  it("starts in the reset state", () => {
    assert.equal(get(IER), 0);
    assert.equal(get(IIR), IIR_NO_INTERRUPT);
    assert.equal(get(LCR), 0);
    assert.equal(get(MCR), 0);
    assert.equal(get(LSR), LSR_THRE | LSR_TEMT);
    assert.equal(get(MSR), MSR_CTS | MSR_DSR | MSR_DCD, "a connected terminal, no ring");
  });

  it("sends THR writes to the sink and stays ready to transmit", () => {
    for (const b of [0x68, 0x69, 0x0a]) set(THR, b);
    assert.deepEqual(sent, [0x68, 0x69, 0x0a]);
    assert.equal(get(LSR), LSR_THRE | LSR_TEMT);
  });

  it("maps the divisor latch over THR/RBR and IER while DLAB is set", () => {
    set(IER, IER_ERBFI);
    set(LCR, LCR_DLAB | 0x03);
    assert.equal(get(DLL), 12, "9600 baud until programmed");
    set(DLL, 0x01);
    set(DLM, 0x02);
    assert.equal(get(DLL), 0x01);
    assert.equal(get(DLM), 0x02);
    assert.deepEqual(sent, [], "divisor writes are not transmitted");
    set(LCR, 0x03);
    assert.equal(get(IER), IER_ERBFI, "IER kept its value under the latch");
    set(THR, 0x41);
    assert.deepEqual(sent, [0x41]);
    set(LCR, LCR_DLAB);
    assert.equal(get(DLL) | (get(DLM) << 8), 0x0201);
  });

  it("keeps LCR, MCR (5 bits), IER (4 bits) and SCR", () => {
    set(LCR, 0x5b);
    set(MCR, 0xff);
    set(IER, 0xff);
    set(SCR, 0xa5);
    assert.deepEqual([get(LCR), get(MCR), get(IER), get(SCR)], [0x5b, 0x1f, 0x0f, 0xa5]);
  });

  it("splits wider accesses into byte registers", () => {
    set(SCR, 0x12);
    assert.equal(uart.read(LSR, 2), (get(MSR) << 8) | (LSR_THRE | LSR_TEMT));
    assert.equal(uart.read(SCR, 2), 0xff12, "the byte past the UART reads all-ones");
    uart.write(LCR, 2, 0x0803); // LCR = 0x03, MCR = 0x08
    assert.deepEqual([get(LCR), get(MCR)], [0x03, 0x08]);
  });

  it("returns to the reset state on master reset, except the divisor and SCR", () => {
    set(LCR, LCR_DLAB);
    set(DLL, 1);
    set(LCR, 0x03);
    set(IER, 0x0f);
    set(MCR, 0x0b);
    set(SCR, 0x77);
    set(FCR, FCR_FIFO_ENABLE);
    uart.reset();
    assert.deepEqual([get(IER), get(IIR), get(LCR), get(MCR), get(SCR)], [0, 1, 0, 0, 0x77]);
    set(LCR, LCR_DLAB);
    assert.equal(get(DLL), 1);
  });
});

describe("16550A receiver", () => {
  it("holds one byte without the FIFO and delivers the rest as it is read", () => {
    uart.receive([0x41, 0x42]);
    assert.equal(get(LSR) & LSR_DR, LSR_DR);
    assert.equal(get(RBR), 0x41);
    assert.equal(get(LSR) & LSR_DR, LSR_DR, "the next byte moved in");
    assert.equal(get(RBR), 0x42);
    assert.equal(get(LSR) & (LSR_DR | LSR_OE), 0, "no overrun: host bytes wait for room");
    assert.equal(get(RBR), 0x42, "an empty RBR still holds the last byte");
  });

  it("buffers 16 bytes with the FIFO on and loses none of a longer burst", () => {
    set(FCR, FCR_FIFO_ENABLE);
    assert.equal(get(IIR) & IIR_FIFOS_ENABLED, IIR_FIFOS_ENABLED);
    const input = Array.from({ length: 40 }, (_, i) => i);
    uart.receive(input);
    assert.deepEqual(drain(40), input);
    assert.equal(get(LSR) & LSR_DR, 0);
  });

  it("clears the receive FIFO on FCR reset and when the FIFO mode changes", () => {
    set(FCR, FCR_FIFO_ENABLE);
    set(MCR, MCR_LOOP);
    for (const b of [1, 2, 3]) set(THR, b);
    set(FCR, FCR_FIFO_ENABLE | FCR_RX_RESET);
    assert.equal(get(LSR) & LSR_DR, 0);
    for (const b of [4, 5]) set(THR, b);
    set(FCR, 0);
    assert.equal(get(LSR) & LSR_DR, 0);
    assert.equal(get(IIR) & IIR_FIFOS_ENABLED, 0);
  });

  it("raises received-data at the trigger level and the timeout below it", () => {
    set(LCR, 0x03); // 8 data bits, no parity, 1 stop bit
    set(FCR, FCR_FIFO_ENABLE | (3 << 6)); // trigger at 14 bytes
    set(IER, IER_ERBFI);
    uart.receive(Array.from({ length: 13 }, (_, i) => i));
    assert.equal(get(IIR), IIR_FIFOS_ENABLED | IIR_NO_INTERRUPT);
    uart.receive([13]);
    assert.equal(get(IIR), IIR_FIFOS_ENABLED | IIR_RX_DATA);
    get(RBR);
    assert.equal(get(IIR), IIR_FIFOS_ENABLED | IIR_NO_INTERRUPT, "13 bytes, just read");
    now += TIMEOUT_NS - 1;
    assert.equal(get(IIR), IIR_FIFOS_ENABLED | IIR_NO_INTERRUPT);
    now += 1;
    assert.equal(get(IIR), IIR_FIFOS_ENABLED | IIR_RX_TIMEOUT);
    get(RBR);
    assert.equal(get(IIR), IIR_FIFOS_ENABLED | IIR_NO_INTERRUPT, "a read restarts the timer");
    now += TIMEOUT_NS;
    uart.poll();
    assert.equal(irqLevels.at(-1), true, "poll() raises the timeout interrupt as time passes");
    drain(12);
    assert.equal(get(IIR), IIR_FIFOS_ENABLED | IIR_NO_INTERRUPT, "no timeout when empty");
  });
});

describe("16550A loopback", () => {
  it("feeds transmitted bytes back to the receiver instead of the line", () => {
    set(FCR, FCR_FIFO_ENABLE);
    set(MCR, MCR_LOOP);
    for (const b of [7, 8, 9]) set(THR, b);
    assert.deepEqual(sent, []);
    assert.deepEqual(drain(3), [7, 8, 9]);
  });

  it("holds host input while looped back and delivers it afterwards", () => {
    set(MCR, MCR_LOOP);
    uart.receive([0x55]);
    assert.equal(get(LSR) & LSR_DR, 0);
    set(MCR, 0);
    assert.equal(get(RBR), 0x55);
  });

  it("drives the modem inputs from MCR and latches their changes", () => {
    set(MCR, MCR_LOOP);
    // CTS, DSR and DCD drop from the host side's state to MCR's (all off).
    assert.equal(get(MSR), MSR_DCTS | MSR_DDSR | MSR_DDCD);
    assert.equal(get(MSR), 0, "reading MSR clears the change bits");
    set(MCR, MCR_LOOP | MCR_RTS | MCR_DTR | MCR_OUT1 | MCR_OUT2);
    assert.equal(get(MSR), MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD | MSR_DCTS | MSR_DDSR | MSR_DDCD);
    set(MCR, MCR_LOOP | MCR_RTS | MCR_DTR | MCR_OUT2);
    assert.equal(get(MSR), MSR_CTS | MSR_DSR | MSR_DCD | MSR_TERI, "RI's trailing edge");
  });

  it("reports an overrun: the FIFO keeps its 16 bytes, RBR takes the newest", () => {
    set(FCR, FCR_FIFO_ENABLE);
    set(MCR, MCR_LOOP);
    for (let b = 0; b < 17; b++) set(THR, b);
    assert.equal(get(LSR) & LSR_OE, LSR_OE);
    assert.equal(get(LSR) & LSR_OE, 0, "reading LSR clears OE");
    assert.deepEqual(drain(16), [...Array(16).keys()]);

    set(FCR, 0);
    set(THR, 0x61);
    set(THR, 0x62);
    assert.equal(get(LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
    assert.equal(get(RBR), 0x62);
  });
});

describe("16550A interrupts", () => {
  it("identifies pending interrupts in priority order", () => {
    set(MCR, MCR_LOOP); // modem status changes
    set(THR, 1);
    set(THR, 2); // overrun without the FIFO; THR empty again
    set(IER, IER_ERBFI | IER_ETBEI | IER_ELSI | IER_EDSSI);
    assert.equal(get(IIR), IIR_LINE_STATUS);
    get(LSR);
    assert.equal(get(IIR), IIR_RX_DATA);
    get(RBR);
    assert.equal(get(IIR), IIR_THR_EMPTY, "reading IIR clears THRE when it reports it");
    assert.equal(get(IIR), IIR_MODEM_STATUS);
    get(MSR);
    assert.equal(get(IIR), IIR_NO_INTERRUPT);
  });

  it("raises THRE when enabled with THR empty and again after each THR write", () => {
    set(IER, IER_ETBEI);
    assert.deepEqual(irqLevels, [true]);
    assert.equal(get(IIR), IIR_THR_EMPTY);
    assert.deepEqual(irqLevels, [true, false]);
    set(THR, 0x41);
    assert.deepEqual(irqLevels, [true, false, true]);
    set(IER, 0);
    assert.deepEqual(irqLevels, [true, false, true, false], "IER masks the output");
  });

  it("masks each source with its IER bit", () => {
    uart.receive([1]);
    set(MCR, MCR_LOOP);
    assert.equal(get(IIR), IIR_NO_INTERRUPT);
    assert.deepEqual(irqLevels, []);
    set(IER, IER_ERBFI);
    assert.equal(get(IIR), IIR_RX_DATA);
    get(RBR);
    assert.deepEqual(irqLevels, [true, false]);
  });
});
