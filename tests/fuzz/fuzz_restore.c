/* The device state a snapshot load restores, which vmm_snapshot_check (fuzz_snapshot) leaves
 * to the devices: the UART's and the i8042's sections, and a virtio device's transport block
 * (virtio/mmio_snap.c: status, features, queue addresses and positions) with its kind's own
 * block, on an entropy device over guest memory from the input. A restored running device
 * activates its queues and is kicked, so a driver script (fuzz_dev.h) then goes on from the
 * state the input claimed. The script starts with four blocks, each a u16 length and its
 * bytes: serial, i8042, transport, the device's own. */
#include <fcntl.h>

#include "legacy/i8042.h"
#include "legacy/serial.h"
#include "virtio/rng.h"
#include "virtio/rng_json.h"
#include "fuzz_dev.h"

/* The UART and the i8042 on a machine of their own, whose loop lives as long as they do
 * (the virtio device's machine gets a fresh loop for each input). */
static struct machine legacy;
static struct serial *uart;
static struct i8042 *kbd;

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
	struct entropy_config cfg = { .configured = true };
	if (rng_create(&fuzz_dev()->m, &cfg, &fuzz_dev()->dev, err))
		return false;
	struct snap_reader transport = block(f), own = block(f);
	/* A refused block leaves the device as created: the script drives it from there. */
	if (virtio_mmio_restore(fuzz_dev()->dev, &transport, err) == 0)
		rng_kind.restore(fuzz_dev()->dev, &own, err);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	return 0;
}
