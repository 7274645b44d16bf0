/* virtio-blk's snapshot hooks, through the driver in blk_harness.h: blk_quiesce gives the
 * Async engine's requests in flight back to the driver before anything is saved, and the
 * rate limiter's buckets survive blk_save and blk_restore. */
#include "blk_harness.h"

#include "core/snapbuf.h"

/* A FLUSH with 8 MiB to write back is still in flight when the notification returns;
 * blk_quiesce waits for it and publishes it, status byte and used ring. */
static void quiesce_finishes_requests_in_flight(void **state)
{
	(void)state;
	char err[ERR_LEN];
	if (blk_uring_probe(err))
		skip();
	struct drive_config d = drive(DRIVE_ENGINE_ASYNC, false);
	start(&d);
	dirty_the_image();
	queue_req(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	queue_req(1, VIRTIO_BLK_T_IN, 3, DATA_GPA, 512);
	pthread_mutex_lock(&t()->dev->lock);
	t()->dev->ops->queue_notify(t()->dev, 0);
	pthread_mutex_unlock(&t()->dev->lock);
	assert_true(used()->idx < 2); /* the FLUSH at least is still in flight */
	struct snap_writer w = { 0 };
	assert_int_equal(blk_save(t()->dev, &w, err), -EBUSY);
	assert_non_null(strstr(err, "requests in flight"));
	assert_int_equal(blk_quiesce(t()->dev, err), 0);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(*status_of(0), VIRTIO_BLK_S_OK);
	assert_int_equal(*status_of(1), VIRTIO_BLK_S_OK);
	assert_memory_equal(unit_gpa(t()->vm, DATA_GPA, 512), t()->pattern + 3 * 512, 512);
	w.len = 0;
	assert_int_equal(blk_save(t()->dev, &w, err), 0);
	snapw_free(&w);
}

/* An ops bucket of 2 per second, emptied by two FLUSHes before the save. */
static struct drive_config limited_drive(uint64_t size)
{
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	d.rate_limiter.ops = (struct token_bucket_config){ size, 0, 1000 };
	return d;
}

/* Saves the state of a drive whose ops bucket two FLUSHes emptied, and starts a new device
 * (full buckets) from config d. */
static void save_emptied_then_restart(struct snap_writer *w, const struct drive_config *d)
{
	char err[ERR_LEN];
	struct drive_config first = limited_drive(2);
	start(&first);
	queue_req(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	queue_req(1, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	notify();
	run_loop(1000, true);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(blk_quiesce(t()->dev, err), 0);
	assert_int_equal(blk_save(t()->dev, w, err), 0);
	unit_device_machine_free(t()->vm, t()->dev);
	t()->dev = NULL;
	start(d);
}

static void limiter_state_survives_a_snapshot(void **state)
{
	(void)state;
	char err[ERR_LEN];
	struct snap_writer w = { 0 };
	struct drive_config d = limited_drive(2);
	save_emptied_then_restart(&w, &d);
	struct snap_reader r = snapr_init(w.buf, w.len);
	assert_int_equal(blk_restore(t()->dev, &r, err), 0);
	snapw_free(&w);
	/* The restored bucket is as empty as the saved one: the next FLUSH waits for a refill
	 * (half a second for one token), where a fresh device would take it at once. */
	queue_req(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	notify();
	run_loop(200, true);
	assert_int_equal(used()->idx, 0);
	uint64_t ms = run_loop(2000, true);
	assert_int_equal(used()->idx, 1);
	if (ms > 900)
		fail_msg("the held FLUSH took %llu more ms, expected under 500",
			 (unsigned long long)ms);
}

static void limiter_state_of_another_configuration_is_refused(void **state)
{
	(void)state;
	char err[ERR_LEN];
	struct snap_writer w = { 0 };
	struct drive_config d = limited_drive(5);
	save_emptied_then_restart(&w, &d);
	struct snap_reader r = snapr_init(w.buf, w.len);
	assert_int_equal(blk_restore(t()->dev, &r, err), -EINVAL);
	assert_string_equal(
		err, "drive disk_1: the saved rate limiter state does not fit its configuration");
	/* A trailing byte is refused too, and a truncated bucket. */
	struct drive_config same = limited_drive(2);
	unit_device_machine_free(t()->vm, t()->dev);
	t()->dev = NULL;
	start(&same);
	snapw_u8(&w, 0);
	r = snapr_init(w.buf, w.len);
	assert_int_equal(blk_restore(t()->dev, &r, err), -EINVAL);
	r = snapr_init(w.buf, w.len - 9);
	assert_int_equal(blk_restore(t()->dev, &r, err), -EINVAL);
	/* Format 1.3's state, the size alone, restores with full buckets. */
	r = snapr_init(w.buf, 8);
	assert_int_equal(blk_restore(t()->dev, &r, err), 0);
	r = snapr_init(w.buf, 7);
	assert_int_equal(blk_restore(t()->dev, &r, err), -EINVAL);
	assert_string_equal(err, "drive disk_1: snapshot state truncated");
	snapw_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BLK_TEST(quiesce_finishes_requests_in_flight),
		BLK_TEST(limiter_state_survives_a_snapshot),
		BLK_TEST(limiter_state_of_another_configuration_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
