/* virtio-mmio version 2: registers, the device-status state machine, feature negotiation
 * and queue setup. Register writes are gated on the status: features only while the
 * driver negotiates, queue setup only between FEATURES_OK and DRIVER_OK, and status bits
 * only in the order the spec gives. A refused write changes nothing. */
#include "virtio/virtio.h"
#include "virtio/kind.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/irq.h"
#include "x86/layout.h"
#include "core/log.h"

#define STATUS_KNOWN                                                                               \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |              \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)

/* A hostile guest can repeat a refused write forever: only the first few complaints per
 * device are logged. */
#define DEV_WARN_MAX 16

void virtio_dev_warn(struct virtio_dev *dev, const char *fmt, ...)
{
	/* A guest that keeps doing wrong costs no formatting once its lines are used up. */
	if (dev->warnings >= DEV_WARN_MAX)
		return;
	char msg[ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn_limited(&dev->warnings, DEV_WARN_MAX, "%s %s: %s", dev->ops->name, dev->label,
			 msg);
}

bool virtio_dev_running(const struct virtio_dev *dev)
{
	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET));
}

void virtio_interrupt(struct virtio_dev *dev, uint32_t why)
{
	atomic_fetch_or(&dev->irq_status, why);
	irq_line_raise(dev->irq_fd);
}

void virtio_queue_interrupt(struct virtio_dev *dev, unsigned q)
{
	if (virtq_need_interrupt(&dev->queues[q]))
		virtio_interrupt(dev, VIRTIO_INT_USED_RING);
}

void virtio_needs_reset(struct virtio_dev *dev, const char *why)
{
	if (dev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	dev->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	virtio_dev_warn(dev, "%s: device marked DEVICE_NEEDS_RESET", why);
	if (dev->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_interrupt(dev, VIRTIO_INT_CONFIG);
}

void virtio_queue_kick(struct virtio_dev *dev, unsigned q)
{
	/* EAGAIN: the counter is already non-zero, a wake-up is pending */
	eventfd_write(dev->kicks[q].fd, 1);
}

int virtio_queue_pop(struct virtio_dev *dev, unsigned qi, struct virtq_chain *c)
{
	struct virtq *q = &dev->queues[qi];
	for (;;) {
		int rc = virtq_pop(q, c);
		if (rc < 0) {
			virtio_needs_reset(dev, q->fault);
			return -1;
		}
		if (rc > 0)
			return 1;
		if (!virtq_enable_notify(q))
			return 0;
	}
}

void virtio_config_changed(struct virtio_dev *dev)
{
	atomic_fetch_add(&dev->config_generation, 1);
	if (dev->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_interrupt(dev, VIRTIO_INT_CONFIG);
}

static void device_reset(struct virtio_dev *dev)
{
	if (dev->ops->reset)
		dev->ops->reset(dev);
	dev->driver_features = 0;
	dev->device_features_sel = dev->driver_features_sel = dev->queue_sel = 0;
	dev->status = 0;
	atomic_store(&dev->irq_status, 0);
	for (unsigned q = 0; q < dev->nr_queues; q++)
		virtq_reset(&dev->queues[q]);
}

static void activate(struct virtio_dev *dev)
{
	for (unsigned q = 0; q < dev->nr_queues; q++) {
		struct virtq *vq = &dev->queues[q];
		if (vq->ready && virtq_activate(vq, &dev->machine->mem, dev->driver_features)) {
			char why[128];
			snprintf(why, sizeof(why), "queue %u: %s", q, vq->fault);
			virtio_needs_reset(dev, why);
			return;
		}
	}
	if (dev->ops->activate && dev->ops->activate(dev) < 0) {
		virtio_needs_reset(dev, "the device could not start");
		return;
	}
	/* A chain added (and notified) before DRIVER_OK went unseen: look at every queue. */
	for (unsigned q = 0; q < dev->nr_queues; q++)
		if (dev->queues[q].active)
			virtio_queue_kick(dev, q);
}

static void write_status(struct virtio_dev *dev, uint32_t v)
{
	if (v == 0) {
		device_reset(dev);
		return;
	}
	uint32_t old = dev->status;
	/* DEVICE_NEEDS_RESET belongs to the device: the driver neither sets nor clears it. */
	v = (v & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) | (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	uint32_t added = v & ~old;
	const char *why = NULL;
	if (added & VIRTIO_STATUS_FAILED) {
		/* The driver gave up: honoured at any time; the device stops. */
		dev->status |= VIRTIO_STATUS_FAILED;
		virtio_dev_warn(dev, "the driver set FAILED");
		return;
	}
	if (old & ~v)
		why = "it clears bits (only a reset, writing 0, may)";
	else if (v & ~STATUS_KNOWN)
		why = "it sets undefined bits";
	else if (old & VIRTIO_STATUS_FAILED)
		why = "the device has FAILED (only a reset helps)";
	else if ((added & VIRTIO_STATUS_DRIVER) && !(old & VIRTIO_STATUS_ACKNOWLEDGE))
		why = "DRIVER comes before ACKNOWLEDGE";
	else if ((added & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_DRIVER))
		why = "FEATURES_OK comes before DRIVER";
	else if ((added & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_FEATURES_OK))
		why = "DRIVER_OK comes before FEATURES_OK";
	if (why) {
		virtio_dev_warn(dev, "status write 0x%x over 0x%x refused: %s", v, old, why);
		return;
	}
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		uint64_t unknown = dev->driver_features & ~dev->device_features;
		if (unknown || !(dev->driver_features & (1ULL << VIRTIO_F_VERSION_1))) {
			/* The driver reads the status back and sees FEATURES_OK missing. */
			virtio_dev_warn(dev, "features 0x%llx refused (%s)",
					(unsigned long long)dev->driver_features,
					unknown ? "some were not offered"
						: "VIRTIO_F_VERSION_1 missing");
			v &= ~VIRTIO_STATUS_FEATURES_OK;
		}
	}
	dev->status = v;
	if (added & VIRTIO_STATUS_DRIVER_OK)
		activate(dev);
}

/* The queue whose setup registers a write may change now, or NULL. */
static struct virtq *setup_queue(struct virtio_dev *dev, uint64_t reg)
{
	if ((dev->status & (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK |
			    VIRTIO_STATUS_FAILED)) != VIRTIO_STATUS_FEATURES_OK) {
		virtio_dev_warn(dev,
				"queue register 0x%03llx written outside queue setup (status 0x%x)",
				(unsigned long long)reg, dev->status);
		return NULL;
	}
	if (dev->queue_sel >= dev->nr_queues) {
		virtio_dev_warn(dev, "queue register 0x%03llx written for missing queue %u",
				(unsigned long long)reg, dev->queue_sel);
		return NULL;
	}
	struct virtq *q = &dev->queues[dev->queue_sel];
	if (q->ready && reg != VIRTIO_MMIO_QUEUE_READY) {
		virtio_dev_warn(dev, "queue %u: register 0x%03llx written while the queue is ready",
				dev->queue_sel, (unsigned long long)reg);
		return NULL;
	}
	return q;
}

static void set_half(uint64_t *v, bool high, uint32_t val)
{
	if (high)
		*v = (*v & 0xffffffffULL) | (uint64_t)val << 32;
	else
		*v = (*v & ~0xffffffffULL) | val;
}

static void write_reg(struct virtio_dev *dev, uint64_t reg, uint32_t v)
{
	struct virtq *q;
	switch (reg) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		dev->device_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		dev->driver_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if ((dev->status & (VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
				    VIRTIO_STATUS_FAILED)) != VIRTIO_STATUS_DRIVER) {
			virtio_dev_warn(dev,
					"DriverFeatures written outside negotiation (status 0x%x)",
					dev->status);
			break;
		}
		if (dev->driver_features_sel < 2)
			set_half(&dev->driver_features, dev->driver_features_sel == 1, v);
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		dev->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if ((q = setup_queue(dev, reg))) {
			if (v == 0 || v > q->num_max || (v & (v - 1)))
				virtio_dev_warn(dev,
						"queue %u: size %u refused (power of 2 up to %u)",
						dev->queue_sel, v, q->num_max);
			else
				q->num = (uint16_t)v;
		}
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		/* Linux clears QueueReady after the reset when it deletes its queues: after a
		 * reset every queue is already off, so that write is harmless. */
		if (dev->status == 0 && v == 0)
			break;
		if ((q = setup_queue(dev, reg)))
			q->ready = v & 1;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		/* Three areas 0x10 apart, each a low and a high half 4 apart. */
		if ((q = setup_queue(dev, reg))) {
			uint64_t *gpa[] = { &q->desc_gpa, &q->avail_gpa, &q->used_gpa };
			set_half(gpa[(reg - VIRTIO_MMIO_QUEUE_DESC_LOW) / 0x10], reg & 4, v);
		}
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Reached only without ioeventfd, or with a value no ioeventfd matches. */
		if (v < dev->nr_queues && virtio_dev_running(dev))
			virtio_queue_kick(dev, v);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(dev, v);
		break;
	case VIRTIO_MMIO_SHM_SEL:
		break; /* no shared memory regions: their length reads as ~0 */
	default:
		virtio_dev_warn(dev, "write of 0x%x to read-only or unknown register 0x%03llx", v,
				(unsigned long long)reg);
		break;
	}
}

static uint32_t read_reg(struct virtio_dev *dev, uint64_t reg)
{
	bool queue_ok = dev->queue_sel < dev->nr_queues;
	switch (reg) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return VIRTIO_MMIO_VERSION_2;
	case VIRTIO_MMIO_DEVICE_ID:
		return dev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_VENDOR_ID;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (dev->device_features_sel > 1)
			return 0;
		return (uint32_t)(dev->device_features >> (32 * dev->device_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return queue_ok ? dev->queues[dev->queue_sel].num_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return queue_ok ? dev->queues[dev->queue_sel].ready : 0;
	case VIRTIO_MMIO_STATUS:
		return dev->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return atomic_load(&dev->config_generation);
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return 0xffffffffu; /* the selected region does not exist */
	default:
		return 0; /* write-only and reserved registers */
	}
}

static void mmio_access(void *opaque, uint64_t off, uint8_t *data, unsigned len, bool is_write)
{
	struct virtio_dev *dev = opaque;
	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t at = off - VIRTIO_MMIO_CONFIG;
		if (is_write) {
			if (dev->ops->config_write) {
				pthread_mutex_lock(&dev->lock);
				dev->ops->config_write(dev, at, data, len);
				pthread_mutex_unlock(&dev->lock);
			}
			return;
		}
		memset(data, 0, len);
		pthread_mutex_lock(&dev->lock);
		if (at < dev->config_len)
			memcpy(data, dev->config + at,
			       len < dev->config_len - at ? len : dev->config_len - at);
		pthread_mutex_unlock(&dev->lock);
		return;
	}
	if (len != 4 || (off & 3)) {
		/* The spec allows only aligned 32-bit accesses below the configuration space. */
		if (!is_write)
			memset(data, 0, len);
		virtio_dev_warn(dev, "%u-byte %s at register 0x%03llx ignored", len,
				is_write ? "write" : "read", (unsigned long long)off);
		return;
	}
	uint32_t v;
	memcpy(&v, data, 4);
	/* The interrupt handler's two registers need no lock: both are one atomic operation,
	 * and the guest's interrupt path does not wait behind a long queue run. */
	if (is_write && off == VIRTIO_MMIO_INTERRUPT_ACK) {
		atomic_fetch_and(&dev->irq_status, ~v);
	} else if (!is_write && off == VIRTIO_MMIO_INTERRUPT_STATUS) {
		v = atomic_load(&dev->irq_status);
	} else {
		pthread_mutex_lock(&dev->lock);
		if (is_write)
			write_reg(dev, off, v);
		else
			v = read_reg(dev, off);
		pthread_mutex_unlock(&dev->lock);
	}
	if (!is_write)
		memcpy(data, &v, 4);
}

static void on_kick(void *opaque, uint32_t events)
{
	struct virtio_kick *k = opaque;
	struct virtio_dev *dev = k->dev;
	(void)events;
	eventfd_t count;
	eventfd_read(k->fd, &count);
	pthread_mutex_lock(&dev->lock);
	if (virtio_dev_running(dev) && dev->queues[k->queue].active)
		dev->ops->queue_notify(dev, k->queue);
	pthread_mutex_unlock(&dev->lock);
}

static int ioeventfd(struct virtio_dev *dev, struct virtio_kick *k, bool assign)
{
	struct kvm_ioeventfd ioe = {
		.datamatch = k->queue,
		.addr = dev->mmio_base + VIRTIO_MMIO_QUEUE_NOTIFY,
		.len = 4,
		.fd = k->fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};
	return ioctl(dev->machine->vm_fd, KVM_IOEVENTFD, &ioe) < 0 ? -errno : 0;
}

/* Undoes whatever virtio_mmio_init got to; the MMIO bus range stays (it cannot be removed)
 * only on the success path, where teardown happens with the VM itself. */
static void transport_teardown(struct virtio_dev *dev)
{
	for (unsigned q = 0; q < dev->nr_queues; q++) {
		struct virtio_kick *k = &dev->kicks[q];
		if (k->fd < 0)
			continue;
		evloop_remove(&dev->machine->loop, k->fd);
		if (dev->ioeventfd)
			ioeventfd(dev, k, false);
		close(k->fd);
		k->fd = -1;
	}
	if (dev->irq_fd >= 0)
		close(dev->irq_fd);
	dev->irq_fd = -1;
	pthread_mutex_destroy(&dev->lock);
}

int virtio_mmio_init(struct virtio_dev *dev, struct machine *machine,
		     const struct virtio_dev_ops *ops, const char *label, unsigned nr_queues,
		     uint16_t queue_max, uint64_t device_features)
{
	if (machine->nr_mmio_slots >= VIRTIO_DEV_MAX)
		return -ENOSPC;
	if (nr_queues == 0 || nr_queues > VIRTIO_QUEUES_MAX || queue_max == 0 ||
	    queue_max > VIRTQ_MAX_SIZE || (queue_max & (queue_max - 1)))
		return -EINVAL;
	dev->ops = ops;
	dev->machine = machine;
	dev->label = label;
	dev->slot = machine->nr_mmio_slots;
	dev->mmio_base = VIRTIO_MMIO_BASE + dev->slot * VIRTIO_MMIO_SIZE;
	dev->irq = VIRTIO_IRQ_BASE + dev->slot;
	dev->device_features = device_features | (1ULL << VIRTIO_F_VERSION_1);
	dev->nr_queues = nr_queues;
	dev->irq_fd = -1;
	atomic_init(&dev->irq_status, 0);
	atomic_init(&dev->config_generation, 0);
	pthread_mutex_init(&dev->lock, NULL);
	for (unsigned q = 0; q < nr_queues; q++) {
		virtq_init(&dev->queues[q], queue_max);
		dev->kicks[q] = (struct virtio_kick){ .dev = dev, .queue = q, .fd = -1 };
	}
	snprintf(dev->cmdline, sizeof(dev->cmdline), "virtio_mmio.device=4K@0x%llx:%u",
		 (unsigned long long)dev->mmio_base, dev->irq);

	int rc = irq_line_create(machine, dev->irq);
	if (rc < 0)
		goto fail;
	dev->irq_fd = rc;
	dev->ioeventfd = machine->vm_fd >= 0;
	for (unsigned q = 0; q < nr_queues; q++) {
		struct virtio_kick *k = &dev->kicks[q];
		k->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (k->fd < 0) {
			rc = -errno;
			goto fail;
		}
		/* teardown closes k->fd; undoing what was never done fails harmlessly */
		if ((rc = evloop_add(&machine->loop, k->fd, EPOLLIN, on_kick, k)))
			goto fail;
		if (dev->ioeventfd && (rc = ioeventfd(dev, k, true))) {
			/* Then QueueNotify exits to the vCPU thread, which writes k->fd itself. */
			log_debug("%s %s: KVM_IOEVENTFD: %s; queue notifications take MMIO exits",
				  ops->name, label, strerror(-rc));
			for (unsigned i = 0; i < q; i++)
				ioeventfd(dev, &dev->kicks[i], false);
			dev->ioeventfd = false;
		}
	}
	rc = io_bus_register(&machine->mmio_bus, dev->mmio_base, VIRTIO_MMIO_SIZE, mmio_access, dev,
			     ops->name);
	if (rc)
		goto fail;
	machine->nr_mmio_slots++;
	log_debug("%s %s: slot %u at 0x%llx, IRQ %u, queue notifications through %s", ops->name,
		  label, dev->slot, (unsigned long long)dev->mmio_base, dev->irq,
		  dev->ioeventfd ? "ioeventfd" : "MMIO exits");
	return 0;
fail:
	transport_teardown(dev);
	return rc;
}

void virtio_dev_destroy(struct virtio_dev *dev)
{
	transport_teardown(dev);
	if (dev->ops->destroy)
		dev->ops->destroy(dev);
}

int device_set_add(struct device_set *set, struct virtio_dev *dev, const char *arg)
{
	if (set->nr == VIRTIO_DEV_MAX)
		return -ENOSPC;
	set->args[set->nr] = arg;
	set->devs[set->nr++] = dev;
	return 0;
}
