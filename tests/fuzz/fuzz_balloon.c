/* virtio-balloon's request path (virtio/balloon.c, balloon_hint.c): a driver script
 * (fuzz_dev.h) against a balloon device whose inflate requests, statistics, free page reports
 * and hinting commands and hints point wherever the guest memory image says. The script's
 * first byte picks the features the device offers (bit 0 statistics, bit 1 deflate on OOM,
 * bit 2 free page reporting, bit 3 free page hinting). HOST is the API's side: 0 a new target
 * (within guest memory, as the API checks), 1 a new statistics interval (which returns a held
 * statistics buffer at once), 2 the state as GET /balloon/statistics shows it, 3 a snapshot
 * of the device's state restored onto it (which must load), 4 a state block from the input
 * restored onto it (balloon_restore's checks), 5 a hinting run started (the next byte's bit 0:
 * acknowledge_on_stop), 6 the hinting run stopped. */
#include "core/log.h"
#include "virtio/balloon.h"
#include "virtio/balloon_json.h"
#include "fuzz_dev.h"

static void host_op(struct fuzz_dev *s, struct fin *f)
{
	struct virtio_dev *dev = s->dev;
	switch (fin8(f) % 7) {
	case 0:
		/* The API checks a target against guest memory before it gets here. */
		balloon_set_target(dev, fin16(f) % (FUZZ_MEM / 4096 + 1));
		break;
	case 1:
		balloon_set_stats_interval(dev, fin8(f) % 4);
		break;
	case 2: {
		struct balloon_state st;
		balloon_get_state(dev, &st);
		json_decref(balloon_stats_json(&st));
		break;
	}
	case 3: {
		struct snap_writer w = { 0 };
		char err[ERR_LEN];
		balloon_save(dev, &w);
		struct snap_reader r = snapr_init(w.buf, w.len);
		if (!w.oom && balloon_restore(dev, &r, err))
			abort(); /* its own state must always load back */
		snapw_free(&w);
		break;
	}
	case 4: {
		/* A hostile state block (u8 length, bytes): refused, or taken whole. */
		size_t n;
		const uint8_t *p = fin_bytes(f, fin8(f), &n);
		struct snap_reader r = snapr_init(p, n);
		char err[ERR_LEN];
		balloon_restore(dev, &r, err);
		break;
	}
	case 5:
		balloon_hint_start(dev, fin8(f) & 1);
		break;
	case 6:
		balloon_hint_stop(dev);
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	fuzz_dev()->host_op = host_op;
	return 0;
}

static bool create(struct fin *f)
{
	uint8_t features = fin8(f);
	struct balloon_config cfg = {
		.configured = true,
		.stats_polling_interval_s = features & 1 ? 1 : 0,
		.deflate_on_oom = features & 2,
		.free_page_reporting = features & 4,
		.free_page_hinting = features & 8,
	};
	char err[ERR_LEN];
	if (balloon_create(&fuzz_dev()->m, &cfg, &fuzz_dev()->dev, err))
		return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	return 0;
}
