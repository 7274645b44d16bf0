/* virtio-vsock at the device level, without KVM: across a snapshot, and the receive queue's
 * budget (at the end). The test is the guest's driver on rings in
 * guest memory of its own and the host process on a real Unix socket; the VMM's event loop
 * runs in the test. A device is saved with its transport, a second one (another uds_path, as
 * with vsock_override) restored from that state over the same memory, and it owes the driver
 * TRANSPORT_RESET. A host connection made at once must not reach the receive queue before
 * the driver took the event (posted an event buffer again, as Linux does once it handled
 * it): Linux may accept the REQUEST first and then reset that connection with the old ones,
 * so that the host sees OK and then a closed connection. */
#include "unit_util.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/log.h"
#include "core/snapbuf.h"
#include "virtio/vsock.h"

#define CID	 42
#define NUM	 16
#define RX	 0
#define TX	 1
#define EVQ	 2
#define RX_BUF	 0x100000ULL /* receive buffer i at + 0x1000 * i */
#define EV_BUF	 0x200000ULL /* event buffer i at + 0x10 * i */
#define TX_BUF	 0x300000ULL
#define NR_RX	 4
#define NR_EV	 4
#define PORT	 5000
#define FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX))

static const struct unit_ring rings[3] = {
	{ NUM, 0x10000, 0x11000, 0x12000 },
	{ NUM, 0x14000, 0x15000, 0x16000 },
	{ NUM, 0x18000, 0x19000, 0x1a000 },
};

struct t {
	struct machine *vm;
	struct virtio_dev *dev;
	char dir[PATH_MAX], path[2][PATH_MAX];
	int host; /* the host process's connection */
};

static struct t *t(void)
{
	static struct t s;
	return &s;
}

static int restore_teardown(void **state)
{
	unit_device_machine_free(t()->vm, t()->dev);
	if (t()->host > 0)
		close(t()->host);
	for (unsigned i = 0; i < 2; i++)
		if (t()->path[i][0])
			unlink(t()->path[i]);
	if (t()->dir[0])
		rmdir(t()->dir);
	memset(t(), 0, sizeof(*t()));
	return unit_teardown(state);
}

#define RESTORE_TEST(fn) cmocka_unit_test_teardown(fn, restore_teardown)

static struct virtq_desc *desc(unsigned q)
{
	return (struct virtq_desc *)unit_gpa(t()->vm, rings[q].desc, 16 * NUM);
}

static struct virtq_avail *avail(unsigned q)
{
	return (struct virtq_avail *)unit_gpa(t()->vm, rings[q].avail, 6 + 2 * NUM + 2);
}

static struct virtq_used *used(unsigned q)
{
	return (struct virtq_used *)unit_gpa(t()->vm, rings[q].used, 6 + 8 * NUM + 2);
}

/* Descriptor i of queue q as one writable buffer, made available. */
static void post(unsigned q, uint16_t i, uint64_t gpa, uint32_t len)
{
	desc(q)[i] = (struct virtq_desc){ gpa, len, VIRTQ_DESC_F_WRITE, 0 };
	struct virtq_avail *a = avail(q);
	a->ring[a->idx % NUM] = i;
	a->idx++;
}

/* A device on a fresh event loop and MMIO bus, its host socket at path[i]. */
static void create(unsigned i)
{
	assert_int_equal(evloop_init(&t()->vm->loop), 0);
	int n = snprintf(t()->path[i], sizeof(t()->path[i]), "%s/v%u.sock", t()->dir, i);
	assert_true(n > 0 && (size_t)n < sizeof(((struct sockaddr_un *)0)->sun_path));
	struct vsock_config cfg = { .guest_cid = CID, .uds_path = t()->path[i], .listen_fd = -1 };
	char err[ERR_LEN];
	if (vsock_create(t()->vm, &cfg, &t()->dev, err))
		fail_msg("vsock_create: %s", err);
}

static void run_loop(unsigned ms)
{
	unit_run_loop(&t()->vm->loop, ms, NULL, NULL);
}

static bool rx_used(void *arg)
{
	(void)arg;
	return used(RX)->idx != 0;
}

/* Runs the event loop until the receive queue used a buffer (5 s at most); the ms it took. */
static uint64_t run_until_rx(void)
{
	uint64_t ms = unit_run_loop(&t()->vm->loop, 5000, rx_used, NULL);
	assert_int_equal(used(RX)->idx, 1);
	return ms;
}

/* A fresh device (create's slot i) whose driver started it and posted its buffers. */
static void started_device(unsigned i)
{
	const char *base = getenv("TMPDIR");
	snprintf(t()->dir, PATH_MAX, "%s/ember-unit-XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(t()->dir));
	t()->vm = unit_vm_new(4 * MIB);
	create(i);
	unit_driver_init(t()->vm, t()->dev, FEATURES, rings, 3);
	for (uint16_t b = 0; b < NR_RX; b++)
		post(RX, b, RX_BUF + 0x1000 * b, 0x1000);
	for (uint16_t b = 0; b < NR_EV; b++)
		post(EVQ, b, EV_BUF + 0x10 * b, 4);
	run_loop(20);
}

/* A driver that started the device and posted its buffers; saved; its device gone; a new
 * device restored from the state, which sends TRANSPORT_RESET as the loop first runs. */
static void saved_and_restored(void)
{
	started_device(0);
	assert_int_equal(used(EVQ)->idx, 0); /* a first start owes no event */

	struct snap_writer transport = { 0 }, own = { 0 };
	char err[ERR_LEN];
	virtio_mmio_save(t()->dev, &transport);
	assert_int_equal(vsock_save(t()->dev, &own, err), 0);
	unit_device_machine_free(t()->vm, t()->dev);
	t()->dev = NULL;
	t()->vm->nr_mmio_slots = 0;

	create(1);
	struct snap_reader r = snapr_init(transport.buf, transport.len);
	if (virtio_mmio_restore(t()->dev, &r, err))
		fail_msg("virtio_mmio_restore: %s", err);
	r = snapr_init(own.buf, own.len);
	if (vsock_restore(t()->dev, &r, err))
		fail_msg("vsock_restore: %s", err);
	snapw_free(&transport);
	snapw_free(&own);
	run_loop(20);
	/* TRANSPORT_RESET (id 0) in the first event buffer, and the driver asked to notify the
	 * next one it posts (avail_event, after the used ring, at its avail index). */
	assert_int_equal(used(EVQ)->idx, 1);
	assert_int_equal(used(EVQ)->ring[0].id, 0);
	assert_int_equal(used(EVQ)->ring[0].len, 4);
	assert_int_equal(get32(unit_gpa(t()->vm, EV_BUF, 4)), 0);
	assert_int_equal(get16(&used(EVQ)->ring[NUM]), NR_EV);
	assert_int_equal(used(RX)->idx, 0);
}

/* The host process connects to the restored device's socket and asks for PORT. */
static void host_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, t()->path[1], strlen(t()->path[1]) + 1); /* create checked it fits */
	t()->host = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t()->host >= 0);
	assert_int_equal(connect(t()->host, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", PORT);
	assert_int_equal(write(t()->host, line, (size_t)n), n);
}

/* The packet in the first receive buffer is the host's REQUEST for PORT. */
static void assert_request(void)
{
	struct vsock_hdr h;
	memcpy(&h, unit_gpa(t()->vm, RX_BUF, sizeof(h)), sizeof(h));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	assert_int_equal(h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(h.dst_cid, CID);
	assert_int_equal(h.dst_port, PORT);
}

static void a_host_connect_waits_until_the_driver_took_the_reset(void **state)
{
	(void)state;
	saved_and_restored();
	host_connect();
	run_loop(300);
	assert_int_equal(used(RX)->idx, 0);
	/* The driver handled the event: its buffer goes back, and it notifies. */
	post(EVQ, 0, EV_BUF, 4);
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_QUEUE_NOTIFY, EVQ);
	uint64_t ms = run_until_rx();
	if (ms > 200)
		fail_msg("the REQUEST came %llu ms after the driver took the event",
			 (unsigned long long)ms);
	assert_request();
}

static void a_driver_that_never_takes_the_reset_gets_the_request_after_a_while(void **state)
{
	(void)state;
	saved_and_restored();
	host_connect();
	uint64_t ms = run_until_rx();
	if (ms < VSOCK_RESET_ACK_MS - 400 || ms > VSOCK_RESET_ACK_MS + 1000)
		fail_msg("the REQUEST came after %llu ms, expected about %d",
			 (unsigned long long)ms, VSOCK_RESET_ACK_MS);
	assert_request();
}

static void a_started_device_sends_a_request_at_once(void **state)
{
	(void)state;
	/* The same driver and host without a snapshot in between: nothing waits. */
	started_device(1);
	host_connect();
	uint64_t ms = run_until_rx();
	if (ms > 200)
		fail_msg("the REQUEST came after %llu ms", (unsigned long long)ms);
	assert_request();
	assert_int_equal(used(EVQ)->idx, 0);
}

/* Audit finding 6: a driver that refills the receive queue as fast as the device uses it,
 * while a host peer streams, kept the VMM thread in the receive handler for as long as the
 * data lasted. The handler now takes a queue's worth of chains a round (256) and then
 * kicks itself: the event loop gets its turns in between. The driver here refills at the
 * moment the device stores into the used ring (unit_watch's on_store), so the queue never
 * runs dry; receive buffers of 128 bytes (84 of payload) make 96 KiB of host data about
 * 1,000 chains. */
#define SMALL_RX  128
#define STREAM	  (96 * 1024)
#define RX_BUDGET 256
static struct {
	unsigned reposted;
	uint16_t last_seen, gap_max;
} budget;

static void refill_on_used_store(uintptr_t addr)
{
	(void)addr;
	struct virtq_avail *a = avail(RX);
	uint16_t u = used(RX)->idx; /* what the device published before this store */
	/* Position p holds descriptor p % NUM: the one a new position takes was used. */
	while ((uint16_t)(a->idx - u) < NUM && budget.reposted < 4 * STREAM / 84) {
		uint16_t i = a->idx % NUM;
		desc(RX)[i] =
			(struct virtq_desc){ RX_BUF + 0x1000 * i, SMALL_RX, VIRTQ_DESC_F_WRITE, 0 };
		a->ring[i] = i;
		__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
		budget.reposted++;
	}
}

/* Every turn of the event loop (an eventfd that stays readable): the most chains used
 * between two turns. */
static void loop_turn(void *opaque, uint32_t events)
{
	(void)opaque, (void)events;
	uint16_t u = used(RX)->idx;
	if ((uint16_t)(u - budget.last_seen) > budget.gap_max)
		budget.gap_max = (uint16_t)(u - budget.last_seen);
	budget.last_seen = u;
}

static void a_refilling_driver_and_a_streaming_host_leave_the_loop_turns(void **state)
{
	(void)state;
	memset(&budget, 0, sizeof(budget));
	started_device(1);
	host_connect();
	run_until_rx();
	assert_request();
	/* The driver accepts with all the credit there is, so that only the budget stops. */
	struct vsock_hdr req, resp = { .dst_cid = VSOCK_HOST_CID,
				       .src_cid = CID,
				       .src_port = PORT,
				       .type = VSOCK_TYPE_STREAM,
				       .op = VSOCK_OP_RESPONSE,
				       .buf_alloc = UINT32_MAX };
	memcpy(&req, unit_gpa(t()->vm, RX_BUF, sizeof(req)), sizeof(req));
	resp.dst_port = req.src_port;
	memcpy(unit_gpa(t()->vm, TX_BUF, sizeof(resp)), &resp, sizeof(resp));
	desc(TX)[0] = (struct virtq_desc){ TX_BUF, sizeof(resp), 0, 0 };
	avail(TX)->ring[0] = 0;
	avail(TX)->idx = 1;
	unit_mmio_wr(t()->vm, t()->dev, VIRTIO_MMIO_QUEUE_NOTIFY, TX);
	run_loop(50);
	struct timeval tv = { 5, 0 };
	assert_int_equal(setsockopt(t()->host, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	char ok[32];
	assert_true(read(t()->host, ok, 3) == 3 && memcmp(ok, "OK ", 3) == 0);
	static char data[STREAM];
	assert_int_equal(write(t()->host, data, sizeof(data)), (ssize_t)sizeof(data));

	int turns = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(turns >= 0);
	assert_int_equal(evloop_add(&t()->vm->loop, turns, EPOLLIN, loop_turn, NULL), 0);
	budget.last_seen = used(RX)->idx; /* the first turn counts too */
	unit_watch()->on_store = refill_on_used_store;
	unit_watch_start(used(RX));
	refill_on_used_store(0);
	run_loop(500);
	unit_watch_stop();
	evloop_remove(&t()->vm->loop, turns);
	close(turns);
	unsigned chains = (uint16_t)(used(RX)->idx - 1); /* the REQUEST's was the first */
	print_message("# %u chains, at most %u between two turns of the loop\n", chains,
		      budget.gap_max);
	/* The whole stream went to the guest, more than three rounds' worth ... */
	assert_true(chains > 3 * RX_BUDGET);
	/* ... and the loop turned between the rounds (the host socket's handler and the kick's
	 * can both run a round in one turn: 512 seen). */
	assert_true(budget.gap_max <= 3 * RX_BUDGET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		RESTORE_TEST(a_host_connect_waits_until_the_driver_took_the_reset),
		RESTORE_TEST(a_driver_that_never_takes_the_reset_gets_the_request_after_a_while),
		RESTORE_TEST(a_started_device_sends_a_request_at_once),
		RESTORE_TEST(a_refilling_driver_and_a_streaming_host_leave_the_loop_turns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
