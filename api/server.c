/* The API thread: libmicrohttpd driven by our own epoll loop, so that the thread is ours
 * (its seccomp filter, its shutdown) rather than libmicrohttpd's. */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "seccomp.h"

/* Headers larger than this get libmicrohttpd's own error reply. */
#define CONNECTION_MEMORY_LIMIT (32 * 1024)
#define CONNECTION_TIMEOUT_S	60

/* One request being received on a connection. */
struct pending {
	char *body;
	size_t len;
	bool has_body;
	bool too_large;
};

struct api_server {
	struct api_ctx *ctx;
	char *path;
	int listen_fd;
	size_t max_payload;
	struct MHD_Daemon *daemon;
	pthread_t thread;
	int stop_fd;

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

static enum MHD_Result send_reply(struct MHD_Connection *conn, unsigned status, char *body)
{
	struct MHD_Response *resp;
	if (body) {
		resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(resp, "Content-Type", "application/json");
	} else {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	}
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static char *fault(const char *fmt, size_t a, size_t b)
{
	char msg[256];
	snprintf(msg, sizeof(msg), fmt, a, b);
	char *out = NULL;
	if (asprintf(&out, "{\"fault_message\":\"%s\"}", msg) < 0)
		return NULL;
	return out;
}

/* Runs on the API thread: waits for the VMM thread to route the request. */
static void hand_to_vmm(struct api_server *srv, const char *method, const char *url,
			const struct pending *p, struct api_reply *reply)
{
	pthread_mutex_lock(&srv->lock);
	if (srv->stopping) {
		pthread_mutex_unlock(&srv->lock);
		*reply = (struct api_reply){ 503, NULL };
		return;
	}
	srv->method = method;
	srv->url = url;
	srv->body = p->has_body ? p->body : NULL;
	srv->body_len = p->len;
	srv->done = false;
	uint64_t one = 1;
	ssize_t r = write(srv->request_fd, &one, sizeof(one));
	(void)r;
	while (!srv->done && !srv->stopping)
		pthread_cond_wait(&srv->done_cond, &srv->lock);
	*reply = srv->done ? srv->reply : (struct api_reply){ 503, NULL };
	pthread_mutex_unlock(&srv->lock);
}

/* Runs on the VMM thread when a request is waiting. */
static void on_request_event(void *opaque, uint32_t events)
{
	struct api_server *srv = opaque;
	(void)events;
	uint64_t n;
	if (read(srv->request_fd, &n, sizeof(n)) != sizeof(n))
		return;
	pthread_mutex_lock(&srv->lock);
	struct api_reply reply = { 0 };
	api_dispatch(srv->ctx, srv->method, srv->url, srv->body, srv->body_len, &reply);
	srv->reply = reply;
	srv->done = true;
	pthread_cond_signal(&srv->done_cond);
	pthread_mutex_unlock(&srv->lock);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct api_server *srv = cls;
	struct pending *p = *con_cls;
	(void)version;
	if (!p) {
		/* First call: headers only. Refuse an announced oversized body up front. */
		p = calloc(1, sizeof(*p));
		if (!p)
			return MHD_NO;
		*con_cls = p;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > srv->max_payload)
			p->too_large = true;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		p->has_body = true;
		if (p->too_large || p->len + n > srv->max_payload) {
			p->too_large = true; /* keep reading, drop the bytes, answer at the end */
			return MHD_YES;
		}
		char *grown = realloc(p->body, p->len + n + 1);
		if (!grown)
			return MHD_NO;
		memcpy(grown + p->len, upload_data, n);
		p->body = grown;
		p->len += n;
		p->body[p->len] = '\0';
		return MHD_YES;
	}
	if (p->too_large) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		size_t size = cl ? (size_t)strtoull(cl, NULL, 10) : p->len;
		return send_reply(
			conn, MHD_HTTP_BAD_REQUEST,
			fault("Request payload with size %zu is larger than the limit of %zu "
			      "allowed by server.",
			      size, srv->max_payload));
	}
	struct api_reply reply;
	hand_to_vmm(srv, method, url, p, &reply);
	return send_reply(conn, reply.status, reply.body);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct pending *p = *con_cls;
	if (p) {
		free(p->body);
		free(p);
	}
	*con_cls = NULL;
}

static void *api_thread(void *arg)
{
	struct api_server *srv = arg;
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = info->epoll_fd };
	epoll_ctl(ep, EPOLL_CTL_ADD, info->epoll_fd, &ev);
	ev.data.fd = srv->stop_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, srv->stop_fd, &ev);
	/* Before the first request: from here on clients drive this thread. */
	int rc = seccomp_install(SECCOMP_API);
	if (rc) {
		log_err("cannot install the API thread's seccomp filter: %s", strerror(-rc));
		vm_request_exit(srv->ctx->vm, 1);
		close(ep);
		return NULL;
	}
	for (;;) {
		MHD_UNSIGNED_LONG_LONG timeout_ms;
		int timeout = -1;
		if (MHD_get_timeout(srv->daemon, &timeout_ms) == MHD_YES)
			timeout = timeout_ms > 60000 ? 60000 : (int)timeout_ms;
		struct epoll_event out[2];
		int n = epoll_wait(ep, out, 2, timeout);
		bool stop = false;
		for (int i = 0; i < n; i++)
			if (out[i].data.fd == srv->stop_fd)
				stop = true;
		if (stop)
			break;
		MHD_run(srv->daemon);
	}
	close(ep);
	return NULL;
}

/* A socket file may be left over from an ember that died: replace it, unless someone is
 * still listening there. */
static int prepare_socket_path(const char *path, char *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, VM_ERR_LEN, "API socket %s exists and is not a socket", path);
		return -EEXIST;
	}
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int rc = connect(probe, (struct sockaddr *)&addr, sizeof(addr));
	close(probe);
	if (rc == 0) {
		snprintf(err, VM_ERR_LEN, "API socket %s is in use by another process", path);
		return -EADDRINUSE;
	}
	return unlink(path) < 0 ? -errno : 0;
}

struct api_server *api_server_start(struct api_ctx *ctx, const char *path, size_t max_payload,
				    char *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, VM_ERR_LEN, "API socket path %s is longer than %zu bytes", path,
			 sizeof(addr.sun_path) - 1);
		return NULL;
	}
	int rc = prepare_socket_path(path, err);
	if (rc) {
		if (!err[0])
			snprintf(err, VM_ERR_LEN, "API socket %s: %s", path, strerror(-rc));
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
	strcpy(addr.sun_path, path);
	if (srv->listen_fd < 0 ||
	    bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(srv->listen_fd, 64) < 0) {
		snprintf(err, VM_ERR_LEN, "API socket %s: %s", path, strerror(errno));
		goto fail;
	}
	srv->daemon = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK, 0, NULL, NULL, on_access, srv,
		MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)CONNECTION_MEMORY_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_END);
	if (!srv->daemon) {
		snprintf(err, VM_ERR_LEN, "API socket %s: cannot start the HTTP server", path);
		goto fail;
	}
	srv->request_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->request_fd < 0 || srv->stop_fd < 0 ||
	    evloop_add(&ctx->vm->loop, srv->request_fd, EPOLLIN, on_request_event, srv) ||
	    pthread_create(&srv->thread, NULL, api_thread, srv)) {
		snprintf(err, VM_ERR_LEN, "API socket %s: cannot start the API thread", path);
		goto fail;
	}
	return srv;
fail:
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
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
	uint64_t one = 1;
	ssize_t r = write(srv->stop_fd, &one, sizeof(one));
	(void)r;
	/* A request the VMM thread will no longer answer must not keep the thread waiting. */
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_cond_signal(&srv->done_cond);
	pthread_mutex_unlock(&srv->lock);
	pthread_join(srv->thread, NULL);
	MHD_stop_daemon(srv->daemon);
	close(srv->listen_fd);
	unlink(srv->path);
	evloop_remove(&srv->ctx->vm->loop, srv->request_fd);
	close(srv->request_fd);
	close(srv->stop_fd);
	free(srv->path);
	free(srv);
}
