/**
 * Deterministic randomness for the differential tests: a seeded generator per case (so a
 * case is regenerated from its seed and number alone) and operand values biased towards
 * the edges where flags change: 0, 1, the sign boundary, all ones.
 */

/** mulberry32: a small, fast 32-bit generator; good enough to pick test inputs. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** The generator for case `index` of the run seeded `seed`. */
  static forCase(seed: number, index: number): Rng {
    const r = new Rng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
    r.u32();
    return r;
  }

  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** A uniformly random value of `bits` bits. */
  bits(bits: number): bigint {
    let v = 0n;
    for (let k = 0; k < bits; k += 32) v = (v << 32n) | BigInt(this.u32());
    return BigInt.asUintN(bits, v);
  }

  /**
   * A `bits`-bit operand value: edge values (0, 1, 2, the sign boundary and its
   * neighbours, all ones, alternating bits, single bits) half of the time, otherwise random
   * values of random length, so small and large values are both common.
   */
  value(bits: number): bigint {
    const ones = (1n << BigInt(bits)) - 1n;
    const sign = 1n << BigInt(bits - 1);
    switch (this.int(16)) {
      case 0:
        return 0n;
      case 1:
        return 1n;
      case 2:
        return ones;
      case 3:
        return sign;
      case 4:
        return sign - 1n;
      case 5:
        return this.pick([sign + 1n, ones - 1n, 2n, 0x7fn & ones, 0x80n & ones]);
      case 6:
        return this.pick([0x5555555555555555n, 0xaaaaaaaaaaaaaaaan]) & ones;
      case 7: {
        const bit = 1n << BigInt(this.int(bits));
        return this.chance(0.5) ? bit : ones & ~(bit - 1n);
      }
      case 8:
        return BigInt(this.int(256));
      case 9:
      case 10:
      case 11:
        return this.bits(bits) >> BigInt(this.int(bits));
      default:
        return this.bits(bits);
    }
  }

  /** A value sign-extended from `from` bits, as a `to`-bit value. */
  static sext(v: bigint, from: number, to: number): bigint {
    return BigInt.asUintN(to, BigInt.asIntN(from, v));
  }
}
