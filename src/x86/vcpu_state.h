/* A vCPU's and the VM's KVM state for snapshots: saved into a snap_writer, parsed from an
 * untrusted snap_reader into plain structs (no KVM call: a parse error leaves KVM
 * untouched), then applied in the order KVM needs. */
#ifndef EMBER_VCPU_STATE_H
#define EMBER_VCPU_STATE_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "core/snapbuf.h"
#include "x86/vcpu.h"

#define VCPU_STATE_MSRS_MAX  64
#define VCPU_STATE_CPUID_MAX 256

struct vcpu_state {
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	bool has_xsave; /* else fpu */
	struct kvm_xsave xsave;
	struct kvm_fpu fpu;
	bool has_xcrs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	unsigned nr_msrs;
	struct kvm_msr_entry msrs[VCPU_STATE_MSRS_MAX];
	struct kvm_vcpu_events events;
	unsigned nr_cpuid;
	struct kvm_cpuid_entry2 cpuid[VCPU_STATE_CPUID_MAX];
	uint32_t tsc_khz; /* the guest's TSC frequency; 0: not saved (format 1.2 and older) */
};

struct vm_kvm_state {
	struct kvm_clock_data clock;
	struct kvm_pit_state2 pit;
	struct kvm_irqchip chips[3]; /* PIC master, PIC slave, IOAPIC */
};

/* The vCPU must not run (the VM is paused). 0 or -errno with err naming the ioctl. */
int vcpu_state_save(struct vcpu *vcpu, struct snap_writer *w, char *err);
/* Pure: checks every count and size; 0 or -EINVAL with err. */
int vcpu_state_parse(struct snap_reader *r, struct vcpu_state *st, char *err);
int vcpu_state_restore(struct vcpu *vcpu, const struct vcpu_state *st, char *err);

/* clock: the kvmclock to save (taken when the VM paused). */
int vm_kvm_state_save(struct machine *m, const struct kvm_clock_data *clock, struct snap_writer *w,
		      char *err);
int vm_kvm_state_parse(struct snap_reader *r, struct vm_kvm_state *st, char *err);
/* PIT and irqchips; the clock is the caller's, set when the vCPUs resume. */
int vm_kvm_state_restore(struct machine *m, const struct vm_kvm_state *st, char *err);

#endif
