#!/bin/bash
# Install the Debian packages ember needs to build, test and benchmark.
# Idempotent and fast: apt is only touched when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The -dev packages of libc (build-essential), jansson, liburing and libseccomp also ship the
# static archives that build/ember links (-static-pie).
PKGS=(
    build-essential libjansson-dev libcmocka-dev bats
    qemu-system-x86 linux-source busybox-static e2fsprogs
    liburing-dev libseccomp-dev libcap-dev
    cpio flex bison bc libelf-dev libssl-dev socat curl kmod jq clang-format python3
    iproute2 strace
    bubblewrap # bench/ember-run.sh: a container-style peer (no VM boundary) as the floor
    clang clang-tools libclang-rt-dev # the fuzz targets (libFuzzer is in libclang-rt-dev), scan-build
)

# One dpkg-query for all packages. A package counts only when fully installed;
# packages dpkg has never heard of print nothing, so start from "missing".
declare -A state=()
while read -r name status; do
    state[${name%%:*}]=$status
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PKGS[@]}" 2>/dev/null || true)

missing=()
for p in "${PKGS[@]}"; do
    [[ "${state[$p]-}" == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "install-deps: installing ${missing[*]}"
SUDO=()
((EUID == 0)) || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
