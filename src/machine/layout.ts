/**
 * The PC's physical memory layout below 4 GiB, as a BIOS would describe it (ACPI 6.5,
 * 15 "System Address Map Interfaces"; the layout matches QEMU's pc machine with SeaBIOS).
 * SHV runs no firmware code, but the firmware's data areas keep their usual places so
 * kernels that look for them (the EBDA, the ACPI RSDP in 0xE0000-0xFFFFF) find them.
 */

/** Conventional memory ends where the Extended BIOS Data Area starts (639 KiB). */
export const EBDA_START = 0x9fc00;
/** The EBDA is 1 KiB; above it lie the VGA frame buffer and the option ROM area. */
export const EBDA_END = 0xa0000;
/** The system BIOS area, where the ACPI tables and RSDP live. */
export const BIOS_AREA_START = 0xe0000;
/** Extended memory: everything from 1 MiB to the end of RAM is free for the OS. */
export const HIGH_MEMORY_START = 0x100000;

/** Address range types (ACPI 6.5, Table 15.1). */
export const enum AddressRangeType {
  Memory = 1,
  Reserved = 2,
}

export interface AddressRange {
  base: number;
  length: number;
  type: AddressRangeType;
}

/** The system address map for `ramSize` bytes of RAM (at least 1 MiB). */
export function systemAddressMap(ramSize: number): AddressRange[] {
  return [
    { base: 0, length: EBDA_START, type: AddressRangeType.Memory },
    { base: EBDA_START, length: EBDA_END - EBDA_START, type: AddressRangeType.Reserved },
    {
      base: BIOS_AREA_START,
      length: HIGH_MEMORY_START - BIOS_AREA_START,
      type: AddressRangeType.Reserved,
    },
    {
      base: HIGH_MEMORY_START,
      length: ramSize - HIGH_MEMORY_START,
      type: AddressRangeType.Memory,
    },
  ];
}
