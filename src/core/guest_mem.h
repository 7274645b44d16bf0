/* Guest RAM: anonymous mappings laid out around the MMIO gap, and the only way to reach
 * them. Every address and length comes from the guest or a file and is checked here. */
#ifndef EMBER_GUEST_MEM_H
#define EMBER_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct mem_region regions[2]; /* below the 3 GiB MMIO gap, and from 4 GiB up */
	unsigned nr_regions;
	uint64_t size;
	/* Restored from a snapshot's memory file (guest_mem_init_file): which file, so that a
	 * new snapshot never truncates the file its own pages come from. */
	bool file_backed;
	dev_t file_dev;
	ino_t file_ino;
	/* Pages come in on first touch from elsewhere (a snapshot's page fault handler): a
	 * page not yet present may hold data. */
	bool lazy;
	/* Dirty page tracking (guest_mem_track): one bit per page, in file order (the regions
	 * back to back), set for every page the VMM writes (device buffers, used rings, the
	 * loader). KVM logs only what the guest writes; a Diff snapshot needs both. NULL when
	 * tracking is off. Set from any thread, atomically. */
	uint64_t *dirty;
	uint64_t nr_pages;
};

#define GUEST_PAGE_SIZE 4096ULL

/* Maps size bytes (MAP_NORESERVE: pages cost host memory once touched). -errno. */
int guest_mem_init(struct guest_mem *mem, uint64_t size);
void guest_mem_free(struct guest_mem *mem);
/* The same layout over a memory file of size bytes (a snapshot's): each region a
 * MAP_PRIVATE view of fd at its offset in the file, where the regions lie back to back.
 * Pages load on first touch; the guest's writes stay private to this process. -errno. */
int guest_mem_init_file(struct guest_mem *mem, uint64_t size, int fd);
/* Writes guest memory to fd (truncated to the memory size first) as a sparse file: only
 * pages that hold something other than zeros, at their offsets. *written: bytes written.
 * -errno. */
int guest_mem_dump(const struct guest_mem *mem, int fd, uint64_t *written);
/* A host pointer for [gpa, gpa+len) if it lies entirely in one RAM region, NULL otherwise
 * (overflow, the gap, beyond the end). */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* Gives the whole host pages inside [hva, hva+len) back to the host (MADV_DONTNEED: the
 * mappings are private, so the next touch reads zeros, or the snapshot file's page) and
 * marks them dirty. The range must lie inside one RAM region: -EFAULT otherwise, and
 * nothing is discarded. *discarded (may be NULL): the bytes given back. 0 or -errno. */
int guest_mem_discard(const struct guest_mem *mem, void *hva, uint64_t len, uint64_t *discarded);
/* The same for memory the VMM is about to write: the pages are marked dirty when tracking
 * is on. */
void *guest_mem_ptr_w(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Turns the VMM's own dirty bitmap on (all clear) or off. -ENOMEM. */
int guest_mem_track(struct guest_mem *mem, bool on);
/* Marks the pages of [gpa, gpa+len) that are RAM dirty (nothing when tracking is off). */
void guest_mem_mark_dirty(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* Moves the VMM's dirty bits into bitmap (ORed in: one bit per page in file order, the
 * bitmap nr_pages bits long) and clears them. */
void guest_mem_take_dirty(const struct guest_mem *mem, uint64_t *bitmap);
/* Puts bits back (a snapshot that failed after it took them). */
void guest_mem_return_dirty(const struct guest_mem *mem, const uint64_t *bitmap);
/* Writes the pages set in bitmap (file order), zeros included, at their offsets in fd
 * (truncated to the memory size first): a Diff memory file, its other pages holes.
 * *pages: pages written. -errno, -EBUSY as guest_mem_dump. */
int guest_mem_dump_dirty(const struct guest_mem *mem, int fd, const uint64_t *bitmap,
			 uint64_t *pages);

#endif
