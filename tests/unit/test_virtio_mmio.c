/* The virtio-mmio transport through the MMIO bus, as a vCPU would reach it: registers,
 * the device-status state machine, feature negotiation, queue setup gating, activation,
 * notifications and interrupts. A dummy device counts what the transport asks of it. */
#include "unit_util.h"

#include <sys/eventfd.h>

#include "x86/layout.h"
#include "virtio/virtio.h"

#define RING_GPA 0x10000ULL
#define DEV_ID	 42
#define OFFERED	 ((1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << 3))

struct dummy {
	struct virtio_dev vdev;
	unsigned activations, resets, notifies;
	uint8_t config[8];
};

static int dummy_activate(struct virtio_dev *dev)
{
	((struct dummy *)dev)->activations++;
	return 0;
}

static void dummy_reset(struct virtio_dev *dev)
{
	((struct dummy *)dev)->resets++;
}

static void dummy_notify(struct virtio_dev *dev, unsigned q)
{
	(void)q;
	((struct dummy *)dev)->notifies++;
}

static const struct virtio_dev_ops dummy_ops = {
	.name = "virtio-dummy",
	.device_id = DEV_ID,
	.activate = dummy_activate,
	.reset = dummy_reset,
	.queue_notify = dummy_notify,
};

static struct dummy devs[VIRTIO_DEV_MAX + 1];

static struct machine *the_vm(void)
{
	return &unit_state()->vm;
}

static int mmio_setup(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(4 * MIB);
	assert_int_equal(evloop_init(&vm->loop), 0);
	memset(devs, 0, sizeof(devs));
	devs[0].vdev.config = devs[0].config;
	devs[0].vdev.config_len = sizeof(devs[0].config);
	assert_int_equal(virtio_mmio_init(&devs[0].vdev, vm, &dummy_ops, "d0", 2, 16, OFFERED), 0);
	return 0;
}

static int mmio_teardown(void **state)
{
	struct machine *vm = the_vm();
	for (unsigned i = 0; i < vm->nr_mmio_slots; i++) /* devs[i] has slot i */
		virtio_dev_destroy(&devs[i].vdev);
	io_bus_free(&vm->mmio_bus);
	evloop_close(&vm->loop);
	return unit_teardown(state);
}

#define MMIO_TEST(fn) cmocka_unit_test_setup_teardown(fn, mmio_setup, mmio_teardown)

static uint32_t rd(uint64_t off)
{
	uint8_t data[4];
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + off, data, 4, false));
	return get32(data);
}

static void wr(uint64_t off, uint32_t v)
{
	uint8_t data[4];
	put32(data, v);
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + off, data, 4, true));
}

static struct virtio_dev *dev0(void)
{
	return &devs[0].vdev;
}

/* How many times fd was signalled since the last call (0 if never). */
static uint64_t drain(int fd)
{
	uint64_t v = 0;
	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

static void negotiate(uint64_t features)
{
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	wr(VIRTIO_MMIO_STATUS, 0xb);
}

static void setup_queue0(uint64_t desc)
{
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, RING_GPA + 0x1000);
	wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, RING_GPA + 0x2000);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
}

static void identity_registers(void **state)
{
	(void)state;
	assert_int_equal(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(rd(VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(VIRTIO_MMIO_DEVICE_ID), DEV_ID);
	assert_int_equal(rd(VIRTIO_MMIO_VENDOR_ID), VIRTIO_VENDOR_ID);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)OFFERED);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VIRTIO_F_VERSION_1 */
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(rd(VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr(VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
	wr(VIRTIO_MMIO_QUEUE_SEL, 2); /* only two queues */
	assert_int_equal(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	assert_int_equal(rd(VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffffu);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0);
	assert_string_equal(dev0()->cmdline, "virtio_mmio.device=4K@0xc0001000:5");

	/* The next device takes the next slot: next page, next IRQ. */
	assert_int_equal(virtio_mmio_init(&devs[1].vdev, the_vm(), &dummy_ops, "d1", 1, 16, 0), 0);
	assert_string_equal(devs[1].vdev.cmdline, "virtio_mmio.device=4K@0xc0002000:6");
	uint8_t data[4];
	assert_true(io_bus_access(&the_vm()->mmio_bus, 0xc0002000, data, 4, false));
	assert_int_equal(get32(data), 0x74726976);
}

static void status_bits_in_order_only(void **state)
{
	(void)state;
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_DRIVER);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 1);
	wr(VIRTIO_MMIO_STATUS, 1 | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 1);
	wr(VIRTIO_MMIO_STATUS, 3);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 3);
	wr(VIRTIO_MMIO_STATUS, 3 | VIRTIO_STATUS_DRIVER_OK); /* before FEATURES_OK */
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 3);
	wr(VIRTIO_MMIO_STATUS, 3 | 0x10); /* a bit the spec does not define */
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 3);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(VIRTIO_MMIO_STATUS, 0xb);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xb);
	wr(VIRTIO_MMIO_STATUS, 0x9); /* clearing DRIVER: only a reset may */
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xb);
	wr(VIRTIO_MMIO_STATUS, 0xb | VIRTIO_STATUS_DEVICE_NEEDS_RESET); /* not the driver's bit */
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xb);
	wr(VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xf);
	assert_int_equal(devs[0].activations, 1);
}

static void feature_negotiation(void **state)
{
	(void)state;
	/* Before DRIVER the features cannot be written. */
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 8);
	assert_int_equal(dev0()->driver_features, 0);
	/* Without VIRTIO_F_VERSION_1 (a legacy driver) FEATURES_OK does not stick. */
	negotiate(OFFERED);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 3);
	/* Nor with a feature the device never offered. */
	negotiate((1ULL << 32) | (1ULL << 7));
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 3);
	negotiate((1ULL << 32) | (1ULL << 3));
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xb);
	assert_int_equal(dev0()->driver_features, (1ULL << 32) | (1ULL << 3));
	/* After FEATURES_OK they are frozen. */
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, OFFERED);
	assert_int_equal(dev0()->driver_features, (1ULL << 32) | (1ULL << 3));
}

static void failed_and_reset(void **state)
{
	(void)state;
	negotiate(1ULL << 32);
	setup_queue0(RING_GPA);
	wr(VIRTIO_MMIO_STATUS, 0xb | VIRTIO_STATUS_FAILED);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xb | VIRTIO_STATUS_FAILED);
	wr(VIRTIO_MMIO_STATUS, 0xf | VIRTIO_STATUS_FAILED); /* FAILED: nothing but a reset */
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xb | VIRTIO_STATUS_FAILED);
	assert_int_equal(devs[0].activations, 0);
	atomic_store(&dev0()->irq_status, 3);
	unsigned resets = devs[0].resets;
	wr(VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(devs[0].resets, resets + 1);
	assert_int_equal(dev0()->driver_features, 0);
	assert_int_equal(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(dev0()->queues[0].num, 16);
	assert_int_equal(dev0()->queues[0].desc_gpa, 0);
}

static void queue_setup_is_gated(void **state)
{
	(void)state;
	struct virtq *q = &dev0()->queues[0];
	/* Before FEATURES_OK: ignored. */
	wr(VIRTIO_MMIO_QUEUE_NUM, 8);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	assert_int_equal(q->num, 16);
	assert_int_equal(q->desc_gpa, 0);
	negotiate(1ULL << 32);
	wr(VIRTIO_MMIO_QUEUE_NUM, 12); /* not a power of 2 */
	assert_int_equal(q->num, 16);
	wr(VIRTIO_MMIO_QUEUE_NUM, 32); /* beyond QueueNumMax */
	assert_int_equal(q->num, 16);
	wr(VIRTIO_MMIO_QUEUE_SEL, 7); /* no such queue */
	wr(VIRTIO_MMIO_QUEUE_NUM, 4);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	setup_queue0(0x123456789000ULL);
	assert_int_equal(q->num, 8);
	assert_int_equal(q->desc_gpa, 0x123456789000ULL);
	assert_int_equal(q->avail_gpa, RING_GPA + 0x1000);
	assert_true(q->ready);
	/* While ready, the addresses stay. */
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, RING_GPA);
	assert_int_equal(q->desc_gpa, 0x123456789000ULL);
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, RING_GPA);
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(q->desc_gpa, RING_GPA);
	wr(VIRTIO_MMIO_STATUS, 0xf);
	assert_true(q->active);
	/* After DRIVER_OK: ignored. */
	wr(VIRTIO_MMIO_QUEUE_READY, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, 4);
	assert_true(q->ready);
	assert_int_equal(q->num, 8);
}

static void bad_ring_needs_reset(void **state)
{
	(void)state;
	drain(dev0()->irq_fd);
	negotiate(1ULL << 32);
	setup_queue0(1ULL << 45); /* no RAM there */
	wr(VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xf | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(devs[0].activations, 0);
	assert_false(dev0()->queues[0].active);
	/* The driver hears about it: a configuration-change interrupt. */
	assert_int_equal(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	assert_true(drain(dev0()->irq_fd) > 0);
	/* A notification now reaches nobody. */
	drain(dev0()->kicks[0].fd);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(drain(dev0()->kicks[0].fd), 0);
	/* A reset and a proper setup bring it back. */
	negotiate(1ULL << 32);
	setup_queue0(RING_GPA);
	wr(VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0xf);
	assert_int_equal(devs[0].activations, 1);
}

static void notifications(void **state)
{
	(void)state;
	int kick = dev0()->kicks[0].fd;
	/* Not running yet: a notification is dropped. */
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(drain(kick), 0);
	negotiate(1ULL << 32);
	setup_queue0(RING_GPA);
	wr(VIRTIO_MMIO_STATUS, 0xf);
	/* Activation looks at every active queue once, for chains added before DRIVER_OK. */
	assert_int_equal(drain(kick), 1);
	assert_int_equal(drain(dev0()->kicks[1].fd), 0); /* queue 1 was never made ready */
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(drain(kick), 2);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 9); /* no such queue */
	assert_int_equal(drain(kick), 0);
}

static void interrupts_and_config(void **state)
{
	(void)state;
	drain(dev0()->irq_fd);
	virtio_interrupt(dev0(), VIRTIO_INT_USED_RING);
	assert_true(drain(dev0()->irq_fd) > 0);
	assert_int_equal(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, 1);
	assert_int_equal(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0);

	uint32_t gen = rd(VIRTIO_MMIO_CONFIG_GENERATION);
	negotiate(1ULL << 32);
	setup_queue0(RING_GPA);
	wr(VIRTIO_MMIO_STATUS, 0xf);
	virtio_config_changed(dev0());
	assert_int_equal(rd(VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
	assert_int_equal(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);

	/* Configuration space reads come from the device's bytes, at any offset and width. */
	memcpy(devs[0].config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	uint8_t data[8];
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + 0x102, data, 2, false));
	assert_int_equal(get16(data), 0x4433);
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + 0x100, data, 8, false));
	assert_int_equal(get64(data), 0x8877665544332211ULL);
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + 0x1f0, data, 4, false));
	assert_int_equal(get32(data), 0); /* beyond the device's fields */
	/* The driver cannot write it: every field ember offers is read-only. */
	data[0] = 0;
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + 0x104, data, 1, true));
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + 0x104, data, 1, false));
	assert_int_equal(data[0], 0x55);
}

static void odd_accesses_are_ignored(void **state)
{
	(void)state;
	uint8_t data[4] = { 0xaa, 0xaa, 0xaa, 0xaa };
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE, data, 1, false));
	assert_int_equal(data[0], 0);
	data[0] = 1;
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + VIRTIO_MMIO_STATUS, data,
				  1, true));
	assert_true(io_bus_access(&the_vm()->mmio_bus, VIRTIO_MMIO_BASE + VIRTIO_MMIO_STATUS + 2,
				  data, 2, true));
	assert_int_equal(rd(VIRTIO_MMIO_STATUS), 0);
	wr(VIRTIO_MMIO_MAGIC_VALUE, 0); /* read-only */
	assert_int_equal(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
}

static void slots_run_out(void **state)
{
	(void)state;
	for (unsigned i = 1; i < VIRTIO_DEV_MAX; i++)
		assert_int_equal(
			virtio_mmio_init(&devs[i].vdev, the_vm(), &dummy_ops, "d", 1, 16, 0), 0);
	assert_int_equal(devs[VIRTIO_DEV_MAX - 1].vdev.irq, 23);
	assert_int_equal(
		virtio_mmio_init(&devs[VIRTIO_DEV_MAX].vdev, the_vm(), &dummy_ops, "d", 1, 16, 0),
		-ENOSPC);
	assert_int_equal(
		virtio_mmio_init(&devs[VIRTIO_DEV_MAX].vdev, the_vm(), &dummy_ops, "d", 1, 12, 0),
		-ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		MMIO_TEST(identity_registers),
		MMIO_TEST(status_bits_in_order_only),
		MMIO_TEST(feature_negotiation),
		MMIO_TEST(failed_and_reset),
		MMIO_TEST(queue_setup_is_gated),
		MMIO_TEST(bad_ring_needs_reset),
		MMIO_TEST(notifications),
		MMIO_TEST(interrupts_and_config),
		MMIO_TEST(odd_accesses_are_ignored),
		MMIO_TEST(slots_run_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
