/* Guest RAM and the checked guest-physical accessor. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "x86/layout.h"
#include "vmm/vm.h"

static int map_region(struct mem_region *r, uint64_t gpa, uint64_t size)
{
	/* MAP_NORESERVE: guest pages cost host memory only once the guest touches them. */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->gpa = gpa;
	r->size = size;
	r->hva = p;
	return 0;
}

int vm_memory_init(struct vm *vm, uint64_t size)
{
	uint64_t low = size < MMIO_GAP_START ? size : MMIO_GAP_START;
	int rc = map_region(&vm->mem[0], 0, low);
	if (rc)
		return rc;
	vm->nr_mem = 1;
	if (size > low) {
		rc = map_region(&vm->mem[1], MMIO_GAP_END, size - low);
		if (rc) {
			vm_memory_free(vm);
			return rc;
		}
		vm->nr_mem = 2;
	}
	vm->mem_size = size;
	return 0;
}

void vm_memory_free(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_mem; i++)
		munmap(vm->mem[i].hva, vm->mem[i].size);
	vm->nr_mem = 0;
	vm->mem_size = 0;
}

void *gpa_to_hva(const struct vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < vm->nr_mem; i++) {
		const struct mem_region *r = &vm->mem[i];
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

uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
