/* virtio-vsock, the host side: the listener at uds_path, one non-blocking Unix socket per
 * connection (edge-triggered in the VMM thread's event loop), the buffer for guest data
 * the host socket could not take yet, and the deadlines of connections that wait for the
 * guest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "virtio/vsock_internal.h"

#define CONNECT_LINE_MAX 32 /* "CONNECT 4294967295\n" fits with room to spare */
#define TIMER_PERIOD_NS	 (100 * 1000 * 1000ULL)
#define CONN_EVENTS	 (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
#define SHUTDOWN_BOTH	 (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

static unsigned bucket(uint32_t host_port, uint32_t guest_port)
{
	return (host_port * 2654435761U ^ guest_port) % VSOCK_HASH_BUCKETS;
}

struct vsock_conn *vsock_conn_find(struct vsock_dev *v, uint32_t host_port, uint32_t guest_port)
{
	for (struct vsock_conn *c = v->hash[bucket(host_port, guest_port)]; c; c = c->hash_next)
		if (c->host_port == host_port && c->guest_port == guest_port)
			return c;
	return NULL;
}

static void hash_add(struct vsock_dev *v, struct vsock_conn *c)
{
	unsigned b = bucket(c->host_port, c->guest_port);
	c->hash_next = v->hash[b];
	v->hash[b] = c;
}

/* Unlinks c from the hash, the rx list and the device's list. */
static void unlink_conn(struct vsock_dev *v, struct vsock_conn *c)
{
	if (c->state != CONN_CONNECT_LINE) {
		for (struct vsock_conn **p = &v->hash[bucket(c->host_port, c->guest_port)]; *p;
		     p = &(*p)->hash_next)
			if (*p == c) {
				*p = c->hash_next;
				break;
			}
	}
	if (c->on_rx_list) {
		struct vsock_conn *prev = NULL;
		for (struct vsock_conn *i = v->rx_head; i; prev = i, i = i->rx_next)
			if (i == c) {
				if (prev)
					prev->rx_next = c->rx_next;
				else
					v->rx_head = c->rx_next;
				if (v->rx_tail == c)
					v->rx_tail = prev;
				break;
			}
		c->on_rx_list = false;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		v->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	v->nr_conns--;
}

static void free_conn(struct vsock_dev *v, struct vsock_conn *c)
{
	if (c->fd >= 0) {
		evloop_remove(&v->vdev.machine->loop, c->fd);
		close(c->fd);
	}
	free(c->tx_buf);
	free(c);
}

void vsock_owe_rst(struct vsock_dev *v, uint32_t host_port, uint32_t guest_port)
{
	if (v->rst_len == VSOCK_RST_QUEUE)
		return; /* the guest sends faster than it takes replies: it may wait for this one */
	unsigned i = (v->rst_head + v->rst_len++) % VSOCK_RST_QUEUE;
	v->rst[i].host_port = host_port;
	v->rst[i].guest_port = guest_port;
}

void vsock_conn_kill(struct vsock_conn *c, bool rst)
{
	struct vsock_dev *v = c->dev;
	if (rst && c->state != CONN_CONNECT_LINE)
		vsock_owe_rst(v, c->host_port, c->guest_port);
	if (c->state == CONN_ESTABLISHED || c->state == CONN_CLOSING)
		metric_inc(&vsock_metrics[VSOCK_CONNS_REMOVED]);
	unlink_conn(v, c);
	free_conn(v, c);
}

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool has_rx(const struct vsock_conn *c)
{
	if (c->pending)
		return true;
	return vsock_conn_reads_host(c) && (vsock_conn_peer_credit(c) > 0 || !c->credit_requested);
}

void vsock_conn_want_rx(struct vsock_conn *c)
{
	struct vsock_dev *v = c->dev;
	if (c->on_rx_list || !has_rx(c))
		return;
	c->on_rx_list = true;
	c->rx_next = NULL;
	if (v->rx_tail)
		v->rx_tail->rx_next = c;
	else
		v->rx_head = c;
	v->rx_tail = c;
}

static void arm_timer(struct vsock_dev *v)
{
	if (v->timer_armed)
		return;
	struct itimerspec its = {
		.it_interval = { .tv_nsec = TIMER_PERIOD_NS },
		.it_value = { .tv_nsec = TIMER_PERIOD_NS },
	};
	if (timerfd_settime(v->timer_fd, 0, &its, NULL) == 0)
		v->timer_armed = true;
}

void vsock_conn_host_gone(struct vsock_conn *c)
{
	struct vsock_dev *v = c->dev;
	evloop_remove(&v->vdev.machine->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	c->state = CONN_CLOSING;
	c->host_readable = false;
	c->deadline_ns = monotonic_ns() + VSOCK_CONNECT_MS * 1000000ULL;
	arm_timer(v);
}

static struct vsock_conn *new_conn(struct vsock_dev *v, int fd)
{
	struct vsock_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->dev = v;
	c->fd = fd;
	c->next = v->conns;
	if (v->conns)
		v->conns->prev = c;
	v->conns = c;
	v->nr_conns++;
	return c;
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
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1 };
		ssize_t w = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		}
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

/* The guest shut its sending side (and maybe its receiving side) and everything it sent
 * reached the host socket: pass the shutdown on. */
bool vsock_conn_guest_shutdown(struct vsock_conn *c)
{
	if (c->tx_len)
		return true;
	if (c->guest_shutdown == SHUTDOWN_BOTH) {
		/* A full shutdown is answered with RST, which ends the connection. */
		vsock_conn_kill(c, true);
		return false;
	}
	if ((c->guest_shutdown & VSOCK_SHUTDOWN_SEND) && c->fd >= 0)
		shutdown(c->fd, SHUT_WR);
	return true;
}

bool vsock_conn_write(struct vsock_conn *c, const struct iovec *iov, unsigned nr, uint32_t len)
{
	struct vsock_dev *v = c->dev;
	if (c->tx_len + len > VSOCK_BUF_ALLOC) {
		metric_inc(&vsock_metrics[VSOCK_CREDIT_EXCEEDED]);
		vsock_warn(v, "connection %u:%u: the guest sent beyond its credit: reset",
			   c->guest_port, c->host_port);
		vsock_conn_kill(c, true);
		return false;
	}
	uint32_t done = 0;
	if (c->tx_len == 0 && len) {
		struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = nr };
		ssize_t w = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			vsock_conn_kill(c, true); /* the host closed its end */
			return false;
		}
		done = w > 0 ? (uint32_t)w : 0;
		c->fwd_cnt += done;
	}
	if (done < len) {
		if (!c->tx_buf && !(c->tx_buf = malloc(VSOCK_BUF_ALLOC))) {
			vsock_conn_kill(c, true);
			return false;
		}
		/* The rest waits in the ring for EPOLLOUT. */
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
	return true;
}

void vsock_conn_established(struct vsock_conn *c)
{
	char ok[32];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
	/* A fresh socket's buffer takes these few bytes whole; anything else means the host
	 * end is gone. */
	if (send(c->fd, ok, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		vsock_conn_kill(c, true);
		return;
	}
	c->state = CONN_ESTABLISHED;
	c->pending &= ~PENDING_REQUEST;
	c->deadline_ns = 0;
	metric_inc(&vsock_metrics[VSOCK_CONNS_ADDED]);
	vsock_conn_want_rx(c);
}

/* Reads "CONNECT <port>\n" without taking any byte past it: what follows is stream data. */
static bool read_connect_line(struct vsock_conn *c)
{
	struct vsock_dev *v = c->dev;
	char line[CONNECT_LINE_MAX + 1];
	ssize_t r = recv(c->fd, line, CONNECT_LINE_MAX, MSG_PEEK | MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return true;
	char *nl = r > 0 ? memchr(line, '\n', (size_t)r) : NULL;
	if (!nl && r > 0 && r < CONNECT_LINE_MAX && !c->host_hup)
		return true; /* the rest of the line is on its way */
	size_t len = nl ? (size_t)(nl - line) + 1 : 0;
	if (!nl || recv(c->fd, line, len, MSG_DONTWAIT) != (ssize_t)len) {
		if (r > 0)
			vsock_warn(v, "host connection closed: no \"CONNECT <port>\\n\" line");
		vsock_conn_kill(c, false);
		return false;
	}
	line[len - 1] = '\0';
	unsigned long port = 0;
	char *end = line;
	errno = 0;
	if (strncmp(line, "CONNECT ", 8) == 0 && line[8] >= '0' && line[8] <= '9')
		port = strtoul(line + 8, &end, 10);
	if (end == line || *end != '\0' || errno || port > UINT32_MAX) {
		vsock_warn(v, "host connection closed: bad line \"%.*s\"", (int)len - 1, line);
		vsock_conn_kill(c, false);
		return false;
	}
	/* A host port no connection to this guest port uses. */
	uint32_t host_port;
	do {
		host_port = v->next_local_port++;
		if (v->next_local_port == UINT32_MAX)
			v->next_local_port = VSOCK_LOCAL_PORT_LO;
	} while (vsock_conn_find(v, host_port, (uint32_t)port));
	c->host_port = host_port;
	c->guest_port = (uint32_t)port;
	c->state = CONN_REQUESTED;
	c->pending = PENDING_REQUEST;
	c->deadline_ns = monotonic_ns() + VSOCK_CONNECT_MS * 1000000ULL;
	hash_add(v, c);
	arm_timer(v);
	return true;
}

static void on_conn(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;
	struct vsock_dev *v = c->dev;
	pthread_mutex_lock(&v->vdev.lock);
	if (c->dropped) /* by a device reset: on_cleanup closes it */
		goto out;
	if (events & (EPOLLHUP | EPOLLERR))
		c->host_hup = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->host_readable = true;
	bool alive = true;
	if (c->state == CONN_CONNECT_LINE) {
		alive = read_connect_line(c);
	} else if (c->state == CONN_ESTABLISHED && c->tx_len) {
		int rc = flush_tx(c);
		if (rc < 0 || (c->host_hup && c->tx_len)) {
			/* The host is gone with guest data still to deliver. */
			vsock_conn_kill(c, true);
			alive = false;
		} else if (rc == 0) {
			maybe_credit_update(c, true);
			alive = vsock_conn_guest_shutdown(c);
		}
	} else if (c->state == CONN_REQUESTED && c->host_hup) {
		vsock_conn_kill(c, true); /* the host gave up before the guest answered */
		alive = false;
	}
	if (alive)
		vsock_conn_want_rx(c);
	vsock_process_rx(v);
out:
	pthread_mutex_unlock(&v->vdev.lock);
}

struct vsock_conn *vsock_conn_connect(struct vsock_dev *v, uint32_t host_port, uint32_t guest_port)
{
	if (v->nr_conns >= VSOCK_CONN_MAX) {
		vsock_warn(v, "connect to host port %u refused: %u connections open", host_port,
			   v->nr_conns);
		return NULL;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->uds_path, host_port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* ENOENT, ECONNREFUSED: nobody listens; EAGAIN: nobody accepts. */
		close(fd);
		metric_inc(&vsock_metrics[VSOCK_CONNS_REFUSED]);
		return NULL;
	}
	struct vsock_conn *c = new_conn(v, fd);
	if (!c) {
		close(fd);
		return NULL;
	}
	c->host_port = host_port;
	c->guest_port = guest_port;
	c->state = CONN_ESTABLISHED;
	c->pending = PENDING_RESPONSE;
	hash_add(v, c);
	if (evloop_add(&v->vdev.machine->loop, fd, CONN_EVENTS, on_conn, c)) {
		c->state = CONN_CONNECT_LINE; /* not counted as added */
		vsock_conn_kill(c, false);
		return NULL;
	}
	metric_inc(&vsock_metrics[VSOCK_CONNS_ADDED]);
	return c;
}

static void on_listener(void *opaque, uint32_t events)
{
	struct vsock_dev *v = opaque;
	(void)events;
	pthread_mutex_lock(&v->vdev.lock);
	for (;;) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		struct vsock_conn *c = v->nr_conns < VSOCK_CONN_MAX ? new_conn(v, fd) : NULL;
		if (!c) {
			vsock_warn(v, "host connection refused: %u connections open", v->nr_conns);
			close(fd);
			continue;
		}
		c->state = CONN_CONNECT_LINE;
		c->deadline_ns = monotonic_ns() + VSOCK_CONNECT_MS * 1000000ULL;
		arm_timer(v);
		if (evloop_add(&v->vdev.machine->loop, fd, CONN_EVENTS, on_conn, c)) {
			c->fd = -1;
			close(fd);
			vsock_conn_kill(c, false);
		}
	}
	pthread_mutex_unlock(&v->vdev.lock);
}

/* Connections that waited too long for the guest (or for their CONNECT line) end. */
static void on_timer(void *opaque, uint32_t events)
{
	struct vsock_dev *v = opaque;
	(void)events;
	uint64_t ticks;
	ssize_t r = read(v->timer_fd, &ticks, sizeof(ticks));
	(void)r;
	pthread_mutex_lock(&v->vdev.lock);
	uint64_t now = monotonic_ns();
	bool waiting = false;
	for (struct vsock_conn *c = v->conns, *next; c; c = next) {
		next = c->next;
		if (!c->deadline_ns)
			continue;
		if (now < c->deadline_ns) {
			waiting = true;
			continue;
		}
		if (c->state == CONN_REQUESTED)
			vsock_warn(v, "host connection to guest port %u: no answer in %d ms%s",
				   c->guest_port, VSOCK_CONNECT_MS,
				   c->pending & PENDING_REQUEST
					   ? " (the guest took no receive buffer for the request)"
					   : "");
		vsock_conn_kill(c, c->state != CONN_CONNECT_LINE);
	}
	if (!waiting) {
		struct itimerspec off = { 0 };
		timerfd_settime(v->timer_fd, 0, &off, NULL);
		v->timer_armed = false;
	}
	vsock_process_rx(v);
	pthread_mutex_unlock(&v->vdev.lock);
}

/* VMM thread: closes the host sockets of the connections a device reset dropped. */
static void on_cleanup(void *opaque, uint32_t events)
{
	struct vsock_dev *v = opaque;
	(void)events;
	uint64_t n;
	ssize_t r = read(v->cleanup_fd, &n, sizeof(n));
	(void)r;
	pthread_mutex_lock(&v->vdev.lock);
	while (v->graveyard) {
		struct vsock_conn *c = v->graveyard;
		v->graveyard = c->next;
		free_conn(v, c);
	}
	pthread_mutex_unlock(&v->vdev.lock);
}

void vsock_host_reset(struct vsock_dev *v)
{
	/* The guest's connections are gone with its driver; their host sockets close on the
	 * VMM thread (this is a vCPU thread, which may not touch the event loop). */
	while (v->conns) {
		struct vsock_conn *c = v->conns;
		if (c->state == CONN_ESTABLISHED || c->state == CONN_CLOSING)
			metric_inc(&vsock_metrics[VSOCK_CONNS_REMOVED]);
		unlink_conn(v, c);
		c->dropped = true;
		c->next = v->graveyard;
		v->graveyard = c;
	}
	memset(v->hash, 0, sizeof(v->hash));
	v->rx_head = v->rx_tail = NULL;
	v->rst_len = 0;
	v->event_owed = false;
	uint64_t one = 1;
	ssize_t w = write(v->cleanup_fd, &one, sizeof(one));
	(void)w;
}

int vsock_host_init(struct vsock_dev *v, char *err, size_t err_len)
{
	struct evloop *loop = &v->vdev.machine->loop;
	v->listen_fd = v->timer_fd = v->cleanup_fd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* Room for the "_<port>" of guest connections, up to "_4294967295". */
	if (strlen(v->uds_path) + 11 >= sizeof(sa.sun_path)) {
		snprintf(err, err_len,
			 "vsock: uds_path %s: too long for a Unix socket path with a _PORT suffix",
			 v->uds_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, v->uds_path);
	v->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (v->listen_fd < 0 || bind(v->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		snprintf(err, err_len, "vsock: uds_path %s: %s", v->uds_path,
			 e == EADDRINUSE ? "already exists (remove it first)" : strerror(e));
		if (v->listen_fd >= 0)
			close(v->listen_fd);
		v->listen_fd = -1;
		return -e;
	}
	int rc = 0;
	if (listen(v->listen_fd, 128) < 0)
		rc = -errno;
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	v->cleanup_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!rc && (v->timer_fd < 0 || v->cleanup_fd < 0))
		rc = -errno;
	if (!rc)
		rc = evloop_add(loop, v->listen_fd, EPOLLIN, on_listener, v);
	if (!rc && (rc = evloop_add(loop, v->timer_fd, EPOLLIN, on_timer, v)))
		evloop_remove(loop, v->listen_fd);
	if (!rc && (rc = evloop_add(loop, v->cleanup_fd, EPOLLIN, on_cleanup, v))) {
		evloop_remove(loop, v->listen_fd);
		evloop_remove(loop, v->timer_fd);
	}
	if (rc) {
		snprintf(err, err_len, "vsock: uds_path %s: %s", v->uds_path, strerror(-rc));
		close(v->listen_fd);
		unlink(v->uds_path);
		v->listen_fd = -1;
		return rc;
	}
	return 0;
}

void vsock_host_destroy(struct vsock_dev *v)
{
	struct evloop *loop = &v->vdev.machine->loop;
	while (v->conns) {
		struct vsock_conn *c = v->conns;
		unlink_conn(v, c);
		free_conn(v, c);
	}
	while (v->graveyard) {
		struct vsock_conn *c = v->graveyard;
		v->graveyard = c->next;
		free_conn(v, c);
	}
	if (v->listen_fd >= 0) {
		evloop_remove(loop, v->listen_fd);
		close(v->listen_fd);
		/* ember made the socket file; it goes with it. */
		unlink(v->uds_path);
	}
	if (v->timer_fd >= 0) {
		evloop_remove(loop, v->timer_fd);
		close(v->timer_fd);
	}
	if (v->cleanup_fd >= 0) {
		evloop_remove(loop, v->cleanup_fd);
		close(v->cleanup_fd);
	}
}
