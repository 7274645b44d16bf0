/* A polling virtio-mmio block driver for the test guest, and the hostile cases the VMM must
 * survive. Each command-line word runs one scenario and prints one line per result,
 * "blkN: what key=value ...", that the bats tests match:
 *   blk-rw         GET_ID, read, write, flush, read back (indirect), bounds, framing
 *   blk-ro-write   a write to the read-only device in slot 1
 *   blk-irq        reads with interrupts on: each completion arrives as a vector (cpu.c)
 *   blk-loop, blk-oob-addr, blk-long-chain, blk-avail-ahead, blk-bad-status
 *   blk-count      counts forever through writes and reads (snapshot tests)
 * After a hostile case the device is reset and must serve a valid read again.
 * With a virtio-net device in slot 0 instead, hostile transmit chains ("net0: ..."):
 *   net-tx-oversize, net-tx-writable, net-tx-short (dropped, the chain comes back),
 *   net-tx-oob, net-tx-long (the device needs a reset; after it a frame goes out again);
 *   net-config (offered features, MAC, MTU), net-tx-stream (frames without end). */
#include "guest.h"

#define T_IN	 0
#define T_OUT	 1
#define T_FLUSH	 4
#define T_GET_ID 8

#define QSIZE	      16
#define TIMEOUT_SPINS 200000000UL

struct avail {
	uint16_t flags, idx, ring[QSIZE], used_event;
};

struct used {
	uint16_t flags, idx;
	struct {
		uint32_t id, len;
	} ring[QSIZE];
	uint16_t avail_event;
};

struct req_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static volatile struct desc descs[QSIZE] __attribute__((aligned(4096)));
static volatile struct avail avail __attribute__((aligned(64)));
static volatile struct used used __attribute__((aligned(64)));
static volatile struct desc indirect[QSIZE + 8] __attribute__((aligned(16)));
static volatile struct req_hdr hdr;
static volatile uint8_t status_byte;
static uint8_t buf[4096] __attribute__((aligned(4096)));
static uint8_t buf2[4096] __attribute__((aligned(4096)));

struct dev {
	unsigned slot;
	unsigned queue; /* the one queue this driver uses: 0 for blk, 1 (transmit) for net */
	uintptr_t base;
	uint64_t features;
	uint16_t avail_idx, last_used;
};

/* The compiler may turn loops into calls to these; there is no libc. */
void *memset(void *d, int c, unsigned long n)
{
	volatile uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	volatile uint8_t *p = d;
	const volatile uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void put_dec(uint64_t v)
{
	char b[24];
	int i = 23;
	b[i] = '\0';
	do
		b[--i] = (char)('0' + v % 10);
	while ((v /= 10) && i > 0);
	puts_uart(b + i);
}

/* "blkN: " at the start of a result line. */
static void tag(const struct dev *d, const char *what)
{
	puts_uart(d->queue == 1 ? "net" : "blk");
	put_dec(d->slot);
	puts_uart(": ");
	puts_uart(what);
}

void kv(const char *key, uint64_t v)
{
	puts_uart(" ");
	puts_uart(key);
	puts_uart("=");
	put_dec(v);
}

static uint32_t rd(const struct dev *d, unsigned off)
{
	return *(volatile uint32_t *)(d->base + off);
}

static void wr(const struct dev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->base + off) = v;
}

void mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

static void clear_rings(void)
{
	memset((void *)descs, 0, sizeof(descs));
	memset((void *)&avail, 0, sizeof(avail));
	memset((void *)&used, 0, sizeof(used));
}

/* The driver side of initialisation (virtio 1.x 3.1.1) for device type id, with only
 * queue set up. False, with a line, on failure. */
static bool dev_init_as(struct dev *d, unsigned slot, uint64_t want, uint32_t id, unsigned queue)
{
	d->slot = slot;
	d->queue = queue;
	d->base = MMIO_BASE + slot * MMIO_SIZE;
	d->avail_idx = d->last_used = 0;
	if (rd(d, R_MAGIC) != 0x74726976 || rd(d, R_VERSION) != 2 || rd(d, R_DEVICE_ID) != id) {
		tag(d, id == 2 ? "no virtio-blk device here\n" : "no virtio-net device here\n");
		return false;
	}
	wr(d, R_STATUS, 0);
	wr(d, R_STATUS, S_ACK);
	wr(d, R_STATUS, S_ACK | S_DRIVER);
	wr(d, R_DEV_FEATURES_SEL, 0);
	uint64_t offered = rd(d, R_DEV_FEATURES);
	wr(d, R_DEV_FEATURES_SEL, 1);
	offered |= (uint64_t)rd(d, R_DEV_FEATURES) << 32;
	d->features = offered & (want | F_VERSION_1);
	wr(d, R_DRV_FEATURES_SEL, 0);
	wr(d, R_DRV_FEATURES, (uint32_t)d->features);
	wr(d, R_DRV_FEATURES_SEL, 1);
	wr(d, R_DRV_FEATURES, (uint32_t)(d->features >> 32));
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd(d, R_STATUS) & S_FEATURES_OK)) {
		tag(d, "FEATURES_OK refused\n");
		return false;
	}
	clear_rings();
	wr(d, R_QUEUE_SEL, queue);
	if (rd(d, R_QUEUE_NUM_MAX) < QSIZE) {
		tag(d, "queue too small\n");
		return false;
	}
	wr(d, R_QUEUE_NUM, QSIZE);
	wr(d, R_DESC_LO, (uint32_t)(uintptr_t)descs);
	wr(d, R_DESC_HI, 0);
	wr(d, R_AVAIL_LO, (uint32_t)(uintptr_t)&avail);
	wr(d, R_AVAIL_HI, 0);
	wr(d, R_USED_LO, (uint32_t)(uintptr_t)&used);
	wr(d, R_USED_HI, 0);
	wr(d, R_QUEUE_READY, 1);
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return true;
}

static bool dev_init(struct dev *d, unsigned slot, uint64_t want)
{
	return dev_init_as(d, slot, want, 2, 0);
}

/* Publishes head and notifies. avail_step > 1 makes the index run ahead (hostile). */
static void submit(struct dev *d, uint16_t head, uint16_t avail_step)
{
	avail.ring[d->avail_idx % QSIZE] = head;
	mb(); /* the descriptors and ring entry before the index */
	d->avail_idx = (uint16_t)(d->avail_idx + avail_step);
	avail.idx = d->avail_idx;
	mb(); /* the index before the notification */
	wr(d, R_QUEUE_NOTIFY, d->queue);
}

/* Waits for the next used entry: 1 (and *len), 0 when the device set NEEDS_RESET
 * instead, -1 on timeout. */
static int wait_used(struct dev *d, uint32_t *len)
{
	for (unsigned long i = 0; i < TIMEOUT_SPINS; i++) {
		if (used.idx != d->last_used) {
			mb();
			*len = used.ring[d->last_used % QSIZE].len;
			d->last_used++;
			return 1;
		}
		if ((i & 1023) == 0 && (rd(d, R_STATUS) & S_NEEDS_RESET))
			return 0;
		__asm__ volatile("pause");
	}
	return -1;
}

static void set_desc(unsigned i, const volatile void *addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	descs[i].addr = (uint64_t)(uintptr_t)addr;
	descs[i].len = len;
	descs[i].flags = flags;
	descs[i].next = next;
}

/* One request: header, optional data, status. Returns the status byte, or 0x100 + what
 * wait_used said when no used entry came. */
static unsigned request(struct dev *d, uint32_t type, uint64_t sector, void *data, uint32_t len,
			uint32_t *used_len)
{
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	status_byte = 0xee;
	bool dev_writes = type == T_IN || type == T_GET_ID;
	set_desc(0, &hdr, sizeof(hdr), D_NEXT, 1);
	if (len) {
		set_desc(1, data, len, (uint16_t)(D_NEXT | (dev_writes ? D_WRITE : 0)), 2);
		set_desc(2, &status_byte, 1, D_WRITE, 0);
	} else {
		set_desc(1, &status_byte, 1, D_WRITE, 0);
	}
	submit(d, 0, 1);
	uint32_t l = 0;
	int rc = wait_used(d, &l);
	if (used_len)
		*used_len = l;
	return rc == 1 ? status_byte : (unsigned)(0x100 + rc);
}

/* Hostile cases leave the device in NEEDS_RESET; the guest resets it and reads again. */
static void expect_needs_reset(struct dev *d, const char *what)
{
	uint32_t len;
	int rc = wait_used(d, &len);
	tag(d, what);
	kv("needs_reset", rc == 0);
	kv("used", rc == 1);
	kv("isr_config", (rd(d, R_ISR) >> 1) & 1);
	puts_uart("\n");
}

static void recover(struct dev *d, uint64_t want)
{
	wr(d, R_STATUS, 0);
	tag(d, "reset");
	kv("status", rd(d, R_STATUS));
	puts_uart("\n");
	if (!dev_init(d, d->slot, want))
		return;
	unsigned st = request(d, T_IN, 0, buf, 512, 0);
	tag(d, "recovered");
	kv("status", st);
	puts_uart(" sector0=");
	buf[16] = '\0';
	puts_uart((const char *)buf);
	puts_uart("\n");
}

static bool same(const uint8_t *a, const uint8_t *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static void blk_rw(void)
{
	struct dev d;
	if (!dev_init(&d, 0,
		      F_INDIRECT | F_EVENT_IDX | F_RO | (1ULL << 9) | (1ULL << 2) | (1ULL << 6)))
		return;
	uint64_t cap = rd(&d, R_CONFIG) | (uint64_t)rd(&d, R_CONFIG + 4) << 32;
	tag(&d, "config");
	kv("capacity", cap);
	kv("seg_max", rd(&d, R_CONFIG + 0x0c));
	kv("blk_size", rd(&d, R_CONFIG + 0x14));
	kv("ro", (d.features & F_RO) != 0);
	puts_uart("\n");

	memset(buf, 0, 64);
	uint32_t ulen;
	unsigned st = request(&d, T_GET_ID, 0, buf, 20, &ulen);
	tag(&d, "get_id");
	kv("status", st);
	kv("used_len", ulen);
	buf[20] = '\0';
	puts_uart(" id=");
	puts_uart((const char *)buf);
	puts_uart("\n");
	tag(&d, "interrupt");
	kv("isr", rd(&d, R_ISR));
	wr(&d, R_ISR_ACK, rd(&d, R_ISR));
	kv("after_ack", rd(&d, R_ISR));
	puts_uart("\n");

	st = request(&d, T_IN, 0, buf, 512, &ulen);
	tag(&d, "read");
	kv("status", st);
	kv("used_len", ulen);
	buf[32] = '\0';
	puts_uart(" sector0=");
	puts_uart((const char *)buf);
	puts_uart("\n");

	const char *msg = "written-by-the-test-guest:";
	for (unsigned i = 0; i < 1024; i++)
		buf2[i] = msg[i % 26];
	st = request(&d, T_OUT, 2, buf2, 1024, &ulen);
	tag(&d, "write");
	kv("status", st);
	kv("used_len", ulen);
	puts_uart("\n");
	st = request(&d, T_FLUSH, 0, 0, 0, 0);
	tag(&d, "flush");
	kv("status", st);
	puts_uart("\n");

	/* Read back through an indirect table: header, two data halves, status. */
	memset(buf, 0, 1024);
	hdr.type = T_IN;
	hdr.sector = 2;
	status_byte = 0xee;
	indirect[0] = (struct desc){ (uintptr_t)&hdr, sizeof(hdr), D_NEXT, 1 };
	indirect[1] = (struct desc){ (uintptr_t)buf, 512, D_NEXT | D_WRITE, 2 };
	indirect[2] = (struct desc){ (uintptr_t)buf + 512, 512, D_NEXT | D_WRITE, 3 };
	indirect[3] = (struct desc){ (uintptr_t)&status_byte, 1, D_WRITE, 0 };
	set_desc(0, indirect, 4 * sizeof(struct desc), D_INDIRECT, 0);
	submit(&d, 0, 1);
	int rc = wait_used(&d, &ulen);
	tag(&d, "indirect-read");
	kv("status", rc == 1 ? status_byte : 0x100u + (unsigned)rc);
	kv("used_len", ulen);
	kv("match", same(buf, buf2, 1024));
	puts_uart("\n");

	/* The header split over two buffers: the device must not assume a layout. */
	memset(buf, 0, 512);
	hdr.type = T_IN;
	hdr.sector = 2;
	status_byte = 0xee;
	set_desc(0, &hdr, 4, D_NEXT, 1);
	set_desc(1, (const volatile uint8_t *)&hdr + 4, sizeof(hdr) - 4, D_NEXT, 2);
	set_desc(2, buf, 512, D_NEXT | D_WRITE, 3);
	set_desc(3, &status_byte, 1, D_WRITE, 0);
	submit(&d, 0, 1);
	rc = wait_used(&d, &ulen);
	tag(&d, "split-header");
	kv("status", rc == 1 ? status_byte : 0x100u + (unsigned)rc);
	kv("match", same(buf, buf2, 512));
	puts_uart("\n");

	st = request(&d, T_IN, cap, buf, 512, 0);
	tag(&d, "beyond-capacity");
	kv("status", st);
	puts_uart("\n");
	st = request(&d, T_IN, cap - 1, buf, 1024, 0);
	tag(&d, "straddling-end");
	kv("status", st);
	puts_uart("\n");
	st = request(&d, 99, 0, buf, 512, 0);
	tag(&d, "unknown-type");
	kv("status", st);
	puts_uart("\n");
	st = request(&d, T_IN, 0, buf, 512, 0);
	tag(&d, "still-serving");
	kv("status", st);
	puts_uart("\n");
}

static void blk_ro_write(void)
{
	struct dev d;
	if (!dev_init(&d, 1, F_RO))
		return;
	for (unsigned i = 0; i < 512; i++)
		buf2[i] = 'X';
	unsigned st = request(&d, T_OUT, 0, buf2, 512, 0);
	tag(&d, "ro-write");
	kv("ro", (d.features & F_RO) != 0);
	kv("status", st);
	puts_uart("\n");
	st = request(&d, T_IN, 0, buf, 512, 0);
	tag(&d, "ro-read");
	kv("status", st);
	buf[16] = '\0';
	puts_uart(" sector0=");
	puts_uart((const char *)buf);
	puts_uart("\n");
}

static void blk_loop(void)
{
	struct dev d;
	if (!dev_init(&d, 0, 0))
		return;
	hdr.type = T_IN;
	hdr.sector = 0;
	set_desc(0, &hdr, sizeof(hdr), D_NEXT, 1);
	set_desc(1, buf, 512, D_NEXT | D_WRITE, 2);
	set_desc(2, buf + 512, 512, D_NEXT | D_WRITE, 1); /* back to 1: a loop */
	submit(&d, 0, 1);
	expect_needs_reset(&d, "loop");
	recover(&d, 0);
}

static void blk_oob_addr(void)
{
	struct dev d;
	if (!dev_init(&d, 0, 0))
		return;
	hdr.type = T_IN;
	hdr.sector = 0;
	set_desc(0, &hdr, sizeof(hdr), D_NEXT, 1);
	set_desc(1, (void *)0x400000000UL, 512, D_NEXT | D_WRITE, 2); /* 16 GiB: no RAM */
	set_desc(2, &status_byte, 1, D_WRITE, 0);
	submit(&d, 0, 1);
	expect_needs_reset(&d, "oob-addr");
	recover(&d, 0);
}

static void blk_long_chain(void)
{
	struct dev d;
	if (!dev_init(&d, 0, F_INDIRECT))
		return;
	/* QSIZE + 4 descriptors in one indirect table: longer than the queue allows. */
	hdr.type = T_IN;
	hdr.sector = 0;
	unsigned n = QSIZE + 4;
	indirect[0] = (struct desc){ (uintptr_t)&hdr, sizeof(hdr), D_NEXT, 1 };
	for (unsigned i = 1; i < n - 1; i++)
		indirect[i] = (struct desc){ (uintptr_t)buf + 512 * (i % 8), 512, D_NEXT | D_WRITE,
					     (uint16_t)(i + 1) };
	indirect[n - 1] = (struct desc){ (uintptr_t)&status_byte, 1, D_WRITE, 0 };
	set_desc(0, indirect, n * sizeof(struct desc), D_INDIRECT, 0);
	submit(&d, 0, 1);
	expect_needs_reset(&d, "long-chain");
	recover(&d, F_INDIRECT);
}

static void blk_avail_ahead(void)
{
	struct dev d;
	if (!dev_init(&d, 0, 0))
		return;
	hdr.type = T_IN;
	hdr.sector = 0;
	set_desc(0, &hdr, sizeof(hdr), D_NEXT, 1);
	set_desc(1, buf, 512, D_NEXT | D_WRITE, 2);
	set_desc(2, &status_byte, 1, D_WRITE, 0);
	submit(&d, 0, QSIZE + 100);
	expect_needs_reset(&d, "avail-ahead");
	recover(&d, 0);
}

/* Status writes out of order are refused; FAILED is honoured; reset clears it all. The
 * values are printed once all are read: ember's log lines would interleave otherwise. */
static void blk_bad_status(void)
{
	struct dev d = { .slot = 0, .base = MMIO_BASE };
	uint32_t v[6];
	wr(&d, R_STATUS, 0);
	wr(&d, R_STATUS, S_DRIVER_OK);
	v[0] = rd(&d, R_STATUS);
	wr(&d, R_STATUS, S_ACK);
	wr(&d, R_STATUS, S_ACK | S_FEATURES_OK);
	v[1] = rd(&d, R_STATUS);
	wr(&d, R_STATUS, S_ACK | S_DRIVER);
	wr(&d, R_DRV_FEATURES_SEL, 1);
	wr(&d, R_DRV_FEATURES, 0); /* no VERSION_1: FEATURES_OK must not stick */
	wr(&d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	v[2] = rd(&d, R_STATUS);
	wr(&d, R_STATUS, S_ACK);
	v[3] = rd(&d, R_STATUS);
	wr(&d, R_STATUS, S_ACK | S_DRIVER | S_FAILED);
	v[4] = rd(&d, R_STATUS);
	wr(&d, R_STATUS, S_ACK | S_DRIVER | S_FAILED | S_FEATURES_OK);
	v[5] = rd(&d, R_STATUS);
	tag(&d, "bad-status");
	kv("driver_ok_first", v[0]);
	kv("features_ok_before_driver", v[1]);
	kv("features_ok_without_v1", v[2]);
	kv("clear_driver", v[3]);
	kv("failed", v[4]);
	kv("after_failed", v[5]);
	puts_uart("\n");
	recover(&d, 0);
}

/* virtio-net: the 12-byte header (all zero: no offload) and then the frame. */
#define NET_HDR 12

static bool net_init(struct dev *d, uint64_t want)
{
	return dev_init_as(d, 0, want, 1, 1);
}

static void net_result(struct dev *d, const char *what)
{
	uint32_t len;
	int rc = wait_used(d, &len);
	tag(d, what);
	kv("used", rc == 1);
	kv("needs_reset", rc == 0);
	puts_uart("\n");
}

/* A valid 60-byte broadcast frame (an experimental EtherType): the host counts it. */
static void net_send_ok(struct dev *d, const char *what)
{
	memset(buf, 0, NET_HDR + 60);
	memset(buf + NET_HDR, 0xff, 6);
	buf[NET_HDR + 6] = 0x06;
	buf[NET_HDR + 12] = 0x88;
	buf[NET_HDR + 13] = 0xb5;
	set_desc(0, buf, NET_HDR + 60, 0, 0);
	submit(d, 0, 1);
	net_result(d, what);
}

static void net_recover(struct dev *d)
{
	wr(d, R_STATUS, 0);
	if (net_init(d, 0))
		net_send_ok(d, "recovered");
}

/* Larger than an MTU-sized frame without segmentation offload: dropped. */
static void net_tx_oversize(void)
{
	struct dev d;
	if (!net_init(&d, 0))
		return;
	set_desc(0, buf, sizeof(buf), 0, 0);
	submit(&d, 0, 1);
	net_result(&d, "tx-oversize");
	net_send_ok(&d, "tx-after-oversize");
}

/* A transmit chain with a device-writable buffer: the spec forbids it. */
static void net_tx_writable(void)
{
	struct dev d;
	if (!net_init(&d, 0))
		return;
	set_desc(0, buf, NET_HDR + 60, D_NEXT, 1);
	set_desc(1, buf2, 64, D_WRITE, 0);
	submit(&d, 0, 1);
	net_result(&d, "tx-writable");
	net_send_ok(&d, "tx-after-writable");
}

/* blk-irq: with interrupts on, each used buffer must reach the CPU as the vector that the
 * IOAPIC entry of the device's line (IRQ 5 + slot) names, not just set InterruptStatus. */
#define IRQ_VECTOR 0x30
static void blk_irq(void)
{
	struct dev d;
	if (!dev_init(&d, 0, 0))
		return;
	cpu_irq_setup(5 + d.slot, IRQ_VECTOR);
	unsigned got[2], st[2];
	for (int i = 0; i < 2; i++) {
		uint32_t before = cpu_device_irqs();
		__asm__ volatile("sti");
		st[i] = request(&d, T_IN, 0, buf, 512, 0);
		for (unsigned long n = 0; n < 100000 && cpu_device_irqs() == before; n++)
			__asm__ volatile("pause");
		__asm__ volatile("cli");
		got[i] = cpu_device_irqs() - before;
		wr(&d, R_ISR_ACK, rd(&d, R_ISR));
	}
	tag(&d, "irq");
	kv("vector", IRQ_VECTOR);
	kv("status1", st[0]);
	kv("irqs1", got[0]);
	kv("status2", st[1]);
	kv("irqs2", got[1]);
	puts_uart("\n");
}

/* Shorter than the header. */
static void net_tx_short(void)
{
	struct dev d;
	if (!net_init(&d, 0))
		return;
	set_desc(0, buf, 8, 0, 0);
	submit(&d, 0, 1);
	net_result(&d, "tx-short");
	net_send_ok(&d, "tx-after-short");
}

static void net_tx_oob(void)
{
	struct dev d;
	if (!net_init(&d, 0))
		return;
	set_desc(0, buf, NET_HDR, D_NEXT, 1);
	set_desc(1, (void *)0x400000000UL, 60, 0, 0); /* 16 GiB: no RAM */
	submit(&d, 0, 1);
	net_result(&d, "tx-oob");
	net_recover(&d);
}

static void net_tx_long(void)
{
	struct dev d;
	if (!net_init(&d, F_INDIRECT))
		return;
	/* QSIZE + 4 descriptors in one indirect table: longer than the queue allows. */
	unsigned n = QSIZE + 4;
	for (unsigned i = 0; i < n; i++)
		indirect[i] =
			(struct desc){ (uintptr_t)buf + 16 * i, 16,
				       (uint16_t)(i + 1 < n ? D_NEXT : 0), (uint16_t)(i + 1) };
	set_desc(0, indirect, n * sizeof(struct desc), D_INDIRECT, 0);
	submit(&d, 0, 1);
	net_result(&d, "tx-long");
	net_recover(&d);
}

/* net-config: what the device offers (every feature bit) and its config space: the MAC
 * and, with VIRTIO_NET_F_MTU, the MTU. */
static void net_config(void)
{
	struct dev d;
	if (!net_init(&d, ~0ULL))
		return;
	uint32_t w0 = rd(&d, R_CONFIG), w1 = rd(&d, R_CONFIG + 4), w2 = rd(&d, R_CONFIG + 8);
	tag(&d, "config features=");
	for (int bit = 63; bit >= 0; bit--)
		if (d.features & (1ULL << bit)) {
			put_dec((unsigned)bit);
			puts_uart(",");
		}
	kv("mac0", w0 & 0xff);
	kv("mac5", (w1 >> 8) & 0xff);
	kv("mtu", (w2 >> 16) & 0xffff);
	puts_uart("\n");
	/* One frame: the device applies the accepted offloads to the TAP by then. */
	net_send_ok(&d, "config-send");
	wr(&d, R_STATUS, 0);
}

/* net-tx-stream: valid frames, one after the other, for ever: the host watches the rate at
 * which they reach the TAP (a transmit limiter set while this runs must slow it). */
static void net_tx_stream(void)
{
	struct dev d;
	if (!net_init(&d, 0))
		return;
	puts_uart("net0: streaming\n");
	for (;;) {
		memset(buf, 0, NET_HDR + 60);
		memset(buf + NET_HDR, 0xff, 6);
		buf[NET_HDR + 6] = 0x06;
		buf[NET_HDR + 12] = 0x88;
		buf[NET_HDR + 13] = 0xb5;
		set_desc(0, buf, NET_HDR + 60, 0, 0);
		submit(&d, 0, 1);
		uint32_t len;
		while (wait_used(&d, &len) < 0)
			;
	}
}

/* dev-count (snap.c): the virtio-net device in slot 0 set up for transmit, then one
 * broadcast frame per count that carries it. */
static struct dev count_net;

bool net_count_init(void)
{
	return net_init(&count_net, 0);
}

/* 1 when the device gave the frame's chain back, 0 when it needs a reset, -1 timeout. */
int net_count_send(uint64_t n)
{
	memset(buf, 0, NET_HDR + 60);
	memset(buf + NET_HDR, 0xff, 6);
	buf[NET_HDR + 6] = 0x06;
	buf[NET_HDR + 12] = 0x88;
	buf[NET_HDR + 13] = 0xb5;
	memcpy(buf + NET_HDR + 14, &n, sizeof(n));
	set_desc(0, buf, NET_HDR + 60, 0, 0);
	submit(&count_net, 0, 1);
	uint32_t len;
	return wait_used(&count_net, &len);
}

/* blk-count: counts forever, each count written to sector 2 and read back through the
 * queue. Across a snapshot the device's queue positions must match the rings the guest
 * goes on from, or a request is lost or served twice. */
static void blk_count(void)
{
	struct dev d;
	if (!dev_init(&d, 0, 0))
		return;
	for (uint64_t n = 1;; n++) {
		for (volatile unsigned long i = 0; i < 20000; i++)
			;
		memset(buf, 0, 512);
		memcpy(buf, &n, sizeof(n));
		unsigned w = request(&d, T_OUT, 2, buf, 512, 0);
		memset(buf2, 0xff, 512);
		unsigned r = request(&d, T_IN, 2, buf2, 512, 0);
		puts_uart("blk0: count=");
		put_dec(n);
		/* One used entry per request: none served twice, none lost. */
		kv("ok", w == 0 && r == 0 && same(buf, buf2, 512) && used.idx == d.last_used);
		kv("used", d.last_used);
		puts_uart("\n");
	}
}

void virtio_run(const char *cmdline)
{
	static const struct {
		const char *word;
		void (*fn)(void);
	} cases[] = {
		{ "blk-rw", blk_rw },
		{ "blk-count", blk_count },
		{ "blk-irq", blk_irq },
		{ "blk-ro-write", blk_ro_write },
		{ "blk-loop", blk_loop },
		{ "blk-oob-addr", blk_oob_addr },
		{ "blk-long-chain", blk_long_chain },
		{ "blk-avail-ahead", blk_avail_ahead },
		{ "blk-bad-status", blk_bad_status },
		{ "net-tx-oversize", net_tx_oversize },
		{ "net-tx-writable", net_tx_writable },
		{ "net-tx-short", net_tx_short },
		{ "net-tx-oob", net_tx_oob },
		{ "net-tx-long", net_tx_long },
		{ "net-config", net_config },
		{ "net-tx-stream", net_tx_stream },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (has_word(cmdline, cases[i].word))
			cases[i].fn();
}
