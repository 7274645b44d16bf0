/* virtio-balloon: inflate and deflate requests are arrays of 32-bit PFNs; every PFN comes from
 * the guest and is checked against guest RAM before its page is given back. The statistics
 * buffer is held by the device until the polling timer returns it, which asks the driver for
 * fresh numbers. Free page reports are device-writable buffers over free guest memory, given
 * back whole pages at a time. Free page hinting is balloon_hint.c's. */
#include "virtio/balloon.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/log.h"
#include "virtio/balloon_internal.h"

#define PAGE_4K	  (1ULL << BALLOON_PAGE_SHIFT)
#define STAT_SIZE 10 /* le16 tag, le64 value, packed */

struct metric balloon_metrics[BM_METRIC_COUNT] = {
	[BM_ACTIVATE_FAILS] = { .name = "activate_fails" },
	[BM_CFG_FAILS] = { .name = "cfg_fails" },
	[BM_INFLATE_COUNT] = { .name = "inflate_count" },
	[BM_STATS_UPDATES] = { .name = "stats_updates_count" },
	[BM_STATS_UPDATE_FAILS] = { .name = "stats_update_fails" },
	[BM_DEFLATE_COUNT] = { .name = "deflate_count" },
	[BM_EVENT_FAILS] = { .name = "event_fails" },
	[BM_REPORT_COUNT] = { .name = "free_page_report_count" },
	[BM_REPORT_FREED] = { .name = "free_page_report_freed" },
	[BM_REPORT_FAILS] = { .name = "free_page_report_fails" },
	[BM_HINT_COUNT] = { .name = "free_page_hint_count" },
	[BM_HINT_FREED] = { .name = "free_page_hint_freed" },
	[BM_HINT_FAILS] = { .name = "free_page_hint_fails" },
};
static struct metric_group balloon_group = { "balloon", balloon_metrics, BM_METRIC_COUNT, NULL };

void balloon_fail(struct balloon_dev *b, const char *why)
{
	metric_inc(&balloon_metrics[BM_EVENT_FAILS]);
	virtio_needs_reset(&b->vdev, why);
}

/* Gives back npages 4 KiB pages from pfn on; they lie in RAM (the caller checked). */
static void discard_run(struct balloon_dev *b, uint64_t pfn, uint64_t npages)
{
	const struct guest_mem *mem = &b->vdev.machine->mem;
	uint64_t gpa = pfn << BALLOON_PAGE_SHIFT, len = npages * PAGE_4K;
	void *hva = guest_mem_ptr(mem, gpa, len);
	int rc = hva ? guest_mem_discard(mem, hva, len, NULL) : -EFAULT;
	if (rc)
		virtio_dev_warn(&b->vdev, "cannot give back guest pages 0x%llx+0x%llx: %s",
				(unsigned long long)gpa, (unsigned long long)len, strerror(-rc));
}

/* One inflate request: runs of consecutive PFNs go back to the host in one call each; a
 * PFN outside guest RAM is skipped (and counted), the rest of the request still counts. */
static void inflate(struct balloon_dev *b, const uint32_t *pfns, unsigned n)
{
	const struct guest_mem *mem = &b->vdev.machine->mem;
	uint64_t start = 0, run = 0;
	bool bad = false;
	for (unsigned i = 0; i <= n; i++) {
		uint64_t pfn = i < n ? pfns[i] : 0;
		bool in_ram = i < n && guest_mem_ptr(mem, pfn << BALLOON_PAGE_SHIFT, PAGE_4K);
		if (i < n && !in_ram)
			bad = true;
		/* A run continues only within one RAM region: guest_mem_ptr checks the whole. */
		if (in_ram && run && pfn == start + run &&
		    guest_mem_ptr(mem, start << BALLOON_PAGE_SHIFT, (run + 1) * PAGE_4K)) {
			run++;
			continue;
		}
		if (run)
			discard_run(b, start, run);
		start = pfn;
		run = in_ram ? 1 : 0;
	}
	if (bad) {
		metric_inc(&balloon_metrics[BM_EVENT_FAILS]);
		virtio_dev_warn(&b->vdev, "inflate: PFNs outside guest memory skipped");
	}
}

/* Inflate and deflate requests: one readable buffer (or a chain) of at most
 * BALLOON_PFNS_MAX little-endian u32 PFNs. */
static bool pfn_request(struct balloon_dev *b, enum balloon_role role)
{
	struct virtq_chain *c = &b->chain;
	const char *what = role == ROLE_INFLATE ? "an inflate" : "a deflate";
	char why[96];
	if (c->nr_wr) {
		snprintf(why, sizeof(why), "device-writable buffer in %s request", what);
		balloon_fail(b, why);
		return false;
	}
	if (c->rd_len % 4 || c->rd_len > 4 * BALLOON_PFNS_MAX) {
		snprintf(why, sizeof(why),
			 "%s request of %llu bytes (4-byte PFNs, at most %u of them)", what,
			 (unsigned long long)c->rd_len, BALLOON_PFNS_MAX);
		balloon_fail(b, why);
		return false;
	}
	uint32_t pfns[BALLOON_PFNS_MAX];
	unsigned n = (unsigned)(iov_to_buf(c->iov, c->nr_rd, pfns, c->rd_len) / 4);
	if (role == ROLE_INFLATE) {
		metric_inc(&balloon_metrics[BM_INFLATE_COUNT]);
		inflate(b, pfns, n);
	} else {
		/* The pages come back on the guest's next touch: nothing to do but count. */
		metric_inc(&balloon_metrics[BM_DEFLATE_COUNT]);
	}
	return true;
}

/* A statistics buffer: tag/value pairs, read whole; the device holds the buffer until the
 * timer gives it back, which asks the driver for fresh numbers. */
static bool stats_request(struct balloon_dev *b, unsigned qi, bool *pushed)
{
	struct virtq_chain *c = &b->chain;
	if (c->nr_wr) {
		balloon_fail(b, "device-writable buffer in a statistics request");
		return false;
	}
	if (b->stats_held) {
		/* Only one is ever in flight: the driver broke the protocol. The older one goes
		 * back so that the ring does not leak it. */
		metric_inc(&balloon_metrics[BM_EVENT_FAILS]);
		virtio_dev_warn(&b->vdev, "a second statistics buffer; the first goes back");
		virtq_push(&b->vdev.queues[qi], b->stats_head, 0);
		*pushed = true;
	}
	/* Linux sends 10 tags, newer kernels a few more: what fits here is plenty. */
	uint8_t buf[STAT_SIZE * 32];
	uint64_t len = iov_to_buf(c->iov, c->nr_rd, buf, sizeof(buf));
	b->have = 0;
	for (uint64_t off = 0; off + STAT_SIZE <= len; off += STAT_SIZE) {
		uint16_t tag;
		uint64_t val;
		memcpy(&tag, buf + off, 2);
		memcpy(&val, buf + off + 2, 8);
		if (tag < BALLOON_S_NR) { /* unknown tags are the driver's news: skipped */
			b->stats[tag] = val;
			b->have |= 1u << tag;
		}
	}
	metric_inc(&balloon_metrics[BM_STATS_UPDATES]);
	b->stats_held = true;
	b->stats_head = c->head;
	return true;
}

/* A free page report: device-writable buffers over guest memory the driver does not use;
 * the whole pages in each go back to the host. The virtqueue checked that each buffer lies
 * in RAM; guest_mem_discard checks it again before madvise. */
static bool report_request(struct balloon_dev *b)
{
	struct virtq_chain *c = &b->chain;
	if (c->nr_rd) {
		balloon_fail(b, "device-readable buffer in a free page report");
		return false;
	}
	metric_inc(&balloon_metrics[BM_REPORT_COUNT]);
	for (unsigned i = 0; i < c->nr_wr; i++) {
		uint64_t n = 0;
		int rc = guest_mem_discard(&b->vdev.machine->mem, c->iov[i].iov_base,
					   c->iov[i].iov_len, &n);
		if (rc) {
			metric_inc(&balloon_metrics[BM_REPORT_FAILS]);
			virtio_dev_warn(&b->vdev, "free page report: %s", strerror(-rc));
		}
		metric_add(&balloon_metrics[BM_REPORT_FREED], n);
	}
	return true;
}

/* Serves queue qi until it is empty or the queue broke; a queue's worth a round, then it
 * kicks itself, so that a guest that keeps refilling does not keep the VMM thread. */
static void process_queue(struct balloon_dev *b, unsigned qi)
{
	struct virtq *q = &b->vdev.queues[qi];
	struct virtq_chain *c = &b->chain;
	enum balloon_role role = b->role[qi];
	bool pushed = false;
	for (unsigned budget = BALLOON_QUEUE_SIZE;; budget--) {
		if (budget == 0) {
			virtio_queue_kick(&b->vdev, qi);
			break;
		}
		int rc = virtio_queue_pop(&b->vdev, qi, c);
		if (rc < 0)
			metric_inc(&balloon_metrics[BM_EVENT_FAILS]);
		if (rc <= 0)
			break;
		bool ok = role == ROLE_STATS	? stats_request(b, qi, &pushed)
			  : role == ROLE_REPORT ? report_request(b)
			  : role == ROLE_HINT	? balloon_hint_request(b)
						: pfn_request(b, role);
		if (!ok)
			break;
		if (role != ROLE_STATS) { /* a statistics buffer waits for the timer */
			virtq_push(q, c->head, 0);
			pushed = true;
		}
	}
	if (pushed)
		virtio_queue_interrupt(&b->vdev, qi);
}

static void balloon_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct balloon_dev *b = to_balloon(dev);
	if (b->role[q] != ROLE_NONE)
		process_queue(b, q);
}

/* The queue the statistics travel on, or -1. */
static int stats_queue(const struct balloon_dev *b)
{
	for (unsigned q = 0; q < b->vdev.nr_queues; q++)
		if (b->role[q] == ROLE_STATS && b->vdev.queues[q].active)
			return (int)q;
	return -1;
}

/* Gives the held statistics buffer back: the driver refills it with fresh numbers. */
static void request_stats(struct balloon_dev *b)
{
	int q = stats_queue(b);
	if (q < 0 || !virtio_dev_running(&b->vdev))
		return;
	if (!b->stats_held) {
		metric_inc(&balloon_metrics[BM_STATS_UPDATE_FAILS]); /* still on its way */
		return;
	}
	b->stats_held = false;
	virtq_push(&b->vdev.queues[q], b->stats_head, 0);
	virtio_queue_interrupt(&b->vdev, (unsigned)q);
}

/* The timer runs from creation, whether or not a driver listens (request_stats looks):
 * activation and resets happen on vCPU threads, whose seccomp filter has no timer calls. */
static void arm_timer(struct balloon_dev *b, bool on)
{
	if (b->timer_fd < 0)
		return;
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	if (on)
		its.it_interval.tv_sec = its.it_value.tv_sec = (time_t)b->interval_s;
	timerfd_settime(b->timer_fd, 0, &its, NULL);
}

static void on_stats_timer(void *opaque, uint32_t events)
{
	struct balloon_dev *b = opaque;
	uint64_t expirations;
	(void)events;
	if (read(b->timer_fd, &expirations, sizeof(expirations)) < 0)
		return;
	pthread_mutex_lock(&b->vdev.lock);
	request_stats(b);
	pthread_mutex_unlock(&b->vdev.lock);
}

/* The driver's queues are numbered in turn over the features it took (Linux's find_vqs). */
static int balloon_activate(struct virtio_dev *dev)
{
	struct balloon_dev *b = to_balloon(dev);
	unsigned n = 0;
	memset(b->role, 0, sizeof(b->role));
	b->role[n++] = ROLE_INFLATE;
	b->role[n++] = ROLE_DEFLATE;
	if (dev->driver_features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ))
		b->role[n++] = ROLE_STATS;
	if (dev->driver_features & (1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT))
		b->role[n++] = ROLE_HINT;
	if (dev->driver_features & (1ULL << VIRTIO_BALLOON_F_REPORTING))
		b->role[n++] = ROLE_REPORT;
	return 0;
}

/* Requests complete before process_queue returns; only the held statistics buffer and the
 * driver's count of pages belong to the driver that went away. The hinting commands stay:
 * a new driver starts no run until the host starts one. */
static void balloon_reset(struct virtio_dev *dev)
{
	struct balloon_dev *b = to_balloon(dev);
	memset(b->role, 0, sizeof(b->role));
	b->stats_held = false;
	b->space.actual = 0;
}

/* The driver may write "actual" only: num_pages and the hinting command are the host's. */
static void balloon_config_write(struct virtio_dev *dev, uint64_t off, const uint8_t *data,
				 unsigned len)
{
	struct balloon_dev *b = to_balloon(dev);
	uint64_t at = offsetof(struct balloon_space, actual), end = at + sizeof(b->space.actual);
	if (off < at || off > end || len > end - off) {
		metric_inc(&balloon_metrics[BM_CFG_FAILS]);
		virtio_dev_warn(dev, "%u-byte configuration write at 0x%llx refused", len,
				(unsigned long long)off);
		return;
	}
	memcpy((uint8_t *)&b->space + off, data, len);
}

static void balloon_destroy(struct virtio_dev *dev)
{
	struct balloon_dev *b = to_balloon(dev);
	if (b->timer_fd >= 0) {
		evloop_remove(&dev->machine->loop, b->timer_fd);
		close(b->timer_fd);
	}
	free(b);
}

static const struct virtio_dev_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.activate = balloon_activate,
	.reset = balloon_reset,
	.config_write = balloon_config_write,
	.queue_notify = balloon_queue_notify,
	.destroy = balloon_destroy,
};

int balloon_create(struct machine *machine, const struct balloon_config *cfg,
		   struct virtio_dev **out, char *err)
{
	static bool registered; /* one group, however many VMs a test process builds */
	if (cfg->amount_mib > UINT32_MAX / BALLOON_PAGES_PER_MIB)
		return errf(err, -EINVAL, "balloon: amount_mib %u is too large", cfg->amount_mib);
	struct balloon_dev *b = calloc(1, sizeof(*b));
	if (!b)
		return errf(err, -ENOMEM, "balloon: out of memory");
	b->timer_fd = -1;
	b->vdev.machine = machine; /* balloon_destroy needs the event loop before the transport */
	b->space.num_pages = cfg->amount_mib * BALLOON_PAGES_PER_MIB;
	b->deflate_on_oom = cfg->deflate_on_oom;
	b->hinting = cfg->free_page_hinting;
	b->reporting = cfg->free_page_reporting;
	b->space.hint_cmd = BALLOON_HINT_CMD_STOP;
	b->interval_s = cfg->stats_polling_interval_s;
	int rc = 0;
	if (b->interval_s) {
		b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		rc = b->timer_fd < 0
			     ? -errno
			     : evloop_add(&machine->loop, b->timer_fd, EPOLLIN, on_stats_timer, b);
		if (!rc)
			arm_timer(b, true);
		if (rc) {
			snprintf(err, ERR_LEN, "balloon: statistics timer: %s", strerror(-rc));
			balloon_destroy(&b->vdev);
			return rc;
		}
	}
	uint64_t features =
		(1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	unsigned nr_queues = 2;
	if (b->interval_s) {
		features |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
		nr_queues++;
	}
	if (b->deflate_on_oom)
		features |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (b->hinting) {
		features |= 1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT;
		nr_queues++;
	}
	if (b->reporting) {
		features |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
		nr_queues++;
	}
	rc = virtio_mmio_init(&b->vdev, machine, &balloon_ops, "balloon", nr_queues,
			      BALLOON_QUEUE_SIZE, features);
	if (rc) {
		snprintf(err, ERR_LEN, "balloon: cannot create the virtio-mmio device: %s",
			 rc == -ENOSPC ? "no free virtio slot (at most 19 devices)"
				       : strerror(-rc));
		balloon_destroy(&b->vdev);
		return rc;
	}
	b->vdev.config = (const uint8_t *)&b->space;
	b->vdev.config_len = sizeof(b->space);
	if (!registered) {
		metrics_register(&balloon_group);
		registered = true;
	}
	*out = &b->vdev;
	log_debug("balloon: target %u MiB%s%s%s, statistics every %u s", cfg->amount_mib,
		  b->deflate_on_oom ? ", deflate on OOM" : "",
		  b->hinting ? ", free page hinting" : "",
		  b->reporting ? ", free page reporting" : "", b->interval_s);
	return 0;
}

void balloon_get_state(struct virtio_dev *dev, struct balloon_state *out)
{
	struct balloon_dev *b = to_balloon(dev);
	pthread_mutex_lock(&dev->lock);
	*out = (struct balloon_state){
		.running = virtio_dev_running(dev),
		.target_pages = b->space.num_pages,
		.actual_pages = b->space.actual,
		.deflate_on_oom = b->deflate_on_oom,
		.free_page_hinting = b->hinting,
		.free_page_reporting = b->reporting,
		.stats_polling_interval_s = b->interval_s,
		.hint_host_cmd = b->space.hint_cmd,
		.hint_guest_cmd = b->hint.guest_cmd,
		.hint_has_guest_cmd = b->hint.has_guest_cmd,
		.have = b->have,
	};
	memcpy(out->stats, b->stats, sizeof(out->stats));
	pthread_mutex_unlock(&dev->lock);
}

int balloon_set_target(struct virtio_dev *dev, uint32_t pages)
{
	struct balloon_dev *b = to_balloon(dev);
	int rc = 0;
	pthread_mutex_lock(&dev->lock);
	if (!virtio_dev_running(dev)) {
		rc = -EAGAIN;
	} else if (b->space.num_pages != pages) {
		b->space.num_pages = pages;
		virtio_config_changed(dev);
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

int balloon_set_stats_interval(struct virtio_dev *dev, unsigned interval_s)
{
	struct balloon_dev *b = to_balloon(dev);
	int rc = 0;
	pthread_mutex_lock(&dev->lock);
	if (interval_s == b->interval_s) {
		/* nothing changes */
	} else if (!interval_s || !b->interval_s) {
		rc = -EINVAL;
	} else {
		b->interval_s = interval_s;
		/* The first update at once (Firecracker's BalloonStatsUpdate), then the new
		 * period. */
		if (b->stats_held)
			request_stats(b);
		arm_timer(b, true);
	}
	pthread_mutex_unlock(&dev->lock);
	return rc;
}

/* Version 2 is version 1 and the hinting state; a device without hinting writes version 1,
 * which embers from before hinting read. */
#define BALLOON_STATE_V1 1
#define BALLOON_STATE_V2 2

void balloon_save(struct virtio_dev *dev, struct snap_writer *w)
{
	struct balloon_dev *b = to_balloon(dev);
	pthread_mutex_lock(&dev->lock);
	snapw_u32(w, b->hinting ? BALLOON_STATE_V2 : BALLOON_STATE_V1);
	snapw_u32(w, b->space.num_pages);
	snapw_u32(w, b->space.actual);
	snapw_u32(w, b->interval_s);
	snapw_u8(w, b->stats_held);
	snapw_u16(w, b->stats_head);
	snapw_u32(w, b->have);
	for (unsigned i = 0; i < BALLOON_S_NR; i++)
		snapw_u64(w, b->stats[i]);
	if (b->hinting)
		balloon_hint_save(b, w);
	pthread_mutex_unlock(&dev->lock);
}

int balloon_restore(struct virtio_dev *dev, struct snap_reader *r, char *err)
{
	struct balloon_dev *b = to_balloon(dev);
	uint32_t version = snapr_u32(r), target = snapr_u32(r), actual = snapr_u32(r);
	uint32_t interval = snapr_u32(r);
	uint8_t held = snapr_u8(r);
	uint16_t head = snapr_u16(r);
	uint32_t have = snapr_u32(r);
	uint64_t stats[BALLOON_S_NR];
	for (unsigned i = 0; i < BALLOON_S_NR; i++)
		stats[i] = snapr_u64(r);
	struct balloon_hint hint = { 0 };
	uint32_t hint_cmd = BALLOON_HINT_CMD_STOP;
	const char *hint_why = NULL, *why = NULL;
	if (version == BALLOON_STATE_V2 && b->hinting)
		hint_why = balloon_hint_load(r, &hint, &hint_cmd);
	else if (version != BALLOON_STATE_V1 || b->hinting)
		hint_why = "of another version, or with hinting other than the configuration's";
	int q;
	pthread_mutex_lock(&dev->lock);
	if (hint_why)
		why = hint_why;
	else if (!snapr_done(r))
		why = "truncated or too long";
	else if ((uint64_t)target << BALLOON_PAGE_SHIFT > dev->machine->mem.size)
		why = "a target larger than guest memory";
	else if (interval != b->interval_s)
		why = "a statistics interval other than the configuration's";
	else if (held > 1 || (have >> BALLOON_S_NR))
		why = "undefined flags";
	else if (held && ((q = stats_queue(b)) < 0 || head >= dev->queues[q].num))
		why = "a held statistics buffer without a statistics queue to hold it from";
	if (why) {
		pthread_mutex_unlock(&dev->lock);
		return errf(err, -EINVAL, "balloon: snapshot state: %s", why);
	}
	b->space.num_pages = target;
	b->space.actual = actual;
	b->space.hint_cmd = hint_cmd;
	b->stats_held = held;
	b->stats_head = head;
	b->have = have;
	memcpy(b->stats, stats, sizeof(stats));
	b->hint = hint;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}
