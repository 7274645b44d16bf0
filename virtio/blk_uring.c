/* The "Async" engine: io_uring through liburing. The image is a registered file, requests
 * are batched into one io_uring_submit per queue run, and completions wake the event loop
 * through an eventfd registered with the ring. The ring is restricted to that file and to
 * reads, writes and syncs (restrict_ring). */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "virtio/blk.h"
#include "core/log.h"

struct uring_engine {
	struct blk_engine e;
	struct io_uring ring;
	bool ring_live;
	unsigned pending;	  /* SQEs prepared but not yet submitted */
	unsigned submit_warnings; /* failed submits logged (a few at most) */
};

static struct uring_engine *to_uring(struct blk_engine *e)
{
	return (struct uring_engine *)e;
}

static void reap_cqes(struct blk_engine *e);

static void submit_pending(struct uring_engine *u)
{
	int rc;
	do
		rc = io_uring_submit(&u->ring);
	while (rc == -EINTR);
	/* On other failures the SQEs stay queued and go with the next submit. The device
	 * asks for no notification while it has requests in flight, so nothing else would
	 * bring that submit: the engine's own eventfd does, after the other events. */
	if (rc < 0) {
		log_warn_limited(&u->submit_warnings, 8, "virtio-blk: io_uring_submit: %s",
				 strerror(-rc));
		eventfd_write(u->e.event_fd, 1);
	} else {
		u->pending = 0;
	}
}

/* Submits the batch, then takes what already completed: on filesystems that serve cached
 * data without blocking, io_uring completes such requests inside the submit call, and
 * waiting for the eventfd would cost a trip through the event loop per batch. Those inline
 * completions signalled the eventfd too: it is emptied before the reap, so that the loop
 * does not wake again for CQEs already taken (a completion after the read signals anew). */
static void uring_flush_batch(struct blk_engine *e)
{
	struct uring_engine *u = to_uring(e);
	if (!u->pending)
		return;
	submit_pending(u);
	if (!u->pending && io_uring_cq_ready(&u->ring)) {
		eventfd_t count;
		eventfd_read(e->event_fd, &count);
	}
	reap_cqes(e);
	if (u->pending) /* continuations of short transfers */
		submit_pending(u);
}

static int uring_submit(struct blk_engine *e, struct blk_req *req)
{
	struct uring_engine *u = to_uring(e);
	if (req->type != VIRTIO_BLK_T_IN && req->type != VIRTIO_BLK_T_OUT &&
	    req->type != VIRTIO_BLK_T_FLUSH)
		return -EINVAL;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		/* The ring is as deep as the queue, so this needs a full ring of partial
		 * transfers being resubmitted; make room and try once more. */
		submit_pending(u);
		sqe = io_uring_get_sqe(&u->ring);
		if (!sqe)
			return -EBUSY;
	}
	uint64_t at = req->offset + req->done;
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		io_uring_prep_readv(sqe, 0, req->iov, req->nr_iov, at);
		break;
	case VIRTIO_BLK_T_OUT:
		io_uring_prep_writev(sqe, 0, req->iov, req->nr_iov, at);
		break;
	default:
		io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE; /* index 0 of the registered files: the image */
	io_uring_sqe_set_data(sqe, req);
	u->pending++;
	return 0;
}

/* A read or write that moved fewer bytes than asked continues where it stopped. */
static void complete(struct blk_engine *e, struct blk_req *req, int res)
{
	if (res < 0 || req->type == VIRTIO_BLK_T_FLUSH) {
		blk_req_done(req, res < 0 ? res : 0);
		return;
	}
	if (res == 0 && req->len > 0) {
		blk_req_done(req, -EIO); /* the image shrank below the capacity */
		return;
	}
	req->done += (uint64_t)res;
	if (req->done >= req->len) {
		blk_req_done(req, (int64_t)req->done);
		return;
	}
	iov_drop_front(req->iov, &req->nr_iov, (uint64_t)res);
	int rc = uring_submit(e, req);
	if (rc)
		blk_req_done(req, rc);
}

static void reap_cqes(struct blk_engine *e)
{
	struct uring_engine *u = to_uring(e);
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct blk_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		if (req)
			complete(e, req, res);
	}
}

static void uring_reap(struct blk_engine *e)
{
	eventfd_t count;
	eventfd_read(e->event_fd, &count);
	reap_cqes(e);
	uring_flush_batch(e);
}

static void uring_wait(struct blk_engine *e, unsigned ms)
{
	struct uring_engine *u = to_uring(e);
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	if (u->pending)
		submit_pending(u);
	if (io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts) == 0)
		reap_cqes(e);
	if (u->pending) /* continuations of short transfers */
		submit_pending(u);
}

static int uring_set_fd(struct blk_engine *e, int fd)
{
	/* Requests in flight hold their own reference to the old file. */
	int rc = io_uring_register_files_update(&to_uring(e)->ring, 0, &fd, 1);
	if (rc < 0)
		return rc;
	e->fd = fd;
	return 0;
}

static void uring_destroy(struct blk_engine *e)
{
	struct uring_engine *u = to_uring(e);
	if (u->ring_live)
		io_uring_queue_exit(&u->ring);
	if (e->event_fd >= 0)
		close(e->event_fd);
	free(u);
}

static const struct blk_engine_ops uring_ops = {
	.name = "Async",
	.submit = uring_submit,
	.flush_batch = uring_flush_batch,
	.reap = uring_reap,
	.set_fd = uring_set_fd,
	.destroy = uring_destroy,
	.wait = uring_wait,
};

/* io_uring's work bypasses seccomp: the ring may only read, write and sync the registered
 * image (fixed file 0, or the one PATCH /drives swaps in), nothing else. */
static int restrict_ring(struct io_uring *ring)
{
	struct io_uring_restriction r[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_FIXED_FILE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
		{ .opcode = IORING_RESTRICTION_REGISTER_OP,
		  .register_op = IORING_REGISTER_FILES_UPDATE },
	};
	/* Through the system call: Debian's liburing 2.3 does not export these two. */
	if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_RESTRICTIONS, r,
		    sizeof(r) / sizeof(r[0])) < 0 ||
	    syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) <
		    0)
		return -errno;
	return 0;
}

struct blk_engine *blk_uring_create(int fd, unsigned depth, char *err)
{
	struct uring_engine *u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, ERR_LEN, "out of memory");
		return NULL;
	}
	u->e.ops = &uring_ops;
	u->e.fd = fd;
	u->e.event_fd = -1;
	/* Created disabled, so that its restrictions are in place before it can run anything. */
	struct io_uring_params params = { .flags = IORING_SETUP_R_DISABLED };
	int rc = io_uring_queue_init_params(depth, &u->ring, &params);
	if (rc < 0) {
		snprintf(err, ERR_LEN,
			 "io_uring is not available on this host (io_uring_setup: %s)",
			 strerror(-rc));
		goto fail;
	}
	u->ring_live = true;
	rc = io_uring_register_files(&u->ring, &fd, 1);
	if (rc < 0) {
		snprintf(err, ERR_LEN, "io_uring_register_files: %s", strerror(-rc));
		goto fail;
	}
	u->e.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->e.event_fd < 0) {
		snprintf(err, ERR_LEN, "eventfd: %s", strerror(errno));
		goto fail;
	}
	rc = io_uring_register_eventfd(&u->ring, u->e.event_fd);
	if (rc < 0) {
		snprintf(err, ERR_LEN, "io_uring_register_eventfd: %s", strerror(-rc));
		goto fail;
	}
	rc = restrict_ring(&u->ring);
	if (rc < 0) {
		snprintf(err, ERR_LEN, "io_uring restrictions: %s", strerror(-rc));
		goto fail;
	}
	return &u->e;
fail:
	uring_destroy(&u->e);
	return NULL;
}

int blk_uring_probe(char *err)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(2, &ring, 0);
	if (rc < 0)
		return errf(err, rc, "io_uring is not available on this host (io_uring_setup: %s)",
			    strerror(-rc));
	io_uring_queue_exit(&ring);
	return 0;
}
