/**
 * The MultiProcessor Specification 1.4 tables, for kernels older than ACPI: the MP
 * floating pointer structure (4.1), found by searching the BIOS ROM area, and the MP
 * configuration table (4.2) with one processor entry per CPU, the ISA bus, the I/O APIC,
 * the I/O interrupt assignments (the 8259's ExtINT on INTIN0, IRQ0 on INTIN2, the other
 * ISA IRQs on their own pins, the SCI level-triggered) and the local interrupts (ExtINT on
 * LINT0, NMI on LINT1). Without an IMCR the system starts in virtual wire mode (3.6.2.2).
 */
import { TableWriter, type Placed } from "./table-writer.js";

export interface MpPlatform {
  apicIds: number[];
  localApicVersion: number;
  localApicAddress: number;
  /** CPUID.1:EAX: family, model and stepping. */
  cpuSignature: number;
  /** CPUID.1:EDX feature flags. */
  cpuFeatures: number;
  ioApic: { id: number; version: number; address: number };
  /** ISA IRQ to I/O APIC input, for IRQs that are not identity-mapped. */
  irqToPin: Map<number, number>;
  /** ISA IRQs wired level-triggered, active high (the ACPI SCI). */
  levelIrqs: number[];
}

export const MP_FLOATING_SIGNATURE = "_MP_";
export const MP_CONFIG_SIGNATURE = "PCMP";
const SPEC_REV_1_4 = 4;
const CONFIG_HEADER_SIZE = 44;

// Entry types (Table 4-3).
export const MP_PROCESSOR = 0;
export const MP_BUS = 1;
export const MP_IOAPIC = 2;
export const MP_IO_INTERRUPT = 3;
export const MP_LOCAL_INTERRUPT = 4;
// Interrupt types (Table 4-9).
export const MP_INT = 0;
export const MP_NMI = 1;
export const MP_EXTINT = 3;
/** Processor entry CPU flags: EN (usable) and BP (the bootstrap processor). */
const CPU_EN = 1 << 0;
const CPU_BP = 1 << 1;
/** I/O APIC flags: EN. */
const IOAPIC_EN = 1 << 0;
/** Interrupt entry flags: PO bits 1:0, EL bits 3:2 (01 active high / edge, 11 low / level). */
const FLAGS_HIGH_LEVEL = 0b01 | (0b11 << 2);
const ISA_BUS = 0;
const ALL_LOCAL_APICS = 0xff;
const ISA_IRQS = 16;
const PIC_CASCADE_IRQ = 2;

/** The floating pointer at `pointer` and the configuration table right after it. */
export function buildMpTables(p: MpPlatform, pointer: number): Placed[] {
  const config = pointer + 16;
  const w = new TableWriter()
    .text(MP_CONFIG_SIGNATURE, 4)
    .u16(0) // base table length
    .u8(SPEC_REV_1_4)
    .u8(0) // checksum
    .text("SHV", 8)
    .text("SHV PC", 12)
    .u32(0) // OEM table pointer
    .u16(0) // OEM table size
    .u16(0) // entry count
    .u32(p.localApicAddress)
    .u16(0) // extended table length
    .u8(0) // extended table checksum
    .u8(0);
  if (w.length !== CONFIG_HEADER_SIZE) throw new Error(`MP table header is ${w.length} bytes`);
  let entries = 0;
  p.apicIds.forEach((id, i) => {
    w.u8(MP_PROCESSOR)
      .u8(id)
      .u8(p.localApicVersion)
      .u8(CPU_EN | (i === 0 ? CPU_BP : 0));
    w.u32(p.cpuSignature).u32(p.cpuFeatures).zeros(8);
    entries++;
  });
  w.u8(MP_BUS).u8(ISA_BUS).text("ISA", 6);
  w.u8(MP_IOAPIC).u8(p.ioApic.id).u8(p.ioApic.version).u8(IOAPIC_EN).u32(p.ioApic.address);
  entries += 2;
  const ioInterrupt = (type: number, flags: number, irq: number, pin: number) => {
    w.u8(MP_IO_INTERRUPT).u8(type).u16(flags).u8(ISA_BUS).u8(irq).u8(p.ioApic.id).u8(pin);
    entries++;
  };
  ioInterrupt(MP_EXTINT, 0, 0, 0);
  for (let irq = 0; irq < ISA_IRQS; irq++) {
    if (irq === PIC_CASCADE_IRQ) continue;
    const flags = p.levelIrqs.includes(irq) ? FLAGS_HIGH_LEVEL : 0;
    ioInterrupt(MP_INT, flags, irq, p.irqToPin.get(irq) ?? irq);
  }
  for (const [type, lint] of [
    [MP_EXTINT, 0],
    [MP_NMI, 1],
  ]) {
    w.u8(MP_LOCAL_INTERRUPT).u8(type).u16(0).u8(ISA_BUS).u8(0).u8(ALL_LOCAL_APICS).u8(lint);
    entries++;
  }
  w.setU16(4, w.length);
  w.setU16(34, entries);
  w.checksum(7);

  const f = new TableWriter()
    .text(MP_FLOATING_SIGNATURE, 4)
    .u32(config)
    .u8(1) // length in 16-byte units
    .u8(SPEC_REV_1_4)
    .u8(0) // checksum
    .u8(0) // feature 1: a configuration table is present
    .u8(0) // feature 2: bit 7 IMCRP clear, virtual wire mode
    .zeros(3);
  f.checksum(10);
  return [
    { address: pointer, bytes: f.finish() },
    { address: config, bytes: w.finish() },
  ];
}
