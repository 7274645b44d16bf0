/* The test guest's polling virtio-vsock driver (vsock.c), shared with the hostile
 * scenarios (vsock_hostile.c): the wire format, the rings, and the calls both use. */
#ifndef EMBER_GUEST_VSOCK_H
#define EMBER_GUEST_VSOCK_H

#include "guest.h"

#define VSOCK_ID 19
#define HOST_CID 2
#define RXQ	 0
#define TXQ	 1
#define EVQ	 2
#define NR_VQS	 3
#define VQ_SIZE	 16
#define NR_EVENT 4
#define RX_BUF	 4096
#define SPINS	 200000000UL

#define ECHO_PORT 5000
#define SINK_PORT 5001
#define DEAD_PORT 5002

#define TYPE_STREAM	1
#define HOST_BUF_ALLOC	262144 /* the credit ember grants every connection */
#define PKT_MAX		65536  /* the largest payload ember accepts */
#define GUEST_BUF_ALLOC 65536

enum {
	OP_INVALID,
	OP_REQUEST,
	OP_RESPONSE,
	OP_RST,
	OP_SHUTDOWN,
	OP_RW,
	OP_CREDIT_UPDATE,
	OP_CREDIT_REQUEST,
};

/* Not an op: what came back instead of a packet. */
#define REPLY_NONE    -1
#define REPLY_RESET   -2 /* the device set DEVICE_NEEDS_RESET */
#define REPLY_TIMEOUT -3

/* struct virtio_vsock_hdr: little-endian, packed. */
struct hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));
#define HDR_LEN 44
_Static_assert(sizeof(struct hdr) == HDR_LEN, "virtio_vsock_hdr is 44 bytes");

struct vq {
	struct desc desc[VQ_SIZE];
	struct {
		uint16_t flags, idx, ring[VQ_SIZE], used_event;
	} avail;
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[VQ_SIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(4)));
};

extern volatile struct vq vqs[NR_VQS];
extern volatile uint32_t events[NR_EVENT];
extern volatile struct hdr txh;
extern uint8_t tx_data[PKT_MAX + 64];
extern uint8_t rx_data[RX_BUF];
extern uint64_t cid;
extern struct hdr last;
extern bool credit_seen;
extern uint32_t credit_fwd;

uint32_t rd(unsigned off);
void wr(unsigned off, uint32_t v);
void line(const char *what);
void kv_op(const char *key, int op);
bool vs_init(void);
int wait_used(unsigned q, uint32_t *id, uint32_t *len);
void set_tx(unsigned i, const volatile void *addr, uint32_t len, uint16_t flags, uint16_t next);
void set_hdr(uint32_t sport, uint32_t dport, uint16_t op, uint32_t len);
int tx_chain(uint16_t step);
int send_pkt(uint32_t sport, uint32_t dport, uint16_t op, const void *data, uint32_t len);
int reply_to(uint32_t sport, uint32_t dport, bool skip_credit, unsigned *more);
int next_for(uint32_t sport, uint32_t dport);
int connect(uint32_t sport, uint32_t dport);
void echo_conn(const char *name, uint32_t sport);
/* dev-count (snap.c). With vs_watch_events, a receive wait gives up (as a timeout) when
 * the event queue has an event. */
extern bool vs_watch_events;
bool vs_start(const char *cmdline);
int vs_event(void);

/* Scenarios in vsock_hostile.c. */
void vsock_hostile(void);
void vsock_credit(void);
void vsock_avail_ahead(void);
void vsock_oob_addr(void);
void vsock_loop(void);
void vsock_rx_oob(void);

#endif
