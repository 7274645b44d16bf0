/* vCPUs: one thread each, KVM_RUN in a loop, PIO/MMIO exits through the I/O bus. */
#ifndef EMBER_VCPU_H
#define EMBER_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/machine.h"

struct vcpu {
	struct machine *machine;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
};

/* Creates vCPU index and gives it the state a real boot would leave: CPUID, MSRs, FPU,
 * LAPIC LINT0/1. Setup failures exit via die(). */
void vcpu_create(struct machine *machine, struct vcpu *vcpu, unsigned index,
		 const struct kvm_cpuid2 *supported, bool smt);
/* The boot CPU enters the kernel in long mode at entry with RSI = the zero page. */
void vcpu_setup_long_mode(struct vcpu *vcpu, uint64_t entry);
int vcpu_start(struct vcpu *vcpu);
/* Makes a running KVM_RUN return soon (the thread then rechecks pause and exit). */
void vcpu_kick(struct vcpu *vcpu);
/* Before a paused vCPU resumes: KVM sets PVCLOCK_GUEST_STOPPED in the guest's kvmclock
 * page, so that the guest's watchdogs do not take the pause for a lock-up. */
void vcpu_kvmclock_paused(struct vcpu *vcpu);
/* Makes a running KVM_RUN return and the thread finish; then joins it. */
void vcpu_stop(struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

#endif
