/* A snapshot's memory: dirty page tracking (KVM's log of what the guest wrote, and the
 * VMM's own bitmap of what its devices and loader wrote), the memory file, Full or Diff, and
 * the state file's record of it (section MEMF). */
#ifndef EMBER_SNAPSHOT_MEM_H
#define EMBER_SNAPSHOT_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/snapbuf.h"
#include "vmm/snapshot_file.h"
#include "vmm/vm.h"

#define SNAP_MEMORY SNAP_TAG('M', 'E', 'M', 'F') /* the memory file: Full or Diff, regions */

#define DIFF_NEEDS_TRACKING                                                                        \
	"Diff snapshots are not allowed on uVMs with dirty page tracking disabled."

/* What the state file says of its memory file. A file without the section (format 1.0)
 * is Full. */
struct snap_mem_record {
	bool diff;
	uint64_t size;	      /* the memory file's length */
	uint64_t dirty_pages; /* Diff: pages in the file */
	unsigned nr_regions;
	uint64_t file_off[2], gpa[2], len[2];
};

/* The pages dirtied since tracking began or since the last snapshot. */
struct snap_dirty {
	uint64_t *bitmap; /* one bit per page of guest memory, in file order */
	uint64_t pages;	  /* bits set */
};

/* Takes (and clears) KVM's dirty log of every memory slot and the VMM's bitmap into d.
 * Paused VM only. 0 or -errno with err. */
int snapshot_mem_collect(struct machine *m, struct snap_dirty *d, char *err);
/* A snapshot that failed: d's pages go back to the VMM's bitmap, for the next one. Frees d. */
void snapshot_mem_restore_dirty(struct machine *m, struct snap_dirty *d);
void snapshot_mem_free(struct snap_dirty *d);

/* The MEMF section's payload. d: a Diff's pages, NULL for a Full snapshot. */
void snapshot_mem_save(const struct guest_mem *mem, const struct snap_dirty *d,
		       struct snap_writer *w);
/* Writes the memory file at path: every page that holds data (Full), or d's pages. */
int snapshot_mem_write(struct machine *m, const char *path, const struct snap_dirty *d, char *err);
/* The MEMF section of f (if any) into rec, checked against the layout ember builds for
 * mem_mib MiB. 0 or -EINVAL with err. */
int snapshot_mem_parse(const struct snap_file *f, unsigned mem_mib, struct snap_mem_record *rec,
		       char *err);

#endif
