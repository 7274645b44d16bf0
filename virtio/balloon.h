/* virtio-balloon (virtio 1.x, "Traditional Memory Balloon Device", device id 5): Firecracker's
 * "balloon". The host sets a target in 4 KiB pages; the driver inflates towards it (each page
 * it gives up is handed back to the host with MADV_DONTNEED) or deflates, and reports how
 * many pages it holds in the configuration space's "actual". Optional: a statistics queue
 * polled from a timer on the VMM thread, deflate on OOM (a feature bit the driver acts on),
 * and free page reporting (the driver's free pages handed back as they are reported). A VM
 * has at most one. */
#ifndef EMBER_BALLOON_H
#define EMBER_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/snapbuf.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_BALLOON     5
#define BALLOON_QUEUE_SIZE    256
#define BALLOON_PAGE_SHIFT    12 /* PFNs count 4 KiB pages, whatever the guest's page size */
#define BALLOON_PAGES_PER_MIB 256
/* An inflate or deflate request holds at most this many PFNs: Linux sends at most 256 at a
 * time, as Firecracker accepts. */
#define BALLOON_PFNS_MAX		256
#define BALLOON_STATS_INTERVAL_MAX	65535 /* Firecracker's u16 */
#define VIRTIO_BALLOON_F_STATS_VQ	1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_REPORTING	5

/* The statistics tags (virtio 1.x, "Memory Statistics Tags"), in Firecracker's order. */
enum balloon_stat {
	BALLOON_S_SWAP_IN,
	BALLOON_S_SWAP_OUT,
	BALLOON_S_MAJFLT,
	BALLOON_S_MINFLT,
	BALLOON_S_MEMFREE,
	BALLOON_S_MEMTOT,
	BALLOON_S_AVAIL,
	BALLOON_S_CACHES,
	BALLOON_S_HTLB_PGALLOC,
	BALLOON_S_HTLB_PGFAIL,
	BALLOON_S_NR
};

/* Firecracker's BalloonDeviceConfig (plus free page reporting, from its API after v1.10): the
 * device exists once configured. */
struct balloon_config {
	bool configured;
	uint32_t amount_mib;
	bool deflate_on_oom;
	unsigned stats_polling_interval_s; /* 0: no statistics */
	bool free_page_reporting;
};

/* What the device knows now, for the API. */
struct balloon_state {
	bool running; /* the driver set DRIVER_OK */
	uint32_t target_pages, actual_pages;
	bool deflate_on_oom, free_page_reporting;
	unsigned stats_polling_interval_s;
	/* The driver's latest statistics: have bit i says tag i was reported. */
	uint32_t have;
	uint64_t stats[BALLOON_S_NR];
};

/* The balloon device in machine's next virtio slot; -errno with a message in err. */
int balloon_create(struct machine *machine, const struct balloon_config *cfg,
		   struct virtio_dev **out, char *err);
void balloon_get_state(struct virtio_dev *dev, struct balloon_state *out);
/* A new target: the driver hears of it through a configuration interrupt. -EAGAIN when the
 * driver has not started the device yet (it would not hear). */
int balloon_set_target(struct virtio_dev *dev, uint32_t pages);
/* A new polling interval (non-zero, statistics on): the timer restarts and the driver is
 * asked for statistics now. -EINVAL to switch statistics on or off. */
int balloon_set_stats_interval(struct virtio_dev *dev, unsigned interval_s);
/* Snapshots (the VM paused): the target, actual, the statistics and the held statistics
 * buffer; restore checks every value and restarts the timer. */
void balloon_save(struct virtio_dev *dev, struct snap_writer *w);
int balloon_restore(struct virtio_dev *dev, struct snap_reader *r, char *err);

#endif
