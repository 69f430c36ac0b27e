/**
 * The firmware's data without firmware code (design.md, decision 7): what a PC BIOS would
 * leave in memory for the kernel, written at every boot. The BDA and EBDA go to their
 * fixed places; the ACPI tables and the MP tables go to the BIOS area 0xE0000-0xFFFFF,
 * which the memory map reports as reserved (layout.ts).
 */
import { CPUID_SIGNATURE } from "../cpu/cpuid.js";
import { BIOS_AREA_START } from "../machine/layout.js";
import type { PhysicalMemory } from "../machine/memory.js";
import { buildAcpiTables, INTI_ACTIVE_HIGH, INTI_LEVEL, type AcpiPlatform } from "./acpi.js";
import { buildBiosDataAreas } from "./bda.js";
import { buildMpTables } from "./mptable.js";
import type { Placed } from "./table-writer.js";

/** Where the ACPI tables start (the RSDP first): the bottom of the BIOS area. */
export const ACPI_TABLES_BASE = BIOS_AREA_START;
/** The MP floating pointer, in the BIOS ROM range the MP specification searches. */
export const MP_FLOATING_POINTER = 0xf0000;
/** CPUID.1:EDX bit 9: an on-chip APIC (the MP table's feature flags; kernels ask CPUID). */
const CPUID_FEATURE_APIC = 1 << 9;

export interface FirmwarePlatform {
  cpus: number;
  serialPorts: readonly number[];
  vga: boolean;
  localApicAddress: number;
  localApicVersion: number;
  ioApic: { id: number; version: number; address: number };
  /** ISA IRQ -> I/O APIC pin, where not the identity (IRQ0 -> 2). */
  irqToPin: Map<number, number>;
  sciIrq: number;
  acpi: Pick<
    AcpiPlatform,
    | "pm1aEventBlock"
    | "pm1EventLength"
    | "pm1aControlBlock"
    | "pm1ControlLength"
    | "pmTimerBlock"
    | "pmTimerLength"
    | "centuryIndex"
    | "reset"
  >;
}

/** Every structure the firmware leaves, with its address. */
export function buildFirmwareData(p: FirmwarePlatform): { rsdp: number; structures: Placed[] } {
  const apicIds = Array.from({ length: p.cpus }, (_, i) => i);
  const overrides = [...p.irqToPin].map(([irq, gsi]) => ({ irq, gsi, flags: 0 }));
  // The SCI is level-triggered and active high (ACPI 5.2.12.5: an override says so).
  overrides.push({ irq: p.sciIrq, gsi: p.sciIrq, flags: INTI_ACTIVE_HIGH | INTI_LEVEL });
  const acpi = buildAcpiTables(
    {
      ...p.acpi,
      apicIds,
      localApicAddress: p.localApicAddress,
      ioApic: { id: p.ioApic.id, address: p.ioApic.address, gsiBase: 0 },
      overrides,
      sciIrq: p.sciIrq,
    },
    ACPI_TABLES_BASE,
  );
  const mp = buildMpTables(
    {
      apicIds,
      localApicVersion: p.localApicVersion & 0xff,
      localApicAddress: p.localApicAddress,
      cpuSignature: CPUID_SIGNATURE,
      cpuFeatures: CPUID_FEATURE_APIC,
      ioApic: p.ioApic,
      irqToPin: p.irqToPin,
      levelIrqs: [p.sciIrq],
    },
    MP_FLOATING_POINTER,
  );
  const structures = [
    ...buildBiosDataAreas({ serialPorts: p.serialPorts, vga: p.vga }),
    ...acpi.tables,
    ...mp,
  ];
  return { rsdp: acpi.rsdp, structures };
}

/** Writes the firmware's data into guest RAM. */
export function installFirmwareData(mem: PhysicalMemory, p: FirmwarePlatform): void {
  for (const s of buildFirmwareData(p).structures) mem.load(s.address, s.bytes);
}
