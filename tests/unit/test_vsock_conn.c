/* The vsock connection state machine without sockets: a fake host side (vsock_host_ops
 * over an array of pretend sockets and a hand-moved clock) and a packet sink that pulls
 * what the guest is owed, one packet at a time. */
#include "unit_util.h"

#include "virtio/vsock_conn.h"

#define GUEST_CID 3
#define SOCKS	  (VSOCK_CONN_MAX + 8)
#define HEAD_MAX  64 /* bytes of what the host received kept for checks */
#define KIB	  1024U

struct fake_sock {
	bool closed, shut_wr;
	size_t sent; /* bytes the host end took */
	char head[HEAD_MAX + 1];
	size_t send_room; /* bytes it takes before -EAGAIN */
	int send_err;
	size_t in_avail; /* bytes the host wrote for the guest */
	bool in_eof;
};

struct fake {
	struct vsock_conns t;
	const char *label;
	unsigned warnings;
	uint64_t now;
	unsigned arms, wakes, closes, connects;
	int connect_rc;
	int next_fd;
	struct fake_sock s[SOCKS];
	uint8_t payload[VSOCK_PKT_MAX + 4096];
};

static struct fake *F(void)
{
	static struct fake f;
	return &f;
}

static struct fake_sock *sock(const struct vsock_conn *c)
{
	assert_true(c->fd >= 0 && c->fd < SOCKS);
	return &F()->s[c->fd];
}

static ssize_t f_send(void *host, struct vsock_conn *c, const struct iovec *iov, unsigned nr)
{
	(void)host;
	struct fake_sock *s = sock(c);
	assert_false(s->closed);
	if (s->send_err)
		return s->send_err;
	size_t total = 0;
	for (unsigned i = 0; i < nr; i++)
		for (size_t k = 0; k < iov[i].iov_len && total < s->send_room; k++, total++)
			if (s->sent + total < HEAD_MAX)
				s->head[s->sent + total] = ((char *)iov[i].iov_base)[k];
	if (total == 0)
		return -EAGAIN;
	s->send_room -= total;
	s->sent += total;
	return (ssize_t)total;
}

static ssize_t f_recv(void *host, struct vsock_conn *c, const struct iovec *iov, unsigned nr)
{
	(void)host;
	struct fake_sock *s = sock(c);
	assert_false(s->closed);
	size_t room = 0;
	for (unsigned i = 0; i < nr; i++)
		room += iov[i].iov_len;
	size_t n = s->in_avail < room ? s->in_avail : room;
	if (n == 0 && room)
		return s->in_eof ? 0 : -EAGAIN;
	size_t left = n;
	for (unsigned i = 0; i < nr && left; i++) {
		size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
		memset(iov[i].iov_base, 'h', k);
		left -= k;
	}
	s->in_avail -= n;
	return (ssize_t)n;
}

static void f_shutdown_write(void *host, struct vsock_conn *c)
{
	(void)host;
	sock(c)->shut_wr = true;
}

static int f_connect(void *host, struct vsock_conn *c)
{
	(void)host;
	F()->connects++;
	if (F()->connect_rc)
		return F()->connect_rc;
	c->fd = F()->next_fd++;
	return 0;
}

static void f_close(void *host, struct vsock_conn *c)
{
	(void)host;
	assert_false(sock(c)->closed);
	sock(c)->closed = true;
	F()->closes++;
}

static uint64_t f_now(void *host)
{
	(void)host;
	return F()->now;
}

static void f_arm(void *host)
{
	(void)host;
	F()->arms++;
}

static void f_wake(void *host)
{
	(void)host;
	F()->wakes++;
}

static const struct vsock_host_ops fake_ops = {
	.send = f_send,
	.recv = f_recv,
	.shutdown_write = f_shutdown_write,
	.connect = f_connect,
	.close = f_close,
	.now_ns = f_now,
	.arm_timer = f_arm,
	.wake = f_wake,
};

static int setup(void **state)
{
	(void)state;
	struct fake *f = F();
	memset(f, 0, sizeof(*f));
	f->label = "vsock";
	f->now = 1000000000ULL;
	for (unsigned i = 0; i < SOCKS; i++)
		f->s[i].send_room = SIZE_MAX;
	vsock_conns_init(&f->t, &fake_ops, f, GUEST_CID, &f->label, &f->warnings);
	return 0;
}

static int teardown(void **state)
{
	vsock_conns_destroy(&F()->t);
	return unit_teardown(state);
}

#define CONN_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static unsigned long metric(enum vsock_metric m)
{
	return atomic_load(&vsock_metrics[m].value);
}

/* A packet from the guest on (guest_port -> host_port), with len bytes of payload. */
static void guest_pkt(enum vsock_op op, uint32_t guest_port, uint32_t host_port, uint32_t buf_alloc,
		      uint32_t fwd_cnt, uint32_t flags, uint32_t len)
{
	static uint8_t data[VSOCK_PKT_MAX];
	memset(data, 'g', len);
	struct vsock_hdr h = { .src_cid = GUEST_CID,
			       .dst_cid = VSOCK_HOST_CID,
			       .src_port = guest_port,
			       .dst_port = host_port,
			       .len = len,
			       .type = VSOCK_TYPE_STREAM,
			       .op = (uint16_t)op,
			       .flags = flags,
			       .buf_alloc = buf_alloc,
			       .fwd_cnt = fwd_cnt };
	struct iovec iov = { data, len };
	vsock_conns_from_guest(&F()->t, &h, &iov, len ? 1 : 0);
}

/* The next packet the guest is owed, with room bytes of payload space; false if none. */
static bool next_room(struct vsock_hdr *h, uint64_t room)
{
	struct iovec iov = { F()->payload, room };
	unsigned nr = 1;
	return vsock_conns_next_packet(&F()->t, h, &iov, &nr, room);
}

static struct vsock_hdr expect(enum vsock_op op, uint32_t host_port, uint32_t guest_port)
{
	struct vsock_hdr h;
	assert_true(next_room(&h, VSOCK_PKT_MAX));
	assert_int_equal(h.op, op);
	assert_int_equal(h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(h.dst_cid, GUEST_CID);
	if (host_port)
		assert_int_equal(h.src_port, host_port);
	assert_int_equal(h.dst_port, guest_port);
	assert_int_equal(h.buf_alloc, VSOCK_BUF_ALLOC);
	return h;
}

static void expect_none(void)
{
	struct vsock_hdr h;
	assert_false(next_room(&h, VSOCK_PKT_MAX));
	assert_false(vsock_conns_have_rx(&F()->t));
}

/* A host process connects and asks for guest_port; the guest got the REQUEST. */
static struct vsock_conn *host_conn(uint32_t guest_port)
{
	int fd = F()->next_fd++;
	struct vsock_conn *c = vsock_conn_host_accepted(&F()->t, fd);
	assert_non_null(c);
	vsock_conn_host_request(c, guest_port);
	struct vsock_hdr h = expect(VSOCK_OP_REQUEST, 0, guest_port);
	assert_true(h.src_port >= VSOCK_LOCAL_PORT_LO);
	assert_int_equal(h.src_port, c->host_port);
	return c;
}

/* The guest connects guest_port -> host_port and the host side accepts; RESPONSE sent. */
static struct vsock_conn *guest_conn(uint32_t guest_port, uint32_t host_port, uint32_t buf_alloc)
{
	guest_pkt(VSOCK_OP_REQUEST, guest_port, host_port, buf_alloc, 0, 0, 0);
	expect(VSOCK_OP_RESPONSE, host_port, guest_port);
	struct vsock_conn *c = vsock_conn_find(&F()->t, host_port, guest_port);
	assert_non_null(c);
	assert_int_equal(c->state, CONN_ESTABLISHED);
	return c;
}

static void test_host_connect(void **state)
{
	(void)state;
	unsigned long added = metric(VSOCK_CONNS_ADDED);
	struct vsock_conn *c = host_conn(5000);
	assert_int_equal(c->state, CONN_REQUESTED);
	assert_true(F()->arms > 0);
	expect_none();
	assert_int_equal(sock(c)->sent, 0); /* no OK before the guest answers */

	guest_pkt(VSOCK_OP_RESPONSE, 5000, c->host_port, VSOCK_BUF_ALLOC, 0, 0, 0);
	char ok[32];
	snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
	assert_string_equal(sock(c)->head, ok);
	assert_int_equal(c->state, CONN_ESTABLISHED);
	assert_int_equal(c->deadline_ns, 0);
	assert_int_equal(metric(VSOCK_CONNS_ADDED), added + 1);
	expect_none();
}

static void test_guest_connect(void **state)
{
	(void)state;
	unsigned long added = metric(VSOCK_CONNS_ADDED);
	struct vsock_conn *c = guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	assert_int_equal(F()->connects, 1);
	assert_int_equal(c->host_port, 80);
	assert_int_equal(metric(VSOCK_CONNS_ADDED), added + 1);
	expect_none();
	/* A second REQUEST on the same ports: both ends start over. */
	guest_pkt(VSOCK_OP_REQUEST, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect(VSOCK_OP_RST, 80, 1234);
	assert_null(vsock_conn_find(&F()->t, 80, 1234));
}

static void test_guest_connect_refused(void **state)
{
	(void)state;
	unsigned long refused = metric(VSOCK_CONNS_REFUSED);
	unsigned long added = metric(VSOCK_CONNS_ADDED);
	F()->connect_rc = -ECONNREFUSED;
	guest_pkt(VSOCK_OP_REQUEST, 1234, 81, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect(VSOCK_OP_RST, 81, 1234);
	expect_none();
	assert_int_equal(metric(VSOCK_CONNS_REFUSED), refused + 1);
	assert_int_equal(metric(VSOCK_CONNS_ADDED), added);
	assert_int_equal(F()->t.nr_conns, 0);
	assert_null(vsock_conn_find(&F()->t, 81, 1234));
}

/* Regression: when the host side failed to watch a guest-initiated connection's socket
 * (evloop_add), the freed connection stayed in the hash table. */
static void test_guest_connect_watch_fails(void **state)
{
	(void)state;
	unsigned long refused = metric(VSOCK_CONNS_REFUSED);
	F()->connect_rc = -ENOMEM;
	guest_pkt(VSOCK_OP_REQUEST, 1234, 82, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect(VSOCK_OP_RST, 82, 1234);
	assert_null(vsock_conn_find(&F()->t, 82, 1234));
	assert_int_equal(metric(VSOCK_CONNS_REFUSED), refused); /* somebody listened */
	vsock_conns_reap(&F()->t);
	/* The guest tries again and it works: no stale entry answers for the ports. */
	F()->connect_rc = 0;
	guest_conn(1234, 82, VSOCK_BUF_ALLOC);
	expect_none();
}

/* Regression: the OK line failing (the host client shut its reading side) ended the
 * connection, and the packet handler went on with it: with a CREDIT_REQUEST before the
 * RESPONSE, the freed connection was queued for the guest. */
static void test_ok_line_fails(void **state)
{
	(void)state;
	unsigned long added = metric(VSOCK_CONNS_ADDED);
	struct vsock_conn *c = host_conn(6000);
	uint32_t port = c->host_port;
	guest_pkt(VSOCK_OP_CREDIT_REQUEST, 6000, port, VSOCK_BUF_ALLOC, 0, 0, 0);
	sock(c)->send_err = -EPIPE;
	struct fake_sock *s = sock(c);
	guest_pkt(VSOCK_OP_RESPONSE, 6000, port, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect(VSOCK_OP_RST, port, 6000);
	expect_none();
	assert_null(vsock_conn_find(&F()->t, port, 6000));
	assert_int_equal(F()->t.nr_conns, 0);
	assert_int_equal(metric(VSOCK_CONNS_ADDED), added);
	vsock_conns_reap(&F()->t);
	assert_true(s->closed);
	expect_none();
}

static void test_credit_exceeded(void **state)
{
	(void)state;
	unsigned long exceeded = metric(VSOCK_CREDIT_EXCEEDED);
	struct vsock_conn *c = guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	struct fake_sock *s = sock(c);
	s->send_room = 0; /* the host reader is asleep */
	for (unsigned i = 0; i < VSOCK_BUF_ALLOC / VSOCK_PKT_MAX; i++)
		guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, VSOCK_PKT_MAX);
	/* Exactly the credit is fine. */
	assert_int_equal(c->state, CONN_ESTABLISHED);
	assert_int_equal(c->tx_len, VSOCK_BUF_ALLOC);
	expect_none();
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 1);
	expect(VSOCK_OP_RST, 80, 1234);
	expect_none();
	assert_int_equal(metric(VSOCK_CREDIT_EXCEEDED), exceeded + 1);
	assert_null(vsock_conn_find(&F()->t, 80, 1234));
	vsock_conns_reap(&F()->t);
	assert_true(s->closed);
}

static void test_credit_update(void **state)
{
	(void)state;
	struct vsock_conn *c = guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	struct fake_sock *s = sock(c);
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, VSOCK_PKT_MAX);
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, VSOCK_PKT_MAX - 1);
	expect_none(); /* under half the buffer: the guest has credit enough */
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 1);
	struct vsock_hdr h = expect(VSOCK_OP_CREDIT_UPDATE, 80, 1234);
	assert_int_equal(h.fwd_cnt, 128 * KIB);
	assert_int_equal(s->sent, 128 * KIB);
	expect_none();

	/* Data the host could not take counts once it drains. */
	s->send_room = 1000;
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 4000);
	expect_none();
	s->send_room = SIZE_MAX;
	vsock_conn_host_event(c, false, false);
	h = expect(VSOCK_OP_CREDIT_UPDATE, 80, 1234);
	assert_int_equal(h.fwd_cnt, 128 * KIB + 4000);
	assert_int_equal(c->tx_len, 0);

	/* The guest asks: it gets an update. */
	guest_pkt(VSOCK_OP_CREDIT_REQUEST, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect(VSOCK_OP_CREDIT_UPDATE, 80, 1234);
	expect_none();
}

static void test_host_to_guest_credit(void **state)
{
	(void)state;
	struct vsock_conn *c = guest_conn(1234, 80, 3000);
	struct fake_sock *s = sock(c);
	s->in_avail = 10000;
	vsock_conn_host_event(c, true, false);
	struct vsock_hdr h;
	uint32_t got = 0;
	/* Small receive buffers: each packet fits its buffer. */
	while (next_room(&h, 1000) && h.op == VSOCK_OP_RW) {
		assert_true(h.len <= 1000);
		got += h.len;
	}
	assert_int_equal(got, 3000);
	/* Credit spent: one CREDIT_REQUEST, then silence. */
	assert_int_equal(h.op, VSOCK_OP_CREDIT_REQUEST);
	expect_none();
	vsock_conn_host_event(c, true, false);
	expect_none();
	/* The guest consumed 2000 bytes: 2000 more may go. */
	guest_pkt(VSOCK_OP_CREDIT_UPDATE, 1234, 80, 3000, 2000, 0, 0);
	h = expect(VSOCK_OP_RW, 80, 1234);
	assert_int_equal(h.len, 2000);
	expect(VSOCK_OP_CREDIT_REQUEST, 80, 1234);
	expect_none();
	assert_int_equal(s->in_avail, 5000);
}

static void test_shutdown_from_guest(void **state)
{
	(void)state;
	struct vsock_conn *c = guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	struct fake_sock *s = sock(c);
	/* Data still buffered: the host reader gets its end of stream after the data. */
	s->send_room = 10;
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 100);
	guest_pkt(VSOCK_OP_SHUTDOWN, 1234, 80, VSOCK_BUF_ALLOC, 0, VSOCK_SHUTDOWN_SEND, 0);
	assert_false(s->shut_wr);
	s->send_room = SIZE_MAX;
	vsock_conn_host_event(c, false, false);
	assert_true(s->shut_wr);
	assert_int_equal(s->sent, 100);
	expect(VSOCK_OP_CREDIT_UPDATE, 80, 1234);
	/* The guest may still read. */
	s->in_avail = 5;
	vsock_conn_host_event(c, true, false);
	assert_int_equal(expect(VSOCK_OP_RW, 80, 1234).len, 5);
	/* But not write. */
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 1);
	expect(VSOCK_OP_RST, 80, 1234);
	assert_null(vsock_conn_find(&F()->t, 80, 1234));

	/* Both directions at once: answered with RST. */
	guest_conn(1235, 80, VSOCK_BUF_ALLOC);
	guest_pkt(VSOCK_OP_SHUTDOWN, 1235, 80, VSOCK_BUF_ALLOC, 0,
		  VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV, 0);
	expect(VSOCK_OP_RST, 80, 1235);
	expect_none();
	assert_null(vsock_conn_find(&F()->t, 80, 1235));
}

static void test_shutdown_from_host(void **state)
{
	(void)state;
	struct vsock_conn *c = guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	struct fake_sock *s = sock(c);
	/* The host shut its writing side: SHUTDOWN(SEND) after the data. */
	s->in_avail = 7;
	s->in_eof = true;
	vsock_conn_host_event(c, true, false);
	assert_int_equal(expect(VSOCK_OP_RW, 80, 1234).len, 7);
	struct vsock_hdr h = expect(VSOCK_OP_SHUTDOWN, 80, 1234);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_SEND);
	expect_none();
	/* The guest still writes to the host. */
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 3);
	assert_int_equal(s->sent, 3);

	/* A host that closes altogether: both flags, and ember lets its socket go. */
	c = guest_conn(1235, 80, VSOCK_BUF_ALLOC);
	s = sock(c);
	s->in_eof = true;
	vsock_conn_host_event(c, true, true);
	h = expect(VSOCK_OP_SHUTDOWN, 80, 1235);
	assert_int_equal(h.flags, VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV);
	assert_true(s->closed);
	assert_int_equal(c->state, CONN_CLOSING);
	/* The guest's RST ends it without a reset back. */
	guest_pkt(VSOCK_OP_RST, 1235, 80, VSOCK_BUF_ALLOC, 0, 0, 0);
	assert_null(vsock_conn_find(&F()->t, 80, 1235));
	expect_none();
}

static void test_rst(void **state)
{
	(void)state;
	unsigned long removed = metric(VSOCK_CONNS_REMOVED);
	struct vsock_conn *c = guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	struct fake_sock *s = sock(c);
	guest_pkt(VSOCK_OP_RST, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect_none();
	assert_null(vsock_conn_find(&F()->t, 80, 1234));
	assert_int_equal(metric(VSOCK_CONNS_REMOVED), removed + 1);
	assert_false(s->closed); /* closed by the reap, at the end of the batch */
	vsock_conns_reap(&F()->t);
	assert_true(s->closed);
	/* Packets for no connection: RST, except RST itself. */
	guest_pkt(VSOCK_OP_RST, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect_none();
	guest_pkt(VSOCK_OP_RW, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 5);
	expect(VSOCK_OP_RST, 80, 1234);
	expect_none();
	/* A RESPONSE nobody asked for resets the connection. */
	guest_conn(1236, 80, VSOCK_BUF_ALLOC);
	guest_pkt(VSOCK_OP_RESPONSE, 1236, 80, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect(VSOCK_OP_RST, 80, 1236);
	assert_null(vsock_conn_find(&F()->t, 80, 1236));
}

static void test_connect_deadline(void **state)
{
	(void)state;
	struct vsock_conn *c = host_conn(7000);
	struct fake_sock *s = sock(c);
	uint32_t port = c->host_port;
	F()->now += VSOCK_CONNECT_MS * 1000000ULL - 1;
	assert_true(vsock_conns_expire(&F()->t));
	assert_non_null(vsock_conn_find(&F()->t, port, 7000));
	expect_none();
	F()->now += 1;
	assert_false(vsock_conns_expire(&F()->t));
	expect(VSOCK_OP_RST, port, 7000);
	expect_none();
	assert_null(vsock_conn_find(&F()->t, port, 7000));
	vsock_conns_reap(&F()->t);
	assert_true(s->closed);
	assert_int_equal(s->sent, 0);

	/* A host client that never sends its CONNECT line goes as well, with no RST. */
	int fd = F()->next_fd++;
	assert_non_null(vsock_conn_host_accepted(&F()->t, fd));
	F()->now += VSOCK_CONNECT_MS * 1000000ULL;
	assert_false(vsock_conns_expire(&F()->t));
	expect_none();
	assert_int_equal(F()->t.nr_conns, 0);
	vsock_conns_reap(&F()->t);
	assert_true(F()->s[fd].closed);
}

static void test_conn_limit(void **state)
{
	(void)state;
	for (unsigned i = 0; i < VSOCK_CONN_MAX; i++)
		assert_non_null(vsock_conn_host_accepted(&F()->t, F()->next_fd++));
	assert_null(vsock_conn_host_accepted(&F()->t, F()->next_fd));
	guest_pkt(VSOCK_OP_REQUEST, 1234, 80, VSOCK_BUF_ALLOC, 0, 0, 0);
	expect(VSOCK_OP_RST, 80, 1234);
	assert_int_equal(F()->connects, 0);
	assert_int_equal(F()->t.nr_conns, VSOCK_CONN_MAX);
	/* One goes, one may come. */
	vsock_conn_kill(F()->t.conns, false);
	guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	assert_null(vsock_conn_host_accepted(&F()->t, F()->next_fd));
}

static void test_device_reset(void **state)
{
	(void)state;
	unsigned long removed = metric(VSOCK_CONNS_REMOVED);
	struct vsock_conn *a = guest_conn(1234, 80, VSOCK_BUF_ALLOC);
	struct vsock_conn *b = host_conn(5000);
	guest_pkt(VSOCK_OP_RESPONSE, 5000, b->host_port, VSOCK_BUF_ALLOC, 0, 0, 0);
	struct vsock_conn *c = host_conn(5001); /* waits for the guest */
	struct fake_sock *sa = sock(a), *sb = sock(b), *sc = sock(c);
	sa->in_avail = 100;
	vsock_conn_host_event(a, true, false);			 /* data owed */
	guest_pkt(VSOCK_OP_RW, 9, 80, VSOCK_BUF_ALLOC, 0, 0, 1); /* an RST owed */
	assert_true(vsock_conns_have_rx(&F()->t));

	vsock_conns_reset(&F()->t);
	assert_int_equal(F()->wakes, 1);
	assert_int_equal(F()->t.nr_conns, 0);
	assert_int_equal(metric(VSOCK_CONNS_REMOVED), removed + 2);
	expect_none();
	assert_null(vsock_conn_find(&F()->t, 80, 1234));
	/* The host ends close on the VMM thread; events meanwhile are ignored. */
	assert_false(sa->closed);
	vsock_conn_host_event(a, true, true);
	expect_none();
	vsock_conns_reap(&F()->t);
	assert_true(sa->closed && sb->closed && sc->closed);
	/* The guest starts over on the same ports. */
	guest_conn(1234, 80, VSOCK_BUF_ALLOC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CONN_TEST(test_host_connect),
		CONN_TEST(test_guest_connect),
		CONN_TEST(test_guest_connect_refused),
		CONN_TEST(test_guest_connect_watch_fails),
		CONN_TEST(test_ok_line_fails),
		CONN_TEST(test_credit_exceeded),
		CONN_TEST(test_credit_update),
		CONN_TEST(test_host_to_guest_credit),
		CONN_TEST(test_shutdown_from_guest),
		CONN_TEST(test_shutdown_from_host),
		CONN_TEST(test_rst),
		CONN_TEST(test_connect_deadline),
		CONN_TEST(test_conn_limit),
		CONN_TEST(test_device_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
