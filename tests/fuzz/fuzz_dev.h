/* The device targets' harness: a machine without KVM (guest memory, MMIO bus, event loop),
 * one virtio-mmio device made fresh per input, and a driver script run against it.
 *
 * Input: a 16-bit script length L, L bytes of script, then the guest memory image (copied
 * to guest-physical 0, the rest of memory zeroed). Script operations, one byte each (taken
 * modulo the count) and their arguments:
 *   0 WRITE  reg8 (register = 4 * reg8), value32: a 32-bit register write
 *   1 READ   off16 (modulo 0x200), size8: a read of 1, 2, 4 or 8 bytes, aligned or not
 *   2 INIT   features64: the driver's whole set-up, as Linux does it, with the features
 *            masked to what the device offers, every queue at FUZZ_RING(q) with size 16
 *   3 NOTIFY q8: QueueNotify, then one turn of the event loop
 *   4 POKE   off16, len8, bytes: the driver writes guest memory
 *   5 POLL   one turn of the event loop
 *   6 HOST   the device target's own operation (its host side: a frame, a connection)
 *   7 AVAIL  q8, head8: the driver makes chain head (modulo 16) available on queue q
 * A queue's rings: descriptors at FUZZ_RING(q), avail at + 0x100, used at + 0x200. */
#ifndef EMBER_FUZZ_DEV_H
#define EMBER_FUZZ_DEV_H

#include <stdio.h>
#include <sys/mman.h>

#include "core/machine.h"
#include "virtio/virtio.h"
#include "fuzz.h"

#define FUZZ_MEM      (64 * 1024)
#define FUZZ_NUM      16
#define FUZZ_RING(q)  (0x400ULL * (q))
#define FUZZ_DATA     0xc00ULL /* where the seed corpora put buffers, after 3 queues */
#define FUZZ_HOST_OPS 8

struct fuzz_dev {
	struct machine m;
	struct virtio_dev *dev;
	/* The target keeps its devices from one input to the next (virtio-blk: each costs a
	 * megabyte of request slots to create); each input then starts with a reset by the
	 * driver, as after a guest reboot. */
	bool persistent;
	bool machine_ready;
	/* The target's host side: called for HOST with the rest of the script. */
	void (*host_op)(struct fuzz_dev *fd, struct fin *f);
};

static inline struct fuzz_dev *fuzz_dev(void)
{
	static struct fuzz_dev s;
	return &s;
}

static inline void fuzz_dev_init_machine(void)
{
	struct machine *m = &fuzz_dev()->m;
	m->vm_fd = m->kvm_fd = -1;
	if (guest_mem_init(&m->mem, FUZZ_MEM))
		abort();
	fuzz_quiet();
}

/* Before the device is created: guest memory from the input, a fresh bus and loop (once
 * only for a persistent target). */
static inline void fuzz_dev_begin(struct fin *image)
{
	struct fuzz_dev *s = fuzz_dev();
	struct machine *m = &s->m;
	uint8_t *ram = guest_mem_ptr(&m->mem, 0, FUZZ_MEM);
	size_t got;
	const uint8_t *p = fin_bytes(image, FUZZ_MEM, &got);
	memcpy(ram, p, got);
	memset(ram + got, 0, FUZZ_MEM - got);
	s->dev = NULL;
	if (s->machine_ready)
		return;
	m->nr_mmio_slots = 0;
	if (evloop_init(&m->loop))
		abort();
	s->machine_ready = true;
}

/* FUZZ_TRACE=1 in the environment: each input ends with a line that says how far it got
 * (device status, each queue's used index), to check that a seed does what it should. */
static inline void fuzz_dev_trace(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("FUZZ_TRACE") != NULL;
	struct virtio_dev *dev = fuzz_dev()->dev;
	if (!on || !dev)
		return;
	const uint8_t *ram = guest_mem_ptr(&fuzz_dev()->m.mem, 0, FUZZ_MEM);
	fprintf(stderr, "fuzz: status 0x%x", dev->status);
	for (unsigned q = 0; q < dev->nr_queues; q++)
		fprintf(stderr, ", queue %u used %u", q,
			((const struct virtq_used *)(ram + FUZZ_RING(q) + 0x200))->idx);
	fprintf(stderr, "\n");
}

static inline void fuzz_dev_end(void)
{
	struct fuzz_dev *s = fuzz_dev();
	fuzz_dev_trace();
	if (s->persistent)
		return;
	if (s->dev)
		virtio_dev_destroy(s->dev);
	s->dev = NULL;
	io_bus_free(&s->m.mmio_bus);
	evloop_close(&s->m.loop);
	s->machine_ready = false;
}

static inline void fuzz_mmio(struct virtio_dev *dev, uint64_t off, void *data, unsigned len,
			     bool write)
{
	io_bus_access(&dev->machine->mmio_bus, dev->mmio_base + off, data, len, write);
}

static inline void fuzz_wr(struct virtio_dev *dev, uint64_t off, uint32_t v)
{
	fuzz_mmio(dev, off, &v, 4, true);
}

static inline uint32_t fuzz_rd(struct virtio_dev *dev, uint64_t off)
{
	uint32_t v = 0;
	fuzz_mmio(dev, off, &v, 4, false);
	return v;
}

/* The driver's set-up from reset to DRIVER_OK, each step as the spec orders it; a step the
 * device refuses is carried on with regardless, as a hostile driver would. */
static inline void fuzz_driver_init(struct virtio_dev *dev, uint64_t features)
{
	fuzz_wr(dev, VIRTIO_MMIO_STATUS, 0);
	fuzz_wr(dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	fuzz_wr(dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	uint64_t offered = 0;
	for (uint32_t sel = 0; sel < 2; sel++) {
		fuzz_wr(dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
		offered |= (uint64_t)fuzz_rd(dev, VIRTIO_MMIO_DEVICE_FEATURES) << (32 * sel);
	}
	features = (features & offered) | (1ULL << VIRTIO_F_VERSION_1);
	for (uint32_t sel = 0; sel < 2; sel++) {
		fuzz_wr(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
		fuzz_wr(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> (32 * sel)));
	}
	uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	fuzz_wr(dev, VIRTIO_MMIO_STATUS, st);
	for (unsigned q = 0; q < dev->nr_queues; q++) {
		fuzz_wr(dev, VIRTIO_MMIO_QUEUE_SEL, q);
		fuzz_wr(dev, VIRTIO_MMIO_QUEUE_NUM, FUZZ_NUM);
		fuzz_wr(dev, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)FUZZ_RING(q));
		fuzz_wr(dev, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)FUZZ_RING(q) + 0x100);
		fuzz_wr(dev, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)FUZZ_RING(q) + 0x200);
		fuzz_wr(dev, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	fuzz_wr(dev, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}

/* One turn of the VMM thread's loop: whatever is ready now runs. */
static inline void fuzz_poll(void)
{
	evloop_poll(&fuzz_dev()->m.loop, 0);
}

static inline void fuzz_dev_script(struct fin *f)
{
	struct fuzz_dev *s = fuzz_dev();
	struct virtio_dev *dev = s->dev;
	uint8_t *ram = guest_mem_ptr(&s->m.mem, 0, FUZZ_MEM);
	while (fin_more(f)) {
		switch (fin8(f) % 8) {
		case 0: {
			uint64_t reg = 4ULL * fin8(f);
			fuzz_wr(dev, reg, fin32(f));
			break;
		}
		case 1: {
			uint64_t off = fin16(f) % 0x200;
			uint8_t buf[8];
			fuzz_mmio(dev, off, buf, 1U << (fin8(f) % 4), false);
			break;
		}
		case 2:
			fuzz_driver_init(dev, fin64(f));
			break;
		case 3:
			fuzz_wr(dev, VIRTIO_MMIO_QUEUE_NOTIFY, fin8(f) % (dev->nr_queues + 1));
			fuzz_poll();
			break;
		case 4: {
			size_t off = fin16(f) % FUZZ_MEM, len = fin8(f), got;
			if (len > FUZZ_MEM - off)
				len = FUZZ_MEM - off;
			const uint8_t *p = fin_bytes(f, len, &got);
			memcpy(ram + off, p, got);
			break;
		}
		case 5:
			fuzz_poll();
			break;
		case 6:
			if (s->host_op)
				s->host_op(s, f);
			break;
		case 7: {
			unsigned q = fin8(f) % dev->nr_queues;
			uint16_t head = fin8(f) % FUZZ_NUM;
			struct virtq_avail *a = (struct virtq_avail *)(ram + FUZZ_RING(q) + 0x100);
			a->ring[a->idx % FUZZ_NUM] = head;
			a->idx++;
			break;
		}
		}
	}
}

/* The whole run of one input: create makes s->dev (on failure the input is done). */
static inline void fuzz_dev_run(const uint8_t *data, size_t size, bool (*create)(struct fin *cfg))
{
	struct fin in = { data, size };
	struct fin script = fin_split(&in, fin16(&in));
	fuzz_dev_begin(&in);
	if (create(&script)) {
		if (fuzz_dev()->persistent) {
			/* The driver resets the device it finds, and what the last input left
			 * pending (a queue kick) finds it reset. */
			fuzz_wr(fuzz_dev()->dev, VIRTIO_MMIO_STATUS, 0);
			while (evloop_poll(&fuzz_dev()->m.loop, 0) > 0)
				;
		}
		fuzz_dev_script(&script);
	}
	fuzz_dev_end();
}

#endif
