/**
 * Port-I/O and MMIO buses. A device is registered on an address range and sees only
 * offsets into that range (as Firecracker's BusDevice and kvmtool's port/MMIO registration
 * do), so the same device can be placed anywhere. Unassigned addresses read all-ones and
 * drop writes, as on a PC with nothing decoding the address.
 */

export type AccessSize = 1 | 2 | 4;

export interface BusDevice {
  /** Short name for traces and error messages, e.g. "uart16550@0x3f8". */
  readonly name: string;
  /** Reads `size` bytes at `offset` from the start of the device's range. */
  read(offset: number, size: AccessSize): number;
  /** Writes the low `size` bytes of `value` at `offset`. */
  write(offset: number, size: AccessSize, value: number): void;
}

/** All-ones for an access of `size` bytes: what an unassigned address reads. */
export function allOnes(size: AccessSize): number {
  return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}

interface Mapping {
  base: number;
  end: number; // exclusive
  device: BusDevice;
}

/** An interval map from addresses to devices that rejects overlapping registrations. */
export class Bus {
  private readonly mappings: Mapping[] = [];
  /** Called for accesses no device claims; the default drops them silently. */
  onUnassigned: ((addr: number, size: AccessSize, write: boolean) => void) | null = null;

  constructor(readonly name: string) {}

  register(base: number, length: number, device: BusDevice): void {
    const end = base + length;
    if (length <= 0) throw new Error(`${this.name}: empty range for ${device.name}`);
    for (const m of this.mappings) {
      if (base < m.end && m.base < end) {
        throw new Error(
          `${this.name}: ${device.name} at 0x${base.toString(16)}-0x${(end - 1).toString(16)} ` +
            `overlaps ${m.device.name} at 0x${m.base.toString(16)}-0x${(m.end - 1).toString(16)}`,
        );
      }
    }
    this.mappings.push({ base, end, device });
    this.mappings.sort((a, b) => a.base - b.base);
  }

  /** The mapping that contains `addr`, or undefined. */
  find(addr: number): Mapping | undefined {
    // Few devices per bus: a linear scan of a sorted array is fast and simple.
    for (const m of this.mappings) {
      if (addr < m.base) return undefined;
      if (addr < m.end) return m;
    }
    return undefined;
  }

  read(addr: number, size: AccessSize): number {
    const m = this.find(addr);
    if (m === undefined) {
      this.onUnassigned?.(addr, size, false);
      return allOnes(size);
    }
    return m.device.read(addr - m.base, size);
  }

  write(addr: number, size: AccessSize, value: number): void {
    const m = this.find(addr);
    if (m === undefined) {
      this.onUnassigned?.(addr, size, true);
      return;
    }
    m.device.write(addr - m.base, size, value);
  }
}
