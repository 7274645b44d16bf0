/* What the device (vsock.c) and its Unix-socket host side (vsock_host.c) share. The host
 * side reaches the device only through kick. */
#ifndef EMBER_VSOCK_INTERNAL_H
#define EMBER_VSOCK_INTERNAL_H

#include <pthread.h>

#include "core/evloop.h"
#include "virtio/vsock_conn.h"

struct vsock_host {
	struct evloop *loop;
	pthread_mutex_t *lock; /* the device's: held around every state machine call */
	const char *uds_path;
	struct vsock_conns *conns;
	void (*kick)(void *opaque); /* after host events: packets owed to the guest go out */
	void *kick_opaque;

	int bound_fd;	/* a socket already bound to uds_path (taken over), or -1 */
	bool owns_path; /* it bound uds_path itself, and removes the file */
	int listen_fd, timer_fd, cleanup_fd; /* cleanup_fd: see vsock_host_ops.wake */
	bool timer_armed;
};

extern const struct vsock_host_ops vsock_unix_ops; /* their host is a struct vsock_host */

/* Binds uds_path and watches the listener, the timer and the cleanup eventfd (the fields
 * above the blank line are set). -errno and a message naming the path on failure; then, as
 * after vsock_conns_destroy, vsock_host_destroy releases what it holds. */
int vsock_host_init(struct vsock_host *h, char *err);
/* Binds a non-blocking Unix stream socket to path and listens on it: the fd, or -errno with
 * a message naming the path. */
int vsock_host_bind(const char *path, char *err);
void vsock_host_destroy(struct vsock_host *h);

#endif
