/* The "Sync" engine: each request runs to completion on the VMM thread. Simple, and the
 * guest's queue waits behind every request. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "virtio/blk.h"

static int64_t transfer(int fd, struct blk_req *req, bool write)
{
	while (req->done < req->len) {
		off_t at = (off_t)(req->offset + req->done);
		ssize_t n = write ? pwritev(fd, req->iov, (int)req->nr_iov, at)
				  : preadv(fd, req->iov, (int)req->nr_iov, at);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the image shrank below the capacity the guest was given */
		req->done += (uint64_t)n;
		iov_drop_front(req->iov, &req->nr_iov, (uint64_t)n);
	}
	return (int64_t)req->done;
}

static int sync_submit(struct blk_engine *e, struct blk_req *req)
{
	int64_t res;
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		res = transfer(e->fd, req, false);
		break;
	case VIRTIO_BLK_T_OUT:
		res = transfer(e->fd, req, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		res = fdatasync(e->fd) < 0 ? -errno : 0;
		break;
	default:
		return -EINVAL;
	}
	blk_req_done(req, res);
	return 0;
}

static void sync_nothing(struct blk_engine *e)
{
	(void)e;
}

static int sync_set_fd(struct blk_engine *e, int fd)
{
	e->fd = fd;
	return 0;
}

static void sync_destroy(struct blk_engine *e)
{
	free(e);
}

static const struct blk_engine_ops sync_ops = {
	.name = "Sync",
	.submit = sync_submit,
	.flush_batch = sync_nothing,
	.reap = sync_nothing,
	.set_fd = sync_set_fd,
	.destroy = sync_destroy,
};

struct blk_engine *blk_sync_create(int fd, char *err)
{
	struct blk_engine *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, ERR_LEN, "out of memory");
		return NULL;
	}
	e->ops = &sync_ops;
	e->fd = fd;
	e->event_fd = -1;
	return e;
}
