/* virtio-block: request parsing, bounds and read-only checks, rate limiting, and the
 * hand-off to an engine. Every request completes with a status byte for the guest; only a
 * broken ring (not a bad request) makes the device need a reset. */
#include "virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rate_limiter.h"

#define BLK_CONFIG_LEN 0x24 /* capacity through writeback: the fields ember fills */

struct blk_dev {
	struct virtio_dev vdev; /* first: the transport hands us &vdev */
	char *id;		/* drive_id; its first 20 bytes are the GET_ID serial */
	char *path;
	int fd;
	uint64_t sectors;
	bool read_only;
	bool writeback; /* FLUSH is fdatasync; otherwise a no-op (cache_type Unsafe) */
	struct blk_engine *engine;
	struct rate_limiter rl;
	uint8_t config[BLK_CONFIG_LEN];
	char root_arg[128];

	struct blk_req *reqs; /* BLK_QUEUE_SIZE of them: one per chain in flight */
	struct blk_req *free_reqs;
	unsigned nr_fresh;  /* reqs[nr_fresh...] never used yet, not in free_reqs */
	unsigned epoch;	    /* bumped by every reset: older completions leave the rings alone */
	unsigned in_flight; /* requests the engine holds (any epoch) */
	bool pushed;	    /* used entries added since the last interrupt decision */
	/* For the log line at exit: how the requests came and went. */
	uint64_t nr_notify, nr_reqs, nr_batches, nr_irqs;
	uint64_t nr_engine_events; /* wake-ups by the engine's eventfd (Async completions) */
};

static struct blk_dev *to_blk(struct virtio_dev *dev)
{
	return (struct blk_dev *)dev;
}

static void put_req(struct blk_dev *b, struct blk_req *req)
{
	req->next_free = b->free_reqs;
	b->free_reqs = req;
}

/* The next free request slot (b->free_reqs), or NULL. Slots never used join the pool only
 * when it runs dry: each holds a chain's iovecs (4 KiB), so a drive touches the slots of the
 * depth its guest uses, not a megabyte at creation. */
static struct blk_req *free_req(struct blk_dev *b)
{
	if (!b->free_reqs && b->nr_fresh < BLK_QUEUE_SIZE) {
		struct blk_req *req = &b->reqs[b->nr_fresh++];
		req->blk = b;
		put_req(b, req);
	}
	return b->free_reqs;
}

/* Writes the status byte and gives the chain back to the driver, unpublished: the run that
 * completed it publishes everything it completed at once (end_run). */
static void finish(struct blk_dev *b, struct blk_req *req, uint8_t status, uint32_t used_len)
{
	if (req->status)
		*req->status = status;
	virtq_add_used(&b->vdev.queues[0], req->chain.head, used_len);
	b->pushed = true;
	b->nr_reqs++;
	put_req(b, req);
}

/* Ends a run of completions: one used->idx update for all of them and at most one
 * interrupt, when the driver's used_event (or its flags) asks for it. */
static void end_run(struct blk_dev *b)
{
	if (!b->pushed)
		return;
	b->pushed = false;
	b->nr_batches++;
	if (virtq_need_interrupt(&b->vdev.queues[0])) {
		b->nr_irqs++;
		virtio_interrupt(&b->vdev, VIRTIO_INT_USED_RING);
	}
}

void blk_req_done(struct blk_req *req, int64_t result)
{
	struct blk_dev *b = req->blk;
	b->in_flight--;
	if (req->epoch != b->epoch) {
		put_req(b, req); /* the driver reset the device meanwhile */
		return;
	}
	if (result < 0) {
		log_debug("virtio-blk %s: request type %u at byte %llu failed: %s", b->id,
			  req->type, (unsigned long long)req->offset, strerror((int)-result));
		finish(b, req, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	/* used len counts the bytes written into the guest's buffers: data and status. */
	uint32_t used = req->type == VIRTIO_BLK_T_IN ? (uint32_t)req->len + 1 : 1;
	finish(b, req, VIRTIO_BLK_S_OK, used);
}

static void get_id(struct blk_dev *b, struct blk_req *req, struct iovec *wr, unsigned nr_wr,
		   uint64_t wr_len)
{
	char serial[BLK_ID_BYTES] = { 0 }; /* NUL-padded when the id is shorter */
	memcpy(serial, b->id, strnlen(b->id, BLK_ID_BYTES));
	uint64_t n = iov_from_buf(wr, nr_wr, serial, wr_len < BLK_ID_BYTES ? wr_len : BLK_ID_BYTES);
	finish(b, req, VIRTIO_BLK_S_OK, (uint32_t)n + 1);
}

/* Checks a read or write against the image and the request limits. */
static bool in_range(const struct blk_dev *b, uint64_t sector, uint64_t len)
{
	if (len % BLK_SECTOR_SIZE || len > BLK_REQ_MAX_BYTES)
		return false;
	return sector <= b->sectors && len / BLK_SECTOR_SIZE <= b->sectors - sector;
}

#define PARSE_SUBMIT (-1) /* the request goes to the engine */
#define PARSE_DONE   (-2) /* completed here already (GET_ID, no status byte) */

/* Decodes the chain in req: PARSE_SUBMIT, PARSE_DONE, or the status to complete it with
 * here (a no-op flush, an error). bytes is what the rate limiter counts. */
static int parse(struct blk_dev *b, struct blk_req *req, uint64_t *bytes)
{
	struct virtq_chain *c = &req->chain;
	struct iovec *rd = c->iov, *wr = c->iov + c->nr_rd;
	unsigned nr_rd = c->nr_rd, nr_wr = c->nr_wr;
	req->status = NULL;
	req->epoch = b->epoch;
	req->offset = req->len = req->done = 0;
	*bytes = 0;

	if (c->wr_len == 0) {
		/* No byte to put a status in: hand the chain back empty. */
		finish(b, req, 0, 0);
		return PARSE_DONE;
	}
	struct iovec *last = &wr[nr_wr - 1];
	req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	iov_drop_back(wr, &nr_wr, 1);

	struct {
		uint32_t type;
		uint32_t reserved;
		uint64_t sector;
	} hdr;
	/* The header may be split over several buffers: the spec forbids assuming a layout. */
	if (iov_to_buf(rd, nr_rd, &hdr, sizeof(hdr)) < sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	iov_drop_front(rd, &nr_rd, sizeof(hdr));
	req->type = hdr.type;

	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
		req->iov = wr;
		req->nr_iov = nr_wr;
		req->len = c->wr_len - 1;
		break;
	case VIRTIO_BLK_T_OUT:
		if (b->read_only)
			return VIRTIO_BLK_S_IOERR;
		req->iov = rd;
		req->nr_iov = nr_rd;
		req->len = c->rd_len - sizeof(hdr);
		break;
	case VIRTIO_BLK_T_FLUSH:
		return b->writeback ? PARSE_SUBMIT : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		get_id(b, req, wr, nr_wr, c->wr_len - 1);
		return PARSE_DONE;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (!in_range(b, hdr.sector, req->len))
		return VIRTIO_BLK_S_IOERR;
	req->offset = hdr.sector * BLK_SECTOR_SIZE;
	*bytes = req->len;
	return PARSE_SUBMIT;
}

#define RUN_EMPTY   0 /* the ring is empty */
#define RUN_STOPPED 1 /* no request left, the rate limiter, the budget, or a broken ring */

/* Takes chains and starts them until the ring is empty or something stops the run. */
static int take_chains(struct blk_dev *b, unsigned *budget)
{
	struct virtq *q = &b->vdev.queues[0];
	/* An empty pool refills on completions, which run the queue again. */
	while (free_req(b) && !b->rl.blocked) {
		if ((*budget)-- == 0) {
			virtio_queue_kick(&b->vdev, 0);
			return RUN_STOPPED;
		}
		struct blk_req *req = b->free_reqs;
		int rc = virtq_pop(q, &req->chain);
		if (rc < 0) {
			virtio_needs_reset(&b->vdev, q->fault);
			return RUN_STOPPED;
		}
		if (rc == 0)
			return RUN_EMPTY;
		b->free_reqs = req->next_free;
		uint64_t bytes;
		int status = parse(b, req, &bytes);
		if (status >= 0)
			finish(b, req, (uint8_t)status, 1); /* used len: the status byte */
		if (status != PARSE_SUBMIT)
			continue;
		if (!rate_limiter_consume(&b->rl, 1, bytes, monotonic_ns())) {
			/* The timer brings us back; the chain stays in the ring till then. */
			virtq_unpop(q);
			put_req(b, req);
			return RUN_STOPPED;
		}
		b->in_flight++; /* blk_req_done counts it out, maybe before submit returns */
		rc = b->engine->ops->submit(b->engine, req);
		if (rc)
			blk_req_done(req, rc);
	}
	return RUN_STOPPED;
}

/* Runs the queue until it is empty, the request pool is, or the rate limiter says wait,
 * then completes the run with one used-ring update and at most one interrupt. A guest that
 * keeps the queue full does not keep the VMM thread: after a queue's worth of chains the
 * run yields and its own notification brings it back after the other events.
 *
 * While the engine holds requests, their completions run the queue again: the driver need
 * not notify new chains meanwhile, so the device leaves avail_event behind (event index)
 * and the guest adds requests without an exit. Only a run that leaves nothing in flight
 * asks for the next notification. */
static void process_queue(struct blk_dev *b)
{
	struct virtq *q = &b->vdev.queues[0];
	unsigned budget = BLK_QUEUE_SIZE;
	for (;;) {
		int rc = take_chains(b, &budget);
		/* The whole batch goes to the kernel in one call. */
		b->engine->ops->flush_batch(b->engine);
		if (rc != RUN_EMPTY || b->in_flight)
			break;
		if (!virtq_enable_notify(q))
			break;
	}
	end_run(b);
}

static void blk_queue_notify(struct virtio_dev *dev, unsigned q)
{
	(void)q;
	to_blk(dev)->nr_notify++;
	process_queue(to_blk(dev));
}

/* Completions (Async engine) and rate-limiter timers: both may let the queue move again. */
static void on_engine_event(void *opaque, uint32_t events)
{
	struct blk_dev *b = opaque;
	(void)events;
	pthread_mutex_lock(&b->vdev.lock);
	b->nr_engine_events++;
	b->engine->ops->reap(b->engine);
	if (virtio_dev_running(&b->vdev))
		process_queue(b);
	else
		end_run(b);
	pthread_mutex_unlock(&b->vdev.lock);
}

static void on_rate_timer(void *opaque, uint32_t events)
{
	struct blk_dev *b = opaque;
	(void)events;
	pthread_mutex_lock(&b->vdev.lock);
	rate_limiter_timer_event(&b->rl);
	if (virtio_dev_running(&b->vdev))
		process_queue(b);
	pthread_mutex_unlock(&b->vdev.lock);
}

static void blk_reset(struct virtio_dev *dev)
{
	struct blk_dev *b = to_blk(dev);
	b->epoch++;
	b->pushed = false;
}

static void blk_destroy(struct virtio_dev *dev)
{
	struct blk_dev *b = to_blk(dev);
	if (b->nr_reqs)
		log_debug("drive %s: %llu requests in %llu batches, %llu notifications, %llu "
			  "interrupts, %llu engine events",
			  b->id, (unsigned long long)b->nr_reqs, (unsigned long long)b->nr_batches,
			  (unsigned long long)b->nr_notify, (unsigned long long)b->nr_irqs,
			  (unsigned long long)b->nr_engine_events);
	if (b->engine) {
		if (b->engine->event_fd >= 0)
			evloop_remove(&dev->machine->loop, b->engine->event_fd);
		b->engine->ops->destroy(b->engine);
	}
	rate_limiter_destroy(&b->rl, &dev->machine->loop);
	if (b->fd >= 0)
		close(b->fd);
	free(b->reqs);
	free(b->id);
	free(b->path);
	free(b);
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.reset = blk_reset,
	.queue_notify = blk_queue_notify,
	.destroy = blk_destroy,
};

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Opens path for drive id and learns its size in sectors; a block device works as well as
 * a file. Returns the fd or -errno with a message in err. */
static int open_image(const char *id, const char *path, bool read_only, uint64_t *sectors,
		      char *err)
{
	int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return errf(err, -errno, "drive %s: cannot open path_on_host %s%s: %s", id, path,
			    read_only ? "" : " for writing", strerror(errno));
	struct stat st;
	uint64_t size = 0;
	int rc = 0;
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		rc = errf(err, -EINVAL, "drive %s: path_on_host %s is not a file or block device",
			  id, path);
	else if (S_ISREG(st.st_mode))
		size = (uint64_t)st.st_size;
	else if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		rc = errf(err, -errno, "drive %s: %s: BLKGETSIZE64: %s", id, path, strerror(errno));
	if (rc) {
		close(fd);
		return rc;
	}
	if (size % BLK_SECTOR_SIZE)
		log_warn("drive %s: %s is %llu bytes, not a multiple of %u: the last %llu bytes "
			 "are not visible to the guest",
			 id, path, (unsigned long long)size, BLK_SECTOR_SIZE,
			 (unsigned long long)(size % BLK_SECTOR_SIZE));
	*sectors = size / BLK_SECTOR_SIZE;
	return fd;
}

int blk_create(struct machine *machine, const struct drive_config *cfg, struct virtio_dev **out,
	       char *err)
{
	struct blk_dev *b = calloc(1, sizeof(*b));
	if (!b)
		return errf(err, -ENOMEM, "drive %s: out of memory", cfg->drive_id);
	b->fd = -1;
	b->rl.timer_fd = -1;
	b->vdev.machine =
		machine; /* blk_destroy needs the event loop even before the transport exists */
	b->id = strdup(cfg->drive_id);
	b->path = strdup(cfg->path_on_host);
	b->reqs = calloc(BLK_QUEUE_SIZE, sizeof(*b->reqs));
	int rc = -ENOMEM;
	if (!b->id || !b->path || !b->reqs) {
		snprintf(err, ERR_LEN, "drive %s: out of memory", cfg->drive_id);
		goto fail;
	}
	b->read_only = cfg->is_read_only;
	b->writeback = cfg->cache_type == DRIVE_CACHE_WRITEBACK;
	if (cfg->is_root_device && cfg->partuuid)
		snprintf(b->root_arg, sizeof(b->root_arg), "root=PARTUUID=%s %s", cfg->partuuid,
			 b->read_only ? "ro" : "rw");
	else if (cfg->is_root_device)
		snprintf(b->root_arg, sizeof(b->root_arg), "root=/dev/vda %s",
			 b->read_only ? "ro" : "rw");
	rc = open_image(b->id, b->path, b->read_only, &b->sectors, err);
	if (rc < 0)
		goto fail;
	b->fd = rc;

	char why[ERR_LEN];
	b->engine = cfg->io_engine == DRIVE_ENGINE_ASYNC
			    ? blk_uring_create(b->fd, BLK_QUEUE_SIZE, why)
			    : blk_sync_create(b->fd, why);
	if (!b->engine) {
		rc = errf(err, -EINVAL, "drive %s: io_engine %s: %.400s", b->id,
			  cfg->io_engine == DRIVE_ENGINE_ASYNC ? "Async" : "Sync", why);
		goto fail;
	}
	if ((rc = rate_limiter_apply(&b->rl, &cfg->rate_limiter, &machine->loop, on_rate_timer,
				     b))) {
		snprintf(err, ERR_LEN, "drive %s: rate_limiter: %s", b->id, strerror(-rc));
		goto fail;
	}

	put_le(b->config + 0x00, b->sectors, 8); /* capacity, in 512-byte sectors */
	put_le(b->config + 0x0c, BLK_SEG_MAX, 4);
	put_le(b->config + 0x14, BLK_SECTOR_SIZE, 4);
	uint64_t features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			    (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			    (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (b->read_only)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	b->vdev.config = b->config;
	b->vdev.config_len = BLK_CONFIG_LEN;
	rc = virtio_mmio_init(&b->vdev, machine, &blk_ops, b->id, 1, BLK_QUEUE_SIZE, features);
	if (rc) {
		snprintf(err, ERR_LEN, "drive %s: cannot create the virtio-mmio device: %s", b->id,
			 rc == -ENOSPC ? "no free virtio slot (at most 19 devices)"
				       : strerror(-rc));
		goto fail;
	}
	/* From here on the device belongs to the VM and is destroyed with it. */
	if (b->engine->event_fd >= 0 &&
	    (rc = evloop_add(&machine->loop, b->engine->event_fd, EPOLLIN, on_engine_event, b)))
		return errf(err, rc, "drive %s: event loop: %s", b->id, strerror(-rc));
	if (out)
		*out = &b->vdev;
	log_debug("drive %s: %s, %llu sectors, %s, %s engine, cache %s%s", b->id, b->path,
		  (unsigned long long)b->sectors, b->read_only ? "read-only" : "read-write",
		  b->engine->ops->name, b->writeback ? "Writeback" : "Unsafe",
		  rate_limiter_active(&b->rl) ? ", rate-limited" : "");
	return 0;
fail:
	blk_destroy(&b->vdev);
	return rc;
}

int blk_update(struct virtio_dev *dev, const struct drive_config *cfg, char *err)
{
	struct blk_dev *b = to_blk(dev);
	/* Everything that can fail first, outside the lock: the image and a copy of its path. */
	int fd = -1;
	uint64_t sectors = b->sectors;
	char *path = NULL;
	if (strcmp(cfg->path_on_host, b->path) != 0) {
		fd = open_image(b->id, cfg->path_on_host, b->read_only, &sectors, err);
		if (fd < 0)
			return fd;
		if (!(path = strdup(cfg->path_on_host))) {
			close(fd);
			return errf(err, -ENOMEM, "drive %s: out of memory", b->id);
		}
	}
	pthread_mutex_lock(&b->vdev.lock);
	int rc = rate_limiter_apply(&b->rl, &cfg->rate_limiter, &dev->machine->loop, on_rate_timer,
				    b);
	if (rc) {
		snprintf(err, ERR_LEN, "drive %s: rate_limiter: %s", b->id, strerror(-rc));
	} else if (fd >= 0 && (rc = b->engine->ops->set_fd(b->engine, fd))) {
		snprintf(err, ERR_LEN, "drive %s: io_engine %s: %s", b->id, b->engine->ops->name,
			 strerror(-rc));
	} else if (fd >= 0) {
		close(b->fd);
		b->fd = fd;
		fd = -1;
		free(b->path);
		b->path = path;
		path = NULL;
		if (sectors != b->sectors) {
			b->sectors = sectors;
			put_le(b->config + 0x00, sectors, 8);
			virtio_config_changed(&b->vdev);
		}
	}
	/* The new limits may allow what the old ones held back. */
	if (!rc && virtio_dev_running(&b->vdev))
		process_queue(b);
	pthread_mutex_unlock(&b->vdev.lock);
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

const char *blk_root_arg(struct virtio_dev *dev)
{
	return to_blk(dev)->root_arg;
}

int blk_quiesce(struct virtio_dev *dev, char *err)
{
	struct blk_dev *b = to_blk(dev);
	pthread_mutex_lock(&dev->lock);
	uint64_t deadline = monotonic_ns() + BLK_QUIESCE_MS * 1000000ULL;
	while (b->in_flight && b->engine->ops->wait) {
		uint64_t now = monotonic_ns();
		if (now >= deadline)
			break;
		b->engine->ops->wait(b->engine, (unsigned)((deadline - now) / 1000000) + 1);
	}
	end_run(b); /* one used-ring update and interrupt for what finished */
	unsigned left = b->in_flight;
	pthread_mutex_unlock(&dev->lock);
	/* The guest would wait forever for a request the restored VM never saw. */
	if (left)
		return errf(err, -EBUSY, "drive %s: %u requests still in flight after %u s", b->id,
			    left, BLK_QUIESCE_MS / 1000);
	return 0;
}

int blk_save(struct virtio_dev *dev, struct snap_writer *w, char *err)
{
	struct blk_dev *b = to_blk(dev);
	pthread_mutex_lock(&dev->lock);
	unsigned left = b->in_flight;
	if (!left) {
		snapw_u64(w, b->sectors);
		rate_limiter_save(&b->rl, monotonic_ns(), w);
	}
	pthread_mutex_unlock(&dev->lock);
	if (left) /* blk_quiesce came first; a request cannot start on a paused VM */
		return errf(err, -EBUSY, "drive %s: %u requests in flight", b->id, left);
	return 0;
}

int blk_restore(struct virtio_dev *dev, struct snap_reader *r, char *err)
{
	struct blk_dev *b = to_blk(dev);
	uint64_t sectors = snapr_u64(r);
	if (r->bad)
		return errf(err, -EINVAL, "drive %s: snapshot state truncated", b->id);
	if (sectors != b->sectors)
		return errf(err, -EINVAL,
			    "drive %s: %s has %llu sectors, the snapshot's disk had %llu", b->id,
			    b->path, (unsigned long long)b->sectors, (unsigned long long)sectors);
	if (snapr_done(r))
		return 0; /* format 1.3: no limiter state, the buckets start full */
	pthread_mutex_lock(&dev->lock);
	struct rate_limiter rl = b->rl;
	int rc = rate_limiter_restore(&rl, r, monotonic_ns());
	if (!rc && !snapr_done(r))
		rc = -EINVAL;
	if (!rc)
		b->rl = rl;
	pthread_mutex_unlock(&dev->lock);
	if (rc)
		return errf(err, rc,
			    "drive %s: the saved rate limiter state does not fit its configuration",
			    b->id);
	return 0;
}
