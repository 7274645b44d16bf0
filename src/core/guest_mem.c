/* Guest RAM and its checked accessors. */
#include "core/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "x86/layout.h"

static int map_region(struct mem_region *r, uint64_t gpa, uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->gpa = gpa;
	r->size = size;
	r->hva = p;
	return 0;
}

int guest_mem_init(struct guest_mem *mem, uint64_t size)
{
	uint64_t low = size < MMIO_GAP_START ? size : MMIO_GAP_START;
	int rc = map_region(&mem->regions[0], 0, low);
	if (rc)
		return rc;
	mem->nr_regions = 1;
	if (size > low) {
		rc = map_region(&mem->regions[1], MMIO_GAP_END, size - low);
		if (rc) {
			guest_mem_free(mem);
			return rc;
		}
		mem->nr_regions = 2;
	}
	mem->size = size;
	return 0;
}

void guest_mem_free(struct guest_mem *mem)
{
	for (unsigned i = 0; i < mem->nr_regions; i++)
		munmap(mem->regions[i].hva, mem->regions[i].size);
	mem->nr_regions = 0;
	mem->size = 0;
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		uint64_t off = gpa - r->gpa;
		/* Written as a subtraction so that a huge len cannot wrap around. */
		if (len > r->size - off)
			return NULL;
		return r->hva + off;
	}
	return NULL;
}
