/* virtio-vsock connections: the state machine between the guest's packets (vsock.c) and the
 * host's Unix sockets (vsock_host.c), with the connection table here (vsock_conn.c) and the
 * data path below it (vsock_stream.c). It reaches the host side only through struct
 * vsock_host_ops, so a test drives it with a fake host.
 *
 * An ended connection is unlinked at once and marked CONN_DEAD, but its host end is closed
 * and its memory freed only by vsock_conns_reap, which every VMM-thread entry point calls
 * last: code that just ended a connection may still read its state. */
#ifndef EMBER_VSOCK_CONN_H
#define EMBER_VSOCK_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/log.h"
#include "virtio/vsock.h"

#define VSOCK_HASH_BUCKETS 256
#define VSOCK_RST_QUEUE	   256 /* resets owed to the guest for connections that are gone */

enum vsock_conn_state {
	CONN_CONNECT_LINE, /* host-initiated: waiting for "CONNECT <port>\n" */
	CONN_REQUESTED,	   /* host-initiated: REQUEST owed or sent, waiting for RESPONSE */
	CONN_ESTABLISHED,
	CONN_CLOSING, /* the host socket is gone; waiting for the guest's RST */
	CONN_DEAD,
};

/* Packets a connection owes the guest, in the order they go. */
#define PENDING_REQUEST	      (1U << 0)
#define PENDING_RESPONSE      (1U << 1)
#define PENDING_CREDIT_UPDATE (1U << 2)
#define PENDING_SHUTDOWN      (1U << 3) /* after any data */

struct vsock_conn {
	struct vsock_conns *t;
	int fd; /* the host side's handle (its socket); -1 when it holds nothing open */
	enum vsock_conn_state state;
	uint32_t host_port, guest_port;
	uint64_t deadline_ns; /* CONNECT_LINE, REQUESTED, CLOSING: when ember gives up; 0 none */

	unsigned pending;	    /* PENDING_* */
	uint32_t shutdown_to_guest; /* flags of the owed SHUTDOWN */
	uint32_t guest_shutdown;    /* SHUTDOWN flags the guest sent */
	bool host_readable;	    /* no EAGAIN seen since the last readable edge */
	bool host_hup;		    /* the host closed its socket altogether */
	bool host_eof;		    /* read returned 0: SHUTDOWN(SEND) owed or sent */
	bool credit_requested;	    /* a CREDIT_REQUEST went out since the last update */
	bool added;		    /* counted in conns_added, so conns_removed counts its end */
	bool hashed, on_rx_list;

	/* Host to guest: the guest's receive buffer (its credit) and what ember sent. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, rx_cnt;
	/* Guest to host: bytes passed to the host socket, and what the guest was last told. */
	uint32_t fwd_cnt, fwd_cnt_told;
	/* Bytes from the guest the host socket did not take yet: a ring of VSOCK_BUF_ALLOC. */
	uint8_t *tx_buf;
	uint32_t tx_head, tx_len;

	struct vsock_conn *rx_next, *hash_next;
	struct vsock_conn *next, **pprev; /* the live list; once dead, next links the dead list */
};

/* What the state machine asks of the host side, on the VMM thread with the device lock
 * held (but wake). send and recv never block: bytes, 0 at end of stream, or -errno (-EAGAIN
 * when the socket is full or empty). */
struct vsock_host_ops {
	ssize_t (*send)(void *host, struct vsock_conn *c, const struct iovec *iov, unsigned nr);
	ssize_t (*recv)(void *host, struct vsock_conn *c, const struct iovec *iov, unsigned nr);
	void (*shutdown_write)(void *host, struct vsock_conn *c); /* the guest sends no more */
	/* A guest REQUEST to c->host_port: opens and watches c->fd (a c->fd set on failure is
	 * closed with c); 0, -ECONNREFUSED when nobody listens there, or another -errno. */
	int (*connect)(void *host, struct vsock_conn *c);
	void (*close)(void *host, struct vsock_conn *c); /* stops watching and closes c->fd */
	uint64_t (*now_ns)(void *host);
	/* A deadline was set: call vsock_conns_expire now and then until it returns false. */
	void (*arm_timer)(void *host);
	/* From a vCPU thread (device reset): call vsock_conns_reap on the VMM thread soon. */
	void (*wake)(void *host);
};

struct vsock_conns {
	const struct vsock_host_ops *ops;
	void *host;
	uint64_t guest_cid;
	const char *const *label; /* the device's, for warnings */
	unsigned *warnings;	  /* the device's count of logged warnings */

	struct vsock_conn *conns, *dead; /* live; ended, waiting for vsock_conns_reap */
	unsigned nr_conns;
	struct vsock_conn *hash[VSOCK_HASH_BUCKETS];
	struct vsock_conn *rx_head, **rx_tail; /* connections with something for the guest */
	uint32_t next_local_port;
	struct {
		uint32_t host_port, guest_port;
	} rst[VSOCK_RST_QUEUE];
	unsigned rst_head, rst_len;
};

void vsock_conns_init(struct vsock_conns *t, const struct vsock_host_ops *ops, void *host,
		      uint64_t guest_cid, const char *const *label, unsigned *warnings);
void vsock_conns_destroy(struct vsock_conns *t); /* ends and frees every connection */
void vsock_conns_reap(struct vsock_conns *t);	 /* frees the ended ones; VMM thread */
void vsock_conns_reset(struct vsock_conns *t);	 /* all end, no RST owed; vCPU thread */
/* Ends connections past their deadline; whether some deadline is still ahead. */
bool vsock_conns_expire(struct vsock_conns *t);
#define vsock_conns_warn(t, fmt, ...)                                                              \
	log_warn_limited((t)->warnings, 8, "virtio-vsock %s: " fmt, *(t)->label, ##__VA_ARGS__)

/* A packet from the guest with the right CIDs; payload holds its h->len bytes. */
void vsock_conns_from_guest(struct vsock_conns *t, const struct vsock_hdr *h,
			    const struct iovec *payload, unsigned nr);
static inline bool vsock_conns_have_rx(const struct vsock_conns *t)
{
	return t->rst_len || t->rx_head;
}
/* The next packet owed to the guest: fills *h and reads up to room bytes of payload (h->len)
 * into payload, whose array it may trim. False when nothing is owed. */
bool vsock_conns_next_packet(struct vsock_conns *t, struct vsock_hdr *h, struct iovec *payload,
			     unsigned *nr, uint64_t room);

struct vsock_conn *vsock_conn_find(struct vsock_conns *t, uint32_t host_port, uint32_t guest_port);
/* A host process connected to the listener (fd) and now owes its CONNECT line. NULL at the
 * connection limit (the caller closes fd). */
struct vsock_conn *vsock_conn_host_accepted(struct vsock_conns *t, int fd);
void vsock_conn_host_request(struct vsock_conn *c, uint32_t guest_port);   /* CONNECT <port> */
void vsock_conn_host_event(struct vsock_conn *c, bool readable, bool hup); /* or writable */
void vsock_conn_kill(struct vsock_conn *c, bool rst); /* rst: the guest is owed one */

/* Below: the data path of a connection (vsock_stream.c), for the table only. It never ends
 * a connection itself: it returns VSOCK_STREAM_RESET and the table kills it, so that no
 * code runs on after a connection ended under it. */
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
