/* virtio-vsock, the host side: the listener at uds_path and its CONNECT lines, one
 * non-blocking Unix socket per connection (edge-triggered in the VMM thread's event loop)
 * and the timer behind the connection deadlines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/machine.h"
#include "virtio/vsock_internal.h"

#define CONNECT_LINE_MAX 32 /* "CONNECT 4294967295\n" fits with room to spare */
#define TIMER_PERIOD_NS	 (100 * 1000 * 1000ULL)
#define CONN_EVENTS	 (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

static ssize_t transfer(struct vsock_conn *c, const struct iovec *iov, unsigned nr, bool out)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = nr };
	ssize_t n;
	do
		n = out ? sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL)
			: recvmsg(c->fd, &msg, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n >= 0 ? n : errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static ssize_t unix_send(void *host, struct vsock_conn *c, const struct iovec *iov, unsigned nr)
{
	(void)host;
	return transfer(c, iov, nr, true);
}

static ssize_t unix_recv(void *host, struct vsock_conn *c, const struct iovec *iov, unsigned nr)
{
	(void)host;
	return transfer(c, iov, nr, false);
}

static void unix_shutdown_write(void *host, struct vsock_conn *c)
{
	(void)host;
	shutdown(c->fd, SHUT_WR);
}

static void unix_close(void *host, struct vsock_conn *c)
{
	struct vsock_host *h = host;
	evloop_remove(h->loop, c->fd);
	close(c->fd);
}

static uint64_t unix_now_ns(void *host)
{
	(void)host;
	return monotonic_ns();
}

static void unix_arm_timer(void *host)
{
	struct vsock_host *h = host;
	if (h->timer_armed)
		return;
	struct itimerspec its = { { 0, TIMER_PERIOD_NS }, { 0, TIMER_PERIOD_NS } };
	if (timerfd_settime(h->timer_fd, 0, &its, NULL) == 0)
		h->timer_armed = true;
}

static void unix_wake(void *host)
{
	struct vsock_host *h = host;
	eventfd_write(h->cleanup_fd, 1);
}

/* Reads "CONNECT <port>\n" without taking any byte past it: what follows is stream data. */
static void read_connect_line(struct vsock_host *h, struct vsock_conn *c)
{
	char line[CONNECT_LINE_MAX + 1];
	ssize_t r = recv(c->fd, line, CONNECT_LINE_MAX, MSG_PEEK | MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	char *nl = r > 0 ? memchr(line, '\n', (size_t)r) : NULL;
	if (!nl && r > 0 && r < CONNECT_LINE_MAX && !c->host_hup)
		return; /* the rest of the line is on its way */
	size_t len = nl ? (size_t)(nl - line) + 1 : 0;
	if (nl && recv(c->fd, line, len, MSG_DONTWAIT) == (ssize_t)len) {
		unsigned long port = 0;
		char *end = line;
		*nl = '\0';
		errno = 0;
		if (strncmp(line, "CONNECT ", 8) == 0 && line[8] >= '0' && line[8] <= '9')
			port = strtoul(line + 8, &end, 10);
		if (end != line && *end == '\0' && !errno && port <= UINT32_MAX)
			return vsock_conn_host_request(c, (uint32_t)port);
		vsock_conns_warn(h->conns, "host connection closed: bad line \"%.*s\"",
				 (int)len - 1, line);
	} else if (r > 0) {
		vsock_conns_warn(h->conns, "host connection closed: no \"CONNECT <port>\\n\" line");
	}
	vsock_conn_kill(c, false);
}

/* Every handler ends the same way: packets for the guest go out, ended connections go. */
static void finish(struct vsock_host *h)
{
	h->kick(h->kick_opaque);
	vsock_conns_reap(h->conns);
	pthread_mutex_unlock(h->lock);
}

static void on_conn(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;
	struct vsock_host *h = c->t->host;
	pthread_mutex_lock(h->lock);
	/* Ended meanwhile (a device reset): the next reap closes it. The state machine keeps
	 * it allocated until then, and the reap unregisters it before freeing. */
	if (c->state != CONN_DEAD) {
		vsock_conn_host_event(c, events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR),
				      events & (EPOLLHUP | EPOLLERR));
		if (c->state == CONN_CONNECT_LINE)
			read_connect_line(h, c);
	}
	finish(h);
}

static int unix_connect(void *host, struct vsock_conn *c)
{
	struct vsock_host *h = host;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", h->uds_path, c->host_port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* ENOENT, ECONNREFUSED: nobody listens; EAGAIN: nobody accepts. */
		close(fd);
		return -ECONNREFUSED;
	}
	c->fd = fd; /* on failure too: the connection ends, and the reap closes it */
	return evloop_add(h->loop, fd, CONN_EVENTS, on_conn, c);
}

const struct vsock_host_ops vsock_unix_ops = {
	.send = unix_send,
	.recv = unix_recv,
	.shutdown_write = unix_shutdown_write,
	.connect = unix_connect,
	.close = unix_close,
	.now_ns = unix_now_ns,
	.arm_timer = unix_arm_timer,
	.wake = unix_wake,
};

static void on_listener(void *opaque, uint32_t events)
{
	struct vsock_host *h = opaque;
	(void)events;
	pthread_mutex_lock(h->lock);
	for (;;) {
		int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		struct vsock_conn *c = vsock_conn_host_accepted(h->conns, fd);
		if (!c)
			close(fd);
		else if (evloop_add(h->loop, fd, CONN_EVENTS, on_conn, c))
			vsock_conn_kill(c, false); /* the reap closes fd */
	}
	finish(h);
}

/* The timer ticked (connections that waited too long end), or a device reset left host
 * sockets to close (finish reaps them): either fd may be the one that woke us. */
static void on_timer(void *opaque, uint32_t events)
{
	struct vsock_host *h = opaque;
	uint64_t n;
	ssize_t r = read(h->timer_fd, &n, sizeof(n)) + read(h->cleanup_fd, &n, sizeof(n));
	(void)r, (void)events;
	pthread_mutex_lock(h->lock);
	if (!vsock_conns_expire(h->conns)) {
		struct itimerspec off = { 0 };
		timerfd_settime(h->timer_fd, 0, &off, NULL);
		h->timer_armed = false;
	}
	finish(h);
}

int vsock_host_bind(const char *path, char *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* Room for the "_<port>" of guest connections, up to "_4294967295". */
	if (strlen(path) + 11 >= sizeof(sa.sun_path))
		return errf(
			err, -ENAMETOOLONG,
			"vsock: uds_path %s: too long for a Unix socket path with a _PORT suffix",
			path);
	strcpy(sa.sun_path, path);
	int rc = 0, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
	} else if (listen(fd, 128) < 0) {
		rc = -errno;
		unlink(path); /* ember made the file */
	}
	if (!rc)
		return fd;
	if (fd >= 0)
		close(fd);
	return errf(err, rc, "vsock: uds_path %s: %s", path,
		    rc == -EADDRINUSE ? "already exists (remove it first)" : strerror(-rc));
}

int vsock_host_init(struct vsock_host *h, char *err)
{
	h->listen_fd = h->timer_fd = h->cleanup_fd = -1;
	int rc = 0, fd = h->bound_fd >= 0 ? h->bound_fd : vsock_host_bind(h->uds_path, err);
	h->owns_path = h->bound_fd < 0;
	h->bound_fd = -1;
	if (fd < 0)
		return fd;
	h->listen_fd = fd; /* vsock_host_destroy removes the socket file */
	h->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	h->cleanup_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->timer_fd < 0 || h->cleanup_fd < 0)
		rc = -errno;
	if (!rc && !(rc = evloop_add(h->loop, fd, EPOLLIN, on_listener, h)) &&
	    !(rc = evloop_add(h->loop, h->timer_fd, EPOLLIN, on_timer, h)))
		rc = evloop_add(h->loop, h->cleanup_fd, EPOLLIN, on_timer, h);
	if (rc)
		snprintf(err, ERR_LEN, "vsock: uds_path %s: %s", h->uds_path, strerror(-rc));
	return rc;
}

void vsock_host_destroy(struct vsock_host *h)
{
	if (h->listen_fd >= 0 && h->owns_path)
		unlink(h->uds_path);
	int fds[] = { h->listen_fd, h->timer_fd, h->cleanup_fd };
	for (int i = 0; i < 3; i++) {
		if (fds[i] >= 0) {
			evloop_remove(h->loop, fds[i]);
			close(fds[i]);
		}
	}
}
