/* ember-snap: host-side snapshot tool.
 *
 *   ember-snap inspect STATE_FILE      what a state file holds: format version, Full or Diff,
 *                                      vCPUs, memory and its regions, devices
 *   ember-snap merge BASE_MEM DIFF_MEM writes a Diff memory file's pages onto its base
 *
 * inspect runs the loader's own checks (vmm_snapshot_inspect: everything PUT /snapshot/load
 * checks before it builds a VM), so a file it accepts passes them and a file it refuses is
 * refused with the loader's message. merge copies the Diff's data ranges, found with
 * SEEK_DATA/SEEK_HOLE: a Diff memory file holds its dirty pages as data and the rest as
 * holes. The result is the memory of the Diff's state file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/snapshot.h"
#include "vmm/snapshot_file.h"

#define COPY_CHUNK (1u << 20)

static int usage(void)
{
	fprintf(stderr, "usage: ember-snap inspect STATE_FILE\n"
			"       ember-snap merge BASE_MEM DIFF_MEM\n");
	return 2;
}

static int fail(const char *path, const char *why)
{
	fprintf(stderr, "ember-snap: %s: %s\n", path, why);
	return 1;
}

/* The whole state file, as the loader reads it: a regular file of at most SNAP_FILE_MAX. */
static int read_state(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int rc = fail(path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SNAP_FILE_MAX) {
		close(fd);
		return fail(path, "not a regular file of at most 64 MiB");
	}
	*buf = malloc((size_t)st.st_size + 1);
	*len = 0;
	while (*buf) {
		ssize_t n = read(fd, *buf + *len, (size_t)st.st_size + 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return fail(path, strerror(errno));
		}
		if (n == 0 || (*len += (size_t)n) > (size_t)st.st_size)
			break;
	}
	close(fd);
	return *buf ? 0 : fail(path, "out of memory");
}

static int inspect(const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = read_state(path, &buf, &len);
	if (rc) {
		free(buf);
		return rc;
	}
	static struct snapshot_info info;
	char err[ERR_LEN];
	if (vmm_snapshot_inspect(buf, len, &info, err)) {
		free(buf);
		return fail(path, err);
	}
	free(buf);
	const struct snap_mem_record *m = &info.mem;
	printf("snapshot: %s\n", path);
	printf("format version: %u.%u\n", info.major, info.minor);
	if (m->diff)
		printf("type: Diff (%llu dirty pages, %llu KiB, to merge onto its base)\n",
		       (unsigned long long)m->dirty_pages, (unsigned long long)m->dirty_pages * 4);
	else
		printf("type: Full\n");
	printf("vcpus: %u\n", info.nr_vcpus);
	if (info.tsc_khz)
		printf("tsc: %u kHz\n", info.tsc_khz);
	printf("memory: %u MiB\n", info.mem_mib);
	for (unsigned i = 0; i < m->nr_regions; i++)
		printf("  region %u: guest 0x%llx-0x%llx (%llu MiB) at memory file offset 0x%llx\n",
		       i, (unsigned long long)m->gpa[i],
		       (unsigned long long)(m->gpa[i] + m->len[i] - 1),
		       (unsigned long long)(m->len[i] >> 20), (unsigned long long)m->file_off[i]);
	printf("devices: %u\n", info.nr_devices);
	for (unsigned i = 0; i < info.nr_devices; i++)
		printf("  slot %u: %s '%s'\n", info.devices[i].slot, info.devices[i].kind,
		       info.devices[i].id);
	return 0;
}

static int copy_range(int from, int to, off_t off, off_t end, char *buf, const char *base)
{
	while (off < end) {
		size_t want = end - off < COPY_CHUNK ? (size_t)(end - off) : COPY_CHUNK;
		ssize_t n = pread(from, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(to, buf + done, (size_t)(n - done), off + done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int rc = w < 0 ? -errno : -EIO;
				fprintf(stderr, "ember-snap: %s: %s\n", base, strerror(-rc));
				return rc;
			}
			done += w;
		}
		off += n;
	}
	return 0;
}

static int merge(const char *base_path, const char *diff_path)
{
	int base = open(base_path, O_RDWR | O_CLOEXEC),
	    diff = open(diff_path, O_RDONLY | O_CLOEXEC);
	struct stat bs, ds;
	int rc = 1;
	char *buf = malloc(COPY_CHUNK);
	if (base < 0 || fstat(base, &bs) < 0)
		fail(base_path, strerror(errno));
	else if (diff < 0 || fstat(diff, &ds) < 0)
		fail(diff_path, strerror(errno));
	else if (!S_ISREG(bs.st_mode) || !S_ISREG(ds.st_mode))
		fail(S_ISREG(bs.st_mode) ? diff_path : base_path, "not a regular file");
	else if (bs.st_dev == ds.st_dev && bs.st_ino == ds.st_ino)
		fail(diff_path, "is the base itself");
	else if (bs.st_size != ds.st_size)
		fprintf(stderr,
			"ember-snap: %s is %lld bytes, %s %lld: a Diff merges only onto the memory "
			"file of the same VM\n",
			diff_path, (long long)ds.st_size, base_path, (long long)bs.st_size);
	else if (!buf)
		fail(base_path, "out of memory");
	else
		rc = 0;
	unsigned long long ranges = 0, bytes = 0;
	for (off_t off = 0; !rc;) {
		off_t data = lseek(diff, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* no data after off */
		off_t hole = data < 0 ? -1 : lseek(diff, data, SEEK_HOLE);
		if (hole < 0) {
			rc = fail(diff_path, strerror(errno));
			break;
		}
		if (copy_range(diff, base, data, hole, buf, base_path)) {
			rc = 1;
			break;
		}
		ranges++;
		bytes += (unsigned long long)(hole - data);
		off = hole;
	}
	if (!rc && fsync(base) < 0)
		rc = fail(base_path, strerror(errno));
	if (!rc)
		printf("merged %llu bytes in %llu ranges from %s onto %s\n", bytes, ranges,
		       diff_path, base_path);
	free(buf);
	if (base >= 0)
		close(base);
	if (diff >= 0)
		close(diff);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "inspect") == 0)
		return inspect(argv[2]);
	if (argc == 4 && strcmp(argv[1], "merge") == 0)
		return merge(argv[2], argv[3]);
	return usage();
}
