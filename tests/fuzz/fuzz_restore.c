/* The device state a snapshot load restores, which vmm_snapshot_check (fuzz_snapshot) leaves
 * to the devices: the UART's and the i8042's sections, and a virtio device's transport block
 * (virtio/mmio_snap.c: status, features, queue addresses and positions) with its kind's own
 * block, on an entropy device over guest memory from the input. A restored running device
 * activates its queues and is kicked, so a driver script (fuzz_dev.h) then goes on from the
 * state the input claimed. The script starts with four blocks, each a u16 length and its
 * bytes: serial, i8042, transport, the device's own; then a byte picks the device (modulo
 * 4): the entropy device, virtio-net (its "TAP" one end of a socketpair; rate-limited both
 * ways, so that the saved bucket levels meet buckets to be checked against),
 * virtio-vsock (bound at a path of its own; its restore owes the guest a TRANSPORT_RESET) or
 * virtio-blk (a 64-sector memfd image, rate-limited: its block is the disk's size and the
 * buckets). Inputs without that byte restore the entropy device, as before it existed. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "legacy/i8042.h"
#include "legacy/serial.h"
#include "virtio/blk.h"
#include "virtio/blk_json.h"
#include "virtio/net.h"
#include "virtio/net_json.h"
#include "virtio/rng.h"
#include "virtio/rng_json.h"
#include "virtio/vsock.h"
#include "virtio/vsock_json.h"
#include "fuzz_dev.h"

/* The UART and the i8042 on a machine of their own, whose loop lives as long as they do
 * (the virtio device's machine gets a fresh loop for each input). */
static struct machine legacy;
static struct serial *uart;
static struct i8042 *kbd;
static int net_peer = -1;
static char dir[64], uds[96], img_path[64];

static void remove_dir(void)
{
	unlink(uds);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	legacy.vm_fd = legacy.kvm_fd = -1;
	if (evloop_init(&legacy.loop))
		abort();
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	uart = serial_create(&legacy, out, -1, NULL);
	kbd = i8042_create(&legacy);
	if (out < 0 || !uart || !kbd)
		abort();
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/ember-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	atexit(remove_dir);
	snprintf(uds, sizeof(uds), "%s/v.sock", dir);
	int img = memfd_create("fuzz-restore-blk", MFD_CLOEXEC);
	if (img < 0 || ftruncate(img, 64 * 512))
		abort();
	snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", img);
	return 0;
}

static struct snap_reader block(struct fin *f)
{
	struct fin b = fin_split(f, fin16(f));
	return snapr_init(b.p, b.n);
}

static bool create(struct fin *f)
{
	char err[ERR_LEN];
	struct snap_reader r = block(f);
	serial_restore(uart, &r, err);
	r = block(f);
	i8042_restore(kbd, &r, err);
	struct snap_reader transport = block(f), own = block(f);
	const struct device_kind *kind = &rng_kind;
	struct virtio_dev **dev = &fuzz_dev()->dev;
	int rc, sv[2];
	switch (fin8(f) % 4) {
	case 1: {
		struct net_config cfg = { .iface_id = "eth0",
					  .host_dev_name = "socketpair",
					  .has_mac = true,
					  .guest_mac = { 6, 0, 0xac, 0x10, 0, 2 },
					  .mtu = 1400 };
		cfg.rx_rate_limiter.bandwidth = (struct token_bucket_config){ 4096, 0, 1000 };
		cfg.tx_rate_limiter.ops = (struct token_bucket_config){ 8, 100, 1000 };
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			abort();
		net_peer = sv[1];
		rc = net_create_on_fd(&fuzz_dev()->m, &cfg, sv[0], dev, err);
		kind = &net_kind;
		break;
	}
	case 2: {
		struct vsock_config cfg = { .guest_cid = 3, .uds_path = uds };
		rc = vsock_create(&fuzz_dev()->m, &cfg, dev, err);
		kind = &vsock_kind;
		break;
	}
	case 3: {
		struct drive_config cfg = { .drive_id = "rootfs",
					    .path_on_host = img_path,
					    .cache_type = DRIVE_CACHE_WRITEBACK,
					    .io_engine = DRIVE_ENGINE_SYNC };
		cfg.rate_limiter.bandwidth = (struct token_bucket_config){ 4096, 0, 1000 };
		cfg.rate_limiter.ops = (struct token_bucket_config){ 8, 100, 1000 };
		rc = blk_create(&fuzz_dev()->m, &cfg, dev, err);
		kind = &blk_kind;
		break;
	}
	default: {
		struct entropy_config cfg = { .configured = true };
		rc = rng_create(&fuzz_dev()->m, &cfg, dev, err);
		break;
	}
	}
	if (rc)
		return false;
	/* A refused block leaves the device as created: the script drives it from there. */
	if (virtio_mmio_restore(*dev, &transport, err) == 0)
		kind->restore(*dev, &own, err);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	if (net_peer >= 0)
		close(net_peer);
	net_peer = -1;
	return 0;
}
