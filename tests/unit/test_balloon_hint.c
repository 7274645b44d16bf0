/* virtio-balloon's free page hinting without KVM (virtio/balloon_hint.c): the test is the
 * guest's driver. A run's hinted pages must read as zeros afterwards (they went back to the
 * host); hints of an older run, or after DONE, must leave the pages alone (the driver may be
 * using them again); the driver's STOP of the host's current run gets DONE when the run was
 * started with acknowledge_on_stop; malformed commands break the device; the state survives
 * a snapshot, checked; the API's hooks answer with Firecracker's messages. */
#include "balloon_driver.h"

#include "virtio/balloon_internal.h"

#define HINT_CMD (VIRTIO_MMIO_CONFIG + 8)
#define F_HINT	 (1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT)
#define F_STATS	 (1ULL << VIRTIO_BALLOON_F_STATS_VQ)
#define F_REPORT (1ULL << VIRTIO_BALLOON_F_REPORTING)

static const struct balloon_config hinting = { .free_page_hinting = true };

static uint32_t host_cmd(void)
{
	return unit_mmio_rd(t()->vm, t()->dev, HINT_CMD);
}

/* The driver's command id on queue q: one 4-byte readable buffer (Linux's outbuf), each in a
 * slot of its own so that several can wait in the ring. */
static void send_cmd(unsigned q, uint32_t cmd)
{
	static unsigned slot;
	uint64_t gpa = REQ + 0x10ULL * (slot++ % 64);
	memcpy(unit_gpa(t()->vm, gpa, 4), &cmd, 4);
	uint32_t len = 4;
	offer(q, &gpa, &len, (uint16_t[]){ 0 }, 1);
	unit_queue_notify(t()->dev, q);
}

/* A hint: one device-writable buffer over len bytes at gpa (Linux's inbuf of free pages). */
static void send_hint(unsigned q, uint64_t gpa, uint32_t len)
{
	offer(q, &gpa, &len, (uint16_t[]){ VIRTQ_DESC_F_WRITE }, 1);
	unit_queue_notify(t()->dev, q);
}

static unsigned long metric(enum balloon_metric m)
{
	return atomic_load(&balloon_metrics[m].value);
}

static void clear_config_irq(void)
{
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	assert_false(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_CONFIG);
}

static void the_hinting_queue_follows_statistics_and_precedes_reporting(void **state)
{
	(void)state;
	start(hinting, F_HINT, true);
	assert_int_equal(t()->dev->nr_queues, 3);
	assert_true(t()->dev->device_features & F_HINT);
	assert_int_equal(host_cmd(), BALLOON_HINT_CMD_STOP);
	balloon_teardown(NULL);
	/* Every queue: inflate, deflate, statistics, hinting (3), reporting (4). A command on
	 * 3 is no report (which would break the device); a report on 4 gives its pages back
	 * (a hint would not: no run). */
	struct balloon_config all_on = { .free_page_hinting = true,
					 .free_page_reporting = true,
					 .stats_polling_interval_s = 1 };
	start(all_on, F_HINT | F_STATS | F_REPORT, true);
	assert_int_equal(t()->dev->nr_queues, 5);
	send_cmd(3, BALLOON_HINT_CMD_STOP);
	assert_false(needs_reset());
	assert_int_equal(used(3)->idx, 1);
	memset(page(PAGES), FILL, 0x1000);
	send_hint(4, PAGES, 0x1000);
	assert_true(all(page(PAGES), 0x1000, 0));
	balloon_teardown(NULL);
	/* A driver that did not take hinting numbers reporting third after statistics. */
	start(all_on, F_STATS | F_REPORT, true);
	memset(page(PAGES), FILL, 0x1000);
	send_hint(3, PAGES, 0x1000);
	assert_int_equal(used(3)->idx, 1);
	assert_true(all(page(PAGES), 0x1000, 0));
	assert_false(needs_reset());
}

static void a_run_gives_hinted_pages_back_until_done(void **state)
{
	(void)state;
	start(hinting, F_HINT, true);
	unsigned long freed0 = metric(BM_HINT_FREED), count0 = metric(BM_HINT_COUNT);
	memset(page(PAGES), FILL, 0x10000);
	/* Before any run a hint is the driver's business: nothing goes back, even after a STOP
	 * that matches the host's STOP. */
	send_hint(2, PAGES, 0x1000);
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	send_hint(2, PAGES, 0x1000);
	assert_int_equal(used(2)->idx, 3);
	assert_true(all(page(PAGES), 0x1000, FILL));
	/* start: a new id through a configuration interrupt. */
	uint32_t gen = unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG_GENERATION);
	assert_int_equal(balloon_hint_start(t()->dev, true), 0);
	assert_int_equal(host_cmd(), 2);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_CONFIG);
	assert_int_not_equal(unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	clear_config_irq();
	/* The driver takes the run, hints two pages and a buffer that starts and ends inside
	 * pages (only its whole page goes back). */
	send_cmd(2, 2);
	send_hint(2, PAGES, 0x2000);
	send_hint(2, PAGES + 0x4800, 0x2000);
	assert_int_equal(used(2)->idx, 6);
	assert_true(all(page(PAGES), 0x2000, 0));
	assert_true(all(page(PAGES + 0x2000), 0x3000, FILL));
	assert_true(all(page(PAGES + 0x5000), 0x1000, 0));
	assert_true(all(page(PAGES + 0x6000), 0x2000, FILL));
	assert_int_equal(metric(BM_HINT_COUNT) - count0, 2);
	assert_int_equal(metric(BM_HINT_FREED) - freed0, 3 * 4096);
	struct balloon_state st;
	balloon_get_state(t()->dev, &st);
	assert_true(st.free_page_hinting && st.hint_has_guest_cmd);
	assert_int_equal(st.hint_guest_cmd, 2);
	assert_int_equal(st.hint_host_cmd, 2);
	/* STOP: acknowledged with DONE at once. */
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	assert_int_equal(host_cmd(), BALLOON_HINT_CMD_DONE);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_CONFIG);
	/* A hint still in the ring after DONE: the driver may be using those pages again. */
	send_hint(2, PAGES + 0x8000, 0x1000);
	assert_int_equal(used(2)->idx, 8);
	assert_true(all(page(PAGES + 0x8000), 0x1000, FILL));
	/* A second run without acknowledge_on_stop: a hint under the old id stays, one under
	 * the new id goes back; STOP leaves the run's id until the host stops it. */
	assert_int_equal(balloon_hint_start(t()->dev, false), 0);
	assert_int_equal(host_cmd(), 3);
	send_cmd(2, 2);
	send_hint(2, PAGES + 0x8000, 0x1000);
	assert_true(all(page(PAGES + 0x8000), 0x1000, FILL));
	send_cmd(2, 3);
	send_hint(2, PAGES + 0x8000, 0x1000);
	assert_true(all(page(PAGES + 0x8000), 0x1000, 0));
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	assert_int_equal(host_cmd(), 3);
	balloon_get_state(t()->dev, &st);
	assert_int_equal(st.hint_guest_cmd, BALLOON_HINT_CMD_STOP);
	assert_int_equal(balloon_hint_stop(t()->dev), 0);
	assert_int_equal(host_cmd(), BALLOON_HINT_CMD_DONE);
	assert_false(needs_reset());
	/* The driver may not write the command (nor anything but actual). */
	unit_mmio_wr(t()->vm, t()->dev, HINT_CMD, 7);
	assert_int_equal(host_cmd(), BALLOON_HINT_CMD_DONE);
}

static void a_stop_of_an_older_run_does_not_end_the_current_one(void **state)
{
	(void)state;
	start(hinting, F_HINT, true);
	assert_int_equal(balloon_hint_start(t()->dev, true), 0);
	send_cmd(2, 2);
	/* The host starts another run before the driver finished the first. */
	assert_int_equal(balloon_hint_start(t()->dev, true), 0);
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	assert_int_equal(host_cmd(), 3);
	send_cmd(2, 3);
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	assert_int_equal(host_cmd(), BALLOON_HINT_CMD_DONE);
}

static void hinting_needs_the_feature_and_a_started_driver(void **state)
{
	(void)state;
	start((struct balloon_config){ 0 }, 0, true);
	assert_int_equal(balloon_hint_start(t()->dev, true), -EOPNOTSUPP);
	assert_int_equal(balloon_hint_stop(t()->dev), -EOPNOTSUPP);
	assert_false(t()->dev->device_features & F_HINT);
	balloon_teardown(NULL);
	start(hinting, 0, false);
	assert_int_equal(balloon_hint_start(t()->dev, true), -EAGAIN);
	assert_int_equal(balloon_hint_stop(t()->dev), -EAGAIN);
	assert_int_equal(host_cmd(), BALLOON_HINT_CMD_STOP);
}

static void malformed_commands_break_the_device(void **state)
{
	(void)state;
	for (int k = 0; k < 3; k++) {
		start(hinting, F_HINT, true);
		assert_int_equal(balloon_hint_start(t()->dev, true), 0);
		uint32_t id = 2;
		memcpy(unit_gpa(t()->vm, REQ, 4), &id, 4);
		memset(page(PAGES), FILL, 0x1000);
		/* k 0: an 8-byte command; 1: a 2-byte one; 2: a command chained to a hint */
		uint64_t gpa[2] = { REQ, PAGES };
		uint32_t len[2] = { k == 0 ? 8 : k == 1 ? 2 : 4, 0x1000 };
		offer(2, gpa, len, (uint16_t[]){ 0, VIRTQ_DESC_F_WRITE }, k == 2 ? 2 : 1);
		unit_queue_notify(t()->dev, 2);
		assert_true(needs_reset());
		assert_int_equal(used(2)->idx, 0);
		assert_true(all(page(PAGES), 0x1000, FILL));
		balloon_teardown(NULL);
	}
}

/* Offsets in the balloon's state section: version, then after version 1's 103 bytes the
 * host's command, the last id, the guest's command and its flag, acknowledge_on_stop. */
#define ST_HOST	 103
#define ST_LAST	 107
#define ST_GUEST 111
#define ST_HAS	 115
#define ST_ACK	 116
#define ST_LEN	 117

static int restore(const uint8_t *buf, size_t len, char *err)
{
	struct snap_reader r = snapr_init(buf, len);
	return balloon_restore(t()->dev, &r, err);
}

static void the_hinting_state_survives_a_snapshot_checked(void **state)
{
	(void)state;
	start(hinting, F_HINT, true);
	assert_int_equal(balloon_hint_start(t()->dev, false), 0);
	send_cmd(2, 2);
	struct snap_writer w = { 0 };
	balloon_save(t()->dev, &w);
	assert_false(w.oom);
	assert_int_equal(w.len, ST_LEN);
	assert_int_equal(get32(w.buf), 2);
	uint8_t s[ST_LEN];
	memcpy(s, w.buf, ST_LEN);
	snapw_free(&w);
	char err[ERR_LEN];
	/* The run ends, then the saved state comes back: the run's id, the guest's command,
	 * and no acknowledge_on_stop (the driver's STOP leaves the run). */
	assert_int_equal(balloon_hint_stop(t()->dev), 0);
	assert_int_equal(restore(s, ST_LEN, err), 0);
	assert_int_equal(host_cmd(), 2);
	struct balloon_state st;
	balloon_get_state(t()->dev, &st);
	assert_true(st.hint_has_guest_cmd);
	assert_int_equal(st.hint_guest_cmd, 2);
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	assert_int_equal(host_cmd(), 2);
	assert_int_equal(balloon_hint_start(t()->dev, true), 0);
	assert_int_equal(host_cmd(), 3); /* the last id came back too */
	/* Refused: undefined flags, a command the host never gave, a last id of DONE, a guest
	 * command without its flag, version 1 (no hinting) on a device with hinting, and the
	 * state cut short. */
	struct {
		unsigned off;
		uint32_t v;
		bool byte;
	} bad[] = {
		{ ST_HAS, 2, true },   { ST_ACK, 2, true }, { ST_HOST, 5, false },
		{ ST_LAST, 1, false }, { ST_HAS, 0, true }, { 0, 1, false },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t b[ST_LEN];
		memcpy(b, s, ST_LEN);
		if (bad[i].byte)
			b[bad[i].off] = (uint8_t)bad[i].v;
		else
			put32(b + bad[i].off, bad[i].v);
		if (restore(b, ST_LEN, err) != -EINVAL)
			fail_msg("accepted bad state %zu", i);
	}
	assert_int_equal(restore(s, ST_LEN - 1, err), -EINVAL);
	assert_int_equal(restore(s, 103, err), -EINVAL);
	/* The last id wraps past the reserved values. */
	uint8_t wrap[ST_LEN];
	memcpy(wrap, s, ST_LEN);
	put32(wrap + ST_HOST, BALLOON_HINT_CMD_DONE);
	put32(wrap + ST_LAST, UINT32_MAX);
	assert_int_equal(restore(wrap, ST_LEN, err), 0);
	assert_int_equal(balloon_hint_start(t()->dev, true), 0);
	assert_int_equal(host_cmd(), 2);
	balloon_teardown(NULL);
	/* A device without hinting writes version 1 (as embers before hinting did) and takes
	 * no version 2. */
	start((struct balloon_config){ 0 }, 0, true);
	balloon_save(t()->dev, &w);
	assert_int_equal(w.len, 103);
	assert_int_equal(get32(w.buf), 1);
	assert_int_equal(restore(w.buf, w.len, err), 0);
	snapw_free(&w);
	assert_int_equal(restore(s, ST_LEN, err), -EINVAL);
}

/* The API's hooks: PATCH /balloon/hinting/{start,stop} and GET /balloon/hinting/status. */
static int patch(struct virtio_dev *dev, const char *id, const char *body, char *err)
{
	struct balloon_config store = { .configured = true };
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	int rc = balloon_kind.update(&store, dev, id, j, err);
	json_decref(j);
	return rc;
}

static char *get(struct virtio_dev *dev, bool started, const char *id, char *err)
{
	struct balloon_config store = { .configured = true, .free_page_hinting = true };
	json_t *out = NULL;
	int rc = balloon_kind.get(&store, dev, started, id, &out, err);
	if (rc)
		return NULL;
	char *s = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	return s;
}

static void expect_err(int rc, const char *err, const char *msg)
{
	if (rc != -EINVAL || strcmp(err, msg) != 0)
		fail_msg("rc %d, '%s', expected '%s'", rc, err, msg);
}

static void expect_get(struct virtio_dev *dev, const char *id, const char *want)
{
	char err[ERR_LEN] = "";
	char *s = get(dev, true, id, err);
	if (!s || strcmp(s, want) != 0)
		fail_msg("GET %s: '%s' (%s), expected '%s'", id, s ? s : "", err, want);
	free(s);
}

static void the_api_answers_with_firecrackers_messages(void **state)
{
	(void)state;
	const char *none =
		"Balloon update error: Failed perform action on device: Device not found";
	const char *off =
		"Balloon update error: Balloon: Attempting to use hinting when not enabled";
	const char *inactive = "Balloon update error: Balloon: Device not activated yet.";
	char err[ERR_LEN];
	/* The path first, then the body, then the device. */
	expect_err(patch(NULL, "hinting/go", NULL, err), err,
		   "Unrecognized PATCH request path `/hinting/go`.");
	expect_err(patch(NULL, "hinting", NULL, err), err,
		   "Unrecognized PATCH request path `/hinting/`.");
	assert_int_equal(patch(NULL, "hinting/start", "{\"acknowledge_on_stop\": 1}", err),
			 -EINVAL);
	assert_non_null(strstr(err, "acknowledge_on_stop"));
	expect_err(patch(NULL, "hinting/start", NULL, err), err, none);
	expect_err(patch(NULL, "hinting/stop", "{}", err), err, none);
	expect_err(patch(NULL, NULL, NULL, err), err, "Empty PATCH request.");
	assert_null(get(NULL, true, "hinting/state", err));
	assert_string_equal(err, "Unrecognized GET request path `/hinting/state`.");
	assert_null(get(NULL, true, "hinting", err));
	assert_string_equal(err, "Unrecognized GET request path `/hinting/`.");
	err[0] = '\0';
	struct balloon_config store = { 0 };
	json_t *out = NULL;
	assert_int_equal(balloon_kind.get(&store, NULL, false, "hinting/status", &out, err),
			 -EPERM);
	assert_null(get(NULL, true, "hinting/status", err));
	assert_string_equal(err, none);
	/* A balloon without hinting. */
	start((struct balloon_config){ 0 }, 0, true);
	expect_err(patch(t()->dev, "hinting/start", NULL, err), err, off);
	expect_err(patch(t()->dev, "hinting/stop", NULL, err), err, off);
	assert_null(get(t()->dev, true, "hinting/status", err));
	assert_string_equal(err, off);
	balloon_teardown(NULL);
	/* With hinting, before the driver: status, but no commands. */
	start(hinting, 0, false);
	expect_err(patch(t()->dev, "hinting/start", "{}", err), err, inactive);
	expect_err(patch(t()->dev, "hinting/stop", NULL, err), err, inactive);
	expect_get(t()->dev, "hinting/status", "{\"host_cmd\":0}");
	balloon_teardown(NULL);
	/* With the driver: start (acknowledge_on_stop defaults to true, other fields are
	 * ignored, as Firecracker does), the guest's command, stop. */
	start(hinting, F_HINT, true);
	assert_int_equal(patch(t()->dev, "hinting/start", "{\"other\": 1}", err), 0);
	expect_get(t()->dev, "hinting/status", "{\"host_cmd\":2}");
	send_cmd(2, 2);
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	expect_get(t()->dev, "hinting/status", "{\"host_cmd\":1,\"guest_cmd\":0}");
	assert_int_equal(patch(t()->dev, "hinting/start/", "{\"acknowledge_on_stop\": false}", err),
			 0);
	send_cmd(2, 3);
	send_cmd(2, BALLOON_HINT_CMD_STOP);
	expect_get(t()->dev, "hinting/status", "{\"host_cmd\":3,\"guest_cmd\":0}");
	assert_int_equal(patch(t()->dev, "hinting/stop", NULL, err), 0);
	expect_get(t()->dev, "hinting/status", "{\"host_cmd\":1,\"guest_cmd\":0}");
	/* GET /balloon and the configuration show the field when it is on. */
	expect_get(t()->dev, NULL,
		   "{\"amount_mib\":0,\"deflate_on_oom\":false,\"stats_polling_interval_s\":0,"
		   "\"free_page_hinting\":true}");
	struct balloon_config cfg = { .configured = true, .free_page_hinting = true };
	json_t *j = balloon_kind.to_json(&cfg);
	assert_true(json_is_true(json_object_get(j, "free_page_hinting")));
	assert_null(json_object_get(j, "free_page_reporting"));
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BALLOON_TEST(the_hinting_queue_follows_statistics_and_precedes_reporting),
		BALLOON_TEST(a_run_gives_hinted_pages_back_until_done),
		BALLOON_TEST(a_stop_of_an_older_run_does_not_end_the_current_one),
		BALLOON_TEST(hinting_needs_the_feature_and_a_started_driver),
		BALLOON_TEST(malformed_commands_break_the_device),
		BALLOON_TEST(the_hinting_state_survives_a_snapshot_checked),
		BALLOON_TEST(the_api_answers_with_firecrackers_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
