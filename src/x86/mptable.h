/* The Intel MultiProcessor table: tells a guest without ACPI about its CPUs, the IOAPIC
 * and how ISA interrupts are wired. */
#ifndef EMBER_MPTABLE_H
#define EMBER_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/guest_mem.h"

#define MPTABLE_IOAPIC_PINS 24

/* Size in bytes of the floating pointer plus the table for nr_cpus processors. */
size_t mptable_size(unsigned nr_cpus);
/* Writes the floating pointer at gpa and the table right after it; -E2BIG if it would not
 * fit in [gpa, limit). */
int mptable_write(const struct guest_mem *mem, uint64_t gpa, uint64_t limit, unsigned nr_cpus);

#endif
