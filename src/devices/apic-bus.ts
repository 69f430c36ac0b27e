/**
 * The interrupt messages local APICs and I/O APICs exchange (SDM Vol. 3A, 11.6 "Issuing
 * Interprocessor Interrupts" and 11.6.2 "Determining IPI Destination"; 82093AA data sheet,
 * 3.2.4): one bus that finds each message's destination processors and hands it to their
 * local APICs, and carries EOI broadcasts back to the I/O APICs for level-triggered
 * interrupts (SDM 11.8.5).
 */

/** Delivery modes (ICR, LVT and redirection-table bits 10:8). */
export const enum DeliveryMode {
  Fixed = 0,
  LowestPriority = 1,
  Smi = 2,
  Nmi = 4,
  Init = 5,
  StartUp = 6,
  ExtInt = 7,
}

/** ICR bits 19:18: destination shorthand. */
export const enum Shorthand {
  None = 0,
  Self = 1,
  AllIncludingSelf = 2,
  AllExcludingSelf = 3,
}

/** An interrupt message on the bus. */
export interface ApicMessage {
  vector: number;
  mode: DeliveryMode;
  /** Destination mode: logical (true) or physical. */
  logical: boolean;
  /** An 8-bit xAPIC destination, or a 32-bit one from an x2APIC (see `x2apic`). */
  destination: number;
  /** The destination is in x2APIC format (32 bits; broadcast 0xFFFFFFFF). */
  x2apic: boolean;
  shorthand: Shorthand;
  /** Level (ICR bit 14): 0 with level trigger and INIT is the INIT level de-assert. */
  assert: boolean;
  /** Trigger mode: level (true) or edge. */
  levelTriggered: boolean;
}

/** What the bus needs from a local APIC. */
export interface ApicBusTarget {
  /** Whether the APIC takes part in bus messages (globally enabled). */
  readonly onBus: boolean;
  /** Physical destination match: its APIC ID (xAPIC 8 bits, x2APIC 32 bits). */
  matchesPhysical(destination: number, x2apic: boolean): boolean;
  /** Logical destination match through LDR (and DFR in xAPIC mode). */
  matchesLogical(destination: number, x2apic: boolean): boolean;
  /** Arbitration priority, for lowest-priority delivery (SDM 11.6.2.4). */
  arbitrationPriority(): number;
  accept(msg: ApicMessage): void;
}

/** An I/O APIC, for EOI broadcasts. */
export interface EoiListener {
  eoi(vector: number): void;
}

/** xAPIC physical and logical broadcast destination. */
export const XAPIC_BROADCAST = 0xff;
/** x2APIC broadcast destination. */
export const X2APIC_BROADCAST = 0xffffffff;

export class ApicBus {
  private readonly apics: ApicBusTarget[] = [];
  private readonly eoiListeners: EoiListener[] = [];

  /** Local APICs in processor order: lowest-priority ties go to the first. */
  addLocalApic(apic: ApicBusTarget): void {
    this.apics.push(apic);
  }

  addEoiListener(l: EoiListener): void {
    this.eoiListeners.push(l);
  }

  /** The local APICs a message goes to (before lowest-priority arbitration). */
  destinations(msg: ApicMessage, source: ApicBusTarget | null): ApicBusTarget[] {
    const onBus = this.apics.filter((a) => a.onBus);
    switch (msg.shorthand) {
      case Shorthand.Self:
        return source ? [source] : [];
      case Shorthand.AllIncludingSelf:
        return onBus;
      case Shorthand.AllExcludingSelf:
        return onBus.filter((a) => a !== source);
      case Shorthand.None:
        break;
    }
    const broadcast = msg.x2apic ? X2APIC_BROADCAST : XAPIC_BROADCAST;
    if (!msg.logical) {
      if (msg.destination >>> 0 === broadcast) return onBus;
      return onBus.filter((a) => a.matchesPhysical(msg.destination, msg.x2apic));
    }
    return onBus.filter((a) => a.matchesLogical(msg.destination, msg.x2apic));
  }

  /** Delivers a message from `source` (a local APIC, or null for an I/O APIC). */
  send(msg: ApicMessage, source: ApicBusTarget | null): void {
    let targets = this.destinations(msg, source);
    if (msg.mode === DeliveryMode.LowestPriority && targets.length > 1) {
      // The processor with the lowest arbitration priority takes it; ties go to the
      // first in processor order (SDM 11.6.2.4 leaves the tie-break to the hardware).
      let best = targets[0];
      for (const t of targets) {
        if (t.arbitrationPriority() < best.arbitrationPriority()) best = t;
      }
      targets = [best];
    }
    for (const t of targets) t.accept(msg);
  }

  /** An EOI for a level-triggered vector: the I/O APICs clear the matching remote IRR. */
  broadcastEoi(vector: number): void {
    for (const l of this.eoiListeners) l.eoi(vector);
  }
}
