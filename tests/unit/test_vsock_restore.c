/* virtio-vsock across a snapshot, without KVM: the test is the guest's driver on rings in
 * guest memory of its own and the host process on a real Unix socket; the VMM's event loop
 * runs in the test. A device is saved with its transport, a second one (another uds_path, as
 * with vsock_override) restored from that state over the same memory, and it owes the driver
 * TRANSPORT_RESET. A host connection made at once must not reach the receive queue before
 * the driver took the event (posted an event buffer again, as Linux does once it handled
 * it): Linux may accept the REQUEST first and then reset that connection with the old ones,
 * so that the host sees OK and then a closed connection. */
#include "unit_util.h"

#include <sys/socket.h>
#include <sys/un.h>

#include "core/log.h"
#include "core/snapbuf.h"
#include "virtio/vsock.h"

#define CID	 42
#define NUM	 16
#define RX	 0
#define EVQ	 2
#define RX_BUF	 0x100000ULL /* receive buffer i at + 0x1000 * i */
#define EV_BUF	 0x200000ULL /* event buffer i at + 0x10 * i */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		RESTORE_TEST(a_host_connect_waits_until_the_driver_took_the_reset),
		RESTORE_TEST(a_driver_that_never_takes_the_reset_gets_the_request_after_a_while),
		RESTORE_TEST(a_started_device_sends_a_request_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
