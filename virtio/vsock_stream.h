/* The data path of one connection, below the table (vsock_conn.c). It never ends a
 * connection itself: it returns VSOCK_STREAM_RESET and the table kills it, so that no code
 * runs on after a connection ended under it. */
#ifndef EMBER_VSOCK_STREAM_H
#define EMBER_VSOCK_STREAM_H

#include "virtio/vsock_conn.h"

#define VSOCK_STREAM_RESET (-1)

static inline void vsock_conn_set_deadline(struct vsock_conn *c)
{
	c->deadline_ns = c->t->ops->now_ns(c->t->host) + VSOCK_CONNECT_MS * 1000000ULL;
	c->t->ops->arm_timer(c->t->host);
}

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c); /* bytes the guest can take */
void vsock_stream_want_rx(struct vsock_conn *c); /* queues c if it owes the guest a packet */
/* These three return 0 or VSOCK_STREAM_RESET. len bytes of guest data for the host: */
int vsock_stream_from_guest(struct vsock_conn *c, const struct iovec *iov, unsigned nr,
			    uint32_t len);
/* Passes on c->guest_shutdown once the buffered data is out; a full shutdown resets. */
int vsock_stream_guest_shutdown(struct vsock_conn *c);
int vsock_stream_host_event(struct vsock_conn *c, bool readable, bool hup);
void vsock_stream_hdr(const struct vsock_conns *t, struct vsock_hdr *h, uint32_t host_port,
		      uint32_t guest_port, enum vsock_op op);
/* c's next packet for the guest, as vsock_conns_next_packet: 1, 0 when it has none after
 * all, or VSOCK_STREAM_RESET. */
int vsock_stream_packet(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *payload,
			unsigned *nr, uint64_t room);

#endif
