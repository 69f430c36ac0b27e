/**
 * The PC platform around the vCPUs: every device on its bus, the interrupt wiring, and the
 * firmware's data. Wiring (as on a PC with an I/O APIC, and as the MADT and MP tables
 * describe it):
 *
 *   ISA IRQ n ──┬── 8259 pair input n ── INTR ──┬── LINT0 of every local APIC (ExtINT)
 *               │                                └── I/O APIC pin 0
 *               └── I/O APIC pin n (IRQ0 on pin 2)
 *   I/O APIC, local APIC ICRs ── APIC bus ── local APICs ── their vCPUs
 *
 * Several devices may share an ISA line (COM1 and COM3 on IRQ4): the line is high while
 * any of them drives it. Each vCPU sees its own local APIC at the IA32_APIC_BASE address:
 * the xAPIC page is routed to the APIC of the vCPU whose slice is running (`current`), as
 * vCPUs run one at a time (scheduler.ts).
 */
import { DebugCon, DEBUGCON_PORT } from "../devices/debugcon.js";
import { DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT, IsaDebugExit } from "../devices/isa-debug-exit.js";
import { PostCode, POST_CODE_PORT } from "../devices/post-code.js";
import { UART_PORT_COUNT, Uart16550 } from "../devices/uart16550.js";
import {
  ACPI_PM_PORT,
  ACPI_PM_PORT_COUNT,
  AcpiPm,
  PM1A_CNT_BLK,
  PM1A_EVT_BLK,
  PM1_CNT_LEN,
  PM1_EVT_LEN,
  PM_TMR_BLK,
  PM_TMR_LEN,
  SCI_IRQ,
} from "../devices/acpi-pm.js";
import { ApicBus } from "../devices/apic-bus.js";
import {
  I8042,
  I8042_COMMAND_PORT,
  I8042_DATA_PORT,
  KEYBOARD_IRQ,
  MOUSE_IRQ,
  SYSTEM_CONTROL_A_PORT,
  SystemControlPortA,
} from "../devices/i8042.js";
import { IOAPIC_BASE, IOAPIC_MMIO_SIZE, IOAPIC_VERSION, IoApic } from "../devices/ioapic.js";
import { LAPIC_VERSION, LocalApic, XAPIC_DEFAULT_BASE, XAPIC_PAGE_SIZE } from "../devices/lapic.js";
import {
  ELCR_PORT,
  ELCR_PORT_COUNT,
  PIC_MASTER_PORT,
  PIC_PORT_COUNT,
  PIC_SLAVE_PORT,
  PicPair,
} from "../devices/pic8259.js";
import {
  Pit8254,
  PIT_PORT,
  PIT_PORT_COUNT,
  SYSTEM_CONTROL_B_PORT,
  SystemControlPortB,
} from "../devices/pit8254.js";
import { CMOS_CENTURY, RTC_PORT, RTC_PORT_COUNT, RtcCmos } from "../devices/rtc-cmos.js";
import {
  VGA_MEMORY_BASE,
  VGA_MEMORY_SIZE,
  VGA_PORT,
  VGA_PORT_COUNT,
  VgaText,
} from "../devices/vga-text.js";
import { installFirmwareData, type FirmwarePlatform } from "../firmware/firmware.js";
import { allOnes, type AccessSize, type Bus, type BusDevice } from "./bus.js";
import type { VirtualClock } from "./clock.js";
import type { PhysicalMemory } from "./memory.js";

/** COM1-COM4 at their standard ISA addresses and IRQs (IBM PC AT Technical Reference). */
export const COM_PORTS = [0x3f8, 0x2f8, 0x3e8, 0x2e8] as const;
const COM_IRQS = [4, 3, 4, 3] as const;
/** ISA IRQs on an I/O APIC pin other than their own: the PIT's IRQ0 on pin 2. */
export const IRQ_TO_IOAPIC_PIN = new Map([[0, 2]]);
const ISA_IRQ_COUNT = 16;
const RTC_IRQ = 8;
const TIMER_IRQ = 0;
/** The I/O APIC pin the 8259's INTR is wired to (ExtINT, MP Specification 5.1). */
const PIC_IOAPIC_PIN = 0;
/** Port 0x64 with 0xFE pulses the 8042's reset line: the FADT's reset register. */
const RESET_VALUE = 0xfe;

export interface PlatformOptions {
  cpus: number;
  ramBytes: number;
  vga: boolean;
  /** The RTC's time at power-on. */
  rtcStart: Date;
  /** COM1's output and the 0xE9 console's. */
  serial: ((byte: number) => void) | null;
  debugcon: ((byte: number) => void) | null;
  /** The guest wrote to isa-debug-exit: the run ends with this status. */
  onDebugExit: (status: number) => void;
  /** The guest reset the machine (8042 pulse, port 0x92, the ACPI reset register). */
  onReset: (cause: string) => void;
  /** The guest turned the machine off (ACPI S5). */
  onPowerOff: () => void;
}

export class PcPlatform {
  readonly apicBus = new ApicBus();
  readonly lapics: LocalApic[];
  readonly ioapic: IoApic;
  readonly pic: PicPair;
  readonly pit: Pit8254;
  readonly portB: SystemControlPortB;
  readonly rtc: RtcCmos;
  readonly i8042: I8042;
  readonly portA: SystemControlPortA;
  readonly pm: AcpiPm;
  readonly vga: VgaText | null;
  readonly serialPorts: Uart16550[];
  /** The vCPU whose slice is running: its local APIC answers at the xAPIC page. */
  current = 0;
  /** ISA lines: one bit per device driving each line high. */
  private readonly irqLevels = new Array<number>(ISA_IRQ_COUNT).fill(0);
  private readonly irqSources = new Array<number>(ISA_IRQ_COUNT).fill(0);
  /** xAPIC pages mapped so far (a page stays mapped once an APIC has been there). */
  private readonly apicPages = new Set<number>();

  constructor(
    private readonly mem: PhysicalMemory,
    private readonly io: Bus,
    private readonly clock: VirtualClock,
    private readonly o: PlatformOptions,
  ) {
    this.pic = new PicPair((level) => {
      for (const lapic of this.lapics) lapic.setLint0(level);
      this.ioapic.setIrq(PIC_IOAPIC_PIN, level);
    });
    io.register(PIC_MASTER_PORT, PIC_PORT_COUNT, this.pic.masterPorts);
    io.register(PIC_SLAVE_PORT, PIC_PORT_COUNT, this.pic.slavePorts);
    io.register(ELCR_PORT, ELCR_PORT_COUNT, this.pic.elcrPorts);

    this.ioapic = new IoApic(this.apicBus, o.cpus);
    mem.mapMmio(IOAPIC_BASE, IOAPIC_MMIO_SIZE, this.ioapic);
    this.lapics = Array.from({ length: o.cpus }, (_, id) => {
      const lapic = new LocalApic({
        id,
        clock,
        bus: this.apicBus,
        picAcknowledge: () => this.pic.acknowledge(),
      });
      this.apicBus.addLocalApic(lapic);
      lapic.onMmioChange = () => this.mapApicPages();
      return lapic;
    });
    this.mapApicPages();

    this.pit = new Pit8254(clock, this.irqLine(TIMER_IRQ));
    io.register(PIT_PORT, PIT_PORT_COUNT, this.pit);
    this.portB = new SystemControlPortB(this.pit, clock);
    io.register(SYSTEM_CONTROL_B_PORT, 1, this.portB);

    this.rtc = new RtcCmos(clock, {
      start: o.rtcStart,
      ramBytes: o.ramBytes,
      cpus: o.cpus,
      irq: this.irqLine(RTC_IRQ),
    });
    io.register(RTC_PORT, RTC_PORT_COUNT, this.rtc);

    const reset = (cause: string) => () => o.onReset(cause);
    this.i8042 = new I8042({
      irq1: this.irqLine(KEYBOARD_IRQ),
      irq12: this.irqLine(MOUSE_IRQ),
      reset: reset("keyboard controller reset line"),
    });
    io.register(I8042_DATA_PORT, 1, this.i8042.dataPort);
    io.register(I8042_COMMAND_PORT, 1, this.i8042.commandPort);
    this.portA = new SystemControlPortA({ reset: reset("port 0x92 fast reset") });
    io.register(SYSTEM_CONTROL_A_PORT, 1, this.portA);

    this.pm = new AcpiPm(clock, this.irqLine(SCI_IRQ), o.onPowerOff);
    io.register(ACPI_PM_PORT, ACPI_PM_PORT_COUNT, this.pm);

    this.vga = o.vga ? new VgaText(clock) : null;
    if (this.vga) {
      mem.mapMmio(VGA_MEMORY_BASE, VGA_MEMORY_SIZE, this.vga.mmio);
      io.register(VGA_PORT, VGA_PORT_COUNT, this.vga.ports);
    }

    // COM1 is the console; COM2-COM4 exist with their IRQs but their lines lead nowhere.
    const now = () => clock.now();
    this.serialPorts = COM_PORTS.map((port, i) => {
      const uart = new Uart16550({
        name: `uart16550@0x${port.toString(16)}`,
        now,
        transmit: i === 0 && o.serial ? o.serial : undefined,
        irq: this.irqLine(COM_IRQS[i]),
      });
      io.register(port, UART_PORT_COUNT, uart);
      return uart;
    });
    io.register(DEBUGCON_PORT, 1, new DebugCon(o.debugcon));
    io.register(DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT, new IsaDebugExit(o.onDebugExit));
    io.register(POST_CODE_PORT, 1, new PostCode());
  }

  /**
   * Platform reset: every device to its power-on state, then what a BIOS would leave: the
   * 8259s initialized, the BSP's local APIC in virtual wire mode, the firmware's data.
   */
  reset(): void {
    this.clock.resetTsc();
    // The interrupt sources first, so the controllers start from their lines' levels.
    this.pit.reset();
    this.portB.reset();
    this.pic.reset();
    this.pic.initializeAsBios();
    this.ioapic.reset();
    for (const lapic of this.lapics) lapic.powerOn();
    this.lapics[0].setUpVirtualWire();
    this.rtc.reset();
    this.i8042.powerOn();
    this.portA.reset();
    this.pm.reset();
    this.vga?.reset();
    for (const uart of this.serialPorts) uart.reset();
    installFirmwareData(this.mem, this.firmwarePlatform());
  }

  private firmwarePlatform(): FirmwarePlatform {
    return {
      cpus: this.o.cpus,
      serialPorts: COM_PORTS,
      vga: this.vga !== null,
      localApicAddress: XAPIC_DEFAULT_BASE,
      localApicVersion: LAPIC_VERSION,
      ioApic: { id: this.o.cpus, version: IOAPIC_VERSION, address: IOAPIC_BASE },
      irqToPin: IRQ_TO_IOAPIC_PIN,
      sciIrq: SCI_IRQ,
      acpi: {
        pm1aEventBlock: PM1A_EVT_BLK,
        pm1EventLength: PM1_EVT_LEN,
        pm1aControlBlock: PM1A_CNT_BLK,
        pm1ControlLength: PM1_CNT_LEN,
        pmTimerBlock: PM_TMR_BLK,
        pmTimerLength: PM_TMR_LEN,
        centuryIndex: CMOS_CENTURY,
        reset: { port: I8042_COMMAND_PORT, value: RESET_VALUE },
      },
    };
  }

  /** A new driver of ISA line `irq`: the line is high while any of its drivers is. */
  irqLine(irq: number): (level: boolean) => void {
    const bit = 1 << this.irqSources[irq]++;
    return (level) => {
      const before = this.irqLevels[irq] !== 0;
      if (level) this.irqLevels[irq] |= bit;
      else this.irqLevels[irq] &= ~bit;
      const after = this.irqLevels[irq] !== 0;
      if (before === after) return;
      this.pic.setIrq(irq, after);
      this.ioapic.setIrq(IRQ_TO_IOAPIC_PIN.get(irq) ?? irq, after);
    };
  }

  /**
   * Maps an xAPIC page wherever an enabled local APIC has its base, when that address is
   * free: an APIC moved onto RAM or another device is not decoded there (RAM and the
   * device win), nor one above 4 GiB.
   */
  private mapApicPages(): void {
    for (const lapic of this.lapics ?? []) {
      const base = lapic.mmioBase;
      if (base === null || this.apicPages.has(base)) continue;
      if (base + XAPIC_PAGE_SIZE > 0x100000000 || base < this.mem.ramSize) continue;
      if (this.mem.mmio.find(base) !== undefined) continue;
      this.mem.mapMmio(base, XAPIC_PAGE_SIZE, this.apicPage(base));
      this.apicPages.add(base);
    }
  }

  /** The xAPIC page at `base`: the running vCPU's APIC if it is there, else nothing. */
  private apicPage(base: number): BusDevice {
    const here = () => {
      const lapic = this.lapics[this.current];
      return lapic !== undefined && lapic.mmioBase === base ? lapic : null;
    };
    return {
      name: `lapic@0x${base.toString(16)}`,
      read: (offset: number, size: AccessSize) => here()?.readMmio(offset, size) ?? allOnes(size),
      write: (offset: number, size: AccessSize, value: number) =>
        here()?.writeMmio(offset, size, value),
    };
  }
}
