/* virtio-vsock, the virtio side: packets from the guest's transmit queue are checked and
 * passed to the connection state machine (vsock_conn.c); the packets it owes the guest are
 * built straight into the guest's receive buffers, host data read into them without a
 * bounce buffer. */
#include "virtio/vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/snapbuf.h"
#include "virtio/vsock_internal.h"

struct metric vsock_metrics[VSOCK_METRIC_COUNT] = {
	[VSOCK_RX_PACKETS] = { .name = "rx_packets_count" },
	[VSOCK_RX_BYTES] = { .name = "rx_bytes_count" },
	[VSOCK_TX_PACKETS] = { .name = "tx_packets_count" },
	[VSOCK_TX_BYTES] = { .name = "tx_bytes_count" },
	[VSOCK_TX_DROPPED] = { .name = "tx_dropped" },
	[VSOCK_RST_SENT] = { .name = "rst_sent" },
	[VSOCK_CONNS_ADDED] = { .name = "conns_added" },
	[VSOCK_CONNS_REMOVED] = { .name = "conns_removed" },
	[VSOCK_CONNS_REFUSED] = { .name = "conns_refused" },
	[VSOCK_CREDIT_EXCEEDED] = { .name = "credit_exceeded" },
};
static struct metric_group vsock_group = { "vsock", vsock_metrics, VSOCK_METRIC_COUNT, NULL };

#define VIRTIO_ID_VSOCK	  19
#define VSOCK_RX_QUEUE	  0
#define VSOCK_TX_QUEUE	  1
#define VSOCK_EVENT_QUEUE 2 /* TRANSPORT_RESET (id 0) after the driver started over */
#define VSOCK_QUEUE_SIZE  256

struct vsock_dev {
	struct virtio_dev vdev; /* first: the transport hands us &vdev */
	char *uds_path;
	bool was_active, event_owed; /* event_owed: TRANSPORT_RESET */
	/* After a restore the TRANSPORT_RESET holds the receive queue (see process_event):
	 * reset_holds_rx until it goes, then rx_held (since rx_held_since_ns) until the driver
	 * posts an event buffer past reset_avail, or for VSOCK_RESET_ACK_MS. */
	bool reset_holds_rx, rx_held;
	uint16_t reset_avail;
	uint64_t rx_held_since_ns;
	struct vsock_conns conns;
	struct vsock_host host;

	struct virtq_chain chain;
	struct iovec payload_iov[VIRTQ_MAX_SIZE]; /* a receive chain's buffers past the header */
};

/* The next chain of queue qi into v->chain: 1, 0 when there is none, -1 when the queue is
 * broken. A queue's worth a round: a busy guest, or one that keeps refilling while a host
 * peer streams, must not keep the VMM thread, so past it the queue is kicked and the rest
 * waits for the next round. */
static int next_chain(struct vsock_dev *v, unsigned qi, unsigned *budget)
{
	if (*budget == 0) {
		virtio_queue_kick(&v->vdev, qi);
		return 0;
	}
	--*budget;
	return virtio_queue_pop(&v->vdev, qi, &v->chain);
}

/* Whether the receive queue still waits for the driver to take the TRANSPORT_RESET. */
static bool rx_held(struct vsock_dev *v)
{
	if (!v->rx_held)
		return false;
	uint64_t now = v->conns.ops->now_ns(v->conns.host);
	if (virtq_avail_idx(&v->vdev.queues[VSOCK_EVENT_QUEUE]) != v->reset_avail) {
		v->rx_held = false;
		log_debug("virtio-vsock %s: the driver took TRANSPORT_RESET after %llu us",
			  v->vdev.label, (unsigned long long)(now - v->rx_held_since_ns) / 1000);
	} else if (now - v->rx_held_since_ns >= VSOCK_RESET_ACK_MS * 1000000ULL) {
		v->rx_held = false;
		vsock_conns_warn(
			&v->conns,
			"the driver posted no event buffer in %d ms after TRANSPORT_RESET: "
			"receiving goes on",
			VSOCK_RESET_ACK_MS);
	}
	return v->rx_held;
}

/* Fills the guest's receive buffers with what the connections owe it; also the host side's
 * kick after host events. */
static void process_rx(void *opaque)
{
	struct vsock_dev *v = opaque;
	struct virtq *q = &v->vdev.queues[VSOCK_RX_QUEUE];
	struct virtq_chain *ch = &v->chain;
	unsigned budget = VSOCK_QUEUE_SIZE, pushed = 0;
	int rc = 0;
	if (!virtio_dev_running(&v->vdev) || !q->active || rx_held(v))
		return;
	while (vsock_conns_have_rx(&v->conns) &&
	       (rc = next_chain(v, VSOCK_RX_QUEUE, &budget)) > 0) {
		if (ch->nr_rd || ch->wr_len < VSOCK_HDR_LEN)
			return virtio_needs_reset(&v->vdev,
						  "receive buffer shorter than the packet header "
						  "or device-readable");
		unsigned n = ch->nr_wr;
		memcpy(v->payload_iov, ch->iov, n * sizeof(struct iovec));
		iov_drop_front(v->payload_iov, &n, VSOCK_HDR_LEN);
		struct vsock_hdr h;
		if (!vsock_conns_next_packet(&v->conns, &h, v->payload_iov, &n,
					     ch->wr_len - VSOCK_HDR_LEN)) {
			virtq_unpop(q);
			break;
		}
		uint32_t len = (uint32_t)iov_from_buf(ch->iov, ch->nr_wr, &h, VSOCK_HDR_LEN);
		virtq_push(q, ch->head, len + h.len);
		metric_inc(&vsock_metrics[VSOCK_RX_PACKETS]);
		pushed++;
	}
	if (pushed && rc >= 0)
		virtio_queue_interrupt(&v->vdev, VSOCK_RX_QUEUE);
}

static void drop(struct vsock_dev *v, const char *why, const struct virtq_chain *ch)
{
	metric_inc(&vsock_metrics[VSOCK_TX_DROPPED]);
	vsock_conns_warn(&v->conns, "dropped a packet from the guest (%llu bytes): %s",
			 (unsigned long long)ch->rd_len, why);
}

/* One packet from the guest, checked here and passed to its connection; its chain goes
 * back to the guest afterwards either way. */
static void handle_packet(struct vsock_dev *v, struct virtq_chain *ch)
{
	struct vsock_hdr h;
	if (ch->nr_wr)
		return drop(v, "device-writable buffer in a transmit chain", ch);
	if (ch->rd_len < VSOCK_HDR_LEN)
		return drop(v, "shorter than the header", ch);
	iov_to_buf(ch->iov, ch->nr_rd, &h, VSOCK_HDR_LEN);
	if (h.len > VSOCK_PKT_MAX || h.len > ch->rd_len - VSOCK_HDR_LEN)
		return drop(v, "payload length beyond the buffers or 64 KiB", ch);
	if (h.src_cid != v->conns.guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		metric_inc(&vsock_metrics[VSOCK_TX_DROPPED]);
		vsock_conns_warn(
			&v->conns,
			"dropped a packet from the guest: from CID %llu to CID %llu (op %u)",
			(unsigned long long)h.src_cid, (unsigned long long)h.dst_cid, h.op);
		return;
	}
	metric_inc(&vsock_metrics[VSOCK_TX_PACKETS]);
	unsigned n = ch->nr_rd;
	iov_drop_front(ch->iov, &n, VSOCK_HDR_LEN);
	iov_drop_back(ch->iov, &n, ch->rd_len - VSOCK_HDR_LEN - h.len);
	vsock_conns_from_guest(&v->conns, &h, ch->iov, n);
}

static void process_tx(struct vsock_dev *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_TX_QUEUE];
	unsigned budget = VSOCK_QUEUE_SIZE, pushed = 0;
	int rc;
	while ((rc = next_chain(v, VSOCK_TX_QUEUE, &budget)) > 0) {
		uint16_t head = v->chain.head;
		handle_packet(v, &v->chain);
		virtq_push(q, head, 0);
		pushed++;
		if (v->vdev.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
			return;
	}
	if (pushed && rc == 0)
		virtio_queue_interrupt(&v->vdev, VSOCK_TX_QUEUE);
}

static void process_event(struct vsock_dev *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_EVENT_QUEUE];
	if (!v->event_owed || !q->active)
		return;
	if (virtio_queue_pop(&v->vdev, VSOCK_EVENT_QUEUE, &v->chain) <= 0)
		return; /* broken, or the driver's next buffer notifies */
	if (v->chain.nr_rd || v->chain.wr_len < 4)
		return virtio_needs_reset(&v->vdev, "event buffer shorter than 4 bytes");
	uint32_t id = 0;
	iov_from_buf(v->chain.iov + v->chain.nr_rd, v->chain.nr_wr, &id, sizeof(id));
	/* A restored guest's Linux handles the event on a work item of its own, which may run
	 * after the one that takes the REQUEST of a host connection made right after the load:
	 * that connection then goes with the old ones (the host saw OK, then the guest drops
	 * it). So the receive queue waits until the driver posts an event buffer again, which
	 * Linux does once it has handled the event (with the event index, it is asked to
	 * notify that), or VSOCK_RESET_ACK_MS for a driver that does not. The index is read
	 * before the push: once the event is in the used ring, a buffer may come at any time. */
	uint16_t avail = virtq_avail_idx(q);
	virtq_push(q, v->chain.head, sizeof(id));
	v->event_owed = false;
	if (v->reset_holds_rx) {
		v->reset_holds_rx = false;
		v->rx_held = true;
		v->reset_avail = avail;
		v->rx_held_since_ns = v->conns.ops->now_ns(v->conns.host);
		virtq_enable_notify_beyond(q);
	}
	virtio_queue_interrupt(&v->vdev, VSOCK_EVENT_QUEUE);
}

static void vsock_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct vsock_dev *v = (struct vsock_dev *)dev;
	if (q == VSOCK_TX_QUEUE)
		process_tx(v);
	else if (q == VSOCK_EVENT_QUEUE)
		process_event(v);
	/* Transmitting may have owed the guest replies; new receive buffers may let them go. */
	if (virtio_dev_running(dev))
		process_rx(v);
	vsock_conns_reap(&v->conns);
}

/* vCPU thread. A driver that starts again after a reset learns, through the event queue,
 * that its old connections are gone (the reset closed their host sockets). */
static int vsock_activate(struct virtio_dev *dev)
{
	struct vsock_dev *v = (struct vsock_dev *)dev;
	v->event_owed |= v->was_active;
	v->was_active = true;
	return 0;
}

static void vsock_reset(struct virtio_dev *dev)
{
	struct vsock_dev *v = (struct vsock_dev *)dev;
	vsock_conns_reset(&v->conns);
	v->event_owed = v->reset_holds_rx = v->rx_held = false;
}

static void vsock_destroy(struct virtio_dev *dev)
{
	struct vsock_dev *v = (struct vsock_dev *)dev;
	vsock_conns_destroy(&v->conns);
	vsock_host_destroy(&v->host);
	free(v->uds_path);
	free(v);
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.activate = vsock_activate,
	.reset = vsock_reset,
	.queue_notify = vsock_queue_notify,
	.destroy = vsock_destroy,
};

int vsock_create(struct machine *machine, const struct vsock_config *cfg, struct virtio_dev **out,
		 char *err)
{
	static bool registered;
	struct vsock_dev *v = calloc(1, sizeof(*v));
	if (!v || !(v->uds_path = strdup(cfg->uds_path))) {
		free(v);
		return errf(err, -ENOMEM, "vsock: out of memory");
	}
	v->vdev.machine = machine;
	v->vdev.label = "vsock"; /* virtio_mmio_init sets the same; warnings may come first */
	v->vdev.config = (const uint8_t *)&v->conns.guest_cid; /* le64, all there is */
	v->vdev.config_len = sizeof(v->conns.guest_cid);
	vsock_conns_init(&v->conns, &vsock_unix_ops, &v->host, cfg->guest_cid, &v->vdev.label,
			 &v->vdev.warnings);
	v->host = (struct vsock_host){ .loop = &machine->loop,
				       .lock = &v->vdev.lock,
				       .uds_path = v->uds_path,
				       .bound_fd = cfg->bound ? dup(cfg->listen_fd) : -1,
				       .conns = &v->conns,
				       .kick = process_rx,
				       .kick_opaque = v };
	uint64_t features =
		(1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	int rc = vsock_host_init(&v->host, err);
	if (!rc && (rc = virtio_mmio_init(&v->vdev, machine, &vsock_ops, "vsock", 3,
					  VSOCK_QUEUE_SIZE, features)))
		snprintf(err, ERR_LEN, "vsock: cannot create the virtio-mmio device: %s",
			 rc == -ENOSPC ? "no free virtio slot (at most 19 devices)"
				       : strerror(-rc));
	if (rc) {
		vsock_destroy(&v->vdev);
		return rc;
	}
	if (!registered) {
		metrics_register(&vsock_group);
		registered = true;
	}
	*out = &v->vdev;
	log_debug("vsock: guest CID %llu, host socket %s", (unsigned long long)v->conns.guest_cid,
		  v->uds_path);
	return 0;
}

int vsock_save(struct virtio_dev *dev, struct snap_writer *w, char *err)
{
	struct vsock_dev *v = (struct vsock_dev *)dev;
	(void)err;
	pthread_mutex_lock(&dev->lock);
	snapw_u64(w, v->conns.guest_cid);
	snapw_u32(w, v->conns.next_local_port);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int vsock_restore(struct virtio_dev *dev, struct snap_reader *r, char *err)
{
	struct vsock_dev *v = (struct vsock_dev *)dev;
	uint64_t cid = snapr_u64(r);
	uint32_t port = snapr_u32(r);
	if (!snapr_done(r))
		return errf(err, -EINVAL, "vsock: snapshot state truncated or too long");
	if (cid != v->conns.guest_cid)
		return errf(err, -EINVAL,
			    "vsock: the saved device has guest CID %llu, its "
			    "configuration %llu",
			    (unsigned long long)cid, (unsigned long long)v->conns.guest_cid);
	if (port < VSOCK_LOCAL_PORT_LO || port == UINT32_MAX)
		return errf(err, -EINVAL, "vsock: saved host port counter %u out of range", port);
	pthread_mutex_lock(&dev->lock);
	v->conns.next_local_port = port;
	/* Firecracker queues the event when it saves (the source VM's guest loses its
	 * connections too, if it runs on); here the restored device owes it, and the source
	 * keeps its connections. A driver with no event buffer yet gets it with its next one. */
	bool running = virtio_dev_running(dev);
	v->was_active = running;
	v->event_owed = v->reset_holds_rx = running;
	pthread_mutex_unlock(&dev->lock);
	if (running)
		virtio_queue_kick(dev, VSOCK_EVENT_QUEUE);
	return 0;
}
