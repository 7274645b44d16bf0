/* The descriptor walker (virtio/virtq.c) on its own, faster than through a device: a queue of
 * the input's size and features over guest memory from the input, then the input's run of
 * pops, pushes, give-backs and notification switches. Checked: every chain popped lies in
 * guest memory, with the lengths it claims, and within the chain bound. */
#include <stdio.h>

#include "virtio/virtq.h"
#include "fuzz.h"

#define MEM (64 * 1024)

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_virtq: %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static struct guest_mem mem;
static uint8_t *ram;
static struct virtq_chain chain;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	if (guest_mem_init(&mem, MEM))
		abort();
	ram = guest_mem_ptr(&mem, 0, MEM);
	return 0;
}

static void check_chain(const struct virtq_chain *c)
{
	check(c->nr_rd + c->nr_wr <= VIRTQ_MAX_SIZE);
	uint64_t rd = 0, wr = 0;
	for (unsigned i = 0; i < c->nr_rd + c->nr_wr; i++) {
		const uint8_t *b = c->iov[i].iov_base;
		check(b >= ram && c->iov[i].iov_len <= MEM && b + c->iov[i].iov_len <= ram + MEM);
		*(i < c->nr_rd ? &rd : &wr) += c->iov[i].iov_len;
	}
	check(rd == c->rd_len && wr == c->wr_len);
}

/* Input: queue size (log2), feature byte, three ring addresses (16 bits each), the script
 * length and script, then the memory image. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	struct virtq q;
	virtq_init(&q, VIRTQ_MAX_SIZE);
	q.num = (uint16_t)(1U << (fin8(&f) % 10)); /* up to 512: one past the largest */
	uint8_t feat = fin8(&f);
	uint64_t features = (feat & 1 ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
			    (feat & 2 ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0) |
			    1ULL << VIRTIO_F_VERSION_1;
	q.desc_gpa = fin16(&f);
	q.avail_gpa = fin16(&f);
	q.used_gpa = fin16(&f);
	q.ready = true;
	if (feat & 4) /* now and then an address anywhere */
		q.desc_gpa |= (uint64_t)fin32(&f) << 16;
	struct fin script = fin_split(&f, fin16(&f));
	size_t got;
	const uint8_t *image = fin_bytes(&f, MEM, &got);
	memcpy(ram, image, got);
	memset(ram + got, 0, MEM - got);
	if (virtq_activate(&q, &mem, features))
		return 0;
	/* Devices give back only chains they popped and have not pushed since: so does this. */
	uint16_t popped = 0;
	bool last_was_pop = false;
	struct virtq_used_elem elems[8];
	while (fin_more(&script)) {
		uint8_t op = fin8(&script);
		bool was_pop = last_was_pop;
		last_was_pop = false;
		switch (op % 7) {
		case 0:
		case 1:
			if (virtq_pop(&q, &chain) == 1) {
				check_chain(&chain);
				popped++;
				last_was_pop = true;
			}
			break;
		case 2:
			/* Now and then added for a later publication instead. */
			if (op & 0x80)
				virtq_add_used(&q, fin16(&script), fin32(&script));
			else
				virtq_push(&q, fin16(&script), fin32(&script));
			popped = 0;
			break;
		case 3:
			if (was_pop) {
				virtq_unpop(&q);
				popped--;
			}
			break;
		case 4: {
			if (op & 0x80)
				virtq_publish_used(&q);
			uint16_t n = fin8(&script) % (popped + 1);
			virtq_unpop_n(&q, n);
			popped -= n;
			break;
		}
		case 5: {
			unsigned nr = fin8(&script) % 9;
			for (unsigned i = 0; i < nr; i++)
				elems[i] =
					(struct virtq_used_elem){ fin16(&script), fin32(&script) };
			virtq_push_batch(&q, elems, nr);
			popped = 0;
			break;
		}
		case 6:
			virtq_need_interrupt(&q);
			if (op & 0x80)
				virtq_enable_notify_beyond(&q);
			else
				virtq_enable_notify(&q);
			/* The driver moves on meanwhile. */
			if (op & 0x40) {
				uint16_t off = fin16(&script) % (MEM - 1);
				ram[off] = fin8(&script);
			}
			break;
		}
	}
	return 0;
}
