#!/usr/bin/env bash
# The test command (README): type check and build, lint and format check, build the guest
# kernels and the differential harness's native runner, then run every test file under
# node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== type check and build"
npx tsc --noEmit -p tsconfig.json
npx tsc -p tsconfig.build.json

echo "== lint and format check"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --list-different .; exit 1; }

echo "== guest kernels"
make -s -C guests

echo "== native runner of the differential harness"
make -s -C src/diff/native

echo "== tests"
# Name the files: `node --test dir/` would find no .ts files and run nothing.
node --import tsx --test --test-concurrency=2 test/*.test.ts
