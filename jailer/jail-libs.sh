#!/usr/bin/env bash
# jail-libs.sh ROOT BINARY...: copies the ELF interpreter and every shared library the
# binaries load (as ldd resolves them on this host) into the jail root ROOT, at the same
# paths, readable by anyone. Run it before ember-jailer, which leaves an existing jail
# directory in place: ember is dynamically linked (libc, jansson, liburing,
# libseccomp and what they pull in), and inside the jail only what is copied there exists.
# A statically linked ember needs none of this.
set -euo pipefail
if [ $# -lt 2 ]; then
	echo "usage: $0 ROOT BINARY..." >&2
	exit 2
fi
root=$1
shift
mkdir -p "$root"
for bin in "$@"; do
	# ldd prints "name => /path (addr)", "/path (addr)" for the interpreter, and
	# "linux-vdso.so.1 (addr)" for the vDSO, which is no file.
	ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u | while read -r lib; do
	# The file itself (not a symlink into the host tree) under the name the loader asks for.
	install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
# The loader's cache names the same paths: with it, the loader goes straight to each file.
if [ -f /etc/ld.so.cache ]; then
	install -D -m 0644 /etc/ld.so.cache "$root/etc/ld.so.cache"
fi
