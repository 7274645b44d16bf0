/* A polling virtio-vsock driver for the test guest (device id 19, all three queues: rx 0
 * holds writable buffers for packets from ember, tx 1 carries the guest's packets, event 2
 * holds 4-byte buffers), and the hostile packets the VMM must survive. Each command-line
 * word runs one scenario and prints "vsock: what key=value ..." lines that
 * tests/vsock_direct.bats matches; the hostile ones are in vsock_hostile.c. Host ports: 5000 is an
 * echo listener ("pong " + each line), 5001 a listener that never reads, 5002 has nobody listening.
 *   vsock-echo         guest_cid from config space; a connection with data both ways
 *   vsock-hostile      malformed packets, each followed by a probe that always draws an RST
 *                      (CREDIT_REQUEST for a connection that does not exist), so that
 *                      "reply=none" means no answer at all; then hostile packets on a live
 *                      connection, which must still carry exactly the valid bytes
 *   vsock-credit       RW data beyond the credit ember grants, to the listener that never
 *                      reads: RST, and a new connection works
 *   vsock-avail-ahead, vsock-oob-addr, vsock-loop, vsock-rx-oob: broken rings; the device
 *                      needs a reset, after it a connection works again
 *   vsock-many         connections to port 5003 (a listener that holds them) until one
 *                      is refused; one closed, one more works
 *   vsock-deaf         receive buffers in place, then no answer to anything
 * The last line, "vsock: totals ...", counts what the guest received, for the metrics. */
#include "vsock.h"

volatile struct vq vqs[NR_VQS] __attribute__((aligned(4096)));
static uint16_t avail_idx[NR_VQS], last_used[NR_VQS];
static uint8_t rx_bufs[VQ_SIZE][RX_BUF] __attribute__((aligned(16)));
volatile uint32_t events[NR_EVENT];
volatile struct hdr txh;
uint8_t tx_data[PKT_MAX + 64] __attribute__((aligned(16)));
uint8_t rx_data[RX_BUF];

static uintptr_t base;
uint64_t cid;
struct hdr last; /* the last packet reply_to or next_for returned */
static uint32_t next_probe = 30000;
static uint64_t nr_rx, nr_rst; /* every packet the guest received, and the RSTs among them */
uint32_t rd(unsigned off)
{
	return *(volatile uint32_t *)(base + off);
}

void wr(unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(base + off) = v;
}

void line(const char *what)
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

void kv_op(const char *key, int op)
{
	puts_uart(" ");
	puts_uart(key);
	puts_uart("=");
	put_op(op);
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
bool vs_init(void)
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
bool vs_watch_events;

int wait_used(unsigned q, uint32_t *id, uint32_t *len)
{
	for (unsigned long i = 0; i < SPINS; i++) {
		/* A TRANSPORT_RESET ends every connection: the packet awaited will not come.
		 * Transmit chains still come back, so only a receive wait gives up. */
		if (vs_watch_events && q == RXQ && vqs[EVQ].used.idx != last_used[EVQ])
			return -1;
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

void set_tx(unsigned i, const volatile void *addr, uint32_t len, uint16_t flags, uint16_t next)
{
	vqs[TXQ].desc[i].addr = (uint64_t)(uintptr_t)addr;
	vqs[TXQ].desc[i].len = len;
	vqs[TXQ].desc[i].flags = flags;
	vqs[TXQ].desc[i].next = next;
}

/* A valid header in txh; the hostile cases then spoil one field. */
void set_hdr(uint32_t sport, uint32_t dport, uint16_t op, uint32_t len)
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
int tx_chain(uint16_t step)
{
	post(TXQ, 0, step);
	notify(TXQ);
	uint32_t id, len;
	return wait_used(TXQ, &id, &len);
}

/* txh, then len bytes of data as a second descriptor. */
int send_pkt(uint32_t sport, uint32_t dport, uint16_t op, const void *data, uint32_t len)
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
bool credit_seen;
uint32_t credit_fwd;

int reply_to(uint32_t sport, uint32_t dport, bool skip_credit, unsigned *more)
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
int next_for(uint32_t sport, uint32_t dport)
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

int connect(uint32_t sport, uint32_t dport)
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
void echo_conn(const char *name, uint32_t sport)
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

/* vsock-many: connections to HOLD_PORT (a listener that keeps every one open) until ember
 * refuses one: it allows 1024 open at once. Then one is closed and a new one must work. */
#define HOLD_PORT 5003
#define MANY	  1030
static void vsock_many(void)
{
	unsigned responses = 0, refused_at = 0;
	int refused_op = REPLY_NONE;
	for (uint32_t i = 0; i < MANY && !refused_at; i++) {
		int op = connect(20000 + i, HOLD_PORT);
		if (op == OP_RESPONSE) {
			responses++;
		} else {
			refused_at = i + 1;
			refused_op = op;
		}
	}
	line("many");
	kv("responses", responses);
	kv("refused_at", refused_at);
	kv_op("refused_op", refused_op);
	puts_uart("\n");
	/* Closing one (an RST needs no answer) makes room for one more. */
	send_pkt(20000, HOLD_PORT, OP_RST, 0, 0);
	int again = connect(30000, HOLD_PORT);
	int over = connect(30001, HOLD_PORT);
	line("many-after-close");
	kv_op("connect", again);
	kv_op("next", over);
	puts_uart("\n");
}

/* vsock-deaf: the device is set up with receive buffers, then the guest never answers
 * (the "halt" word keeps it running). */
static void vsock_deaf(void)
{
	line("deaf: ready\n");
}

/* dev-count (snap.c): the device found on the command line and set up; false, with a
 * line, when there is none or it refused. */
bool vs_start(const char *cmdline)
{
	if (!(base = virtio_find_device(cmdline, VSOCK_ID))) {
		line("no virtio-vsock device on the command line\n");
		return false;
	}
	return vs_init();
}

/* The next event the device put in the event queue (its id: 0 is TRANSPORT_RESET), its
 * buffer posted again; -1 when there is none. */
int vs_event(void)
{
	if (vqs[EVQ].used.idx == last_used[EVQ])
		return -1;
	mb(); /* the used index before the entry it covers */
	uint32_t id = vqs[EVQ].used.ring[last_used[EVQ] % VQ_SIZE].id;
	last_used[EVQ]++;
	vqs[EVQ].avail.used_event = last_used[EVQ];
	if (id >= NR_EVENT)
		return 0x7fffffff;
	int ev = (int)events[id];
	events[id] = 0xffffffff;
	post(EVQ, (uint16_t)id, 1);
	notify(EVQ);
	return ev;
}

/* Malformed packets, in the order they run. The first group must be dropped, the second
 * answered with RST, the last neither. */
void vsock_run(const char *cmdline)
{
	static const struct {
		const char *word;
		void (*fn)(void);
	} cases[] = {
		{ "vsock-echo", vsock_echo },	      { "vsock-hostile", vsock_hostile },
		{ "vsock-credit", vsock_credit },     { "vsock-avail-ahead", vsock_avail_ahead },
		{ "vsock-oob-addr", vsock_oob_addr }, { "vsock-loop", vsock_loop },
		{ "vsock-rx-oob", vsock_rx_oob },     { "vsock-many", vsock_many },
		{ "vsock-deaf", vsock_deaf },
	};
	bool any = false;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		any |= has_word(cmdline, cases[i].word);
	if (!any)
		return;
	if (!(base = virtio_find_device(cmdline, VSOCK_ID))) {
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
