/**
 * Little-endian byte layout for firmware tables (ACPI, MP, BIOS data area), and the 8-bit
 * checksums both specifications use: the bytes of a structure sum to zero.
 */

export class TableWriter {
  private bytes: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(capacity = 256) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
  }

  private reserve(n: number): number {
    const at = this.length;
    if (at + n > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, at + n));
      grown.set(this.bytes);
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    this.length += n;
    return at;
  }

  // Each writer reserves first: growing replaces the buffer the write must go to.
  u8(v: number): this {
    const at = this.reserve(1);
    this.bytes[at] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    const at = this.reserve(2);
    this.view.setUint16(at, v & 0xffff, true);
    return this;
  }
  u32(v: number): this {
    const at = this.reserve(4);
    this.view.setUint32(at, v >>> 0, true);
    return this;
  }
  /** A 64-bit field from a number below 2^53. */
  u64(v: number): this {
    this.u32(v % 0x100000000);
    return this.u32(Math.floor(v / 0x100000000));
  }
  /** ASCII text, padded with `pad` (or cut) to `size` bytes. */
  text(s: string, size: number, pad = " "): this {
    const padded = s.padEnd(size, pad).slice(0, size);
    for (let i = 0; i < size; i++) this.u8(padded.charCodeAt(i));
    return this;
  }
  raw(data: ArrayLike<number>): this {
    const at = this.reserve(data.length);
    this.bytes.set(data, at);
    return this;
  }
  zeros(n: number): this {
    this.reserve(n); // new bytes are zero
    return this;
  }

  setU8(at: number, v: number): void {
    this.bytes[at] = v & 0xff;
  }
  setU16(at: number, v: number): void {
    this.view.setUint16(at, v & 0xffff, true);
  }
  setU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true);
  }

  /** Stores at `at` the byte that makes bytes [from, to) sum to zero. */
  checksum(at: number, from = 0, to = this.length): void {
    this.bytes[at] = 0;
    this.bytes[at] = -sum8(this.bytes.subarray(from, to)) & 0xff;
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

/** The 8-bit sum of `bytes`. */
export function sum8(bytes: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i++) s = (s + bytes[i]) & 0xff;
  return s;
}

/** A structure to copy into guest memory. */
export interface Placed {
  address: number;
  bytes: Uint8Array;
}
