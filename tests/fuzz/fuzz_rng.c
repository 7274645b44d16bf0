/* virtio-rng's request path (virtio/rng.c): a driver script (fuzz_dev.h) against an entropy
 * device, getrandom() filling whatever chains the guest memory holds. The script's first
 * byte picks the rate limiter: none, a small byte bucket or a small request bucket with a long
 * refill, so that throttled requests wait in the ring within the script. */
#include "virtio/rng.h"
#include "fuzz_dev.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	return 0;
}

static bool create(struct fin *f)
{
	struct entropy_config cfg = { .configured = true };
	uint8_t limiter = fin8(f);
	if (limiter & 1)
		cfg.rate_limiter.bandwidth = (struct token_bucket_config){ fin16(f), 0, 1000 };
	if (limiter & 2)
		cfg.rate_limiter.ops = (struct token_bucket_config){ fin8(f), 0, 1000 };
	char err[ERR_LEN];
	return rng_create(&fuzz_dev()->m, &cfg, &fuzz_dev()->dev, err) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	return 0;
}
