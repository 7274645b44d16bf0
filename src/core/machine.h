/* struct machine: what every device, vCPU and loader attaches to. The KVM VM, guest
 * memory, the two I/O buses, the VMM thread's event loop, the MMIO slot allocator, and the
 * run state that vCPUs and devices act on (exit, pause). The VMM layer (src/vmm/) owns one
 * per VM and builds it; nothing below it sees more of the VM than this. */
#ifndef EMBER_MACHINE_H
#define EMBER_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/evloop.h"
#include "core/guest_mem.h"

struct machine {
	int kvm_fd;
	int vm_fd; /* -1 without KVM (unit tests) */
	int vcpu_mmap_size;
	bool pvm_host; /* /dev/kvm is kvm_pvm: only PVM guest kernels boot */

	struct guest_mem mem;
	struct io_bus pio_bus;
	struct io_bus mmio_bus;
	struct evloop loop;
	unsigned nr_mmio_slots; /* virtio-mmio slots handed out so far */

	uint64_t start_ns;     /* CLOCK_MONOTONIC reference for the boot timer */
	uint64_t start_cpu_ns; /* CLOCK_PROCESS_CPUTIME_ID at the same moment */

	/* Pause: vCPU threads park on pause_cond while paused is set; nr_parked counts them
	 * so that a pause returns only once every vCPU has stopped. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool paused; /* read without the lock on every vCPU exit; written under it */
	unsigned nr_parked;
	unsigned nr_vcpus;

	/* Set once by whichever thread ends the VM first; the VMM loop then stops. */
	atomic_bool exiting;
	int exit_code;
	int exit_event_fd;
};

/* Ends the VM with code (first caller wins); safe from any thread. */
void machine_request_exit(struct machine *m, int code);
uint64_t monotonic_ns(void);
uint64_t process_cpu_ns(void);

#endif
