/* What virtio/vsock.c (the virtio side: queues and packets) and virtio/vsock_host.c (the
 * host side: the Unix listener and one Unix socket per connection) share. */
#ifndef EMBER_VSOCK_INTERNAL_H
#define EMBER_VSOCK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/vsock.h"

#define VSOCK_HASH_BUCKETS 256
#define VSOCK_RST_QUEUE	   256 /* resets owed to the guest for connections that are gone */

enum vsock_conn_state {
	CONN_CONNECT_LINE, /* host-initiated: waiting for "CONNECT <port>\n" */
	CONN_REQUESTED,	   /* host-initiated: REQUEST owed or sent, waiting for RESPONSE */
	CONN_ESTABLISHED,
	CONN_CLOSING, /* the host socket is gone; waiting for the guest's RST */
};

/* Control packets a connection owes the guest, sent before any data. */
#define PENDING_REQUEST	       (1U << 0)
#define PENDING_RESPONSE       (1U << 1)
#define PENDING_CREDIT_UPDATE  (1U << 2)
#define PENDING_CREDIT_REQUEST (1U << 3)
#define PENDING_SHUTDOWN       (1U << 4)

struct vsock_conn {
	struct vsock_dev *dev;
	int fd; /* the host's Unix socket; -1 once closed */
	enum vsock_conn_state state;
	uint32_t host_port, guest_port;
	uint64_t deadline_ns; /* REQUESTED and CLOSING: when ember gives up; 0 none */

	unsigned pending;	    /* PENDING_* */
	uint32_t shutdown_to_guest; /* flags of the owed SHUTDOWN */
	bool host_readable;	    /* no EAGAIN seen since the last EPOLLIN edge */
	bool host_hup;		    /* the host closed its socket altogether */
	bool host_eof;		    /* read returned 0: SHUTDOWN(SEND) owed or sent */
	bool dropped;		    /* by a device reset; waits in the graveyard */
	bool credit_requested;	    /* a CREDIT_REQUEST went out since the last update */
	uint32_t guest_shutdown;    /* SHUTDOWN flags the guest sent */

	/* Host to guest: the guest's receive buffer (its credit) and what ember sent. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, rx_cnt;
	/* Guest to host: bytes passed to the host socket, and what the guest was last told. */
	uint32_t fwd_cnt, fwd_cnt_told;
	/* Bytes from the guest the host socket did not take yet: a ring of VSOCK_BUF_ALLOC. */
	uint8_t *tx_buf;
	uint32_t tx_head, tx_len;

	bool on_rx_list;
	struct vsock_conn *rx_next;
	struct vsock_conn *hash_next;
	struct vsock_conn *prev, *next; /* every connection of the device */
};

struct vsock_dev {
	struct virtio_dev vdev; /* first: the transport hands us &vdev */
	uint64_t guest_cid;
	char *uds_path;
	int listen_fd;
	int timer_fd; /* connection deadlines */
	bool timer_armed;
	int cleanup_fd; /* eventfd: a reset left host sockets for the VMM thread to close */
	bool was_active;
	bool event_owed; /* TRANSPORT_RESET for the event queue */

	struct vsock_conn *conns; /* every live connection */
	unsigned nr_conns;
	struct vsock_conn *graveyard; /* unlinked by a reset, closed by the VMM thread */
	struct vsock_conn *hash[VSOCK_HASH_BUCKETS];
	struct vsock_conn *rx_head, *rx_tail; /* connections with something for the guest */
	uint32_t next_local_port;

	struct {
		uint32_t host_port, guest_port;
	} rst[VSOCK_RST_QUEUE];
	unsigned rst_head, rst_len;

	struct virtq_chain chain;
	struct iovec iov[VIRTQ_MAX_SIZE];	  /* a receive chain's buffers */
	struct iovec payload_iov[VIRTQ_MAX_SIZE]; /* the same past the header */
};

/* Whether ember should read c's host socket for the guest (credit permitting). */
static inline bool vsock_conn_reads_host(const struct vsock_conn *c)
{
	return c->state == CONN_ESTABLISHED && c->host_readable && !c->host_eof &&
	       !(c->guest_shutdown & VSOCK_SHUTDOWN_RCV);
}

/* vsock.c */
void vsock_process_rx(struct vsock_dev *v);
void vsock_warn(struct vsock_dev *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* vsock_host.c: with the device lock held, on the VMM thread unless said otherwise. */
int vsock_host_init(struct vsock_dev *v, char *err, size_t err_len);
void vsock_host_destroy(struct vsock_dev *v);
struct vsock_conn *vsock_conn_find(struct vsock_dev *v, uint32_t host_port, uint32_t guest_port);
/* A guest REQUEST to the host's port: connects to uds_path_<port>; NULL when nobody
 * listens there (or too many connections), and the guest is owed a reset. */
struct vsock_conn *vsock_conn_connect(struct vsock_dev *v, uint32_t host_port, uint32_t guest_port);
/* Closes the host socket and frees c; with rst, the guest is owed a reset. */
void vsock_conn_kill(struct vsock_conn *c, bool rst);
void vsock_conn_established(struct vsock_conn *c);
/* Guest data for the host socket (iov: the payload). False: the connection was reset. */
bool vsock_conn_write(struct vsock_conn *c, const struct iovec *iov, unsigned nr, uint32_t len);
/* The host closed its socket altogether: ember closes its end and gives the guest a while
 * to answer the SHUTDOWN it is owed with RST. */
void vsock_conn_host_gone(struct vsock_conn *c);
/* The guest's SHUTDOWN flags were recorded: acts once the buffered data is out. */
bool vsock_conn_guest_shutdown(struct vsock_conn *c); /* false: c is gone */
/* Queues c for vsock_process_rx if it has something for the guest. */
void vsock_conn_want_rx(struct vsock_conn *c);
/* The guest's credit: bytes ember may still send it on c. */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c);
void vsock_owe_rst(struct vsock_dev *v, uint32_t host_port, uint32_t guest_port);
/* Device reset (vCPU thread): every connection is dropped, host sockets closed later. */
void vsock_host_reset(struct vsock_dev *v);

#endif
