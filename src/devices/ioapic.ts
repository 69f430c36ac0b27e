/**
 * An Intel 82093AA I/O APIC (82093AA data sheet) at 0xFEC00000: 24 interrupt inputs, each
 * with a redirection-table entry that turns it into a message on the APIC bus. The
 * registers are reached indirectly: IOREGSEL (offset 0x00) selects one, IOWIN (offset
 * 0x10) reads or writes it (3.0 "Register Description").
 *
 * Edge-triggered inputs send a message on each rising edge (after the polarity bit);
 * level-triggered ones while asserted, one at a time: remote IRR is set when the message
 * is sent and cleared by the local APIC's EOI broadcast for its vector, after which an
 * input still asserted sends again. Edges on a masked input are lost, as the data sheet
 * says; a masked level input is seen again when it is unmasked.
 */
import type { AccessSize, BusDevice } from "../machine/bus.js";
import { ApicBus, DeliveryMode, Shorthand, type EoiListener } from "./apic-bus.js";

export const IOAPIC_BASE = 0xfec00000;
export const IOAPIC_MMIO_SIZE = 0x1000;
export const IOAPIC_PINS = 24;
/** IOAPICVER bits 7:0: the 82093AA's version. */
export const IOAPIC_VERSION = 0x11;

// Memory-mapped registers.
const IOREGSEL = 0x00;
const IOWIN = 0x10;

// Indirect registers.
export const IOAPICID = 0x00;
export const IOAPICVER = 0x01;
export const IOAPICARB = 0x02;
export const IOREDTBL = 0x10;
/** IOAPICID and IOAPICARB: the ID in bits 27:24. */
const ID_SHIFT = 24;
const ID_MASK = 0x0f;
/** IOAPICVER bits 23:16: the highest redirection entry. */
const VER_MAX_ENTRY_SHIFT = 16;

// Redirection-table entry, low dword (3.2.4).
/** Bits 7:0 INTVEC. */
const RTE_VECTOR = 0xff;
/** Bits 10:8 DELMOD. */
const RTE_DELIVERY_MODE_SHIFT = 8;
/** Bit 11 DESTMOD: logical destination. */
export const RTE_LOGICAL = 1 << 11;
// Bit 12 DELIVS, the delivery status, always reads idle: messages go out at once.
/** Bit 13 INTPOL: active low. */
export const RTE_ACTIVE_LOW = 1 << 13;
/** Bit 14: remote IRR (read-only). */
export const RTE_REMOTE_IRR = 1 << 14;
/** Bit 15: level-triggered. */
export const RTE_LEVEL = 1 << 15;
/** Bit 16: masked. */
export const RTE_MASKED = 1 << 16;
const RTE_LO_WRITABLE =
  RTE_VECTOR |
  (7 << RTE_DELIVERY_MODE_SHIFT) |
  RTE_LOGICAL |
  RTE_ACTIVE_LOW |
  RTE_LEVEL |
  RTE_MASKED;
/** High dword bits 31:24 (entry bits 63:56): the destination. */
const RTE_HI_WRITABLE = 0xff000000;
const RTE_DESTINATION_SHIFT = 24;

export interface IoApicSnapshot {
  id: number;
  ioregsel: number;
  /** Entry low and high dwords. */
  redirection: [number, number][];
  /** The input lines' levels (before the polarity bit). */
  lines: number;
}

export class IoApic implements BusDevice, EoiListener {
  readonly name = "ioapic";
  private s: IoApicSnapshot;

  constructor(
    private readonly bus: ApicBus,
    /** The ID a BIOS assigns (unique on the APIC bus). */
    private readonly initialId: number,
  ) {
    this.s = this.powerOn();
    bus.addEoiListener(this);
  }

  private powerOn(): IoApicSnapshot {
    return {
      id: this.initialId & ID_MASK,
      ioregsel: 0,
      redirection: Array.from({ length: IOAPIC_PINS }, (): [number, number] => [RTE_MASKED, 0]),
      lines: this.s?.lines ?? 0,
    };
  }

  reset(): void {
    this.s = this.powerOn();
  }

  snapshot(): IoApicSnapshot {
    return { ...this.s, redirection: this.s.redirection.map(([lo, hi]) => [lo, hi]) };
  }

  /** Input `pin` changed level. */
  setIrq(pin: number, level: boolean): void {
    if (pin < 0 || pin >= IOAPIC_PINS) return;
    const bit = 1 << pin;
    const was = (this.s.lines & bit) !== 0;
    if (level) this.s.lines |= bit;
    else this.s.lines &= ~bit;
    const lo = this.s.redirection[pin][0];
    const active = this.asserted(pin);
    const wasActive = lo & RTE_ACTIVE_LOW ? !was : was;
    if (lo & RTE_LEVEL) {
      if (active) this.service(pin);
    } else if (active && !wasActive && !(lo & RTE_MASKED)) {
      this.send(pin); // an edge into the active state
    }
  }

  /** EOI broadcast: level-triggered entries with this vector may interrupt again. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const e = this.s.redirection[pin];
      if ((e[0] & RTE_VECTOR) === vector && e[0] & RTE_REMOTE_IRR) {
        e[0] &= ~RTE_REMOTE_IRR;
        this.service(pin);
      }
    }
  }

  private asserted(pin: number): boolean {
    const level = (this.s.lines & (1 << pin)) !== 0;
    return this.s.redirection[pin][0] & RTE_ACTIVE_LOW ? !level : level;
  }

  /** A level-triggered input: sends when asserted, unmasked and not already in service. */
  private service(pin: number): void {
    const lo = this.s.redirection[pin][0];
    if (!(lo & RTE_LEVEL) || lo & RTE_MASKED || lo & RTE_REMOTE_IRR || !this.asserted(pin)) return;
    const mode = (lo >>> RTE_DELIVERY_MODE_SHIFT) & 7;
    if (mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority) {
      this.s.redirection[pin][0] |= RTE_REMOTE_IRR;
    }
    this.send(pin);
  }

  private send(pin: number): void {
    const [lo, hi] = this.s.redirection[pin];
    const mode = (lo >>> RTE_DELIVERY_MODE_SHIFT) & 7;
    // Mode 3 is reserved; StartUp is not an I/O APIC delivery mode.
    if (mode === 3 || mode === DeliveryMode.StartUp) return;
    this.bus.send(
      {
        vector: lo & RTE_VECTOR,
        mode,
        logical: (lo & RTE_LOGICAL) !== 0,
        destination: hi >>> RTE_DESTINATION_SHIFT,
        x2apic: false,
        shorthand: Shorthand.None,
        assert: true,
        levelTriggered: (lo & RTE_LEVEL) !== 0,
      },
      null,
    );
  }

  private readRegister(index: number): number {
    if (index >= IOREDTBL && index < IOREDTBL + 2 * IOAPIC_PINS) {
      const e = this.s.redirection[(index - IOREDTBL) >>> 1];
      return e[index & 1] >>> 0;
    }
    switch (index) {
      case IOAPICID:
      case IOAPICARB:
        return (this.s.id << ID_SHIFT) >>> 0;
      case IOAPICVER:
        return ((IOAPIC_PINS - 1) << VER_MAX_ENTRY_SHIFT) | IOAPIC_VERSION;
      default:
        return 0;
    }
  }

  private writeRegister(index: number, v: number): void {
    if (index >= IOREDTBL && index < IOREDTBL + 2 * IOAPIC_PINS) {
      const pin = (index - IOREDTBL) >>> 1;
      const e = this.s.redirection[pin];
      if (index & 1) {
        e[1] = (v & RTE_HI_WRITABLE) >>> 0;
      } else {
        e[0] = ((v & RTE_LO_WRITABLE) | (e[0] & RTE_REMOTE_IRR)) >>> 0;
        // An edge-triggered entry has no remote IRR.
        if (!(e[0] & RTE_LEVEL)) e[0] &= ~RTE_REMOTE_IRR;
        this.service(pin);
      }
      return;
    }
    // IOAPICVER and IOAPICARB are read-only.
    if (index === IOAPICID) this.s.id = (v >>> ID_SHIFT) & ID_MASK;
  }

  read(offset: number, size: AccessSize): number {
    let v = 0;
    if (offset === IOREGSEL) v = this.s.ioregsel;
    else if (offset === IOWIN) v = this.readRegister(this.s.ioregsel);
    return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset === IOREGSEL) this.s.ioregsel = value & 0xff;
    else if (offset === IOWIN) {
      // The data sheet requires 32-bit accesses to IOWIN; a narrower write keeps the
      // register's other bytes.
      let v = value;
      if (size !== 4) {
        const mask = size === 2 ? 0xffff : 0xff;
        v = (this.readRegister(this.s.ioregsel) & ~mask) | (value & mask);
      }
      this.writeRegister(this.s.ioregsel, v >>> 0);
    }
  }
}
