/* The driver side of the virtio-balloon unit tests (test_balloon.c, test_balloon_hint.c): a
 * device on a KVM-less machine whose queues the test fills itself, on rings in guest memory
 * of its own. */
#ifndef EMBER_BALLOON_DRIVER_H
#define EMBER_BALLOON_DRIVER_H

#include "unit_util.h"

#include "core/log.h"
#include "virtio/balloon.h"
#include "virtio/balloon_json.h"

#define NUM	  16
#define RING(q)	  (0x10000ULL * ((q) + 1)) /* desc; avail at + 0x1000, used at + 0x2000 */
#define REQ	  0x80000ULL		   /* request buffers, 0x1000 apart */
#define PAGES	  0x800000ULL		   /* pages the driver gives up */
#define MEM_BYTES (16 * MIB)
#define FILL	  0xaa

struct t {
	struct machine *vm;
	struct virtio_dev *dev;
	uint16_t next_desc[VIRTIO_QUEUES_MAX];
};

static inline struct t *t(void)
{
	static struct t s;
	return &s;
}

static inline int balloon_teardown(void **state)
{
	unit_device_machine_free(t()->vm, t()->dev);
	memset(t(), 0, sizeof(*t()));
	return unit_teardown(state);
}

#define BALLOON_TEST(fn) cmocka_unit_test_teardown(fn, balloon_teardown)

static const struct unit_ring rings[VIRTIO_QUEUES_MAX] = {
	{ NUM, RING(0), RING(0) + 0x1000, RING(0) + 0x2000 },
	{ NUM, RING(1), RING(1) + 0x1000, RING(1) + 0x2000 },
	{ NUM, RING(2), RING(2) + 0x1000, RING(2) + 0x2000 },
	{ NUM, RING(3), RING(3) + 0x1000, RING(3) + 0x2000 },
	{ NUM, RING(4), RING(4) + 0x1000, RING(4) + 0x2000 },
};

/* A device made from cfg; the driver takes features (VERSION_1 added) unless driver is
 * false. */
static inline void start(struct balloon_config cfg, uint64_t features, bool driver)
{
	t()->vm = unit_vm_new(MEM_BYTES);
	assert_int_equal(evloop_init(&t()->vm->loop), 0);
	cfg.configured = true;
	char err[ERR_LEN];
	if (balloon_create(t()->vm, &cfg, &t()->dev, err))
		fail_msg("balloon_create: %s", err);
	assert_int_equal(unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BALLOON);
	if (driver)
		unit_driver_init(t()->vm, t()->dev, features | (1ULL << VIRTIO_F_VERSION_1), rings,
				 t()->dev->nr_queues);
}

static inline struct virtq_used *used(unsigned q)
{
	return (struct virtq_used *)unit_gpa(t()->vm, RING(q) + 0x2000, 6 + 8 * NUM + 2);
}

/* Offers one chain of n buffers on queue q; returns its head. */
static inline uint16_t offer(unsigned q, const uint64_t *gpa, const uint32_t *len,
			     const uint16_t *flags, unsigned n)
{
	struct virtq_desc *d = (struct virtq_desc *)unit_gpa(t()->vm, RING(q), 16 * NUM);
	uint16_t head = t()->next_desc[q];
	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % NUM);
		uint16_t f = (uint16_t)(flags[i] | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		d[at] = (struct virtq_desc){ gpa[i], len[i], f, (uint16_t)((at + 1) % NUM) };
	}
	t()->next_desc[q] = (uint16_t)((head + n) % NUM);
	struct virtq_avail *a =
		(struct virtq_avail *)unit_gpa(t()->vm, RING(q) + 0x1000, 6 + 2 * NUM);
	a->ring[a->idx % NUM] = head;
	a->idx++;
	return head;
}

static inline uint8_t *page(uint64_t gpa)
{
	return unit_gpa(t()->vm, gpa, 4096);
}

static inline bool all(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static inline bool needs_reset(void)
{
	return unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_STATUS) &
	       VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

#endif
