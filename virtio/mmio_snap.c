/* Snapshots of the virtio-mmio transport: the registers the driver wrote and each queue's
 * position. A restored running device gets its queues activated the way DRIVER_OK does, so
 * ring addresses from the file meet the same checks as a guest's. */
#include <errno.h>
#include <stdio.h>

#include "core/log.h"
#include "virtio/virtio.h"

#define STATUS_KNOWN                                                                               \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |              \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)

void virtio_mmio_save(struct virtio_dev *dev, struct snap_writer *w)
{
	pthread_mutex_lock(&dev->lock);
	snapw_u64(w, dev->device_features);
	snapw_u64(w, dev->driver_features);
	snapw_u32(w, dev->device_features_sel);
	snapw_u32(w, dev->driver_features_sel);
	snapw_u32(w, dev->queue_sel);
	snapw_u32(w, dev->status);
	snapw_u32(w, atomic_load(&dev->irq_status));
	snapw_u32(w, atomic_load(&dev->config_generation));
	snapw_u32(w, dev->nr_queues);
	for (unsigned i = 0; i < dev->nr_queues; i++) {
		const struct virtq *q = &dev->queues[i];
		snapw_u16(w, q->num);
		snapw_u8(w, q->ready);
		snapw_u64(w, q->desc_gpa);
		snapw_u64(w, q->avail_gpa);
		snapw_u64(w, q->used_gpa);
		snapw_u16(w, q->next_avail);
		snapw_u16(w, q->used_idx);
		snapw_u16(w, q->signalled_used);
		snapw_u8(w, q->signalled_valid);
	}
	pthread_mutex_unlock(&dev->lock);
}

static int bad(struct virtio_dev *dev, char *err, const char *what)
{
	return errf(err, -EINVAL, "%s %s: snapshot state: %s", dev->ops->name, dev->label, what);
}

int virtio_mmio_restore(struct virtio_dev *dev, struct snap_reader *r, char *err)
{
	uint64_t dev_features = snapr_u64(r), drv_features = snapr_u64(r);
	uint32_t dsel = snapr_u32(r), drsel = snapr_u32(r), qsel = snapr_u32(r);
	uint32_t status = snapr_u32(r), irq = snapr_u32(r), gen = snapr_u32(r);
	uint32_t nr = snapr_u32(r);
	if (r->bad)
		return bad(dev, err, "truncated");
	if (dev_features != dev->device_features)
		return bad(dev, err, "the device's features differ from the saved ones");
	if (drv_features & ~dev_features)
		return bad(dev, err, "the driver has features the device never offered");
	if (status & ~STATUS_KNOWN)
		return bad(dev, err, "undefined status bits");
	if (irq & ~(VIRTIO_INT_USED_RING | VIRTIO_INT_CONFIG))
		return bad(dev, err, "undefined interrupt status bits");
	if (nr != dev->nr_queues)
		return bad(dev, err, "another number of queues");
	struct virtq saved[VIRTIO_QUEUES_MAX];
	for (unsigned i = 0; i < nr; i++) {
		struct virtq *q = &saved[i];
		virtq_init(q, dev->queues[i].num_max);
		q->num = snapr_u16(r);
		q->ready = snapr_u8(r) != 0;
		q->desc_gpa = snapr_u64(r);
		q->avail_gpa = snapr_u64(r);
		q->used_gpa = snapr_u64(r);
		q->next_avail = snapr_u16(r);
		q->used_idx = snapr_u16(r);
		q->signalled_used = snapr_u16(r);
		q->signalled_valid = snapr_u8(r) != 0;
		if (!r->bad && (q->num == 0 || q->num > q->num_max || (q->num & (q->num - 1))))
			return bad(dev, err, "a queue size is not a power of 2 within QueueNumMax");
	}
	if (r->bad)
		return bad(dev, err, "truncated");

	pthread_mutex_lock(&dev->lock);
	dev->driver_features = drv_features;
	dev->device_features_sel = dsel;
	dev->driver_features_sel = drsel;
	dev->queue_sel = qsel; /* reads and writes check it against nr_queues */
	dev->status = status;
	atomic_store(&dev->irq_status, irq);
	atomic_store(&dev->config_generation, gen);
	int rc = 0;
	for (unsigned i = 0; i < nr; i++) {
		struct virtq *q = &dev->queues[i];
		*q = saved[i];
		if (!virtio_dev_running(dev) || !q->ready)
			continue;
		if (virtq_activate(q, &dev->machine->mem, drv_features)) {
			char why[160];
			snprintf(why, sizeof(why), "queue %u: %s", i, q->fault);
			rc = bad(dev, err, why);
			break;
		}
		/* virtq_activate starts from 0, as a driver does; the guest's rings are past it. */
		q->next_avail = saved[i].next_avail;
		q->used_idx = saved[i].used_idx;
		q->signalled_used = saved[i].signalled_used;
		q->signalled_valid = saved[i].signalled_valid;
	}
	if (!rc && virtio_dev_running(dev) && dev->ops->activate && dev->ops->activate(dev) < 0)
		rc = bad(dev, err, "the device could not start");
	pthread_mutex_unlock(&dev->lock);
	if (rc)
		return rc;
	/* A chain the guest added while the VM was being saved is looked at once it runs. */
	for (unsigned i = 0; i < nr; i++)
		if (dev->queues[i].active)
			virtio_queue_kick(dev, i);
	return 0;
}
