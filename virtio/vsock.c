/* virtio-vsock, the virtio side: packets from the guest's transmit queue are checked and
 * dispatched to their connection (vsock_host.c); packets for the guest are built straight
 * into its receive buffers, data read from the host socket into them without a bounce
 * buffer, and only as much as the guest's credit allows. */
#include "virtio/vsock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
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

#define VSOCK_CONFIG_LEN 8 /* le64 guest_cid */
#define VSOCK_WARN_MAX	 8

static struct vsock_dev *to_vsock(struct virtio_dev *dev)
{
	return (struct vsock_dev *)dev;
}

void vsock_warn(struct vsock_dev *v, const char *fmt, ...)
{
	if (v->vdev.warnings >= VSOCK_WARN_MAX)
		return;
	v->vdev.warnings++;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("virtio-vsock %s: %s%s", v->vdev.label, msg,
		 v->vdev.warnings == VSOCK_WARN_MAX ? " (further warnings are not logged)" : "");
}

static void fill_hdr(struct vsock_dev *v, struct vsock_hdr *h, uint32_t host_port,
		     uint32_t guest_port, enum vsock_op op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = v->guest_cid;
	h->src_port = host_port;
	h->dst_port = guest_port;
	h->type = VSOCK_TYPE_STREAM;
	h->op = (uint16_t)op;
	h->buf_alloc = VSOCK_BUF_ALLOC;
}

/* The next packet connection c owes the guest, written into the receive chain: its length
 * (header included), or 0 when c has nothing to send after all. */
static uint32_t conn_packet(struct vsock_dev *v, struct vsock_conn *c, struct iovec *iov,
			    unsigned nr, uint64_t room)
{
	struct vsock_hdr h;
	fill_hdr(v, &h, c->host_port, c->guest_port, VSOCK_OP_INVALID);
	if (c->pending & PENDING_REQUEST) {
		c->pending &= ~PENDING_REQUEST;
		h.op = VSOCK_OP_REQUEST;
	} else if (c->pending & PENDING_RESPONSE) {
		c->pending &= ~PENDING_RESPONSE;
		h.op = VSOCK_OP_RESPONSE;
	} else if (c->pending & PENDING_CREDIT_UPDATE) {
		c->pending &= ~PENDING_CREDIT_UPDATE;
		h.op = VSOCK_OP_CREDIT_UPDATE;
	} else if (c->pending & PENDING_CREDIT_REQUEST) {
		c->pending &= ~PENDING_CREDIT_REQUEST;
		h.op = VSOCK_OP_CREDIT_REQUEST;
	} else if (vsock_conn_reads_host(c)) {
		uint64_t max = vsock_conn_peer_credit(c);
		if (max == 0) {
			if (!c->credit_requested) {
				c->credit_requested = true;
				h.op = VSOCK_OP_CREDIT_REQUEST;
			}
		} else {
			if (max > room)
				max = room;
			if (max > VSOCK_PKT_MAX)
				max = VSOCK_PKT_MAX;
			/* The payload goes after the header, at most max bytes of it. */
			unsigned n = nr;
			memcpy(v->payload_iov, iov, nr * sizeof(*iov));
			iov_drop_front(v->payload_iov, &n, VSOCK_HDR_LEN);
			iov_drop_back(v->payload_iov, &n, room - max);
			struct msghdr msg = { .msg_iov = v->payload_iov, .msg_iovlen = n };
			ssize_t r = recvmsg(c->fd, &msg, MSG_DONTWAIT);
			if (r > 0) {
				h.op = VSOCK_OP_RW;
				h.len = (uint32_t)r;
				c->rx_cnt += (uint32_t)r;
				metric_add(&vsock_metrics[VSOCK_RX_BYTES], (unsigned long)r);
			} else if (r == 0) {
				c->host_readable = false;
				c->host_eof = true;
				c->pending |= PENDING_SHUTDOWN;
				c->shutdown_to_guest |= VSOCK_SHUTDOWN_SEND;
				if (c->host_hup) {
					c->shutdown_to_guest |= VSOCK_SHUTDOWN_RCV;
					vsock_conn_host_gone(c);
				}
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->host_readable = false;
			} else if (errno != EINTR) {
				vsock_conn_kill(c, true);
				return 0;
			}
		}
	}
	if (h.op == VSOCK_OP_INVALID && (c->pending & PENDING_SHUTDOWN)) {
		c->pending &= ~PENDING_SHUTDOWN;
		h.op = VSOCK_OP_SHUTDOWN;
		h.flags = c->shutdown_to_guest;
	}
	if (h.op == VSOCK_OP_INVALID)
		return 0;
	h.fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_told = c->fwd_cnt;
	return (uint32_t)iov_from_buf(iov, nr, &h, VSOCK_HDR_LEN) + h.len;
}

/* Fills the guest's receive buffers with owed resets, then with what the connections on
 * the rx list have, round robin, until either runs out. */
void vsock_process_rx(struct vsock_dev *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_RX_QUEUE];
	bool pushed = false;
	if (!virtio_dev_running(&v->vdev) || !q->active)
		return;
	while (v->rst_len || v->rx_head) {
		struct virtq_chain *ch = &v->chain;
		int rc = virtio_queue_pop(&v->vdev, VSOCK_RX_QUEUE, ch);
		if (rc < 0)
			return;
		if (rc == 0)
			break;
		if (ch->nr_rd || ch->wr_len < VSOCK_HDR_LEN) {
			virtio_needs_reset(&v->vdev,
					   "receive buffer shorter than the packet header "
					   "or device-readable");
			return;
		}
		memcpy(v->iov, ch->iov, ch->nr_wr * sizeof(struct iovec));
		uint32_t len = 0;
		if (v->rst_len) {
			struct vsock_hdr h;
			fill_hdr(v, &h, v->rst[v->rst_head].host_port,
				 v->rst[v->rst_head].guest_port, VSOCK_OP_RST);
			v->rst_head = (v->rst_head + 1) % VSOCK_RST_QUEUE;
			v->rst_len--;
			len = (uint32_t)iov_from_buf(v->iov, ch->nr_wr, &h, VSOCK_HDR_LEN);
			metric_inc(&vsock_metrics[VSOCK_RST_SENT]);
		} else {
			struct vsock_conn *c = v->rx_head;
			v->rx_head = c->rx_next;
			if (!v->rx_head)
				v->rx_tail = NULL;
			c->on_rx_list = false;
			len = conn_packet(v, c, v->iov, ch->nr_wr, ch->wr_len - VSOCK_HDR_LEN);
			/* conn_packet may have freed c: only a live one is requeued. */
			if (len)
				vsock_conn_want_rx(c);
		}
		if (len == 0) {
			virtq_unpop(q);
			continue;
		}
		virtq_push(q, ch->head, len);
		metric_inc(&vsock_metrics[VSOCK_RX_PACKETS]);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(&v->vdev, VSOCK_RX_QUEUE);
}

static void drop(struct vsock_dev *v, const char *why, const struct virtq_chain *ch)
{
	metric_inc(&vsock_metrics[VSOCK_TX_DROPPED]);
	vsock_warn(v, "dropped a packet from the guest (%llu bytes): %s",
		   (unsigned long long)ch->rd_len, why);
}

/* One packet from the guest; its chain goes back to the guest afterwards either way. */
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
	if (h.src_cid != v->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		metric_inc(&vsock_metrics[VSOCK_TX_DROPPED]);
		vsock_warn(v, "dropped a packet from the guest: from CID %llu to CID %llu (op %u)",
			   (unsigned long long)h.src_cid, (unsigned long long)h.dst_cid, h.op);
		return;
	}
	metric_inc(&vsock_metrics[VSOCK_TX_PACKETS]);

	struct vsock_conn *c = vsock_conn_find(v, h.dst_port, h.src_port);
	if (h.type != VSOCK_TYPE_STREAM || h.op == VSOCK_OP_INVALID ||
	    h.op > VSOCK_OP_CREDIT_REQUEST) {
		if (h.op == VSOCK_OP_RST)
			return;
		vsock_warn(v, "reset: packet type %u op %u", h.type, h.op);
		if (c)
			vsock_conn_kill(c, false);
		return vsock_owe_rst(v, h.dst_port, h.src_port);
	}
	if (h.op == VSOCK_OP_REQUEST) {
		if (c) {
			/* Already connected on these ports: both ends start over. */
			vsock_conn_kill(c, false);
			return vsock_owe_rst(v, h.dst_port, h.src_port);
		}
		c = vsock_conn_connect(v, h.dst_port, h.src_port);
		if (!c)
			return vsock_owe_rst(v, h.dst_port, h.src_port);
	} else if (!c) {
		if (h.op != VSOCK_OP_RST)
			vsock_owe_rst(v, h.dst_port, h.src_port);
		return;
	}
	/* Every packet tells the guest's receive buffer and how much of it it consumed. */
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	if (vsock_conn_peer_credit(c))
		c->credit_requested = false;

	switch (h.op) {
	case VSOCK_OP_REQUEST:
		break; /* vsock_conn_connect owes the RESPONSE */
	case VSOCK_OP_RESPONSE:
		if (c->state != CONN_REQUESTED)
			return vsock_conn_kill(c, true);
		vsock_conn_established(c);
		break;
	case VSOCK_OP_RST:
		return vsock_conn_kill(c, false);
	case VSOCK_OP_SHUTDOWN:
		c->guest_shutdown |= h.flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
		vsock_conn_guest_shutdown(c);
		return; /* c may be gone */
	case VSOCK_OP_RW: {
		if (c->state != CONN_ESTABLISHED || (c->guest_shutdown & VSOCK_SHUTDOWN_SEND))
			return vsock_conn_kill(c, true);
		unsigned n = ch->nr_rd;
		iov_drop_front(ch->iov, &n, VSOCK_HDR_LEN);
		iov_drop_back(ch->iov, &n, ch->rd_len - VSOCK_HDR_LEN - h.len);
		metric_add(&vsock_metrics[VSOCK_TX_BYTES], h.len);
		if (!vsock_conn_write(c, ch->iov, n, h.len))
			return;
		break;
	}
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= PENDING_CREDIT_UPDATE;
		break;
	}
	vsock_conn_want_rx(c);
}

static void process_tx(struct vsock_dev *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_TX_QUEUE];
	bool pushed = false;
	for (unsigned budget = VSOCK_QUEUE_SIZE;;) {
		if (budget-- == 0) {
			/* A busy guest does not keep the VMM thread: come back after the rest. */
			virtio_queue_kick(&v->vdev, VSOCK_TX_QUEUE);
			break;
		}
		int rc = virtio_queue_pop(&v->vdev, VSOCK_TX_QUEUE, &v->chain);
		if (rc < 0)
			return;
		if (rc == 0)
			break;
		uint16_t head = v->chain.head;
		handle_packet(v, &v->chain);
		virtq_push(q, head, 0);
		pushed = true;
		if (v->vdev.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
			return;
	}
	if (pushed)
		virtio_queue_interrupt(&v->vdev, VSOCK_TX_QUEUE);
}

/* The event queue carries one thing: TRANSPORT_RESET after the driver started over. */
static void process_event(struct vsock_dev *v)
{
	struct virtq *q = &v->vdev.queues[VSOCK_EVENT_QUEUE];
	if (!v->event_owed || !q->active)
		return;
	if (virtio_queue_pop(&v->vdev, VSOCK_EVENT_QUEUE, &v->chain) <= 0)
		return; /* broken, or the driver's next buffer notifies */
	if (v->chain.nr_rd || v->chain.wr_len < 4) {
		virtio_needs_reset(&v->vdev, "event buffer shorter than 4 bytes");
		return;
	}
	uint32_t id = VSOCK_EVENT_TRANSPORT_RESET;
	iov_from_buf(v->chain.iov + v->chain.nr_rd, v->chain.nr_wr, &id, sizeof(id));
	virtq_push(q, v->chain.head, sizeof(id));
	v->event_owed = false;
	virtio_queue_interrupt(&v->vdev, VSOCK_EVENT_QUEUE);
}

static void vsock_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct vsock_dev *v = to_vsock(dev);
	if (q == VSOCK_TX_QUEUE)
		process_tx(v);
	else if (q == VSOCK_EVENT_QUEUE)
		process_event(v);
	/* Transmitting may have owed the guest replies; new receive buffers may let them go. */
	if (virtio_dev_running(dev))
		vsock_process_rx(v);
}

static void vsock_config_read(struct virtio_dev *dev, uint64_t offset, uint8_t *data, unsigned len)
{
	struct vsock_dev *v = to_vsock(dev);
	uint8_t cfg[VSOCK_CONFIG_LEN];
	memcpy(cfg, &v->guest_cid, sizeof(cfg));
	if (offset >= VSOCK_CONFIG_LEN)
		return;
	uint64_t k = VSOCK_CONFIG_LEN - offset < len ? VSOCK_CONFIG_LEN - offset : len;
	memcpy(data, cfg + offset, k);
}

/* vCPU thread. A driver that starts again after a reset learns, through the event queue,
 * that its old connections are gone (the reset closed their host sockets). */
static int vsock_activate(struct virtio_dev *dev)
{
	struct vsock_dev *v = to_vsock(dev);
	if (v->was_active)
		v->event_owed = true;
	v->was_active = true;
	return 0;
}

static void vsock_reset(struct virtio_dev *dev)
{
	vsock_host_reset(to_vsock(dev));
}

static void vsock_destroy(struct virtio_dev *dev)
{
	struct vsock_dev *v = to_vsock(dev);
	vsock_host_destroy(v);
	free(v->uds_path);
	free(v);
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.config_read = vsock_config_read,
	.activate = vsock_activate,
	.reset = vsock_reset,
	.queue_notify = vsock_queue_notify,
	.destroy = vsock_destroy,
};

int vsock_create(struct machine *machine, const struct vsock_config *cfg, struct virtio_dev **out,
		 char *err, size_t err_len)
{
	static bool registered;
	struct vsock_dev *v = calloc(1, sizeof(*v));
	if (!v || !(v->uds_path = strdup(cfg->uds_path))) {
		free(v);
		snprintf(err, err_len, "vsock: out of memory");
		return -ENOMEM;
	}
	v->vdev.machine = machine;
	v->guest_cid = cfg->guest_cid;
	v->next_local_port = VSOCK_LOCAL_PORT_LO;
	int rc = vsock_host_init(v, err, err_len);
	if (rc) {
		vsock_destroy(&v->vdev);
		return rc;
	}
	uint64_t features =
		(1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	rc = virtio_mmio_init(&v->vdev, machine, &vsock_ops, "vsock", 3, VSOCK_QUEUE_SIZE,
			      features);
	if (rc) {
		snprintf(err, err_len, "vsock: cannot create the virtio-mmio device: %s",
			 rc == -ENOSPC ? "no free virtio slot (at most 19 devices)"
				       : strerror(-rc));
		vsock_destroy(&v->vdev);
		return rc;
	}
	if (!registered) {
		metrics_register(&vsock_group);
		registered = true;
	}
	*out = &v->vdev;
	log_debug("vsock: guest CID %llu, host socket %s", (unsigned long long)v->guest_cid,
		  v->uds_path);
	return 0;
}
