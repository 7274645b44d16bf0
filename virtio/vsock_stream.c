/* The data path of one vsock connection: credit both ways, the guest data the host has
 * not taken yet, the shutdowns and the packets it owes the guest. */
#include "virtio/vsock_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtq.h"

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Whether ember should read c's host socket for the guest (credit permitting). */
static bool reads_host(const struct vsock_conn *c)
{
	return c->state == CONN_ESTABLISHED && c->host_readable && !c->host_eof &&
	       !(c->guest_shutdown & VSOCK_SHUTDOWN_RCV);
}

void vsock_stream_want_rx(struct vsock_conn *c)
{
	if (c->state == CONN_DEAD || c->on_rx_list ||
	    !(c->pending ||
	      (reads_host(c) && (vsock_conn_peer_credit(c) > 0 || !c->credit_requested))))
		return;
	c->on_rx_list = true;
	c->rx_next = NULL;
	*c->t->rx_tail = c;
	c->t->rx_tail = &c->rx_next;
}

/* The guest data the host socket could not take before: 0 when all of it went out, 1 when
 * some is left, -1 when the host socket failed. */
static int flush_tx(struct vsock_conn *c)
{
	while (c->tx_len) {
		uint32_t first = VSOCK_BUF_ALLOC - c->tx_head;
		first = first < c->tx_len ? first : c->tx_len;
		struct iovec iov[2] = { { c->tx_buf + c->tx_head, first },
					{ c->tx_buf, c->tx_len - first } };
		ssize_t w = c->t->ops->send(c->t->host, c, iov, iov[1].iov_len ? 2 : 1);
		if (w < 0)
			return w == -EAGAIN ? 1 : -1;
		c->tx_head = (uint32_t)((c->tx_head + (uint32_t)w) % VSOCK_BUF_ALLOC);
		c->tx_len -= (uint32_t)w;
		c->fwd_cnt += (uint32_t)w;
	}
	return 0;
}

/* The guest should hear about freed buffer space before it runs out of credit. */
static void maybe_credit_update(struct vsock_conn *c, bool drained)
{
	uint32_t untold = c->fwd_cnt - c->fwd_cnt_told;
	if (untold >= VSOCK_BUF_ALLOC / 2 || (drained && untold))
		c->pending |= PENDING_CREDIT_UPDATE;
}

int vsock_stream_guest_shutdown(struct vsock_conn *c)
{
	if (c->tx_len)
		return 0;
	if (c->guest_shutdown == (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND))
		return VSOCK_STREAM_RESET;
	if ((c->guest_shutdown & VSOCK_SHUTDOWN_SEND) && c->fd >= 0)
		c->t->ops->shutdown_write(c->t->host, c);
	return 0;
}

int vsock_stream_host_event(struct vsock_conn *c, bool readable, bool hup)
{
	c->host_hup |= hup;
	c->host_readable |= readable;
	if (c->state != CONN_ESTABLISHED || !c->tx_len)
		return 0;
	int rc = flush_tx(c);
	if (rc < 0 || (c->host_hup && c->tx_len))
		return VSOCK_STREAM_RESET; /* the host is gone with guest data still to deliver */
	if (rc > 0)
		return 0;
	maybe_credit_update(c, true);
	return vsock_stream_guest_shutdown(c);
}

int vsock_stream_from_guest(struct vsock_conn *c, const struct iovec *iov, unsigned nr,
			    uint32_t len)
{
	struct vsock_conns *t = c->t;
	if (c->tx_len + len > VSOCK_BUF_ALLOC) {
		metric_inc(&vsock_metrics[VSOCK_CREDIT_EXCEEDED]);
		vsock_conns_warn(t, "connection %u:%u: the guest sent beyond its credit: reset",
				 c->guest_port, c->host_port);
		return VSOCK_STREAM_RESET;
	}
	uint32_t done = 0;
	if (c->tx_len == 0 && len) {
		ssize_t w = t->ops->send(t->host, c, iov, nr);
		if (w < 0 && w != -EAGAIN)
			return VSOCK_STREAM_RESET; /* the host closed its end */
		done = w > 0 ? (uint32_t)w : 0;
		c->fwd_cnt += done;
	}
	if (done < len) {
		if (!c->tx_buf && !(c->tx_buf = malloc(VSOCK_BUF_ALLOC)))
			return VSOCK_STREAM_RESET;
		/* The rest waits in the ring, up to its end and then from its start. */
		struct iovec rest[VIRTQ_MAX_SIZE];
		unsigned n = nr;
		memcpy(rest, iov, nr * sizeof(*iov));
		iov_drop_front(rest, &n, done);
		uint32_t tail = (c->tx_head + c->tx_len) % VSOCK_BUF_ALLOC;
		uint64_t k = iov_to_buf(rest, n, c->tx_buf + tail, VSOCK_BUF_ALLOC - tail);
		iov_drop_front(rest, &n, k);
		c->tx_len += (uint32_t)(k + iov_to_buf(rest, n, c->tx_buf, len - done - k));
	}
	maybe_credit_update(c, false);
	return 0;
}

void vsock_stream_hdr(const struct vsock_conns *t, struct vsock_hdr *h, uint32_t host_port,
		      uint32_t guest_port, enum vsock_op op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = t->guest_cid;
	h->src_port = host_port;
	h->dst_port = guest_port;
	h->type = VSOCK_TYPE_STREAM;
	h->op = (uint16_t)op;
	h->buf_alloc = VSOCK_BUF_ALLOC;
}

/* Reads host data for the guest into payload, no more than its credit: the op of the
 * packet that results (RW; CREDIT_REQUEST when the credit is spent; INVALID for none, with
 * a SHUTDOWN owed at end of stream), or VSOCK_STREAM_RESET. */
static int read_host(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *payload, unsigned *nr,
		     uint64_t room)
{
	uint64_t max = vsock_conn_peer_credit(c);
	if (max == 0) {
		if (c->credit_requested)
			return VSOCK_OP_INVALID;
		c->credit_requested = true;
		return VSOCK_OP_CREDIT_REQUEST;
	}
	if (max > room)
		max = room;
	if (max > VSOCK_PKT_MAX)
		max = VSOCK_PKT_MAX;
	iov_drop_back(payload, nr, room - max);
	ssize_t r = c->t->ops->recv(c->t->host, c, payload, *nr);
	if (r > 0) {
		h->len = (uint32_t)r;
		c->rx_cnt += (uint32_t)r;
		metric_add(&vsock_metrics[VSOCK_RX_BYTES], (unsigned long)r);
		return VSOCK_OP_RW;
	}
	if (r < 0 && r != -EAGAIN)
		return VSOCK_STREAM_RESET;
	c->host_readable = false;
	if (r < 0)
		return VSOCK_OP_INVALID;
	c->host_eof = true;
	c->pending |= PENDING_SHUTDOWN;
	c->shutdown_to_guest |= VSOCK_SHUTDOWN_SEND;
	if (c->host_hup) {
		/* Gone altogether: ember closes its end and gives the guest a while to answer
		 * the SHUTDOWN it is owed with RST. */
		c->shutdown_to_guest |= VSOCK_SHUTDOWN_RCV;
		c->t->ops->close(c->t->host, c);
		c->fd = -1;
		c->state = CONN_CLOSING;
		vsock_conn_set_deadline(c);
	}
	return VSOCK_OP_INVALID;
}

int vsock_stream_packet(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *payload,
			unsigned *nr, uint64_t room)
{
	/* Control packets first, in handshake order (the order of the PENDING_ bits). */
	static const uint16_t control[] = { VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE,
					    VSOCK_OP_CREDIT_UPDATE };
	unsigned owed = c->pending & (PENDING_SHUTDOWN - 1);
	vsock_stream_hdr(c->t, h, c->host_port, c->guest_port, VSOCK_OP_INVALID);
	if (owed) {
		c->pending &= ~(owed & -owed);
		h->op = control[__builtin_ctz(owed)];
	}
	if (!h->op && reads_host(c)) {
		int op = read_host(c, h, payload, nr, room);
		if (op == VSOCK_STREAM_RESET)
			return VSOCK_STREAM_RESET;
		h->op = (uint16_t)op;
	}
	if (!h->op && (c->pending & PENDING_SHUTDOWN)) {
		c->pending &= ~PENDING_SHUTDOWN;
		h->op = VSOCK_OP_SHUTDOWN;
		h->flags = c->shutdown_to_guest;
	}
	if (!h->op)
		return 0;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_told = c->fwd_cnt;
	return 1;
}
