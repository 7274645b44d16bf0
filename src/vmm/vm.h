/* struct vm: all per-VM state, passed explicitly everywhere. */
#ifndef EMBER_VM_H
#define EMBER_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bus.h"
#include "vmm/config.h"
#include "core/evloop.h"

struct vcpu;
struct serial;
struct i8042;
struct virtio_dev;

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	bool pvm_host; /* /dev/kvm is kvm_pvm: only PVM guest kernels boot */

	struct mem_region mem[2]; /* below the 3 GiB MMIO gap, and from 4 GiB up */
	unsigned nr_mem;
	uint64_t mem_size;

	struct io_bus pio_bus;
	struct io_bus mmio_bus;
	struct evloop loop;

	unsigned nr_vcpus;
	struct vcpu *vcpus;
	int vcpu_mmap_size;

	struct serial *serial;
	int serial_out_fd;
	struct i8042 *i8042;
	/* virtio-mmio devices in slot order (virtio/virtio.h): slot n is entry n. */
	struct virtio_dev **virtio_devs;
	unsigned nr_virtio_devs;

	bool boot_timer_enabled;
	uint64_t start_ns;     /* CLOCK_MONOTONIC reference for the boot timer */
	uint64_t start_cpu_ns; /* CLOCK_PROCESS_CPUTIME_ID at the same moment */

	/* Pause: vCPU threads park on pause_cond while paused is set; nr_parked counts them
	 * so that a pause returns only once every vCPU has stopped. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool paused; /* read without the lock on every vCPU exit; written under it */
	unsigned nr_parked;
	struct kvm_clock_data *saved_clock;

	/* Set once by whichever thread ends the VM first; the VMM loop then stops. */
	atomic_bool exiting;
	int exit_code;
	int exit_event_fd;
	int loop_signal_fd; /* SIGTERM, SIGINT, SIGHUP */
};

/* Guest memory: anonymous MAP_NORESERVE mappings laid out around the MMIO gap. Usable
 * without KVM (unit tests). */
int vm_memory_init(struct vm *vm, uint64_t size);
void vm_memory_free(struct vm *vm);
/* The one checked accessor: a host pointer for [gpa, gpa+len) if it lies entirely in one
 * RAM region, NULL otherwise (overflow, gap, beyond the end). */
void *gpa_to_hva(const struct vm *vm, uint64_t gpa, uint64_t len);

/* The VMM thread's basics, before any configuration: the event loop, the exit eventfd
 * and the signals that stop ember. vm must be zeroed, with boot_timer_enabled and
 * start_ns/start_cpu_ns set by the caller. */
void vm_init(struct vm *vm);
#define VM_ERR_LEN 512
/* Creates the KVM VM (irqchip, PIT, memory slots), the devices and the vCPUs, and loads
 * the kernel. What the user can get wrong (files, sizes, no /dev/kvm) returns -errno with
 * a message in err and leaves nothing behind; KVM failing unexpectedly exits via die(). */
int vm_boot(struct vm *vm, const struct vm_config *cfg, char *err);
/* Starts the vCPU threads. */
int vm_start(struct vm *vm);
/* Runs the VMM event loop until the VM ends, stops the vCPUs; returns the exit code. */
int vm_run(struct vm *vm);
/* Stops every vCPU (the guest's clock stops too) / lets them run again. -EINVAL when
 * not in the matching state. */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
/* Ends the VM with code (first caller wins); safe from any thread. */
void vm_request_exit(struct vm *vm, int code);
/* Undoes vm_boot (vCPUs, devices, memory, the KVM VM); the event loop stays. */
void vm_release(struct vm *vm);
void vm_destroy(struct vm *vm);

uint64_t monotonic_ns(void);

#endif
