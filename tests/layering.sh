#!/usr/bin/env bash
# Fails when a file includes a header from a layer above its own. Layers, top to bottom:
#   4 src/main.c, snap/ (ember-snap)   3 api/   2 src/vmm/   1 virtio/, src/legacy/
#   0 src/x86/, src/core/
# and run/ (ember-run) and rootfs/*.c (guest programs) include only run/ headers.
# Includes name their folder ("core/log.h"), so the layer of each is plain to see.
set -uo pipefail
cd "${1:-$(dirname "$0")/..}"

layer_of() {
	case "$1" in
	src/main.c | snap/*) echo 4 ;;
	api/*) echo 3 ;;
	src/vmm/* | vmm/*) echo 2 ;;
	virtio/* | src/legacy/* | legacy/*) echo 1 ;;
	src/x86/* | x86/* | src/core/* | core/*) echo 0 ;;
	*) echo "" ;;
	esac
}

bad=0 checked=0
while IFS= read -r file; do
	from=$(layer_of "$file")
	while IFS= read -r inc; do
		checked=$((checked + 1))
		to=$(layer_of "$inc")
		if [ -z "$to" ]; then
			echo "$file: #include \"$inc\" does not name its folder (core/, x86/, legacy/, virtio/, vmm/, api/)"
			bad=$((bad + 1))
		elif [ "$to" -gt "$from" ]; then
			echo "$file: #include \"$inc\" reaches up a layer ($from -> $to)"
			bad=$((bad + 1))
		fi
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(find src api virtio snap -name '*.[ch]' | sort)
# ember-run (run/) and the guest programs (rootfs/*.c) are clients of the VMM, not parts of it:
# they include nothing of it, only run/'s own headers (the agent protocol).
while IFS= read -r file; do
	while IFS= read -r inc; do
		checked=$((checked + 1))
		case "$inc" in
		run/*) ;;
		*)
			echo "$file: #include \"$inc\": ember-run and the guest programs include only run/ headers"
			bad=$((bad + 1))
			;;
		esac
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(find run rootfs -name '*.[ch]' 2>/dev/null | sort)
echo "layering: $checked includes checked, $bad wrong"
[ "$checked" -gt 0 ] && [ "$bad" -eq 0 ]
