/* virtio-rng: each chain the driver offers is a request for random bytes, written by
 * getrandom() straight into the guest's buffers. Requests cost the rate limiter one op and
 * the bytes they get; a refused one stays in the ring until the limiter's timer fires. */
#include "virtio/rng.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/log.h"
#include "core/metrics.h"

struct rng_dev {
	struct virtio_dev vdev; /* first: the transport hands us &vdev */
	struct rate_limiter rl;
	struct virtq_chain chain;
};

/* The "entropy" metrics group, with Firecracker's names. */
enum rng_metric {
	RNG_ACTIVATE_FAILS, /* never: activation has nothing that can fail */
	RNG_EVENT_FAILS,    /* chains that broke the device */
	RNG_EVENT_COUNT,    /* requests served */
	RNG_BYTES,
	RNG_HOST_FAILS, /* getrandom() refused */
	RNG_THROTTLED,
	RNG_LIMITER_EVENTS, /* the timer fired, or a notification came while throttled */
	RNG_METRIC_COUNT
};
static struct metric rng_metrics[RNG_METRIC_COUNT] = {
	[RNG_ACTIVATE_FAILS] = { .name = "activate_fails" },
	[RNG_EVENT_FAILS] = { .name = "entropy_event_fails" },
	[RNG_EVENT_COUNT] = { .name = "entropy_event_count" },
	[RNG_BYTES] = { .name = "entropy_bytes" },
	[RNG_HOST_FAILS] = { .name = "host_rng_fails" },
	[RNG_THROTTLED] = { .name = "entropy_rate_limiter_throttled" },
	[RNG_LIMITER_EVENTS] = { .name = "rate_limiter_event_count" },
};
static struct metric_group rng_group = { "entropy", rng_metrics, RNG_METRIC_COUNT, NULL };

static struct rng_dev *to_rng(struct virtio_dev *dev)
{
	return (struct rng_dev *)dev;
}

/* Writes want random bytes into the front of iov; returns how many it wrote (fewer only
 * when the host refused). GRND_NONBLOCK: a host whose pool is not ready yet fails the
 * request rather than stalling the VMM thread. */
static uint64_t fill(struct rng_dev *r, const struct iovec *iov, unsigned nr, uint64_t want)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < nr && done < want; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len < want - done ? iov[i].iov_len : want - done;
		for (size_t off = 0; off < len;) {
			ssize_t n = getrandom(p + off, len - off, GRND_NONBLOCK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				metric_inc(&rng_metrics[RNG_HOST_FAILS]);
				virtio_dev_warn(&r->vdev, "getrandom: %s",
						n < 0 ? strerror(errno) : "no bytes");
				return done + off;
			}
			off += (size_t)n;
		}
		done += len;
	}
	return done;
}

/* Serves requests until the ring is empty, the limiter says wait, or the guest broke the
 * queue. A queue's worth a round: a guest that keeps refilling does not keep the VMM
 * thread; its own kick brings the rest after the other events. */
static void process_queue(struct rng_dev *r)
{
	struct virtq *q = &r->vdev.queues[0];
	struct virtq_chain *c = &r->chain;
	bool pushed = false;
	for (unsigned budget = RNG_QUEUE_SIZE; !r->rl.blocked; budget--) {
		if (budget == 0) {
			virtio_queue_kick(&r->vdev, 0);
			break;
		}
		int rc = virtio_queue_pop(&r->vdev, 0, c);
		if (rc < 0)
			metric_inc(&rng_metrics[RNG_EVENT_FAILS]);
		if (rc <= 0)
			break;
		/* The spec forbids driver-readable buffers here: a driver that offers one
		 * is broken, as one that offers a readable receive buffer to vsock. */
		if (c->nr_rd) {
			metric_inc(&rng_metrics[RNG_EVENT_FAILS]);
			virtio_needs_reset(&r->vdev,
					   "device-readable buffer in an entropy request");
			break;
		}
		uint64_t want = c->wr_len < RNG_REQ_MAX ? c->wr_len : RNG_REQ_MAX;
		if (!rate_limiter_consume(&r->rl, 1, want, monotonic_ns())) {
			metric_inc(&rng_metrics[RNG_THROTTLED]);
			virtq_unpop(q);
			break;
		}
		uint64_t n = fill(r, c->iov, c->nr_wr, want);
		metric_inc(&rng_metrics[RNG_EVENT_COUNT]);
		metric_add(&rng_metrics[RNG_BYTES], n);
		virtq_push(q, c->head, (uint32_t)n);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(&r->vdev, 0);
}

static void rng_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct rng_dev *r = to_rng(dev);
	(void)q;
	if (r->rl.blocked)
		metric_inc(&rng_metrics[RNG_LIMITER_EVENTS]); /* the timer takes it from here */
	else
		process_queue(r);
}

static void on_rate_timer(void *opaque, uint32_t events)
{
	struct rng_dev *r = opaque;
	(void)events;
	pthread_mutex_lock(&r->vdev.lock);
	metric_inc(&rng_metrics[RNG_LIMITER_EVENTS]);
	rate_limiter_timer_event(&r->rl);
	if (virtio_dev_running(&r->vdev) && r->vdev.queues[0].active)
		process_queue(r);
	pthread_mutex_unlock(&r->vdev.lock);
}

static void rng_destroy(struct virtio_dev *dev)
{
	struct rng_dev *r = to_rng(dev);
	rate_limiter_destroy(&r->rl, &dev->machine->loop);
	free(r);
}

/* Requests complete before process_queue returns: a reset has nothing in flight to forget. */
static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.queue_notify = rng_queue_notify,
	.destroy = rng_destroy,
};

int rng_create(struct machine *machine, const struct entropy_config *cfg, struct virtio_dev **out,
	       char *err)
{
	static bool registered; /* one group, however many VMs a test process builds */
	struct rng_dev *r = calloc(1, sizeof(*r));
	if (!r)
		return errf(err, -ENOMEM, "entropy: out of memory");
	r->rl.timer_fd = -1;
	r->vdev.machine = machine; /* rng_destroy needs the event loop before the transport */
	int rc = rate_limiter_apply(&r->rl, &cfg->rate_limiter, &machine->loop, on_rate_timer, r);
	if (rc) {
		snprintf(err, ERR_LEN, "entropy: rate_limiter: %s", strerror(-rc));
		rng_destroy(&r->vdev);
		return rc;
	}
	uint64_t features =
		(1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	rc = virtio_mmio_init(&r->vdev, machine, &rng_ops, "entropy", 1, RNG_QUEUE_SIZE, features);
	if (rc) {
		snprintf(err, ERR_LEN, "entropy: cannot create the virtio-mmio device: %s",
			 rc == -ENOSPC ? "no free virtio slot (at most 19 devices)"
				       : strerror(-rc));
		rng_destroy(&r->vdev);
		return rc;
	}
	if (!registered) {
		metrics_register(&rng_group);
		registered = true;
	}
	*out = &r->vdev;
	log_debug("entropy: virtio-rng%s", rate_limiter_active(&r->rl) ? ", rate-limited" : "");
	return 0;
}
