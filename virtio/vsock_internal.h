/* What virtio/vsock.c (the device: queues and packets) and virtio/vsock_host.c (the host
 * side: the Unix listener and one Unix socket per connection) share. Both drive the
 * connection state machine (vsock_conn.h); the host side reaches the device only through
 * the kick callback it was given. */
#ifndef EMBER_VSOCK_INTERNAL_H
#define EMBER_VSOCK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/evloop.h"
#include "virtio/vsock_conn.h"

struct vsock_host {
	struct evloop *loop;
	pthread_mutex_t *lock; /* the device's: held around every state machine call */
	const char *uds_path;
	struct vsock_conns *conns;
	/* After host events: the device passes what the connections owe to the guest. */
	void (*kick)(void *opaque);
	void *kick_opaque;

	int listen_fd;
	int timer_fd; /* connection deadlines */
	bool timer_armed;
	int cleanup_fd; /* eventfd: a device reset left host sockets for the VMM thread */
};

/* The state machine's ops for Unix sockets; their host argument is a struct vsock_host. */
extern const struct vsock_host_ops vsock_unix_ops;

/* Binds uds_path and registers the listener, the timer and the cleanup eventfd (every
 * field above the blank line set). -errno and a message naming the path on failure. */
int vsock_host_init(struct vsock_host *h, char *err, size_t err_len);
/* After vsock_conns_destroy: closes the listener and removes uds_path. */
void vsock_host_destroy(struct vsock_host *h);

#endif
