/* The connection table: handshakes both ways, deadlines, resets owed to the guest and the
 * dispatch of the guest's packets (see vsock_conn.h). */
#include "virtio/vsock_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

void vsock_conns_init(struct vsock_conns *t, const struct vsock_host_ops *ops, void *host,
		      uint64_t guest_cid, const char *const *label, unsigned *warnings)
{
	*t = (struct vsock_conns){ .ops = ops, .host = host, .guest_cid = guest_cid };
	t->label = label;
	t->warnings = warnings;
	t->next_local_port = VSOCK_LOCAL_PORT_LO;
	t->rx_tail = &t->rx_head;
}

static struct vsock_conn **bucket(struct vsock_conns *t, uint32_t host_port, uint32_t guest_port)
{
	return &t->hash[(host_port * 2654435761U ^ guest_port) % VSOCK_HASH_BUCKETS];
}

struct vsock_conn *vsock_conn_find(struct vsock_conns *t, uint32_t host_port, uint32_t guest_port)
{
	struct vsock_conn *c = *bucket(t, host_port, guest_port);
	while (c && (c->host_port != host_port || c->guest_port != guest_port))
		c = c->hash_next;
	return c;
}

static void hash_add(struct vsock_conn *c)
{
	struct vsock_conn **b = bucket(c->t, c->host_port, c->guest_port);
	c->hash_next = *b;
	*b = c;
	c->hashed = true;
}

static struct vsock_conn *new_conn(struct vsock_conns *t)
{
	struct vsock_conn *c = t->nr_conns < VSOCK_CONN_MAX ? calloc(1, sizeof(*c)) : NULL;
	if (!c)
		return NULL;
	c->t = t;
	c->fd = -1;
	if ((c->next = t->conns))
		t->conns->pprev = &c->next;
	t->conns = c;
	c->pprev = &t->conns;
	t->nr_conns++;
	return c;
}

/* Takes c out of the hash, the rx list and the live list, onto the dead list. */
static void unlink_conn(struct vsock_conn *c)
{
	struct vsock_conns *t = c->t;
	struct vsock_conn **p;
	if (c->hashed) {
		for (p = bucket(t, c->host_port, c->guest_port); *p != c; p = &(*p)->hash_next)
			;
		*p = c->hash_next;
	}
	if (c->on_rx_list) {
		for (p = &t->rx_head; *p != c; p = &(*p)->rx_next)
			;
		if (!(*p = c->rx_next))
			t->rx_tail = p;
	}
	if ((*c->pprev = c->next))
		c->next->pprev = c->pprev;
	t->nr_conns--;
	if (c->added)
		metric_inc(&vsock_metrics[VSOCK_CONNS_REMOVED]);
	c->hashed = c->on_rx_list = false;
	c->state = CONN_DEAD;
	c->next = t->dead;
	t->dead = c;
}

static void owe_rst(struct vsock_conns *t, uint32_t host_port, uint32_t guest_port)
{
	if (t->rst_len == VSOCK_RST_QUEUE)
		return; /* the guest sends faster than it takes replies: it may wait for this one */
	unsigned i = (t->rst_head + t->rst_len++) % VSOCK_RST_QUEUE;
	t->rst[i].host_port = host_port;
	t->rst[i].guest_port = guest_port;
}

void vsock_conn_kill(struct vsock_conn *c, bool rst)
{
	if (c->state == CONN_DEAD)
		return;
	/* Before its CONNECT line a connection has no ports the guest knows of. */
	if (rst && c->state != CONN_CONNECT_LINE)
		owe_rst(c->t, c->host_port, c->guest_port);
	unlink_conn(c);
}

void vsock_conns_reap(struct vsock_conns *t)
{
	for (struct vsock_conn *c; (c = t->dead); free(c)) {
		t->dead = c->next;
		if (c->fd >= 0)
			t->ops->close(t->host, c);
		free(c->tx_buf);
	}
}

void vsock_conns_reset(struct vsock_conns *t)
{
	/* The guest's connections are gone with its driver. Their host ends close on the VMM
	 * thread: this is a vCPU thread, which may not touch the event loop. */
	while (t->conns)
		vsock_conn_kill(t->conns, false);
	t->rst_len = 0;
	t->ops->wake(t->host);
}

void vsock_conns_destroy(struct vsock_conns *t)
{
	vsock_conns_reset(t);
	vsock_conns_reap(t);
}

bool vsock_conns_expire(struct vsock_conns *t)
{
	uint64_t now = t->ops->now_ns(t->host);
	bool waiting = false;
	for (struct vsock_conn *c = t->conns, *next; c; c = next) {
		next = c->next;
		if (!c->deadline_ns || now < c->deadline_ns) {
			waiting |= c->deadline_ns != 0;
			continue;
		}
		if (c->state == CONN_REQUESTED)
			vsock_conns_warn(
				t, "host connection to guest port %u: no answer in %d ms%s",
				c->guest_port, VSOCK_CONNECT_MS,
				c->pending & PENDING_REQUEST
					? " (the guest took no receive buffer for the request)"
					: "");
		vsock_conn_kill(c, true);
	}
	return waiting;
}

void vsock_conn_host_event(struct vsock_conn *c, bool readable, bool hup)
{
	if (c->state == CONN_DEAD)
		return;
	/* The host failed or left with data to deliver, or gave up before the guest answered. */
	if (vsock_stream_host_event(c, readable, hup) == VSOCK_STREAM_RESET ||
	    (c->state == CONN_REQUESTED && c->host_hup))
		return vsock_conn_kill(c, true);
	vsock_stream_want_rx(c);
}

struct vsock_conn *vsock_conn_host_accepted(struct vsock_conns *t, int fd)
{
	struct vsock_conn *c = new_conn(t);
	if (!c) {
		vsock_conns_warn(t, "host connection refused: %u connections open", t->nr_conns);
		return NULL;
	}
	c->fd = fd;
	c->state = CONN_CONNECT_LINE;
	vsock_conn_set_deadline(c);
	return c;
}

void vsock_conn_host_request(struct vsock_conn *c, uint32_t guest_port)
{
	struct vsock_conns *t = c->t;
	do { /* a host port that no connection to this guest port uses */
		c->host_port = t->next_local_port++;
		if (t->next_local_port == UINT32_MAX)
			t->next_local_port = VSOCK_LOCAL_PORT_LO;
	} while (vsock_conn_find(t, c->host_port, guest_port));
	c->guest_port = guest_port;
	c->state = CONN_REQUESTED;
	c->pending = PENDING_REQUEST;
	hash_add(c);
	vsock_conn_set_deadline(c);
	vsock_stream_want_rx(c);
}

/* The guest's RESPONSE to a host-initiated REQUEST: the host client hears "OK <port>". */
static int established(struct vsock_conn *c)
{
	char ok[32];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
	struct iovec iov = { ok, (size_t)n };
	/* A fresh socket's buffer takes these few bytes whole: if not, the host end is gone. */
	if (c->t->ops->send(c->t->host, c, &iov, 1) != n)
		return VSOCK_STREAM_RESET;
	c->state = CONN_ESTABLISHED;
	c->pending &= ~PENDING_REQUEST;
	c->deadline_ns = 0;
	c->added = true;
	metric_inc(&vsock_metrics[VSOCK_CONNS_ADDED]);
	return 0;
}

/* A guest REQUEST: connects to the host side's listener for the port. NULL when nobody
 * listens there or too many connections are open. */
static struct vsock_conn *guest_connect(struct vsock_conns *t, uint32_t host_port,
					uint32_t guest_port)
{
	struct vsock_conn *c = new_conn(t);
	if (!c) {
		if (t->nr_conns >= VSOCK_CONN_MAX)
			vsock_conns_warn(t, "connect to host port %u refused: %u connections open",
					 host_port, t->nr_conns);
		return NULL;
	}
	c->host_port = host_port;
	c->guest_port = guest_port;
	c->state = CONN_ESTABLISHED;
	int rc = t->ops->connect(t->host, c);
	if (rc) {
		if (rc == -ECONNREFUSED)
			metric_inc(&vsock_metrics[VSOCK_CONNS_REFUSED]);
		vsock_conn_kill(c, false); /* never hashed: the guest's packets cannot find it */
		return NULL;
	}
	c->pending = PENDING_RESPONSE;
	c->added = true;
	hash_add(c);
	metric_inc(&vsock_metrics[VSOCK_CONNS_ADDED]);
	return c;
}

void vsock_conns_from_guest(struct vsock_conns *t, const struct vsock_hdr *h,
			    const struct iovec *payload, unsigned nr)
{
	struct vsock_conn *c = vsock_conn_find(t, h->dst_port, h->src_port);
	bool bad = h->type != VSOCK_TYPE_STREAM || h->op == VSOCK_OP_INVALID ||
		   h->op > VSOCK_OP_CREDIT_REQUEST;
	if (h->op == VSOCK_OP_RST && (bad || !c))
		return;
	if (bad || (c && h->op == VSOCK_OP_REQUEST)) {
		if (bad)
			vsock_conns_warn(t, "reset: packet type %u op %u", h->type, h->op);
		if (c) /* a REQUEST on connected ports: both ends start over */
			vsock_conn_kill(c, false);
		c = NULL;
	} else if (!c && h->op == VSOCK_OP_REQUEST) {
		c = guest_connect(t, h->dst_port, h->src_port);
	}
	if (!c)
		return owe_rst(t, h->dst_port, h->src_port);
	/* Every packet tells the guest's receive buffer and how much of it it consumed. */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (vsock_conn_peer_credit(c))
		c->credit_requested = false;

	int rc = 0;
	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		rc = c->state == CONN_REQUESTED ? established(c) : VSOCK_STREAM_RESET;
		break;
	case VSOCK_OP_RST:
		vsock_conn_kill(c, false);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->guest_shutdown |= h->flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
		rc = vsock_stream_guest_shutdown(c);
		break;
	case VSOCK_OP_RW:
		rc = VSOCK_STREAM_RESET;
		if (c->state == CONN_ESTABLISHED && !(c->guest_shutdown & VSOCK_SHUTDOWN_SEND)) {
			metric_add(&vsock_metrics[VSOCK_TX_BYTES], h->len);
			rc = vsock_stream_from_guest(c, payload, nr, h->len);
		}
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= PENDING_CREDIT_UPDATE;
		break;
	default: /* REQUEST: guest_connect owes the RESPONSE; CREDIT_UPDATE: noted above */
		break;
	}
	if (rc == VSOCK_STREAM_RESET)
		vsock_conn_kill(c, true);
	vsock_stream_want_rx(c); /* a no-op on a connection that just ended */
}

bool vsock_conns_next_packet(struct vsock_conns *t, struct vsock_hdr *h, struct iovec *payload,
			     unsigned *nr, uint64_t room)
{
	for (struct vsock_conn *c;;) {
		/* Resets first: they may free the guest's side of a port for a new connection. */
		if (t->rst_len) {
			vsock_stream_hdr(t, h, t->rst[t->rst_head].host_port,
					 t->rst[t->rst_head].guest_port, VSOCK_OP_RST);
			t->rst_head = (t->rst_head + 1) % VSOCK_RST_QUEUE;
			t->rst_len--;
			metric_inc(&vsock_metrics[VSOCK_RST_SENT]);
			return true;
		}
		if (!(c = t->rx_head))
			return false;
		if (!(t->rx_head = c->rx_next))
			t->rx_tail = &t->rx_head;
		c->on_rx_list = false;
		int rc = vsock_stream_packet(c, h, payload, nr, room);
		if (rc == VSOCK_STREAM_RESET) {
			vsock_conn_kill(c, true);
		} else if (rc) {
			vsock_stream_want_rx(c); /* round robin: back of the list if it has more */
			return true;
		}
	}
}
