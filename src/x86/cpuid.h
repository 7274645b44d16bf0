/* Guest CPUID: what KVM supports on this host, with the topology and identity that the
 * VM's shape implies. */
#ifndef EMBER_CPUID_H
#define EMBER_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

/* Adjusts the entries for vCPU cpu_index of nr_cpus: hypervisor bit, APIC ids, topology
 * leaves (1, 4, 0xb, 0x1f, 0x80000008, 0x8000001e). */
void cpuid_filter(struct kvm_cpuid_entry2 *entries, unsigned nr, unsigned cpu_index,
		  unsigned nr_cpus, bool smt);
/* Some hosts list only subleaf 0 of the topology leaves 0xb and 0x1f, and a guest asking for
 * the core level (subleaf 1) would read zeros: adds subleaves 1 and 2 where missing, within
 * room entries. Returns the new count. */
unsigned cpuid_complete_topology(struct kvm_cpuid_entry2 *entries, unsigned nr, unsigned room);

#endif
