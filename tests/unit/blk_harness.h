/* The virtio-blk unit tests' driver, shared by test_virtq_blk.c and test_blk_snapshot.c: it
 * sets the device up through the MMIO bus, puts requests in guest memory, notifies, and runs
 * the event loop (queue eventfd, engine, completions, rate-limiter timer). */
#ifndef EMBER_BLK_HARNESS_H
#define EMBER_BLK_HARNESS_H

#include "unit_util.h"

#include <fcntl.h>
#include <time.h>

#include "core/log.h"
#include "virtio/blk.h"
#include "x86/layout.h"
#include "virtio/virtio.h"

#define NUM	    32
#define DESC_GPA    0x10000ULL
#define AVAIL_GPA   0x11000ULL
#define USED_GPA    0x12000ULL
#define HDR_GPA	    0x13000ULL /* request i's header at + 32 * i, status at + 16 */
#define DATA_GPA    0x100000ULL
#define IMG_SECTORS 128

struct t {
	struct machine *vm;
	struct virtio_dev *dev;
	uint16_t avail_idx;
	const char *img;
	uint8_t *pattern;
};

static inline struct t *t(void)
{
	static struct t s;
	return &s;
}

static inline int blk_teardown(void **state)
{
	unit_device_machine_free(t()->vm, t()->dev);
	free(t()->pattern);
	memset(t(), 0, sizeof(*t()));
	return unit_teardown(state);
}

#define BLK_TEST(fn) cmocka_unit_test_teardown(fn, blk_teardown)

static inline uint32_t rd(uint64_t off)
{
	uint8_t d[4];
	assert_true(io_bus_access(&t()->vm->mmio_bus, t()->dev->mmio_base + off, d, 4, false));
	return get32(d);
}

static inline void wr(uint64_t off, uint32_t v)
{
	uint8_t d[4];
	put32(d, v);
	assert_true(io_bus_access(&t()->vm->mmio_bus, t()->dev->mmio_base + off, d, 4, true));
}

/* The image: sector s holds bytes (s * 7 + i) & 0xff. */
static inline struct drive_config drive(enum drive_io_engine engine, bool read_only)
{
	size_t len = IMG_SECTORS * 512;
	free(t()->pattern); /* a test that makes a second drive */
	t()->pattern = malloc(len);
	assert_non_null(t()->pattern);
	for (size_t i = 0; i < len; i++)
		t()->pattern[i] = (uint8_t)((i / 512) * 7 + i);
	t()->img = unit_tmp_file(t()->pattern, len);
	return (struct drive_config){ .drive_id = "disk_1",
				      .path_on_host = (char *)t()->img,
				      .is_read_only = read_only,
				      .cache_type = DRIVE_CACHE_WRITEBACK,
				      .io_engine = engine };
}

static inline void driver_init(void);

static inline void start(const struct drive_config *d)
{
	t()->vm = unit_vm_new(4 * MIB);
	assert_int_equal(evloop_init(&t()->vm->loop), 0);
	char err[ERR_LEN];
	int rc = blk_create(t()->vm, d, &t()->dev, err);
	if (rc)
		fail_msg("blk_create: %s", err);
	driver_init();
}

/* The driver's side of initialisation, from a reset device and zeroed rings. */
static inline void driver_init(void)
{
	t()->avail_idx = 0;
	memset(unit_gpa(t()->vm, DESC_GPA, 0x3000), 0, 0x3000);
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, 1);
	wr(VIRTIO_MMIO_STATUS, 3);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint32_t offered = rd(VIRTIO_MMIO_DEVICE_FEATURES);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, offered & (1u << VIRTIO_BLK_F_RO));
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(VIRTIO_MMIO_STATUS, 0xb);
	wr(VIRTIO_MMIO_QUEUE_NUM, NUM);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, DESC_GPA);
	wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, AVAIL_GPA);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, USED_GPA);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	wr(VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xf);
}

static inline struct virtq_used *used(void)
{
	return (struct virtq_used *)unit_gpa(t()->vm, USED_GPA, 6 + 8 * NUM);
}

static inline uint8_t *status_of(unsigned slot)
{
	return unit_gpa(t()->vm, HDR_GPA + 32 * slot + 16, 1);
}

/* Queues request `slot` (descriptors 3*slot..3*slot+2); no notification yet. */
static inline void queue_req(unsigned slot, uint32_t type, uint64_t sector, uint64_t data_gpa,
			     uint32_t len)
{
	struct machine *vm = t()->vm;
	uint8_t *hdr = unit_gpa(vm, HDR_GPA + 32 * slot, 16);
	put32(hdr, type);
	put32(hdr + 4, 0);
	put32(hdr + 8, (uint32_t)sector);
	put32(hdr + 12, (uint32_t)(sector >> 32));
	*status_of(slot) = 0xee;
	struct virtq_desc *d = (struct virtq_desc *)unit_gpa(vm, DESC_GPA, 16 * NUM);
	uint16_t i = (uint16_t)(3 * slot);
	bool dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	d[i] = (struct virtq_desc){ HDR_GPA + 32 * slot, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1) };
	d[i + 1] = (struct virtq_desc){ data_gpa, len,
					(uint16_t)(VIRTQ_DESC_F_NEXT |
						   (dev_writes ? VIRTQ_DESC_F_WRITE : 0)),
					(uint16_t)(i + 2) };
	d[i + 2] = (struct virtq_desc){ HDR_GPA + 32 * slot + 16, 1, VIRTQ_DESC_F_WRITE, 0 };
	if (len == 0) /* no data: header then status */
		d[i] = (struct virtq_desc){ HDR_GPA + 32 * slot, 16, VIRTQ_DESC_F_NEXT,
					    (uint16_t)(i + 2) };
	struct virtq_avail *a = (struct virtq_avail *)unit_gpa(vm, AVAIL_GPA, 6 + 2 * NUM);
	a->ring[t()->avail_idx % NUM] = i;
	a->idx = ++t()->avail_idx;
}

static inline bool all_used(void *arg)
{
	(void)arg;
	return used()->idx == t()->avail_idx;
}

/* Runs the VMM event loop until every queued request is used (until_done) or ms passed.
 * Returns the milliseconds it ran. */
static inline uint64_t run_loop(unsigned ms, bool until_done)
{
	return unit_run_loop(&t()->vm->loop, ms, until_done ? all_used : NULL, NULL);
}

static inline void notify(void)
{
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

/* Writes 8 MiB past the image's sectors: a FLUSH after it has real work to wait for. */
static inline void dirty_the_image(void)
{
	int fd = open(t()->img, O_WRONLY);
	assert_true(fd >= 0);
	uint8_t *junk = calloc(1, 8 << 20);
	assert_non_null(junk);
	assert_int_equal(pwrite(fd, junk, 8 << 20, IMG_SECTORS * 512), 8 << 20);
	free(junk);
	close(fd);
}

#endif
