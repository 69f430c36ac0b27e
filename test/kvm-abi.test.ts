/**
 * The KVM ABI table (src/engine/kvm/abi.ts) against the Linux UAPI headers: every struct
 * size and field offset, every ioctl number and constant is printed by a C program compiled
 * against <linux/kvm.h> and compared. Without the headers or a C compiler that comparison
 * is skipped visibly; the sizes documented in api.rst are checked either way.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  ALL_STRUCTS,
  KVM,
  KVM_CAP,
  KVM_EXIT,
  KVM_INTERNAL_ERROR,
  KVM_SYSTEM_EVENT,
  kvm_regs,
  kvm_run,
  kvm_sregs,
} from "../src/engine/kvm/abi.js";

const HEADER = "/usr/include/linux/kvm.h";

/** Every value the C program prints, keyed by a name shared with the expectations. */
function expectations(): Map<string, { c: string; ts: number }> {
  const out = new Map<string, { c: string; ts: number }>();
  for (const s of ALL_STRUCTS) {
    out.set(`sizeof ${s.name}`, { c: `sizeof(struct ${s.name})`, ts: s.size });
    for (const [field, offset] of Object.entries(s.fields)) {
      out.set(`offsetof ${s.name}.${field}`, {
        c: `__builtin_offsetof(struct ${s.name}, ${field})`,
        ts: offset,
      });
    }
  }
  for (const [name, value] of Object.entries(KVM))
    out.set(`KVM_${name}`, { c: `KVM_${name}`, ts: value });
  const constants: [string, Record<string, number>][] = [
    ["KVM_CAP_", KVM_CAP],
    ["KVM_EXIT_", KVM_EXIT],
    ["KVM_INTERNAL_ERROR_", KVM_INTERNAL_ERROR],
    ["KVM_SYSTEM_EVENT_", KVM_SYSTEM_EVENT],
  ];
  for (const [prefix, table] of constants) {
    for (const [name, value] of Object.entries(table)) {
      out.set(prefix + name, { c: prefix + name, ts: value });
    }
  }
  return out;
}

/** Compiles and runs a C program printing "name value" lines; null without a compiler. */
function valuesFromHeaders(names: Map<string, { c: string }>): Map<string, number> | string {
  const dir = mkdtempSync(join(tmpdir(), "shv-kvm-abi-"));
  try {
    const lines = [...names].map(
      ([name, { c }]) =>
        `  printf("%s %llu\\n", ${JSON.stringify(name)}, (unsigned long long)(${c}));`,
    );
    const src = `#include <stdio.h>\n#include <linux/kvm.h>\nint main(void) {\n${lines.join("\n")}\n  return 0;\n}\n`;
    writeFileSync(join(dir, "abi.c"), src);
    const cc = spawnSync("cc", ["-o", join(dir, "abi"), join(dir, "abi.c")], { encoding: "utf8" });
    if (cc.error) return `no C compiler (${cc.error.message})`;
    if (cc.status !== 0) assert.fail(`compiling the ABI probe failed:\n${cc.stderr}`);
    const run = spawnSync(join(dir, "abi"), { encoding: "utf8" });
    assert.equal(run.status, 0);
    return new Map(
      run.stdout
        .trim()
        .split("\n")
        .map((l) => {
          const k = l.lastIndexOf(" ");
          return [l.slice(0, k), Number(l.slice(k + 1))] as [string, number];
        }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("KVM ABI", () => {
  it("matches <linux/kvm.h>: struct sizes, field offsets, ioctl numbers, constants", (t) => {
    if (!existsSync(HEADER)) {
      t.skip(`${HEADER} is not installed (Debian: linux-libc-dev)`);
      return;
    }
    const expected = expectations();
    const actual = valuesFromHeaders(expected);
    if (typeof actual === "string") {
      t.skip(actual);
      return;
    }
    const mismatches = [...expected]
      .filter(([name, { ts }]) => actual.get(name) !== ts)
      .map(([name, { ts }]) => `${name}: abi.ts ${ts}, kvm.h ${actual.get(name)}`);
    assert.deepEqual(mismatches, []);
    assert.ok(actual.size >= 150, `only ${actual.size} values compared`);
  });

  it("has the sizes documented in Documentation/virt/kvm/api.rst", () => {
    // kvm_run: 32 bytes of header, a 256-byte exit union, then valid/dirty regs and 2 KiB
    // of synced registers.
    assert.equal(kvm_run.size, 32 + 256 + 16 + 2048);
    assert.equal(kvm_regs.size, 18 * 8);
    // 8 segments of 24 bytes, 2 descriptor tables of 16, 7 64-bit registers, 256 bits.
    assert.equal(kvm_sregs.size, 8 * 24 + 2 * 16 + 7 * 8 + 32);
    // _IO(KVMIO, 0x80), _IOR(KVMIO, 0x81, struct kvm_regs), _IOWR(KVMIO, 0x05, kvm_cpuid2).
    assert.equal(KVM.RUN, 0xae80);
    assert.equal(KVM.GET_REGS, 0x8090ae81);
    assert.equal(KVM.GET_SUPPORTED_CPUID, 0xc008ae05);
  });
});
