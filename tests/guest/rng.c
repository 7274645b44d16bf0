/* A polling virtio-rng driver for the test guest (device id 4, one queue of writable
 * buffers), and the broken chains the VMM must survive. Each command-line word runs one
 * scenario and prints "rng: what key=value ..." lines that tests/entropy_direct.bats
 * matches:
 *   rng-read          two reads that must differ, a chain of two buffers, a buffer larger
 *                     than the 64 KiB a request gets, an empty buffer, an indirect table
 *   rng-rate          16 requests of 4 KiB one after the other (the host times them)
 *   rng-readable, rng-readable-first, rng-oob-addr, rng-loop, rng-avail-ahead,
 *   rng-long-chain    broken chains: the device needs a reset, after it a read works
 *   rng-count         counts forever, each count one 64-byte read that must come back full
 *                     and differ from the one before (snapshot tests: "rng: count=N")
 *   rng-dirty         counts the same way, each count a read of a whole page into the next
 *                     of 8 pages from 48 MiB that only the device writes (Diff snapshots)
 * The last line, "rng: totals ...", counts the requests served and their bytes, for the
 * metrics. */
#include "guest.h"

#define RNG_ID	 4
#define QN	 16
#define REQ_MAX	 65536 /* what ember gives one request at most */
#define SPINS	 200000000UL
#define BIG	 (REQ_MAX + 4096)
#define TAIL_PAT 0x5a

static volatile struct {
	struct desc desc[QN];
	struct {
		uint16_t flags, idx, ring[QN], used_event;
	} avail;
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QN];
		uint16_t avail_event;
	} used __attribute__((aligned(4)));
} vq __attribute__((aligned(4096)));
static volatile struct desc ind[QN + 8] __attribute__((aligned(16)));
static uint8_t buf_a[256], buf_b[256];
static uint8_t big[BIG] __attribute__((aligned(4096)));

static uintptr_t base;
static uint64_t features;
static uint16_t avail_idx, last_used;
static uint64_t served, served_bytes;

static uint32_t reg_rd(unsigned off)
{
	return *(volatile uint32_t *)(base + off);
}

static void reg_wr(unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(base + off) = v;
}

static void line(const char *what)
{
	puts_uart("rng: ");
	puts_uart(what);
}

/* The driver side of initialisation (virtio 1.x 3.1.1) with VERSION_1 and, when offered,
 * indirect descriptors; no event index, so every chain notifies. */
static bool rng_init(void)
{
	reg_wr(R_STATUS, 0);
	reg_wr(R_STATUS, S_ACK);
	reg_wr(R_STATUS, S_ACK | S_DRIVER);
	reg_wr(R_DEV_FEATURES_SEL, 0);
	uint64_t offered = reg_rd(R_DEV_FEATURES);
	reg_wr(R_DEV_FEATURES_SEL, 1);
	offered |= (uint64_t)reg_rd(R_DEV_FEATURES) << 32;
	features = offered & (F_VERSION_1 | F_INDIRECT);
	reg_wr(R_DRV_FEATURES_SEL, 0);
	reg_wr(R_DRV_FEATURES, (uint32_t)features);
	reg_wr(R_DRV_FEATURES_SEL, 1);
	reg_wr(R_DRV_FEATURES, (uint32_t)(features >> 32));
	reg_wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(reg_rd(R_STATUS) & S_FEATURES_OK)) {
		line("FEATURES_OK refused\n");
		return false;
	}
	memset((void *)&vq, 0, sizeof(vq));
	avail_idx = last_used = 0;
	reg_wr(R_QUEUE_SEL, 0);
	if (reg_rd(R_QUEUE_NUM_MAX) < QN) {
		line("queue too small\n");
		return false;
	}
	reg_wr(R_QUEUE_NUM, QN);
	reg_wr(R_DESC_LO, (uint32_t)(uintptr_t)vq.desc);
	reg_wr(R_DESC_HI, 0);
	reg_wr(R_AVAIL_LO, (uint32_t)(uintptr_t)&vq.avail);
	reg_wr(R_AVAIL_HI, 0);
	reg_wr(R_USED_LO, (uint32_t)(uintptr_t)&vq.used);
	reg_wr(R_USED_HI, 0);
	reg_wr(R_QUEUE_READY, 1);
	reg_wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return true;
}

static void set_desc(unsigned i, const volatile void *addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	vq.desc[i].addr = (uint64_t)(uintptr_t)addr;
	vq.desc[i].len = len;
	vq.desc[i].flags = flags;
	vq.desc[i].next = next;
}

/* Publishes the chain at descriptor 0 and notifies; step > 1 runs the index ahead. */
static void submit(uint16_t step)
{
	vq.avail.ring[avail_idx % QN] = 0;
	mb(); /* the descriptors and ring entry before the index */
	avail_idx = (uint16_t)(avail_idx + step);
	vq.avail.idx = avail_idx;
	mb(); /* the index before the notification */
	reg_wr(R_QUEUE_NOTIFY, 0);
}

/* The next used entry: 1 (and its len), 0 when the device set DEVICE_NEEDS_RESET
 * instead, -1 on timeout. */
static int wait_used(uint32_t *len)
{
	for (unsigned long i = 0; i < SPINS; i++) {
		if (vq.used.idx != last_used) {
			mb(); /* the used index before the entry it covers */
			*len = vq.used.ring[last_used % QN].len;
			last_used++;
			served++;
			served_bytes += *len;
			return 1;
		}
		if ((i & 1023) == 0 && (reg_rd(R_STATUS) & S_NEEDS_RESET))
			return 0;
		__asm__ volatile("pause");
	}
	return -1;
}

/* One request for len bytes at p in one descriptor: the used length, or 0x100 + what
 * wait_used said when no used entry came. */
static uint32_t request(void *p, uint32_t len)
{
	set_desc(0, p, len, D_WRITE, 0);
	submit(1);
	uint32_t used = 0;
	int rc = wait_used(&used);
	return rc == 1 ? used : (uint32_t)(0x100 + rc);
}

/* How many of the 256 byte values occur in p[0, n): random data has many. */
static unsigned distinct(const uint8_t *p, unsigned n)
{
	uint8_t seen[256];
	unsigned d = 0;
	memset(seen, 0, sizeof(seen));
	for (unsigned i = 0; i < n; i++)
		if (!seen[p[i]]) {
			seen[p[i]] = 1;
			d++;
		}
	return d;
}

static bool all(const uint8_t *p, unsigned n, uint8_t v)
{
	for (unsigned i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static bool same(const uint8_t *a, const uint8_t *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static void rng_read(void)
{
	/* Two 64-byte reads; the bytes after each must stay as they were. */
	memset(buf_a, 0, sizeof(buf_a));
	memset(buf_b, 0, sizeof(buf_b));
	memset(buf_a + 64, TAIL_PAT, 64);
	uint32_t u1 = request(buf_a, 64), u2 = request(buf_b, 64);
	line("read");
	kv("used1", u1);
	kv("used2", u2);
	kv("distinct", distinct(buf_a, 64));
	kv("differ", !same(buf_a, buf_b, 64));
	kv("tail_intact", all(buf_a + 64, 64, TAIL_PAT));
	puts_uart("\n");

	/* One request over two buffers: both are filled. */
	memset(buf_a, 0, sizeof(buf_a));
	memset(buf_b, 0, sizeof(buf_b));
	set_desc(0, buf_a, 10, D_WRITE | D_NEXT, 1);
	set_desc(1, buf_b, 90, D_WRITE, 0);
	submit(1);
	uint32_t used = 0;
	int rc = wait_used(&used);
	line("split");
	kv("used", rc == 1 ? used : 0x100u + (unsigned)rc);
	kv("first_filled", !all(buf_a, 10, 0));
	kv("second_filled", !all(buf_b, 90, 0));
	puts_uart("\n");

	/* Larger than a request gets: 64 KiB, the rest untouched. */
	memset(big, TAIL_PAT, BIG);
	used = request(big, BIG);
	line("big");
	kv("used", used);
	kv("distinct", distinct(big, REQ_MAX));
	kv("tail_intact", all(big + REQ_MAX, BIG - REQ_MAX, TAIL_PAT));
	puts_uart("\n");

	/* Nothing to fill: the chain comes back with nothing written. */
	used = request(buf_a, 0);
	line("empty");
	kv("used", used);
	puts_uart("\n");

	if (features & F_INDIRECT) {
		memset(buf_a, 0, sizeof(buf_a));
		ind[0] = (struct desc){ (uintptr_t)buf_a, 32, D_WRITE | D_NEXT, 1 };
		ind[1] = (struct desc){ (uintptr_t)buf_a + 32, 32, D_WRITE, 0 };
		set_desc(0, ind, 2 * sizeof(struct desc), D_INDIRECT, 0);
		submit(1);
		rc = wait_used(&used);
		line("indirect");
		kv("used", rc == 1 ? used : 0x100u + (unsigned)rc);
		kv("distinct", distinct(buf_a, 64));
		puts_uart("\n");
	}
}

static void rng_rate(void)
{
	unsigned ok = 0;
	for (unsigned i = 0; i < 16; i++)
		ok += request(big, 4096) == 4096;
	line("rate");
	kv("requests", 16);
	kv("full", ok);
	puts_uart("\n");
}

/* After a broken chain: DEVICE_NEEDS_RESET and a configuration interrupt, no used entry;
 * then the driver resets the device, and a read works again. */
static void expect_broken(const char *what)
{
	uint32_t len;
	int rc = wait_used(&len);
	line(what);
	kv("needs_reset", rc == 0);
	kv("used", rc == 1);
	kv("isr_config", (reg_rd(R_ISR) >> 1) & 1);
	puts_uart("\n");
	reg_wr(R_STATUS, 0);
	line(what);
	puts_uart(" reset");
	kv("status", reg_rd(R_STATUS));
	puts_uart("\n");
	if (!rng_init())
		return;
	memset(buf_a, 0, 64);
	uint32_t u = request(buf_a, 64);
	line(what);
	puts_uart(" recovered");
	kv("used", u);
	kv("distinct", distinct(buf_a, 64));
	puts_uart("\n");
}

/* A buffer the device may only read: the spec forbids any here. */
static void rng_readable(void)
{
	set_desc(0, buf_a, 64, 0, 0);
	submit(1);
	expect_broken("readable");
}

/* A readable buffer first, a writable one after it. */
static void rng_readable_first(void)
{
	set_desc(0, buf_a, 16, D_NEXT, 1);
	set_desc(1, buf_b, 64, D_WRITE, 0);
	submit(1);
	expect_broken("readable-first");
}

static void rng_oob_addr(void)
{
	set_desc(0, NO_RAM, 64, D_WRITE, 0);
	submit(1);
	expect_broken("oob-addr");
}

static void rng_loop(void)
{
	set_desc(0, buf_a, 64, D_WRITE | D_NEXT, 1);
	set_desc(1, buf_b, 64, D_WRITE | D_NEXT, 0); /* back to 0 */
	submit(1);
	expect_broken("loop");
}

static void rng_avail_ahead(void)
{
	set_desc(0, buf_a, 64, D_WRITE, 0);
	submit(QN + 100);
	expect_broken("avail-ahead");
}

/* QN + 4 descriptors in one indirect table: longer than the queue allows. */
static void rng_long_chain(void)
{
	if (!(features & F_INDIRECT)) {
		line("long-chain: no indirect descriptors offered\n");
		return;
	}
	unsigned n = QN + 4;
	for (unsigned i = 0; i < n; i++)
		ind[i] = (struct desc){ (uintptr_t)big + 64 * i, 64,
					(uint16_t)(D_WRITE | (i + 1 < n ? D_NEXT : 0)),
					(uint16_t)(i + 1) };
	set_desc(0, ind, n * sizeof(struct desc), D_INDIRECT, 0);
	submit(1);
	expect_broken("long-chain");
}

/* rng-count: across a snapshot the queue positions must match the guest's rings, or a
 * request is lost (the guest waits forever) or served twice. */
static void rng_count(void)
{
	memset(buf_b, 0, 64);
	for (uint64_t n = 1;; n++) {
		for (volatile unsigned long i = 0; i < 20000; i++)
			;
		uint32_t used = request(buf_a, 64);
		if (used != 64 || same(buf_a, buf_b, 64)) {
			line("count failed");
			kv("used", used);
			puts_uart("\n");
			return;
		}
		memcpy(buf_b, buf_a, 64);
		line("count=");
		put_dec(n);
		puts_uart("\n");
	}
}

/* rng-dirty: the guest only reads these pages, so KVM's dirty log never sees them written:
 * a Diff snapshot holds them only if the VMM marks what its devices write. */
#define RNG_DIRTY_BASE	0x3000000UL
#define RNG_DIRTY_PAGES 8
static void rng_dirty(void)
{
	for (uint64_t n = 1;; n++) {
		for (volatile unsigned long i = 0; i < 20000; i++)
			;
		uint8_t *page = (uint8_t *)(RNG_DIRTY_BASE + (n % RNG_DIRTY_PAGES) * 4096UL);
		uint32_t used = request(page, 4096);
		if (used != 4096 || all(page, 64, 0)) {
			line("count failed");
			kv("used", used);
			puts_uart("\n");
			return;
		}
		line("count=");
		put_dec(n);
		puts_uart("\n");
	}
}

void rng_run(const char *cmdline)
{
	static const struct {
		const char *word;
		void (*fn)(void);
	} cases[] = {
		{ "rng-read", rng_read },
		{ "rng-rate", rng_rate },
		{ "rng-readable", rng_readable },
		{ "rng-readable-first", rng_readable_first },
		{ "rng-oob-addr", rng_oob_addr },
		{ "rng-loop", rng_loop },
		{ "rng-avail-ahead", rng_avail_ahead },
		{ "rng-long-chain", rng_long_chain },
		{ "rng-count", rng_count },
		{ "rng-dirty", rng_dirty },
	};
	bool any = false;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		any |= has_word(cmdline, cases[i].word);
	if (!any)
		return;
	if (!(base = virtio_find_device(cmdline, RNG_ID))) {
		line("no virtio-rng device on the command line\n");
		return;
	}
	if (!rng_init())
		return;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (has_word(cmdline, cases[i].word))
			cases[i].fn();
	line("totals");
	kv("served", served);
	kv("bytes", served_bytes);
	puts_uart("\n");
}
