#!/bin/bash
# Build a kernel from Debian's linux-source tarball: allnoconfig plus one of the
# project's config fragments. Usage: rootfs/build-kernel.sh guest|vmhost
#   guest  -> build/guest/vmlinux (ELF) and build/guest/bzImage
#   vmhost -> build/vmhost/bzImage (the level-1 kernel of the emulated KVM host)
# Results are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/ember/, keyed by a
# hash of everything that shapes them, so a second build only copies files.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-}
case "$kind" in
    guest) outputs=(vmlinux bzImage) ;;
    vmhost) outputs=(bzImage) ;;
    *) echo "usage: $0 guest|vmhost" >&2; exit 2 ;;
esac
fragment=rootfs/$kind-kernel.config
outdir=build/$kind
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ember

tarball=$(printf '%s\n' /usr/src/linux-source-*.tar.xz | sort -V | tail -n1)
if [[ ! -f "$tarball" ]]; then
    echo "build-kernel: no /usr/src/linux-source-*.tar.xz; run 'make deps'" >&2
    exit 1
fi
base=$(basename "$tarball" .tar.xz)
pkgver=$(dpkg-query -W -f='${Version}' "$base" 2>/dev/null || true)
size=$(stat -c %s "$tarball")

# The key covers the inputs that change the output: fragment, this script,
# the kernel source (package version and tarball size) and the compiler.
key=$( {
    cat "$fragment" "$0"
    echo "$base $pkgver $size"
    gcc --version | head -n1
} | sha256sum | cut -c1-16)
result=$cache/kernel-$kind-$key

install_result() {
    mkdir -p "$outdir"
    for f in "${outputs[@]}"; do
        cp -f "$result/$f" "$outdir/$f.tmp$$" && mv -f "$outdir/$f.tmp$$" "$outdir/$f"
    done
    cp -f "$result/config" "$outdir/kernel.config"
}

if [[ -e "$result/.done" ]]; then
    install_result
    echo "build-kernel: $kind kernel from cache ($result)"
    exit 0
fi

mkdir -p "$cache"
# One build per kind at a time; a second caller waits, then finds the cache.
exec 9>"$cache/kernel-$kind.lock"
flock 9
if [[ -e "$result/.done" ]]; then
    install_result
    echo "build-kernel: $kind kernel from cache ($result)"
    exit 0
fi

# Extract the source once per tarball version; builds are out of tree (O=).
src=$cache/$base-${pkgver:-$size}
if [[ ! -e "$src/.extracted" ]]; then
    echo "build-kernel: extracting $tarball"
    rm -rf "$src" "$src.tmp"
    mkdir -p "$src.tmp"
    tar -xJf "$tarball" -C "$src.tmp" --strip-components=1
    touch "$src.tmp/.extracted"
    mv "$src.tmp" "$src"
fi

# The object directory is reused across fragment edits: kbuild rebuilds
# incrementally, which keeps config tuning cheap.
obj=$cache/kbuild-$kind
rm -rf "$result"
mkdir -p "$obj" "$result"
log=$result/build.log
: >"$log"

fail() {
    echo "build-kernel: $*" >&2
    echo "---- last lines of $log ----" >&2
    tail -n 40 "$log" >&2
    exit 1
}

echo "build-kernel: configuring $kind kernel ($base ${pkgver:-}) in $obj"
# allnoconfig with the fragment as the forced starting point: everything not
# asked for stays off, which is what keeps the guest small and fast to boot.
make -C "$src" O="$obj" ARCH=x86_64 KCONFIG_ALLCONFIG="$PWD/$fragment" \
    allnoconfig >>"$log" 2>&1 || fail "allnoconfig failed"

# Kconfig silently drops options whose dependencies are unmet; catch that.
bad=0
while IFS= read -r raw; do
    if [[ "$raw" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
        opt=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
    elif [[ "$raw" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set ]]; then
        opt=${BASH_REMATCH[1]} want=n
    else
        continue
    fi
    got=$(grep -E "^$opt=|^# $opt is not set" "$obj/.config" || true)
    got=${got#"$opt="}
    [[ "$got" == "# $opt is not set" || -z "$got" ]] && got=n
    if [[ "$got" != "$want" ]]; then
        [[ "$got" == n ]] && got="not set"
        echo "build-kernel: $fragment: $opt wanted '$want', got '$got' (unmet dependency?)" >&2
        bad=1
    fi
done <"$fragment"
((bad == 0)) || exit 1

echo "build-kernel: building with make -j$(nproc) (log: $log)"
start=$(date +%s)
make -C "$src" O="$obj" ARCH=x86_64 -j"$(nproc)" vmlinux bzImage >>"$log" 2>&1 ||
    fail "kernel build failed"
echo "build-kernel: built in $(($(date +%s) - start)) s"

cp -f "$obj/vmlinux" "$result/vmlinux"
cp -f "$obj/arch/x86/boot/bzImage" "$result/bzImage"
cp -f "$obj/.config" "$result/config"
touch "$result/.done"
install_result
echo "build-kernel: $kind kernel ready in $outdir"
