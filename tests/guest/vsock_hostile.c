/* The test guest's hostile virtio-vsock scenarios (see vsock.c for the words that run
 * them): malformed packets, a guest beyond its credit, and broken rings. */
#include "vsock.h"

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

void vsock_hostile(void)
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
void vsock_credit(void)
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

void vsock_avail_ahead(void)
{
	broken_ring("avail-ahead", AVAIL_AHEAD);
}

void vsock_oob_addr(void)
{
	broken_ring("oob-addr", OOB_ADDR);
}

void vsock_loop(void)
{
	broken_ring("loop", TX_LOOP);
}

void vsock_rx_oob(void)
{
	broken_ring("rx-oob", RX_OOB);
}
