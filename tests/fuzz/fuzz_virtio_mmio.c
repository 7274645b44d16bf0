/* The virtio-mmio transport: register accesses of every size and offset, the status state
 * machine, feature negotiation and queue set-up, with the descriptor walker behind
 * QueueNotify. The device is a virtio-blk on a memfd; HOST here is one more register access,
 * a write of any size at any offset of the device's 4 KiB. The drive lives from one input to
 * the next: each input starts with the driver's reset. */
#include <unistd.h>

#include "virtio/blk.h"
#include "fuzz_dev.h"

static char img_path[64];

static void any_write(struct fuzz_dev *s, struct fin *f)
{
	uint64_t off = fin16(f) % 0x1000;
	uint64_t v = fin64(f);
	fuzz_mmio(s->dev, off, &v, 1U << (fin8(f) % 4), true);
}

/* One drive, made at the first input and kept (persistent). */
static bool create(struct fin *f)
{
	(void)f;
	static struct virtio_dev *drive;
	struct drive_config cfg = { .drive_id = "fuzz", .path_on_host = img_path };
	char err[ERR_LEN];
	if (!drive && blk_create(&fuzz_dev()->m, &cfg, &drive, err))
		abort();
	fuzz_dev()->dev = drive;
	return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	fuzz_dev()->persistent = true;
	fuzz_dev()->host_op = any_write;
	int fd = memfd_create("fuzz-mmio", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 8 * 512))
		abort();
	snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	return 0;
}
