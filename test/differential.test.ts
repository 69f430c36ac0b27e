/**
 * Differential testing against the host CPU (design.md, decision 8; src/diff/): a fast
 * subset of the generated cases that scripts/differential.ts runs in bulk, on the soft CPU
 * and on the host CPU at CPL 3, compared on registers, RFLAGS (less what the SDM leaves
 * undefined), memory and exceptions. The host CPU natively, in a Linux process (64-bit and
 * compatibility mode; x86-64 Linux only), and through KVM (all three modes; skips visibly
 * when /dev/kvm cannot be used). Then the regression cases for the soft-CPU bugs the
 * differential runs found, on the soft CPU alone.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  KvmOracle,
  ORACLE_LAYOUT,
  type SnippetInput,
  type SnippetResult,
} from "../src/engine/kvm/oracle.js";
import { emulatedModes } from "../src/diff/host.js";
import { NativeOracle, nativeUnusable } from "../src/diff/native-oracle.js";
import { formatMismatch, runDifferential } from "../src/diff/run.js";
import { SoftOracle } from "../src/diff/soft-oracle.js";
import type { SnippetMode } from "../src/engine/kvm/oracle.js";
import { kvmUnusable } from "./helpers/kvm-host.js";

const SEED = 20261125;
const CASES = 3072; // three batches per group of modes

describe("differential: the soft CPU against the host CPU through KVM", () => {
  let unusable: string | null = null;
  let kvm: KvmOracle | null = null;
  const soft = new SoftOracle();
  let emulated = new Set<SnippetMode>();
  before(async () => {
    unusable = kvmUnusable();
    if (unusable !== null) return;
    kvm = await KvmOracle.create();
    emulated = emulatedModes(kvm);
  });
  after(() => kvm?.close());

  const groups: [string, SnippetMode[]][] = [
    ["64-bit mode", ["long64"]],
    ["compatibility and 32-bit protected mode", ["compat32", "prot32"]],
  ];
  for (const [name, modes] of groups) {
    it(`${name}: ${CASES} generated cases match`, (t) => {
      if (kvm === null) {
        t.skip(`/dev/kvm is not usable here (${unusable}): no differential test`);
        return;
      }
      const r = runDifferential(kvm, soft, { seed: SEED, cases: CASES, modes, emulated });
      for (const m of modes.filter((m) => emulated.has(m))) {
        const n = r.emulatorMismatches.filter((x) => x.c.mode === m).length;
        t.diagnostic(
          `${m}: this host runs such user code in KVM's instruction emulator (DAA raises ` +
            `#UD), not on the CPU; compared against it, ${n} mismatches fit its known defects`,
        );
      }
      const shown = r.mismatches.slice(0, 10).map((m) => formatMismatch(m));
      assert.equal(
        r.mismatches.length,
        0,
        `${r.mismatches.length} of ${r.cases} cases (seed ${SEED}) mismatch:\n${shown.join("\n")}`,
      );
    });
  }
});

describe("differential: the soft CPU against the host CPU natively", () => {
  const onLinux64 = process.platform === "linux" && process.arch === "x64";
  let native: NativeOracle | null = null;
  const soft = new SoftOracle();
  before(() => {
    if (!onLinux64) return;
    // x86-64 Linux always runs it: the test command builds the runner (scripts/test.sh).
    const why = nativeUnusable();
    assert.equal(why, null, why ?? "");
    native = NativeOracle.create();
  });
  after(() => native?.close());

  const groups: [string, SnippetMode][] = [
    ["64-bit mode", "long64"],
    ["compatibility mode", "compat32"],
  ];
  for (const [name, mode] of groups) {
    it(`${name}: ${CASES} generated cases match`, (t) => {
      if (native === null) {
        t.skip(`the host is ${process.platform}/${process.arch}: no native reference`);
        return;
      }
      if (!native.modes.includes(mode)) {
        t.skip(`${mode} does not run natively here: ${native.missing.get(mode)}`);
        return;
      }
      const r = runDifferential(native, soft, { seed: SEED, cases: CASES, modes: [mode] });
      const shown = r.mismatches.slice(0, 10).map((m) => formatMismatch(m, undefined, "native"));
      assert.equal(
        r.mismatches.length,
        0,
        `${r.mismatches.length} of ${r.cases} cases (seed ${SEED}) mismatch:\n${shown.join("\n")}`,
      );
    });
  }

  it("ends snippets as the oracle VM does: completion, exceptions, single step, time limit", (t) => {
    if (native === null) {
      t.skip(`the host is ${process.platform}/${process.arch}: no native reference`);
      return;
    }
    const cases: [string, number[], SnippetInput["regs"]][] = [
      ["add rax, rbx", [0x48, 0x01, 0xd8], { rax: 1n, rbx: 2n }],
      ["push rax; pop rcx", [0x50, 0x59], { rax: 5n }],
      ["ud2: #UD", [0x0f, 0x0b], {}],
      ["div ecx by 0: #DE", [0xf7, 0xf1], { rax: 1n }],
      ["hlt: #GP(0) short of the end marker", [0xf4, 0x90], {}],
      ["mov [0x1000], al: #PF on a supervisor page", [0x88, 0x04, 0x25, 0, 0x10, 0, 0], {}],
      ["mov eax, [0x500000]: #PF, not present", [0x8b, 0x04, 0x25, 0, 0, 0x50, 0], {}],
      ["jmp rax to 0x1000: #PF on the fetch", [0xff, 0xe0], { rax: 0x1000n }],
      ["a non-canonical address: #GP(0)", [0xa1, 0, 0, 0, 0, 0, 0, 0, 0x80], {}],
      ["TF: #DB after the first instruction", [0x90, 0x90], { rflags: 0x302n }],
      ["int3: #BP", [0xcc], {}],
    ];
    for (const [what, code, regs] of cases) {
      const input: SnippetInput = { mode: "long64", code: Uint8Array.from(code), regs };
      const n: SnippetResult = native.run(input);
      const s: SnippetResult = soft.run(input);
      const brief = (r: SnippetResult) => ({
        outcome: r.outcome,
        vector: r.vector,
        errorCode: r.errorCode,
        regs: r.regs,
        cr2: r.cr2,
      });
      assert.deepEqual(brief(n), brief(s), what);
    }
    const spin = native.run({ mode: "long64", code: Uint8Array.of(0xeb, 0xfe), timeoutMs: 50 });
    assert.equal(spin.outcome, "timeout");
    // A system call (getpid) does not reach the kernel where syscall user dispatch exists.
    const sys = native.run({ mode: "long64", code: Uint8Array.of(0x0f, 0x05), regs: { rax: 39n } });
    if (native.blocksSystemCalls) assert.match(`${sys.outcome} ${sys.exit}`, /^exit system call/);
    else t.diagnostic("this kernel has no syscall user dispatch: snippets' system calls run");
    assert.equal(native.run({ mode: "long64", code: Uint8Array.of(0x90) }).outcome, "completed");
  });

  it("32-bit protected mode is not among the native modes: it needs KVM", (t) => {
    if (native === null) {
      t.skip(`the host is ${process.platform}/${process.arch}: no native reference`);
      return;
    }
    assert.ok(!native.modes.includes("prot32"));
    assert.throws(() => native!.run({ mode: "prot32", code: Uint8Array.of(0x90) }), /prot32/);
  });
});

// ---------------------------------------------------------------- regressions

const soft = new SoftOracle();
const L = ORACLE_LAYOUT;
const run = (code: number[], regs: SnippetInput["regs"]) =>
  soft.run({ mode: "long64", code: Uint8Array.from(code), regs });
const NONCANONICAL = [0, 0, 0, 0, 0, 0, 0, 0x80]; // 0x8000000000000000

describe("regressions found by the differential runs (64-bit mode, soft CPU)", () => {
  it("DIV/IDIV r/m32 zero-extend RAX and RDX (SDM Vol. 1, 3.4.1.1)", () => {
    // div r14d
    let r = run([0x41, 0xf7, 0xf6], {
      rax: 0xdf175a3e55555555n,
      rdx: 0xfeffad9c00000188n,
      r14: 0x257n,
    });
    assert.deepEqual([r.regs.rax, r.regs.rdx], [0xa7accdb6n, 0x7bn]);
    // idiv edi: -100 / 7
    r = run([0xf7, 0xff], { rax: 0x12345678ffffff9cn, rdx: 0xffffffffffffffffn, rdi: 7n });
    assert.deepEqual([r.regs.rax, r.regs.rdx], [0xfffffff2n, 0xfffffffen]);
  });

  it("BT/BTS/BTR/BTC r64, r64 take the bit offset modulo 64 (SDM Vol. 2A, BT)", () => {
    // btc rax, rbx: offset 0x...1e = 30
    const r = run([0x48, 0x0f, 0xbb, 0xd8], { rax: 1n, rbx: 0x03991a5cc1460b1en });
    assert.equal(r.regs.rax, 0x40000001n);
    // bts rcx, r10 with r10 = 2^63 - 1: bit 63
    const s = run([0x4c, 0x0f, 0xab, 0xd1], { rcx: 0xd8n, r10: 0x7fffffffffffffffn });
    assert.equal(s.regs.rcx, 0x80000000000000d8n);
  });

  it("CMPXCHG r32 writes only the destination or only EAX (SDM Vol. 2A, CMPXCHG)", () => {
    // cmpxchg ecx, r11d: not equal, so EAX = ECX (zero-extended) and RCX is left alone
    let r = run([0x44, 0x0f, 0xb1, 0xd9], { rax: 0xeb11dc90n, rcx: 0xc210c22880000000n });
    assert.deepEqual([r.regs.rax, r.regs.rcx], [0x80000000n, 0xc210c22880000000n]);
    assert.equal(r.regs.rflags & 0x40n, 0n); // ZF clear
    // equal: ECX = R11D (zero-extended) and RAX is left alone
    r = run([0x44, 0x0f, 0xb1, 0xd9], { rax: 0xffffffff00000005n, rcx: 5n, r11: 0x1234n });
    assert.deepEqual([r.regs.rax, r.regs.rcx], [0xffffffff00000005n, 0x1234n]);
  });

  it("a non-canonical SS reference is #SS(0), others #GP(0) (SDM Vol. 3A, 6.15)", () => {
    const vector = (code: number[], regs: SnippetInput["regs"] = {}) => {
      const r = run(code, regs);
      return [r.outcome, r.vector, r.errorCode];
    };
    // mov eax, [moffs64]: with an SS override, and without
    assert.deepEqual(vector([0x36, 0xa1, ...NONCANONICAL]), ["exception", 12, 0]);
    assert.deepEqual(vector([0xa1, ...NONCANONICAL]), ["exception", 13, 0]);
    // movsb from ss:[rsi], and from ds:[rsi]
    const regs = { rsi: 0x8000000000000000n, rdi: BigInt(L.data) };
    assert.deepEqual(vector([0x36, 0xa4], regs), ["exception", 12, 0]);
    assert.deepEqual(vector([0xa4], regs), ["exception", 13, 0]);
  });

  it("ENTER with a 16-bit operand size pushes words (SDM Vol. 2A, ENTER)", () => {
    // enter 0, 2 with 0x66: push bp, one word from [rbp-2], the frame pointer (a word)
    const r = run([0x66, 0xc8, 0x00, 0x00, 0x02], { rsp: 0x333883n, rbp: 0x333892n });
    assert.deepEqual([r.regs.rsp, r.regs.rbp], [0x33387dn, 0x333881n]);
  });
});
