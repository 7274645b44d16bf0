/* The API's routes (api/routes.c) and everything behind them (controller, config JSON, every
 * device kind's hooks): a run of requests, method, path and JSON body from the input, on a VM
 * that is configuring and then, after the input's "start", running.
 *
 * Start without KVM: the devices the configuration names are created as InstanceStart
 * creates them (device kinds' create hooks) and the state becomes running, with an i8042 for
 * SendCtrlAltDel; no vCPU, no kernel. A real InstanceStart routed here fails, as /dev/kvm is
 * not in the scratch root.
 *
 * Routes open files the body names (logger, metrics, drives, vsock sockets): the target
 * runs chrooted in an empty scratch directory of its own (a private mount namespace with /usr
 * and /proc bound read-only, for the sanitizers' symbolizer and LeakSanitizer), and every
 * input starts from an empty one. Input: per request a method byte, a path byte (one of the paths
 * below, or the next bytes up to a NUL), a 16-bit body length and the body; a method byte of 0xff
 * is "start". */
#include <stdio.h>

#include "api/api.h"
#include "legacy/i8042.h"
#include "core/metrics.h"
#include "vmm/controller.h"
#include "vmm/device_table.h"
#include "fuzz.h"
#include "fuzz_sandbox.h"

static const char *const paths[] = {
	"/",
	"/version",
	"/machine-config",
	"/boot-source",
	"/drives/rootfs",
	"/drives/d1",
	"/network-interfaces/eth0",
	"/network-interfaces/eth1",
	"/vsock",
	"/logger",
	"/metrics",
	"/serial",
	"/actions",
	"/vm",
	"/vm/config",
	"/drives",
	"/drives/",
	"/mmds",
	"/balloon",
	"/balloon/statistics",
	"/balloon/hinting/start",
	"/balloon/hinting/stop",
	"/balloon/hinting/status",
	"/entropy",
	"/snapshot/create",
	"/snapshot/load",
};
static const char *const methods[] = { "GET", "PUT", "PATCH", "DELETE", "POST" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	enter_scratch_root(*argc, *argv);
	api_metrics_init();
	fuzz_quiet();
	return 0;
}

/* InstanceStart as far as it goes without KVM: the devices and the running state. */
static void fake_start(struct vm *vm)
{
	char err[ERR_LEN];
	if (vm->state != VM_CONFIGURING)
		return;
	if (builder_create_devices(vm, err))
		return;
	vm->i8042 = i8042_create(&vm->m);
	vm->state = VM_RUNNING;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	static struct vm vm;
	memset(&vm, 0, sizeof(vm));
	builder_init(&vm, false);
	struct api_ctx ctx = { .vm = &vm, .instance_id = "fuzz" };
	char path[256];
	while (fin_more(&f)) {
		uint8_t m = fin8(&f);
		if (m == 0xff) {
			fake_start(&vm);
			continue;
		}
		uint8_t p = fin8(&f);
		if (p < sizeof(paths) / sizeof(*paths)) {
			snprintf(path, sizeof(path), "%s", paths[p]);
		} else {
			size_t n = 0;
			while (fin_more(&f) && n + 1 < sizeof(path) && (path[n] = (char)fin8(&f)))
				n++;
			path[n] = '\0';
		}
		size_t len = fin16(&f), got;
		const uint8_t *body = fin_bytes(&f, len, &got);
		/* The body as the API thread hands it over: in the connection's buffer, not
		 * NUL-terminated (a copy of its own, so that ASan sees a read past it). */
		char *copy = malloc(got ? got : 1);
		memcpy(copy, body, got);
		struct api_reply reply = { 0 };
		api_dispatch(&ctx, methods[m % 5], path, (m & 0x80) ? NULL : copy, got, &reply);
		free(reply.body);
		free(copy);
	}
	vmm_destroy(&vm);
	/* Logger and metrics are process-wide: back to the sink, and quiet again. */
	log_open("/null");
	metrics_open("/null");
	fuzz_quiet();
	empty_scratch_root(NULL);
	return 0;
}
