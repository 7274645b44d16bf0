/* Token-bucket rate limiting as Firecracker defines it (bandwidth in bytes and ops, each with
 * size, one_time_burst and refill_time), for any device: virtio-block limits its requests,
 * virtio-net limits rx and tx with one limiter each. A device asks before it starts each
 * piece of work; when the answer is no, the limiter arms its timerfd for the moment enough
 * tokens will be back, and the device retries from that fd's handler in the event loop. */
#ifndef EMBER_RATE_LIMITER_H
#define EMBER_RATE_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

/* Firecracker's TokenBucket: size tokens refill every refill_time_ms, one_time_burst extra
 * tokens are spent first and never come back. size or refill_time_ms 0: no limit. */
struct token_bucket_config {
	uint64_t size;
	uint64_t one_time_burst;
	uint64_t refill_time_ms;
};

/* Firecracker's RateLimiter, of drives and network interfaces (rx and tx each). */
struct rate_limiter_config {
	struct token_bucket_config bandwidth; /* tokens are bytes */
	struct token_bucket_config ops;	      /* tokens are requests */
};

struct token_bucket {
	uint64_t size;	    /* 0: this bucket does not limit */
	uint64_t refill_ns; /* time to refill size tokens from empty */
	uint64_t one_time_burst;
	int64_t budget;	    /* negative after a request larger than the whole bucket */
	uint64_t last_ns;   /* when budget was last refilled */
	uint64_t remainder; /* refill progress below one token, in token*ns/refill_ns units */
};

struct rate_limiter {
	struct token_bucket bandwidth;
	struct token_bucket ops;
	int timer_fd; /* -1 when neither bucket limits */
	bool blocked; /* timer armed: nothing is granted until it fires */
};

#include "core/evloop.h"

/* New limits (rl zeroed, timer_fd -1 at first), buckets full; -errno if the timerfd cannot
 * be created. now_ns is CLOCK_MONOTONIC. */
int rate_limiter_update(struct rate_limiter *rl, const struct rate_limiter_config *cfg,
			uint64_t now_ns);
/* A device's create and PATCH: rate_limiter_update now, and a timer it had to create is
 * watched in loop, where fn retries the work the limiter held back. */
int rate_limiter_apply(struct rate_limiter *rl, const struct rate_limiter_config *cfg,
		       struct evloop *loop, evloop_fn fn, void *opaque);
/* Closes the timer, first taking it out of loop (NULL: it was never in one). */
void rate_limiter_destroy(struct rate_limiter *rl, struct evloop *loop);
bool rate_limiter_active(const struct rate_limiter *rl);
/* Takes ops operations and bytes bytes from the buckets and returns true, or takes nothing,
 * arms the timer and returns false. */
bool rate_limiter_consume(struct rate_limiter *rl, uint64_t ops, uint64_t bytes, uint64_t now_ns);
/* The timerfd fired (call from its event handler): grants resume. */
void rate_limiter_timer_event(struct rate_limiter *rl);
/* Snapshots: the buckets' levels, so that a restored device goes on from the budget it had
 * rather than from full ones (Firecracker saves its token buckets too); time spent in the
 * snapshot file does not refill them. restore takes them onto rl, made from the same
 * configuration: the saved bytes are untrusted, and another bucket size, refill time, or
 * a level beyond what that configuration allows is -EINVAL. A blocked limiter comes back
 * unblocked: the device's next try arms its timer again. */
struct snap_writer;
struct snap_reader;
void rate_limiter_save(const struct rate_limiter *rl, uint64_t now_ns, struct snap_writer *w);
int rate_limiter_restore(struct rate_limiter *rl, struct snap_reader *r, uint64_t now_ns);
/* One bucket alone, for a device that drops what the bucket refuses instead of waiting (the
 * serial console, as Firecracker's): full at first; size or refill_time_ms 0 never limits. */
void token_bucket_init(struct token_bucket *b, const struct token_bucket_config *cfg,
		       uint64_t now_ns);
/* Takes tokens and returns true, or takes nothing and returns false. */
bool token_bucket_try_take(struct token_bucket *b, uint64_t tokens, uint64_t now_ns);
/* How long until `tokens` can be taken from b; 0 if now. Exposed for the unit tests. */
uint64_t token_bucket_wait_ns(struct token_bucket *b, uint64_t tokens, uint64_t now_ns);

#endif
