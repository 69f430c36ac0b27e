/**
 * The 64-bit ALU routines (src/cpu/alu64.ts) against BigInt arithmetic: results and the
 * flags the SDM defines for each operation (Vol. 2, "Flags Affected").
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as A from "../src/cpu/alu64.js";
import { CF, Flags, OF, SF, ZF } from "../src/cpu/flags.js";

const M64 = (1n << 64n) - 1n;
const halves = (v: bigint): [number, number] => [
  Number(v & 0xffffffffn) | 0,
  Number((v >> 32n) & 0xffffffffn) | 0,
];
const join = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
const signed = (v: bigint): bigint => BigInt.asIntN(64, v);

/** Edge values and a deterministic pseudo-random spread. */
const VALUES: bigint[] = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffffffffn,
  0x100000000n,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  M64,
  0x123456789abcdef0n,
];
let seed = 0x2545f491n;
for (let k = 0; k < 40; k++) {
  seed = (seed * 6364136223846793005n + 1442695040888963407n) & M64;
  VALUES.push(seed);
}

function flagsOf(f: Flags): number {
  return f.get() & (CF | ZF | SF | OF);
}
function expectFlags(res: bigint, cf: boolean, of: boolean): number {
  return (cf ? CF : 0) | (res === 0n ? ZF : 0) | (res >> 63n ? SF : 0) | (of ? OF : 0);
}

test("ADD, ADC, SUB, SBB: results, CF, ZF, SF, OF", () => {
  const out = { hi: 0 };
  for (const a of VALUES) {
    for (const b of VALUES) {
      for (const cin of [0n, 1n]) {
        const f = new Flags();
        f.load(cin ? CF : 0);
        const [al, ah] = halves(a);
        const [bl, bh] = halves(b);
        const sum = a + b + cin;
        const lo = A.adc64(f, out, al, ah, bl, bh);
        const r = sum & M64;
        assert.equal(join(lo, out.hi), r);
        const sov = signed(a) + signed(b) + cin !== signed(r);
        assert.equal(flagsOf(f), expectFlags(r, sum > M64, sov), `adc ${a} ${b} ${cin}`);

        const g = new Flags();
        g.load(cin ? CF : 0);
        const dl = A.sbb64(g, out, al, ah, bl, bh);
        const d = (a - b - cin) & M64;
        assert.equal(join(dl, out.hi), d);
        const dov = signed(a) - signed(b) - cin !== signed(d);
        assert.equal(flagsOf(g), expectFlags(d, a < b + cin, dov), `sbb ${a} ${b} ${cin}`);
      }
    }
  }
});

test("shifts and rotates: results and CF for every count", () => {
  const out = { hi: 0 };
  for (const a of VALUES.slice(0, 20)) {
    const [al, ah] = halves(a);
    for (let n = 1; n < 64; n++) {
      const N = BigInt(n);
      const f = new Flags();
      let lo = A.shl64(f, out, al, ah, n);
      assert.equal(join(lo, out.hi), (a << N) & M64, `shl ${a} ${n}`);
      assert.equal(f.cf(), ((a >> (64n - N)) & 1n) === 1n);
      lo = A.shr64(f, out, al, ah, n);
      assert.equal(join(lo, out.hi), a >> N, `shr ${a} ${n}`);
      assert.equal(f.cf(), ((a >> (N - 1n)) & 1n) === 1n);
      lo = A.sar64(f, out, al, ah, n);
      assert.equal(join(lo, out.hi), BigInt.asUintN(64, signed(a) >> N), `sar ${a} ${n}`);
      lo = A.rol64(f, out, al, ah, n);
      assert.equal(join(lo, out.hi), ((a << N) | (a >> (64n - N))) & M64, `rol ${a} ${n}`);
      lo = A.ror64(f, out, al, ah, n);
      assert.equal(join(lo, out.hi), ((a >> N) | (a << (64n - N))) & M64, `ror ${a} ${n}`);
    }
  }
});

test("128-bit products and 128/64 division", () => {
  for (const a of VALUES) {
    for (const b of VALUES) {
      const [al, ah] = halves(a);
      const [bl, bh] = halves(b);
      const w = A.mulu64(al, ah, bl, bh);
      const p = w.reduce((acc, x, k) => acc | (BigInt(x) << BigInt(32 * k)), 0n);
      assert.equal(p, a * b, `mul ${a} ${b}`);
      const s = A.muls64(al, ah, bl, bh);
      const ps = s.reduce((acc, x, k) => acc | (BigInt(x) << BigInt(32 * k)), 0n);
      assert.equal(ps, BigInt.asUintN(128, signed(a) * signed(b)), `imul ${a} ${b}`);
      if (b !== 0n) {
        const q = A.divu128([...halves(a), 0, 0], bl, bh)!;
        assert.equal(join(q[0], q[1]), a / b);
        assert.equal(join(q[2], q[3]), a % b);
      }
    }
  }
  // A quotient that does not fit 64 bits is a #DE.
  assert.equal(A.divu128([0, 0, 1, 0], 1, 0), undefined);
  assert.equal(A.divs128([0, 0x80000000 | 0, -1, -1], -1, -1), undefined);
});
