/* Split virtqueues (virtio 1.x, "Split Virtqueues"): the ring layout and a walker shared by
 * every device. Every field the guest writes is hostile: ring addresses are checked once at
 * activation, each descriptor buffer through guest_mem_ptr, chains are bounded, and an avail
 * index that runs ahead by more than the queue size breaks the queue. A broken queue stays
 * broken until the driver resets the device. x86 only: the rings are little-endian, as is
 * the host. */
#ifndef EMBER_VIRTQ_H
#define EMBER_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/guest_mem.h"

#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX	    29
#define VIRTIO_F_VERSION_1	    32

/* The largest queue any ember device offers (QueueNumMax); also the longest chain the walker
 * accepts, since a driver must not build a chain longer than the queue size. */
#define VIRTQ_MAX_SIZE 256

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then used_event, with VIRTIO_RING_F_EVENT_IDX */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* then avail_event, with VIRTIO_RING_F_EVENT_IDX */
};

/* One descriptor chain as host buffers: iov[0, nr_rd) the device reads, then
 * iov[nr_rd, nr_rd + nr_wr) the device writes (the spec puts readable ones first). */
struct virtq_chain {
	uint16_t head;
	unsigned nr_rd, nr_wr;
	uint64_t rd_len, wr_len;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

struct virtq {
	/* Written by the driver through the transport before DRIVER_OK. */
	uint16_t num_max;
	uint16_t num;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;

	/* Valid while active: resolved and checked once by virtq_activate. */
	const struct guest_mem *mem;
	bool active;
	bool broken;
	const char *fault; /* why the queue broke, for the log */
	bool event_idx, indirect;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t next_avail;	 /* next avail ring slot the device reads */
	uint16_t used_idx;	 /* the device's copy of used->idx: what the driver can see */
	uint16_t used_added;	 /* elements written past used_idx, not yet published */
	uint16_t signalled_used; /* used_idx when the last interrupt decision was made */
	bool signalled_valid;
};

void virtq_init(struct virtq *q, uint16_t num_max);
/* Forgets everything the driver set (device reset). */
void virtq_reset(struct virtq *q);
/* Checks the ring addresses against guest memory and makes the queue usable with the
 * negotiated features. -EINVAL (q->fault says why) if they are not acceptable. */
int virtq_activate(struct virtq *q, const struct guest_mem *mem, uint64_t features);
/* Takes the next available chain: 1 and *c filled, 0 when none is pending, -EINVAL when
 * the guest broke the queue (q->fault says how; later calls return -EINVAL too). */
int virtq_pop(struct virtq *q, struct virtq_chain *c);
/* Gives back the chain just popped (the device cannot take it yet: rate limiting). */
void virtq_unpop(struct virtq *q);
/* Gives back the last n chains popped, none of them pushed since (a receive frame that
 * needs more buffers than the ring holds now): the next pops return them again, checked
 * afresh, since the driver may have rewritten them meanwhile. */
void virtq_unpop_n(struct virtq *q, uint16_t n);
/* Returns chain head to the driver with len bytes written into its buffers. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Returns nr chains (at most the queue size) at once: every element is in the used ring
 * before used->idx moves, once, so the driver never sees some of them without the rest
 * (virtio-net's merged receive buffers: num_buffers in the first counts them all). */
void virtq_push_batch(struct virtq *q, const struct virtq_used_elem *elems, unsigned nr);
/* Batched completion, for a device that finishes many chains in one run: virtq_add_used
 * writes the element into the used ring but leaves used->idx alone, so the driver does not
 * see it yet; virtq_publish_used then moves used->idx once over everything added (one
 * release fence, one store) and returns how many it published. A queue's worth of
 * unpublished elements publishes by itself, so none is ever overwritten unseen.
 * virtq_push, virtq_push_batch and virtq_need_interrupt publish what was added first. */
void virtq_add_used(struct virtq *q, uint16_t head, uint32_t len);
unsigned virtq_publish_used(struct virtq *q);
/* After one or more pushes: publishes what was added, then says whether the driver wants
 * an interrupt now (event index or NO_INTERRUPT flag). With the event index, a batch of
 * completions published together gets one interrupt at most, and only if used_event lies
 * within what the batch published since the last interrupt decision. */
bool virtq_need_interrupt(struct virtq *q);
/* Asks the driver for a notification on the next new chain (event index) and says whether
 * chains arrived meanwhile, in which case the device must keep going. */
bool virtq_enable_notify(struct virtq *q);
/* For a device that needs more chains than the ring holds now (chains it popped and gave
 * back, or left unread): asks for a notification only when the driver adds a chain beyond
 * its current avail index, not on the next chain after next_avail, which is already
 * there. True if chains arrived meanwhile, in which case the device must look again. */
bool virtq_enable_notify_beyond(struct virtq *q);
/* The driver's avail index as it is now (0 while the queue is not active). */
uint16_t virtq_avail_idx(const struct virtq *q);

/* iovec helpers for devices: drop len bytes from the front of iov (in place); copy from
 * or into the front of an iovec array. They return the bytes dropped or copied. */
uint64_t iov_drop_front(struct iovec *iov, unsigned *nr, uint64_t len);
uint64_t iov_drop_back(struct iovec *iov, unsigned *nr, uint64_t len);
uint64_t iov_to_buf(const struct iovec *iov, unsigned nr, void *buf, uint64_t len);
uint64_t iov_from_buf(const struct iovec *iov, unsigned nr, const void *buf, uint64_t len);

#endif
