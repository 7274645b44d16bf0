/* virtio-net's receive and transmit paths without KVM or a TAP: the device runs over one end
 * of a SOCK_SEQPACKET socketpair (one record per frame, as a TAP with IFF_VNET_HDR gives),
 * the test is the host network on the other end and the guest's driver on the rings. */
#include "unit_util.h"

#include <sys/socket.h>

#include "core/log.h"
#include "virtio/net.h"

#define NUM	 16
#define RX_DESC	 0x10000ULL
#define RX_AVAIL 0x11000ULL
#define RX_USED	 0x12000ULL /* alone in its page: unit_watch looks at it */
#define TX_DESC	 0x14000ULL
#define TX_AVAIL 0x15000ULL
#define TX_USED	 0x16000ULL
#define RX_BUF	 0x100000ULL /* receive buffer i at + 0x1000 * i */
#define TX_BUF	 0x200000ULL

struct t {
	struct machine *vm;
	struct virtio_dev *dev;
	int peer; /* the host network's end of the "TAP" */
	uint16_t next_desc[2];
};

static struct t *t(void)
{
	static struct t s;
	return &s;
}

static const struct unit_ring rings[2] = {
	{ NUM, RX_DESC, RX_AVAIL, RX_USED },
	{ NUM, TX_DESC, TX_AVAIL, TX_USED },
};

static int net_teardown(void **state)
{
	unit_device_machine_free(t()->vm, t()->dev);
	if (t()->peer > 0)
		close(t()->peer);
	memset(t(), 0, sizeof(*t()));
	return unit_teardown(state);
}

#define NET_TEST(fn) cmocka_unit_test_teardown(fn, net_teardown)

/* A device whose driver accepted features (VIRTIO_F_VERSION_1 is added). */
static void start(uint64_t features)
{
	t()->vm = unit_vm_new(4 * MIB);
	assert_int_equal(evloop_init(&t()->vm->loop), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
			 0);
	t()->peer = sv[1];
	struct net_config cfg = { .iface_id = "eth0", .host_dev_name = "socketpair" };
	char err[ERR_LEN];
	if (net_create_on_fd(t()->vm, &cfg, sv[0], &t()->dev, err))
		fail_msg("net_create_on_fd: %s", err);
	unit_driver_init(t()->vm, t()->dev, features | (1ULL << VIRTIO_F_VERSION_1), rings, 2);
}

static const struct unit_ring *ring(unsigned q)
{
	return &rings[q];
}

static struct virtq_avail *avail(unsigned q)
{
	return (struct virtq_avail *)unit_gpa(t()->vm, ring(q)->avail, 6 + 2 * NUM + 2);
}

static struct virtq_used *used(unsigned q)
{
	return (struct virtq_used *)unit_gpa(t()->vm, ring(q)->used, 6 + 8 * NUM + 2);
}

static uint16_t avail_event(unsigned q)
{
	return get16(&used(q)->ring[NUM]);
}

/* Offers one chain of n buffers on queue q (descriptors taken in turn); returns its head. */
static uint16_t offer(unsigned q, const uint64_t *gpa, const uint32_t *len, unsigned n,
		      uint16_t flags)
{
	struct virtq_desc *d = (struct virtq_desc *)unit_gpa(t()->vm, ring(q)->desc, 16 * NUM);
	uint16_t head = t()->next_desc[q];
	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % NUM);
		uint16_t f = flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
		d[at] = (struct virtq_desc){ gpa[i], len[i], f, (uint16_t)((at + 1) % NUM) };
	}
	t()->next_desc[q] = (uint16_t)((head + n) % NUM);
	struct virtq_avail *a = avail(q);
	a->ring[a->idx % NUM] = head;
	a->idx++;
	return head;
}

/* A receive buffer of len bytes at RX_BUF + 0x1000 * slot, in one descriptor. */
static uint16_t rx_offer(unsigned slot, uint32_t len)
{
	uint64_t gpa = RX_BUF + 0x1000ULL * slot;
	return offer(NET_RX_QUEUE, &gpa, &len, 1, VIRTQ_DESC_F_WRITE);
}

static uint8_t *rx_buf(unsigned slot)
{
	return unit_gpa(t()->vm, RX_BUF + 0x1000ULL * slot, 0x1000);
}

/* A frame as the TAP hands it over: a virtio-net header whose num_buffers is garbage (the
 * device fills it), then len bytes of payload numbered from seed. */
static void make_frame(uint8_t *f, size_t len, uint8_t seed)
{
	memset(f, 0, NET_HDR_LEN);
	f[0] = 1; /* flags: NEEDS_CSUM, passed through */
	put16(f + 10, 0xbeef);
	for (size_t i = 0; i < len; i++)
		f[NET_HDR_LEN + i] = (uint8_t)(seed + i);
}

static void host_sends(size_t payload, uint8_t seed)
{
	uint8_t f[NET_HDR_LEN + 2048];
	assert_true(payload <= 2048);
	make_frame(f, payload, seed);
	assert_int_equal(send(t()->peer, f, NET_HDR_LEN + payload, 0),
			 (ssize_t)(NET_HDR_LEN + payload));
}

/* The next frame the guest sent, or -1 when there is none. */
static ssize_t host_receives(uint8_t *buf, size_t len)
{
	ssize_t n = recv(t()->peer, buf, len, MSG_DONTWAIT);
	if (n < 0)
		assert_int_equal(errno, EAGAIN);
	return n;
}

static bool needs_reset(void)
{
	return unit_mmio_rd(t()->vm, t()->dev, VIRTIO_MMIO_STATUS) &
	       VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* Checks that buffers (slot, len) in order hold the frame of payload bytes from seed, with
 * num_buffers = nr in its header. */
static void expect_frame(const unsigned *slot, const uint32_t *len, unsigned nr, size_t payload,
			 uint8_t seed)
{
	uint8_t want[NET_HDR_LEN + 2048], got[NET_HDR_LEN + 2048];
	make_frame(want, payload, seed);
	put16(want + 10, (uint16_t)nr);
	size_t off = 0;
	for (unsigned i = 0; i < nr; i++) {
		assert_true(off + len[i] <= sizeof(got));
		memcpy(got + off, rx_buf(slot[i]), len[i]);
		off += len[i];
	}
	assert_int_equal(off, NET_HDR_LEN + payload);
	assert_memory_equal(got, want, off);
}

static void rx_into_merged_buffers(void **state)
{
	(void)state;
	start(VIRTIO_NET_F_MRG_RXBUF | (1ULL << VIRTIO_RING_F_EVENT_IDX));
	/* Buffer 0 is two descriptors of 6 and 94 bytes: num_buffers (header bytes 10 and 11)
	 * lands in the second. */
	uint64_t gpa[2] = { RX_BUF, RX_BUF + 0x1000 * 4 };
	uint32_t len[2] = { 6, 94 };
	uint16_t h0 = offer(NET_RX_QUEUE, gpa, len, 2, VIRTQ_DESC_F_WRITE);
	uint16_t h1 = rx_offer(1, 100), h2 = rx_offer(2, 100), h3 = rx_offer(3, 100);
	host_sends(250, 7); /* 262 bytes with the header: 100 + 100 + 62 */

	struct virtq_used *u = used(NET_RX_QUEUE);
	unit_watch_start(u);
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	unsigned stores = unit_watch_stop();

	assert_int_equal(u->idx, 3);
	uint16_t heads[3] = { h0, h1, h2 };
	uint32_t lens[3] = { 100, 100, 62 };
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(u->ring[i].id, heads[i]);
		assert_int_equal(u->ring[i].len, lens[i]);
	}
	/* One publish of used->idx for the frame, after all three elements. */
	assert_int_equal(unit_watch_count(&u->idx, 2), 1);
	assert_int_equal(unit_watch_count(u->ring, 3 * 8), stores - 1);
	assert_true(unit_watch()->addr[stores - 1] == (uintptr_t)&u->idx);
	/* Buffer 0 as the guest reads it: 6 bytes, then 94 in the other descriptor. */
	uint8_t *b0 = rx_buf(0), *b0b = rx_buf(4);
	memmove(b0 + 6, b0b, 94);
	expect_frame((unsigned[]){ 0, 1, 2 }, lens, 3, 250, 7);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_USED_RING);

	/* A small frame takes one buffer and says so. */
	host_sends(40, 99);
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	assert_int_equal(u->idx, 4);
	assert_int_equal(u->ring[3].id, h3);
	assert_int_equal(u->ring[3].len, NET_HDR_LEN + 40);
	expect_frame((unsigned[]){ 3 }, (uint32_t[]){ NET_HDR_LEN + 40 }, 1, 40, 99);
	assert_false(needs_reset());
}

static void rx_waits_for_buffers(void **state)
{
	(void)state;
	start(VIRTIO_NET_F_MRG_RXBUF | (1ULL << VIRTIO_RING_F_EVENT_IDX));
	host_sends(250, 3);
	/* No buffer at all: nothing used, and the driver's next buffer must notify. */
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	assert_int_equal(used(NET_RX_QUEUE)->idx, 0);
	assert_int_equal(avail_event(NET_RX_QUEUE), 0);

	/* One buffer, too few for the frame: it goes back, and the notification is asked for
	 * beyond it (avail_event 1), not for the buffer already there. */
	uint16_t h0 = rx_offer(0, 100);
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	assert_int_equal(used(NET_RX_QUEUE)->idx, 0);
	assert_int_equal(avail_event(NET_RX_QUEUE), 1);

	/* Enough buffers: the frame that waited arrives whole, in the buffer given back. */
	uint16_t h1 = rx_offer(1, 100), h2 = rx_offer(2, 100);
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	struct virtq_used *u = used(NET_RX_QUEUE);
	assert_int_equal(u->idx, 3);
	assert_int_equal(u->ring[0].id, h0);
	assert_int_equal(u->ring[1].id, h1);
	assert_int_equal(u->ring[2].id, h2);
	expect_frame((unsigned[]){ 0, 1, 2 }, (uint32_t[]){ 100, 100, 62 }, 3, 250, 3);
	/* Nothing left over: the TAP side is drained, and the device asks for the next
	 * buffer after those it used. */
	uint8_t f[64];
	assert_true(recv(t()->peer, f, sizeof(f), MSG_DONTWAIT) < 0);
	assert_false(needs_reset());
}

static void rx_without_merging_drops_what_cannot_fit(void **state)
{
	(void)state;
	start(0);
	uint16_t h0 = rx_offer(0, 100);
	rx_offer(1, 100);
	/* 262 bytes do not fit in one 100-byte buffer and may not span two: dropped, and the
	 * buffer it was offered goes back unused. */
	host_sends(250, 1);
	host_sends(40, 2);
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	struct virtq_used *u = used(NET_RX_QUEUE);
	assert_int_equal(u->idx, 1);
	assert_int_equal(u->ring[0].id, h0);
	assert_int_equal(u->ring[0].len, NET_HDR_LEN + 40);
	expect_frame((unsigned[]){ 0 }, (uint32_t[]){ NET_HDR_LEN + 40 }, 1, 40, 2);
	assert_false(needs_reset());
}

static void rx_hostile_rings(void **state)
{
	(void)state;
	/* A first buffer with no room for the header. */
	start(VIRTIO_NET_F_MRG_RXBUF);
	rx_offer(0, NET_HDR_LEN - 1);
	host_sends(40, 0);
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	assert_true(needs_reset());
	assert_int_equal(used(NET_RX_QUEUE)->idx, 0);
	net_teardown(NULL);

	/* An avail index more than a ring ahead. */
	start(VIRTIO_NET_F_MRG_RXBUF);
	avail(NET_RX_QUEUE)->idx = NUM + 1;
	host_sends(40, 0);
	unit_queue_notify(t()->dev, NET_RX_QUEUE);
	assert_true(needs_reset());
	assert_int_equal(used(NET_RX_QUEUE)->idx, 0);
}

static void tx_frame_over_several_descriptors(void **state)
{
	(void)state;
	start(0);
	/* The header split 5 + 7, the payload 20 + 80: the TAP gets one frame of all four. */
	uint8_t frame[NET_HDR_LEN + 100];
	make_frame(frame, 100, 42);
	uint64_t gpa[4] = { TX_BUF, TX_BUF + 0x100, TX_BUF + 0x203, TX_BUF + 0x1ff0 };
	uint32_t len[4] = { 5, 7, 20, 80 };
	size_t off = 0;
	for (unsigned i = 0; i < 4; i++) {
		memcpy(unit_gpa(t()->vm, gpa[i], len[i]), frame + off, len[i]);
		off += len[i];
	}
	uint16_t head = offer(NET_TX_QUEUE, gpa, len, 4, 0);
	unit_queue_notify(t()->dev, NET_TX_QUEUE);
	uint8_t got[256];
	assert_int_equal(host_receives(got, sizeof(got)), sizeof(frame));
	assert_memory_equal(got, frame, sizeof(frame));
	assert_int_equal(host_receives(got, sizeof(got)), -1);
	struct virtq_used *u = used(NET_TX_QUEUE);
	assert_int_equal(u->idx, 1);
	assert_int_equal(u->ring[0].id, head);
	assert_int_equal(u->ring[0].len, 0);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_USED_RING);
}

static void tx_bad_chains_are_dropped(void **state)
{
	(void)state;
	start(0);
	uint8_t frame[NET_HDR_LEN + 60];
	make_frame(frame, 60, 5);
	memcpy(unit_gpa(t()->vm, TX_BUF, sizeof(frame)), frame, sizeof(frame));
	/* A frame followed by a buffer the device could write: not a transmit chain. */
	uint64_t gpa[2] = { TX_BUF, TX_BUF + 0x1000 };
	uint32_t len[2] = { sizeof(frame), 64 };
	uint16_t h0 = offer(NET_TX_QUEUE, gpa, (uint32_t[]){ sizeof(frame), 64 }, 2, 0);
	struct virtq_desc *d = (struct virtq_desc *)unit_gpa(t()->vm, TX_DESC, 16 * NUM);
	d[h0 + 1].flags = VIRTQ_DESC_F_WRITE;
	/* A header and nothing after it. */
	uint16_t h1 = offer(NET_TX_QUEUE, gpa, (uint32_t[]){ NET_HDR_LEN }, 1, 0);
	/* Then a good frame: the device carries on. */
	uint16_t h2 = offer(NET_TX_QUEUE, gpa, len, 1, 0);
	unit_queue_notify(t()->dev, NET_TX_QUEUE);

	uint8_t got[256];
	assert_int_equal(host_receives(got, sizeof(got)), sizeof(frame));
	assert_memory_equal(got, frame, sizeof(frame));
	assert_int_equal(host_receives(got, sizeof(got)), -1);
	/* Every chain went back, the dropped ones too, with nothing written. */
	struct virtq_used *u = used(NET_TX_QUEUE);
	assert_int_equal(u->idx, 3);
	uint16_t heads[3] = { h0, h1, h2 };
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(u->ring[i].id, heads[i]);
		assert_int_equal(u->ring[i].len, 0);
	}
	assert_false(needs_reset());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		NET_TEST(rx_into_merged_buffers),
		NET_TEST(rx_waits_for_buffers),
		NET_TEST(rx_without_merging_drops_what_cannot_fit),
		NET_TEST(rx_hostile_rings),
		NET_TEST(tx_frame_over_several_descriptors),
		NET_TEST(tx_bad_chains_are_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
