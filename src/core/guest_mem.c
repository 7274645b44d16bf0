/* Guest RAM and its checked accessors. */
#include "core/guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "x86/layout.h"

#define PAGE_SIZE  GUEST_PAGE_SIZE
#define DUMP_CHUNK (64ULL << 20) /* mincore() a chunk at a time: a 16 KiB vector */

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
	mem->file_backed = false;
	mem->lazy = false;
	guest_mem_track(mem, false);
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

int guest_mem_discard(const struct guest_mem *mem, void *hva, uint64_t len, uint64_t *discarded)
{
	uintptr_t start = (uintptr_t)hva;
	if (discarded)
		*discarded = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		uintptr_t base = (uintptr_t)r->hva;
		if (start < base || start - base >= r->size || len > r->size - (start - base))
			continue;
		/* Inward to whole pages: a partial page may hold data the guest still uses. */
		uintptr_t first = (start + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);
		uintptr_t end = (start + len) & ~(uintptr_t)(PAGE_SIZE - 1);
		if (end <= first)
			return 0;
		if (madvise((void *)first, end - first, MADV_DONTNEED) < 0)
			return -errno;
		/* The pages now read as zeros: a Diff snapshot must say so, as a Full does. */
		guest_mem_mark_dirty(mem, r->gpa + (first - base), end - first);
		if (discarded)
			*discarded = end - first;
		return 0;
	}
	return -EFAULT;
}

void *guest_mem_ptr_w(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(mem, gpa, len);
	if (p)
		guest_mem_mark_dirty(mem, gpa, len);
	return p;
}

int guest_mem_track(struct guest_mem *mem, bool on)
{
	free(mem->dirty);
	mem->dirty = NULL;
	mem->nr_pages = 0;
	if (!on)
		return 0;
	uint64_t pages = mem->size / PAGE_SIZE;
	mem->dirty = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (!mem->dirty)
		return -ENOMEM;
	mem->nr_pages = pages;
	return 0;
}

void guest_mem_mark_dirty(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (!mem->dirty || !len)
		return;
	uint64_t end = len > UINT64_MAX - gpa ? UINT64_MAX : gpa + len, first_page = 0;
	for (unsigned i = 0; i < mem->nr_regions;
	     first_page += mem->regions[i].size / PAGE_SIZE, i++) {
		const struct mem_region *r = &mem->regions[i];
		uint64_t lo = gpa > r->gpa ? gpa : r->gpa;
		uint64_t hi = end < r->gpa + r->size ? end : r->gpa + r->size;
		if (lo >= hi)
			continue;
		uint64_t last = first_page + (hi - 1 - r->gpa) / PAGE_SIZE;
		for (uint64_t p = first_page + (lo - r->gpa) / PAGE_SIZE; p <= last; p++)
			__atomic_fetch_or(&mem->dirty[p / 64], 1ULL << (p % 64), __ATOMIC_RELAXED);
	}
}

void guest_mem_take_dirty(const struct guest_mem *mem, uint64_t *bitmap)
{
	for (uint64_t w = 0; mem->dirty && w < (mem->nr_pages + 63) / 64; w++)
		bitmap[w] |= __atomic_exchange_n(&mem->dirty[w], 0, __ATOMIC_ACQ_REL);
}

void guest_mem_return_dirty(const struct guest_mem *mem, const uint64_t *bitmap)
{
	for (uint64_t w = 0; mem->dirty && w < (mem->nr_pages + 63) / 64; w++)
		__atomic_fetch_or(&mem->dirty[w], bitmap[w], __ATOMIC_RELAXED);
}

int guest_mem_init_file(struct guest_mem *mem, uint64_t size, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint64_t low = size < MMIO_GAP_START ? size : MMIO_GAP_START;
	uint64_t sizes[2] = { low, size - low }, gpas[2] = { 0, MMIO_GAP_END }, off = 0;
	memset(mem, 0, sizeof(*mem));
	for (unsigned i = 0; i < 2 && sizes[i]; i++) {
		void *p = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
			       fd, (off_t)off);
		if (p == MAP_FAILED) {
			int rc = -errno;
			guest_mem_free(mem);
			return rc;
		}
		mem->regions[i] = (struct mem_region){ gpas[i], sizes[i], p };
		mem->nr_regions = i + 1;
		off += sizes[i];
	}
	mem->size = size;
	mem->file_backed = true;
	mem->file_dev = st.st_dev;
	mem->file_ino = st.st_ino;
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (unsigned i = 0; i < PAGE_SIZE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* Writes len bytes from hva to fd at off. */
static int write_run(int fd, const uint8_t *hva, uint64_t off, uint64_t len, uint64_t *written)
{
	while (len) {
		ssize_t n = pwrite(fd, hva, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		hva += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
		*written += (uint64_t)n;
	}
	return 0;
}

/* fd's size to the memory's, all of it a hole; -EBUSY for the file the memory comes from. */
static int truncate_dump(const struct guest_mem *mem, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (mem->file_backed && st.st_dev == mem->file_dev && st.st_ino == mem->file_ino)
		return -EBUSY;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)mem->size) < 0)
		return -errno;
	return 0;
}

/* A page mincore() reports absent may still hold data: swapped out (anonymous memory),
 * evicted from the page cache of the file a restored VM maps, or not yet brought in by a
 * snapshot's page fault handler (lazy). Only without swap, for
 * anonymous memory, is absent the same as never touched; otherwise absent pages are read
 * (which brings them back) and written when they are not zeros. */
int guest_mem_dump(const struct guest_mem *mem, int fd, uint64_t *written)
{
	int rc = truncate_dump(mem, fd);
	if (rc)
		return rc;
	struct sysinfo si;
	bool check_absent = mem->file_backed || mem->lazy || sysinfo(&si) < 0 || si.totalswap > 0;
	static unsigned char vec[DUMP_CHUNK / PAGE_SIZE];
	uint64_t file_off = 0;
	*written = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		for (uint64_t c = 0; c < r->size; c += DUMP_CHUNK) {
			uint64_t clen = r->size - c < DUMP_CHUNK ? r->size - c : DUMP_CHUNK;
			const uint8_t *hva = r->hva + c;
			if (mincore((void *)hva, clen, vec) < 0)
				return -errno;
			uint64_t run = 0, npages = clen / PAGE_SIZE;
			for (uint64_t p = 0; p <= npages; p++) {
				bool data = p < npages && (vec[p] & 1 || check_absent) &&
					    !page_is_zero(hva + p * PAGE_SIZE);
				if (data)
					continue;
				if (p > run) {
					rc = write_run(fd, hva + run * PAGE_SIZE,
						       file_off + c + run * PAGE_SIZE,
						       (p - run) * PAGE_SIZE, written);
					if (rc)
						return rc;
				}
				run = p + 1;
			}
		}
		file_off += r->size;
	}
	return 0;
}

static bool bit(const uint64_t *bitmap, uint64_t i)
{
	return bitmap[i / 64] >> (i % 64) & 1;
}

/* Every page whose bit is set is written, zeros too: merged onto its base, a page the guest
 * cleared must clear the base's. */
int guest_mem_dump_dirty(const struct guest_mem *mem, int fd, const uint64_t *bitmap,
			 uint64_t *pages)
{
	int rc = truncate_dump(mem, fd);
	if (rc)
		return rc;
	uint64_t first_page = 0, written = 0;
	*pages = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		uint64_t npages = r->size / PAGE_SIZE;
		for (uint64_t p = 0; p < npages;) {
			uint64_t idx = first_page + p;
			if (idx % 64 == 0 && npages - p >= 64 && !bitmap[idx / 64]) {
				p += 64; /* a whole clear word */
				continue;
			}
			if (!bit(bitmap, idx)) {
				p++;
				continue;
			}
			uint64_t run = p;
			while (p < npages && bit(bitmap, first_page + p))
				p++;
			rc = write_run(fd, r->hva + run * PAGE_SIZE, (first_page + run) * PAGE_SIZE,
				       (p - run) * PAGE_SIZE, &written);
			if (rc)
				return rc;
			*pages += p - run;
		}
		first_page += npages;
	}
	return 0;
}
