/* The common virtio device and its virtio-mmio (version 2) transport. A device file embeds
 * struct virtio_dev in its private struct, fills a static const virtio_dev_ops and calls
 * virtio_mmio_init; the transport owns the registers, the status state machine, feature
 * negotiation, queue setup, ioeventfd queue notifications and the irqfd interrupt.
 *
 * Threads: vCPU threads access the registers, the VMM thread runs queue notifications and
 * backend completions. dev->lock serialises the two; every ops callback but destroy (which
 * runs once the vCPUs have stopped) runs with it held. */
#ifndef EMBER_VIRTIO_H
#define EMBER_VIRTIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtq.h"
#include "core/machine.h"
#include "core/snapbuf.h"

/* Device status bits (virtio 1.x, "Device Status Field"). */
#define VIRTIO_STATUS_ACKNOWLEDGE	 1
#define VIRTIO_STATUS_DRIVER		 2
#define VIRTIO_STATUS_DRIVER_OK		 4
#define VIRTIO_STATUS_FEATURES_OK	 8
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED		 0x80

/* InterruptStatus bits. */
#define VIRTIO_INT_USED_RING 1
#define VIRTIO_INT_CONFIG    2

/* virtio-mmio registers (virtio 1.x, "MMIO Device Register Layout"). */
#define VIRTIO_MMIO_MAGIC_VALUE		0x000
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW	0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH	0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW	0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH	0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW	0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH	0x0a4
#define VIRTIO_MMIO_SHM_SEL		0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW		0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH	0x0b4
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC     0x74726976 /* "virt" */
#define VIRTIO_MMIO_VERSION_2 2
#define VIRTIO_VENDOR_ID      0x52424d45 /* "EMBR" */

/* IRQs 5 to 23 on the IOAPIC: the slots virtio-mmio devices can have. */
#define VIRTIO_DEV_MAX	  19
#define VIRTIO_QUEUES_MAX 5 /* virtio-balloon with statistics, hinting and reporting */

struct virtio_dev;

struct virtio_dev_ops {
	const char *name; /* "virtio-blk", for the log */
	uint32_t device_id;
	/* DRIVER_OK with every ready queue active; negative errno marks the device as needing
	 * a reset. */
	int (*activate)(struct virtio_dev *dev);
	/* The driver reset the device: forget requests in flight (their completions must not
	 * touch the rings any more). */
	void (*reset)(struct virtio_dev *dev);
	/* The driver wrote len bytes at off of the configuration space (a vCPU thread). NULL:
	 * the space is read-only, and writes are dropped. */
	void (*config_write)(struct virtio_dev *dev, uint64_t off, const uint8_t *data,
			     unsigned len);
	/* Queue q may have new chains (VMM thread). */
	void (*queue_notify)(struct virtio_dev *dev, unsigned q);
	void (*destroy)(struct virtio_dev *dev);
};

struct virtio_kick {
	struct virtio_dev *dev;
	unsigned queue;
	int fd; /* eventfd: KVM_IOEVENTFD on QueueNotify, or written by the MMIO handler */
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	struct machine *machine;
	const char *label; /* e.g. the drive_id; for the log */
	pthread_mutex_t lock;

	unsigned slot; /* n: MMIO base VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE, IRQ 5 + n */
	uint64_t mmio_base;
	unsigned irq;
	char cmdline[64]; /* virtio_mmio.device=4K@0x...:IRQ */
	/* Device-specific configuration space (from 0x100); reads beyond config_len are 0.
	 * Writes go to ops->config_write, where the device has one. */
	const uint8_t *config;
	unsigned config_len;

	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint32_t status;
	atomic_uint irq_status; /* InterruptStatus: read and acked without the lock */
	atomic_uint config_generation;
	unsigned warnings; /* logged so far; a hostile guest gets only a few lines */

	unsigned nr_queues;
	struct virtq queues[VIRTIO_QUEUES_MAX];
	struct virtio_kick kicks[VIRTIO_QUEUES_MAX];
	bool ioeventfd; /* notifications bypass the MMIO exit */
	int irq_fd;
};

/* Takes the next free slot of machine, creates the irqfd and the queue eventfds (KVM_IOEVENTFD
 * where the host has it) and registers the registers on the MMIO bus. -errno on failure,
 * with nothing left registered in the event loop. */
int virtio_mmio_init(struct virtio_dev *dev, struct machine *machine,
		     const struct virtio_dev_ops *ops, const char *label, unsigned nr_queues,
		     uint16_t queue_max, uint64_t device_features);
/* Snapshots of the transport: registers and queue positions (the VM is paused). Restore
 * checks every value against the device as created, activates a running device's queues
 * (their addresses checked as at DRIVER_OK) and looks at them once; 0 or -EINVAL. */
void virtio_mmio_save(struct virtio_dev *dev, struct snap_writer *w);
int virtio_mmio_restore(struct virtio_dev *dev, struct snap_reader *r, char *err);
/* Destroys dev and its transport (after the vCPUs stopped). */
void virtio_dev_destroy(struct virtio_dev *dev);

/* Logs a warning about dev that the guest can provoke: only the first few are logged. */
void virtio_dev_warn(struct virtio_dev *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* With dev->lock held: */
bool virtio_dev_running(const struct virtio_dev *dev);
/* Sets InterruptStatus bits and raises the IRQ. */
void virtio_interrupt(struct virtio_dev *dev, uint32_t why);
/* Pushes-side helper: interrupts if queue q's driver wants it. */
void virtio_queue_interrupt(struct virtio_dev *dev, unsigned q);
/* The guest broke the device: DEVICE_NEEDS_RESET, a configuration interrupt, one log
 * line; the device does nothing more until the driver resets it. */
void virtio_needs_reset(struct virtio_dev *dev, const char *why);
/* The next chain of queue q: 1 with *c filled; 0 when there is none and the driver was
 * asked to notify the next one; -1 when the driver broke the queue (the device then needs
 * a reset). */
int virtio_queue_pop(struct virtio_dev *dev, unsigned q, struct virtq_chain *c);
/* Has the VMM thread look at queue q again after the other events: a busy queue does not
 * keep it. */
void virtio_queue_kick(struct virtio_dev *dev, unsigned q);
/* The configuration space changed: new generation and a configuration interrupt. */
void virtio_config_changed(struct virtio_dev *dev);

#endif
