/* virtio-vsock (virtio 1.x, "Socket Device") with Firecracker's host side: guest streams
 * map to Unix stream sockets.
 *   host-initiated: a host process connects to uds_path, writes "CONNECT <port>\n" and
 *     gets "OK <host_port>\n" once the guest accepted; then the socket is the stream.
 *   guest-initiated: a guest connect to CID 2 port P becomes a connect to "<uds_path>_P".
 * All of it runs on the VMM thread under the device lock, host sockets non-blocking. */
#ifndef EMBER_VSOCK_H
#define EMBER_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"
#include "virtio/virtio.h"

/* Firecracker's vsock object; a VM has at most one vsock device. */
#define VSOCK_CID_MIN 3 /* 0-2 are reserved: hypervisor, local, host */
struct vsock_config {
	char *vsock_id; /* optional (deprecated in Firecracker); NULL when not given */
	uint32_t guest_cid;
	char *uds_path; /* host listener; guest connections to port P go to uds_path_P */
	/* uds_path is bound when the object is configured, as Firecracker binds it at PUT
	 * /vsock; the device listens on a copy of this socket. vsock_config_free closes it and
	 * removes the file. */
	bool bound;
	int listen_fd;
};
void vsock_config_free(struct vsock_config *v); /* what v points to; v itself stays */

#define VSOCK_HOST_CID 2

/* struct virtio_vsock_hdr, little-endian and packed. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
#define VSOCK_HDR_LEN	  sizeof(struct vsock_hdr)
#define VSOCK_TYPE_STREAM 1

enum vsock_op {
	VSOCK_OP_INVALID,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST
};

/* SHUTDOWN flags: the sender will receive / send no more. */
#define VSOCK_SHUTDOWN_RCV  1
#define VSOCK_SHUTDOWN_SEND 2

/* A guest packet with more payload than VSOCK_PKT_MAX is dropped. VSOCK_BUF_ALLOC is the
 * credit ember grants per connection: guest data its host socket has not taken yet; a
 * guest that sends beyond it gets a reset. */
#define VSOCK_PKT_MAX	    (64 * 1024)
#define VSOCK_BUF_ALLOC	    (256 * 1024)
#define VSOCK_CONN_MAX	    1024
#define VSOCK_CONNECT_MS    2000 /* host-initiated: the guest must answer within this */
#define VSOCK_RESET_ACK_MS  1000 /* the longest the receive queue waits on a TRANSPORT_RESET */
#define VSOCK_LOCAL_PORT_LO (1U << 30) /* host ports ember hands out for host connections */

/* The "vsock" metrics group, with Firecracker's names; rx is to the guest. */
enum vsock_metric {
	VSOCK_RX_PACKETS,
	VSOCK_RX_BYTES,
	VSOCK_TX_PACKETS,
	VSOCK_TX_BYTES,
	VSOCK_TX_DROPPED, /* malformed packets from the guest */
	VSOCK_RST_SENT,
	VSOCK_CONNS_ADDED,     /* established, either way */
	VSOCK_CONNS_REMOVED,   /* gone, for any reason */
	VSOCK_CONNS_REFUSED,   /* nobody listening at the other end */
	VSOCK_CREDIT_EXCEEDED, /* the guest sent more than its credit */
	VSOCK_METRIC_COUNT
};
extern struct metric vsock_metrics[VSOCK_METRIC_COUNT];

/* Binds cfg->uds_path (which must not exist) and creates the device in the machine's next
 * virtio slot; -errno and a message naming the path in err on failure. */
int vsock_create(struct machine *machine, const struct vsock_config *cfg, struct virtio_dev **out,
		 char *err);

/* Snapshots (the VM paused). The guest CID and uds_path are the configuration's (the
 * snapshot keeps it, vsock_override may name another uds_path); the device saves the CID
 * again, which vsock_restore requires of the device made from that configuration, and the
 * counter it hands host ports out from. Connections are not saved: their host ends belong
 * to this process. A restored running device owes the guest VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
 * on its event queue, so that the driver drops the connections it had and reads the CID
 * again; its listening sockets stay. */
struct snap_writer;
struct snap_reader;
int vsock_save(struct virtio_dev *dev, struct snap_writer *w, char *err);
int vsock_restore(struct virtio_dev *dev, struct snap_reader *r, char *err);

#endif
