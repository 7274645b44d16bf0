/* The hand-off a page fault handler receives from ember (or Firecracker) over its Unix
 * socket: a JSON array of memory regions. It comes from another process, so it is parsed as
 * hostile input; tests/fuzz/fuzz_uffd_handoff.c fuzzes this parser. */
#ifndef EMBER_UFFD_HANDOFF_H
#define EMBER_UFFD_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#define HANDOFF_PAGE_SIZE   4096ULL
#define HANDOFF_REGIONS_MAX 16

struct uffd_region {
	uint64_t base;	 /* base_host_virt_addr: where the region lies in ember */
	uint64_t size;	 /* bytes */
	uint64_t offset; /* where its bytes lie in the memory file */
};

/* Parses buf[0, len) and checks each region: whole 4 KiB pages (page_size or
 * page_size_kib, in bytes, 4096 if given), inside a memory file of file_size bytes, no
 * wrap-around, no two overlapping. Unknown keys are ignored (later Firecracker versions
 * add some). Returns the number of regions into reg (HANDOFF_REGIONS_MAX room), or -1 with
 * why. */
int handoff_parse(const char *buf, size_t len, uint64_t file_size, struct uffd_region *reg,
		  char *why, size_t why_len);

#endif
