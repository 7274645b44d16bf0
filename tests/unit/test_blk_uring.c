/* The io_uring engine's ring is restricted: it reads, writes and syncs the registered image
 * and nothing else, since what io_uring does bypasses ember's seccomp filters. The engine's
 * own file is compiled in, to reach its ring. */
#include "unit_util.h"

#include "virtio/blk_uring.c"

#define DATA_LEN 4096

/* Submits one prepared SQE and returns its completion's result. */
static int run_one(struct io_uring *ring)
{
	assert_int_equal(io_uring_submit(ring), 1);
	struct io_uring_cqe *cqe;
	assert_int_equal(io_uring_wait_cqe(ring, &cqe), 0);
	int res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

static struct uring_engine *engine_on(const char **path, int *fd)
{
	static uint8_t data[DATA_LEN];
	memset(data, 0x5a, sizeof(data));
	*path = unit_tmp_file(data, sizeof(data));
	*fd = open(*path, O_RDWR | O_CLOEXEC);
	assert_true(*fd >= 0);
	char err[ERR_LEN];
	struct blk_engine *e = blk_uring_create(*fd, 8, err);
	if (!e)
		fail_msg("blk_uring_create: %s", err);
	return to_uring(e);
}

static void restricted_ring(void **state)
{
	(void)state;
	char why[ERR_LEN];
	if (blk_uring_probe(why))
		skip(); /* no io_uring on this host: the engine is refused at configuration */
	const char *path;
	int fd;
	struct uring_engine *u = engine_on(&path, &fd);
	static uint8_t buf[DATA_LEN];
	struct iovec iov = { buf, sizeof(buf) };

	/* Allowed: a read of the registered image. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_readv(sqe, 0, &iov, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	assert_int_equal(run_one(&u->ring), DATA_LEN);
	assert_int_equal(buf[0], 0x5a);

	/* Refused: the same read on a plain descriptor, which could be any file. */
	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_readv(sqe, fd, &iov, 1, 0);
	assert_int_equal(run_one(&u->ring), -EACCES);

	/* Refused: any other operation, even on the registered file. */
	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDONLY, 0);
	assert_int_equal(run_one(&u->ring), -EACCES);
	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_read(sqe, 0, buf, sizeof(buf), 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	assert_int_equal(run_one(&u->ring), -EACCES);

	/* Registering: only swapping the file (PATCH /drives) is allowed. */
	assert_int_equal(uring_set_fd(&u->e, fd), 0);
	assert_int_equal(io_uring_register_buffers(&u->ring, &iov, 1), -EACCES);

	uring_destroy(&u->e);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(restricted_ring, unit_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
