/* virtio-vsock connections: state, credit, shutdown and resets, with no socket in sight
 * (see vsock_conn.h). */
#include "vsock_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "virtq.h"

#define WARN_MAX      8
#define SHUTDOWN_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)
#define DEADLINE_NS   (VSOCK_CONNECT_MS * 1000000ULL)

void vsock_conns_warn(struct vsock_conns *t, const char *fmt, ...)
{
	if (*t->warnings >= WARN_MAX)
		return;
	(*t->warnings)++;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("virtio-vsock %s: %s%s", *t->label, msg,
		 *t->warnings == WARN_MAX ? " (further warnings are not logged)" : "");
}

void vsock_conns_init(struct vsock_conns *t, const struct vsock_host_ops *ops, void *host,
		      uint64_t guest_cid, const char *const *label, unsigned *warnings)
{
	memset(t, 0, sizeof(*t));
	t->ops = ops;
	t->host = host;
	t->guest_cid = guest_cid;
	t->label = label;
	t->warnings = warnings;
	t->next_local_port = VSOCK_LOCAL_PORT_LO;
}

static unsigned bucket(uint32_t host_port, uint32_t guest_port)
{
	return (host_port * 2654435761U ^ guest_port) % VSOCK_HASH_BUCKETS;
}

struct vsock_conn *vsock_conn_find(struct vsock_conns *t, uint32_t host_port, uint32_t guest_port)
{
	for (struct vsock_conn *c = t->hash[bucket(host_port, guest_port)]; c; c = c->hash_next)
		if (c->host_port == host_port && c->guest_port == guest_port)
			return c;
	return NULL;
}

static void hash_add(struct vsock_conn *c)
{
	unsigned b = bucket(c->host_port, c->guest_port);
	c->hash_next = c->t->hash[b];
	c->t->hash[b] = c;
	c->hashed = true;
}

static struct vsock_conn *new_conn(struct vsock_conns *t)
{
	if (t->nr_conns >= VSOCK_CONN_MAX)
		return NULL;
	struct vsock_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->t = t;
	c->fd = -1;
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	t->nr_conns++;
	return c;
}

/* Takes c out of the hash, the rx list and the live list, onto the dead list. */
static void unlink_conn(struct vsock_conn *c)
{
	struct vsock_conns *t = c->t;
	if (c->hashed) {
		for (struct vsock_conn **p = &t->hash[bucket(c->host_port, c->guest_port)]; *p;
		     p = &(*p)->hash_next)
			if (*p == c) {
				*p = c->hash_next;
				break;
			}
		c->hashed = false;
	}
	if (c->on_rx_list) {
		struct vsock_conn *prev = NULL;
		for (struct vsock_conn *i = t->rx_head; i; prev = i, i = i->rx_next)
			if (i == c) {
				if (prev)
					prev->rx_next = c->rx_next;
				else
					t->rx_head = c->rx_next;
				if (t->rx_tail == c)
					t->rx_tail = prev;
				break;
			}
		c->on_rx_list = false;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	t->nr_conns--;
	if (c->added)
		metric_inc(&vsock_metrics[VSOCK_CONNS_REMOVED]);
	c->state = CONN_DEAD;
	c->dead_next = t->dead;
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
	while (t->dead) {
		struct vsock_conn *c = t->dead;
		t->dead = c->dead_next;
		if (c->fd >= 0)
			t->ops->close(t->host, c);
		free(c->tx_buf);
		free(c);
	}
}

void vsock_conns_destroy(struct vsock_conns *t)
{
	while (t->conns)
		vsock_conn_kill(t->conns, false);
	vsock_conns_reap(t);
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

static bool has_rx(const struct vsock_conn *c)
{
	if (c->pending)
		return true;
	return reads_host(c) && (vsock_conn_peer_credit(c) > 0 || !c->credit_requested);
}

/* Queues c for vsock_conns_next_packet if it has something for the guest. */
static void want_rx(struct vsock_conn *c)
{
	struct vsock_conns *t = c->t;
	if (c->state == CONN_DEAD || c->on_rx_list || !has_rx(c))
		return;
	c->on_rx_list = true;
	c->rx_next = NULL;
	if (t->rx_tail)
		t->rx_tail->rx_next = c;
	else
		t->rx_head = c;
	t->rx_tail = c;
}

static void set_deadline(struct vsock_conn *c)
{
	c->deadline_ns = c->t->ops->now_ns(c->t->host) + DEADLINE_NS;
	c->t->ops->arm_timer(c->t->host);
}

bool vsock_conns_expire(struct vsock_conns *t)
{
	uint64_t now = t->ops->now_ns(t->host);
	bool waiting = false;
	for (struct vsock_conn *c = t->conns, *next; c; c = next) {
		next = c->next;
		if (!c->deadline_ns)
			continue;
		if (now < c->deadline_ns) {
			waiting = true;
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

/* The host closed its socket altogether: ember closes its end and gives the guest a while
 * to answer the SHUTDOWN it is owed with RST. */
static void host_gone(struct vsock_conn *c)
{
	c->t->ops->close(c->t->host, c);
	c->fd = -1;
	c->state = CONN_CLOSING;
	c->host_readable = false;
	set_deadline(c);
}

/* Sends what the guest sent and the host socket could not take before. 0 when all of it
 * went out, 1 when some is left, -1 when the host socket failed. */
static int flush_tx(struct vsock_conn *c)
{
	while (c->tx_len) {
		struct iovec iov[2];
		uint32_t first = VSOCK_BUF_ALLOC - c->tx_head;
		if (first > c->tx_len)
			first = c->tx_len;
		iov[0] = (struct iovec){ c->tx_buf + c->tx_head, first };
		iov[1] = (struct iovec){ c->tx_buf, c->tx_len - first };
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

/* The guest shut its sending side (and maybe its receiving side): once everything it sent
 * reached the host socket, the shutdown is passed on. */
static void pass_guest_shutdown(struct vsock_conn *c)
{
	if (c->tx_len)
		return;
	if (c->guest_shutdown == SHUTDOWN_BOTH) {
		/* A full shutdown is answered with RST, which ends the connection. */
		vsock_conn_kill(c, true);
		return;
	}
	if ((c->guest_shutdown & VSOCK_SHUTDOWN_SEND) && c->fd >= 0)
		c->t->ops->shutdown_write(c->t->host, c);
}

void vsock_conn_host_event(struct vsock_conn *c, bool readable, bool hup)
{
	if (c->state == CONN_DEAD)
		return;
	if (hup)
		c->host_hup = true;
	if (readable)
		c->host_readable = true;
	if (c->state == CONN_ESTABLISHED && c->tx_len) {
		int rc = flush_tx(c);
		if (rc < 0 || (c->host_hup && c->tx_len)) {
			/* The host is gone with guest data still to deliver. */
			vsock_conn_kill(c, true);
		} else if (rc == 0) {
			maybe_credit_update(c, true);
			pass_guest_shutdown(c);
		}
	} else if (c->state == CONN_REQUESTED && c->host_hup) {
		vsock_conn_kill(c, true); /* the host gave up before the guest answered */
	}
	want_rx(c);
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
	set_deadline(c);
	return c;
}

void vsock_conn_host_request(struct vsock_conn *c, uint32_t guest_port)
{
	struct vsock_conns *t = c->t;
	/* A host port no connection to this guest port uses. */
	uint32_t host_port;
	do {
		host_port = t->next_local_port++;
		if (t->next_local_port == UINT32_MAX)
			t->next_local_port = VSOCK_LOCAL_PORT_LO;
	} while (vsock_conn_find(t, host_port, guest_port));
	c->host_port = host_port;
	c->guest_port = guest_port;
	c->state = CONN_REQUESTED;
	c->pending = PENDING_REQUEST;
	hash_add(c);
	set_deadline(c);
	want_rx(c);
}

/* The guest's RESPONSE to a host-initiated REQUEST: the host client hears "OK <port>". */
static void established(struct vsock_conn *c)
{
	char ok[32];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
	struct iovec iov = { ok, (size_t)n };
	/* A fresh socket's buffer takes these few bytes whole; anything else means the host
	 * end is gone. */
	if (c->t->ops->send(c->t->host, c, &iov, 1) != n) {
		vsock_conn_kill(c, true);
		return;
	}
	c->state = CONN_ESTABLISHED;
	c->pending &= ~PENDING_REQUEST;
	c->deadline_ns = 0;
	c->added = true;
	metric_inc(&vsock_metrics[VSOCK_CONNS_ADDED]);
}

/* A guest REQUEST to the host's port: connects to the host side's listener for it. NULL
 * when nobody listens there or too many connections are open. */
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
		/* Never hashed nor counted: the guest's packets cannot find it. */
		vsock_conn_kill(c, false);
		return NULL;
	}
	c->pending = PENDING_RESPONSE;
	c->added = true;
	hash_add(c);
	metric_inc(&vsock_metrics[VSOCK_CONNS_ADDED]);
	return c;
}

/* Guest data for the host socket: what the socket does not take waits in the ring. */
static void guest_data(struct vsock_conn *c, const struct iovec *iov, unsigned nr, uint32_t len)
{
	struct vsock_conns *t = c->t;
	if (c->tx_len + len > VSOCK_BUF_ALLOC) {
		metric_inc(&vsock_metrics[VSOCK_CREDIT_EXCEEDED]);
		vsock_conns_warn(t, "connection %u:%u: the guest sent beyond its credit: reset",
				 c->guest_port, c->host_port);
		vsock_conn_kill(c, true);
		return;
	}
	uint32_t done = 0;
	if (c->tx_len == 0 && len) {
		ssize_t w = t->ops->send(t->host, c, iov, nr);
		if (w < 0 && w != -EAGAIN) {
			vsock_conn_kill(c, true); /* the host closed its end */
			return;
		}
		done = w > 0 ? (uint32_t)w : 0;
		c->fwd_cnt += done;
	}
	if (done < len) {
		if (!c->tx_buf && !(c->tx_buf = malloc(VSOCK_BUF_ALLOC))) {
			vsock_conn_kill(c, true);
			return;
		}
		struct iovec rest[VIRTQ_MAX_SIZE];
		unsigned n = nr;
		memcpy(rest, iov, nr * sizeof(*iov));
		iov_drop_front(rest, &n, done);
		for (unsigned i = 0; i < n; i++) {
			const uint8_t *p = rest[i].iov_base;
			size_t left = rest[i].iov_len;
			while (left) {
				uint32_t tail = (c->tx_head + c->tx_len) % VSOCK_BUF_ALLOC;
				size_t k = VSOCK_BUF_ALLOC - tail < left ? VSOCK_BUF_ALLOC - tail
									 : left;
				memcpy(c->tx_buf + tail, p, k);
				c->tx_len += (uint32_t)k;
				p += k;
				left -= k;
			}
		}
	}
	maybe_credit_update(c, false);
}

void vsock_conns_from_guest(struct vsock_conns *t, const struct vsock_hdr *h,
			    const struct iovec *payload, unsigned nr)
{
	struct vsock_conn *c = vsock_conn_find(t, h->dst_port, h->src_port);
	if (h->type != VSOCK_TYPE_STREAM || h->op == VSOCK_OP_INVALID ||
	    h->op > VSOCK_OP_CREDIT_REQUEST) {
		if (h->op == VSOCK_OP_RST)
			return;
		vsock_conns_warn(t, "reset: packet type %u op %u", h->type, h->op);
		if (c)
			vsock_conn_kill(c, false);
		return owe_rst(t, h->dst_port, h->src_port);
	}
	if (h->op == VSOCK_OP_REQUEST) {
		if (c) {
			/* Already connected on these ports: both ends start over. */
			vsock_conn_kill(c, false);
			return owe_rst(t, h->dst_port, h->src_port);
		}
		c = guest_connect(t, h->dst_port, h->src_port);
		if (!c)
			return owe_rst(t, h->dst_port, h->src_port);
	} else if (!c) {
		if (h->op != VSOCK_OP_RST)
			owe_rst(t, h->dst_port, h->src_port);
		return;
	}
	/* Every packet tells the guest's receive buffer and how much of it it consumed. */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (vsock_conn_peer_credit(c))
		c->credit_requested = false;

	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		if (c->state != CONN_REQUESTED)
			vsock_conn_kill(c, true);
		else
			established(c);
		break;
	case VSOCK_OP_RST:
		vsock_conn_kill(c, false);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->guest_shutdown |= h->flags & SHUTDOWN_BOTH;
		pass_guest_shutdown(c);
		break;
	case VSOCK_OP_RW:
		if (c->state != CONN_ESTABLISHED || (c->guest_shutdown & VSOCK_SHUTDOWN_SEND)) {
			vsock_conn_kill(c, true);
			break;
		}
		metric_add(&vsock_metrics[VSOCK_TX_BYTES], h->len);
		guest_data(c, payload, nr, h->len);
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= PENDING_CREDIT_UPDATE;
		break;
	default: /* REQUEST: guest_connect owes the RESPONSE; CREDIT_UPDATE: noted above */
		break;
	}
	want_rx(c); /* a no-op on a connection that just ended */
}

bool vsock_conns_have_rx(const struct vsock_conns *t)
{
	return t->rst_len || t->rx_head;
}

static void fill_hdr(const struct vsock_conns *t, struct vsock_hdr *h, uint32_t host_port,
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
 * packet that results (RW, SHUTDOWN owed at end of stream, INVALID for nothing). */
static enum vsock_op read_host(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *payload,
			       unsigned *nr, uint64_t room)
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
	if (r == 0) {
		c->host_readable = false;
		c->host_eof = true;
		c->pending |= PENDING_SHUTDOWN;
		c->shutdown_to_guest |= VSOCK_SHUTDOWN_SEND;
		if (c->host_hup) {
			c->shutdown_to_guest |= VSOCK_SHUTDOWN_RCV;
			host_gone(c);
		}
	} else if (r == -EAGAIN) {
		c->host_readable = false;
	} else {
		vsock_conn_kill(c, true);
	}
	return VSOCK_OP_INVALID;
}

/* The next packet c owes the guest into *h (and payload); false when it has none after
 * all, or ended meanwhile. */
static bool conn_packet(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *payload,
			unsigned *nr, uint64_t room)
{
	fill_hdr(c->t, h, c->host_port, c->guest_port, VSOCK_OP_INVALID);
	static const struct {
		unsigned bit;
		enum vsock_op op;
	} order[] = {
		{ PENDING_REQUEST, VSOCK_OP_REQUEST },
		{ PENDING_RESPONSE, VSOCK_OP_RESPONSE },
		{ PENDING_CREDIT_UPDATE, VSOCK_OP_CREDIT_UPDATE },
		{ PENDING_CREDIT_REQUEST, VSOCK_OP_CREDIT_REQUEST },
	};
	for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]) && !h->op; i++)
		if (c->pending & order[i].bit) {
			c->pending &= ~order[i].bit;
			h->op = (uint16_t)order[i].op;
		}
	if (!h->op && reads_host(c))
		h->op = (uint16_t)read_host(c, h, payload, nr, room);
	if (c->state == CONN_DEAD)
		return false;
	if (!h->op && (c->pending & PENDING_SHUTDOWN)) {
		c->pending &= ~PENDING_SHUTDOWN;
		h->op = VSOCK_OP_SHUTDOWN;
		h->flags = c->shutdown_to_guest;
	}
	if (!h->op)
		return false;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_told = c->fwd_cnt;
	return true;
}

bool vsock_conns_next_packet(struct vsock_conns *t, struct vsock_hdr *h, struct iovec *payload,
			     unsigned *nr, uint64_t room)
{
	for (;;) {
		/* Resets first: they may free the guest's side of a port for a new connection. */
		if (t->rst_len) {
			fill_hdr(t, h, t->rst[t->rst_head].host_port,
				 t->rst[t->rst_head].guest_port, VSOCK_OP_RST);
			t->rst_head = (t->rst_head + 1) % VSOCK_RST_QUEUE;
			t->rst_len--;
			metric_inc(&vsock_metrics[VSOCK_RST_SENT]);
			return true;
		}
		struct vsock_conn *c = t->rx_head;
		if (!c)
			return false;
		t->rx_head = c->rx_next;
		if (!t->rx_head)
			t->rx_tail = NULL;
		c->on_rx_list = false;
		if (conn_packet(c, h, payload, nr, room)) {
			want_rx(c); /* round robin: back of the list if it has more */
			return true;
		}
	}
}
