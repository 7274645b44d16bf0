/* The API thread: our own HTTP/1.1 server (http.c parses) on the Unix socket, one epoll
 * loop, each request handed to the VMM thread and answered once it was routed. The thread
 * is ours, with its own seccomp filter, and the process carries no HTTP or TLS library. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/http.h"
#include "core/log.h"
#include "core/seccomp.h"

#define CONNECTIONS_MAX	     256
#define CONNECTION_TIMEOUT_S 60 /* an idle connection is closed after this */
#define RECV_CHUNK	     16384

struct conn {
	int fd;
	char *in; /* received, not yet served */
	size_t in_len, in_cap;
	char *out; /* the reply not yet sent */
	size_t out_len, out_off;
	size_t discard;	    /* body bytes of an oversized request still to drop */
	bool continue_sent; /* "100 Continue" went out for the request being received */
	bool close_after;   /* close once out is sent */
	time_t last_active;
	struct conn *next;
};

struct api_server {
	struct api_ctx *ctx;
	char *path;
	int listen_fd;
	size_t max_payload;
	pthread_t thread;
	int stop_fd;
	int epoll_fd;
	struct conn *conns;
	unsigned nr_conns;

	/* Hand-off to the VMM thread: one request at a time, since the API thread waits for
	 * each reply before it reads the next request. */
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int request_fd; /* eventfd the VMM loop watches */
	const char *method, *url, *body;
	size_t body_len;
	bool done;
	bool stopping; /* the VMM thread no longer answers */
	struct api_reply reply;
};

static char *fault_json(const char *msg)
{
	char *out;
	return asprintf(&out, "{\"fault_message\":\"%s\"}", msg) < 0 ? NULL : out;
}

/* Runs on the API thread: waits for the VMM thread to route the request. */
static void hand_to_vmm(struct api_server *srv, const char *method, const char *url,
			const char *body, size_t body_len, struct api_reply *reply)
{
	pthread_mutex_lock(&srv->lock);
	srv->done = false;
	/* Once stopping, nothing is handed over and the reply below is 503. */
	if (!srv->stopping) {
		srv->method = method;
		srv->url = url;
		srv->body = body;
		srv->body_len = body_len;
		eventfd_write(srv->request_fd, 1);
	}
	while (!srv->done && !srv->stopping)
		pthread_cond_wait(&srv->done_cond, &srv->lock);
	*reply = srv->done ? srv->reply : (struct api_reply){ 503, NULL, false };
	pthread_mutex_unlock(&srv->lock);
}

/* Runs on the VMM thread when a request is waiting. */
static void on_request_event(void *opaque, uint32_t events)
{
	struct api_server *srv = opaque;
	(void)events;
	eventfd_t n;
	if (eventfd_read(srv->request_fd, &n))
		return;
	pthread_mutex_lock(&srv->lock);
	struct api_reply reply = { 0 };
	api_dispatch(srv->ctx, srv->method, srv->url, srv->body, srv->body_len, &reply);
	srv->reply = reply;
	srv->done = true;
	pthread_cond_signal(&srv->done_cond);
	pthread_mutex_unlock(&srv->lock);
}

static void conn_close(struct api_server *srv, struct conn *c)
{
	for (struct conn **p = &srv->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
	srv->nr_conns--;
}

/* Sends what is queued; false when the connection is finished with (closed). */
static bool conn_flush(struct api_server *srv, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* Until the client reads, its next requests wait in the socket. */
			struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
			epoll_ctl(srv->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
			return true;
		}
		if (w <= 0) {
			conn_close(srv, c);
			return false;
		}
		c->out_off += (size_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->close_after) {
		conn_close(srv, c);
		return false;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	epoll_ctl(srv->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
	return true;
}

/* Queues a reply (status line, headers, body: taken over) behind what is already queued.
 * deprecated: the request used a deprecated field, which Firecracker's micro_http says with
 * "Deprecation: true". */
static void conn_reply_ex(struct conn *c, unsigned status, char *body, bool close_after,
			  bool deprecated)
{
	char head[256];
	size_t blen = body ? strlen(body) : 0;
	char length[80] = ""; /* 204 and 100 carry no body and say nothing about one */
	if (status != 204 && status != 100)
		snprintf(length, sizeof(length), "%sContent-Length: %zu\r\n",
			 body ? "Content-Type: application/json\r\n" : "", blen);
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %u %s\r\n%s%s%s\r\n", status,
			 http_reason(status), deprecated ? "Deprecation: true\r\n" : "", length,
			 close_after ? "Connection: close\r\n" : "");
	char *grown = realloc(c->out, c->out_len + (size_t)n + blen);
	if (!grown) {
		free(body);
		c->close_after = true;
		return;
	}
	c->out = grown;
	memcpy(c->out + c->out_len, head, (size_t)n);
	if (blen)
		memcpy(c->out + c->out_len + (size_t)n, body, blen);
	c->out_len += (size_t)n + blen;
	free(body);
	c->close_after |= close_after;
}

static void conn_reply(struct conn *c, unsigned status, char *body, bool close_after)
{
	conn_reply_ex(c, status, body, close_after, false);
}

/* The body micro_http sends when it cannot parse a request, raw line break included (it is
 * not valid JSON, and clients that match Firecracker's replies expect exactly it). */
static char *parse_error_json(const char *msg)
{
	char *out;
	return asprintf(&out,
			"{ \"error\": \"%s\nAll previous unanswered requests will be dropped.\" }",
			msg) < 0
		       ? NULL
		       : out;
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

/* Serves the next request in c's buffer once it is complete (conn_progress calls again for
 * the ones behind it). */
static void conn_serve(struct api_server *srv, struct conn *c)
{
	if (c->close_after || c->out_len)
		return;
	if (c->discard) {
		size_t n = c->discard < c->in_len ? c->discard : c->in_len;
		consume(c, n);
		c->discard -= n;
		if (c->discard)
			return;
	}
	if (c->in_len == 0)
		return;
	struct http_request req;
	const char *why;
	/* The parser writes NULs into the head: work on a copy of it. */
	size_t look = c->in_len < HTTP_HEAD_MAX ? c->in_len : HTTP_HEAD_MAX;
	char head[HTTP_HEAD_MAX + 1];
	memcpy(head, c->in, look);
	head[look] = '\0';
	int rc = http_parse_head(head, look, &req, &why);
	if (rc == 0)
		return;
	if (rc < 0) {
		conn_reply(c, (unsigned)-rc, fault_json(why), true);
		return;
	}
	size_t body_len = req.has_length ? req.content_length : 0;
	if (body_len > srv->max_payload) {
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "Request payload with size %zu is larger than the limit of %zu allowed by "
			 "server.",
			 body_len, srv->max_payload);
		/* A client waiting for "100 Continue" may send the body or not: the connection
		 * ends with this reply. Any other sends it anyway: it is read and dropped, so
		 * that the client gets to read this reply. The body is micro_http's
		 * (test_api_payload_size in Firecracker's tests). */
		bool waiting = req.expect_continue && !c->continue_sent;
		conn_reply(c, 400, parse_error_json(msg), req.close || waiting);
		consume(c, req.head_len);
		c->discard = waiting ? 0 : body_len;
		c->continue_sent = false;
		return;
	}
	if (c->in_len < req.head_len + body_len) {
		if (req.expect_continue && !c->continue_sent) {
			conn_reply(c, 100, NULL, false);
			c->continue_sent = true;
		}
		return;
	}
	/* The router parses the body by its length, straight from the buffer, which stays
	 * untouched while this thread waits for the reply. */
	struct api_reply reply;
	hand_to_vmm(srv, req.method, req.path, req.has_length ? c->in + req.head_len : NULL,
		    body_len, &reply);
	consume(c, req.head_len + body_len);
	c->continue_sent = false;
	conn_reply_ex(c, reply.status, reply.body, req.close, reply.deprecated);
}

/* Serves and sends until c waits for more bytes, for the client to read, or is gone. False
 * when it was closed. */
static bool conn_progress(struct api_server *srv, struct conn *c)
{
	for (;;) {
		size_t before = c->in_len;
		conn_serve(srv, c);
		if (!conn_flush(srv, c))
			return false;
		if (c->out_len || c->in_len == before || c->in_len == 0)
			return true;
	}
}

static void conn_readable(struct api_server *srv, struct conn *c)
{
	size_t limit = HTTP_HEAD_MAX + srv->max_payload;
	if (c->in_cap - c->in_len < RECV_CHUNK) {
		size_t cap = c->in_cap ? c->in_cap * 2 : RECV_CHUNK * 2;
		if (cap > limit + RECV_CHUNK)
			cap = limit + RECV_CHUNK;
		if (cap > c->in_cap) {
			char *grown = realloc(c->in, cap);
			if (!grown) {
				conn_close(srv, c);
				return;
			}
			c->in = grown;
			c->in_cap = cap;
		}
	}
	if (c->in_len == c->in_cap) {
		/* Neither a head nor a body we accept can be this large. */
		conn_reply(c, 431, fault_json("request too large"), true);
		conn_flush(srv, c);
		return;
	}
	ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0) {
		conn_close(srv, c);
		return;
	}
	c->in_len += (size_t)r;
	c->last_active = time(NULL);
	conn_progress(srv, c);
}

static void accept_all(struct api_server *srv)
{
	for (;;) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct conn *c = srv->nr_conns < CONNECTIONS_MAX ? calloc(1, sizeof(*c)) : NULL;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (!c || epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->fd = fd;
		c->last_active = time(NULL);
		c->next = srv->conns;
		srv->conns = c;
		srv->nr_conns++;
	}
}

static void close_idle(struct api_server *srv)
{
	time_t now = time(NULL);
	for (struct conn *c = srv->conns, *next; c; c = next) {
		next = c->next;
		if (now - c->last_active > CONNECTION_TIMEOUT_S)
			conn_close(srv, c);
	}
}

static void *api_thread(void *arg)
{
	struct api_server *srv = arg;
	pthread_setname_np(pthread_self(), "ember_api");
	/* Before the first request: from here on clients drive this thread. */
	int rc = seccomp_install(SECCOMP_API);
	if (rc) {
		log_err("cannot install the API thread's seccomp filter: %s", strerror(-rc));
		machine_request_exit(&srv->ctx->vm->m, 1);
		return NULL;
	}
	/* The listening socket and the stop eventfd are told apart from connections by their
	 * data pointers. */
	for (;;) {
		struct epoll_event out[16];
		int n = epoll_wait(srv->epoll_fd, out, 16, srv->conns ? 1000 : -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			void *ptr = out[i].data.ptr;
			if (ptr == &srv->stop_fd)
				goto stopped;
			if (ptr == &srv->listen_fd) {
				accept_all(srv);
				continue;
			}
			/* A closed connection may still have an event in this batch: each is looked
			 * up in the list first. */
			struct conn *c = srv->conns;
			while (c && c != ptr)
				c = c->next;
			if (!c)
				continue;
			if (out[i].events & EPOLLOUT) {
				/* The reply is out: requests that waited behind it go next. */
				if (conn_flush(srv, c))
					conn_progress(srv, c);
			} else if (out[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				conn_readable(srv, c);
			}
		}
		close_idle(srv);
	}
stopped:
	while (srv->conns)
		conn_close(srv, srv->conns);
	return NULL;
}

/* A socket file may be left over from an ember that died: replace it, unless someone is
 * still listening there. */
static int prepare_socket_path(const char *path, char *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return errf(err, -EEXIST, "API socket %s exists and is not a socket", path);
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int rc = connect(probe, (struct sockaddr *)&addr, sizeof(addr));
	close(probe);
	if (rc == 0)
		return errf(err, -EADDRINUSE, "API socket %s is in use by another process", path);
	return unlink(path) < 0 ? -errno : 0;
}

/* rename() that refuses to replace: another ember that bound the same path meanwhile keeps
 * it (EEXIST), as bind() would have refused. A file system without RENAME_NOREPLACE gets a
 * plain rename. */
static int move_into_place(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	return errno == EINVAL ? rename(from, to) : -1;
}

struct api_server *api_server_start(struct api_ctx *ctx, const char *path, size_t max_payload,
				    char *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, ERR_LEN, "API socket path %s is longer than %zu bytes", path,
			 sizeof(addr.sun_path) - 1);
		return NULL;
	}
	int rc = prepare_socket_path(path, err);
	if (rc) {
		if (!err[0])
			snprintf(err, ERR_LEN, "API socket %s: %s", path, strerror(-rc));
		return NULL;
	}
	struct api_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		die("out of memory");
	srv->ctx = ctx;
	srv->max_payload = max_payload;
	srv->path = strdup(path);
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->done_cond, NULL);
	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* The socket appears at its path only once it listens: bound under a temporary name
	 * beside it, then renamed. A client that waits for the file and connects at once
	 * (as scripts for Firecracker do) would otherwise meet ECONNREFUSED between bind and
	 * listen. A path too long for the temporary name is bound directly. */
	char tmp[sizeof(addr.sun_path)];
	int n = snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	bool renamed = n > 0 && (size_t)n < sizeof(tmp);
	strcpy(addr.sun_path, renamed ? tmp : path);
	if (renamed)
		unlink(tmp);
	if (srv->listen_fd < 0 ||
	    bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(srv->listen_fd, 64) < 0 || (renamed && move_into_place(tmp, path) < 0)) {
		snprintf(err, ERR_LEN, "API socket %s: %s", path, strerror(errno));
		if (renamed)
			unlink(tmp);
		goto fail;
	}
	srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &srv->listen_fd };
	if (srv->epoll_fd < 0 || epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0) {
		snprintf(err, ERR_LEN, "API socket %s: epoll: %s", path, strerror(errno));
		goto fail;
	}
	srv->request_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ev.data.ptr = &srv->stop_fd;
	if (srv->request_fd < 0 || srv->stop_fd < 0 ||
	    epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->stop_fd, &ev) < 0 ||
	    evloop_add(&ctx->vm->m.loop, srv->request_fd, EPOLLIN, on_request_event, srv) ||
	    pthread_create(&srv->thread, NULL, api_thread, srv)) {
		snprintf(err, ERR_LEN, "API socket %s: cannot start the API thread", path);
		goto fail;
	}
	return srv;
fail:
	if (srv->epoll_fd > 0)
		close(srv->epoll_fd);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	unlink(path);
	free(srv->path);
	free(srv);
	return NULL;
}

void api_server_stop(struct api_server *srv)
{
	if (!srv)
		return;
	eventfd_write(srv->stop_fd, 1);
	/* A request the VMM thread will no longer answer must not keep the thread waiting. */
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_cond_signal(&srv->done_cond);
	pthread_mutex_unlock(&srv->lock);
	pthread_join(srv->thread, NULL);
	close(srv->epoll_fd);
	close(srv->listen_fd);
	unlink(srv->path);
	evloop_remove(&srv->ctx->vm->m.loop, srv->request_fd);
	close(srv->request_fd);
	close(srv->stop_fd);
	free(srv->path);
	free(srv);
}
