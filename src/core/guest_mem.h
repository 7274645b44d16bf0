/* Guest RAM: anonymous mappings laid out around the MMIO gap, and the only way to reach
 * them. Every address and length comes from the guest or a file and is checked here. */
#ifndef EMBER_GUEST_MEM_H
#define EMBER_GUEST_MEM_H

#include <stdint.h>

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct mem_region regions[2]; /* below the 3 GiB MMIO gap, and from 4 GiB up */
	unsigned nr_regions;
	uint64_t size;
};

/* Maps size bytes (MAP_NORESERVE: pages cost host memory once touched). -errno. */
int guest_mem_init(struct guest_mem *mem, uint64_t size);
void guest_mem_free(struct guest_mem *mem);
/* A host pointer for [gpa, gpa+len) if it lies entirely in one RAM region, NULL otherwise
 * (overflow, the gap, beyond the end). */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

#endif
