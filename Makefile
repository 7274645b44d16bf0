# ember: one entry point for building, testing, demos and benchmarks.
# Targets: all (default), test, demo, bench, kernel, rootfs, vmhost-kernel, deps, fuzz,
# fuzz-build, clean.

CC       ?= gcc
BUILD    := build
SANITIZE ?= 0

CFLAGS   := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP -Isrc -I.
LDFLAGS  := -Wl,--as-needed
LDLIBS   := -ljansson -luring -lseccomp -lpthread
# build/ember is static, as Firecracker ships its binary: the jailer's chroot then needs
# nothing but the binary (no ELF interpreter, no libraries). static-pie keeps ASLR. The
# sanitizer runtimes exist only as shared libraries, so SANITIZE=1 links ember dynamically
# (its tests copy the libraries into their jails: tests/lib/jail-libs.sh).
EMBER_LDFLAGS := -static-pie
ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
EMBER_LDFLAGS :=
endif

# The VMM: every .c below src/ (but main.c), in api/ and in virtio/ forms a library that the
# unit tests link against too. Layers, top to bottom: src/main.c, api/, src/vmm/, the devices
# (virtio/, src/legacy/), then src/x86/ and src/core/; tests/layering.sh checks the includes.
CORE_SRC := $(wildcard src/*/*.c api/*.c virtio/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

GUEST_SRC := $(wildcard tests/guest/*.c tests/guest/*.S)
GUEST_ELF := $(BUILD)/tests/guest.elf
GUEST_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
	-fno-stack-protector -mno-red-zone -mno-sse -mno-mmx -mno-80387 -mcmodel=small -nostdlib -fno-asynchronous-unwind-tables

.PHONY: all test demo bench kernel rootfs vmhost-kernel deps clean unit-tests
# The jailer is a separate, small binary: it never links the VMM.
JAILER_SRC := $(wildcard jailer/*.c)
all: $(BUILD)/ember $(GUEST_ELF) $(if $(JAILER_SRC),$(BUILD)/ember-jailer) $(BUILD)/ember-vsock \
	$(BUILD)/ember-snap $(BUILD)/ember-agent $(BUILD)/ember-run

# The snapshot tool (inspect a state file, merge a Diff memory file onto its base): it runs
# the loader's own checks, so it links the VMM's library.
$(BUILD)/ember-snap: $(BUILD)/obj/snap/ember_snap.o $(BUILD)/libember.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/ember-jailer: $(JAILER_SRC:%.c=$(BUILD)/obj/%.o)
	$(CC) $(LDFLAGS) -o $@ $^ -lcap

# The vsock tool, for the guest (rootfs/build-rootfs.sh installs it) and the host: static,
# so the busybox guest runs it as it is; stripped, as it goes into every guest image.
$(BUILD)/ember-vsock: rootfs/ember-vsock.c run/fd_io.h
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -s -Wall -Wextra -Werror -I. -o $@ $<

# The guest agent of ember-run (rootfs/build-rootfs.sh installs it in both guest images):
# static and stripped like ember-vsock; it shares the wire format's code with ember-run.
AGENT_PROTO := run/agent_proto.c run/agent_proto.h
$(BUILD)/ember-agent: rootfs/ember-agent.c $(AGENT_PROTO)
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -s -Wall -Wextra -Werror -I. -o $@ rootfs/ember-agent.c run/agent_proto.c

# ember-run: one command in a fresh microVM. A client of ember's API like any other: it runs
# build/ember as a child and never links the VMM (tests/layering.sh checks its includes).
# Static like ember: a run's own start is part of every run's latency.
RUN_SRC := $(wildcard run/*.c)
$(BUILD)/ember-run: $(RUN_SRC:%.c=$(BUILD)/obj/%.o)
	$(CC) $(LDFLAGS) $(EMBER_LDFLAGS) -o $@ $^ -ljansson

# The page fault handler that serves a memory file to a VM loaded with the Uffd backend: a
# program of its own, without the VMM (it runs outside ember, with its own rights).
all: $(BUILD)/ember-uffd-handler
$(BUILD)/ember-uffd-handler: snap/uffd_handler.c snap/uffd_handoff.c snap/uffd_handoff.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.c,$^) $(LDFLAGS) -ljansson

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libember.a: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The debug info goes to build/ember.debug (found by gdb through the debug link), as
# Firecracker publishes its release binaries' apart: the jailer copies ember into every jail
# at every start, and with its debug info the static binary is 1.9 MB instead of 1.4 MB
# (bench row 5: about 2 ms more per jailed start on this host).
# (SANITIZE=1 keeps it in place, for the sanitizers' reports.)
$(BUILD)/ember: $(BUILD)/obj/src/main.o $(BUILD)/libember.a
ifeq ($(SANITIZE),1)
	$(CC) $(LDFLAGS) $(EMBER_LDFLAGS) -o $@ $^ $(LDLIBS)
else
	$(CC) $(LDFLAGS) $(EMBER_LDFLAGS) -o $@.full $^ $(LDLIBS)
	objcopy --only-keep-debug $@.full $@.debug
	objcopy --strip-debug --add-gnu-debuglink=$@.debug $@.full $@
	rm -f $@.full
endif

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libember.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libember.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(GUEST_ELF): $(GUEST_SRC) tests/guest/guest.ld
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -Wl,-T,tests/guest/guest.ld -Wl,--build-id=none -Wl,--no-warn-rwx-segments -static -o $@ $(GUEST_SRC)

unit-tests: $(UNIT_BIN) $(GUEST_ELF)

# Small C programs the bats suites run (tests/helpers/*.c), built without the VMM.
HELPER_BIN := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(wildcard tests/helpers/*.c))
unit-tests: $(HELPER_BIN)
$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

# libFuzzer targets (tests/fuzz/fuzz_*.c), built by clang with ASan and UBSan against ember's
# sources compiled the same way into their own directory. 'make fuzz' runs each for FUZZ_S
# seconds from its seed corpus (tests/fuzz/corpus/<target>/); tests/fuzz/README.md has more.
FUZZ_CC     := clang
FUZZ_BUILD  := build/fuzz
FUZZ_S      ?= 10
# (vcpu.c puts struct kvm_msrs, which ends in a flexible array, inside a struct: a GNU C
# extension that gcc takes silently and clang warns about.)
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP -Isrc -I. \
	-fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined -Wno-gnu-variable-sized-type-not-at-end
FUZZ_BIN    := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJ    := $(CORE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libember.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libember.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libember.a $(LDLIBS)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BIN)

fuzz: deps
	$(MAKE) fuzz-build
	tests/fuzz/run.sh $(FUZZ_S)

deps:
	rootfs/install-deps.sh

kernel: deps
	rootfs/build-kernel.sh guest

vmhost-kernel: deps
	rootfs/build-kernel.sh vmhost

rootfs: deps $(BUILD)/ember-vsock $(BUILD)/ember-agent
	rootfs/build-rootfs.sh

# The sanitized build (ASan+UBSan) and the fuzz targets run in tests/run-all.sh too.
test: deps
	$(MAKE) all unit-tests
	$(MAKE) BUILD=build/san SANITIZE=1 all unit-tests
	$(MAKE) fuzz-build
	rootfs/build-kernel.sh guest
	rootfs/build-rootfs.sh
	rootfs/build-kernel.sh vmhost
	tests/run-all.sh

demo: deps
	$(MAKE) all
	rootfs/build-kernel.sh guest
	rootfs/build-rootfs.sh
	tests/demo.sh

# The benchmarks use the small C helpers of tests/helpers (bench/api.py times start-up with one).
bench: deps
	$(MAKE) all $(HELPER_BIN)
	rootfs/build-kernel.sh guest
	rootfs/build-rootfs.sh
	rootfs/build-kernel.sh vmhost
	bench/run.sh

# Keeps build/guest and build/vmhost: they are copies of cached kernels and images.
clean:
	rm -rf $(BUILD)/obj $(BUILD)/tests $(BUILD)/ember $(BUILD)/ember.debug $(BUILD)/libember.a \
		$(BUILD)/ember-snap $(BUILD)/ember-uffd-handler $(BUILD)/ember-agent $(BUILD)/ember-run \
		$(BUILD)/test-tmp $(BUILD)/san $(FUZZ_BUILD)

-include $(FUZZ_OBJ:.o=.d) $(FUZZ_BIN:=.d)
-include $(CORE_OBJ:.o=.d) $(BUILD)/obj/src/main.d $(BUILD)/obj/snap/ember_snap.d $(RUN_SRC:%.c=$(BUILD)/obj/%.d) $(UNIT_BIN:=.d) $(JAILER_SRC:%.c=$(BUILD)/obj/%.d)
