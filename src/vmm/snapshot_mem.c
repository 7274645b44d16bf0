/* A snapshot's memory file and dirty page tracking; see snapshot_mem.h.
 *
 * KVM_GET_DIRTY_LOG returns a slot's log and clears it in one call, which is all a snapshot
 * of a paused VM needs. KVM_CLEAR_DIRTY_LOG (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, which this
 * host's PVM offers too) splits the two so that a running VM is write-protected again a range
 * at a time: worth it for live migration, not for a paused VM. */
#include "vmm/snapshot_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/log.h"
#include "x86/layout.h"

static uint64_t popcount_bitmap(const uint64_t *b, uint64_t words)
{
	uint64_t n = 0;
	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(b[w]);
	return n;
}

int snapshot_mem_collect(struct machine *m, struct snap_dirty *d, char *err)
{
	const struct guest_mem *mem = &m->mem;
	uint64_t words = (mem->nr_pages + 63) / 64;
	*d = (struct snap_dirty){ 0 };
	if (!mem->dirty)
		return errf(err, -EINVAL, DIFF_NEEDS_TRACKING);
	d->bitmap = calloc(words ? words : 1, sizeof(uint64_t));
	if (!d->bitmap)
		return errf(err, -ENOMEM, "out of memory");
	uint64_t first = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		uint64_t npages = mem->regions[i].size / GUEST_PAGE_SIZE;
		uint64_t *log = calloc((npages + 63) / 64, sizeof(uint64_t));
		struct kvm_dirty_log dl = { .slot = i, .dirty_bitmap = log };
		if (!log || ioctl(m->vm_fd, KVM_GET_DIRTY_LOG, &dl) < 0) {
			int rc = log ? -errno : -ENOMEM;
			free(log);
			/* What the slots before this one gave is not lost. */
			snapshot_mem_restore_dirty(m, d);
			return errf(err, rc, "KVM_GET_DIRTY_LOG (slot %u): %s", i, strerror(-rc));
		}
		if (first % 64 == 0) {
			for (uint64_t w = 0; w < (npages + 63) / 64; w++)
				d->bitmap[first / 64 + w] |= log[w];
		} else {
			for (uint64_t p = 0; p < npages; p++)
				if (log[p / 64] >> (p % 64) & 1)
					d->bitmap[(first + p) / 64] |= 1ULL << ((first + p) % 64);
		}
		free(log);
		first += npages;
	}
	guest_mem_take_dirty(mem, d->bitmap);
	d->pages = popcount_bitmap(d->bitmap, words);
	return 0;
}

void snapshot_mem_free(struct snap_dirty *d)
{
	free(d->bitmap);
	*d = (struct snap_dirty){ 0 };
}

void snapshot_mem_restore_dirty(struct machine *m, struct snap_dirty *d)
{
	if (d->bitmap)
		guest_mem_return_dirty(&m->mem, d->bitmap);
	snapshot_mem_free(d);
}

void snapshot_mem_save(const struct guest_mem *mem, const struct snap_dirty *d,
		       struct snap_writer *w)
{
	snapw_u8(w, d ? 1 : 0);
	snapw_u64(w, mem->size);
	snapw_u64(w, d ? d->pages : 0);
	snapw_u32(w, mem->nr_regions);
	uint64_t off = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		snapw_u64(w, off);
		snapw_u64(w, mem->regions[i].gpa);
		snapw_u64(w, mem->regions[i].size);
		off += mem->regions[i].size;
	}
}

int snapshot_mem_write(struct machine *m, const char *path, const struct snap_dirty *d, char *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return errf(err, -errno, "mem_file_path %s: %s", path, strerror(errno));
	uint64_t written = 0;
	int rc = d ? guest_mem_dump_dirty(&m->mem, fd, d->bitmap, &written)
		   : guest_mem_dump(&m->mem, fd, &written);
	close(fd);
	if (rc == -EBUSY)
		return errf(err, rc,
			    "mem_file_path %s is the file this VM's memory was loaded from; "
			    "write the snapshot elsewhere",
			    path);
	if (rc)
		return errf(err, rc, "mem_file_path %s: %s", path, strerror(-rc));
	if (d)
		log_info("snapshot: Diff, %llu dirty pages of %llu MiB of guest memory written "
			 "to %s",
			 (unsigned long long)written, (unsigned long long)(m->mem.size >> 20),
			 path);
	else
		log_info("snapshot: %llu KiB of %llu MiB of guest memory written to %s",
			 (unsigned long long)(written >> 10),
			 (unsigned long long)(m->mem.size >> 20), path);
	return 0;
}

int snapshot_mem_parse(const struct snap_file *f, unsigned mem_mib, struct snap_mem_record *rec,
		       char *err)
{
	uint64_t size = (uint64_t)mem_mib << 20;
	uint64_t low = size < MMIO_GAP_START ? size : MMIO_GAP_START;
	const struct snap_section *s = snapshot_file_find(f, SNAP_MEMORY, 0);
	*rec = (struct snap_mem_record){ .size = size, .nr_regions = size > low ? 2 : 1 };
	rec->gpa[1] = MMIO_GAP_END;
	rec->len[0] = low;
	rec->len[1] = size - low;
	rec->file_off[1] = low;
	if (!s)
		return 0; /* format 1.0: Full */
	struct snap_reader r = snapr_init(s->data, s->len);
	uint8_t type = snapr_u8(&r);
	uint64_t file_size = snapr_u64(&r), pages = snapr_u64(&r);
	unsigned nr = snapr_u32(&r);
	bool same = nr == rec->nr_regions;
	for (unsigned i = 0; i < nr && i < 2; i++) {
		uint64_t off = snapr_u64(&r), gpa = snapr_u64(&r), len = snapr_u64(&r);
		same = same && off == rec->file_off[i] && gpa == rec->gpa[i] && len == rec->len[i];
	}
	if (!snapr_done(&r) || type > 1 || nr > 2)
		return errf(err, -EINVAL, "the snapshot's memory section is malformed");
	if (!same || file_size != size)
		return errf(err, -EINVAL,
			    "the snapshot's memory file layout is not the one of its %u MiB",
			    mem_mib);
	if ((type == 0 && pages) || pages > size / GUEST_PAGE_SIZE)
		return errf(err, -EINVAL, "the snapshot's memory section counts %llu dirty pages",
			    (unsigned long long)pages);
	rec->diff = type == 1;
	rec->dirty_pages = pages;
	return 0;
}
