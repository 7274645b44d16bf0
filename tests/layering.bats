#!/usr/bin/env bats
# The layers of DESIGN.md: main -> api -> vmm -> devices -> x86/core, never upward.

@test "no file includes a header from a layer above its own" {
	run tests/layering.sh
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" 0 wrong"* ]]
}

@test "the layering check catches an upward include and an include without its folder" {
	tree=$(mktemp -d)
	mkdir -p "$tree/src/core" "$tree/virtio" "$tree/api"
	printf '#include "core/log.h"\n#include "vmm/vm.h"\n' >"$tree/virtio/dev.c"
	printf '#include "log.h"\n' >"$tree/src/core/x.c"
	printf '#include "vmm/controller.h"\n' >"$tree/api/ok.c"
	run tests/layering.sh "$tree"
	rm -rf "$tree"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *'virtio/dev.c: #include "vmm/vm.h" reaches up a layer (1 -> 2)'* ]]
	[[ "$output" == *'src/core/x.c: #include "log.h" does not name its folder'* ]]
	[[ "$output" == *"4 includes checked, 2 wrong"* ]]
}

@test "ember-run and the guest programs include only run/ headers" {
	tree=$(mktemp -d)
	mkdir -p "$tree/src/core" "$tree/run" "$tree/rootfs"
	printf '#include "core/log.h"\n' >"$tree/src/core/x.c"
	printf '#include "run/run.h"\n#include "vmm/vm.h"\n' >"$tree/run/x.c"
	printf '#include "run/agent_proto.h"\n#include "core/log.h"\n' >"$tree/rootfs/agent.c"
	run tests/layering.sh "$tree"
	rm -rf "$tree"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *'run/x.c: #include "vmm/vm.h": ember-run and the guest programs include only run/ headers'* ]]
	[[ "$output" == *'rootfs/agent.c: #include "core/log.h": ember-run'* ]]
	[[ "$output" == *"5 includes checked, 2 wrong"* ]]
}
