/* Token buckets in integer arithmetic: the refill keeps its sub-token remainder, so a long
 * transfer runs at size/refill_time exactly instead of drifting by rounding. */
#include "core/rate_limiter.h"
#include "core/machine.h"
#include "core/snapbuf.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

void token_bucket_init(struct token_bucket *b, const struct token_bucket_config *cfg,
		       uint64_t now_ns)
{
	memset(b, 0, sizeof(*b));
	if (cfg->size == 0 || cfg->refill_time_ms == 0)
		return; /* Firecracker: either one zero means no limit */
	b->size = cfg->size;
	/* The parser refuses longer periods; saturating keeps a divisor that cannot wrap to 0. */
	b->refill_ns = cfg->refill_time_ms > UINT64_MAX / 1000000
			       ? UINT64_MAX
			       : cfg->refill_time_ms * 1000000ULL;
	b->one_time_burst = cfg->one_time_burst;
	b->budget = (int64_t)cfg->size;
	b->last_ns = now_ns;
}

static void bucket_refill(struct token_bucket *b, uint64_t now_ns)
{
	if (now_ns <= b->last_ns)
		return;
	unsigned __int128 progress =
		(unsigned __int128)(now_ns - b->last_ns) * b->size + b->remainder;
	__int128 budget = (__int128)b->budget + (__int128)(progress / b->refill_ns);
	b->last_ns = now_ns;
	if (budget >= (__int128)b->size) {
		b->budget = (int64_t)b->size;
		b->remainder = 0; /* a full bucket saves no progress towards the next token */
		return;
	}
	b->budget = (int64_t)budget;
	b->remainder = (uint64_t)(progress % b->refill_ns);
}

/* A request larger than the bucket could never fit: it goes when the bucket is full and
 * leaves the budget negative, so the rate over time is still size/refill_time. */
static uint64_t needed(const struct token_bucket *b, uint64_t tokens)
{
	uint64_t from_budget = tokens > b->one_time_burst ? tokens - b->one_time_burst : 0;
	return from_budget < b->size ? from_budget : b->size;
}

uint64_t token_bucket_wait_ns(struct token_bucket *b, uint64_t tokens, uint64_t now_ns)
{
	if (b->size == 0 || tokens == 0)
		return 0;
	bucket_refill(b, now_ns);
	int64_t need = (int64_t)needed(b, tokens);
	if (b->budget >= need)
		return 0;
	/* Time for the missing tokens, minus the refill progress already made, rounded up so
	 * that the timer never fires a moment too early. */
	unsigned __int128 missing = (unsigned __int128)((__int128)need - b->budget) * b->refill_ns;
	missing = missing > b->remainder ? missing - b->remainder : 0;
	unsigned __int128 ns = (missing + b->size - 1) / b->size;
	return ns > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)ns;
}

static void bucket_take(struct token_bucket *b, uint64_t tokens)
{
	if (b->size == 0)
		return;
	uint64_t burst = tokens < b->one_time_burst ? tokens : b->one_time_burst;
	b->one_time_burst -= burst;
	/* In 128 bits and saturated: a take beyond INT64_MAX tokens must not wrap the budget
	 * to more than the bucket holds. */
	__int128 left = (__int128)b->budget - (__int128)(tokens - burst);
	b->budget = left < INT64_MIN ? INT64_MIN : (int64_t)left;
}

bool token_bucket_try_take(struct token_bucket *b, uint64_t tokens, uint64_t now_ns)
{
	if (token_bucket_wait_ns(b, tokens, now_ns))
		return false;
	bucket_take(b, tokens);
	return true;
}

bool rate_limiter_active(const struct rate_limiter *rl)
{
	return rl->bandwidth.size || rl->ops.size;
}

int rate_limiter_update(struct rate_limiter *rl, const struct rate_limiter_config *cfg,
			uint64_t now_ns)
{
	token_bucket_init(&rl->bandwidth, &cfg->bandwidth, now_ns);
	token_bucket_init(&rl->ops, &cfg->ops, now_ns);
	if (rate_limiter_active(rl) && rl->timer_fd < 0) {
		rl->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (rl->timer_fd < 0)
			return -errno;
	}
	/* New limits apply at once; a pending timer firing later only causes a retry. */
	rl->blocked = false;
	return 0;
}

int rate_limiter_apply(struct rate_limiter *rl, const struct rate_limiter_config *cfg,
		       struct evloop *loop, evloop_fn fn, void *opaque)
{
	int had_timer = rl->timer_fd;
	int rc = rate_limiter_update(rl, cfg, monotonic_ns());
	if (!rc && had_timer < 0 && rl->timer_fd >= 0)
		rc = evloop_add(loop, rl->timer_fd, EPOLLIN, fn, opaque);
	return rc;
}

void rate_limiter_destroy(struct rate_limiter *rl, struct evloop *loop)
{
	if (rl->timer_fd >= 0 && loop)
		evloop_remove(loop, rl->timer_fd);
	if (rl->timer_fd >= 0)
		close(rl->timer_fd);
	rl->timer_fd = -1;
}

bool rate_limiter_consume(struct rate_limiter *rl, uint64_t ops, uint64_t bytes, uint64_t now_ns)
{
	if (!rate_limiter_active(rl))
		return true;
	if (rl->blocked)
		return false;
	uint64_t wait_bw = token_bucket_wait_ns(&rl->bandwidth, bytes, now_ns);
	uint64_t wait_ops = token_bucket_wait_ns(&rl->ops, ops, now_ns);
	uint64_t wait = wait_bw > wait_ops ? wait_bw : wait_ops;
	if (wait == 0) {
		bucket_take(&rl->bandwidth, bytes);
		bucket_take(&rl->ops, ops);
		return true;
	}
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(wait / 1000000000ULL),
			      .tv_nsec = (long)(wait % 1000000000ULL) },
	};
	/* Without a timer nothing would ever retry: grant rather than stall the device. */
	if (timerfd_settime(rl->timer_fd, 0, &its, NULL) < 0) {
		bucket_take(&rl->bandwidth, bytes);
		bucket_take(&rl->ops, ops);
		return true;
	}
	rl->blocked = true;
	return false;
}

void rate_limiter_timer_event(struct rate_limiter *rl)
{
	uint64_t expirations;
	ssize_t r = read(rl->timer_fd, &expirations, sizeof(expirations));
	(void)r; /* EAGAIN: a stale wake-up after an update; retrying is harmless */
	rl->blocked = false;
}

/* How far below zero a restored budget may be: one request larger than the bucket leaves
 * it negative by at most that request (a 64 KiB frame, a 1 MiB block request). */
#define RESTORED_DEBT_MAX (1LL << 40)

static void bucket_save(const struct token_bucket *b, uint64_t now_ns, struct snap_writer *w)
{
	snapw_u64(w, b->size);
	snapw_u64(w, b->refill_ns);
	snapw_u64(w, b->one_time_burst);
	snapw_u64(w, (uint64_t)b->budget);
	snapw_u64(w, b->remainder);
	snapw_u64(w, now_ns > b->last_ns ? now_ns - b->last_ns : 0); /* refill not yet counted */
}

void rate_limiter_save(const struct rate_limiter *rl, uint64_t now_ns, struct snap_writer *w)
{
	bucket_save(&rl->bandwidth, now_ns, w);
	bucket_save(&rl->ops, now_ns, w);
}

static int bucket_restore(struct token_bucket *b, struct snap_reader *r, uint64_t now_ns)
{
	uint64_t size = snapr_u64(r), refill_ns = snapr_u64(r), burst = snapr_u64(r);
	int64_t budget = (int64_t)snapr_u64(r);
	uint64_t remainder = snapr_u64(r), elapsed = snapr_u64(r);
	if (r->bad || size != b->size || refill_ns != b->refill_ns)
		return -EINVAL;
	if (size == 0)
		return burst || budget || remainder ? -EINVAL : 0;
	if (burst > b->one_time_burst || budget > (int64_t)size || budget < -RESTORED_DEBT_MAX ||
	    remainder >= refill_ns)
		return -EINVAL;
	b->one_time_burst = burst;
	b->budget = budget;
	b->remainder = remainder;
	/* More than a whole refill period fills the bucket anyway. */
	if (elapsed > refill_ns)
		elapsed = refill_ns;
	b->last_ns = now_ns > elapsed ? now_ns - elapsed : 0;
	return 0;
}

int rate_limiter_restore(struct rate_limiter *rl, struct snap_reader *r, uint64_t now_ns)
{
	struct rate_limiter next = *rl;
	if (bucket_restore(&next.bandwidth, r, now_ns) || bucket_restore(&next.ops, r, now_ns))
		return -EINVAL;
	next.blocked = false;
	*rl = next;
	return 0;
}
