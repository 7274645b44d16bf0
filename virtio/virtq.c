/* The split-virtqueue walker. The guest may rewrite any ring field or descriptor at any
 * moment: each is read once into a local copy before it is checked and used. */
#include "virtio/virtq.h"

#include <errno.h>
#include <string.h>

#define load16(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define store16(p, v) __atomic_store_n((p), (uint16_t)(v), __ATOMIC_RELAXED)

void virtq_init(struct virtq *q, uint16_t num_max)
{
	memset(q, 0, sizeof(*q));
	q->num_max = num_max;
	q->num = num_max;
}

void virtq_reset(struct virtq *q)
{
	virtq_init(q, q->num_max);
}

/* Points at [gpa, gpa+len) if it is RAM and gpa has the alignment the spec requires. */
static void *ring_part(const struct guest_mem *mem, uint64_t gpa, uint64_t len, uint64_t align)
{
	if (gpa & (align - 1))
		return NULL;
	return guest_mem_ptr(mem, gpa, len);
}

int virtq_activate(struct virtq *q, const struct guest_mem *mem, uint64_t features)
{
	uint64_t n = q->num;
	q->active = false;
	q->broken = false;
	if (n == 0 || n > q->num_max || (n & (n - 1))) {
		q->fault = "queue size is not a power of 2 within QueueNumMax";
		return -EINVAL;
	}
	/* Event index adds used_event after the avail ring and avail_event after the used
	 * ring; the sizes below include them whether or not they are negotiated. */
	q->desc = ring_part(mem, q->desc_gpa, 16 * n, 16);
	q->avail = ring_part(mem, q->avail_gpa, 6 + 2 * n, 2);
	q->used = ring_part(mem, q->used_gpa, 6 + 8 * n, 4);
	if (!q->desc || !q->avail || !q->used) {
		q->fault = "a ring address is misaligned or outside guest memory";
		return -EINVAL;
	}
	q->mem = mem;
	q->event_idx = features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	q->indirect = features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	/* The driver starts both indexes at 0 (the device was reset or is new). */
	q->next_avail = 0;
	q->used_idx = 0;
	q->used_added = 0;
	q->signalled_used = 0;
	q->signalled_valid = false;
	q->fault = NULL;
	q->active = true;
	return 0;
}

static int broken(struct virtq *q, const char *why)
{
	q->broken = true;
	q->fault = why;
	return -EINVAL;
}

/* Walks the chain starting at head into c. A table visited more times than it has entries
 * holds a loop; a chain of more descriptors than the queue size, indirect ones included, is
 * one the spec forbids drivers to build. */
static int walk_chain(struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const void *table = q->desc;
	uint32_t table_len = q->num;
	uint32_t idx = head, seen = 0, total = 0;
	bool in_indirect = false;
	unsigned nr = 0;

	c->head = head;
	c->nr_rd = c->nr_wr = 0;
	c->rd_len = c->wr_len = 0;
	for (;;) {
		if (idx >= table_len)
			return broken(q, "descriptor index beyond the table");
		if (++seen > table_len)
			return broken(q, "descriptor loop");
		if (++total > q->num)
			return broken(q, "chain longer than the queue size");
		/* One read: the guest may change it. Byte arithmetic, because an indirect table
		 * need not be aligned. */
		struct virtq_desc d;
		memcpy(&d, (const uint8_t *)table + (uint64_t)idx * sizeof(d), sizeof(d));

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!q->indirect)
				return broken(
					q,
					"indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
			if (in_indirect)
				return broken(q, "indirect descriptor inside an indirect table");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return broken(q, "indirect descriptor with NEXT set");
			if (d.len == 0 || d.len % sizeof(struct virtq_desc) ||
			    d.len / sizeof(struct virtq_desc) > VIRTQ_MAX_SIZE)
				return broken(
					q,
					"indirect table length is not 16 to 4096 in steps of 16");
			table = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return broken(q, "indirect table outside guest memory");
			table_len = d.len / sizeof(struct virtq_desc);
			in_indirect = true;
			idx = 0;
			seen = 0;
			/* The pointer to the table is no buffer of the chain: a driver may fill a
			 * table with a queue's worth (Linux virtio-blk: seg_max data buffers, the
			 * header and the status, 256 with ember's seg_max). */
			total--;
			continue;
		}

		/* Zero-length buffers carry nothing; skipping them keeps iov[] short. */
		if (d.len) {
			void *hva = d.flags & VIRTQ_DESC_F_WRITE
					    ? guest_mem_ptr_w(q->mem, d.addr, d.len)
					    : guest_mem_ptr(q->mem, d.addr, d.len);
			if (!hva)
				return broken(q, "buffer address outside guest memory");
			if (nr == VIRTQ_MAX_SIZE)
				return broken(q, "chain has more buffers than the queue size");
			if (d.flags & VIRTQ_DESC_F_WRITE) {
				c->nr_wr++;
				c->wr_len += d.len;
			} else {
				if (c->nr_wr)
					return broken(
						q, "device-readable buffer after a writable one");
				c->nr_rd++;
				c->rd_len += d.len;
			}
			c->iov[nr].iov_base = hva;
			c->iov[nr].iov_len = d.len;
			nr++;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 1;
		idx = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	if (q->broken)
		return -EINVAL;
	if (!q->active)
		return 0;
	uint16_t avail_idx = load16(&q->avail->idx);
	uint16_t pending = (uint16_t)(avail_idx - q->next_avail);
	if (pending == 0)
		return 0;
	if (pending > q->num)
		return broken(q, "avail index ran ahead by more than the queue size");
	/* Orders the avail->idx read above before the ring entry and descriptor reads below:
	 * the driver wrote those before it published the index. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint16_t head = load16(&q->avail->ring[q->next_avail & (q->num - 1)]);
	if (head >= q->num)
		return broken(q, "avail ring entry names a descriptor beyond the table");
	int rc = walk_chain(q, head, c);
	if (rc > 0)
		q->next_avail++;
	return rc;
}

void virtq_unpop(struct virtq *q)
{
	virtq_unpop_n(q, 1);
}

void virtq_unpop_n(struct virtq *q, uint16_t n)
{
	/* Only the device's own cursor moves: nothing in the rings changed when they were
	 * popped, and the pending count stays within the queue size that virtq_pop checked. */
	q->next_avail = (uint16_t)(q->next_avail - n);
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	struct virtq_used_elem e = { .id = head, .len = len };
	virtq_push_batch(q, &e, 1);
}

/* With dirty page tracking: the writable buffers of the chain at head marked dirty again
 * as it goes back to the driver. Popping marked them already, but a chain popped before a
 * snapshot may be written after it. The walk is walk_chain's, bounded the same way, but
 * silent: the chain was checked when it was popped, and if the driver rewrote it since, it
 * has only its own snapshot to blame. */
static void mark_chain(const struct virtq *q, uint16_t head)
{
	const uint8_t *table = (const uint8_t *)q->desc;
	uint32_t table_len = q->num, idx = head, total = 0;
	bool in_indirect = false;
	while (idx < table_len && ++total <= q->num) {
		struct virtq_desc d;
		memcpy(&d, table + (uint64_t)idx * sizeof(d), sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (in_indirect || d.len % sizeof(d) ||
			    d.len / sizeof(d) > VIRTQ_MAX_SIZE ||
			    !(table = guest_mem_ptr(q->mem, d.addr, d.len)))
				return;
			table_len = d.len / sizeof(d);
			in_indirect = true;
			idx = 0;
			continue;
		}
		if (d.flags & VIRTQ_DESC_F_WRITE)
			guest_mem_mark_dirty(q->mem, d.addr, d.len);
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return;
		idx = d.next;
	}
}

/* The used ring, avail_event included: the device writes it. */
static void mark_used(const struct virtq *q)
{
	if (q->mem->dirty)
		guest_mem_mark_dirty(q->mem, q->used_gpa, 6 + 8 * (uint64_t)q->num);
}

void virtq_push_batch(struct virtq *q, const struct virtq_used_elem *elems, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		virtq_add_used(q, (uint16_t)elems[i].id, elems[i].len);
	virtq_publish_used(q);
}

void virtq_add_used(struct virtq *q, uint16_t head, uint32_t len)
{
	/* A device has at most a queue's worth of chains to give back between two looks at
	 * the ring; one that adds more (a driver that offered a head again while it was in
	 * flight) gets the older ones published before their slots are reused. */
	if (q->used_added >= q->num)
		virtq_publish_used(q);
	/* Snapshots: the chain's writable buffers and the used ring are the device's writes. */
	if (q->mem->dirty) {
		if (head < q->num)
			mark_chain(q, head);
		mark_used(q);
	}
	struct virtq_used_elem *e =
		&q->used->ring[(uint16_t)(q->used_idx + q->used_added) & (q->num - 1)];
	__atomic_store_n(&e->id, (uint32_t)head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	q->used_added++;
}

unsigned virtq_publish_used(struct virtq *q)
{
	unsigned nr = q->used_added;
	if (!nr)
		return 0;
	q->used_idx = (uint16_t)(q->used_idx + nr);
	q->used_added = 0;
	/* Orders the used elements (and the data and status bytes the device wrote into the
	 * chains' buffers before this call) before the used->idx store that publishes them. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	store16(&q->used->idx, q->used_idx);
	return nr;
}

/* Virtio's "has the index moved past event since old?", in 16-bit wrapping arithmetic. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool virtq_need_interrupt(struct virtq *q)
{
	if (!q->active)
		return false;
	virtq_publish_used(q);
	/* Orders the used->idx store (virtq_publish_used) before reading used_event or the flags:
	 * otherwise the driver could raise used_event after we read it but before it sees the
	 * new index, and wait forever for an interrupt. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(&q->avail->flags) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	uint16_t used_event = load16(&q->avail->ring[q->num]);
	uint16_t old = q->signalled_used;
	bool valid = q->signalled_valid;
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return !valid || need_event(used_event, q->used_idx, old);
}

/* Asks the driver for a notification once avail->idx passes at (event index), and says
 * whether it already has. */
static bool notify_past(struct virtq *q, uint16_t at)
{
	if (q->event_idx) {
		mark_used(q);
		store16((uint16_t *)&q->used->ring[q->num], at);
		/* Orders the avail_event store before re-reading avail->idx: a chain the driver
		 * added before it could see avail_event is found by the re-read below. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	return load16(&q->avail->idx) != at;
}

bool virtq_enable_notify(struct virtq *q)
{
	return q->active && !q->broken && notify_past(q, q->next_avail);
}

bool virtq_enable_notify_beyond(struct virtq *q)
{
	/* Without event index every new chain notifies (ember never sets
	 * VIRTQ_USED_F_NO_NOTIFY): nothing to ask for. */
	return q->active && !q->broken && q->event_idx && notify_past(q, load16(&q->avail->idx));
}

uint16_t virtq_avail_idx(const struct virtq *q)
{
	return q->active ? load16(&q->avail->idx) : 0;
}

uint64_t iov_drop_front(struct iovec *iov, unsigned *nr, uint64_t len)
{
	uint64_t done = 0;
	unsigned skip = 0;
	while (skip < *nr && done < len) {
		uint64_t take = len - done;
		if (take >= iov[skip].iov_len) {
			done += iov[skip].iov_len;
			skip++;
		} else {
			iov[skip].iov_base = (uint8_t *)iov[skip].iov_base + take;
			iov[skip].iov_len -= take;
			done += take;
		}
	}
	memmove(iov, iov + skip, (*nr - skip) * sizeof(*iov));
	*nr -= skip;
	return done;
}

uint64_t iov_drop_back(struct iovec *iov, unsigned *nr, uint64_t len)
{
	uint64_t done = 0;
	while (*nr && done < len) {
		struct iovec *last = &iov[*nr - 1];
		uint64_t take = len - done;
		if (take >= last->iov_len) {
			done += last->iov_len;
			(*nr)--;
		} else {
			last->iov_len -= take;
			done += take;
		}
	}
	return done;
}

uint64_t iov_to_buf(const struct iovec *iov, unsigned nr, void *buf, uint64_t len)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < nr && done < len; i++) {
		uint64_t n = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy((uint8_t *)buf + done, iov[i].iov_base, n);
		done += n;
	}
	return done;
}

uint64_t iov_from_buf(const struct iovec *iov, unsigned nr, const void *buf, uint64_t len)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < nr && done < len; i++) {
		uint64_t n = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy(iov[i].iov_base, (const uint8_t *)buf + done, n);
		done += n;
	}
	return done;
}
