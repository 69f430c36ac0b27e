/**
 * Builds one test case: the initial registers, flags and data window, and the instruction
 * bytes piece by piece (legacy prefixes, REX, opcode, ModRM, SIB, displacement,
 * immediates; SDM Vol. 2, chapter 2). Memory operands get a random addressing form whose
 * registers are loaded so that the effective address lands in the case's data window.
 */
import type { SnippetMode } from "../engine/kvm/oracle.js";
import { WINDOW, windowAddress, type Destination, type Width } from "./cases.js";
import { Rng } from "./rng.js";

/** An E operand: a register (with AH-BH as high8) or a memory address. */
export type EOperand =
  { kind: "reg"; reg: number; high8: boolean } | { kind: "mem"; addr: number; size: number };

const REX_W = 8;
const REX_R = 4;
const REX_X = 2;
const REX_B = 1;
const SEGMENT_PREFIXES = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65];

export class Builder {
  readonly long: boolean;
  /** Register width of the mode: 64 or 32. */
  readonly regBits: number;
  readonly regs: bigint[] = [];
  rflags: number;
  readonly window = new Uint8Array(WINDOW);
  readonly windowBase: number;

  readonly prefixes: number[] = [];
  rex = 0;
  /** Whether a REX prefix is emitted (decided by finishRex). */
  rexPresent = false;
  opcode: number[] = [];
  mod = -1;
  regField = 0;
  rm = 0;
  sib = -1;
  disp: number[] = [];
  imm: number[] = [];
  /** Bytes after the instruction (a branch's fall-through instruction). */
  tail: number[] = [];
  /** The absolute target of a RIP-relative displacement, or -1. */
  ripTarget = -1;
  /** 32-bit addressing in 64-bit mode (0x67). */
  addr32 = false;
  /** The memory operand's base register, or -1. */
  memBase = -1;
  /** The memory operand's address when it was made non-canonical. */
  nonCanonical?: bigint;

  constructor(
    readonly rng: Rng,
    readonly mode: SnippetMode,
    readonly slot: number,
    readonly bits: Width,
  ) {
    this.long = mode === "long64";
    this.regBits = this.long ? 64 : 32;
    this.windowBase = windowAddress(slot);
    for (let r = 0; r < (this.long ? 16 : 8); r++) {
      // The operand width's worth of an edge-biased value over random upper bits.
      const low = rng.value(bits);
      const upper = rng.chance(0.3) ? 0n : rng.bits(this.regBits);
      const m = (1n << BigInt(bits)) - 1n;
      this.regs.push(BigInt.asUintN(this.regBits, (upper & ~m) | low));
    }
    const w = new DataView(this.window.buffer);
    for (let k = 0; k < WINDOW; k += 4) w.setUint32(k, rng.u32(), true);
    const arith = [0x1, 0x4, 0x10, 0x40, 0x80, 0x800].filter(() => rng.chance(0.5));
    this.rflags = 0x202 | arith.reduce((a, f) => a | f, 0);
    if (rng.chance(0.5)) this.rflags |= 0x400; // DF
    // Never AC: without CR0.AM it has no effect (SDM Vol. 3A, 2.5), but a host that runs
    // guest user code under its own CR0 (AM set, as Linux has it) raises #AC for it.
  }

  // ---------------------------------------------------------------- state

  /** A register's low `bits` (AH-BH when high8), as an unsigned value. */
  getReg(r: number, bits: number, high8 = false): bigint {
    if (high8) return (this.regs[r - 4] >> 8n) & 0xffn;
    return BigInt.asUintN(bits, this.regs[r]);
  }

  /** Replaces a register's low `bits` (AH-BH when high8), keeping the rest. */
  setReg(r: number, v: bigint, bits: number, high8 = false): void {
    if (high8) {
      this.regs[r - 4] = (this.regs[r - 4] & ~0xff00n) | ((v & 0xffn) << 8n);
      return;
    }
    const m = (1n << BigInt(bits)) - 1n;
    this.regs[r] = BigInt.asUintN(this.regBits, (this.regs[r] & ~m) | (v & m));
  }

  /** A whole register: an address or count with random upper bits where they are ignored. */
  setAddressReg(r: number, v: bigint, addrBits: number): void {
    const junk = addrBits < this.regBits ? this.rng.bits(this.regBits) : 0n;
    const m = (1n << BigInt(addrBits)) - 1n;
    this.regs[r] = BigInt.asUintN(this.regBits, (junk & ~m) | (v & m));
  }

  private offset(addr: number, size: number): number {
    const off = addr - this.windowBase;
    if (off < 0 || off + size > WINDOW)
      throw new RangeError(`0x${addr.toString(16)} not in window`);
    return off;
  }

  readMem(addr: number, size: number): bigint {
    const off = this.offset(addr, size);
    let v = 0n;
    for (let k = size - 1; k >= 0; k--) v = (v << 8n) | BigInt(this.window[off + k]);
    return v;
  }

  writeMem(addr: number, size: number, v: bigint): void {
    const off = this.offset(addr, size);
    for (let k = 0; k < size; k++) this.window[off + k] = Number((v >> BigInt(8 * k)) & 0xffn);
  }

  inWindow(addr: number, size: number): boolean {
    return addr >= this.windowBase && addr + size <= this.windowBase + WINDOW;
  }

  /** The operand's initial value (0 for a memory operand outside the window: it faults). */
  readE(e: EOperand, bits: number): bigint {
    if (e.kind === "reg") return this.getReg(e.reg, bits, e.high8);
    return this.inWindow(e.addr, bits / 8) ? this.readMem(e.addr, bits / 8) : 0n;
  }

  writeE(e: EOperand, bits: number, v: bigint): void {
    if (e.kind === "reg") this.setReg(e.reg, v, bits, e.high8);
    else if (this.inWindow(e.addr, bits / 8)) this.writeMem(e.addr, bits / 8, v);
  }

  destination(e: EOperand, bits: number): Destination {
    return e.kind === "reg"
      ? { kind: "reg", reg: e.reg, bits, high8: e.high8 }
      : { kind: "mem", addr: e.addr, size: bits / 8 };
  }

  /** An address in the window with room for `size` bytes and some slack either side. */
  windowTarget(size: number): number {
    return this.windowBase + 48 + this.rng.int(WINDOW - 96 - size);
  }

  // ---------------------------------------------------------------- encoding

  /** A random register number (0-15 in 64-bit mode, 0-7 otherwise) not in `avoid`. */
  anyReg(avoid: ReadonlySet<number> = new Set()): number {
    const free = Array.from({ length: this.long ? 16 : 8 }, (_, r) => r).filter(
      (r) => !avoid.has(r),
    );
    return this.rng.pick(free);
  }

  /** ModRM.reg names register `r` (the G operand). */
  setG(r: number): void {
    this.regField = r & 7;
    if (r & 8) this.rex |= REX_R;
  }

  /** ModRM.rm names register `r` (an E operand in its register form). */
  setERegister(r: number): void {
    this.mod = 3;
    this.rm = r & 7;
    if (r & 8) this.rex |= REX_B;
  }

  /** The register in the opcode's low bits, extended by REX.B. */
  setZ(r: number): void {
    if (r & 8) this.rex |= REX_B;
  }

  setW(): void {
    this.rex |= REX_W;
  }

  /**
   * A memory operand of `size` bytes at `target` (default: a random address in the window),
   * in a random addressing form whose registers avoid `avoid`. In 64-bit mode a tenth use
   * 32-bit addressing (0x67); the register upper halves are then random, since they are
   * ignored. A target beyond 2 GiB (LEA, non-canonical addresses) takes a form with a base
   * register, and 64-bit addressing unless `addr32` allows otherwise. Returns the address.
   */
  memory(size: number, avoid: ReadonlySet<number>, at?: bigint, addr32 = at === undefined): number {
    const rng = this.rng;
    const target = at ?? BigInt(this.windowTarget(size));
    this.addr32 = this.long && addr32 && rng.chance(0.1);
    if (this.addr32) this.prefixes.push(0x67);
    const abits = this.long && !this.addr32 ? 64 : 32;
    const modulus = 1n << BigInt(abits);
    const used = new Set(avoid);
    const near = target < 0x80000000n;
    const form = near ? rng.int(this.long ? 8 : 7) : 1 + rng.int(6);
    let base = -1;
    let index = -1;
    let scale = 0;
    let disp = 0n;
    let dispBytes = 0;
    if (form === 0) {
      // [disp32]: in 64-bit mode through a SIB with neither base nor index.
      disp = target;
      dispBytes = 4;
      this.mod = 0;
      if (this.long) {
        this.rm = 4;
        this.sib = (rng.int(4) << 6) | (4 << 3) | 5;
      } else this.rm = 5;
    } else if (form === 7) {
      // [rip+disp32]: the displacement is fixed once the code address is known.
      this.mod = 0;
      this.rm = 5;
      this.ripTarget = Number(target);
      this.disp = [0, 0, 0, 0];
      return Number(target);
    } else {
      base = form === 6 ? -1 : this.anyReg(used);
      this.memBase = base;
      if (base >= 0) used.add(base);
      const withIndex = form >= 5;
      if (withIndex) {
        index = this.anyReg(new Set([...used, 4])); // RSP cannot be an index
        scale = rng.int(4);
      }
      dispBytes = form === 3 ? 1 : form === 4 || form === 6 ? 4 : rng.pick([0, 1, 4]);
      if (form === 2) dispBytes = 0;
      // RBP/R13 as a base needs a displacement; with no base, a disp32 is implied.
      if (base >= 0 && (base & 7) === 5 && dispBytes === 0) dispBytes = 1;
      disp = dispBytes === 0 ? 0n : BigInt.asIntN(dispBytes * 8, rng.bits(dispBytes * 8));
      this.mod = base < 0 ? 0 : dispBytes === 0 ? 0 : dispBytes === 1 ? 1 : 2;
      const needSib = index >= 0 || base < 0 || (base & 7) === 4;
      if (needSib) {
        this.rm = 4;
        this.sib = (scale << 6) | ((index < 0 ? 4 : index & 7) << 3) | (base < 0 ? 5 : base & 7);
        if (index >= 8) this.rex |= REX_X;
      } else this.rm = base & 7;
      if (base >= 8) this.rex |= REX_B;
      // base + index * scale + disp = target (mod 2^abits).
      let rest = (target - disp) % modulus;
      if (index >= 0) {
        if (base < 0) {
          // The index alone reaches the target: make target - disp a multiple of the scale.
          const s = BigInt(1 << scale);
          disp = BigInt.asIntN(32, (disp & ~(s - 1n)) | (target & (s - 1n)));
          rest = target - disp;
          const idx = rest / s;
          this.setAddressReg(index, BigInt.asUintN(abits, idx), abits);
          rest = 0n;
        } else {
          const iv = rng.chance(0.5) ? rng.value(abits) : BigInt(rng.int(64));
          this.setAddressReg(index, iv, abits);
          rest -= iv * BigInt(1 << scale);
        }
      }
      if (base >= 0) this.setAddressReg(base, BigInt.asUintN(abits, rest), abits);
    }
    this.disp = Array.from({ length: dispBytes }, (_, k) =>
      Number((disp >> BigInt(8 * k)) & 0xffn),
    );
    return Number(target);
  }

  /** Little-endian immediate bytes. */
  immediate(v: bigint, bytes: number): void {
    for (let k = 0; k < bytes; k++) this.imm.push(Number((v >> BigInt(8 * k)) & 0xffn));
  }

  /** A segment-override prefix, now and then. */
  maybeSegmentOverride(p: number): void {
    if (this.rng.chance(p)) this.prefixes.push(this.rng.pick(SEGMENT_PREFIXES));
  }

  /**
   * Decides whether a REX prefix is emitted: when a bit needs it, and otherwise for a
   * quarter of the 64-bit cases (a bare REX turns AH-BH into SPL-DIL).
   */
  finishRex(): void {
    this.rexPresent = this.long && (this.rex !== 0 || this.rng.chance(0.25));
  }

  /** Whether byte register `r` (0-7) means AH-BH: without REX, numbers 4-7. */
  high8(r: number): boolean {
    return !this.rexPresent && r >= 4 && r < 8;
  }

  /** The instruction bytes, the legacy prefixes in random order. */
  bytes(): { code: number[]; ripRel?: { at: number; end: number; target: number } } {
    const pre = [...this.prefixes];
    for (let k = pre.length - 1; k > 0; k--) {
      const j = this.rng.int(k + 1);
      [pre[k], pre[j]] = [pre[j], pre[k]];
    }
    const code = [...pre];
    if (this.rexPresent) code.push(0x40 | this.rex);
    code.push(...this.opcode);
    if (this.mod >= 0) code.push((this.mod << 6) | (this.regField << 3) | this.rm);
    if (this.sib >= 0) code.push(this.sib);
    const at = code.length;
    code.push(...this.disp, ...this.imm);
    const end = code.length;
    code.push(...this.tail);
    return { code, ripRel: this.ripTarget >= 0 ? { at, end, target: this.ripTarget } : undefined };
  }
}
