/* Dirty page tracking without KVM: the VMM's bitmap (marks across regions and at the
 * edges, take and give back), the Diff memory file it writes, the virtqueue marking what a
 * device writes, and the state file's memory record (MEMF) with its checks. */
#include "unit_util.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "virtio/virtq.h"
#include "vmm/snapshot_mem.h"
#include "x86/layout.h"

#define PAGE 4096ULL

static uint64_t *bits(void)
{
	static uint64_t b[(6 * GIB / PAGE) / 64];
	return b;
}

static bool is_set(const uint64_t *b, uint64_t page)
{
	return b[page / 64] >> (page % 64) & 1;
}

/* The pages set in the memory's own bitmap, taken (and so cleared) into bits(). */
static uint64_t take(struct machine *vm)
{
	memset(bits(), 0, (vm->mem.nr_pages + 63) / 64 * 8);
	guest_mem_take_dirty(&vm->mem, bits());
	uint64_t n = 0;
	for (uint64_t w = 0; w < (vm->mem.nr_pages + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(bits()[w]);
	return n;
}

static void marks_and_edges(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(4 * MIB);
	guest_mem_mark_dirty(&vm->mem, 0x1000, 1); /* tracking off: nothing to mark, no crash */
	assert_null(vm->mem.dirty);
	assert_int_equal(guest_mem_track(&vm->mem, true), 0);
	assert_int_equal(vm->mem.nr_pages, 1024);

	guest_mem_mark_dirty(&vm->mem, 0x1000, 1);
	assert_int_equal(take(vm), 1);
	assert_true(is_set(bits(), 1));
	assert_int_equal(take(vm), 0); /* taking cleared them */

	guest_mem_mark_dirty(&vm->mem, 0x1fff, 2); /* a straddling write: two pages */
	assert_int_equal(take(vm), 2);
	assert_true(is_set(bits(), 1) && is_set(bits(), 2));

	guest_mem_mark_dirty(&vm->mem, 0x5000, 0);	      /* nothing written */
	guest_mem_mark_dirty(&vm->mem, UINT64_MAX - 10, 100); /* wraps: beyond RAM */
	guest_mem_mark_dirty(&vm->mem, 4 * MIB, PAGE);	      /* just past the end */
	assert_int_equal(take(vm), 0);
	guest_mem_mark_dirty(&vm->mem, 4 * MIB - 1, UINT64_MAX); /* the last page only */
	assert_int_equal(take(vm), 1);
	assert_true(is_set(bits(), 1023));

	/* A pointer for writing marks its pages; one for reading does not. */
	assert_non_null(guest_mem_ptr(&vm->mem, 0x3000, 100));
	assert_int_equal(take(vm), 0);
	assert_non_null(guest_mem_ptr_w(&vm->mem, 0x3000, 2 * PAGE));
	assert_null(guest_mem_ptr_w(&vm->mem, 4 * MIB - 1, 2));
	assert_int_equal(take(vm), 2);

	/* A failed snapshot gives its pages back. */
	guest_mem_mark_dirty(&vm->mem, 0x7000, 1);
	assert_int_equal(take(vm), 1);
	guest_mem_return_dirty(&vm->mem, bits());
	assert_int_equal(take(vm), 1);
	assert_true(is_set(bits(), 7));

	assert_int_equal(guest_mem_track(&vm->mem, false), 0);
	assert_null(vm->mem.dirty);
}

static void pages_above_the_gap(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(MMIO_GAP_START + GIB);
	assert_int_equal(vm->mem.nr_regions, 2);
	assert_int_equal(guest_mem_track(&vm->mem, true), 0);
	uint64_t low_pages = MMIO_GAP_START / PAGE;
	/* From the last page below the gap to the first above it: the gap has no pages. */
	guest_mem_mark_dirty(&vm->mem, MMIO_GAP_START - PAGE,
			     MMIO_GAP_END - MMIO_GAP_START + 2 * PAGE);
	assert_int_equal(take(vm), 2);
	assert_true(is_set(bits(), low_pages - 1));
	assert_true(is_set(bits(), low_pages));
	guest_mem_mark_dirty(&vm->mem, MMIO_GAP_START, PAGE); /* in the gap */
	assert_int_equal(take(vm), 0);
	guest_mem_mark_dirty(&vm->mem, MMIO_GAP_END + GIB - 1, 1);
	assert_int_equal(take(vm), 1);
	assert_true(is_set(bits(), low_pages + GIB / PAGE - 1));
}

static void diff_file_holds_the_marked_pages(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(4 * MIB);
	assert_int_equal(guest_mem_track(&vm->mem, true), 0);
	memset(guest_mem_ptr_w(&vm->mem, 5 * PAGE, PAGE), 0xab, PAGE);
	memset(guest_mem_ptr_w(&vm->mem, 6 * PAGE, PAGE), 0xcd, PAGE);
	guest_mem_mark_dirty(&vm->mem, 9 * PAGE, 1);		      /* a page of zeros */
	memset(guest_mem_ptr(&vm->mem, 20 * PAGE, PAGE), 0xee, PAGE); /* unmarked: not in it */
	assert_int_equal(take(vm), 3);

	const char *path = unit_tmp_file("junk", 4);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint64_t pages = 0;
	assert_int_equal(guest_mem_dump_dirty(&vm->mem, fd, bits(), &pages), 0);
	assert_int_equal(pages, 3);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 4 * MIB);
	/* Data at pages 5-6 and 9 (its zeros written, to clear the base's page), holes elsewhere.
	 */
	assert_int_equal(lseek(fd, 0, SEEK_DATA), 5 * PAGE);
	assert_int_equal(lseek(fd, 5 * PAGE, SEEK_HOLE), 7 * PAGE);
	assert_int_equal(lseek(fd, 7 * PAGE, SEEK_DATA), 9 * PAGE);
	assert_int_equal(lseek(fd, 9 * PAGE, SEEK_HOLE), 10 * PAGE);
	assert_int_equal(lseek(fd, 10 * PAGE, SEEK_DATA), -1);
	uint8_t b[2];
	assert_int_equal(pread(fd, b, 1, 5 * PAGE + 17), 1);
	assert_int_equal(pread(fd, b + 1, 1, 6 * PAGE), 1);
	assert_int_equal(b[0], 0xab);
	assert_int_equal(b[1], 0xcd);
	assert_int_equal(pread(fd, b, 1, 20 * PAGE), 1);
	assert_int_equal(b[0], 0);
	close(fd);
}

#define NUM	  8
#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x11000ULL
#define USED_GPA  0x12000ULL
#define RD_GPA	  0x20000ULL
#define WR_GPA	  0x30000ULL

static void virtq_marks_what_the_device_writes(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(4 * MIB);
	static struct virtq q;
	static struct virtq_chain c;
	virtq_init(&q, 256);
	q.num = NUM;
	q.desc_gpa = DESC_GPA;
	q.avail_gpa = AVAIL_GPA;
	q.used_gpa = USED_GPA;
	q.ready = true;
	assert_int_equal(virtq_activate(&q, &vm->mem, 0), 0);
	assert_int_equal(guest_mem_track(&vm->mem, true), 0);
	struct virtq_desc *d = (struct virtq_desc *)unit_gpa(vm, DESC_GPA, 2 * 16);
	d[0] = (struct virtq_desc){ RD_GPA, 100, VIRTQ_DESC_F_NEXT, 1 };
	d[1] = (struct virtq_desc){ WR_GPA + PAGE - 8, 16, VIRTQ_DESC_F_WRITE, 0 }; /* 2 pages */
	struct virtq_avail *a = (struct virtq_avail *)unit_gpa(vm, AVAIL_GPA, 6 + 2 * NUM);
	a->ring[0] = 0;
	a->idx = 1;

	/* Popped: the writable buffer's pages, not the readable one's, not the rings. */
	assert_int_equal(virtq_pop(&q, &c), 1);
	assert_int_equal(take(vm), 2);
	assert_true(is_set(bits(), WR_GPA / PAGE) && is_set(bits(), WR_GPA / PAGE + 1));
	/* A snapshot came in between (take cleared the bits): pushed, the chain's writable
	 * pages are marked again, with the used ring. */
	virtq_push(&q, c.head, 16);
	assert_int_equal(take(vm), 3);
	assert_true(is_set(bits(), WR_GPA / PAGE) && is_set(bits(), USED_GPA / PAGE));
	/* A driver that rewrote the chain into a loop meanwhile is walked within bounds. */
	d[1] = (struct virtq_desc){ WR_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1 };
	virtq_push(&q, 0, 16);
	virtq_push(&q, 200, 16); /* a head beyond the table marks only the used ring */
	assert_int_equal(take(vm), 2);
	/* virtio-blk's batched completions (added, published later) mark the same. */
	d[1] = (struct virtq_desc){ WR_GPA + PAGE - 8, 16, VIRTQ_DESC_F_WRITE, 0 };
	virtq_add_used(&q, 0, 16);
	assert_int_equal(take(vm), 3);
	assert_true(is_set(bits(), WR_GPA / PAGE + 1) && is_set(bits(), USED_GPA / PAGE));
	virtq_publish_used(&q);
}

/* A state file with a machine-independent MEMF section: type, size, pages, regions. */
static struct snap_writer memf_file(uint8_t type, uint64_t size, uint64_t pages, unsigned nr,
				    const uint64_t (*regions)[3], size_t extra)
{
	struct snap_writer w = { 0 };
	snapshot_file_start(&w);
	size_t s = snapw_begin(&w, SNAP_MEMORY, 0);
	snapw_u8(&w, type);
	snapw_u64(&w, size);
	snapw_u64(&w, pages);
	snapw_u32(&w, nr);
	for (unsigned i = 0; i < nr; i++)
		for (int k = 0; k < 3; k++)
			snapw_u64(&w, regions[i][k]);
	for (size_t i = 0; i < extra; i++)
		snapw_u8(&w, 0);
	snapw_end(&w, s);
	snapshot_file_seal(&w, 1);
	return w;
}

/* mem_mib's memory record from the file w, 0 or -EINVAL with err. */
static int parse_memf(struct snap_writer *w, unsigned mem_mib, struct snap_mem_record *rec,
		      char *err)
{
	static struct snap_file f;
	assert_int_equal(snapshot_file_parse(w->buf, w->len, &f, err), 0);
	int rc = snapshot_mem_parse(&f, mem_mib, rec, err);
	snapw_free(w);
	return rc;
}

static void memory_record_checks(void **state)
{
	(void)state;
	char err[ERR_LEN];
	struct snap_mem_record rec;
	const uint64_t one[1][3] = { { 0, 0, 128 * MIB } };
	const uint64_t two[2][3] = { { 0, 0, MMIO_GAP_START },
				     { MMIO_GAP_START, MMIO_GAP_END, GIB } };
	const uint64_t three[3][3] = { { 0 } };
	uint64_t big = MMIO_GAP_START + GIB;
	unsigned big_mib = (unsigned)(big >> 20);

	struct snap_writer w = memf_file(1, 128 * MIB, 39, 1, one, 0);
	assert_int_equal(parse_memf(&w, 128, &rec, err), 0);
	assert_true(rec.diff);
	assert_int_equal(rec.dirty_pages, 39);
	assert_int_equal(rec.nr_regions, 1);
	w = memf_file(0, big, 0, 2, two, 0);
	assert_int_equal(parse_memf(&w, big_mib, &rec, err), 0);
	assert_false(rec.diff);
	assert_int_equal(rec.nr_regions, 2);
	assert_int_equal(rec.gpa[1], MMIO_GAP_END);
	assert_int_equal(rec.file_off[1], MMIO_GAP_START);

	/* Format 1.0 has no record: Full, the layout ember builds. */
	w = (struct snap_writer){ 0 };
	snapshot_file_start(&w);
	snapshot_file_seal(&w, 0);
	assert_int_equal(parse_memf(&w, 128, &rec, err), 0);
	assert_false(rec.diff);
	assert_int_equal(rec.size, 128 * MIB);

	struct {
		struct snap_writer w;
		unsigned mib;
		const char *why;
	} bad[] = {
		{ memf_file(2, 128 * MIB, 0, 1, one, 0), 128, "memory section is malformed" },
		{ memf_file(1, 128 * MIB, 1, 1, one, 1), 128, "memory section is malformed" },
		{ memf_file(1, 128 * MIB, 1, 3, three, 0), 128, "memory section is malformed" },
		{ memf_file(1, 128 * MIB, 1, 2, two, 0), 128, "layout is not the one of its 128" },
		{ memf_file(1, 64 * MIB, 1, 1, one, 0), 128, "layout is not the one of its 128" },
		{ memf_file(1, 128 * MIB, 1, 1, one, 0), 64, "layout is not the one of its 64" },
		{ memf_file(1, big, 1, 1, two, 0), big_mib, "layout is not the one" },
		{ memf_file(1, 128 * MIB, 32769, 1, one, 0), 128, "counts 32769 dirty pages" },
		{ memf_file(0, 128 * MIB, 1, 1, one, 0), 128, "counts 1 dirty pages" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_memf(&bad[i].w, bad[i].mib, &rec, err), -EINVAL);
		if (!strstr(err, bad[i].why))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].why);
	}
	/* Regions in another order. */
	const uint64_t swapped[2][3] = { { MMIO_GAP_START, MMIO_GAP_END, GIB },
					 { 0, 0, MMIO_GAP_START } };
	w = memf_file(1, big, 1, 2, swapped, 0);
	assert_int_equal(parse_memf(&w, big_mib, &rec, err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT_TEST(marks_and_edges),
		UNIT_TEST(pages_above_the_gap),
		UNIT_TEST(diff_file_holds_the_marked_pages),
		UNIT_TEST(virtq_marks_what_the_device_writes),
		UNIT_TEST(memory_record_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
