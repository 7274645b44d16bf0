/* A polling virtio-vsock driver for the test guest (device id 19, all three queues: rx 0
 * holds writable buffers for packets from ember, tx 1 carries the guest's packets, event 2
 * holds 4-byte buffers), and the hostile packets the VMM must survive. Each command-line
 * word runs one scenario and prints "vsock: what key=value ..." lines that
 * tests/vsock_direct.bats matches. Host ports: 5000 is an echo listener ("pong " + each
 * line), 5001 a listener that never reads, 5002 has nobody listening.
 *   vsock-echo         guest_cid from config space; a connection with data both ways
 *   vsock-hostile      malformed packets, each followed by a probe that always draws an RST
 *                      (CREDIT_REQUEST for a connection that does not exist), so that
 *                      "reply=none" means no answer at all; then hostile packets on a live
 *                      connection, which must still carry exactly the valid bytes
 *   vsock-credit       RW data beyond the credit ember grants, to the listener that never
 *                      reads: RST, and a new connection works
 *   vsock-avail-ahead, vsock-oob-addr, vsock-loop, vsock-rx-oob: broken rings; the device
 *                      needs a reset, after it a connection works again
 * The last line, "vsock: totals ...", counts what the guest received, for the metrics. */
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

static volatile struct vq vqs[NR_VQS] __attribute__((aligned(4096)));
static uint16_t avail_idx[NR_VQS], last_used[NR_VQS];
static uint8_t rx_bufs[VQ_SIZE][RX_BUF] __attribute__((aligned(16)));
static volatile uint32_t events[NR_EVENT];
static volatile struct hdr txh;
static uint8_t tx_data[PKT_MAX + 64] __attribute__((aligned(16)));
static uint8_t rx_data[RX_BUF];

static uintptr_t base;
static uint64_t cid;
static struct hdr last; /* the last packet reply_to or next_for returned */
static uint32_t next_probe = 30000;
static uint64_t nr_rx, nr_rst; /* every packet the guest received, and the RSTs among them */

static uint32_t rd(unsigned off)
{
	return *(volatile uint32_t *)(base + off);
}

static void wr(unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(base + off) = v;
}

static void line(const char *what)
{
	puts_uart("vsock: ");
	puts_uart(what);
}

static void put_op(int op)
{
	static const char *const names[] = { "INVALID",	      "REQUEST",       "RESPONSE",
					     "RST",	      "SHUTDOWN",      "RW",
					     "CREDIT_UPDATE", "CREDIT_REQUEST" };
	if (op == REPLY_NONE)
		puts_uart("none");
	else if (op == REPLY_RESET)
		puts_uart("needs-reset");
	else if (op == REPLY_TIMEOUT)
		puts_uart("timeout");
	else if (op >= 0 && op < (int)(sizeof(names) / sizeof(names[0])))
		puts_uart(names[op]);
	else {
		puts_uart("op");
		put_dec((uint64_t)op);
	}
}

static void kv_op(const char *key, int op)
{
	puts_uart(" ");
	puts_uart(key);
	puts_uart("=");
	put_op(op);
}

/* The device: the first virtio_mmio.device=4K@0x... on the command line (ember announces
 * every device there) whose DeviceID is 19. */
static uintptr_t find_device(const char *cmdline)
{
	static const char key[] = "virtio_mmio.device=4K@0x";
	for (const char *p = cmdline; *p; p++) {
		const char *k = key, *q = p;
		while (*k && *q == *k) {
			k++;
			q++;
		}
		if (*k)
			continue;
		uintptr_t a = 0;
		for (;; q++) {
			if (*q >= '0' && *q <= '9')
				a = a * 16 + (uintptr_t)(*q - '0');
			else if (*q >= 'a' && *q <= 'f')
				a = a * 16 + (uintptr_t)(*q - 'a' + 10);
			else
				break;
		}
		if (a < MMIO_BASE || a >= MMIO_BASE + 32 * MMIO_SIZE)
			continue;
		base = a;
		if (rd(R_MAGIC) == 0x74726976 && rd(R_VERSION) == 2 && rd(R_DEVICE_ID) == VSOCK_ID)
			return a;
	}
	base = 0;
	return 0;
}

/* Adds head to queue q's avail ring without notifying; step > 1 runs the index ahead. */
static void post(unsigned q, uint16_t head, uint16_t step)
{
	vqs[q].avail.ring[avail_idx[q] % VQ_SIZE] = head;
	mb(); /* the descriptors and ring entry before the index */
	avail_idx[q] = (uint16_t)(avail_idx[q] + step);
	vqs[q].avail.idx = avail_idx[q];
}

static void notify(unsigned q)
{
	mb(); /* the avail index before the notification */
	wr(R_QUEUE_NOTIFY, q);
}

/* The driver side of initialisation (virtio 1.x 3.1.1) with every queue, VERSION_1 and
 * EVENT_IDX, and the receive and event buffers posted. False, with a line, on failure. */
static bool vs_init(void)
{
	wr(R_STATUS, 0);
	wr(R_STATUS, S_ACK);
	wr(R_STATUS, S_ACK | S_DRIVER);
	wr(R_DEV_FEATURES_SEL, 0);
	uint64_t offered = rd(R_DEV_FEATURES);
	wr(R_DEV_FEATURES_SEL, 1);
	offered |= (uint64_t)rd(R_DEV_FEATURES) << 32;
	uint64_t features = offered & (F_VERSION_1 | F_EVENT_IDX);
	wr(R_DRV_FEATURES_SEL, 0);
	wr(R_DRV_FEATURES, (uint32_t)features);
	wr(R_DRV_FEATURES_SEL, 1);
	wr(R_DRV_FEATURES, (uint32_t)(features >> 32));
	wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd(R_STATUS) & S_FEATURES_OK)) {
		line("FEATURES_OK refused\n");
		return false;
	}
	memset((void *)vqs, 0, sizeof(vqs));
	for (unsigned q = 0; q < NR_VQS; q++) {
		avail_idx[q] = last_used[q] = 0;
		wr(R_QUEUE_SEL, q);
		if (rd(R_QUEUE_NUM_MAX) < VQ_SIZE) {
			line("queue too small\n");
			return false;
		}
		wr(R_QUEUE_NUM, VQ_SIZE);
		wr(R_DESC_LO, (uint32_t)(uintptr_t)vqs[q].desc);
		wr(R_DESC_HI, 0);
		wr(R_AVAIL_LO, (uint32_t)(uintptr_t)&vqs[q].avail);
		wr(R_AVAIL_HI, 0);
		wr(R_USED_LO, (uint32_t)(uintptr_t)&vqs[q].used);
		wr(R_USED_HI, 0);
		wr(R_QUEUE_READY, 1);
	}
	wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	for (uint16_t i = 0; i < VQ_SIZE; i++) {
		vqs[RXQ].desc[i].addr = (uint64_t)(uintptr_t)rx_bufs[i];
		vqs[RXQ].desc[i].len = RX_BUF;
		vqs[RXQ].desc[i].flags = D_WRITE;
		post(RXQ, i, 1);
	}
	for (uint16_t i = 0; i < NR_EVENT; i++) {
		events[i] = 0xffffffff; /* not an event id: what the device writes shows */
		vqs[EVQ].desc[i].addr = (uint64_t)(uintptr_t)&events[i];
		vqs[EVQ].desc[i].len = sizeof(events[i]);
		vqs[EVQ].desc[i].flags = D_WRITE;
		post(EVQ, i, 1);
	}
	notify(RXQ);
	notify(EVQ);
	cid = rd(R_CONFIG) | (uint64_t)rd(R_CONFIG + 4) << 32;
	return true;
}

/* The next used entry of queue q: 1 (and its id and len), 0 when the device set
 * DEVICE_NEEDS_RESET instead, -1 on timeout. */
static int wait_used(unsigned q, uint32_t *id, uint32_t *len)
{
	for (unsigned long i = 0; i < SPINS; i++) {
		if (vqs[q].used.idx != last_used[q]) {
			mb(); /* the used index before the entry it covers */
			*id = vqs[q].used.ring[last_used[q] % VQ_SIZE].id;
			*len = vqs[q].used.ring[last_used[q] % VQ_SIZE].len;
			last_used[q]++;
			vqs[q].avail.used_event = last_used[q];
			return 1;
		}
		if ((i & 1023) == 0 && (rd(R_STATUS) & S_NEEDS_RESET))
			return 0;
		__asm__ volatile("pause");
	}
	return -1;
}

static void set_tx(unsigned i, const volatile void *addr, uint32_t len, uint16_t flags,
		   uint16_t next)
{
	vqs[TXQ].desc[i].addr = (uint64_t)(uintptr_t)addr;
	vqs[TXQ].desc[i].len = len;
	vqs[TXQ].desc[i].flags = flags;
	vqs[TXQ].desc[i].next = next;
}

/* A valid header in txh; the hostile cases then spoil one field. */
static void set_hdr(uint32_t sport, uint32_t dport, uint16_t op, uint32_t len)
{
	txh.src_cid = cid;
	txh.dst_cid = HOST_CID;
	txh.src_port = sport;
	txh.dst_port = dport;
	txh.len = len;
	txh.type = TYPE_STREAM;
	txh.op = op;
	txh.flags = 0;
	txh.buf_alloc = GUEST_BUF_ALLOC;
	txh.fwd_cnt = 0;
}

/* Publishes the chain at tx descriptor 0 and waits for the device to give it back:
 * 1, 0 (needs reset), -1 (timeout). step > 1 runs the avail index ahead (hostile). */
static int tx_chain(uint16_t step)
{
	post(TXQ, 0, step);
	notify(TXQ);
	uint32_t id, len;
	return wait_used(TXQ, &id, &len);
}

/* txh, then len bytes of data as a second descriptor. */
static int send_pkt(uint32_t sport, uint32_t dport, uint16_t op, const void *data, uint32_t len)
{
	set_hdr(sport, dport, op, len);
	if (len) {
		set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
		set_tx(1, data, len, 0, 0);
	} else {
		set_tx(0, &txh, HDR_LEN, 0, 0);
	}
	return tx_chain(1);
}

/* The next packet from the device into last (payload in rx_data), its buffer given back:
 * 1, 0 (needs reset), -1 (timeout). Every packet ember sends must come from CID 2 to
 * guest_cid as a stream, with its credit, and a len that matches what it wrote. */
static int recv_pkt(void)
{
	uint32_t id, ulen;
	int rc = wait_used(RXQ, &id, &ulen);
	if (rc != 1)
		return rc;
	if (id >= VQ_SIZE || ulen < HDR_LEN || ulen > RX_BUF) {
		line("bad receive used entry");
		kv("id", id);
		kv("len", ulen);
		puts_uart("\n");
		return -1;
	}
	memcpy(&last, rx_bufs[id], HDR_LEN);
	memcpy(rx_data, rx_bufs[id] + HDR_LEN, ulen - HDR_LEN);
	post(RXQ, (uint16_t)id, 1);
	notify(RXQ);
	nr_rx++;
	nr_rst += last.op == OP_RST;
	if (last.src_cid != HOST_CID || last.dst_cid != cid || last.type != TYPE_STREAM ||
	    last.buf_alloc != HOST_BUF_ALLOC || last.len != ulen - HDR_LEN) {
		line("bad reply header");
		kv_op("op", last.op);
		kv("src_cid", last.src_cid);
		kv("dst_cid", last.dst_cid);
		kv("type", last.type);
		kv("buf_alloc", last.buf_alloc);
		kv("len", last.len);
		kv("used_len", ulen);
		puts_uart("\n");
	}
	return 1;
}

static void stray(void)
{
	line("unexpected packet");
	kv_op("op", last.op);
	kv("src_port", last.src_port);
	kv("dst_port", last.dst_port);
	kv("len", last.len);
	puts_uart("\n");
}

/* What the device answered to the packet just sent from sport to dport: sends a probe (a
 * CREDIT_REQUEST for a connection that does not exist: always an RST) and reads packets
 * until the probe's answer. Returns the op of the first packet to sport before it (into
 * last), REPLY_NONE, REPLY_RESET or REPLY_TIMEOUT. skip_credit passes over CREDIT_UPDATEs
 * to sport (ember may send them whenever it took data), keeping the last one's fwd_cnt in
 * credit_fwd. Further packets to sport are counted in *more, or are unexpected without it. */
static bool credit_seen;
static uint32_t credit_fwd;

static int reply_to(uint32_t sport, uint32_t dport, bool skip_credit, unsigned *more)
{
	uint32_t probe = next_probe++;
	int rc = send_pkt(probe, DEAD_PORT, OP_CREDIT_REQUEST, 0, 0);
	if (rc != 1)
		return rc == 0 ? REPLY_RESET : REPLY_TIMEOUT;
	int got = REPLY_NONE;
	struct hdr first = last;
	for (;;) {
		rc = recv_pkt();
		if (rc != 1)
			return rc == 0 ? REPLY_RESET : REPLY_TIMEOUT;
		if (last.dst_port == probe && last.src_port == DEAD_PORT && last.op == OP_RST)
			break;
		bool ours = last.dst_port == sport && last.src_port == dport;
		if (ours && skip_credit && last.op == OP_CREDIT_UPDATE) {
			credit_seen = true;
			credit_fwd = last.fwd_cnt;
		} else if (ours && got == REPLY_NONE) {
			got = last.op;
			first = last;
		} else if (ours && more) {
			(*more)++;
		} else {
			stray();
		}
	}
	if (got != REPLY_NONE)
		last = first;
	return got;
}

/* Reads packets until one to sport from dport that is not a CREDIT_UPDATE: its op (the
 * packet in last, payload in rx_data), or REPLY_RESET / REPLY_TIMEOUT. */
static int next_for(uint32_t sport, uint32_t dport)
{
	for (;;) {
		int rc = recv_pkt();
		if (rc != 1)
			return rc == 0 ? REPLY_RESET : REPLY_TIMEOUT;
		if (last.dst_port == sport && last.src_port == dport && last.op != OP_CREDIT_UPDATE)
			return last.op;
		if (last.dst_port != sport || last.src_port != dport)
			stray();
	}
}

static int connect(uint32_t sport, uint32_t dport)
{
	int rc = send_pkt(sport, dport, OP_REQUEST, 0, 0);
	if (rc != 1)
		return rc == 0 ? REPLY_RESET : REPLY_TIMEOUT;
	return next_for(sport, dport);
}

static uint32_t str_len(const char *s)
{
	uint32_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* Sends "msg\n" on the connection (sport, dport) and reads the echo listener's
 * "pong msg\n" into got (NUL-terminated, without the newline). The op that ended the wait. */
static int echo_once(uint32_t sport, uint32_t dport, const char *msg, char *got, uint32_t max)
{
	uint32_t n = str_len(msg);
	memcpy(tx_data, msg, n);
	tx_data[n] = '\n';
	int rc = send_pkt(sport, dport, OP_RW, tx_data, n + 1);
	if (rc != 1)
		return rc == 0 ? REPLY_RESET : REPLY_TIMEOUT;
	uint32_t have = 0;
	for (;;) {
		int op = next_for(sport, dport);
		if (op != OP_RW)
			return op;
		for (uint32_t i = 0; i < last.len; i++) {
			if (rx_data[i] == '\n') {
				got[have] = '\0';
				return OP_RW;
			}
			if (have + 1 < max)
				got[have++] = (char)rx_data[i];
		}
	}
}

/* A valid connection to the echo listener: REQUEST, RESPONSE, a line each way, SHUTDOWN
 * (both directions), RST. One line: "vsock: NAME connect=RESPONSE buf_alloc=262144
 * got="pong NAME" close=RST". */
static void echo_conn(const char *name, uint32_t sport)
{
	char got[64] = "";
	int op = connect(sport, ECHO_PORT);
	uint32_t buf_alloc = last.buf_alloc;
	int echo = REPLY_NONE, close = REPLY_NONE;
	if (op == OP_RESPONSE)
		echo = echo_once(sport, ECHO_PORT, name, got, sizeof(got));
	if (echo == OP_RW) {
		set_hdr(sport, ECHO_PORT, OP_SHUTDOWN, 0);
		txh.flags = 3; /* will neither receive nor send */
		set_tx(0, &txh, HDR_LEN, 0, 0);
		int rc = tx_chain(1);
		close = rc == 1	  ? next_for(sport, ECHO_PORT)
			: rc == 0 ? REPLY_RESET
				  : REPLY_TIMEOUT;
	}
	line(name);
	kv_op("connect", op);
	kv("buf_alloc", buf_alloc);
	kv_op("echo", echo);
	puts_uart(" got=\"");
	puts_uart(got);
	puts_uart("\"");
	kv_op("close", close);
	puts_uart("\n");
}

static void vsock_echo(void)
{
	line("config");
	kv("guest_cid", cid);
	puts_uart("\n");
	echo_conn("echo", 4000);
}

/* Malformed packets, in the order they run. The first group must be dropped, the second
 * answered with RST, the last neither. */
enum bad_case {
	BAD_WRITABLE,	  /* a device-writable payload buffer */
	BAD_HDR_WRITABLE, /* the header in a device-writable buffer */
	BAD_SHORT,	  /* 40 bytes */
	BAD_SHORT_SPLIT,  /* 40 bytes over two buffers */
	BAD_LEN_BEYOND,	  /* len 100, 50 bytes follow */
	BAD_LEN_OVERFLOW, /* len 0xffffffff */
	BAD_LEN_OVER_MAX, /* len 65537, all present */
	BAD_SRC_CID,	  /* guest_cid + 1 */
	BAD_SRC_CID_HIGH, /* guest_cid + 2^32 */
	BAD_DST_CID_SELF, /* to guest_cid */
	BAD_DST_CID_HIGH, /* 2 + 2^32 */
	BAD_DST_CID_ANY,  /* 0xffffffff */
	OK_SPLIT_HEADER,  /* valid: the header over two buffers; RW, no connection */
	OK_LEN_MAX,	  /* valid: len 65536; RW, no connection */
	BAD_TYPE,	  /* SEQPACKET REQUEST to the echo listener */
	BAD_TYPE_ZERO,	  /* type 0 */
	BAD_OP_ZERO,	  /* op 0 */
	BAD_OP_8,	  /* op 8 */
	BAD_OP_FFFF,	  /* op 0xffff */
	/* the ops that need a connection, without one */
	NOCONN_RW,
	NOCONN_SHUTDOWN,
	NOCONN_CREDIT_UPDATE,
	NOCONN_CREDIT_REQUEST,
	NOCONN_RESPONSE,
	REFUSED,      /* REQUEST to a port nobody listens on */
	BAD_TYPE_RST, /* SEQPACKET RST: never answered */
	NOCONN_RST,   /* RST without a connection: never answered */
	NR_BAD_CASES
};

static const char *const bad_names[NR_BAD_CASES] = {
	[BAD_WRITABLE] = "writable-buffer",
	[BAD_HDR_WRITABLE] = "header-writable",
	[BAD_SHORT] = "short-chain",
	[BAD_SHORT_SPLIT] = "short-split",
	[BAD_LEN_BEYOND] = "len-beyond-chain",
	[BAD_LEN_OVERFLOW] = "len-overflow",
	[BAD_LEN_OVER_MAX] = "len-over-max",
	[BAD_SRC_CID] = "src-cid",
	[BAD_SRC_CID_HIGH] = "src-cid-high",
	[BAD_DST_CID_SELF] = "dst-cid-self",
	[BAD_DST_CID_HIGH] = "dst-cid-high",
	[BAD_DST_CID_ANY] = "dst-cid-any",
	[OK_SPLIT_HEADER] = "split-header",
	[OK_LEN_MAX] = "len-max",
	[BAD_TYPE] = "bad-type",
	[BAD_TYPE_ZERO] = "type-zero",
	[BAD_OP_ZERO] = "op-zero",
	[BAD_OP_8] = "op-8",
	[BAD_OP_FFFF] = "op-ffff",
	[NOCONN_RW] = "rw-no-conn",
	[NOCONN_SHUTDOWN] = "shutdown-no-conn",
	[NOCONN_CREDIT_UPDATE] = "credit-update-no-conn",
	[NOCONN_CREDIT_REQUEST] = "credit-request-no-conn",
	[NOCONN_RESPONSE] = "response-no-conn",
	[REFUSED] = "refused",
	[BAD_TYPE_RST] = "bad-type-rst",
	[NOCONN_RST] = "rst-no-conn",
};

/* Builds case c's chain at tx descriptor 0 from sport; returns the port it goes to. Each
 * packet would draw an answer if the device took it as valid. */
static uint32_t build_bad(enum bad_case c, uint32_t sport)
{
	uint32_t dport = DEAD_PORT;
	set_hdr(sport, dport, OP_RW, 16);
	set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
	set_tx(1, tx_data, 16, 0, 0);
	switch (c) {
	case BAD_WRITABLE:
		set_tx(1, tx_data, 16, D_WRITE, 0);
		break;
	case BAD_HDR_WRITABLE:
		txh.len = 0;
		set_tx(0, &txh, HDR_LEN, D_WRITE, 0);
		break;
	case BAD_SHORT:
		txh.op = OP_REQUEST;
		txh.len = 0;
		set_tx(0, &txh, HDR_LEN - 4, 0, 0);
		break;
	case BAD_SHORT_SPLIT:
		txh.op = OP_REQUEST;
		txh.len = 0;
		set_tx(0, &txh, 20, D_NEXT, 1);
		set_tx(1, (const volatile uint8_t *)&txh + 20, HDR_LEN - 24, 0, 0);
		break;
	case BAD_LEN_BEYOND:
		txh.len = 100;
		set_tx(1, tx_data, 50, 0, 0);
		break;
	case BAD_LEN_OVERFLOW:
		txh.len = 0xffffffff;
		set_tx(1, tx_data, 64, 0, 0);
		break;
	case BAD_LEN_OVER_MAX:
		txh.len = PKT_MAX + 1;
		set_tx(1, tx_data, PKT_MAX + 1, 0, 0);
		break;
	case BAD_SRC_CID:
		txh.src_cid = cid + 1;
		break;
	case BAD_SRC_CID_HIGH:
		txh.src_cid = cid + (1ULL << 32);
		break;
	case BAD_DST_CID_SELF:
		txh.dst_cid = cid;
		break;
	case BAD_DST_CID_HIGH:
		txh.dst_cid = HOST_CID + (1ULL << 32);
		break;
	case BAD_DST_CID_ANY:
		txh.dst_cid = 0xffffffff;
		break;
	case OK_SPLIT_HEADER:
		set_tx(0, &txh, 20, D_NEXT, 1);
		set_tx(1, (const volatile uint8_t *)&txh + 20, HDR_LEN - 20, D_NEXT, 2);
		set_tx(2, tx_data, 16, 0, 0);
		break;
	case OK_LEN_MAX:
		txh.len = PKT_MAX;
		set_tx(1, tx_data, PKT_MAX, 0, 0);
		break;
	case BAD_TYPE:
		dport = txh.dst_port = ECHO_PORT;
		txh.type = 2;
		txh.op = OP_REQUEST;
		txh.len = 0;
		set_tx(0, &txh, HDR_LEN, 0, 0);
		break;
	case BAD_TYPE_ZERO:
		txh.type = 0;
		break;
	case BAD_OP_ZERO:
		txh.op = 0;
		break;
	case BAD_OP_8:
		txh.op = 8;
		break;
	case BAD_OP_FFFF:
		txh.op = 0xffff;
		break;
	case NOCONN_RW:
		break;
	case NOCONN_SHUTDOWN:
	case NOCONN_CREDIT_UPDATE:
	case NOCONN_CREDIT_REQUEST:
	case NOCONN_RESPONSE:
	case REFUSED:
	case NOCONN_RST:
		txh.op = c == NOCONN_SHUTDOWN	      ? OP_SHUTDOWN
			 : c == NOCONN_CREDIT_UPDATE  ? OP_CREDIT_UPDATE
			 : c == NOCONN_CREDIT_REQUEST ? OP_CREDIT_REQUEST
			 : c == NOCONN_RESPONSE	      ? OP_RESPONSE
			 : c == REFUSED		      ? OP_REQUEST
						      : OP_RST;
		txh.flags = c == NOCONN_SHUTDOWN ? 3 : 0;
		txh.len = 0;
		set_tx(0, &txh, HDR_LEN, 0, 0);
		break;
	case BAD_TYPE_RST:
		txh.type = 2;
		txh.op = OP_RST;
		txh.len = 0;
		set_tx(0, &txh, HDR_LEN, 0, 0);
		break;
	case NR_BAD_CASES:
		break;
	}
	return dport;
}

/* "vsock: NAME reply=OP used=1": what the device answered, and whether the chain came back. */
static void report(const char *name, uint32_t sport, uint32_t dport, int used)
{
	int reply = used == 1 ? reply_to(sport, dport, false, 0) : REPLY_NONE;
	line(name);
	kv_op("reply", used == 0 ? REPLY_RESET : used < 0 ? REPLY_TIMEOUT : reply);
	kv("used", used == 1);
	puts_uart("\n");
}

/* Hostile packets on a live connection to the echo listener: each is dropped and leaves it
 * alive; then a valid RW whose chain holds more than len bytes: the host gets exactly len,
 * and ember's fwd_cnt says so. */
static void live_conn(void)
{
	const uint32_t sport = 6000, dport = ECHO_PORT;
	int op = connect(sport, dport);
	line("live-connect");
	kv_op("reply", op);
	kv("buf_alloc", last.buf_alloc);
	kv("fwd_cnt", last.fwd_cnt);
	puts_uart("\n");
	if (op != OP_RESPONSE)
		return;
	memset(tx_data, 'X', PKT_MAX + 1);

	set_hdr(sport, dport, OP_RW, 16);
	txh.src_cid = cid + 1;
	set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
	set_tx(1, tx_data, 16, 0, 0);
	report("live-src-cid", sport, dport, tx_chain(1));

	set_hdr(sport, dport, OP_RW, PKT_MAX + 1);
	set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
	set_tx(1, tx_data, PKT_MAX + 1, 0, 0);
	report("live-len-over-max", sport, dport, tx_chain(1));

	set_hdr(sport, dport, OP_RW, 16);
	set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
	set_tx(1, tx_data, 16, D_WRITE, 0);
	report("live-writable", sport, dport, tx_chain(1));

	set_hdr(sport, dport, OP_RW, 100);
	set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
	set_tx(1, tx_data, 50, 0, 0);
	report("live-len-beyond-chain", sport, dport, tx_chain(1));

	/* "live\n" and then garbage that len leaves out. */
	memcpy(tx_data, "live\n", 5);
	set_hdr(sport, dport, OP_RW, 5);
	set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
	set_tx(1, tx_data, 64, 0, 0);
	int rc = tx_chain(1);
	char got[64] = "";
	uint32_t have = 0;
	int echo = rc == 1 ? REPLY_NONE : rc == 0 ? REPLY_RESET : REPLY_TIMEOUT;
	while (rc == 1) {
		echo = next_for(sport, dport);
		if (echo != OP_RW)
			break;
		uint32_t i;
		for (i = 0; i < last.len && rx_data[i] != '\n'; i++)
			if (have + 1 < sizeof(got))
				got[have++] = (char)rx_data[i];
		got[have] = '\0';
		if (i < last.len)
			break;
	}
	line("live-echo");
	kv_op("reply", echo);
	puts_uart(" got=\"");
	puts_uart(got);
	puts_uart("\"\n");

	/* fwd_cnt: what the host socket took from this connection, the 5 bytes only. */
	rc = send_pkt(sport, dport, OP_CREDIT_REQUEST, 0, 0);
	op = rc == 1 ? reply_to(sport, dport, false, 0) : REPLY_TIMEOUT;
	line("live-credit");
	kv_op("reply", op);
	kv("fwd_cnt", op >= 0 ? last.fwd_cnt : 0);
	kv("buf_alloc", op >= 0 ? last.buf_alloc : 0);
	puts_uart("\n");

	set_hdr(sport, dport, OP_SHUTDOWN, 0);
	txh.flags = 3;
	set_tx(0, &txh, HDR_LEN, 0, 0);
	rc = tx_chain(1);
	op = rc == 1 ? next_for(sport, dport) : REPLY_TIMEOUT;
	line("live-shutdown");
	kv_op("reply", op);
	puts_uart("\n");
}

static void vsock_hostile(void)
{
	memset(tx_data, 'Y', PKT_MAX + 1);
	for (unsigned c = 0; c < NR_BAD_CASES; c++) {
		uint32_t sport = 10000 + c;
		uint32_t dport = build_bad((enum bad_case)c, sport);
		report(bad_names[c], sport, dport, tx_chain(1));
	}
	live_conn();
	echo_conn("after-hostile", 4001);
}

/* A guest that sends beyond its credit to a host socket that never reads: 64 KiB RW
 * packets, each followed by a CREDIT_REQUEST whose answer gives the exact fwd_cnt, until
 * ember resets the connection. That must happen at the first packet that takes the data
 * the host socket has not taken past the 256 KiB credit, not before ("first_beyond"). */
static void vsock_credit(void)
{
	const uint32_t sport = 7000, dport = SINK_PORT;
	int op = connect(sport, dport);
	line("credit-connect");
	kv_op("reply", op);
	kv("buf_alloc", last.buf_alloc);
	puts_uart("\n");
	if (op != OP_RESPONSE)
		return;
	for (uint32_t i = 0; i < PKT_MAX; i++)
		tx_data[i] = (uint8_t)('a' + i % 26);
	uint64_t sent = 0;
	uint32_t fwd = 0;
	unsigned more = 0;
	bool answered = true; /* every CREDIT_REQUEST on the live connection got its update */
	op = REPLY_NONE;
	for (unsigned k = 0; k < 16 && op == REPLY_NONE; k++) {
		int rc = send_pkt(sport, dport, OP_RW, tx_data, PKT_MAX);
		if (rc == 1) {
			sent += PKT_MAX;
			rc = send_pkt(sport, dport, OP_CREDIT_REQUEST, 0, 0);
		}
		if (rc != 1) {
			op = rc == 0 ? REPLY_RESET : REPLY_TIMEOUT;
			break;
		}
		credit_seen = false;
		op = reply_to(sport, dport, true, &more);
		if (op == REPLY_NONE) {
			answered &= credit_seen;
			fwd = credit_fwd;
		}
	}
	/* The socket never drains, so fwd stays what the last update said. */
	uint64_t unread = sent - fwd;
	line("credit-exceeded");
	kv_op("reply", op);
	kv("sent_kib", sent / 1024);
	kv("fwd_cnt", fwd);
	kv("answered", answered);
	kv("beyond_credit", unread > HOST_BUF_ALLOC);
	kv("first_beyond", unread > HOST_BUF_ALLOC && unread - PKT_MAX <= HOST_BUF_ALLOC);
	/* The CREDIT_REQUEST after the reset finds no connection: one more RST. */
	kv("more", more);
	puts_uart("\n");

	int rc = send_pkt(sport, dport, OP_RW, tx_data, 16);
	op = rc == 1 ? reply_to(sport, dport, true, 0) : REPLY_TIMEOUT;
	line("credit-after-reset");
	kv_op("reply", op);
	puts_uart("\n");
	echo_conn("after-credit", 4002);
}

/* Broken rings: the device must need a reset and, after one, work again. A connection
 * opened before the break must be gone after the reset (ember answers RST for it). */
enum broken {
	AVAIL_AHEAD, /* the tx avail index far ahead of the device */
	OOB_ADDR,    /* a tx payload buffer outside guest memory */
	TX_LOOP,     /* tx descriptors 0 -> 1 -> 0 */
	RX_OOB,	     /* every posted receive buffer outside guest memory */
};

static void broken_ring(const char *name, enum broken what)
{
	const uint32_t old = 8000 + what;
	int op = connect(old, ECHO_PORT);
	int rc;
	if (what == RX_OOB) {
		for (unsigned i = 0; i < VQ_SIZE; i++)
			vqs[RXQ].desc[i].addr = (uint64_t)(uintptr_t)NO_RAM + i * RX_BUF;
		/* The RST for this REQUEST needs a receive buffer. */
		rc = send_pkt(20000 + what, DEAD_PORT, OP_REQUEST, 0, 0);
		if (rc == 1) {
			uint32_t id, len;
			rc = wait_used(RXQ, &id, &len);
		}
	} else {
		set_hdr(20000 + what, DEAD_PORT, OP_RW, 64);
		set_tx(0, &txh, HDR_LEN, D_NEXT, 1);
		set_tx(1, what == OOB_ADDR ? NO_RAM : tx_data, 64, what == TX_LOOP ? D_NEXT : 0, 0);
		rc = tx_chain(what == AVAIL_AHEAD ? VQ_SIZE + 100 : 1);
	}
	line(name);
	kv_op("before", op);
	kv("needs_reset", rc == 0);
	kv("used", rc == 1);
	kv("isr_config", (rd(R_ISR) >> 1) & 1);
	puts_uart("\n");
	wr(R_STATUS, 0);
	line(name);
	puts_uart(" reset");
	kv("status", rd(R_STATUS));
	puts_uart("\n");
	if (!vs_init())
		return;
	/* A driver that starts over hears TRANSPORT_RESET (id 0) on the event queue. */
	uint32_t ev_head, ev_len;
	rc = wait_used(EVQ, &ev_head, &ev_len);
	line(name);
	puts_uart(" event");
	kv("transport_reset",
	   rc == 1 && ev_len == sizeof(events[0]) && ev_head < NR_EVENT && events[ev_head] == 0);
	puts_uart("\n");
	rc = send_pkt(old, ECHO_PORT, OP_CREDIT_REQUEST, 0, 0);
	op = rc == 1 ? reply_to(old, ECHO_PORT, false, 0) : REPLY_TIMEOUT;
	line(name);
	puts_uart(" old-conn");
	kv_op("reply", op);
	puts_uart("\n");
	echo_conn(name, 4100 + what);
}

static void vsock_avail_ahead(void)
{
	broken_ring("avail-ahead", AVAIL_AHEAD);
}

static void vsock_oob_addr(void)
{
	broken_ring("oob-addr", OOB_ADDR);
}

static void vsock_loop(void)
{
	broken_ring("loop", TX_LOOP);
}

static void vsock_rx_oob(void)
{
	broken_ring("rx-oob", RX_OOB);
}

void vsock_run(const char *cmdline)
{
	static const struct {
		const char *word;
		void (*fn)(void);
	} cases[] = {
		{ "vsock-echo", vsock_echo },	      { "vsock-hostile", vsock_hostile },
		{ "vsock-credit", vsock_credit },     { "vsock-avail-ahead", vsock_avail_ahead },
		{ "vsock-oob-addr", vsock_oob_addr }, { "vsock-loop", vsock_loop },
		{ "vsock-rx-oob", vsock_rx_oob },
	};
	bool any = false;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		any |= has_word(cmdline, cases[i].word);
	if (!any)
		return;
	if (!find_device(cmdline)) {
		line("no virtio-vsock device on the command line\n");
		return;
	}
	if (!vs_init())
		return;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (has_word(cmdline, cases[i].word))
			cases[i].fn();
	line("totals");
	kv("rx", nr_rx);
	kv("rst", nr_rst);
	puts_uart("\n");
}
