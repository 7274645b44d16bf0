/* The split-virtqueue walker against hand-built rings in KVM-less guest memory: valid
 * chains (direct, indirect, mixed), every hostile shape, and notification suppression. */
#include "unit_util.h"

#include "virtio/virtq.h"

#define NUM	  8
#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x11000ULL
#define USED_GPA  0x12000ULL
#define IND_GPA	  0x13000ULL
#define BUF_GPA	  0x20000ULL
#define MEM	  (4 * MIB)

static struct virtq *q(void)
{
	static struct virtq vq;
	return &vq;
}

static struct virtq_chain *chain(void)
{
	static struct virtq_chain c;
	return &c;
}

static struct virtq_desc *desc_at(struct machine *vm, uint64_t gpa)
{
	return (struct virtq_desc *)unit_gpa(vm, gpa, sizeof(struct virtq_desc));
}

static void set_desc(struct machine *vm, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	*desc_at(vm, table + 16 * i) = (struct virtq_desc){ addr, len, flags, next };
}

static struct virtq_avail *avail(struct machine *vm)
{
	return (struct virtq_avail *)unit_gpa(vm, AVAIL_GPA, 6 + 2 * NUM);
}

static struct virtq_used *used(struct machine *vm)
{
	return (struct virtq_used *)unit_gpa(vm, USED_GPA, 6 + 8 * NUM);
}

/* Puts head in the avail ring and moves the index by step (1 for a well-behaved driver). */
static void offer(struct machine *vm, uint16_t head, uint16_t step)
{
	struct virtq_avail *a = avail(vm);
	a->ring[a->idx % NUM] = head;
	a->idx = (uint16_t)(a->idx + step);
}

static struct machine *setup_queue(uint64_t features)
{
	struct machine *vm = unit_vm_new(MEM);
	virtq_init(q(), 256);
	q()->num = NUM;
	q()->desc_gpa = DESC_GPA;
	q()->avail_gpa = AVAIL_GPA;
	q()->used_gpa = USED_GPA;
	q()->ready = true;
	assert_int_equal(virtq_activate(q(), &vm->mem, features), 0);
	return vm;
}

static void expect_broken(const char *fault_part)
{
	assert_int_equal(virtq_pop(q(), chain()), -EINVAL);
	assert_true(q()->broken);
	if (!strstr(q()->fault, fault_part))
		fail_msg("fault \"%s\" does not mention \"%s\"", q()->fault, fault_part);
	/* Broken stays broken: nothing more is taken from the guest. */
	assert_int_equal(virtq_pop(q(), chain()), -EINVAL);
}

static void activation_checks(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(MEM);
	struct {
		uint16_t num;
		uint64_t desc, avail, used;
	} bad[] = {
		{ 0, DESC_GPA, AVAIL_GPA, USED_GPA },	    /* no size */
		{ 6, DESC_GPA, AVAIL_GPA, USED_GPA },	    /* not a power of 2 */
		{ 512, DESC_GPA, AVAIL_GPA, USED_GPA },	    /* beyond QueueNumMax */
		{ NUM, DESC_GPA + 8, AVAIL_GPA, USED_GPA }, /* descriptors need 16-byte alignment */
		{ NUM, DESC_GPA, AVAIL_GPA + 1, USED_GPA }, /* avail needs 2 */
		{ NUM, DESC_GPA, AVAIL_GPA, USED_GPA + 2 }, /* used needs 4 */
		{ NUM, MEM - 64, AVAIL_GPA, USED_GPA },	    /* table runs past the end of RAM */
		{ NUM, DESC_GPA, 1ULL << 40, USED_GPA },    /* no RAM there */
		{ NUM, DESC_GPA, AVAIL_GPA, ~0ULL - 3 },    /* wraps around */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		virtq_init(q(), 256);
		q()->num = bad[i].num;
		q()->desc_gpa = bad[i].desc;
		q()->avail_gpa = bad[i].avail;
		q()->used_gpa = bad[i].used;
		if (virtq_activate(q(), &vm->mem, 0) != -EINVAL || q()->active)
			fail_msg("case %zu was accepted", i);
		assert_non_null(q()->fault);
	}
}

static void simple_chain_and_push(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	assert_int_equal(virtq_pop(q(), chain()), 0); /* nothing offered yet */
	set_desc(vm, DESC_GPA, 3, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 5);
	set_desc(vm, DESC_GPA, 5, BUF_GPA + 0x1000, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	set_desc(vm, DESC_GPA, 0, BUF_GPA + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(vm, 3, 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	struct virtq_chain *c = chain();
	assert_int_equal(c->head, 3);
	assert_int_equal(c->nr_rd, 1);
	assert_int_equal(c->nr_wr, 2);
	assert_int_equal(c->rd_len, 16);
	assert_int_equal(c->wr_len, 513);
	assert_ptr_equal(c->iov[0].iov_base, unit_gpa(vm, BUF_GPA, 16));
	assert_ptr_equal(c->iov[1].iov_base, unit_gpa(vm, BUF_GPA + 0x1000, 512));
	assert_int_equal(c->iov[2].iov_len, 1);
	assert_int_equal(virtq_pop(q(), chain()), 0);

	virtq_push(q(), 3, 513);
	assert_int_equal(used(vm)->idx, 1);
	assert_int_equal(used(vm)->ring[0].id, 3);
	assert_int_equal(used(vm)->ring[0].len, 513);
}

static void unpop_gives_the_chain_back(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 1, BUF_GPA, 64, 0, 0);
	offer(vm, 1, 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	virtq_unpop(q());
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->head, 1);
	assert_int_equal(virtq_pop(q(), chain()), 0);
}

static void zero_length_buffers_are_skipped(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	/* A zero-length buffer at a bogus address carries nothing and is not an error. */
	set_desc(vm, DESC_GPA, 0, 1ULL << 50, 0, VIRTQ_DESC_F_NEXT, 1);
	set_desc(vm, DESC_GPA, 1, BUF_GPA, 8, 0, 0);
	offer(vm, 0, 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->nr_rd, 1);
	assert_int_equal(chain()->rd_len, 8);
}

static void indirect_tables(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	/* A direct descriptor, then an indirect one ending the chain: the spec allows it. */
	set_desc(vm, DESC_GPA, 2, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 4);
	set_desc(vm, DESC_GPA, 4, IND_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(vm, IND_GPA, 0, BUF_GPA + 0x100, 32, VIRTQ_DESC_F_NEXT, 2);
	set_desc(vm, IND_GPA, 2, BUF_GPA + 0x200, 64, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(vm, IND_GPA, 1, BUF_GPA + 0x300, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(vm, 2, 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->nr_rd, 2);
	assert_int_equal(chain()->nr_wr, 2);
	assert_int_equal(chain()->rd_len, 48);
	assert_int_equal(chain()->wr_len, 65);
	assert_ptr_equal(chain()->iov[2].iov_base, unit_gpa(vm, BUF_GPA + 0x200, 64));
}

static void unaligned_indirect_table(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	uint64_t table = IND_GPA + 4; /* the spec sets no alignment for indirect tables */
	set_desc(vm, DESC_GPA, 0, table, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	uint8_t *t = unit_gpa(vm, table, 32);
	struct virtq_desc d[2] = { { BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1 },
				   { BUF_GPA + 16, 1, VIRTQ_DESC_F_WRITE, 0 } };
	memcpy(t, d, sizeof(d));
	offer(vm, 0, 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->rd_len, 16);
	assert_int_equal(chain()->wr_len, 1);
}

static void indirect_without_the_feature(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(vm, IND_GPA, 0, BUF_GPA, 16, 0, 0);
	offer(vm, 0, 1);
	expect_broken("INDIRECT_DESC");
}

static void bad_indirect_shapes(void **state)
{
	(void)state;
	struct {
		uint32_t len;
		uint16_t flags;
		uint16_t inner_flags;
		const char *fault;
	} cases[] = {
		{ 0, VIRTQ_DESC_F_INDIRECT, 0, "indirect table length" },
		{ 24, VIRTQ_DESC_F_INDIRECT, 0, "indirect table length" },
		{ 16 * 300, VIRTQ_DESC_F_INDIRECT, 0, "indirect table length" },
		{ 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 0, "NEXT" },
		{ 16, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_INDIRECT, "inside an indirect" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
		set_desc(vm, DESC_GPA, 0, IND_GPA, cases[i].len, cases[i].flags, 1);
		set_desc(vm, IND_GPA, 0, IND_GPA, 16, cases[i].inner_flags, 0);
		offer(vm, 0, 1);
		expect_broken(cases[i].fault);
	}
	/* A table that lies outside guest memory. */
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	set_desc(vm, DESC_GPA, 0, MEM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(vm, 0, 1);
	expect_broken("outside guest memory");
}

static void descriptor_loop(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(vm, DESC_GPA, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(vm, DESC_GPA, 2, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(vm, 0, 1);
	expect_broken("loop");
}

static void loop_inside_an_indirect_table(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	set_desc(vm, DESC_GPA, 0, IND_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(vm, IND_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(vm, IND_GPA, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(vm, 0, 1);
	expect_broken("loop");
}

static void chain_longer_than_the_queue(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	/* NUM + 1 buffers in one indirect table: no loop, but more than the queue size. */
	set_desc(vm, DESC_GPA, 0, IND_GPA, (NUM + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
	for (unsigned i = 0; i <= NUM; i++)
		set_desc(vm, IND_GPA, i, BUF_GPA, 16, i < NUM ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	offer(vm, 0, 1);
	expect_broken("longer than the queue");
}

/* A full queue's worth of buffers in one indirect table is a chain of the queue size: the
 * descriptor pointing at the table does not count (Linux's virtio-blk sends seg_max + 2). */
static void indirect_table_of_the_queue_size(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	set_desc(vm, DESC_GPA, 0, IND_GPA, NUM * 16, VIRTQ_DESC_F_INDIRECT, 0);
	for (unsigned i = 0; i < NUM; i++)
		set_desc(vm, IND_GPA, i, BUF_GPA, 16, i + 1 < NUM ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	offer(vm, 0, 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->nr_rd, NUM);
	assert_int_equal(chain()->rd_len, 16 * NUM);
}

static void buffer_outside_memory(void **state)
{
	(void)state;
	uint64_t addrs[][2] = {
		{ 1ULL << 40, 16 },	  /* no RAM */
		{ MEM - 8, 16 },	  /* runs past the end */
		{ 0xc0001000ULL, 4 },	  /* the MMIO gap */
		{ ~0ULL - 7, 16 },	  /* wraps */
		{ BUF_GPA, 0xffffffffu }, /* 4 GiB from a 4 MiB guest */
	};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct machine *vm = setup_queue(0);
		set_desc(vm, DESC_GPA, 0, addrs[i][0], (uint32_t)addrs[i][1], 0, 0);
		offer(vm, 0, 1);
		expect_broken("outside guest memory");
	}
}

static void avail_index_running_ahead(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 0, BUF_GPA, 16, 0, 0);
	offer(vm, 0, NUM); /* exactly a full ring: allowed */
	for (unsigned i = 0; i < NUM; i++)
		assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(virtq_pop(q(), chain()), 0);
	offer(vm, 0, NUM + 1);
	expect_broken("ran ahead");
}

static void head_and_next_beyond_the_table(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	offer(vm, NUM, 1);
	expect_broken("beyond the table");
	vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 200);
	offer(vm, 0, 1);
	expect_broken("beyond the table");
}

static void readable_after_writable(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(vm, DESC_GPA, 1, BUF_GPA, 16, 0, 0);
	offer(vm, 0, 1);
	expect_broken("readable buffer after a writable");
}

static void reset_clears_a_broken_queue(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	offer(vm, 0, 100);
	expect_broken("ran ahead");
	virtq_reset(q());
	assert_false(q()->broken);
	assert_false(q()->active);
	assert_false(q()->ready);
	assert_int_equal(q()->num, 256);
	assert_int_equal(virtq_pop(q(), chain()), 0); /* inactive: nothing, no error */
}

static void interrupt_suppression_flags(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 0, BUF_GPA, 16, 0, 0);
	offer(vm, 0, 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	virtq_push(q(), 0, 0);
	assert_true(virtq_need_interrupt(q()));
	avail(vm)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	virtq_push(q(), 0, 0);
	assert_false(virtq_need_interrupt(q()));
	/* Without event index, the device asks for every notification. */
	assert_false(virtq_enable_notify(q()));
	offer(vm, 0, 1);
	assert_true(virtq_enable_notify(q()));
}

static void event_index(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_EVENT_IDX);
	uint16_t *used_event = &avail(vm)->ring[NUM];
	uint16_t *avail_event = (uint16_t *)&used(vm)->ring[NUM];
	set_desc(vm, DESC_GPA, 0, BUF_GPA, 16, 0, 0);
	for (int i = 0; i < 4; i++)
		offer(vm, 0, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(virtq_pop(q(), chain()), 1);

	/* The driver wants an interrupt once used->idx passes 2 (used_event = 2). */
	*used_event = 2;
	virtq_push(q(), 0, 0);			/* idx 1 */
	assert_true(virtq_need_interrupt(q())); /* the first decision always interrupts */
	virtq_push(q(), 0, 0);			/* idx 2 */
	assert_false(virtq_need_interrupt(q()));
	virtq_push(q(), 0, 0); /* idx 3: entry 2 written, past used_event */
	assert_true(virtq_need_interrupt(q()));
	virtq_push(q(), 0, 0);			 /* idx 4 */
	assert_false(virtq_need_interrupt(q())); /* used_event 2 already signalled */
	*used_event = 10;
	assert_false(virtq_need_interrupt(q()));

	/* The device publishes where it wants the next kick, and sees chains added since. */
	assert_false(virtq_enable_notify(q()));
	assert_int_equal(*avail_event, 4);
	offer(vm, 0, 1);
	assert_true(virtq_enable_notify(q()));
	/* Ignoring avail->flags with event index: NO_INTERRUPT does not matter. */
	avail(vm)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	*used_event = 4;
	virtq_push(q(), 0, 0);
	assert_true(virtq_need_interrupt(q()));
}

static void wrapping_indexes(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	set_desc(vm, DESC_GPA, 1, BUF_GPA, 16, 0, 0);
	/* Start both sides near the 16-bit wrap. */
	avail(vm)->idx = 65533;
	q()->next_avail = 65533;
	q()->used_idx = 65533;
	for (int i = 0; i < 6; i++) {
		offer(vm, 1, 1);
		assert_int_equal(virtq_pop(q(), chain()), 1);
		virtq_push(q(), 1, 7);
	}
	assert_int_equal(used(vm)->idx, 3);
	assert_int_equal(used(vm)->ring[2].len, 7);
}

static void push_batch_wraps_at_the_ring_end(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	/* Two slots before the end of the ring and of the 16-bit index: five elements go to
	 * slots 6, 7, 0, 1, 2 and the index wraps to 3. */
	q()->used_idx = 65534;
	used(vm)->idx = 65534;
	struct virtq_used_elem e[5];
	for (unsigned i = 0; i < 5; i++)
		e[i] = (struct virtq_used_elem){ .id = i + 1, .len = 100 * (i + 1) };
	unit_watch_start(used(vm));
	virtq_push_batch(q(), e, 5);
	unsigned stores = unit_watch_stop();
	assert_int_equal(used(vm)->idx, 3);
	assert_int_equal(q()->used_idx, 3);
	unsigned slot[5] = { 6, 7, 0, 1, 2 };
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(used(vm)->ring[slot[i]].id, i + 1);
		assert_int_equal(used(vm)->ring[slot[i]].len, 100 * (i + 1));
	}
	assert_int_equal(used(vm)->ring[3].id, 0); /* nothing beyond */
	/* The index moved once, after every element was in place. */
	assert_int_equal(unit_watch_count(&used(vm)->idx, 2), 1);
	assert_true(unit_watch()->addr[stores - 1] == (uintptr_t)&used(vm)->idx);
	/* An empty batch publishes nothing new. */
	virtq_push_batch(q(), e, 0);
	assert_int_equal(used(vm)->idx, 3);
}

/* Completions added one by one stay invisible to the driver until the batch publishes:
 * then used->idx moves once, after every element. */
static void add_used_publishes_once(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	unit_watch_start(used(vm));
	for (uint16_t i = 0; i < 5; i++)
		virtq_add_used(q(), i, 10u * i);
	assert_int_equal(used(vm)->idx, 0); /* the driver sees nothing yet */
	assert_int_equal(q()->used_idx, 0);
	assert_int_equal(virtq_publish_used(q()), 5);
	unsigned stores = unit_watch_stop();
	assert_int_equal(used(vm)->idx, 5);
	for (uint16_t i = 0; i < 5; i++) {
		assert_int_equal(used(vm)->ring[i].id, i);
		assert_int_equal(used(vm)->ring[i].len, 10u * i);
	}
	assert_int_equal(unit_watch_count(&used(vm)->idx, 2), 1);
	assert_true(unit_watch()->addr[stores - 1] == (uintptr_t)&used(vm)->idx);
	assert_int_equal(virtq_publish_used(q()), 0); /* nothing more to publish */

	/* The interrupt decision publishes first: it never looks at a stale index. */
	virtq_add_used(q(), 6, 1);
	assert_true(virtq_need_interrupt(q()));
	assert_int_equal(used(vm)->idx, 6);
	/* A push publishes what was added before it, in order. */
	virtq_add_used(q(), 1, 2);
	virtq_push(q(), 3, 4);
	assert_int_equal(used(vm)->idx, 8);
	assert_int_equal(used(vm)->ring[6].id, 1);
	assert_int_equal(used(vm)->ring[7].id, 3);
	/* A queue's worth of unpublished elements publishes before a slot is reused. */
	for (uint16_t i = 0; i < NUM + 1; i++)
		virtq_add_used(q(), i, 0);
	assert_int_equal(used(vm)->idx, 8 + NUM);
	assert_int_equal(virtq_publish_used(q()), 1);
	assert_int_equal(used(vm)->idx, 8 + NUM + 1);
	/* A reset forgets what was added and not published. */
	virtq_add_used(q(), 2, 0);
	virtq_reset(q());
	assert_int_equal(q()->used_added, 0);
}

/* With the event index a batch of completions gets one interrupt decision: one interrupt
 * if used_event lies inside what the batch published, none if it lies beyond. */
static void event_index_one_interrupt_per_batch(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_EVENT_IDX);
	uint16_t *used_event = &avail(vm)->ring[NUM];
	*used_event = 0;
	virtq_add_used(q(), 0, 0);
	assert_true(virtq_need_interrupt(q())); /* idx 1: the first decision interrupts */

	/* The driver asks to hear once entry 3 is used (idx passes 3): a batch of four
	 * (idx 1 to 5) crosses it; one decision, one interrupt. */
	*used_event = 3;
	for (int i = 0; i < 4; i++)
		virtq_add_used(q(), 0, 0);
	assert_true(virtq_need_interrupt(q()));
	assert_int_equal(used(vm)->idx, 5);
	/* Entry 3 was signalled already: the next batch (idx 5 to 8) stays quiet. */
	for (int i = 0; i < 3; i++)
		virtq_add_used(q(), 0, 0);
	assert_false(virtq_need_interrupt(q()));
	/* The driver moves used_event beyond what is published: quiet until the batch that
	 * reaches it (entry 12: idx passes 12 at 13). */
	*used_event = 12;
	for (int i = 0; i < 4; i++)
		virtq_add_used(q(), 0, 0);
	assert_false(virtq_need_interrupt(q())); /* idx 12 */
	virtq_add_used(q(), 0, 0);
	assert_true(virtq_need_interrupt(q())); /* idx 13 */
	/* Near the 16-bit wrap the window still counts right. */
	q()->used_idx = q()->signalled_used = 65534;
	*used_event = 0;
	for (int i = 0; i < 4; i++)
		virtq_add_used(q(), 0, 0);
	assert_true(virtq_need_interrupt(q())); /* 65534 -> 2 crosses entry 0 */
}

static void unpop_n_chains(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	for (uint16_t i = 0; i < 3; i++) {
		set_desc(vm, DESC_GPA, i, BUF_GPA + 0x100 * i, 16, 0, 0);
		offer(vm, i, 1);
	}
	for (uint16_t i = 0; i < 3; i++)
		assert_int_equal(virtq_pop(q(), chain()), 1);
	virtq_unpop_n(q(), 2);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->head, 1);
	virtq_unpop_n(q(), 0); /* nothing */
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->head, 2);
	assert_int_equal(virtq_pop(q(), chain()), 0);
	/* Chains given back are checked again when taken again: the driver may have
	 * rewritten them meanwhile. */
	virtq_unpop_n(q(), 3);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(chain()->head, 0);
	set_desc(vm, DESC_GPA, 1, 1ULL << 40, 16, 0, 0);
	expect_broken("outside guest memory");
}

/* Plays a driver that adds a chain while the device publishes avail_event. */
static void driver_adds_a_chain(uintptr_t addr)
{
	(void)addr;
	struct virtq_avail *a = (struct virtq_avail *)unit_gpa(&unit_state()->vm, AVAIL_GPA, 6);
	a->idx++;
}

static void enable_notify_beyond(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(1ULL << VIRTIO_RING_F_EVENT_IDX);
	uint16_t *avail_event = (uint16_t *)&used(vm)->ring[NUM];
	set_desc(vm, DESC_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	offer(vm, 0, 1);
	offer(vm, 0, 1);
	/* Two chains seen, too few for what the device has to place: it gives them back and
	 * asks to hear of the third, where virtq_enable_notify would ask for the first. */
	assert_int_equal(virtq_pop(q(), chain()), 1);
	assert_int_equal(virtq_pop(q(), chain()), 1);
	virtq_unpop_n(q(), 2);
	assert_false(virtq_enable_notify_beyond(q()));
	assert_int_equal(*avail_event, 2);
	assert_int_equal(q()->next_avail, 0);
	assert_true(virtq_enable_notify(q()));
	assert_int_equal(*avail_event, 0);

	/* A chain added while avail_event is being written is not missed. */
	unit_watch_start(avail_event);
	unit_watch()->on_store = driver_adds_a_chain;
	bool again = virtq_enable_notify_beyond(q());
	unit_watch_stop();
	assert_true(again);
	assert_int_equal(avail(vm)->idx, 3);
	assert_int_equal(*avail_event, 2);

	/* A broken queue asks for nothing. */
	avail(vm)->idx = 100;
	assert_int_equal(virtq_pop(q(), chain()), -EINVAL);
	*avail_event = 7;
	assert_false(virtq_enable_notify_beyond(q()));
	assert_int_equal(*avail_event, 7);
}

static void enable_notify_beyond_without_event_index(void **state)
{
	(void)state;
	struct machine *vm = setup_queue(0);
	uint16_t *avail_event = (uint16_t *)&used(vm)->ring[NUM];
	offer(vm, 0, 1);
	/* Every new chain notifies anyway: nothing to write, nothing to retry. */
	unit_watch_start(avail_event);
	assert_false(virtq_enable_notify_beyond(q()));
	assert_int_equal(unit_watch_stop(), 0);
	assert_int_equal(*avail_event, 0);
}

static void iov_helpers(void **state)
{
	(void)state;
	char a[4] = "abcd", b[3] = "efg", c[5] = "hijkl";
	struct iovec iov[3] = { { a, 4 }, { b, 3 }, { c, 5 } };
	unsigned nr = 3;
	char out[16] = { 0 };
	assert_int_equal(iov_to_buf(iov, nr, out, 6), 6);
	assert_memory_equal(out, "abcdef", 6);
	assert_int_equal(iov_drop_front(iov, &nr, 5), 5);
	assert_int_equal(nr, 2);
	assert_ptr_equal(iov[0].iov_base, b + 1);
	assert_int_equal(iov_drop_back(iov, &nr, 6), 6);
	assert_int_equal(nr, 1);
	assert_int_equal(iov[0].iov_len, 1);
	assert_int_equal(iov_from_buf(iov, nr, "XYZ", 3), 1);
	assert_int_equal(b[1], 'X');
	assert_int_equal(iov_drop_front(iov, &nr, 100), 1);
	assert_int_equal(nr, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT_TEST(activation_checks),
		UNIT_TEST(simple_chain_and_push),
		UNIT_TEST(unpop_gives_the_chain_back),
		UNIT_TEST(zero_length_buffers_are_skipped),
		UNIT_TEST(indirect_tables),
		UNIT_TEST(unaligned_indirect_table),
		UNIT_TEST(indirect_without_the_feature),
		UNIT_TEST(bad_indirect_shapes),
		UNIT_TEST(descriptor_loop),
		UNIT_TEST(loop_inside_an_indirect_table),
		UNIT_TEST(chain_longer_than_the_queue),
		UNIT_TEST(indirect_table_of_the_queue_size),
		UNIT_TEST(buffer_outside_memory),
		UNIT_TEST(avail_index_running_ahead),
		UNIT_TEST(head_and_next_beyond_the_table),
		UNIT_TEST(readable_after_writable),
		UNIT_TEST(reset_clears_a_broken_queue),
		UNIT_TEST(interrupt_suppression_flags),
		UNIT_TEST(event_index),
		UNIT_TEST(wrapping_indexes),
		UNIT_TEST(push_batch_wraps_at_the_ring_end),
		UNIT_TEST(add_used_publishes_once),
		UNIT_TEST(event_index_one_interrupt_per_batch),
		UNIT_TEST(unpop_n_chains),
		UNIT_TEST(enable_notify_beyond),
		UNIT_TEST(enable_notify_beyond_without_event_index),
		UNIT_TEST(iov_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
