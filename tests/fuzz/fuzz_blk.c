/* virtio-blk's request path: a driver script (fuzz_dev.h) against a drive on a memfd image,
 * sync engine, so that every request completes within the turn of the loop that took it. The
 * script's first byte picks the drive's flags (read-only, cache type). The drives live from
 * one input to the next: each input starts with the driver's reset. */
#include <unistd.h>

#include "virtio/blk.h"
#include "fuzz_dev.h"

#define IMG_BYTES (64 * 512)

static char img_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	fuzz_dev()->persistent = true;
	int fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, IMG_BYTES))
		abort();
	snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", fd);
	return 0;
}

/* One drive per combination of flags, made at its first use and kept (persistent). */
static bool create(struct fin *f)
{
	static struct virtio_dev *drives[4];
	uint8_t flags = fin8(f) & 3;
	struct drive_config cfg = {
		.drive_id = "fuzz",
		.path_on_host = img_path,
		.is_read_only = flags & 1,
		.cache_type = flags & 2 ? DRIVE_CACHE_WRITEBACK : DRIVE_CACHE_UNSAFE,
		.io_engine = DRIVE_ENGINE_SYNC,
	};
	char err[ERR_LEN];
	if (!drives[flags] && blk_create(&fuzz_dev()->m, &cfg, &drives[flags], err))
		abort();
	fuzz_dev()->dev = drives[flags];
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	return 0;
}
