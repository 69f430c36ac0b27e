/**
 * The ACPI tables a PC BIOS leaves in memory (ACPI Specification 6.5, chapter 5): the RSDP
 * in the BIOS area 0xE0000-0xFFFFF where operating systems search for it (5.2.5.1), the
 * RSDT and XSDT, the FADT with the PM timer and the 8042 reset register, the FACS, a DSDT
 * whose only object is \_S5 (soft-off through PM1a_CNT), and the MADT listing every
 * processor's local APIC, the I/O APIC, the ISA interrupt source overrides and the LINT1
 * NMI connection. All checksums are filled in. SHV runs no AML interpreter and no BIOS
 * code: these are data for the guest.
 */
import { TableWriter, type Placed } from "./table-writer.js";

/** What the tables describe. */
export interface AcpiPlatform {
  /** Local APIC IDs, BSP first (ACPI requires the boot processor's entry first). */
  apicIds: number[];
  localApicAddress: number;
  ioApic: { id: number; address: number; gsiBase: number };
  /** ISA IRQs whose GSI or flags differ from the identity, edge, active-high default. */
  overrides: { irq: number; gsi: number; flags: number }[];
  sciIrq: number;
  pm1aEventBlock: number;
  pm1EventLength: number;
  pm1aControlBlock: number;
  pm1ControlLength: number;
  pmTimerBlock: number;
  pmTimerLength: number;
  /** The CMOS index of the century byte. */
  centuryIndex: number;
  /** The FADT reset register: an I/O port and the byte to write. */
  reset: { port: number; value: number };
}

export const RSDP_SIGNATURE = "RSD PTR ";
const OEM_ID = "SHV";
const OEM_TABLE_ID = "SHVPC";
const CREATOR_ID = "SHV ";
const HEADER_SIZE = 36;
const RSDP_SIZE = 36;
const RSDP_V1_SIZE = 20;
const FADT_SIZE = 244;
const FACS_SIZE = 64;

// MADT interrupt controller structure types (5.2.12, Table 5.44).
export const MADT_LOCAL_APIC = 0;
export const MADT_IO_APIC = 1;
export const MADT_INTERRUPT_OVERRIDE = 2;
export const MADT_LOCAL_APIC_NMI = 4;
/** MADT flags bit 0 PCAT_COMPAT: the system also has dual 8259 PICs. */
export const MADT_PCAT_COMPAT = 1 << 0;
/** Local APIC flags bit 0: enabled. */
export const MADT_LAPIC_ENABLED = 1 << 0;
/** Local APIC NMI: "all processors". */
const ALL_PROCESSORS = 0xff;

// MPS INTI flags (Table 5.50): polarity bits 1:0, trigger mode bits 3:2.
export const INTI_ACTIVE_HIGH = 0b01;
export const INTI_LEVEL = 0b11 << 2;

// FADT fixed feature flags (Table 5.10).
/** Bit 0 WBINVD works. */
const FADT_WBINVD = 1 << 0;
/** Bit 2 PROC_C1: C1 (HLT) is supported on all processors. */
const FADT_PROC_C1 = 1 << 2;
/** Bit 4 PWR_BUTTON: no fixed-feature power button. */
const FADT_PWR_BUTTON = 1 << 4;
/** Bit 5 SLP_BUTTON: no fixed-feature sleep button. */
const FADT_SLP_BUTTON = 1 << 5;
/** Bit 10 RESET_REG_SUP: the reset register works. */
const FADT_RESET_REG_SUP = 1 << 10;
// IA-PC boot architecture flags (Table 5.11).
/** Bit 0 LEGACY_DEVICES: ISA devices (the RTC, the PIT, ...) are present. */
const BOOT_ARCH_LEGACY_DEVICES = 1 << 0;
/** Bit 1 8042: a keyboard controller is present. */
const BOOT_ARCH_8042 = 1 << 1;
/** C2/C3 latencies above 100 and 1000 us: those states are not supported. */
const NO_C2_LATENCY = 0x0fff;
const NO_C3_LATENCY = 0x0fff;
/** Generic address structure address space: system I/O (Table 5.1). */
const GAS_SYSTEM_IO = 1;
const GAS_ACCESS_BYTE = 1;

/** The ACPI table header (5.2.6); the length and checksum are filled in by finishTable. */
function header(signature: string, revision: number): TableWriter {
  return new TableWriter()
    .text(signature, 4)
    .u32(0) // length
    .u8(revision)
    .u8(0) // checksum
    .text(OEM_ID, 6)
    .text(OEM_TABLE_ID, 8)
    .u32(1) // OEM revision
    .text(CREATOR_ID, 4)
    .u32(1); // creator revision
}

function finishTable(w: TableWriter): Uint8Array {
  w.setU32(4, w.length);
  w.checksum(9);
  return w.finish();
}

/** A generic address structure (5.2.3.2) for an I/O port block, or all zeros. */
function gas(w: TableWriter, port: number, bits: number, accessSize = 0): void {
  if (port === 0) {
    w.zeros(12);
    return;
  }
  w.u8(GAS_SYSTEM_IO).u8(bits).u8(0).u8(accessSize).u64(port);
}

function fadt(p: AcpiPlatform, facs: number, dsdt: number): Uint8Array {
  const w = header("FACP", 4); // the ACPI 3.0 FADT layout, 244 bytes
  w.u32(facs).u32(dsdt);
  w.u8(0); // reserved (ACPI 1.0 INT_MODEL)
  w.u8(0); // preferred PM profile: unspecified
  w.u16(p.sciIrq);
  w.u32(0); // SMI_CMD: none, the platform is always in ACPI mode
  w.u8(0).u8(0).u8(0).u8(0); // ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
  w.u32(p.pm1aEventBlock).u32(0);
  w.u32(p.pm1aControlBlock).u32(0);
  w.u32(0); // PM2_CNT_BLK
  w.u32(p.pmTimerBlock);
  w.u32(0).u32(0); // GPE0_BLK, GPE1_BLK
  w.u8(p.pm1EventLength).u8(p.pm1ControlLength).u8(0).u8(p.pmTimerLength);
  w.u8(0).u8(0).u8(0).u8(0); // GPE0/1 lengths, GPE1_BASE, CST_CNT
  w.u16(NO_C2_LATENCY).u16(NO_C3_LATENCY);
  w.u16(0).u16(0); // FLUSH_SIZE, FLUSH_STRIDE
  w.u8(0).u8(0); // DUTY_OFFSET, DUTY_WIDTH
  w.u8(0).u8(0).u8(p.centuryIndex); // DAY_ALRM, MON_ALRM, CENTURY
  w.u16(BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042);
  w.u8(0);
  w.u32(FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP);
  gas(w, p.reset.port, 8, GAS_ACCESS_BYTE);
  w.u8(p.reset.value);
  w.u16(0).u8(0); // ARM_BOOT_ARCH, FADT minor version
  w.u64(facs).u64(dsdt); // X_FIRMWARE_CTRL, X_DSDT
  gas(w, p.pm1aEventBlock, p.pm1EventLength * 8);
  gas(w, 0, 0);
  gas(w, p.pm1aControlBlock, p.pm1ControlLength * 8);
  gas(w, 0, 0);
  gas(w, 0, 0); // X_PM2_CNT_BLK
  gas(w, p.pmTimerBlock, p.pmTimerLength * 8);
  gas(w, 0, 0);
  gas(w, 0, 0); // X_GPE0_BLK, X_GPE1_BLK
  if (w.length !== FADT_SIZE) throw new Error(`FADT is ${w.length} bytes`);
  return finishTable(w);
}

/** The FACS (5.2.10): no checksum, no waking vector, no global lock holder. */
function facs(): Uint8Array {
  const w = new TableWriter().text("FACS", 4).u32(FACS_SIZE);
  w.u32(0).u32(0).u32(0).u32(0).u64(0); // signature, waking vector, global lock, flags, X_
  w.u8(2).zeros(3).u32(0).zeros(24); // version, reserved, OSPM flags, reserved
  return w.finish();
}

/**
 * The DSDT: one AML object, Name (_S5, Package () { 0, 0, 0, 0 }), the SLP_TYP values for
 * soft-off (7.4.2). AML encoding (20.2): NameOp, NameString, PackageOp, PkgLength,
 * NumElements, then four ZeroOps.
 */
const DSDT_AML = [0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00];

function dsdt(): Uint8Array {
  return finishTable(header("DSDT", 2).raw(DSDT_AML));
}

function madt(p: AcpiPlatform): Uint8Array {
  const w = header("APIC", 3).u32(p.localApicAddress).u32(MADT_PCAT_COMPAT);
  p.apicIds.forEach((id, uid) =>
    w.u8(MADT_LOCAL_APIC).u8(8).u8(uid).u8(id).u32(MADT_LAPIC_ENABLED),
  );
  w.u8(MADT_IO_APIC).u8(12).u8(p.ioApic.id).u8(0).u32(p.ioApic.address).u32(p.ioApic.gsiBase);
  for (const o of p.overrides)
    w.u8(MADT_INTERRUPT_OVERRIDE).u8(10).u8(0).u8(o.irq).u32(o.gsi).u16(o.flags);
  w.u8(MADT_LOCAL_APIC_NMI).u8(6).u8(ALL_PROCESSORS).u16(0).u8(1); // every LINT1 is NMI
  return finishTable(w);
}

/** Lays the tables out from `base` up (16-byte aligned; the FACS 64-byte aligned). */
export function buildAcpiTables(p: AcpiPlatform, base: number): { rsdp: number; tables: Placed[] } {
  let next = base;
  const tables: Placed[] = [];
  const place = (bytes: Uint8Array, align = 16): number => {
    next = Math.ceil(next / align) * align;
    const address = next;
    tables.push({ address, bytes });
    next += bytes.length;
    return address;
  };
  const rsdp = base;
  next += RSDP_SIZE;
  const facsAddr = place(facs(), 64);
  const dsdtAddr = place(dsdt());
  const fadtAddr = place(fadt(p, facsAddr, dsdtAddr));
  const madtAddr = place(madt(p));
  const entries = [fadtAddr, madtAddr];
  const rsdt = header("RSDT", 1);
  for (const e of entries) rsdt.u32(e);
  const rsdtAddr = place(finishTable(rsdt));
  const xsdt = header("XSDT", 1);
  for (const e of entries) xsdt.u64(e);
  const xsdtAddr = place(finishTable(xsdt));

  // The RSDP (5.2.5.3), revision 2: the first 20 bytes have their own checksum.
  const r = new TableWriter().text(RSDP_SIGNATURE, 8).u8(0).text(OEM_ID, 6).u8(2);
  r.u32(rsdtAddr).u32(RSDP_SIZE).u64(xsdtAddr).u8(0).zeros(3);
  r.checksum(8, 0, RSDP_V1_SIZE);
  r.checksum(32);
  tables.unshift({ address: rsdp, bytes: r.finish() });
  return { rsdp, tables };
}

export const ACPI_HEADER_SIZE = HEADER_SIZE;
