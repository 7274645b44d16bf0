/* virtio-rng's request path without KVM: the test is the guest's driver on rings in guest
 * memory of its own, and runs the VMM's event loop where the rate limiter's timer must bring
 * a throttled queue back. */
#include "unit_util.h"

#include "core/log.h"
#include "virtio/rng.h"

#define NUM	16
#define DESC	0x10000ULL
#define AVAIL	0x11000ULL
#define USED	0x12000ULL
#define BUF	0x100000ULL /* buffer i at + 0x1000 * i */
#define BIG	0x200000ULL /* 80 KiB: more than a request gets */
#define BIG_LEN (80 * 1024)

struct t {
	struct machine *vm;
	struct virtio_dev *dev;
	uint16_t next_desc;
};

static struct t *t(void)
{
	static struct t s;
	return &s;
}

static const struct unit_ring ring = { NUM, DESC, AVAIL, USED };

static int rng_teardown(void **state)
{
	unit_device_machine_free(t()->vm, t()->dev);
	memset(t(), 0, sizeof(*t()));
	return unit_teardown(state);
}

#define RNG_TEST(fn) cmocka_unit_test_teardown(fn, rng_teardown)

static void start(const struct rate_limiter_config *rl)
{
	t()->vm = unit_vm_new(4 * MIB);
	assert_int_equal(evloop_init(&t()->vm->loop), 0);
	struct entropy_config cfg = { .configured = true };
	if (rl)
		cfg.rate_limiter = *rl;
	char err[ERR_LEN];
	if (rng_create(t()->vm, &cfg, &t()->dev, err))
		fail_msg("rng_create: %s", err);
	assert_int_equal(unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
	unit_driver_init(t()->vm, t()->dev, 1ULL << VIRTIO_F_VERSION_1, &ring, 1);
}

static struct virtq_used *used(void)
{
	return (struct virtq_used *)unit_gpa(t()->vm, USED, 6 + 8 * NUM + 2);
}

/* Offers one chain of n buffers (descriptors taken in turn) with flags[i]; returns its head. */
static uint16_t offer(const uint64_t *gpa, const uint32_t *len, const uint16_t *flags, unsigned n)
{
	struct virtq_desc *d = (struct virtq_desc *)unit_gpa(t()->vm, DESC, 16 * NUM);
	uint16_t head = t()->next_desc;
	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % NUM);
		uint16_t f = (uint16_t)(flags[i] | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		d[at] = (struct virtq_desc){ gpa[i], len[i], f, (uint16_t)((at + 1) % NUM) };
	}
	t()->next_desc = (uint16_t)((head + n) % NUM);
	struct virtq_avail *a = (struct virtq_avail *)unit_gpa(t()->vm, AVAIL, 6 + 2 * NUM);
	a->ring[a->idx % NUM] = head;
	a->idx++;
	return head;
}

/* One writable buffer of len bytes at gpa, filled with fill first. */
static uint16_t offer_buf(uint64_t gpa, uint32_t len, uint8_t fill)
{
	if (len)
		memset(unit_gpa(t()->vm, gpa, len), fill, len);
	return offer(&gpa, &len, (uint16_t[]){ VIRTQ_DESC_F_WRITE }, 1);
}

static bool needs_reset(void)
{
	return unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_STATUS) &
	       VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static bool all(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static unsigned distinct(const uint8_t *p, size_t n)
{
	bool seen[256] = { false };
	unsigned d = 0;
	for (size_t i = 0; i < n; i++)
		if (!seen[p[i]]) {
			seen[p[i]] = true;
			d++;
		}
	return d;
}

static void fills_every_buffer_of_a_chain(void **state)
{
	(void)state;
	start(NULL);
	/* 7 + 57 bytes over two descriptors, then a plain 64-byte buffer. */
	uint64_t gpa[2] = { BUF, BUF + 0x1000 };
	memset(unit_gpa(t()->vm, BUF, 0x2000), 0, 0x2000);
	uint16_t h0 = offer(gpa, (uint32_t[]){ 7, 57 },
			    (uint16_t[]){ VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE }, 2);
	uint16_t h1 = offer_buf(BUF + 0x2000, 64, 0);
	unit_queue_notify(t()->dev, 0);
	struct virtq_used *u = used();
	assert_int_equal(u->idx, 2);
	assert_int_equal(u->ring[0].id, h0);
	assert_int_equal(u->ring[0].len, 64);
	assert_int_equal(u->ring[1].id, h1);
	assert_int_equal(u->ring[1].len, 64);
	uint8_t *a = unit_gpa(t()->vm, BUF, 0x1000), *b = unit_gpa(t()->vm, BUF + 0x1000, 0x1000);
	uint8_t *c = unit_gpa(t()->vm, BUF + 0x2000, 64);
	assert_false(all(a, 7, 0));
	assert_false(all(b, 57, 0));
	/* Nothing beyond the buffers' lengths. */
	assert_true(all(a + 7, 0x1000 - 7, 0));
	assert_true(all(b + 57, 0x1000 - 57, 0));
	assert_true(distinct(c, 64) >= 32);
	assert_memory_not_equal(b, c, 57);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_USED_RING);
	assert_false(needs_reset());
}

static void a_request_gets_at_most_64_kib(void **state)
{
	(void)state;
	start(NULL);
	uint16_t h0 = offer_buf(BIG, BIG_LEN, 0x5a);
	uint16_t h1 = offer_buf(BUF, 0, 0); /* empty: back with nothing written */
	unit_queue_notify(t()->dev, 0);
	struct virtq_used *u = used();
	assert_int_equal(u->idx, 2);
	assert_int_equal(u->ring[0].id, h0);
	assert_int_equal(u->ring[0].len, RNG_REQ_MAX);
	assert_int_equal(u->ring[1].id, h1);
	assert_int_equal(u->ring[1].len, 0);
	uint8_t *big = unit_gpa(t()->vm, BIG, BIG_LEN);
	assert_int_equal(distinct(big, RNG_REQ_MAX), 256);
	assert_true(all(big + RNG_REQ_MAX, BIG_LEN - RNG_REQ_MAX, 0x5a));
}

static void readable_buffers_break_the_device(void **state)
{
	(void)state;
	/* A readable buffer alone, and one in front of a writable one: both break it, and the
	 * request before them is served. */
	for (int k = 0; k < 2; k++) {
		start(NULL);
		offer_buf(BUF, 64, 0);
		uint64_t gpa[2] = { BUF + 0x1000, BUF + 0x2000 };
		uint16_t flags[2] = { 0, VIRTQ_DESC_F_WRITE };
		offer(gpa, (uint32_t[]){ 16, 64 }, flags, k == 0 ? 1 : 2);
		offer_buf(BUF + 0x3000, 64, 0);
		unit_queue_notify(t()->dev, 0);
		assert_true(needs_reset());
		assert_int_equal(used()->idx, 1);
		assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_CONFIG);
		/* Nothing more until the driver resets the device. */
		unit_queue_notify(t()->dev, 0);
		assert_int_equal(used()->idx, 1);
		rng_teardown(NULL);
	}
}

static bool used_reached(void *want)
{
	return used()->idx == *(uint16_t *)want;
}

/* Runs the VMM event loop until want chains are used or 3 s passed; the milliseconds it ran. */
static uint64_t run_loop(uint16_t want)
{
	return unit_run_loop(&t()->vm->loop, 3000, used_reached, &want);
}

static void the_rate_limiter_timer_resumes_the_queue(void **state)
{
	(void)state;
	/* 1000 bytes per 100 ms: the first request from the full bucket, then one each 100 ms. */
	struct rate_limiter_config rl = { .bandwidth = { 1000, 0, 100 } };
	start(&rl);
	for (unsigned i = 0; i < 4; i++)
		offer_buf(BUF + 0x1000 * i, 1000, 0);
	unit_queue_notify(t()->dev, 0);
	assert_int_equal(used()->idx, 1);
	/* A notification while throttled changes nothing: the timer takes it from there. */
	unit_queue_notify(t()->dev, 0);
	assert_int_equal(used()->idx, 1);
	uint64_t ms = run_loop(4);
	assert_int_equal(used()->idx, 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(used()->ring[i].len, 1000);
	if (ms < 280 || ms > 1500)
		fail_msg("3 x 1000 bytes at 10000 bytes/s took %llu ms, expected about 300",
			 (unsigned long long)ms);
	assert_false(needs_reset());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		RNG_TEST(fills_every_buffer_of_a_chain),
		RNG_TEST(a_request_gets_at_most_64_kib),
		RNG_TEST(readable_buffers_break_the_device),
		RNG_TEST(the_rate_limiter_timer_resumes_the_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
