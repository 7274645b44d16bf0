# Sourced by the tests and benchmarks that build a jail. build/ember is static and needs
# nothing in the jail but itself; only a `make SANITIZE=1` build is dynamic (the sanitizer
# runtimes are shared libraries), and its jails need the ELF interpreter and the libraries.
#
# jail_libs ROOT BINARY: copies what BINARY loads (as ldd resolves it on this host) into the
# jail root ROOT at the same paths, with /etc/ld.so.cache; nothing for a static BINARY.
jail_libs() {
	local root=$1 bin=$2 lib libs
	# Not "ldd | grep -q": under pipefail, ldd killed by SIGPIPE after grep's match would
	# read as no match.
	libs=$(ldd "$bin" 2>/dev/null) || true
	[[ "$libs" == *"=>"* ]] || return 0 # static: ldd lists no libraries
	# ldd prints "name => /path (addr)", "/path (addr)" for the interpreter, and
	# "linux-vdso.so.1 (addr)" for the vDSO, which is no file.
	ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
		sort -u | while read -r lib; do
		install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
	done
	if [ -f /etc/ld.so.cache ]; then
		install -D -m 0644 /etc/ld.so.cache "$root/etc/ld.so.cache"
	fi
}
