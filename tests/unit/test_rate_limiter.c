/* The token bucket, on a simulated clock: refill rate, one-time burst, requests larger than
 * the bucket, both buckets together, the long-run rate, and the timer a refusal arms. */
#include "unit_util.h"

#include <sys/timerfd.h>

#include "core/rate_limiter.h"
#include "core/snapbuf.h"

#define MS  1000000ULL
#define SEC 1000000000ULL
#define T0  (1000 * SEC) /* an arbitrary "now" */

static struct rate_limiter *rl(void)
{
	static struct rate_limiter r;
	return &r;
}

static int rl_teardown(void **state)
{
	rate_limiter_destroy(rl(), NULL);
	return unit_teardown(state);
}

#define RL_TEST(fn) cmocka_unit_test_teardown(fn, rl_teardown)

static void init(uint64_t bw_size, uint64_t bw_burst, uint64_t bw_ms, uint64_t ops_size,
		 uint64_t ops_ms)
{
	struct rate_limiter_config cfg = {
		.bandwidth = { bw_size, bw_burst, bw_ms },
		.ops = { ops_size, 0, ops_ms },
	};
	*rl() = (struct rate_limiter){ .timer_fd = -1 };
	assert_int_equal(rate_limiter_update(rl(), &cfg, T0), 0);
}

static void no_limits_grant_everything(void **state)
{
	(void)state;
	init(0, 0, 0, 1000, 0); /* size 0 or refill_time 0: that bucket does not limit */
	assert_false(rate_limiter_active(rl()));
	assert_int_equal(rl()->timer_fd, -1);
	for (int i = 0; i < 1000; i++)
		assert_true(rate_limiter_consume(rl(), 1, 1 << 30, T0));
}

/* A refill period whose nanoseconds do not fit 64 bits (2^58 ms wrapped to 0 and divided by
 * zero) saturates: the bucket still works, it just refills very slowly. */
static void huge_refill_time_does_not_wrap(void **state)
{
	(void)state;
	init(0, 0, 0, 1, 1ULL << 58);
	assert_true(rate_limiter_consume(rl(), 1, 0, T0));
	assert_false(rate_limiter_consume(rl(), 1, 0, T0 + 1000 * MS));
	assert_true(token_bucket_wait_ns(&rl()->ops, 1, T0 + 1000 * MS) > 1000 * MS);
}

static void bucket_starts_full_and_refills(void **state)
{
	(void)state;
	struct token_bucket *b = &rl()->bandwidth;
	init(1000, 0, 1000, 0, 0); /* 1000 bytes per second */
	assert_int_equal(token_bucket_wait_ns(b, 1000, T0), 0);
	assert_true(rate_limiter_consume(rl(), 1, 1000, T0));
	rate_limiter_timer_event(rl());
	/* Empty: one byte takes 1 ms, 500 bytes take 500 ms. */
	assert_int_equal(token_bucket_wait_ns(b, 1, T0), 1 * MS);
	assert_int_equal(token_bucket_wait_ns(b, 500, T0), 500 * MS);
	/* After 250 ms, 250 bytes are back. */
	assert_int_equal(token_bucket_wait_ns(b, 250, T0 + 250 * MS), 0);
	assert_int_equal(token_bucket_wait_ns(b, 251, T0 + 250 * MS), 1 * MS);
	/* It never holds more than size. */
	assert_int_equal(token_bucket_wait_ns(b, 1000, T0 + 100 * SEC), 0);
	assert_int_equal(b->budget, 1000);
}

static void sub_token_progress_is_kept(void **state)
{
	(void)state;
	struct token_bucket *b = &rl()->bandwidth;
	init(3, 0, 1000, 0, 0); /* one token every 333.3 ms */
	assert_true(rate_limiter_consume(rl(), 0, 3, T0));
	/* Ten refills 100 ms apart: the 1/3-token remainders must add up, not vanish. */
	for (int i = 1; i <= 10; i++)
		token_bucket_wait_ns(b, 1, T0 + (uint64_t)i * 100 * MS);
	assert_int_equal(b->budget, 3); /* 1000 ms: exactly 3 tokens */
}

static void one_time_burst_goes_first(void **state)
{
	(void)state;
	init(1000, 5000, 1000, 0, 0);
	assert_true(rate_limiter_consume(rl(), 0, 4000, T0)); /* from the burst */
	assert_int_equal(rl()->bandwidth.budget, 1000);
	assert_true(rate_limiter_consume(rl(), 0, 1500, T0)); /* 1000 burst + 500 budget */
	assert_int_equal(rl()->bandwidth.one_time_burst, 0);
	assert_int_equal(rl()->bandwidth.budget, 500);
	assert_false(rate_limiter_consume(rl(), 0, 501, T0));
}

static void larger_than_the_bucket(void **state)
{
	(void)state;
	struct token_bucket *b = &rl()->bandwidth;
	init(1000, 0, 1000, 0, 0);
	/* 3000 bytes never fit in a 1000-byte bucket: they go when it is full... */
	assert_true(rate_limiter_consume(rl(), 0, 3000, T0));
	assert_int_equal(b->budget, -2000);
	/* ...and the debt is paid before anything else goes: 2 s to zero, 1 ms more. */
	assert_int_equal(token_bucket_wait_ns(b, 1, T0), 2001 * MS);
	/* Another oversized request waits for a full bucket: 3 s. */
	assert_int_equal(token_bucket_wait_ns(b, 5000, T0), 3 * SEC);
}

static void both_buckets_must_agree(void **state)
{
	(void)state;
	init(1 << 20, 0, 1000, 10, 1000); /* 1 MiB/s and 10 requests/s */
	for (int i = 0; i < 10; i++)
		assert_true(rate_limiter_consume(rl(), 1, 512, T0));
	/* Plenty of bytes left, no request left: refused, and nothing was taken. */
	int64_t bytes_before = rl()->bandwidth.budget;
	assert_false(rate_limiter_consume(rl(), 1, 512, T0));
	assert_int_equal(rl()->bandwidth.budget, bytes_before);
	assert_true(rl()->blocked);
	/* Blocked: nothing is granted until the timer fires, even when tokens are back. */
	assert_false(rate_limiter_consume(rl(), 1, 512, T0 + 10 * SEC));
	rate_limiter_timer_event(rl());
	assert_true(rate_limiter_consume(rl(), 1, 512, T0 + 10 * SEC));
}

static void refusal_arms_the_timer(void **state)
{
	(void)state;
	init(1000, 0, 100, 0, 0); /* 10000 bytes per second */
	assert_true(rl()->timer_fd >= 0);
	assert_true(rate_limiter_consume(rl(), 1, 1000, T0));
	assert_false(rate_limiter_consume(rl(), 1, 500, T0));
	struct itimerspec its;
	assert_int_equal(timerfd_gettime(rl()->timer_fd, &its), 0);
	uint64_t ns = (uint64_t)its.it_value.tv_sec * SEC + (uint64_t)its.it_value.tv_nsec;
	/* 500 bytes at 10000 bytes/s: 50 ms, minus whatever the clock did meanwhile. */
	assert_true(ns > 40 * MS && ns <= 50 * MS);
	assert_int_equal(its.it_interval.tv_sec, 0);
	assert_int_equal(its.it_interval.tv_nsec, 0);
}

static void long_run_rate_is_exact(void **state)
{
	(void)state;
	/* 2 MiB/s as a 200 KiB bucket refilled every 100 ms; 64 KiB requests issued as soon
	 * as the limiter allows, over 10 simulated seconds. */
	init(204800, 0, 100, 0, 0);
	uint64_t now = T0, moved = 0, end = T0 + 10 * SEC;
	while (now < end) {
		if (rate_limiter_consume(rl(), 1, 65536, now)) {
			moved += 65536;
			continue;
		}
		/* The timer would fire after this long. */
		now += token_bucket_wait_ns(&rl()->bandwidth, 65536, now);
		rate_limiter_timer_event(rl());
	}
	uint64_t expect = 2048000ULL * 10 + 204800; /* the rate, plus the bucket's first fill */
	if (moved < expect - 65536 || moved > expect + 65536)
		fail_msg("moved %llu bytes in 10 s, expected %llu", (unsigned long long)moved,
			 (unsigned long long)expect);
}

static void update_replaces_limits(void **state)
{
	(void)state;
	init(1000, 0, 1000, 0, 0);
	assert_true(rate_limiter_consume(rl(), 0, 1000, T0));
	assert_false(rate_limiter_consume(rl(), 0, 1000, T0));
	struct rate_limiter_config none = { 0 };
	assert_int_equal(rate_limiter_update(rl(), &none, T0), 0);
	assert_false(rl()->blocked);
	assert_true(rate_limiter_consume(rl(), 0, 1 << 30, T0));
	struct rate_limiter_config some = { .ops = { 2, 0, 1000 } };
	assert_int_equal(rate_limiter_update(rl(), &some, T0), 0);
	assert_true(rate_limiter_consume(rl(), 2, 0, T0));
	assert_false(rate_limiter_consume(rl(), 1, 0, T0));
}

/* A lone bucket (the serial console's): what it refuses is gone, nothing waits for a timer;
 * the burst goes first, then the budget, then the refill. */
static void lone_bucket_takes_or_refuses(void **state)
{
	(void)state;
	struct token_bucket b;
	token_bucket_init(&b, &(struct token_bucket_config){ 10, 5, 1000 }, T0);
	for (int i = 0; i < 15; i++)
		assert_true(token_bucket_try_take(&b, 1, T0));
	assert_false(token_bucket_try_take(&b, 1, T0));
	assert_false(token_bucket_try_take(&b, 1, T0 + 99 * MS)); /* 0.99 of a token back */
	assert_true(token_bucket_try_take(&b, 1, T0 + 100 * MS));
	assert_false(token_bucket_try_take(&b, 1, T0 + 100 * MS));
	token_bucket_init(&b, &(struct token_bucket_config){ 0, 0, 1000 }, T0); /* no limit */
	for (int i = 0; i < 1000; i++)
		assert_true(token_bucket_try_take(&b, 1, T0));
}

/* A snapshot keeps the levels: restored in another process (another clock), the bucket
 * goes on from its budget, burst and refill progress, not from full; hostile levels and
 * another configuration are refused, leaving the limiter as it was. */
static void save_restore_keeps_levels(void **state)
{
	(void)state;
	init(1000, 5000, 1000, 10, 1000);
	assert_true(rate_limiter_consume(rl(), 3, 5400, T0));	  /* burst gone, budget 600 */
	token_bucket_wait_ns(&rl()->bandwidth, 1, T0 + 100 * MS); /* 700, 100 ms counted */
	struct snap_writer w = { 0 };
	rate_limiter_save(rl(), T0 + 150 * MS, &w); /* 50 ms not yet counted */
	assert_false(w.oom);

	/* The same limits in a process whose clock reads 5 s. */
	struct rate_limiter_config cfg = { .bandwidth = { 1000, 5000, 1000 },
					   .ops = { 10, 0, 1000 } };
	struct rate_limiter r = { .timer_fd = -1 };
	assert_int_equal(rate_limiter_update(&r, &cfg, 5 * SEC), 0);
	struct snap_reader rd = snapr_init(w.buf, w.len);
	assert_int_equal(rate_limiter_restore(&r, &rd, 5 * SEC), 0);
	assert_true(snapr_done(&rd));
	assert_int_equal(r.bandwidth.one_time_burst, 0);
	assert_int_equal(r.bandwidth.budget, 700);
	assert_int_equal(r.ops.budget, 7);
	/* The 50 ms since the last refill count: 750 bytes now, not 1000. */
	assert_int_equal(token_bucket_wait_ns(&r.bandwidth, 750, 5 * SEC), 0);
	assert_int_equal(token_bucket_wait_ns(&r.bandwidth, 751, 5 * SEC), 1 * MS);

	/* Another bucket size (the configuration changed): refused, r untouched. */
	struct rate_limiter other = { .timer_fd = -1 };
	cfg.bandwidth.size = 2000;
	assert_int_equal(rate_limiter_update(&other, &cfg, 5 * SEC), 0);
	rd = snapr_init(w.buf, w.len);
	assert_int_equal(rate_limiter_restore(&other, &rd, 5 * SEC), -EINVAL);
	assert_int_equal(other.bandwidth.budget, 2000);
	rate_limiter_destroy(&other, NULL);

	/* A budget above the bucket, and a truncated state: refused. */
	cfg.bandwidth.size = 1000;
	struct rate_limiter fresh = { .timer_fd = -1 };
	assert_int_equal(rate_limiter_update(&fresh, &cfg, 5 * SEC), 0);
	uint64_t too_much = 1001;
	memcpy(w.buf + 24, &too_much, 8); /* bandwidth: size, refill, burst, then budget */
	rd = snapr_init(w.buf, w.len);
	assert_int_equal(rate_limiter_restore(&fresh, &rd, 5 * SEC), -EINVAL);
	assert_int_equal(fresh.bandwidth.budget, 1000);
	rd = snapr_init(w.buf, w.len - 1);
	assert_int_equal(rate_limiter_restore(&fresh, &rd, 5 * SEC), -EINVAL);
	rate_limiter_destroy(&fresh, NULL);
	rate_limiter_destroy(&r, NULL);
	snapw_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		RL_TEST(no_limits_grant_everything),   RL_TEST(bucket_starts_full_and_refills),
		RL_TEST(sub_token_progress_is_kept),   RL_TEST(one_time_burst_goes_first),
		RL_TEST(larger_than_the_bucket),       RL_TEST(both_buckets_must_agree),
		RL_TEST(refusal_arms_the_timer),       RL_TEST(long_run_rate_is_exact),
		RL_TEST(update_replaces_limits),       RL_TEST(huge_refill_time_does_not_wrap),
		RL_TEST(lone_bucket_takes_or_refuses), RL_TEST(save_restore_keeps_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
