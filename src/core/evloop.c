#include "core/evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

struct evloop_source {
	int fd;
	evloop_fn fn;
	void *opaque;
	bool removed;
	struct evloop_source *next;
};

int evloop_init(struct evloop *loop)
{
	*loop = (struct evloop){ .epoll_fd = epoll_create1(EPOLL_CLOEXEC) };
	return loop->epoll_fd < 0 ? -errno : 0;
}

static struct evloop_source *find_source(struct evloop *loop, int fd)
{
	for (struct evloop_source *s = loop->sources; s; s = s->next)
		if (s->fd == fd && !s->removed)
			return s;
	return NULL;
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn, void *opaque)
{
	struct evloop_source *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct evloop_source){ .fd = fd, .fn = fn, .opaque = opaque, .next = loop->sources };
	struct epoll_event ev = { .events = events, .data.ptr = s };
	if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;
		free(s);
		return err;
	}
	loop->sources = s;
	return 0;
}

int evloop_modify(struct evloop *loop, int fd, uint32_t events)
{
	struct evloop_source *s = find_source(loop, fd);
	if (!s)
		return -ENOENT;
	struct epoll_event ev = { .events = events, .data.ptr = s };
	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int evloop_remove(struct evloop *loop, int fd)
{
	struct evloop_source *s = find_source(loop, fd);
	if (!s)
		return -ENOENT;
	/* The source stays allocated (marked removed) because an event for it may still be
	 * in the batch that evloop_run is walking; it is freed after the batch. */
	s->removed = true;
	loop->nr_removed++;
	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

/* Frees removed sources: connections come and go all the time (vsock). */
static void sweep_removed(struct evloop *loop)
{
	for (struct evloop_source **p = &loop->sources; *p;) {
		struct evloop_source *s = *p;
		if (s->removed) {
			*p = s->next;
			free(s);
		} else {
			p = &s->next;
		}
	}
	loop->nr_removed = 0;
}

int evloop_poll(struct evloop *loop, int timeout_ms)
{
	struct epoll_event events[16];
	int n = epoll_wait(loop->epoll_fd, events, 16, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n && !loop->stop; i++) {
		struct evloop_source *s = events[i].data.ptr;
		if (!s->removed)
			s->fn(s->opaque, events[i].events);
	}
	if (loop->nr_removed)
		sweep_removed(loop);
	return n;
}

int evloop_run(struct evloop *loop)
{
	while (!loop->stop) {
		int rc = evloop_poll(loop, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void evloop_close(struct evloop *loop)
{
	for (struct evloop_source *s = loop->sources, *next; s; s = next) {
		next = s->next;
		free(s);
	}
	loop->sources = NULL;
	if (loop->epoll_fd >= 0)
		close(loop->epoll_fd);
	loop->epoll_fd = -1;
}
