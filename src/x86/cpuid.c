#include "x86/cpuid.h"

#include <stddef.h>
#include <stdint.h>

static unsigned bits_for(unsigned count)
{
	unsigned shift = 0;
	while ((1u << shift) < count)
		shift++;
	return shift;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid_entry2 *e, unsigned nr, uint32_t function,
				     uint32_t index)
{
	for (unsigned i = 0; i < nr; i++)
		if (e[i].function == function && e[i].index == index)
			return &e[i];
	return NULL;
}

unsigned cpuid_complete_topology(struct kvm_cpuid_entry2 *e, unsigned nr, unsigned room)
{
	static const uint32_t leaves[] = { 0xb, 0x1f };
	for (unsigned l = 0; l < 2; l++) {
		struct kvm_cpuid_entry2 *first = find(e, nr, leaves[l], 0);
		for (uint32_t index = 1; first && index <= 2 && nr < room; index++) {
			if (find(e, nr, leaves[l], index))
				continue;
			e[nr] = *first; /* cpuid_filter fills in the values */
			e[nr++].index = index;
		}
	}
	return nr;
}

void cpuid_filter(struct kvm_cpuid_entry2 *entries, unsigned nr, unsigned cpu_index,
		  unsigned nr_cpus, bool smt)
{
	unsigned threads_per_core = (smt && nr_cpus > 1) ? 2 : 1;
	unsigned cores = nr_cpus / threads_per_core;
	unsigned smt_shift = bits_for(threads_per_core);
	unsigned pkg_shift = bits_for(nr_cpus);

	for (unsigned i = 0; i < nr; i++) {
		struct kvm_cpuid_entry2 *e = &entries[i];
		switch (e->function) {
		case 1:
			e->ecx |= 1u << 31; /* running under a hypervisor */
			/* TSC-deadline timer: KVM's in-kernel LAPIC emulates it on every host
			 * (KVM_CAP_TSC_DEADLINE_TIMER) but leaves it out of the supported CPUID for
			 * the VMM to set. Without it Linux calibrates the LAPIC timer against the
			 * PIT, and where that fails (a busy or emulated host) it keeps the PIT as
			 * its clock: a timer interrupt through the IOAPIC and KVM's PIT thread at
			 * every tick. */
			e->ecx |= 1u << 24;
			e->ebx = (e->ebx & 0x0000ffffu) | (cpu_index << 24) |
				 ((nr_cpus & 0xff) << 16);
			/* HTT: the package holds several logical CPUs */
			e->edx = nr_cpus > 1 ? e->edx | 1u << 28 : e->edx & ~(1u << 28);
			break;
		case 4:
			/* Deterministic cache parameters: cores per package and threads per cache
			 * must agree with the rest of the topology. */
			if ((e->eax & 0x1f) == 0)
				break;
			e->eax &= 0x3fff;
			e->eax |= (cores - 1) << 26;
			/* L1/L2 are per core, L3 is shared by the package. */
			e->eax |= (((e->eax >> 5) & 7) >= 3 ? nr_cpus - 1 : threads_per_core - 1)
				  << 14;
			break;
		case 0xb:
		case 0x1f:
			e->edx = cpu_index; /* x2APIC id */
			if (e->index == 0) {
				e->eax = smt_shift;
				e->ebx = threads_per_core;
				e->ecx = (1u << 8) | 0; /* level type 1: SMT */
			} else if (e->index == 1) {
				e->eax = pkg_shift;
				e->ebx = nr_cpus;
				e->ecx = (2u << 8) | 1; /* level type 2: core */
			} else {
				e->eax = 0;
				e->ebx = 0;
				e->ecx = e->index; /* level type 0: no more levels */
			}
			break;
		case 0x80000008:
			/* AMD: NC (cores - 1) and the APIC id size in bits 15:12. */
			e->ecx = (e->ecx & ~0xf0ffu) | (pkg_shift << 12) | ((nr_cpus - 1) & 0xff);
			break;
		case 0x8000001e:
			e->eax = cpu_index; /* extended APIC id */
			e->ebx = ((threads_per_core - 1) << 8) | (cpu_index / threads_per_core);
			e->ecx = 0; /* one node */
			break;
		default:
			break;
		}
	}
}
