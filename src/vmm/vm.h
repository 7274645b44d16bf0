/* struct vm: the VMM layer's whole VM. The machine (src/core/machine.h) that devices and
 * vCPUs see, the configuration, what the builder made, and the controller's state. main()
 * builds it (builder_*); the API reaches it only through src/vmm/controller.h. */
#ifndef EMBER_VM_H
#define EMBER_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

#include "core/log.h"
#include "core/machine.h"
#include "virtio/kind.h"
#include "vmm/config.h"

struct vcpu;
struct serial;
struct i8042;
struct boot_timer;

enum vm_state { VM_CONFIGURING, VM_RUNNING, VM_PAUSED };

struct vm {
	struct machine m;
	struct vm_config cfg;
	enum vm_state state;
	bool boot_timer_enabled;
	int loop_signal_fd; /* SIGTERM, SIGINT, SIGHUP */

	/* Built ahead of InstanceStart (builder.c): the KVM VM, its PIT and memory. A setup
	 * that fails there is reported at InstanceStart, which tries again. */
	bool kvm_ready;
	bool build_ahead; /* through the API: PIT and memory before InstanceStart */
	pthread_t pit_thread, mem_thread;
	bool pit_pending, mem_pending; /* a helper thread to join */
	uint64_t mem_bytes;	       /* the size the memory thread maps; 0: none yet */
	int mem_rc;		       /* the memory thread's result */
	struct kvm_cpuid2 *cpuid;      /* what KVM supports, for every vCPU */
	char prepare_err[ERR_LEN];     /* why the KVM VM could not be made, or "" */

	/* Made at InstanceStart. */
	struct vcpu *vcpus;
	struct serial *serial;
	int serial_out_fd;
	struct i8042 *i8042;
	struct boot_timer *boot_timer;	    /* with --boot-timer */
	struct device_set devices;	    /* virtio devices in slot order */
	int device_kind_of[VIRTIO_DEV_MAX]; /* each device's row in the device table */
	struct kvm_clock_data saved_clock;  /* kvmclock while paused, if clock_saved */
	bool clock_saved;
	/* Something besides the logger and metrics was configured: a snapshot load, which
	 * brings its own configuration, is no longer allowed. */
	bool configured;
	/* A config file's snapshot-load body (jansson), until vmm_start_configured loads it. */
	struct json_t *config_snapshot;

	/* ember's own outputs, configured with the VM (PUT /logger, /metrics). */
	char *log_path;
	char *metrics_path;
	int metrics_timer_fd;
};

/* builder.c */
/* The VMM thread's basics, before any configuration. vm must be zeroed, with
 * boot_timer_enabled and m.start_ns/start_cpu_ns set. build_ahead: the API will configure the
 * VM later, so builder_prepare makes the PIT in the background, and builder_resize_memory
 * the guest memory once machine-config gives its size. */
void builder_init(struct vm *vm, bool build_ahead);
/* The KVM VM and its irqchip (and with build_ahead, the rest in the background); once the API
 * socket is up, so that it does not wait for KVM. */
void builder_prepare(struct vm *vm);
/* machine-config set the memory size before start: (re)map it in the background. */
void builder_resize_memory(struct vm *vm);
/* InstanceStart: kernel, devices, vCPUs; then the vCPU threads run. 0, or -errno with a
 * message in err and the VM back to a configurable state. */
int builder_start(struct vm *vm, char *err);
/* Every configured virtio device, kind by kind in table order, into vm->devices (part of
 * builder_start; on its own for the fuzz targets, which have no KVM). */
int builder_create_devices(struct vm *vm, char *err);
/* A snapshot load: the memory file, and apply, which restores the saved state once the
 * devices and vCPUs exist (0, or -errno with err). */
struct builder_snapshot {
	int mem_fd;
	int (*apply)(struct vm *vm, void *arg, char *err);
	void *arg;
};
/* Builds the VM from the configuration (set from the snapshot) and from's state, then starts
 * the vCPUs paused. On failure everything is undone and a fresh KVM VM prepared. */
int builder_restore(struct vm *vm, const struct builder_snapshot *from, char *err);
/* Stops and frees everything (at exit). */
void builder_destroy(struct vm *vm);

#endif
