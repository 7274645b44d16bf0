/* A polling virtio-balloon driver for the test guest (device id 5): inflate and deflate
 * queues, and the statistics and free page hinting queues when the device offers them.
 * Words:
 *   balloon-driver  follows the host's target for ever (at most POOL_PAGES pages): each
 *                   inflate marks its pages with a pattern first and checks afterwards that
 *                   they read as zeros (the host took them back); statistics go out at once
 *                   and again each time the device returns the buffer. Lines:
 *                   "balloon: ready stats=0|1", "balloon: inflated actual=N zeroed=N",
 *                   "balloon: deflated actual=N", "balloon: stats sent n=N".
 *                   With hinting, each run the host starts (a new free_page_hint_cmd_id)
 *                   sends the id, hints HINT_PAGES marked pages, checks they read as zeros,
 *                   and sends STOP: "balloon: hinted cmd=N zeroed=N"; on DONE it hints the
 *                   same pages, marked again, once more, which the host must leave alone:
 *                   "balloon: hint done late-zeroed=N" (0)
 *   balloon-oob     before that, an inflate request whose PFNs lie outside guest memory
 *                   around one good one: "balloon: oob used=1 reset=0 zeroed=1" */
#include "guest.h"

#define BALLOON_ID  5
#define QN	    16
#define F_STATS	    (1ULL << 1)
#define F_HINT	    (1ULL << 3)
#define POOL_PAGES  256
#define SPINS	    200000000UL
#define PATTERN	    0xa5
#define NQ	    4
#define CMD_STOP    0
#define CMD_DONE    1
#define HINT_PAGES  16
#define HINT_BASE   0x3100000UL /* 49 MiB, after the pool */
#define D_WRITE	    2
#define STAT_MEMTOT 5
#define STAT_MINFLT 3

struct queue {
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
} __attribute__((aligned(4096)));

static volatile struct queue vqs[NQ];
static uint16_t avail_idx[NQ], last_used[NQ];
/* The pages it inflates: guest RAM at 48 MiB, beyond the image (in bss, the loader would
 * zero them at every boot of every test guest). Needs 64 MiB of guest memory, as its tests
 * give it. */
#define POOL_BASE 0x3000000UL
static uint8_t (*const pool)[4096] = (uint8_t(*)[4096])POOL_BASE;
static uint32_t pfns[POOL_PAGES];
static struct __attribute__((packed)) {
	uint16_t tag;
	uint64_t val;
} stats[2];
static uintptr_t base;
static bool have_stats, have_hint;
static unsigned hint_q;
static uint32_t hint_cmd; /* the command id the driver sends (device-readable) */

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
	puts_uart("balloon: ");
	puts_uart(what);
}

static bool balloon_init(void)
{
	reg_wr(R_STATUS, 0);
	reg_wr(R_STATUS, S_ACK);
	reg_wr(R_STATUS, S_ACK | S_DRIVER);
	reg_wr(R_DEV_FEATURES_SEL, 0);
	uint64_t offered = reg_rd(R_DEV_FEATURES);
	reg_wr(R_DEV_FEATURES_SEL, 1);
	offered |= (uint64_t)reg_rd(R_DEV_FEATURES) << 32;
	uint64_t features = offered & (F_VERSION_1 | F_STATS | F_HINT);
	have_stats = features & F_STATS;
	have_hint = features & F_HINT;
	hint_q = have_stats ? 3 : 2; /* the queues the driver took, numbered in turn */
	reg_wr(R_DRV_FEATURES_SEL, 0);
	reg_wr(R_DRV_FEATURES, (uint32_t)features);
	reg_wr(R_DRV_FEATURES_SEL, 1);
	reg_wr(R_DRV_FEATURES, (uint32_t)(features >> 32));
	reg_wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(reg_rd(R_STATUS) & S_FEATURES_OK)) {
		line("FEATURES_OK refused\n");
		return false;
	}
	memset((void *)vqs, 0, sizeof(vqs));
	for (unsigned q = 0; q < 2u + have_stats + have_hint; q++) {
		volatile struct queue *v = &vqs[q];
		reg_wr(R_QUEUE_SEL, q);
		reg_wr(R_QUEUE_NUM, QN);
		reg_wr(R_DESC_LO, (uint32_t)(uintptr_t)v->desc);
		reg_wr(R_DESC_HI, 0);
		reg_wr(R_AVAIL_LO, (uint32_t)(uintptr_t)&v->avail);
		reg_wr(R_AVAIL_HI, 0);
		reg_wr(R_USED_LO, (uint32_t)(uintptr_t)&v->used);
		reg_wr(R_USED_HI, 0);
		reg_wr(R_QUEUE_READY, 1);
	}
	reg_wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return true;
}

/* One buffer on queue q, at descriptor 0 (one request in flight per queue). */
static void submit_flags(unsigned q, const void *p, uint32_t len, uint16_t flags)
{
	volatile struct queue *v = &vqs[q];
	v->desc[0].addr = (uint64_t)(uintptr_t)p;
	v->desc[0].len = len;
	v->desc[0].flags = flags;
	v->desc[0].next = 0;
	v->avail.ring[avail_idx[q] % QN] = 0;
	mb(); /* the descriptor and ring entry before the index */
	v->avail.idx = ++avail_idx[q];
	mb(); /* the index before the notification */
	reg_wr(R_QUEUE_NOTIFY, q);
}

static void submit(unsigned q, const void *p, uint32_t len)
{
	submit_flags(q, p, len, 0);
}

static bool used_ready(unsigned q)
{
	if (vqs[q].used.idx == last_used[q])
		return false;
	mb(); /* the used index before what it covers */
	last_used[q]++;
	return true;
}

/* 1 when queue q returned the request, 0 when the device needs a reset, -1 on timeout. */
static int wait_used(unsigned q)
{
	for (unsigned long i = 0; i < SPINS; i++) {
		if (used_ready(q))
			return 1;
		if ((i & 1023) == 0 && (reg_rd(R_STATUS) & S_NEEDS_RESET))
			return 0;
		__asm__ volatile("pause");
	}
	return -1;
}

static void send_stats(void)
{
	static uint64_t sent;
	stats[0].tag = STAT_MEMTOT;
	stats[0].val = 64ULL << 20;
	stats[1].tag = STAT_MINFLT;
	stats[1].val = ++sent;
	submit(2, stats, sizeof(stats));
	line("stats sent");
	kv("n", sent);
	puts_uart("\n");
}

/* A byte of every 64 is enough to tell a page the host took back (zeros) from one it did
 * not. Filling whole pages took about 60 ms a page on the PVM development host. */
static void mark_page(uint8_t *pg)
{
	for (unsigned i = 0; i < 4096; i += 64)
		((volatile uint8_t *)pg)[i] = PATTERN;
}

static bool page_zeroed(const uint8_t *pg)
{
	for (unsigned i = 0; i < 4096; i += 64)
		if (((const volatile uint8_t *)pg)[i])
			return false;
	return true;
}

static void mark(unsigned p)
{
	mark_page(pool[p]);
}

static bool zeroed(unsigned from, unsigned to)
{
	for (unsigned p = from; p < to; p++)
		if (!page_zeroed(pool[p]))
			return false;
	return true;
}

/* Free page hinting: the pages it hints at, marked first; how many read as zeros after. */
static unsigned hint_pages(void)
{
	uint8_t *area = (uint8_t *)HINT_BASE;
	for (unsigned p = 0; p < HINT_PAGES; p++)
		mark_page(area + 4096 * p);
	submit_flags(hint_q, area, HINT_PAGES * 4096, D_WRITE);
	if (wait_used(hint_q) != 1)
		return 0;
	unsigned n = 0;
	for (unsigned p = 0; p < HINT_PAGES; p++)
		n += page_zeroed(area + 4096 * p);
	return n;
}

static bool send_cmd(uint32_t cmd)
{
	hint_cmd = cmd;
	submit(hint_q, &hint_cmd, sizeof(hint_cmd));
	return wait_used(hint_q) == 1;
}

/* Looks at the host's command: a new run is hinted for at once, DONE answered with the late
 * hint. */
static void hint_poll(void)
{
	static uint32_t seen = CMD_STOP;
	uint32_t cmd = reg_rd(R_CONFIG + 8);
	if (cmd == seen)
		return;
	seen = cmd;
	if (cmd == CMD_DONE) {
		line("hint done");
		kv("late-zeroed", hint_pages());
		puts_uart("\n");
		return;
	}
	if (cmd == CMD_STOP)
		return;
	unsigned n = send_cmd(cmd) ? hint_pages() : 0;
	if (!send_cmd(CMD_STOP))
		line("hint STOP failed\n");
	line("hinted");
	kv("cmd", cmd);
	kv("zeroed", n);
	puts_uart("\n");
}

/* Moves actual towards target; returns the new actual. */
static uint32_t follow(uint32_t actual, uint32_t target)
{
	if (target > POOL_PAGES)
		target = POOL_PAGES;
	if (target == actual)
		return actual;
	bool up = target > actual;
	unsigned from = up ? actual : target, to = up ? target : actual;
	for (unsigned p = from; p < to; p++) {
		if (up)
			mark(p);
		pfns[p - from] = (uint32_t)((uintptr_t)pool[p] >> 12);
	}
	submit(up ? 0 : 1, pfns, 4 * (to - from));
	if (wait_used(up ? 0 : 1) != 1) {
		line(up ? "inflate failed\n" : "deflate failed\n");
		return actual;
	}
	reg_wr(R_CONFIG + 4, target);
	line(up ? "inflated" : "deflated");
	kv("actual", target);
	if (up)
		kv("zeroed", zeroed(from, to) ? to - from : 0);
	puts_uart("\n");
	return target;
}

static void oob(void)
{
	/* 16 GiB and 4 GiB - 4 KiB around one good page. */
	mark(0);
	pfns[0] = (uint32_t)((uintptr_t)NO_RAM >> 12);
	pfns[1] = (uint32_t)((uintptr_t)pool[0] >> 12);
	pfns[2] = 0xfffff;
	submit(0, pfns, 12);
	int rc = wait_used(0);
	line("oob");
	kv("used", rc == 1);
	kv("reset", (reg_rd(R_STATUS) & S_NEEDS_RESET) != 0);
	kv("zeroed", zeroed(0, 1));
	puts_uart("\n");
}

void balloon_run(const char *cmdline)
{
	if (!has_word(cmdline, "balloon-driver") && !has_word(cmdline, "balloon-oob"))
		return;
	if (!(base = virtio_find_device(cmdline, BALLOON_ID))) {
		line("no virtio-balloon device on the command line\n");
		return;
	}
	if (!balloon_init())
		return;
	line("ready");
	kv("stats", have_stats);
	kv("hint", have_hint);
	puts_uart("\n");
	if (has_word(cmdline, "balloon-oob"))
		oob();
	if (!has_word(cmdline, "balloon-driver"))
		return;
	if (have_stats)
		send_stats();
	uint32_t actual = 0;
	for (;;) {
		actual = follow(actual, reg_rd(R_CONFIG));
		if (have_stats && used_ready(2))
			send_stats();
		if (have_hint)
			hint_poll();
		for (volatile unsigned i = 0; i < 10000; i++)
			;
	}
}
