/* virtio-balloon's request path without KVM: the test is the guest's driver on rings in guest
 * memory of its own. Inflated and reported pages must read as zeros afterwards (they went
 * back to the host), their neighbours must not; PFNs outside guest memory are skipped; the
 * statistics buffer is held until the polling timer on the VMM's event loop returns it. */
#include "unit_util.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "balloon_driver.h"

/* An inflate or deflate request: the PFNs in one readable buffer at REQ + 0x1000 * slot. */
static uint16_t offer_pfns(unsigned q, unsigned slot, const uint32_t *pfns, unsigned n)
{
	uint64_t gpa = REQ + 0x1000ULL * slot;
	memcpy(unit_gpa(t()->vm, gpa, 4 * n), pfns, 4 * n);
	uint32_t len = 4 * n;
	return offer(q, &gpa, &len, (uint16_t[]){ 0 }, 1);
}

static void inflate_gives_pages_back_and_skips_pfns_outside_memory(void **state)
{
	(void)state;
	start((struct balloon_config){ .amount_mib = 1 }, 0, true);
	memset(page(PAGES), FILL, 0x10000);
	/* A run of three, a lone page, then two PFNs outside guest memory: 4 GiB - 4 KiB
	 * (in the MMIO gap's direction) and the first page past the end. */
	uint32_t pfns[] = { 0x800, 0x801, 0x802, 0x805, 0xfffff, MEM_BYTES >> 12 };
	uint16_t head = offer_pfns(0, 0, pfns, 6);
	unit_queue_notify(t()->dev, 0);
	assert_int_equal(used(0)->idx, 1);
	assert_int_equal(used(0)->ring[0].id, head);
	assert_int_equal(used(0)->ring[0].len, 0);
	assert_true(all(page(PAGES), 3 * 4096, 0));
	assert_true(all(page(PAGES + 0x3000), 2 * 4096, FILL)); /* 0x803, 0x804 kept */
	assert_true(all(page(PAGES + 0x5000), 4096, 0));
	assert_true(all(page(PAGES + 0x6000), 0xa000, FILL));
	assert_false(needs_reset());
	/* Deflating asks nothing of the host: the pages stay as they are. */
	offer_pfns(1, 1, (uint32_t[]){ 0x806 }, 1);
	unit_queue_notify(t()->dev, 1);
	assert_int_equal(used(1)->idx, 1);
	assert_true(all(page(PAGES + 0x6000), 4096, FILL));
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_USED_RING);
}

static void discarded_pages_are_marked_dirty(void **state)
{
	(void)state;
	start((struct balloon_config){ 0 }, 0, true);
	assert_int_equal(guest_mem_track(&t()->vm->mem, true), 0);
	memset(page(PAGES), FILL, 0x4000);
	offer_pfns(0, 0, (uint32_t[]){ 0x800, 0x802 }, 2);
	unit_queue_notify(t()->dev, 0);
	assert_int_equal(used(0)->idx, 1);
	static uint64_t bits[MEM_BYTES / 4096 / 64];
	memset(bits, 0, sizeof(bits));
	guest_mem_take_dirty(&t()->vm->mem, bits);
	/* A Diff snapshot must record that these pages read as zeros now, as a Full would. */
	assert_true(bits[0x800 / 64] & (1ULL << (0x800 % 64)));
	assert_true(bits[0x802 / 64] & (1ULL << (0x802 % 64)));
	assert_false(bits[0x801 / 64] & (1ULL << (0x801 % 64)));
	guest_mem_track(&t()->vm->mem, false);
}

static void malformed_requests_break_the_device(void **state)
{
	(void)state;
	for (int k = 0; k < 3; k++) {
		start((struct balloon_config){ 0 }, 0, true);
		memset(page(PAGES), FILL, 4096);
		uint64_t gpa = REQ;
		uint32_t pfn = 0x800, len = k == 1 ? 6 : k == 2 ? 4 * (BALLOON_PFNS_MAX + 1) : 4;
		memcpy(unit_gpa(t()->vm, REQ, 4), &pfn, 4);
		/* k 0: a writable buffer; 1: not whole PFNs; 2: more PFNs than a request holds */
		offer(0, &gpa, &len, (uint16_t[]){ k == 0 ? VIRTQ_DESC_F_WRITE : 0 }, 1);
		unit_queue_notify(t()->dev, 0);
		assert_true(needs_reset());
		assert_int_equal(used(0)->idx, 0);
		assert_true(all(page(PAGES), 4096, FILL));
		balloon_teardown(NULL);
	}
}

static void the_driver_writes_actual_and_only_actual(void **state)
{
	(void)state;
	start((struct balloon_config){ .amount_mib = 3 }, 0, true);
	assert_int_equal(unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG), 3 * 256);
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG + 4, 700);
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG, 5);	    /* num_pages: refused */
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG + 8, 5); /* beyond: refused */
	struct balloon_state st;
	balloon_get_state(t()->dev, &st);
	assert_int_equal(st.target_pages, 3 * 256);
	assert_int_equal(st.actual_pages, 700);
	assert_int_equal(unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG + 4), 700);
	/* A new target reaches the driver through a configuration interrupt. */
	uint32_t gen = unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG_GENERATION);
	assert_int_equal(balloon_set_target(t()->dev, 1024), 0);
	assert_int_equal(unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG), 1024);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_CONFIG);
	assert_int_not_equal(unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	/* A reset forgets the driver's count. */
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_STATUS, 0);
	balloon_get_state(t()->dev, &st);
	assert_int_equal(st.actual_pages, 0);
	assert_int_equal(balloon_set_target(t()->dev, 1), -EAGAIN);
}

static void a_target_needs_a_started_driver(void **state)
{
	(void)state;
	start((struct balloon_config){ 0 }, 0, false);
	assert_int_equal(balloon_set_target(t()->dev, 256), -EAGAIN);
	struct balloon_state st;
	balloon_get_state(t()->dev, &st);
	assert_int_equal(st.target_pages, 0);
	assert_false(st.running);
}

/* Runs the VMM event loop for ms milliseconds. */
static void run_loop_ms(unsigned ms)
{
	uint64_t end = monotonic_ns() + ms * 1000000ULL;
	while (monotonic_ns() < end)
		evloop_poll(&t()->vm->loop, 10);
}

static uint16_t offer_stats(unsigned q, uint64_t memtot, uint64_t memfree)
{
	uint8_t buf[30];
	uint16_t tags[3] = { BALLOON_S_MEMTOT, BALLOON_S_MEMFREE, 99 };
	uint64_t vals[3] = { memtot, memfree, 7 };
	for (int i = 0; i < 3; i++) {
		memcpy(buf + 10 * i, &tags[i], 2);
		memcpy(buf + 10 * i + 2, &vals[i], 8);
	}
	uint64_t gpa = REQ + 0x8000;
	memcpy(unit_gpa(t()->vm, gpa, sizeof(buf)), buf, sizeof(buf));
	uint32_t len = sizeof(buf);
	return offer(q, &gpa, &len, (uint16_t[]){ 0 }, 1);
}

static void statistics_are_held_until_the_timer_returns_them(void **state)
{
	(void)state;
	start((struct balloon_config){ .stats_polling_interval_s = 1 },
	      1ULL << VIRTIO_BALLOON_F_STATS_VQ, true);
	assert_int_equal(t()->dev->nr_queues, 3);
	uint16_t head = offer_stats(2, 256 * MIB, 100 * MIB);
	unit_queue_notify(t()->dev, 2);
	assert_int_equal(used(2)->idx, 0); /* held */
	struct balloon_state st;
	balloon_get_state(t()->dev, &st);
	assert_int_equal(st.have, (1u << BALLOON_S_MEMTOT) | (1u << BALLOON_S_MEMFREE));
	assert_int_equal(st.stats[BALLOON_S_MEMTOT], 256 * MIB);
	assert_int_equal(st.stats[BALLOON_S_MEMFREE], 100 * MIB);
	json_t *j = balloon_stats_json(&st);
	assert_int_equal(json_integer_value(json_object_get(j, "total_memory")), 256 * MIB);
	assert_int_equal(json_integer_value(json_object_get(j, "free_memory")), 100 * MIB);
	assert_null(json_object_get(j, "swap_in"));
	assert_non_null(json_object_get(j, "actual_mib"));
	json_decref(j);
	/* The timer (1 s) gives it back. */
	run_loop_ms(600);
	assert_int_equal(used(2)->idx, 0);
	run_loop_ms(800);
	assert_int_equal(used(2)->idx, 1);
	assert_int_equal(used(2)->ring[0].id, head);
	/* Statistics cannot be switched off (or on) while the device lives; a new interval
	 * asks for them at once. */
	assert_int_equal(balloon_set_stats_interval(t()->dev, 0), -EINVAL);
	offer_stats(2, 256 * MIB, 90 * MIB);
	unit_queue_notify(t()->dev, 2);
	assert_int_equal(used(2)->idx, 1);
	assert_int_equal(balloon_set_stats_interval(t()->dev, 5), 0);
	assert_int_equal(used(2)->idx, 2);
	assert_false(needs_reset());
}

static void statistics_cannot_be_switched_on_after_boot(void **state)
{
	(void)state;
	start((struct balloon_config){ 0 }, 0, true);
	assert_int_equal(t()->dev->nr_queues, 2);
	assert_int_equal(balloon_set_stats_interval(t()->dev, 1), -EINVAL);
	assert_int_equal(balloon_set_stats_interval(t()->dev, 0), 0);
}

/* Free page reporting on queue q: a 2-page aligned buffer and one that starts and ends inside
 * pages; only the whole pages go back. */
static void report_on(unsigned q)
{
	memset(page(PAGES), FILL, 0x10000);
	uint64_t gpa[2] = { PAGES, PAGES + 0x4800 };
	uint32_t len[2] = { 0x2000, 0x2000 };
	offer(q, gpa, len, (uint16_t[]){ VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE }, 2);
	unit_queue_notify(t()->dev, q);
	assert_int_equal(used(q)->idx, 1);
	assert_true(all(page(PAGES), 0x2000, 0));
	assert_true(all(page(PAGES + 0x2000), 0x3000, FILL)); /* up to 0x5000 */
	assert_true(all(page(PAGES + 0x5000), 0x1000, 0));    /* the one whole page */
	assert_true(all(page(PAGES + 0x6000), 0xa000, FILL));
	assert_false(needs_reset());
}

static void free_page_reports_give_back_whole_pages(void **state)
{
	(void)state;
	/* Without statistics, reporting is the third queue. */
	start((struct balloon_config){ .free_page_reporting = true },
	      1ULL << VIRTIO_BALLOON_F_REPORTING, true);
	report_on(2);
	/* A readable buffer is no report. */
	uint64_t gpa = PAGES + 0x8000;
	uint32_t len = 0x1000;
	offer(2, &gpa, &len, (uint16_t[]){ 0 }, 1);
	unit_queue_notify(t()->dev, 2);
	assert_true(needs_reset());
	assert_true(all(page(PAGES + 0x8000), 0x1000, FILL));
	balloon_teardown(NULL);
	/* With statistics the fourth; a driver that took reporting but not statistics has it
	 * third, as Linux numbers the queues it uses. */
	struct balloon_config both = { .free_page_reporting = true, .stats_polling_interval_s = 1 };
	start(both, (1ULL << VIRTIO_BALLOON_F_REPORTING) | (1ULL << VIRTIO_BALLOON_F_STATS_VQ),
	      true);
	report_on(3);
	balloon_teardown(NULL);
	start(both, 1ULL << VIRTIO_BALLOON_F_REPORTING, true);
	report_on(2);
}

static void snapshot_state_is_checked(void **state)
{
	(void)state;
	start((struct balloon_config){ .amount_mib = 2 }, 0, true);
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_CONFIG + 4, 300);
	struct snap_writer w = { 0 };
	balloon_save(t()->dev, &w);
	assert_false(w.oom);
	char err[ERR_LEN];
	/* Back onto the same device: fine; a byte short or one too many: refused. */
	struct snap_reader r = snapr_init(w.buf, w.len);
	assert_int_equal(balloon_restore(t()->dev, &r, err), 0);
	r = snapr_init(w.buf, w.len - 1);
	assert_int_equal(balloon_restore(t()->dev, &r, err), -EINVAL);
	uint8_t longer[256];
	memcpy(longer, w.buf, w.len);
	r = snapr_init(longer, w.len + 1);
	assert_int_equal(balloon_restore(t()->dev, &r, err), -EINVAL);
	/* A target beyond guest memory, and a held statistics buffer without a queue. */
	uint8_t bad[256];
	memcpy(bad, w.buf, w.len);
	put32(bad + 4, (MEM_BYTES >> 12) + 1);
	r = snapr_init(bad, w.len);
	assert_int_equal(balloon_restore(t()->dev, &r, err), -EINVAL);
	assert_non_null(strstr(err, "larger than guest memory"));
	memcpy(bad, w.buf, w.len);
	bad[16] = 1;
	r = snapr_init(bad, w.len);
	assert_int_equal(balloon_restore(t()->dev, &r, err), -EINVAL);
	struct balloon_state st;
	balloon_get_state(t()->dev, &st);
	assert_int_equal(st.target_pages, 512);
	assert_int_equal(st.actual_pages, 300);
	snapw_free(&w);
}

static void the_api_body_is_checked(void **state)
{
	(void)state;
	struct balloon_config cfg = { 0 };
	char err[ERR_LEN];
	json_t *ok = json_pack("{s:i, s:b, s:i, s:b, s:b}", "amount_mib", 64, "deflate_on_oom", 1,
			       "stats_polling_interval_s", 2, "free_page_reporting", 1,
			       "free_page_hinting", 1);
	assert_int_equal(balloon_config_put(&cfg, NULL, ok, err), 0);
	assert_true(cfg.configured && cfg.deflate_on_oom && cfg.free_page_reporting);
	assert_true(cfg.free_page_hinting);
	assert_int_equal(cfg.amount_mib, 64);
	assert_int_equal(cfg.stats_polling_interval_s, 2);
	json_decref(ok);
	const char *bad[] = {
		"{\"deflate_on_oom\": true}",
		"{\"amount_mib\": 1}",
		"{\"amount_mib\": -1, \"deflate_on_oom\": true}",
		"{\"amount_mib\": 16777216, \"deflate_on_oom\": true}",
		"{\"amount_mib\": 1, \"deflate_on_oom\": true, \"stats_polling_interval_s\": "
		"65536}",
		"{\"amount_mib\": 1, \"deflate_on_oom\": 1}",
		"{\"amount_mib\": 1, \"deflate_on_oom\": true, \"free_page_hinting\": 1}",
		"{\"amount_mib\": 1, \"deflate_on_oom\": true, \"extra\": 0}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);
		assert_non_null(j);
		if (balloon_config_put(&cfg, NULL, j, err) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
		json_decref(j);
	}
	assert_int_equal(cfg.amount_mib, 64); /* refused bodies changed nothing */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BALLOON_TEST(inflate_gives_pages_back_and_skips_pfns_outside_memory),
		BALLOON_TEST(discarded_pages_are_marked_dirty),
		BALLOON_TEST(malformed_requests_break_the_device),
		BALLOON_TEST(the_driver_writes_actual_and_only_actual),
		BALLOON_TEST(a_target_needs_a_started_driver),
		BALLOON_TEST(statistics_are_held_until_the_timer_returns_them),
		BALLOON_TEST(statistics_cannot_be_switched_on_after_boot),
		BALLOON_TEST(free_page_reports_give_back_whole_pages),
		BALLOON_TEST(snapshot_state_is_checked),
		BALLOON_TEST(the_api_body_is_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
