#!/usr/bin/env bash
# Installs the Debian packages SHV's build and tests use, when they are missing: gcc,
# GNU as/ld and make build the guest kernels (guests/Makefile). Needs root (or sudo).
set -euo pipefail
missing=()
command -v gcc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
command -v ld >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
