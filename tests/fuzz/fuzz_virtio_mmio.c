/* The virtio-mmio transport: register accesses of every size and offset, the status state
 * machine, feature negotiation and queue set-up, with the descriptor walker behind
 * QueueNotify. The device is a virtio-blk on a memfd; HOST here is one more register access,
 * a write of any size at any offset of the device's 4 KiB. */
#include <unistd.h>

#include "virtio/blk.h"
#include "fuzz_dev.h"

static char img_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	int fd = memfd_create("fuzz-mmio", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 8 * 512))
		abort();
	snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", fd);
	return 0;
}

static void any_write(struct fuzz_dev *s, struct fin *f)
{
	uint64_t off = fin16(f) % 0x1000;
	uint64_t v = fin64(f);
	fuzz_mmio(s->dev, off, &v, 1U << (fin8(f) % 4), true);
}

static bool create(struct fin *f)
{
	(void)f;
	struct drive_config cfg = { .drive_id = "fuzz", .path_on_host = img_path };
	char err[ERR_LEN];
	fuzz_dev()->host_op = any_write;
	return blk_create(&fuzz_dev()->m, &cfg, &fuzz_dev()->dev, err) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	return 0;
}
