/* The data path of one vsock connection, below the connection table (vsock_conn.c): the
 * credit both ways, the buffer of guest data the host has not taken yet, the shutdowns,
 * and the packets a connection owes the guest. It never ends a connection itself: where
 * the connection must end with a reset it returns VSOCK_STREAM_RESET and the caller (the
 * table) kills it, so no code runs on after a connection ended under it. */
#ifndef EMBER_VSOCK_STREAM_H
#define EMBER_VSOCK_STREAM_H

#include "virtio/vsock_conn.h"

#define VSOCK_STREAM_RESET (-1)

static inline void vsock_conn_set_deadline(struct vsock_conn *c)
{
	c->deadline_ns = c->t->ops->now_ns(c->t->host) + VSOCK_CONNECT_MS * 1000000ULL;
	c->t->ops->arm_timer(c->t->host);
}

/* Puts c on the table's rx list if it has something for the guest (and is alive). */
void vsock_stream_want_rx(struct vsock_conn *c);
/* len bytes of guest data (iov) for the host socket: 0 or VSOCK_STREAM_RESET. */
int vsock_stream_from_guest(struct vsock_conn *c, const struct iovec *iov, unsigned nr,
			    uint32_t len);
/* The guest's SHUTDOWN flags were recorded in c->guest_shutdown: passes them on once the
 * buffered data is out. 0 or VSOCK_STREAM_RESET (a full shutdown is answered with RST). */
int vsock_stream_guest_shutdown(struct vsock_conn *c);
/* The host socket is readable or writable (or hung up): notes it and sends buffered guest
 * data. 0 or VSOCK_STREAM_RESET. */
int vsock_stream_host_event(struct vsock_conn *c, bool readable, bool hup);
void vsock_stream_hdr(const struct vsock_conns *t, struct vsock_hdr *h, uint32_t host_port,
		      uint32_t guest_port, enum vsock_op op);
/* c's next packet for the guest into *h (payload as for vsock_conns_next_packet): 1, 0
 * when it has none after all, or VSOCK_STREAM_RESET. */
int vsock_stream_packet(struct vsock_conn *c, struct vsock_hdr *h, struct iovec *payload,
			unsigned *nr, uint64_t room);

#endif
