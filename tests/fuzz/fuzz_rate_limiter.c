/* The rate limiter's arithmetic (src/core/rate_limiter.c): buckets of any size, burst and
 * refill time, and a run of requests at times the input picks. Checked: a bucket never
 * holds more than its size, and a request told to wait N ns gets its tokens N ns later
 * (the timer must not fire early, or the device would spin). */
#include <stdio.h>

#include "core/rate_limiter.h"
#include "fuzz.h"

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_rate_limiter: %s:%d: %s\n", __FILE__, __LINE__,      \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static struct rate_limiter rl = { .timer_fd = -1 };

static void bucket_config(struct fin *f, struct token_bucket_config *b)
{
	/* Small values are the interesting ones: a byte picks how wide each field is. */
	uint8_t widths = fin8(f);
	b->size = fin_uint(f, 1U << (widths & 3));
	b->one_time_burst = fin_uint(f, 1U << ((widths >> 2) & 3));
	b->refill_time_ms = fin_uint(f, 1U << ((widths >> 4) & 3));
	/* Only what cfg_get_rate_limiter lets through: JSON integers (at most INT64_MAX) and a
	 * refill time whose nanoseconds fit in 64 bits. */
	b->size &= INT64_MAX;
	b->one_time_burst &= INT64_MAX;
	b->refill_time_ms %= UINT64_MAX / 1000000 + 1;
}

static void check_bucket(const struct token_bucket *b)
{
	check(b->size == 0 || b->budget <= (int64_t)b->size);
}

/* At now + wait, the tokens a wait was computed for are there. */
static void check_wait(const struct token_bucket *b, uint64_t tokens, uint64_t now, uint64_t wait)
{
	if (wait == 0 || wait >= UINT64_MAX / 2 || now > UINT64_MAX - wait)
		return;
	struct token_bucket later = *b;
	check(token_bucket_wait_ns(&later, tokens, now + wait) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	struct rate_limiter_config cfg;
	bucket_config(&f, &cfg.bandwidth);
	bucket_config(&f, &cfg.ops);
	uint64_t now = fin32(&f);
	if (rate_limiter_update(&rl, &cfg, now))
		abort();
	while (fin_more(&f)) {
		uint8_t op = fin8(&f);
		uint64_t dt = fin_uint(&f, 1U << (op & 3));
		now = now > UINT64_MAX - dt ? UINT64_MAX : now + dt;
		uint64_t bytes = fin_uint(&f, 1U << ((op >> 2) & 3)), ops = (op >> 4) & 3;
		if (op & 0x40) {
			uint64_t bw = token_bucket_wait_ns(&rl.bandwidth, bytes, now);
			check_wait(&rl.bandwidth, bytes, now, bw);
			uint64_t ow = token_bucket_wait_ns(&rl.ops, ops, now);
			check_wait(&rl.ops, ops, now, ow);
		} else if (!rate_limiter_consume(&rl, ops, bytes, now)) {
			/* The timer "fires": the next consume is the device's retry. */
			rate_limiter_timer_event(&rl);
		}
		if (op & 0x80) /* a PATCH with new limits */
			rate_limiter_update(&rl, &cfg, now);
		check_bucket(&rl.bandwidth);
		check_bucket(&rl.ops);
	}
	return 0;
}
