/* virtio-blk end to end without KVM, through the driver in blk_harness.h, for both engines. */
#include "blk_harness.h"

static void read_write_flush_get_id(enum drive_io_engine engine)
{
	struct drive_config d = drive(engine, false);
	start(&d);
	struct machine *vm = t()->vm;
	queue_req(0, VIRTIO_BLK_T_IN, 5, DATA_GPA, 1024);
	uint8_t *w = unit_gpa(vm, DATA_GPA + 0x10000, 512);
	memset(w, 0x5a, 512);
	queue_req(1, VIRTIO_BLK_T_OUT, 9, DATA_GPA + 0x10000, 512);
	queue_req(2, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 3);
	assert_int_equal(*status_of(0), VIRTIO_BLK_S_OK);
	assert_memory_equal(unit_gpa(vm, DATA_GPA, 1024), t()->pattern + 5 * 512, 1024);
	assert_int_equal(*status_of(1), VIRTIO_BLK_S_OK);
	assert_int_equal(*status_of(2), VIRTIO_BLK_S_OK);
	/* used len: data written into the guest plus the status byte. */
	for (int i = 0; i < 3; i++) {
		uint32_t id = used()->ring[i].id, len = used()->ring[i].len;
		assert_int_equal(len, id == 0 ? 1025 : 1);
	}
	size_t n;
	uint8_t *img = unit_read_file(t()->img, &n);
	assert_non_null(img);
	for (int i = 0; i < 512; i++)
		assert_int_equal(img[9 * 512 + i], 0x5a);
	free(img);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_USED_RING);

	uint8_t *id = unit_gpa(vm, DATA_GPA + 0x20000, 32);
	memset(id, 0xff, 32);
	queue_req(0, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA + 0x20000, 32);
	queue_req(1, 77, 0, DATA_GPA, 512);				/* unknown type */
	queue_req(2, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, DATA_GPA, 1024); /* past the end */
	queue_req(3, VIRTIO_BLK_T_IN, ~0ULL / 256, DATA_GPA, 512);	/* overflowing offset */
	queue_req(4, VIRTIO_BLK_T_IN, 0, DATA_GPA, 100);		/* not whole sectors */
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 8);
	assert_int_equal(*status_of(0), VIRTIO_BLK_S_OK);
	assert_memory_equal(id, "disk_1\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(id[20], 0xff); /* only 20 bytes */
	assert_int_equal(*status_of(1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(*status_of(2), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*status_of(3), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*status_of(4), VIRTIO_BLK_S_IOERR);
}

static void sync_engine(void **state)
{
	(void)state;
	read_write_flush_get_id(DRIVE_ENGINE_SYNC);
}

static void async_engine(void **state)
{
	(void)state;
	char why[ERR_LEN];
	if (blk_uring_probe(why))
		skip(); /* this host has no io_uring: the Sync tests still run */
	read_write_flush_get_id(DRIVE_ENGINE_ASYNC);
}

static void read_only_drive(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, true);
	start(&d);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_true(rd(VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_BLK_F_RO));
	memset(unit_gpa(t()->vm, DATA_GPA, 512), 0x11, 512);
	queue_req(0, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512);
	queue_req(1, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512);
	/* A write of no data is still a write: refused (the image's O_RDONLY alone would let
	 * it pass, as it moves no byte). */
	queue_req(2, VIRTIO_BLK_T_OUT, 0, 0, 0);
	notify();
	run_loop(2000, true);
	assert_int_equal(*status_of(0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*status_of(1), VIRTIO_BLK_S_OK);
	assert_int_equal(*status_of(2), VIRTIO_BLK_S_IOERR);
	size_t n;
	uint8_t *img = unit_read_file(t()->img, &n);
	assert_memory_equal(img, t()->pattern, IMG_SECTORS * 512);
	free(img);
}

static void broken_ring_needs_reset(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	start(&d);
	struct virtq_avail *a = (struct virtq_avail *)unit_gpa(t()->vm, AVAIL_GPA, 6 + 2 * NUM);
	a->idx = 200;
	notify();
	run_loop(100, false);
	assert_true(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(used()->idx, 0);
	/* Reset and set up again: the device serves requests once more. */
	driver_init();
	queue_req(0, VIRTIO_BLK_T_IN, 1, DATA_GPA, 512);
	notify();
	run_loop(2000, true);
	assert_int_equal(*status_of(0), VIRTIO_BLK_S_OK);
	assert_memory_equal(unit_gpa(t()->vm, DATA_GPA, 512), t()->pattern + 512, 512);
}

static void reset_drops_requests_in_flight(void **state)
{
	(void)state;
	char why[ERR_LEN];
	if (blk_uring_probe(why))
		skip();
	struct drive_config d = drive(DRIVE_ENGINE_ASYNC, false);
	start(&d);
	/* A flush with dirty data behind it: io_uring always hands fsync to a worker, and the
	 * writeback takes a while, so the completion arrives after the reset below. */
	dirty_the_image();
	queue_req(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	pthread_mutex_lock(&t()->dev->lock);
	t()->dev->ops->queue_notify(t()->dev, 0);
	pthread_mutex_unlock(&t()->dev->lock);
	assert_int_equal(used()->idx, 0); /* still in flight */
	wr(VIRTIO_MMIO_STATUS, 0);
	run_loop(1000, false);
	/* The completion came, and left the (reset) rings alone. */
	assert_int_equal(used()->idx, 0);
	assert_int_equal(*status_of(0), 0xee);
	/* The new rings see exactly their own requests. */
	driver_init();
	queue_req(0, VIRTIO_BLK_T_IN, 3, DATA_GPA, 512);
	notify();
	run_loop(2000, true);
	run_loop(50, false); /* a stale completion would show up here */
	assert_int_equal(used()->idx, 1);
	assert_int_equal(used()->ring[0].len, 513);
	assert_int_equal(*status_of(0), VIRTIO_BLK_S_OK);
}

static void rate_limited_bandwidth(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	/* 16 KiB per 100 ms: one 16 KiB read at once from the full bucket, then 100 ms each. */
	d.rate_limiter.bandwidth = (struct token_bucket_config){ 16384, 0, 100 };
	start(&d);
	for (unsigned i = 0; i < 4; i++)
		queue_req(i, VIRTIO_BLK_T_IN, 0, DATA_GPA + i * 0x4000, 16384);
	notify();
	uint64_t ms = run_loop(3000, true);
	assert_int_equal(used()->idx, 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(*status_of(i), VIRTIO_BLK_S_OK);
	if (ms < 280 || ms > 1000)
		fail_msg("4 x 16 KiB at 160 KiB/s took %llu ms, expected about 300",
			 (unsigned long long)ms);
}

static void rate_limited_ops(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	d.rate_limiter.ops = (struct token_bucket_config){ 2, 1, 100 }; /* 20/s, 1 extra at first */
	start(&d);
	for (unsigned i = 0; i < 7; i++)
		queue_req(i, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	notify();
	uint64_t ms = run_loop(3000, true);
	assert_int_equal(used()->idx, 7);
	/* 3 at once (2 + the burst), then 4 more at 20/s: 200 ms. */
	if (ms < 180 || ms > 800)
		fail_msg("7 flushes took %llu ms, expected about 200", (unsigned long long)ms);
}

static void patch_a_running_drive(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_ASYNC, false);
	char why[ERR_LEN];
	if (blk_uring_probe(why))
		d.io_engine = DRIVE_ENGINE_SYNC;
	start(&d);
	uint32_t gen = rd(VIRTIO_MMIO_CONFIG_GENERATION);
	/* A new, larger image whose sector 0 says so. */
	uint8_t big[IMG_SECTORS * 1024];
	memset(big, 0x77, sizeof(big));
	d.path_on_host = (char *)unit_tmp_file(big, sizeof(big));
	d.rate_limiter.ops = (struct token_bucket_config){ 1, 0, 100 }; /* 10 requests/s */
	char err[ERR_LEN];
	if (blk_update(t()->dev, &d, err))
		fail_msg("blk_update: %s", err);
	assert_int_equal(rd(VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
	assert_int_equal(rd(VIRTIO_MMIO_CONFIG), 2 * IMG_SECTORS);
	assert_true(atomic_load(&t()->dev->irq_status) & VIRTIO_INT_CONFIG);
	for (unsigned i = 0; i < 3; i++)
		queue_req(i, VIRTIO_BLK_T_IN, 2 * IMG_SECTORS - 1, DATA_GPA + i * 512, 512);
	notify();
	uint64_t ms = run_loop(3000, true);
	assert_int_equal(used()->idx, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(*status_of(i), VIRTIO_BLK_S_OK);
		assert_int_equal(*unit_gpa(t()->vm, DATA_GPA + i * 512, 1), 0x77);
	}
	if (ms < 180) /* one at once, then 100 ms each */
		fail_msg("3 reads at 10/s took only %llu ms", (unsigned long long)ms);
	/* A missing image is refused and changes nothing. */
	d.path_on_host = (char *)unit_missing_path();
	assert_true(blk_update(t()->dev, &d, err) < 0);
	assert_non_null(strstr(err, d.path_on_host));
	assert_int_equal(rd(VIRTIO_MMIO_CONFIG), 2 * IMG_SECTORS);
}

static void bad_images_are_refused(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(4 * MIB);
	assert_int_equal(evloop_init(&vm->loop), 0);
	t()->vm = vm;
	char err[ERR_LEN];
	struct drive_config d = { .drive_id = "scratch",
				  .path_on_host = (char *)unit_missing_path() };
	assert_true(blk_create(vm, &d, NULL, err) < 0);
	assert_non_null(strstr(err, "drive scratch"));
	assert_non_null(strstr(err, d.path_on_host));
	d.path_on_host = "/";
	d.is_read_only = true;
	assert_int_equal(blk_create(vm, &d, NULL, err), -EINVAL);
	assert_non_null(strstr(err, "not a file or block device"));
	assert_int_equal(vm->nr_mmio_slots, 0);
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool dev_writes;
};

/* Queues one request as the chain segs (descriptors 20 on, free of queue_req's slots 0 to
 * 5); no notification yet. */
static void queue_chain(const struct seg *segs, unsigned n)
{
	struct virtq_desc *d = (struct virtq_desc *)unit_gpa(t()->vm, DESC_GPA, 16 * NUM);
	assert_true(20 + n <= NUM);
	for (unsigned i = 0; i < n; i++)
		d[20 + i] = (struct virtq_desc){ segs[i].gpa, segs[i].len,
						 (uint16_t)((i + 1 < n ? VIRTQ_DESC_F_NEXT : 0) |
							    (segs[i].dev_writes ? VIRTQ_DESC_F_WRITE
										: 0)),
						 (uint16_t)(21 + i) };
	struct virtq_avail *a = (struct virtq_avail *)unit_gpa(t()->vm, AVAIL_GPA, 6 + 2 * NUM);
	a->ring[t()->avail_idx % NUM] = 20;
	a->idx = ++t()->avail_idx;
}

static void put_hdr(uint8_t *p, uint32_t type, uint64_t sector)
{
	put32(p, type);
	put32(p + 4, 0);
	put32(p + 8, (uint32_t)sector);
	put32(p + 12, (uint32_t)(sector >> 32));
}

/* The status byte is the chain's last writable byte wherever the buffers are split, and
 * the header may be split too. */
static void status_in_odd_splits(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	start(&d);
	struct machine *vm = t()->vm;
	uint64_t h = DATA_GPA + 0x40000, buf = DATA_GPA;

	/* IN: header 3 + 13; 1024 data bytes in 700 + 324, the status in the same buffer as
	 * the last 324 (325 bytes). */
	uint8_t hdr[16];
	put_hdr(hdr, VIRTIO_BLK_T_IN, 2);
	memcpy(unit_gpa(vm, h, 3), hdr, 3);
	memcpy(unit_gpa(vm, h + 0x100, 13), hdr + 3, 13);
	memset(unit_gpa(vm, buf, 0x2000), 0xee, 0x2000);
	queue_chain((struct seg[]){ { h, 3, false },
				    { h + 0x100, 13, false },
				    { buf, 700, true },
				    { buf + 0x1000, 325, true } },
		    4);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 1);
	assert_int_equal(used()->ring[0].id, 20);
	assert_int_equal(used()->ring[0].len, 1025);
	assert_memory_equal(unit_gpa(vm, buf, 700), t()->pattern + 2 * 512, 700);
	assert_memory_equal(unit_gpa(vm, buf + 0x1000, 324), t()->pattern + 2 * 512 + 700, 324);
	assert_int_equal(*unit_gpa(vm, buf + 0x1000 + 324, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(*unit_gpa(vm, buf + 0x1000 + 325, 1), 0xee); /* nothing beyond */
	assert_int_equal(*unit_gpa(vm, buf + 700, 1), 0xee);

	/* OUT: the header's last byte and the first data bytes in one buffer (1 + 15 + 200),
	 * then 312; the status alone, then a zero-length writable descriptor, which carries
	 * nothing and must not move the status. */
	uint8_t *o = unit_gpa(vm, h + 0x200, 16 + 512);
	put_hdr(o, VIRTIO_BLK_T_OUT, 7);
	for (unsigned i = 0; i < 512; i++)
		o[16 + i] = (uint8_t)(0xa0 ^ i);
	uint8_t *st = unit_gpa(vm, h + 0x500, 2);
	st[0] = st[1] = 0xee;
	queue_chain((struct seg[]){ { h + 0x200, 1, false },
				    { h + 0x201, 215, false },
				    { h + 0x200 + 216, 312, false },
				    { h + 0x500, 1, true },
				    { 1ULL << 40, 0, true } },
		    5);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(used()->ring[1].len, 1);
	assert_int_equal(st[0], VIRTIO_BLK_S_OK);
	assert_int_equal(st[1], 0xee);
	size_t n;
	uint8_t *img = unit_read_file(t()->img, &n);
	assert_non_null(img);
	assert_memory_equal(img + 7 * 512, o + 16, 512);
	free(img);

	/* GET_ID: id and status share one 21-byte buffer. */
	uint8_t *g = unit_gpa(vm, h + 0x600, 32);
	put_hdr(g, VIRTIO_BLK_T_GET_ID, 0);
	memset(g + 16, 0xee, 16);
	uint8_t *id = unit_gpa(vm, h + 0x800, 22);
	memset(id, 0xee, 22);
	queue_chain((struct seg[]){ { h + 0x600, 16, false }, { h + 0x800, 21, true } }, 2);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 3);
	assert_int_equal(used()->ring[2].len, 21);
	assert_memory_equal(id, "disk_1\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(id[20], VIRTIO_BLK_S_OK);
	assert_int_equal(id[21], 0xee);
	/* GET_ID into 10 bytes: 9 of the id, then the status; used len counts 10. */
	memset(id, 0xee, 22);
	queue_chain((struct seg[]){ { h + 0x600, 16, false }, { h + 0x800, 10, true } }, 2);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 4);
	assert_int_equal(used()->ring[3].len, 10);
	assert_memory_equal(id, "disk_1\0\0\0", 9);
	assert_int_equal(id[9], VIRTIO_BLK_S_OK);
	assert_int_equal(id[10], 0xee);

	/* FLUSH whose only writable byte is the status, after a 16-byte header in 16 pieces. */
	uint8_t *f = unit_gpa(vm, h + 0xa00, 17);
	put_hdr(f, VIRTIO_BLK_T_FLUSH, 0);
	f[16] = 0xee;
	struct seg fs[17];
	for (unsigned i = 0; i < 16; i++)
		fs[i] = (struct seg){ h + 0xa00 + i, 1, false };
	fs[16] = (struct seg){ h + 0xa00 + 16, 1, true };
	/* 17 descriptors do not fit from 20 in a 32-entry table: this one starts at 0. */
	struct virtq_desc *dt = (struct virtq_desc *)unit_gpa(vm, DESC_GPA, 16 * NUM);
	for (unsigned i = 0; i < 17; i++)
		dt[i] = (struct virtq_desc){ fs[i].gpa, fs[i].len,
					     (uint16_t)((i < 16 ? VIRTQ_DESC_F_NEXT : 0) |
							(fs[i].dev_writes ? VIRTQ_DESC_F_WRITE
									  : 0)),
					     (uint16_t)(i + 1) };
	struct virtq_avail *a = (struct virtq_avail *)unit_gpa(vm, AVAIL_GPA, 6 + 2 * NUM);
	a->ring[t()->avail_idx % NUM] = 0;
	a->idx = ++t()->avail_idx;
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 5);
	assert_int_equal(used()->ring[4].id, 0);
	assert_int_equal(used()->ring[4].len, 1);
	assert_int_equal(f[16], VIRTIO_BLK_S_OK);
	assert_false(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* Requests the device must answer without touching the image: no status byte at all,
 * a header cut short, a read into a readable buffer. */
static void malformed_requests(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	start(&d);
	struct machine *vm = t()->vm;
	uint64_t h = DATA_GPA + 0x40000;
	uint8_t *p = unit_gpa(vm, h, 64);
	put_hdr(p, VIRTIO_BLK_T_IN, 0);
	memset(p + 16, 0xee, 48);
	/* Only readable buffers: nothing to put a status in, the chain goes back empty. */
	queue_chain((struct seg[]){ { h, 16, false }, { h + 16, 16, false } }, 2);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 1);
	assert_int_equal(used()->ring[0].len, 0);
	assert_int_equal(p[16], 0xee);
	/* A 12-byte header: IOERR in the status byte. */
	queue_chain((struct seg[]){ { h, 12, false }, { h + 32, 1, true } }, 2);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(used()->ring[1].len, 1);
	assert_int_equal(p[32], VIRTIO_BLK_S_IOERR);
	assert_false(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* A write that runs past the end of the image fails whole: the image neither changes nor
 * grows (the file system would happily extend it). */
static void write_past_the_end(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	start(&d);
	memset(unit_gpa(t()->vm, DATA_GPA, 1024), 0x33, 1024);
	queue_req(0, VIRTIO_BLK_T_OUT, IMG_SECTORS - 1, DATA_GPA, 1024);
	queue_req(1, VIRTIO_BLK_T_OUT, IMG_SECTORS, DATA_GPA, 512);
	queue_req(2, VIRTIO_BLK_T_OUT, IMG_SECTORS + 8, DATA_GPA, 512);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(*status_of(i), VIRTIO_BLK_S_IOERR);
	size_t n;
	uint8_t *img = unit_read_file(t()->img, &n);
	assert_non_null(img);
	assert_int_equal(n, IMG_SECTORS * 512);
	assert_memory_equal(img, t()->pattern, n);
	free(img);
}

/* With event index, a queue run that empties the ring asks for a notification on the next
 * request (avail_event at the driver's index), so that the driver's kicks are not lost. */
static void event_index_asks_for_the_next_request(void **state)
{
	(void)state;
	struct drive_config d = drive(DRIVE_ENGINE_SYNC, false);
	start(&d);
	const struct unit_ring r = { NUM, DESC_GPA, AVAIL_GPA, USED_GPA };
	unit_driver_init(t()->vm, t()->dev,
			 (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX), &r, 1);
	t()->avail_idx = 0;
	queue_req(0, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512);
	queue_req(1, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	notify();
	run_loop(2000, true);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(get16(&used()->ring[NUM]), 2);
	assert_int_equal(*status_of(1), VIRTIO_BLK_S_OK);
}

/* How many interrupts the device raised since the last call. */
static uint64_t irqs_raised(void)
{
	uint64_t v = 0;
	if (read(t()->dev->irq_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

/* Queues n reads of one sector each (sector i into DATA_GPA + 512 * i) behind one
 * notification and runs until they are used. */
static void read_batch(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		queue_req(i, VIRTIO_BLK_T_IN, i, DATA_GPA + 512 * i, 512);
	notify();
	run_loop(2000, true);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(*status_of(i), VIRTIO_BLK_S_OK);
		assert_memory_equal(unit_gpa(t()->vm, DATA_GPA + 512 * i, 512),
				    t()->pattern + 512 * i, 512);
	}
}

/* A run that completes many requests updates used->idx once and raises one interrupt at
 * most; with the event index, only when used_event lies within what the run published. */
static void completions_are_batched(enum drive_io_engine engine)
{
	struct drive_config d = drive(engine, false);
	start(&d);
	const struct unit_ring r = { NUM, DESC_GPA, AVAIL_GPA, USED_GPA };
	unit_driver_init(t()->vm, t()->dev,
			 (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX), &r, 1);
	t()->avail_idx = 0;
	uint16_t *used_event =
		(uint16_t *)unit_gpa(t()->vm, AVAIL_GPA + 4 + 2 * NUM, sizeof(uint16_t));
	irqs_raised();

	/* Eight requests, one notification: one interrupt (the first decision always
	 * interrupts), and with the Sync engine one store to used->idx for all eight. */
	unit_watch_start(used());
	read_batch(8);
	unit_watch_stop();
	assert_int_equal(used()->idx, 8);
	if (engine == DRIVE_ENGINE_SYNC)
		assert_int_equal(unit_watch_count(&used()->idx, 2), 1);
	assert_int_equal(irqs_raised(), 1);

	/* The driver wants to hear only once entry 100 is used: eight more, no interrupt. */
	*used_event = 100;
	t()->avail_idx = 8;
	read_batch(8);
	assert_int_equal(used()->idx, 16);
	assert_int_equal(irqs_raised(), 0);

	/* It wants entry 20: the run that uses entries 16 to 23 interrupts, once. */
	*used_event = 20;
	read_batch(8);
	assert_int_equal(used()->idx, 24);
	assert_int_equal(irqs_raised(), 1);
}

static void sync_completions_are_batched(void **state)
{
	(void)state;
	completions_are_batched(DRIVE_ENGINE_SYNC);
}

static void async_completions_are_batched(void **state)
{
	(void)state;
	char why[ERR_LEN];
	if (blk_uring_probe(why))
		skip();
	completions_are_batched(DRIVE_ENGINE_ASYNC);
}

/* Dirty data behind the image, so that a flush takes a while (io_uring hands fsync to a
 * worker): the request stays in flight. */
/* While the Async engine holds requests, the device does not ask for notifications (with
 * the event index, avail_event stays behind): a request the driver adds meanwhile, without
 * notifying, is taken when the requests in flight complete. Once nothing is in flight the
 * device asks for the next notification again. */
static void requests_in_flight_need_no_notification(void **state)
{
	(void)state;
	char why[ERR_LEN];
	if (blk_uring_probe(why))
		skip();
	struct drive_config d = drive(DRIVE_ENGINE_ASYNC, false);
	start(&d);
	const struct unit_ring r = { NUM, DESC_GPA, AVAIL_GPA, USED_GPA };
	unit_driver_init(t()->vm, t()->dev,
			 (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX), &r, 1);
	t()->avail_idx = 0;
	uint16_t *avail_event = (uint16_t *)&used()->ring[NUM];
	dirty_the_image();
	queue_req(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	pthread_mutex_lock(&t()->dev->lock);
	t()->dev->ops->queue_notify(t()->dev, 0);
	pthread_mutex_unlock(&t()->dev->lock);
	assert_int_equal(used()->idx, 0); /* still in flight */
	assert_int_equal(get16(avail_event), 0);
	/* The driver adds a read and, avail_event being behind, does not notify. */
	queue_req(1, VIRTIO_BLK_T_IN, 2, DATA_GPA, 512);
	run_loop(5000, true);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(*status_of(0), VIRTIO_BLK_S_OK);
	assert_int_equal(*status_of(1), VIRTIO_BLK_S_OK);
	assert_memory_equal(unit_gpa(t()->vm, DATA_GPA, 512), t()->pattern + 2 * 512, 512);
	/* Nothing in flight: the next request must notify. */
	assert_int_equal(get16(avail_event), 2);
}

/* Reads of cached data complete inside the submit call, and the device takes them there:
 * the eventfd they signalled as well must not wake the event loop once more for CQEs that
 * are gone (a wake-up, a read and an empty reap per batch on the VMM thread). */
static void inline_completions_leave_no_wakeup(void **state)
{
	(void)state;
	char why[ERR_LEN];
	if (blk_uring_probe(why))
		skip();
	struct drive_config d = drive(DRIVE_ENGINE_ASYNC, false);
	start(&d);
	while (evloop_poll(&t()->vm->loop, 0) > 0)
		; /* what the set-up left for the loop */
	for (unsigned i = 0; i < 4; i++)
		queue_req(i, VIRTIO_BLK_T_IN, i, DATA_GPA + 512 * i, 512);
	pthread_mutex_lock(&t()->dev->lock);
	t()->dev->ops->queue_notify(t()->dev, 0);
	pthread_mutex_unlock(&t()->dev->lock);
	/* The image was just written: its pages are cached, and io_uring reads them without
	 * blocking where the file system can (ext4 since long; tmpfs only on newer kernels,
	 * 6.1's hands every read to a worker). */
	if (used()->idx != 4) {
		fprintf(stderr,
			"skipped: cached reads of %s go to an io_uring worker on this "
			"kernel's file system (TMPDIR elsewhere to run this)\n",
			t()->img);
		skip();
	}
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(*status_of(i), VIRTIO_BLK_S_OK);
	assert_memory_equal(unit_gpa(t()->vm, DATA_GPA, 4 * 512), t()->pattern, 4 * 512);
	assert_int_equal(evloop_poll(&t()->vm->loop, 50), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BLK_TEST(sync_engine),
		BLK_TEST(async_engine),
		BLK_TEST(read_only_drive),
		BLK_TEST(broken_ring_needs_reset),
		BLK_TEST(reset_drops_requests_in_flight),
		BLK_TEST(rate_limited_bandwidth),
		BLK_TEST(rate_limited_ops),
		BLK_TEST(patch_a_running_drive),
		BLK_TEST(bad_images_are_refused),
		BLK_TEST(status_in_odd_splits),
		BLK_TEST(malformed_requests),
		BLK_TEST(write_past_the_end),
		BLK_TEST(event_index_asks_for_the_next_request),
		BLK_TEST(sync_completions_are_batched),
		BLK_TEST(async_completions_are_batched),
		BLK_TEST(requests_in_flight_need_no_notification),
		BLK_TEST(inline_completions_leave_no_wakeup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
