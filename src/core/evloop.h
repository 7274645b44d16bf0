/* The VMM thread's epoll loop. */
#ifndef EMBER_EVLOOP_H
#define EMBER_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop_source;

struct evloop {
	int epoll_fd;
	bool stop;
	struct evloop_source *sources; /* freed at evloop_close */
	unsigned nr_removed;	       /* sources removed but not yet freed */
};

int evloop_init(struct evloop *loop);
/* Watches fd for events (EPOLLIN...); fn runs on the VMM thread. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn, void *opaque);
int evloop_modify(struct evloop *loop, int fd, uint32_t events);
int evloop_remove(struct evloop *loop, int fd);
/* Waits up to timeout_ms (-1: for ever) for one batch of events and runs their handlers;
 * the number of events, or -errno. The fuzz targets drive a device's loop with it. */
int evloop_poll(struct evloop *loop, int timeout_ms);
/* Runs until a handler sets loop->stop; returns 0 or -errno. */
int evloop_run(struct evloop *loop);
void evloop_close(struct evloop *loop);

#endif
